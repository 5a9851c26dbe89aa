//! The collect phase: the lister's flows go through bounded concurrent fetchers to the one
//! writer that owns the sink. Every flow gets a manifest row the moment it is taken from the
//! listing (`skipped` until something better is known), so no listed flow can go missing from the
//! record. Results are written in listing order (at most `window` documents wait), so an
//! unchanged org gives identical archives. One flow's failure never stops the others; only a
//! credential failure, a destination failure or a stop ends the collection early.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use super::naming::MemberNamer;
use super::{ExportOptions, RunError, StopSignal};
use crate::genesys::{ApiError, FlowLister, FlowSummary, GenesysClient, ListError, ListOptions, Listed, ListingReport};
use crate::manifest::{FlowRecord, Outcome};
use crate::sink::{Sink, StoreFailure};

/// What the collect phase gathered.
pub(super) struct Collected {
    pub rows: Vec<FlowRecord>,
    pub listing: ListingReport,
    pub error: Option<RunError>,
}

/// What fetching one flow came to.
enum FetchOutcome {
    Stored {
        document: Bytes,
        sha256: String,
        attempts: u32,
    },
    NotFound,
    Failed(ApiError),
    /// Nothing was fetched (a malformed listing row, or the run is shutting down); the row says why.
    Unfetched,
}

struct Fetched {
    index: usize,
    path: String,
    outcome: FetchOutcome,
}

/// The run's rows, in the order flows were taken from the listing; shared by the stream that
/// registers them and the writer that settles them.
type Rows = Mutex<Vec<FlowRecord>>;

/// Lists, fetches and stores until the listing is done (both phases), a fatal error, or a stop.
pub(super) async fn collect(
    client: Arc<GenesysClient>,
    sink: &mut dyn Sink,
    options: &ExportOptions,
    stop: &StopSignal,
) -> Collected {
    let (tx, mut rx) = mpsc::channel::<Listed>(1024);
    let (handled_tx, handled_rx) = watch::channel(0u64);
    let cancel = CancellationToken::new();
    let lister = spawn_lister(client.clone(), options, tx, handled_rx, cancel.clone());
    let rows: Rows = Mutex::default();
    let mut error = write_loop(&client, sink, options, &mut rx, &rows, &handled_tx, stop)
        .await
        .err();
    // Documents still being written are waited for; those that failed get honest rows.
    match sink.settle().await {
        Ok(failures) => mark_store_failures(&rows, failures),
        Err(e) => error = error.or(Some(RunError::Settle(e))),
    }
    // After a stop or a fatal error the lister may be waiting out a long Retry-After: cut it.
    // Otherwise it has finished (the writer only ends when the lister closes the channel).
    if error.is_some() || stop.cause().is_some() {
        cancel.cancel();
    }
    let (listing, listed) = lister
        .await
        .unwrap_or_else(|e| (ListingReport::default(), Err(ListError::Task(e.to_string()))));
    if let Err(e) = listed {
        error = error.or(Some(RunError::Listing(e)));
    }
    // Flows listed but never taken up still get their rows.
    let mut rows = rows.into_inner().unwrap_or_else(|e| e.into_inner());
    while let Ok(item) = rx.try_recv() {
        rows.push(listed_row(&item));
    }
    Collected { rows, listing, error }
}

fn lock(rows: &Rows) -> std::sync::MutexGuard<'_, Vec<FlowRecord>> {
    rows.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the lister on its own task until it is done or `cancel` fires, and hands back its report.
fn spawn_lister(
    client: Arc<GenesysClient>,
    options: &ExportOptions,
    tx: mpsc::Sender<Listed>,
    handled: watch::Receiver<u64>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<(ListingReport, Result<(), ListError>)> {
    let list_options = ListOptions {
        type_filter: options.type_filter.clone(),
        page_size: options.page_size,
        max_passes: options.max_list_passes,
    };
    tokio::spawn(
        async move {
            let mut lister = FlowLister::new(client, list_options);
            let result = tokio::select! {
                r = lister.run(tx, handled) => r,
                _ = cancel.cancelled() => Ok(()),
            };
            (lister.into_report(), result)
        }
        .in_current_span(),
    )
}

/// The row a listed item starts with: `skipped` for a flow (until fetched), `failed` for a row
/// that is not a flow.
fn listed_row(item: &Listed) -> FlowRecord {
    match item {
        Listed::Flow(summary) => FlowRecord {
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
        },
        Listed::Malformed { reason, row } => FlowRecord {
            id: String::new(),
            name: String::new(),
            flow_type: String::new(),
            division: None,
            published_version: None,
            saved_version: None,
            outcome: Outcome::Failed,
            path: None,
            bytes: None,
            sha256: None,
            attempts: None,
            error: Some(format!("{reason}: {row}")),
        },
    }
}

/// Fetches concurrently and stores in listing order until the listing closes or the run stops.
async fn write_loop(
    client: &Arc<GenesysClient>,
    sink: &mut dyn Sink,
    options: &ExportOptions,
    rx: &mut mpsc::Receiver<Listed>,
    rows: &Rows,
    handled: &watch::Sender<u64>,
    stop: &StopSignal,
) -> Result<(), RunError> {
    let concurrency = options.concurrency.max(1);
    // Results wait here to be written in listing order; twice the fetchers absorbs their jitter
    // while keeping memory near concurrency × flow size.
    let window = (concurrency * 2).max(8);
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut namer = MemberNamer::default();
    let source = futures::stream::poll_fn(|cx| rx.poll_recv(cx)).take_until(stop.stopped());
    let results = source
        .map(|item| {
            let index = {
                let mut r = lock(rows);
                r.push(listed_row(&item));
                r.len() - 1
            };
            fetch(client.clone(), permits.clone(), &mut namer, index, item)
        })
        .buffered(window);
    let mut results = std::pin::pin!(results);
    let mut grace: Option<tokio::time::Instant> = None;
    loop {
        let next = match grace {
            None => tokio::select! {
                item = results.next() => item,
                _ = stop.stopped() => {
                    warn!(grace_s = options.shutdown_grace.as_secs_f64(), "stop requested: no new flows will be fetched; waiting for requests in flight");
                    grace = Some(tokio::time::Instant::now() + options.shutdown_grace);
                    continue;
                }
            },
            Some(deadline) => match tokio::time::timeout_at(deadline, results.next()).await {
                Ok(item) => item,
                Err(_) => {
                    warn!("the shutdown grace period ended; cutting the requests still in flight");
                    break;
                }
            },
        };
        let Some(fetched) = next else { break };
        record(sink, rows, fetched).await?;
        handled.send_modify(|h| *h += 1);
        let done = *handled.borrow();
        if done.is_multiple_of(500) {
            info!(done, "progress: {done} flows handled");
        }
    }
    Ok(())
}

/// Starts fetching one listed item (a permit bounds the requests in flight).
fn fetch(
    client: Arc<GenesysClient>,
    permits: Arc<Semaphore>,
    namer: &mut MemberNamer,
    index: usize,
    item: Listed,
) -> impl std::future::Future<Output = Fetched> + use<> {
    let (path, summary) = match item {
        Listed::Flow(s) => (namer.name_for(&s.flow_type, &s.name, &s.id), Some(s)),
        Listed::Malformed { .. } => (String::new(), None),
    };
    let span = info_span!("flow", flow_id = %summary.as_ref().map(|s| s.id.as_str()).unwrap_or(""));
    async move {
        let outcome = match summary {
            None => FetchOutcome::Unfetched,
            Some(summary) => match permits.acquire_owned().await {
                Ok(_permit) => fetch_one(&client, &summary).await,
                Err(_) => FetchOutcome::Unfetched,
            },
        };
        Fetched { index, path, outcome }
    }
    .instrument(span)
}

/// A change to one manifest row.
type RowUpdate = Box<dyn FnOnce(&mut FlowRecord)>;

/// Writes one fetched document and settles its row. An `Err` ends the run.
async fn record(sink: &mut dyn Sink, rows: &Rows, fetched: Fetched) -> Result<(), RunError> {
    let Fetched { index, path, outcome } = fetched;
    let (update, fatal): (RowUpdate, Option<RunError>) = match outcome {
        FetchOutcome::Stored {
            document,
            sha256,
            attempts,
        } => {
            let bytes = document.len() as u64;
            match sink.put(&path, document).await {
                Ok(()) => (Box::new(move |r| r.exported(path, bytes, sha256, attempts)), None),
                Err(source) => {
                    let e = RunError::Store {
                        location: sink.location(),
                        source,
                    };
                    error!("{e}");
                    let msg = e.to_string();
                    (Box::new(move |r| r.failed(msg, Some(attempts))), Some(e))
                }
            }
        }
        FetchOutcome::NotFound => (Box::new(|r| r.not_found()), None),
        FetchOutcome::Unfetched => return Ok(()), // its row already says why
        FetchOutcome::Failed(e) => {
            let msg = e.to_string();
            let fatal = e.is_fatal_for_run().then_some(RunError::Credentials(e));
            (Box::new(move |r| r.failed(msg, None)), fatal)
        }
    };
    if let Some(row) = lock(rows).get_mut(index) {
        update(row);
    }
    fatal.map_or(Ok(()), Err)
}

/// Rows whose documents the destination could not take become `failed`, saying why.
fn mark_store_failures(rows: &Rows, failures: Vec<StoreFailure>) {
    let mut rows = lock(rows);
    for f in failures {
        if let Some(row) = rows.iter_mut().find(|r| r.path.as_deref() == Some(f.name.as_str())) {
            let attempts = row.attempts;
            row.failed(format!("fetched, but could not be stored: {}", f.error), attempts);
        }
    }
}

/// Fetches one flow's latest configuration and builds its stored document.
async fn fetch_one(client: &GenesysClient, summary: &FlowSummary) -> FetchOutcome {
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
            warn!("could not fetch flow {} ({}): {e}", summary.id, summary.name);
            FetchOutcome::Failed(e)
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
