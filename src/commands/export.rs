//! `flowvault export`: check the destination, authenticate (the one place a run does), then run
//! the pipeline.

use std::sync::Arc;

use tracing::{info, warn};

use std::io::Write;

use super::{CommandError, Outcome, exit};
use crate::export::{self, Ending, ExportOptions, ExportReport, Progress, StopSignal};
use crate::genesys::{ApiError, GenesysClient, Organization};
use crate::metrics;
use crate::settings::ExportSettings;
use crate::sink::{self, SinkError};

/// A failure before the pipeline could start; nothing of the run was written.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The destination failed its check.
    #[error("destination check failed: {0}")]
    Destination(#[from] SinkError),
    /// Authentication failed, or the HTTP client could not be built.
    #[error(transparent)]
    Auth(#[from] ApiError),
    /// The credentials belong to another org than `--expect-org` names.
    #[error(
        "wrong org: the credentials belong to org {found}, but --expect-org / FLOWVAULT_EXPECT_ORG says `{expected}`; \
         fix the secret or the expected org (nothing was listed or written)"
    )]
    WrongOrg { expected: String, found: String },
    /// `--expect-org` is set but the org could not be read.
    #[error("cannot check --expect-org `{expected}`: reading /api/v2/organizations/me failed: {source}")]
    OrgUnknown { expected: String, source: ApiError },
    /// `--since` names a run that does not exist (a usage error, not a silent full run).
    #[error("--since: {0}; give `latest`, a run id in --to, or a run's location (DEST/RUN, s3://bucket/prefix/RUN)")]
    Since(String),
}

impl StartError {
    /// The exit code: a usage error for a `--since` that names nothing, fatal otherwise.
    fn exit_code(&self) -> i32 {
        match self {
            StartError::Since(_) => exit::USAGE,
            _ => exit::FATAL,
        }
    }
}

/// Runs one export as a job: the run, its summary on stdout (text or JSON), its metrics; the exit
/// code. `show_progress` draws a progress bar on stderr.
pub async fn run_job(settings: &ExportSettings, stop: StopSignal, show_progress: bool) -> Outcome {
    let started = unix_now();
    let result = run_with_progress(settings, stop, show_progress).await;
    let code = match &result {
        Ok(report) => super::exit_code(&report.ending),
        Err(e) => e.exit_code(),
    };
    let printed = print_ending(&result, settings.reporting.json);
    publish_metrics(settings, result.as_ref().ok(), started, code).await;
    match (result, printed) {
        (Err(e), _) => Err(CommandError::new(code, e)),
        // The run ended as it did whoever reads its summary; a closed pipe changes nothing.
        (Ok(_), Ok(())) | (Ok(_), Err(CommandError::Closed)) => Ok(super::status(code)),
        (Ok(_), Err(e)) => Err(e),
    }
}

/// The summary of a run, or the JSON line of a run that could not start, on stdout.
fn print_ending(result: &Result<ExportReport, StartError>, json: bool) -> Result<(), CommandError> {
    let mut out = std::io::stdout().lock();
    match result {
        Ok(report) => summary(&mut out, report, json).map(drop)?,
        Err(e) if json => {
            let value = serde_json::json!({"status": "fatal", "exit_code": e.exit_code(), "error": e.to_string()});
            writeln!(out, "{value}")?;
        }
        Err(_) => {}
    }
    Ok(())
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Prints the end-of-run summary (text lines, or one JSON object) and picks the exit code.
pub fn summary(out: &mut impl Write, report: &ExportReport, json: bool) -> std::io::Result<i32> {
    let m = &report.manifest;
    let t = &m.totals;
    let code = super::exit_code(&report.ending);
    let archive = m.archive.as_ref().map(|a| format!("{}/{a}", report.location));
    // A manifest path is printed only when the manifest was written.
    let manifest = report
        .manifest_written
        .then(|| format!("{}/manifest.json", report.location));
    if let Ending::Fatal(reason) = &report.ending {
        eprintln!("flowvault: {reason}");
    }
    if json {
        let status = match (&report.ending, m.complete) {
            (Ending::Fatal(_), _) => "fatal",
            (_, true) => "complete",
            _ => "incomplete",
        };
        let value = serde_json::json!({
            "status": status,
            "complete": m.complete,
            "exit_code": code,
            "incomplete_reason": m.incomplete_reason,
            "run_id": m.run_id,
            "organization": m.organization,
            "since": m.since,
            "since_note": m.since_note,
            "totals": t,
            "location": report.location,
            "archive": archive,
            "flows": (m.format == "objects").then(|| format!("{}/flows/", report.location)),
            "manifest": manifest,
            "requests": report.requests.by_status.values().sum::<u64>(),
            "throttled": report.requests.throttled,
            "architect": m.architect,
        });
        writeln!(out, "{value}")?;
        return Ok(code);
    }
    writeln!(
        out,
        "{}: {} listed, {} exported, {} not found, {} failed, {} skipped{}",
        if m.complete { "complete" } else { "INCOMPLETE" },
        t.listed,
        t.exported,
        t.not_found,
        t.failed,
        t.skipped,
        m.incomplete_reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    )?;
    match (&m.since, &m.since_note) {
        (Some(since), _) => writeln!(
            out,
            "since:    {since}: {} unchanged flows carried over, {} fetched",
            t.carried,
            t.exported.saturating_sub(t.carried)
        )?,
        (None, Some(note)) => writeln!(out, "since:    every flow fetched: {note}")?,
        (None, None) => {}
    }
    write_kinds(out, m)?;
    if let Some(a) = archive {
        writeln!(out, "archive:  {a}")?;
    } else if m.format == "objects" {
        writeln!(out, "flows:    {}/flows/", report.location)?;
    }
    match &manifest {
        Some(path) => writeln!(out, "manifest: {path}")?,
        None => writeln!(out, "manifest: not written (see the error above)")?,
    }
    Ok(code)
}

/// One line per Architect kind: what was listed and stored, or why it was not read.
fn write_kinds(out: &mut impl Write, m: &crate::manifest::Manifest) -> std::io::Result<()> {
    for k in m.architect.iter().flat_map(|a| &a.kinds) {
        let label = format!("{}:", k.kind);
        match (&k.note, k.checked) {
            (Some(note), false) => writeln!(out, "{label:<16}{note}")?,
            _ => writeln!(
                out,
                "{label:<16}{} listed, {} exported ({} carried), {} failed",
                k.listed, k.exported, k.carried, k.failed
            )?,
        }
    }
    Ok(())
}

/// Pushes and/or writes the run's metrics, as configured; failures are logged, not fatal.
async fn publish_metrics(settings: &ExportSettings, report: Option<&ExportReport>, started: f64, code: i32) {
    let r = &settings.reporting;
    if r.pushgateway.is_none() && r.metrics_file.is_none() {
        return;
    }
    let figures = metrics::RunFigures {
        started,
        finished: unix_now(),
        complete: report.is_some_and(|x| x.manifest.complete),
        exit_code: code,
        totals: report.map(|x| x.manifest.totals.clone()).unwrap_or_default(),
        bytes_written: report.map(|x| x.stored_bytes).unwrap_or(0),
        requests: report.map(|x| x.requests.clone()).unwrap_or_default(),
        architect: report.and_then(|x| x.manifest.architect.clone()),
    };
    let org = report
        .and_then(|x| x.manifest.organization.as_ref())
        .map(|o| o.third_party_org_name.clone().unwrap_or_else(|| o.id.clone()))
        .or_else(|| settings.expect_org.clone())
        .unwrap_or_else(|| "unknown".into());
    if let Some(path) = &r.metrics_file {
        let rendered = metrics::render(&figures, metrics::previous_complete(path));
        match rendered.and_then(|text| metrics::write_textfile(path, &text)) {
            Ok(()) => info!(path = %path.display(), "metrics written"),
            Err(e) => warn!("{e}"),
        }
    }
    if let Some(url) = &r.pushgateway {
        match metrics::render(&figures, None) {
            Ok(text) => match metrics::push(url, &org, text).await {
                Ok(()) => info!(pushgateway = %url, "metrics pushed"),
                Err(e) => warn!("{e}"),
            },
            Err(e) => warn!("{e}"),
        }
    }
}

async fn run_with_progress(
    settings: &ExportSettings,
    stop: StopSignal,
    show_progress: bool,
) -> Result<ExportReport, StartError> {
    let progress = show_progress.then(|| Arc::new(Progress::default()));
    run(settings, stop, progress).await
}

/// Runs one export with `settings` until it ends or `stop` fires: destination check,
/// authentication, and only then the run's files or objects.
pub async fn run(
    settings: &ExportSettings,
    stop: StopSignal,
    progress: Option<Arc<Progress>>,
) -> Result<ExportReport, StartError> {
    let export_options = settings.export_options();
    if let Some(since) = &export_options.since {
        export::check_since(since).await.map_err(StartError::Since)?;
    }
    let mut sink = sink::open(&settings.destination, &settings.run_id, settings.format, &settings.s3).await?;
    let organization = match connect(settings).await {
        Ok(started) => started,
        Err(e) => {
            // Nothing of the run was written: a retry with the same run id can claim it.
            sink.release().await;
            return Err(e);
        }
    };
    let (client, organization) = organization;
    if let Some(org) = &organization {
        sink.set_org(&org.id);
    }
    info!(destination = %sink.location(), format = %settings.format, "destination is ready");
    if let Some(limit) = settings.max_duration {
        stop.stop_after(limit);
    }
    info!(
        api_url = %settings.client.api_url,
        concurrency = settings.client.concurrency,
        rate_limit_per_s = settings.client.rate_per_second.unwrap_or(0.0),
        "starting export run {}", settings.run_id
    );
    let options = ExportOptions {
        organization,
        progress: progress.clone(),
        ..export_options
    };
    let display = progress.map(|p| super::progress::start(p, client.clone()));
    let report = export::run(client, sink, options, stop).await;
    if let Some(d) = display {
        d.finish();
    }
    Ok(report)
}

/// Connects and authenticates (the one place a run does) and reads the org.
async fn connect(settings: &ExportSettings) -> Result<(Arc<GenesysClient>, Option<Organization>), StartError> {
    let client = Arc::new(GenesysClient::connect(settings.client.clone())?);
    client.authenticate().await?;
    let organization = identify(&client, settings.expect_org.as_deref()).await?;
    Ok((client, organization))
}

/// Reads the org the credentials belong to and checks it against `expected`. Without an
/// expectation, an org that cannot be read is a warning (the manifest then names no org).
pub(crate) async fn identify(
    client: &GenesysClient,
    expected: Option<&str>,
) -> Result<Option<Organization>, StartError> {
    match (client.organization().await, expected) {
        (Ok(org), Some(expected)) if !org.is(expected) => Err(StartError::WrongOrg {
            expected: expected.to_string(),
            found: org.describe(),
        }),
        (Ok(org), _) => {
            info!(org_id = %org.id, org = %org.describe(), "backing up org {}", org.describe());
            Ok(Some(org))
        }
        (Err(source), Some(expected)) => Err(StartError::OrgUnknown {
            expected: expected.to_string(),
            source,
        }),
        (Err(e), None) if e.is_fatal_for_run() => Err(StartError::Auth(e)),
        (Err(e), None) => {
            warn!("could not read the org's identity (the manifest will not name it): {e}");
            Ok(None)
        }
    }
}
