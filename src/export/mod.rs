//! The export pipeline, in three steps: **collect** (a verified listing → bounded concurrent
//! fetchers → one writer that owns the [`Sink`]), **decide** how the run ended (one typed
//! [`Ending`]), and **seal** (the manifest, written last). It knows the `Sink` trait, not S3.
//!
//! A run that stops early (a signal, `--max-duration`, revoked credentials) still seals what it
//! fetched: the archive holds those documents and the manifest says the run is incomplete and why.
//! Only a broken destination discards a partial archive, since its bytes cannot be trusted.

mod architect;
mod base;
mod collect;
pub mod dependencies;
mod ending;
pub mod naming;
mod rows;
mod stop;
mod unseen;
mod yaml;

use std::sync::Arc;
use std::time::Duration;

use tracing::{Instrument, error, info, info_span, warn};

pub use crate::document::build as build_document;
pub use base::{SinceOptions, check_exists as check_since, previous_archive_size};
pub use ending::{Ending, RunError};
pub use stop::{StopCause, StopSignal};
pub use yaml::YamlOptions;

use crate::genesys::{GenesysClient, ListingReport, Organization};
use crate::manifest::{self, Listing, Manifest, Tool, Totals};
use crate::sink::{ARCHIVE_NAME, Format, Sink, SinkError, Spooled};
use rows::RowLog;

/// Which configurations a run stores for each flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentMode {
    /// The latest saved configuration only (may be an unpublished draft).
    Latest,
    /// The published configuration only (a never-published flow still gets its latest).
    Published,
    /// Both; one document when they are the same version.
    #[default]
    Both,
}

impl ContentMode {
    /// The setting's value names.
    pub const NAMES: [&'static str; 3] = ["latest", "published", "both"];

    /// `latest`, `published` or `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentMode::Latest => "latest",
            ContentMode::Published => "published",
            ContentMode::Both => "both",
        }
    }
}

impl std::str::FromStr for ContentMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "latest" => Ok(ContentMode::Latest),
            "published" => Ok(ContentMode::Published),
            "both" => Ok(ContentMode::Both),
            other => Err(format!("`{other}` is not one of latest, published, both")),
        }
    }
}

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
    /// The most listing passes in each phase.
    pub max_list_passes: u32,
    /// Configuration requests in flight at once.
    pub concurrency: usize,
    /// How long in-flight requests may finish after a stop before they are cut.
    pub shutdown_grace: Duration,
    /// Which configurations to store.
    pub content: ContentMode,
    /// Flows and which Architect kinds to export (`--kinds`).
    pub kinds: crate::architect::KindSelection,
    /// Also store Archy YAML of each published flow (export jobs), batched and retried so.
    pub yaml: Option<YamlOptions>,
    /// The org the client reads, recorded in the manifest.
    pub organization: Option<Organization>,
    /// Counters a progress display reads, if one is shown.
    pub progress: Option<Arc<Progress>>,
    /// Carry unchanged flows over from a previous run (`--since`).
    pub since: Option<SinceOptions>,
}

/// The result of a run: its manifest, where it went and how it ended.
#[derive(Debug)]
pub struct ExportReport {
    /// The manifest as written (or as it would have been, if writing failed) *without its rows*,
    /// which are not held in memory: read them from the run's `manifest.json`.
    pub manifest: Manifest,
    /// Bytes of the documents stored.
    pub stored_bytes: u64,
    /// Where the run was written.
    pub location: String,
    /// How the run ended.
    pub ending: Ending,
    /// What the run's API requests came to.
    pub requests: RequestCounts,
    /// Whether `manifest.json` was written (a broken destination may have refused it).
    pub manifest_written: bool,
}

/// API requests of a run, for metrics.
#[derive(Debug, Clone, Default)]
pub struct RequestCounts {
    /// Answers by HTTP status (0: transport errors).
    pub by_status: std::collections::BTreeMap<u16, u64>,
    /// Requests sent again after a failed attempt.
    pub retries: u64,
    /// 429 answers.
    pub throttled: u64,
}

impl RequestCounts {
    /// The counts of `client` so far.
    pub fn of(client: &GenesysClient) -> RequestCounts {
        let s = client.stats();
        RequestCounts {
            by_status: s.by_status(),
            retries: s.retries.load(std::sync::atomic::Ordering::Relaxed),
            throttled: s.throttled.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// How far a run is, for a progress display: flows taken from the listing and flows handled.
#[derive(Debug, Default)]
pub struct Progress {
    /// Flows listed so far.
    pub listed: std::sync::atomic::AtomicU64,
    /// Flows fetched and stored (or settled otherwise) so far.
    pub handled: std::sync::atomic::AtomicU64,
}

/// Runs one export with an authenticated `client` into `sink` until it ends or `stop` fires.
pub async fn run(
    client: Arc<GenesysClient>,
    mut sink: Box<dyn Sink>,
    options: ExportOptions,
    stop: StopSignal,
) -> ExportReport {
    let span = info_span!("run", run_id = %options.run_id);
    let started_at = manifest::now_rfc3339();
    let views = options.kinds.flows.then(|| {
        let _g = span.enter();
        unseen::start(client.clone(), options.type_filter.clone())
    });
    let (base, since_note) = base::open(options.since.as_ref(), options.organization.as_ref(), sink.can_copy())
        .instrument(span.clone())
        .await;
    let base = base.map(Arc::new);
    let collected = if options.kinds.flows {
        collect::collect(client.clone(), &mut *sink, &options, base.clone(), &stop)
            .instrument(span.clone())
            .await
    } else {
        collect::Collected::nothing()
    };
    if let Some(b) = &base {
        span.in_scope(|| b.log_summary());
    }
    let (mut rows, mut error) = (collected.rows, collected.error);
    if base.is_some() && error.is_none() && stop.cause().is_none() {
        confirm_carried(&client, &mut rows, &collected.listing)
            .instrument(span.clone())
            .await;
    }
    let (unseen, yaml_jobs) = yaml_and_unseen(&client, &mut *sink, &mut rows, &options, views, &stop, &mut error)
        .instrument(span.clone())
        .await;
    let phase = objects_phase(
        &client,
        &mut *sink,
        &mut rows,
        &options,
        base.as_deref(),
        &stop,
        &mut error,
    )
    .instrument(span.clone())
    .await;
    // Every phase's writes settle here, before the manifest is built from the rows.
    let limit = Limit::new(&stop, options.shutdown_grace, sink.location());
    if let Err(e) = limit.bounded(rows.settle_writes(&mut *sink)).await {
        error = error.or(Some(RunError::Settle(e)));
    }
    let (totals, mut stored_bytes) = rows.tally();
    let objects = rows.objects_sorted();
    let ending = decide(error, stop.cause(), &collected.listing, &totals);
    let (ending, mut architect) = with_objects(ending, phase.as_ref(), &rows, &options.kinds, &objects);
    span.in_scope(|| dependencies::seal(&mut rows, &options.kinds, architect.as_mut(), &objects));
    let mut m = Manifest {
        listing: listing_record(&collected.listing, &options.type_filter),
        totals,
        unseen,
        since_note,
        yaml_jobs,
        architect,
        objects,
        ..head(&options, &client, started_at, base.as_deref())
    };
    let (ending, manifest_written) = seal(&mut *sink, &mut m, &mut rows, ending, &mut stored_bytes, &limit)
        .instrument(span.clone())
        .await;
    span.in_scope(|| log_end(&m, &sink.location()));
    ExportReport {
        manifest: m,
        stored_bytes,
        location: sink.location(),
        ending,
        requests: RequestCounts::of(&client),
        manifest_written,
    }
}

fn log_end(m: &Manifest, location: &str) {
    info!(
        listed = m.totals.listed,
        exported = m.totals.exported,
        not_found = m.totals.not_found,
        failed = m.totals.failed,
        skipped = m.totals.skipped,
        complete = m.complete,
        "run finished at {location}"
    );
}

/// Carried flows the final listing did not serve are fetched to confirm, as a full run would
/// have fetched them: one that answers 404 was deleted during the run and is `not_found` (its
/// carried copy stays named in the row, since the archive holds it; restore skips such rows).
async fn confirm_carried(client: &GenesysClient, rows: &mut RowLog, listing: &ListingReport) {
    let finished = listing
        .passes
        .last()
        .is_some_and(|p| p.phase == crate::genesys::flows::Phase::Final);
    let Some(last) = listing.last_pass_ids.as_ref().filter(|_| finished) else {
        return;
    };
    let unlisted: Vec<(usize, String)> = rows
        .iter()
        .filter(|(_, r)| {
            r.outcome == manifest::Outcome::Exported
                && r.source == Some(manifest::Source::Carried)
                && !last.contains(&r.id)
        })
        .map(|(i, r)| (i, r.id))
        .collect();
    for (index, id) in unlisted {
        match client.latest_configuration(&id).await {
            Err(crate::genesys::ApiError::NotFound { .. }) => {
                info!(
                    "flow {id} was carried over, but the final listing no longer has it and it answers 404: recording it as not_found"
                );
                rows.update(index, |r| {
                    r.outcome = manifest::Outcome::NotFound;
                    r.error = Some("deleted during the run: not in the final listing, and 404 when fetched to confirm; the carried copy is kept".into());
                });
            }
            Ok(_) => info!("flow {id} is missing from the final listing but still exists; it stays carried"),
            Err(e) => {
                warn!("flow {id} is missing from the final listing and could not be confirmed ({e}); it stays carried")
            }
        }
    }
}

/// Cuts destination operations off once a stop's grace period is over and the store has stopped
/// answering, so a frozen store cannot hold a stopped run.
struct Limit<'a> {
    stop: &'a StopSignal,
    grace: Duration,
    location: String,
}

impl<'a> Limit<'a> {
    fn new(stop: &'a StopSignal, grace: Duration, location: String) -> Self {
        Limit { stop, grace, location }
    }

    /// Runs `op`, cut once the stop's grace period is over and the store has stopped answering
    /// (a store that keeps answering is waited for, so what was fetched is sealed).
    async fn bounded<T>(&self, op: impl std::future::Future<Output = Result<T, SinkError>>) -> Result<T, SinkError> {
        tokio::select! {
            done = op => done,
            _ = self.stop.store_given_up(self.grace) => Err(SinkError::Store {
                message: format!(
                    "{} stopped answering: nothing for {}s after the stop's grace period",
                    self.location,
                    stop::STORE_SILENCE.as_secs()
                ),
                retryable: true,
            }),
        }
    }
}

/// The manifest's fields known from the run's settings (rows come from the row log at sealing).
fn head(options: &ExportOptions, client: &GenesysClient, started_at: String, base: Option<&base::Base>) -> Manifest {
    let last_full_run = match base {
        Some(b) => b.last_full.clone(),
        None => manifest::RunRef {
            run_id: options.run_id.clone(),
            started_at: started_at.clone(),
        },
    };
    Manifest {
        schema: manifest::SCHEMA.into(),
        run_id: options.run_id.clone(),
        tool: Tool::default(),
        started_at,
        finished_at: String::new(),
        region: options.region.clone(),
        api_url: client.api_url().to_string(),
        format: options.format.to_string(),
        organization: options.organization.as_ref().map(Into::into),
        content: options.content.as_str().into(),
        yaml: options.yaml.is_some(),
        destination: options.destination.clone(),
        archive: (options.format == Format::TarGz).then(|| ARCHIVE_NAME.to_string()),
        complete: false,
        incomplete_reason: None,
        listing: Listing::default(),
        totals: Default::default(),
        unseen: None,
        since: base.map(|b| b.run_id.clone()),
        since_note: None,
        last_full_run: Some(last_full_run),
        yaml_jobs: None,
        architect: None,
        flows: Vec::new(),
        objects: Vec::new(),
    }
}

/// The YAML phase (with `--yaml`) and the divisionviews comparison, when the flows' phase left
/// the run able to go on; a YAML phase's fatal error becomes the run's.
async fn yaml_and_unseen(
    client: &GenesysClient,
    sink: &mut dyn Sink,
    rows: &mut RowLog,
    options: &ExportOptions,
    views: Option<unseen::ViewTask>,
    stop: &StopSignal,
    error: &mut Option<RunError>,
) -> (Option<manifest::Unseen>, Option<manifest::YamlJobs>) {
    let (mut unseen, mut yaml_jobs) = (None, None);
    if error.is_some() || stop.cause().is_some() {
        if let Some(views) = views {
            views.abort();
        }
        return (unseen, yaml_jobs);
    }
    if let Some(yaml_options) = &options.yaml {
        match yaml::export_yaml(client, sink, rows, yaml_options, stop).await {
            Ok(jobs) => yaml_jobs = Some(jobs),
            Err(e) => *error = Some(e),
        }
    }
    if let Some(views) = views {
        let listed = rows.ids().cloned().collect();
        unseen = Some(unseen::finish(views, listed).await);
    }
    (unseen, yaml_jobs)
}

/// The Architect phase, when kinds were asked for and the flows' phase left the run able to
/// go on; its fatal error (credentials, destination) becomes the run's.
async fn objects_phase(
    client: &GenesysClient,
    sink: &mut dyn Sink,
    rows: &mut RowLog,
    options: &ExportOptions,
    base: Option<&base::Base>,
    stop: &StopSignal,
    error: &mut Option<RunError>,
) -> Option<architect::Phase> {
    if options.kinds.kinds.is_empty() || error.is_some() {
        return None;
    }
    let phase_options = architect::PhaseOptions {
        selection: &options.kinds,
        page_size: options.page_size,
        concurrency: options.concurrency,
    };
    match architect::export_objects(client, sink, rows, &phase_options, base, stop).await {
        Ok(phase) => Some(phase),
        Err(e) => {
            *error = Some(e);
            None
        }
    }
}

/// The run's ending given its Architect phase too, and the manifest's `architect` section
/// (present when any Architect kind was asked for).
fn with_objects(
    ending: Ending,
    phase: Option<&architect::Phase>,
    rows: &RowLog,
    selection: &crate::architect::KindSelection,
    objects: &[manifest::ObjectRecord],
) -> (Ending, Option<manifest::ArchitectSection>) {
    let ending = if ending.is_complete() {
        decide_objects(phase, rows)
    } else {
        ending
    };
    let section = (!selection.kinds.is_empty()).then(|| match phase {
        Some(p) => p.section(objects),
        None => not_read(selection),
    });
    (ending, section)
}

/// How a run whose flows are all in ends, given its Architect phase: incomplete when a kind
/// named explicitly could not be read, a kind's listing failed, or an object was not exported.
fn decide_objects(phase: Option<&architect::Phase>, rows: &RowLog) -> Ending {
    let mut reasons: Vec<String> = phase.map(|p| p.incomplete.clone()).unwrap_or_default();
    let missing = rows.objects_not_exported();
    if missing > 0 {
        reasons.push(format!(
            "{missing} Architect objects were not exported; see the objects with outcome `failed` or `skipped`"
        ));
    }
    if reasons.is_empty() {
        Ending::Complete
    } else {
        Ending::Incomplete(reasons.join("; "))
    }
}

/// The `architect` section of a run that ended before its Architect phase.
fn not_read(selection: &crate::architect::KindSelection) -> manifest::ArchitectSection {
    manifest::ArchitectSection {
        kinds: selection
            .ordered()
            .into_iter()
            .map(|k| manifest::KindReport {
                kind: k.as_str().to_string(),
                checked: false,
                note: Some("not read: the run ended before its Architect phase".into()),
                ..Default::default()
            })
            .collect(),
    }
}

/// How the run ended, from what went wrong (first), a stop, the listing's proof and the rows.
fn decide(error: Option<RunError>, stop: Option<StopCause>, listing: &ListingReport, totals: &Totals) -> Ending {
    if let Some(e) = error {
        return Ending::Fatal(e);
    }
    if let Some(cause) = stop {
        return Ending::Stopped(cause);
    }
    if let Some(why) = &listing.unverified {
        return Ending::Incomplete(format!("the listing could not be verified: {why}"));
    }
    if totals.failed == 0 && totals.skipped == 0 {
        Ending::Complete
    } else {
        Ending::Incomplete("some flows were not exported; see the rows with outcome `failed` or `skipped`".into())
    }
}

fn listing_record(report: &ListingReport, type_filter: &[String]) -> Listing {
    Listing {
        api_total: report.passes.last().and_then(|p| p.api_total),
        listed: report.listed,
        pages: report.passes.iter().map(|p| p.pages).sum(),
        type_filter: type_filter.to_vec(),
        discrepancy: report.unverified.clone(),
        malformed: report.malformed,
        passes: report.passes.iter().map(Into::into).collect(),
    }
}

/// Writes the manifest (whose totals are the rows') as `ending` says, sealing the archive with
/// what was stored. When the destination broke (or breaks now), the partial archive is discarded,
/// its rows say so, and the totals and `stored` bytes are counted again. Also says whether the
/// manifest was written.
async fn seal(
    sink: &mut dyn Sink,
    m: &mut Manifest,
    rows: &mut RowLog,
    ending: Ending,
    stored: &mut u64,
    limit: &Limit<'_>,
) -> (Ending, bool) {
    let broken = matches!(&ending, Ending::Fatal(e) if e.is_destination_failure());
    if broken {
        let written;
        (*stored, written) = discard(sink, m, rows, &ending, limit).await;
        return (ending, written);
    }
    m.complete = ending.is_complete();
    m.incomplete_reason = ending.reason();
    m.finished_at = manifest::now_rfc3339();
    let sealed = match spool(m, rows) {
        Ok(spooled) => limit.bounded(sink.finish(&spooled)).await,
        Err(e) => Err(e),
    };
    match sealed {
        Ok(()) => (ending, true),
        Err(e) => {
            let ending = Ending::Fatal(RunError::Seal(e));
            error!("{}", ending.reason().unwrap_or_default());
            let written;
            (*stored, written) = discard(sink, m, rows, &ending, limit).await;
            (ending, written)
        }
    }
}

/// The manifest with its rows, written to a temporary file one row at a time.
fn spool(m: &Manifest, rows: &RowLog) -> Result<Spooled, SinkError> {
    Spooled::write(|out| manifest::write_streamed(m, rows.sorted(), out)).map_err(|source| SinkError::Io {
        action: "write the manifest to a temporary file in",
        path: std::env::temp_dir(),
        source,
    })
}

/// Aborts the sink and writes an incomplete manifest that claims nothing the destination lost;
/// returns the bytes of the documents still stored and whether the manifest was written.
async fn discard(
    sink: &mut dyn Sink,
    m: &mut Manifest,
    rows: &mut RowLog,
    ending: &Ending,
    limit: &Limit<'_>,
) -> (u64, bool) {
    let why = ending.reason().unwrap_or_default();
    m.complete = false;
    m.incomplete_reason = Some(why.clone());
    m.finished_at = manifest::now_rfc3339();
    if !sink.keeps_documents_on_abort() {
        m.archive = None;
        rows.discard_objects(&why);
        m.objects = rows.objects_sorted();
        let stored: Vec<usize> = rows
            .iter()
            .filter(|(_, r)| !r.documents.is_empty())
            .map(|(i, _)| i)
            .collect();
        for index in stored {
            rows.update(index, |row| {
                let attempts = row.attempts;
                row.documents.clear();
                row.failed(
                    format!("fetched, but the archive was discarded because the destination failed: {why}"),
                    attempts,
                );
            });
        }
    }
    let (totals, stored) = rows.tally();
    m.totals = totals;
    let aborted = match spool(m, rows) {
        Ok(spooled) => limit.bounded(sink.abort(&spooled)).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &aborted {
        warn!("could not write the incomplete manifest either: {e}");
    }
    (stored, aborted.is_ok())
}
