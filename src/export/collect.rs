//! The collect phase: the lister's flows go through bounded concurrent fetchers to the one
//! writer that owns the sink. Every flow gets a manifest row the moment it is taken from the
//! listing (`skipped` until something better is known), so no listed flow can go missing from the
//! record. Results are written in listing order (at most `window` documents wait), so an
//! unchanged org gives identical archives. One flow's failure never stops the others; only a
//! credential failure, a destination failure or a stop ends the collection early.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use super::base::{Base, Carried, Carry, Want};
use super::naming::{FlowPaths, MemberNamer};
use super::rows::RowLog;
use super::{ContentMode, ExportOptions, RunError, StopSignal};
use crate::genesys::{ApiError, FlowLister, FlowSummary, GenesysClient, ListError, ListOptions, Listed, ListingReport};
use crate::manifest::{Content, Dependencies, Document, FlowRecord};
use crate::sink::Sink;

/// Listed flows waiting for a fetcher: enough to keep them busy across a page's round trip, few
/// enough that their listing rows (about 1 KB each) do not add up.
const LISTED_AHEAD: usize = 256;

/// What the collect phase gathered.
pub(super) struct Collected {
    pub rows: RowLog,
    pub listing: ListingReport,
    pub error: Option<RunError>,
}

impl Collected {
    /// A run without flows (`--kinds` without `flows`): no rows, no listing.
    pub fn nothing() -> Collected {
        Collected {
            rows: RowLog::new(),
            listing: ListingReport::default(),
            error: None,
        }
    }
}

/// What fetching one flow came to.
enum FetchOutcome {
    /// Documents to store; `failure` says why one that was asked for is missing.
    Fetched {
        documents: Vec<(Document, Bytes)>,
        attempts: u32,
        failure: Option<ApiError>,
        /// What the fetched configurations reference.
        dependencies: Option<Dependencies>,
    },
    NotFound,
    /// Unchanged since the previous run: its documents are carried over, with what they reference.
    Carried(Carried, Option<Dependencies>),
    /// Nothing was fetched (a malformed listing row, or the run is shutting down); the row says why.
    Unfetched,
}

/// What every fetch of a run shares.
struct Fetcher {
    client: Arc<GenesysClient>,
    /// Bounds the configuration requests in flight.
    permits: Semaphore,
    content: ContentMode,
    yaml: bool,
    base: Option<Arc<Base>>,
    /// Set once the credentials stopped working: flows that need an API call are no longer
    /// fetched, but unchanged ones are still carried.
    revoked: AtomicBool,
}

struct Fetched {
    index: usize,
    outcome: FetchOutcome,
}

/// The run's rows, in the order flows were taken from the listing; shared by the stream that
/// registers them and the writer that settles them.
type Rows = Mutex<RowLog>;

/// Lists, fetches and stores until the listing is done (both phases), a fatal error, or a stop.
pub(super) async fn collect(
    client: Arc<GenesysClient>,
    sink: &mut dyn Sink,
    options: &ExportOptions,
    base: Option<Arc<Base>>,
    stop: &StopSignal,
) -> Collected {
    let (tx, mut rx) = mpsc::channel::<Listed>(LISTED_AHEAD);
    let (handled_tx, handled_rx) = watch::channel(0u64);
    let cancel = CancellationToken::new();
    let previous_page_size = base.as_ref().and_then(|b| b.page_size);
    let lister = spawn_lister(
        client.clone(),
        options,
        previous_page_size,
        tx,
        handled_rx,
        cancel.clone(),
    );
    let rows: Rows = Mutex::new(RowLog::new());
    let fetcher = Arc::new(Fetcher {
        client: client.clone(),
        permits: Semaphore::new(options.concurrency.max(1)),
        content: options.content,
        yaml: options.yaml.is_some(),
        base,
        revoked: AtomicBool::new(false),
    });
    let mut error = write_loop(fetcher, sink, options, &mut rx, &rows, &handled_tx, stop)
        .await
        .err();
    // Documents still being written are waited for; those that failed get honest rows.
    let location = sink.location();
    let settled = tokio::select! {
        settled = sink.settle() => settled.map_err(RunError::Settle),
        _ = stop.store_given_up(options.shutdown_grace) => Err(RunError::Stalled { location }),
    };
    match settled {
        Ok(failures) => lock(&rows).mark_store_failures(failures),
        Err(e) => error = error.or(Some(e)),
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

fn lock(rows: &Rows) -> std::sync::MutexGuard<'_, RowLog> {
    rows.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the lister on its own task until it is done or `cancel` fires, and hands back its report.
fn spawn_lister(
    client: Arc<GenesysClient>,
    options: &ExportOptions,
    previous_page_size: Option<u64>,
    tx: mpsc::Sender<Listed>,
    handled: watch::Receiver<u64>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<(ListingReport, Result<(), ListError>)> {
    let list_options = ListOptions {
        type_filter: options.type_filter.clone(),
        page_size: crate::genesys::flows::starting_page_size(options.page_size, previous_page_size),
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
/// that is not a flow. A flow's row carries its listing fingerprint.
fn listed_row(item: &Listed) -> FlowRecord {
    match item {
        Listed::Flow(summary) => {
            let mut row = FlowRecord::listed(
                summary.id.clone(),
                summary.name.clone(),
                summary.flow_type.clone(),
                summary.division.clone().map(Into::into),
                (summary.published_version.clone(), summary.saved_version.clone()),
                "the run stopped before this flow was fetched".into(),
            );
            row.listing_sha256 = Some(summary.listing_sha256());
            row
        }
        Listed::Malformed { reason, row } => {
            let mut r = FlowRecord::listed(
                String::new(),
                String::new(),
                String::new(),
                None,
                (None, None),
                String::new(),
            );
            r.failed(format!("{reason}: {row}"), None);
            r
        }
    }
}

/// Fetches concurrently and stores in listing order until the listing closes or the run stops.
async fn write_loop(
    fetcher: Arc<Fetcher>,
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
    let mut namer = MemberNamer::default();
    let location = sink.location();
    let base = fetcher.base.clone();
    // Revoked credentials end fetching, not the run's carrying: the first such error is kept.
    let mut revoked: Option<RunError> = None;
    let source = futures::stream::poll_fn(|cx| rx.poll_recv(cx)).take_until(stop.stopped());
    let results = source
        .map(|item| {
            let row = listed_row(&item);
            let fingerprint = row.listing_sha256.clone();
            let index = lock(rows).push(row);
            if let Some(p) = &options.progress {
                p.listed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            fetch(fetcher.clone(), &mut namer, index, item, fingerprint)
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
        // A stopped run does not wait on a destination that stopped answering.
        let recorded = tokio::select! {
            recorded = record(sink, rows, fetched, base.as_deref()) => recorded,
            _ = stop.store_given_up(options.shutdown_grace) => Err(RunError::Stalled { location: location.clone() }),
        };
        match recorded {
            Ok(()) => {}
            Err(e @ RunError::Credentials(_)) => {
                if revoked.is_none() {
                    error!("{e}; flows that need an API call are no longer fetched, unchanged ones are still carried");
                    fetcher.revoked.store(true, Ordering::Relaxed);
                    revoked = Some(e);
                }
            }
            Err(e) => return Err(e),
        }
        handled.send_modify(|h| *h += 1);
        if let Some(p) = &options.progress {
            p.handled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let done = *handled.borrow();
        if done.is_multiple_of(500) {
            info!(done, "progress: {done} flows handled");
        }
    }
    revoked.map_or(Ok(()), Err)
}

/// Starts fetching (or carrying over) one listed item.
fn fetch(
    fetcher: Arc<Fetcher>,
    namer: &mut MemberNamer,
    index: usize,
    item: Listed,
    fingerprint: Option<String>,
) -> impl std::future::Future<Output = Fetched> + use<> {
    let (paths, summary) = match item {
        Listed::Flow(s) => (namer.paths_for(&s.flow_type, &s.name, &s.id), Some(s)),
        Listed::Malformed { .. } => (FlowPaths::default(), None),
    };
    let span = info_span!("flow", flow_id = %summary.as_ref().map(|s| s.id.as_str()).unwrap_or(""));
    async move {
        let Some(summary) = summary else {
            return Fetched {
                index,
                outcome: FetchOutcome::Unfetched,
            };
        };
        let wanted = wanted(&summary, fetcher.content, &paths);
        let carried = match &fingerprint {
            Some(fingerprint) => fetcher.carry(&summary, fingerprint, &wanted, &paths).await,
            None => None,
        };
        if let Some(carried) = carried {
            let dependencies = carried_dependencies(fetcher.base.as_deref(), &summary.id, &carried);
            return Fetched {
                index,
                outcome: FetchOutcome::Carried(carried, dependencies),
            };
        }
        // A permit bounds the requests in flight.
        let outcome = match fetcher.permits.acquire().await {
            Ok(_) if fetcher.revoked.load(Ordering::Relaxed) => FetchOutcome::Unfetched,
            Ok(_permit) => fetch_one(&fetcher.client, &summary, &wanted).await,
            Err(_) => FetchOutcome::Unfetched,
        };
        Fetched { index, outcome }
    }
    .instrument(span)
}

impl Fetcher {
    /// The flow's documents from the previous run, when it is unchanged and they verify.
    async fn carry(
        &self,
        summary: &FlowSummary,
        fingerprint: &str,
        wanted: &[Wanted],
        paths: &FlowPaths,
    ) -> Option<Carried> {
        let base = self.base.as_ref()?;
        let want: Vec<Want<'_>> = wanted
            .iter()
            .map(|w| Want {
                contents: &w.contents,
                version: w.version.as_deref(),
                path: &w.path,
            })
            .collect();
        let yaml_path = paths.yaml();
        let yaml = [Want {
            contents: &[Content::Yaml],
            version: summary.published_version.as_deref(),
            path: &yaml_path,
        }];
        let optional: &[Want<'_>] = if self.yaml && summary.published_version.is_some() {
            &yaml
        } else {
            &[]
        };
        let planned = base.plan(&summary.id, fingerprint, &want, optional)?;
        base.carry(&summary.id, planned).await
    }
}

/// What a carried flow references: as the previous run's row says, or — for a row written before
/// dependencies were recorded — read from the carried documents' configurations.
fn carried_dependencies(base: Option<&Base>, id: &str, carried: &Carried) -> Option<Dependencies> {
    if let Some(deps) = base.and_then(|b| b.dependencies(id)) {
        return Some(deps);
    }
    let mut deps = Dependencies::default();
    for (_, carry) in &carried.documents {
        if let Carry::Bytes(body) = carry
            && let Ok(doc) = crate::document::Document::parse(body)
        {
            super::dependencies::add_configuration(&mut deps, doc.configuration.get());
        }
    }
    super::dependencies::named(deps)
}

/// A change to one manifest row.
type RowUpdate = Box<dyn FnOnce(&mut FlowRecord)>;

/// Writes one flow's fetched documents and settles its row. An `Err` ends the run (revoked
/// credentials only end its fetching).
async fn record(sink: &mut dyn Sink, rows: &Rows, fetched: Fetched, base: Option<&Base>) -> Result<(), RunError> {
    let Fetched { index, outcome } = fetched;
    let (update, fatal): (RowUpdate, Option<RunError>) = match outcome {
        FetchOutcome::Fetched {
            documents,
            attempts,
            failure,
            dependencies,
        } => {
            let documents = documents.into_iter().map(|(d, body)| (d, Carry::Bytes(body)));
            let stored = store(sink, rows, index, documents, Some(attempts)).await?;
            match failure {
                None => (
                    Box::new(move |r| {
                        r.exported(stored, attempts);
                        r.dependencies = dependencies;
                    }),
                    None,
                ),
                Some(e) => {
                    let msg = e.to_string();
                    let fatal = e.is_fatal_for_run().then_some(RunError::Credentials(e));
                    let update: RowUpdate = Box::new(move |r| {
                        r.documents = stored;
                        r.failed(msg, Some(attempts));
                    });
                    (update, fatal)
                }
            }
        }
        FetchOutcome::NotFound => (Box::new(|r| r.not_found()), None),
        FetchOutcome::Carried(
            Carried {
                documents,
                from,
                fetched_in,
            },
            dependencies,
        ) => {
            let copies = documents.iter().filter(|(_, c)| matches!(c, Carry::Copy(_))).count();
            let reads = documents.len() - copies;
            let stored = store(sink, rows, index, documents.into_iter(), None).await?;
            if let Some(base) = base {
                base.count_carried(copies as u64, reads as u64);
            }
            let update: RowUpdate = Box::new(move |r| {
                r.carried(stored, from, fetched_in);
                r.dependencies = dependencies;
            });
            (update, None)
        }
        FetchOutcome::Unfetched => return Ok(()), // its row already says why
    };
    settle_row(rows, index, update);
    fatal.map_or(Ok(()), Err)
}

/// Puts (or copies) one flow's documents into the sink. When the destination fails, the row
/// keeps the documents stored so far and says why, and the run ends.
async fn store(
    sink: &mut dyn Sink,
    rows: &Rows,
    index: usize,
    documents: impl Iterator<Item = (Document, Carry)>,
    attempts: Option<u32>,
) -> Result<Vec<Document>, RunError> {
    let mut stored = Vec::new();
    for (doc, carry) in documents {
        let written = match carry {
            Carry::Bytes(body) => sink.put(&doc.path, body).await,
            Carry::Copy(source) => sink.copy(&doc.path, source, doc.sha256.clone()).await,
        };
        if let Err(source) = written {
            let e = RunError::Store {
                location: sink.location(),
                source,
            };
            error!("{e}");
            let msg = e.to_string();
            settle_row(
                rows,
                index,
                Box::new(move |r| {
                    r.documents = stored;
                    r.failed(msg, attempts);
                }),
            );
            return Err(e);
        }
        stored.push(doc);
    }
    Ok(stored)
}

fn settle_row(rows: &Rows, index: usize, update: RowUpdate) {
    lock(rows).update(index, update);
}

/// One document a flow should have: what it holds, where it goes and which request serves it.
struct Wanted {
    contents: Vec<Content>,
    /// `None`: `latestconfiguration`; `Some(v)`: `versions/{v}/configuration`.
    from_version: Option<String>,
    /// The version it holds, as listed.
    version: Option<String>,
    path: String,
}

/// The documents `content` asks of a flow. When the saved version is the published one, one
/// request (for that version) serves both; a flow never published has only its latest.
fn wanted(summary: &FlowSummary, content: ContentMode, paths: &FlowPaths) -> Vec<Wanted> {
    let latest = |contents: Vec<Content>| Wanted {
        contents,
        from_version: None,
        version: summary.saved_version.clone(),
        path: paths.json(),
    };
    let published = summary.published_version.clone();
    match (content, published) {
        (ContentMode::Latest, _) | (_, None) => vec![latest(vec![Content::Latest])],
        (ContentMode::Published, Some(v)) => vec![Wanted {
            contents: vec![Content::Published],
            from_version: Some(v.clone()),
            version: Some(v),
            path: paths.published_json(),
        }],
        (ContentMode::Both, Some(v)) if summary.saved_version.as_deref() == Some(v.as_str()) => vec![Wanted {
            contents: vec![Content::Latest, Content::Published],
            from_version: Some(v.clone()),
            version: Some(v),
            path: paths.json(),
        }],
        (ContentMode::Both, Some(v)) => vec![
            latest(vec![Content::Latest]),
            Wanted {
                contents: vec![Content::Published],
                from_version: Some(v.clone()),
                version: Some(v),
                path: paths.published_json(),
            },
        ],
    }
}

/// Fetches the documents a flow should have. A 404 on a configuration is confirmed against the
/// flow itself (`GET /api/v2/flows/{id}`): gone → `not_found`; still there → a failure that says
/// so. Any other failure keeps what was fetched and says what is missing.
async fn fetch_one(client: &GenesysClient, summary: &FlowSummary, wanted: &[Wanted]) -> FetchOutcome {
    let mut documents = Vec::with_capacity(wanted.len());
    let mut dependencies = Dependencies::default();
    let mut attempts = 0;
    for want in wanted {
        let result = match &want.from_version {
            None => client.latest_configuration(&summary.id).await,
            Some(v) => client.version_configuration(&summary.id, v).await,
        };
        let result = match result {
            Err(e @ ApiError::NotFound { .. }) => match client.confirm_deleted(&summary.id, e).await {
                Ok(()) => return FetchOutcome::NotFound,
                Err(e) => Err(e),
            },
            other => other,
        };
        match result {
            Ok(fetched) => {
                attempts += fetched.attempts;
                super::dependencies::add_configuration(&mut dependencies, fetched.body.get());
                documents.push(stored_document(summary, want, &fetched));
            }
            Err(e) => {
                warn!(
                    "could not fetch the {} configuration of flow {} ({}): {e}",
                    describe(&want.contents),
                    summary.id,
                    summary.name
                );
                return FetchOutcome::Fetched {
                    documents,
                    attempts,
                    failure: Some(e),
                    dependencies: None,
                };
            }
        }
    }
    FetchOutcome::Fetched {
        documents,
        attempts,
        failure: None,
        dependencies: super::dependencies::named(dependencies),
    }
}

fn describe(contents: &[Content]) -> String {
    contents.iter().map(|c| c.as_str()).collect::<Vec<_>>().join("+")
}

fn stored_document(
    summary: &FlowSummary,
    want: &Wanted,
    fetched: &crate::genesys::client::Fetched,
) -> (Document, Bytes) {
    let body = crate::document::build(summary.raw.get(), fetched.body.get());
    let doc = Document {
        contents: want.contents.clone(),
        version: want.version.clone(),
        path: want.path.clone(),
        bytes: body.len() as u64,
        sha256: hex::encode(Sha256::digest(&body)),
        configuration_sha256: Some(hex::encode(Sha256::digest(fetched.body.get().as_bytes()))),
        language: None,
    };
    (doc, Bytes::from(body))
}
