//! The export pipeline: lister → bounded concurrent fetchers → one writer.
//!
//! The lister pages through `GET /api/v2/flows` and registers every flow in the manifest the moment
//! it is seen, as `skipped` until something better is known, so no listed flow can go missing from
//! the record. Fetchers run at most `concurrency` requests at once; their results are reordered
//! into listing order (at most `window` documents wait), so an unchanged org gives identical
//! archives. The writer owns the [`Sink`]. One flow's failure never stops the others; only a
//! credential failure, a destination failure or a stop signal ends a run early.

pub mod naming;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use crate::genesys::client::ApiError;
use crate::genesys::{FlowSummary, GenesysClient};
use crate::manifest::{self, FlowRecord, Listing, Manifest, Outcome, Tool};
use crate::sink::{ARCHIVE_NAME, Format, Sink};
use naming::MemberNamer;

/// Page sizes tried in turn when the API refuses a larger one with 400.
const PAGE_SIZE_FALLBACKS: [u64; 8] = [500, 250, 100, 50, 25, 10, 5, 1];
/// How often a page that comes back empty before `pageCount` is asked for again.
const EMPTY_PAGE_RETRIES: u32 = 2;
/// Consecutive empty pages (before `pageCount`) after which listing stops.
const MAX_EMPTY_PAGES: u32 = 3;

/// Settings for one export run.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The run id (directory or prefix name under the destination).
    pub run_id: String,
    /// Output layout, recorded in the manifest.
    pub format: Format,
    /// The destination as the user gave it, recorded in the manifest.
    pub destination: String,
    /// The configured region, if any, recorded in the manifest.
    pub region: Option<String>,
    /// Lowercase flow types to list; empty lists every flow.
    pub type_filter: Vec<String>,
    /// Page size to ask for first; smaller ones are tried if the API refuses it.
    pub page_size: u64,
    /// Configuration requests in flight at once.
    pub concurrency: usize,
    /// How long in-flight requests may finish after a stop before they are cut.
    pub shutdown_grace: Duration,
}

/// Why a run ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopCause {
    /// A signal (SIGINT = 2, SIGTERM = 15).
    Signal(i32),
    /// `--max-duration` elapsed.
    MaxDuration(Duration),
}

impl std::fmt::Display for StopCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopCause::Signal(2) => f.write_str("interrupted by SIGINT"),
            StopCause::Signal(15) => f.write_str("terminated by SIGTERM"),
            StopCause::Signal(n) => write!(f, "stopped by signal {n}"),
            StopCause::MaxDuration(d) => write!(f, "--max-duration of {}s elapsed", d.as_secs()),
        }
    }
}

/// A request to stop a run, shared between whoever stops it and the pipeline.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    token: CancellationToken,
    cause: Arc<Mutex<Option<StopCause>>>,
}

impl StopSignal {
    /// Asks the run to stop; the first cause wins.
    pub fn stop(&self, cause: StopCause) {
        let mut c = self.cause.lock().unwrap_or_else(|e| e.into_inner());
        if c.is_none() {
            *c = Some(cause);
        }
        self.token.cancel();
    }

    /// The cause, once stopped.
    pub fn cause(&self) -> Option<StopCause> {
        self.cause.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Resolves when a stop is requested.
    pub async fn stopped(&self) {
        self.token.cancelled().await
    }
}

/// How a run ended, which decides the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Every listed flow exported or not found.
    Complete,
    /// The archive and manifest were written but some flows failed.
    FlowsFailed,
    /// The run could not go on (credentials, listing, destination); the message says what to fix.
    Fatal(String),
    /// The run was stopped from outside.
    Stopped(StopCause),
}

/// The result of a run: its manifest, where it went and how it ended.
#[derive(Debug)]
pub struct ExportReport {
    /// The manifest as written (or as it would have been, if writing failed).
    pub manifest: Manifest,
    /// Where the run was written.
    pub location: String,
    /// How the run ended.
    pub ending: Ending,
}

/// What fetching one flow came to.
enum FetchOutcome {
    Stored {
        document: Bytes,
        sha256: String,
        attempts: u32,
    },
    NotFound,
    Failed {
        error: String,
        fatal: bool,
    },
}

struct Fetched {
    index: usize,
    path: String,
    outcome: FetchOutcome,
}

/// State shared by the lister and the writer.
#[derive(Default)]
struct Registry {
    rows: Vec<FlowRecord>,
    listing: Listing,
}

/// Runs one export: lists, fetches and stores every flow, then writes the manifest through `sink`.
pub async fn run(
    client: Arc<GenesysClient>,
    mut sink: Box<dyn Sink>,
    options: ExportOptions,
    stop: StopSignal,
) -> ExportReport {
    let started_at = manifest::now_rfc3339();
    let location = sink.location();
    let span = info_span!("run", run_id = %options.run_id);
    let registry = Arc::new(Mutex::new(Registry {
        listing: Listing {
            type_filter: options.type_filter.clone(),
            ..Listing::default()
        },
        ..Registry::default()
    }));

    let mut fatal: Option<String> = None;
    if let Err(e) = client.authenticate().instrument(span.clone()).await {
        fatal = Some(e.to_string());
    }

    let mut listing_error = None;
    if fatal.is_none() {
        let (tx, rx) = mpsc::channel::<(usize, FlowSummary)>(1024);
        let lister = tokio::spawn(
            list_all(client.clone(), options.clone(), registry.clone(), tx, stop.clone()).instrument(span.clone()),
        );
        let outcome = fetch_and_store(client.clone(), &mut *sink, &options, registry.clone(), rx, stop.clone())
            .instrument(span.clone())
            .await;
        if let Err(e) = outcome {
            fatal = Some(e);
        }
        // Documents still being written are waited for; those that failed get honest rows.
        match sink.settle().instrument(span.clone()).await {
            Ok(failures) if !failures.is_empty() => {
                let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
                for (name, reason) in failures {
                    if let Some(row) = r.rows.iter_mut().find(|row| row.path.as_deref() == Some(name.as_str())) {
                        Update::failed(format!("fetched, but could not be stored: {reason}"), row.attempts).apply(row);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => fatal = fatal.or(Some(format!("the destination failed: {e}"))),
        }
        // The writer is done. After a stop or a fatal error the lister may be waiting out a long
        // Retry-After: cut it, the manifest already says why the run ended. Otherwise it has
        // finished (the writer only ends when the lister closes the channel).
        if fatal.is_some() || stop.cause().is_some() {
            lister.abort();
        }
        match lister.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => listing_error = Some(e),
            Err(e) if e.is_cancelled() => {}
            Err(e) => listing_error = Some(format!("the listing task failed: {e}")),
        }
    }

    let stop_cause = stop.cause();
    let (mut rows, listing) = {
        let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
        (std::mem::take(&mut r.rows), r.listing.clone())
    };
    let discard = (stop_cause.is_some() || fatal.is_some()) && !sink.keeps_documents_on_abort();
    if discard {
        let why = match (&stop_cause, &fatal) {
            (Some(c), _) => c.to_string(),
            (None, Some(f)) => f.clone(),
            _ => String::new(),
        };
        mark_discarded(&mut rows, &why);
    }
    rows.sort_by(|a, b| (&a.flow_type, &a.id).cmp(&(&b.flow_type, &b.id)));

    let all_accounted = rows
        .iter()
        .all(|r| matches!(r.outcome, Outcome::Exported | Outcome::NotFound));
    let incomplete_reason = if let Some(c) = &stop_cause {
        Some(c.to_string())
    } else if let Some(f) = &fatal {
        Some(f.clone())
    } else if let Some(l) = &listing_error {
        Some(format!("listing did not finish: {l}"))
    } else if !all_accounted {
        Some("some flows were not exported; see the rows with outcome `failed`".to_string())
    } else {
        None
    };

    let mut m = Manifest {
        schema: manifest::SCHEMA.into(),
        run_id: options.run_id.clone(),
        tool: Tool::default(),
        started_at,
        finished_at: manifest::now_rfc3339(),
        region: options.region.clone(),
        api_url: client.api_url().to_string(),
        format: options.format.to_string(),
        destination: options.destination.clone(),
        archive: (options.format == Format::TarGz && !discard).then(|| ARCHIVE_NAME.to_string()),
        complete: incomplete_reason.is_none(),
        incomplete_reason,
        listing,
        totals: Default::default(),
        flows: rows,
    };
    m.recount();
    let bytes = Bytes::from(m.to_bytes());

    let written = if stop_cause.is_some() || discard {
        sink.abort(bytes)
            .await
            .map_err(|e| format!("could not write the manifest: {e}"))
    } else {
        match sink.finish(bytes).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // The run could not be sealed: leave a manifest that claims nothing it does not have.
                let why = format!("the destination failed while sealing the run: {e}");
                error!("{why}");
                m.complete = false;
                m.incomplete_reason = Some(why.clone());
                if !sink.keeps_documents_on_abort() {
                    mark_discarded(&mut m.flows, &why);
                    m.archive = None;
                }
                m.recount();
                if let Err(e2) = sink.abort(Bytes::from(m.to_bytes())).await {
                    warn!("could not write the incomplete manifest either: {e2}");
                }
                Err(why)
            }
        }
    };
    let ending = match (written, fatal, listing_error, stop_cause) {
        (Err(e), _, _, _) => Ending::Fatal(e),
        (Ok(()), Some(f), _, _) => Ending::Fatal(f),
        (Ok(()), None, Some(l), _) => Ending::Fatal(format!("listing flows failed: {l}")),
        (Ok(()), None, None, Some(c)) => Ending::Stopped(c),
        (Ok(()), None, None, None) if m.complete => Ending::Complete,
        (Ok(()), None, None, None) => Ending::FlowsFailed,
    };
    let _g = span.enter();
    info!(
        listed = m.totals.listed,
        exported = m.totals.exported,
        not_found = m.totals.not_found,
        failed = m.totals.failed,
        skipped = m.totals.skipped,
        complete = m.complete,
        "run finished at {location}"
    );
    ExportReport {
        manifest: m,
        location,
        ending,
    }
}

/// Rows stored in an archive that was discarded no longer have a copy anywhere: they become
/// `failed`, saying why.
fn mark_discarded(rows: &mut [FlowRecord], why: &str) {
    for row in rows.iter_mut().filter(|r| r.outcome == Outcome::Exported) {
        row.outcome = Outcome::Failed;
        row.error = Some(format!(
            "fetched, but the archive was discarded because the run stopped: {why}"
        ));
        row.path = None;
        row.bytes = None;
        row.sha256 = None;
    }
}

/// Lists every flow (per type filter, all pages) into the registry and the fetch channel.
async fn list_all(
    client: Arc<GenesysClient>,
    options: ExportOptions,
    registry: Arc<Mutex<Registry>>,
    tx: mpsc::Sender<(usize, FlowSummary)>,
    stop: StopSignal,
) -> Result<(), String> {
    let filters: Vec<Option<&str>> = if options.type_filter.is_empty() {
        vec![None]
    } else {
        options.type_filter.iter().map(|t| Some(t.as_str())).collect()
    };
    let mut seen = std::collections::HashSet::new();
    let mut api_total: Option<u64> = None;
    let mut page_size = options.page_size;
    for filter in filters {
        let mut page_number = 1u64;
        let mut empty_pages = 0u32;
        let mut empty_retries = 0u32;
        let mut filter_total: Option<u64> = None;
        loop {
            if stop.cause().is_some() {
                return Ok(());
            }
            let (page, _) = match client.list_flows_page(page_number, page_size, filter).await {
                Ok(p) => p,
                Err(ApiError::Rejected {
                    status: 400, message, ..
                }) if page_number == 1 => match PAGE_SIZE_FALLBACKS.iter().find(|s| **s < page_size) {
                    Some(smaller) => {
                        warn!(
                            page_size,
                            smaller, "the API refused page size {page_size} ({message}); retrying with {smaller}"
                        );
                        page_size = *smaller;
                        continue;
                    }
                    None => {
                        return Err(format!("the API refused the flow listing (HTTP 400: {message})"));
                    }
                },
                Err(e) => return Err(format!("page {page_number}: {e}")),
            };
            registry.lock().unwrap_or_else(|e| e.into_inner()).listing.pages += 1;
            // The latest page knows best: flows created or deleted meanwhile change `total`.
            if let Some(t) = page.total {
                filter_total = Some(t);
            }
            let entities = page.entities.unwrap_or_default();
            let count = entities.len();
            for raw in entities {
                let Some(summary) = FlowSummary::from_raw(raw) else {
                    warn!(page_number, "skipping a listing row that is not a JSON object");
                    continue;
                };
                if !summary.id.is_empty() && !seen.insert(summary.id.clone()) {
                    continue; // listed twice because flows moved between pages meanwhile
                }
                let index = {
                    let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
                    r.rows.push(FlowRecord {
                        id: summary.id.clone(),
                        name: summary.name.clone(),
                        flow_type: summary.flow_type.clone(),
                        division: summary.division.clone(),
                        published_version: summary.published_version.clone(),
                        saved_version: summary.saved_version.clone(),
                        outcome: Outcome::Skipped,
                        path: None,
                        bytes: None,
                        sha256: None,
                        attempts: None,
                        error: Some("the run stopped before this flow was fetched".into()),
                    });
                    r.listing.listed = r.rows.len() as u64;
                    r.rows.len() - 1
                };
                if tx.send((index, summary)).await.is_err() {
                    return Ok(()); // the writer has stopped
                }
            }
            let page_count = page.page_count;
            let last_by_count = page_count.is_some_and(|c| page_number >= c);
            let last_by_link = page_count.is_none() && page.next_uri.is_none();
            if count == 0 && page_count.is_some_and(|c| page_number < c) && empty_retries < EMPTY_PAGE_RETRIES {
                empty_retries += 1;
                warn!(
                    page_number,
                    page_count, "page {page_number} came back empty before pageCount; asking for it again"
                );
                continue;
            }
            empty_retries = 0;
            if count == 0 {
                empty_pages += 1;
                if page_count.is_none_or(|c| page_number >= c) || empty_pages >= MAX_EMPTY_PAGES {
                    if page_count.is_some_and(|c| page_number < c) {
                        warn!(
                            page_number,
                            page_count, "pages came back empty before pageCount; stopping the listing"
                        );
                    }
                    break;
                }
                warn!(
                    page_number,
                    "page {page_number} came back empty before pageCount; trying the next one"
                );
            } else {
                empty_pages = 0;
                if last_by_count || last_by_link {
                    break;
                }
            }
            // Trust the page size the server reports using, for the next request.
            if let Some(s) = page.page_size.filter(|s| *s > 0 && *s < page_size) {
                page_size = s;
            }
            page_number += 1;
        }
        if let Some(t) = filter_total {
            api_total = Some(api_total.unwrap_or(0) + t);
        }
    }
    let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
    r.listing.api_total = api_total;
    let listed = r.listing.listed;
    if let Some(total) = api_total
        && total != listed
    {
        let note = format!(
            "the API reported {total} flows but paging yielded {listed} distinct flows (flows created or deleted while listing)"
        );
        warn!("{note}");
        r.listing.discrepancy = Some(note);
    }
    info!(listed, pages = r.listing.pages, "listing finished");
    Ok(())
}

/// Fetches configurations concurrently and stores them in listing order. An `Err` is fatal.
async fn fetch_and_store(
    client: Arc<GenesysClient>,
    sink: &mut dyn Sink,
    options: &ExportOptions,
    registry: Arc<Mutex<Registry>>,
    rx: mpsc::Receiver<(usize, FlowSummary)>,
    stop: StopSignal,
) -> Result<(), String> {
    let concurrency = options.concurrency.max(1);
    // Results wait here to be written in listing order; twice the fetchers absorbs their jitter
    // while keeping memory near concurrency × flow size.
    let window = (concurrency * 2).max(8);
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut namer = MemberNamer::default();
    let stop_for_source = stop.clone();
    let source = tokio_stream_from(rx).take_until(async move { stop_for_source.stopped().await });
    let results = source
        .map(|(index, summary)| {
            let path = namer.name_for(&summary.flow_type, &summary.name, &summary.id);
            let client = client.clone();
            let permits = permits.clone();
            let span = info_span!("flow", flow_id = %summary.id);
            async move {
                let outcome = match permits.acquire_owned().await {
                    Ok(_permit) => fetch_one(&client, &summary).await,
                    Err(_) => FetchOutcome::Failed {
                        error: "the run is shutting down".into(),
                        fatal: false,
                    },
                };
                Fetched { index, path, outcome }
            }
            .instrument(span)
        })
        .buffered(window);
    let mut results = std::pin::pin!(results);

    let mut done = 0u64;
    let mut grace_deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = match grace_deadline {
            None => {
                tokio::select! {
                    item = results.next() => item,
                    _ = stop.stopped() => {
                        let deadline = tokio::time::Instant::now() + options.shutdown_grace;
                        warn!(grace_s = options.shutdown_grace.as_secs_f64(), "stop requested: no new flows will be fetched; waiting for requests in flight");
                        grace_deadline = Some(deadline);
                        continue;
                    }
                }
            }
            Some(deadline) => match tokio::time::timeout_at(deadline, results.next()).await {
                Ok(item) => item,
                Err(_) => {
                    warn!("the shutdown grace period ended; cutting the requests still in flight");
                    break;
                }
            },
        };
        let Some(fetched) = next else { break };
        let Fetched { index, path, outcome } = fetched;
        let (outcome, fatal) = match outcome {
            FetchOutcome::Stored {
                document,
                sha256,
                attempts,
            } => {
                let bytes = document.len() as u64;
                match sink.put(&path, document).await {
                    Ok(()) => (
                        Update {
                            outcome: Outcome::Exported,
                            path: Some(path),
                            bytes: Some(bytes),
                            sha256: Some(sha256),
                            attempts: Some(attempts),
                            error: None,
                        },
                        None,
                    ),
                    Err(e) => {
                        let msg = format!("could not store the flow at {}: {e}", sink.location());
                        error!("{msg}");
                        (Update::failed(msg.clone(), Some(attempts)), Some(msg))
                    }
                }
            }
            FetchOutcome::NotFound => (
                Update {
                    outcome: Outcome::NotFound,
                    error: Some("deleted after it was listed (HTTP 404/410)".into()),
                    ..Update::empty()
                },
                None,
            ),
            FetchOutcome::Failed { error, fatal } => {
                let f = fatal.then(|| error.clone());
                (Update::failed(error, None), f)
            }
        };
        {
            let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(row) = r.rows.get_mut(index) {
                outcome.apply(row);
            }
        }
        done += 1;
        if done.is_multiple_of(500) {
            info!(done, "progress: {done} flows handled");
        }
        if let Some(f) = fatal {
            return Err(f);
        }
    }
    Ok(())
}

struct Update {
    outcome: Outcome,
    path: Option<String>,
    bytes: Option<u64>,
    sha256: Option<String>,
    attempts: Option<u32>,
    error: Option<String>,
}

impl Update {
    fn empty() -> Self {
        Update {
            outcome: Outcome::Skipped,
            path: None,
            bytes: None,
            sha256: None,
            attempts: None,
            error: None,
        }
    }

    fn failed(error: String, attempts: Option<u32>) -> Self {
        Update {
            outcome: Outcome::Failed,
            error: Some(error),
            attempts,
            ..Update::empty()
        }
    }

    fn apply(self, row: &mut FlowRecord) {
        row.outcome = self.outcome;
        row.path = self.path;
        row.bytes = self.bytes;
        row.sha256 = self.sha256;
        row.attempts = self.attempts;
        row.error = self.error;
    }
}

/// Fetches one flow's latest configuration and builds its stored document.
async fn fetch_one(client: &GenesysClient, summary: &FlowSummary) -> FetchOutcome {
    if summary.id.is_empty() {
        return FetchOutcome::Failed {
            error: "the API listed this flow without an id".into(),
            fatal: false,
        };
    }
    match client.latest_configuration(&summary.id).await {
        Ok(fetched) => {
            let document = build_document(summary.raw.get(), fetched.body.get());
            let sha256 = hex::encode(Sha256::digest(&document));
            FetchOutcome::Stored {
                document: Bytes::from(document),
                sha256,
                attempts: fetched.attempts,
            }
        }
        Err(ApiError::NotFound { .. }) => {
            info!(
                "flow {} was deleted after it was listed; recording it as not_found",
                summary.id
            );
            FetchOutcome::NotFound
        }
        Err(e) => {
            let fatal = e.is_fatal_for_run();
            warn!("could not fetch flow {} ({}): {e}", summary.id, summary.name);
            FetchOutcome::Failed {
                error: e.to_string(),
                fatal,
            }
        }
    }
}

/// `{"flow": <row as listed>, "configuration": <as served>}`, both embedded byte for byte.
pub fn build_document(flow_json: &str, configuration_json: &str) -> Vec<u8> {
    let mut doc = Vec::with_capacity(flow_json.len() + configuration_json.len() + 32);
    doc.extend_from_slice(b"{\"flow\":");
    doc.extend_from_slice(flow_json.as_bytes());
    doc.extend_from_slice(b",\"configuration\":");
    doc.extend_from_slice(configuration_json.as_bytes());
    doc.extend_from_slice(b"}\n");
    doc
}

fn tokio_stream_from<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
