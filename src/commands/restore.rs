//! `flowvault restore RUN`: plans putting archived flows back into an org and, with `--apply`,
//! does it. Exit 0 when everything planned was done (or for a plan), 3 when a flow failed or is
//! in conflict, 1 fatal, 2 usage.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

use super::verify::latest_of;
use super::{CommandError, Outcome, exit};
use crate::architect::{ArchitectKind, KindSelection};
use crate::archive;
use crate::cli::{OutputFormat, RestoreArgs, RestoreContent};
use crate::export::{StopCause, StopSignal};
use crate::restore::architect::ArchitectOptions;
use crate::restore::{self, ContentChoice, FlowOutcome, RestoreError, RestoreOptions, RestoreReport, Selection};
use crate::settings::{ConnectionSettings, parse_duration, process_env, read_options};
use crate::sink::Destination;

/// `--kinds`: whether flows are named, and which Architect kinds (`None`: not given).
fn parse_kinds(spec: Option<&str>) -> Result<Option<(bool, BTreeSet<ArchitectKind>)>, String> {
    let Some(spec) = spec else { return Ok(None) };
    let selection = KindSelection::parse(spec).map_err(|e| e.to_string())?;
    Ok(Some((selection.flows, selection.kinds)))
}

fn options(args: &RestoreArgs) -> Result<RestoreOptions, String> {
    let mut selection = Selection {
        ids: args.flows.clone(),
        name_glob: args.name.clone(),
        types: args.types.clone(),
        all: args.all,
    };
    let kinds = parse_kinds(args.kinds.as_deref())?;
    match &kinds {
        Some((false, _)) if !selection.is_empty() => {
            return Err(
                "--flow, --name, --type and --all choose flows, but --kinds does not name flows; add flows to --kinds"
                    .into(),
            );
        }
        Some((true, _)) if selection.is_empty() => selection.all = true,
        // Neither kinds nor flows named: everything the archive holds (see `default_kinds`).
        None if selection.is_empty() => selection.all = true,
        _ => {}
    }
    let (flows, architect_kinds) = kinds.unwrap_or((true, BTreeSet::new()));
    Ok(RestoreOptions {
        selection,
        content: match args.content {
            RestoreContent::Published => ContentChoice::Published,
            RestoreContent::Latest => ContentChoice::Latest,
            RestoreContent::Both => ContentChoice::Both,
        },
        publish: args.publish,
        force_unlock: args.force_unlock,
        to_other_org: args.to_other_org,
        operation_timeout: parse_duration(&args.operation_timeout, "--operation-timeout").map_err(|e| e.to_string())?,
        concurrency: 1,
        flows,
        architect: ArchitectOptions {
            kinds: architect_kinds,
            prune_rows: args.prune_rows,
            transcode_polls: args.transcode_polls,
        },
    })
}

/// Without `--kinds` and without a flow selector: every Architect kind the archive holds, besides
/// every flow. A flow selector alone keeps the restore to flows.
fn default_kinds(args: &RestoreArgs, manifest: &crate::manifest::Manifest, options: &mut RestoreOptions) {
    let selector = !args.flows.is_empty() || args.name.is_some() || !args.types.is_empty() || args.all;
    if args.kinds.is_none() && !selector {
        options.architect.kinds = manifest
            .objects
            .iter()
            .filter_map(|r| ArchitectKind::from_name(&r.kind))
            .collect();
    }
}

/// The exit code of a restore that could not be planned.
fn plan_failure(e: RestoreError) -> CommandError {
    let code = match &e {
        RestoreError::OtherOrg { .. }
        | RestoreError::NothingSelected
        | RestoreError::NoSuchFlow(_)
        | RestoreError::NoObjects(_)
        | RestoreError::OrgUnknown { .. } => exit::USAGE,
        RestoreError::Unverified { .. } => exit::INCOMPLETE,
        _ => exit::FATAL,
    };
    CommandError::new(code, e)
}

/// Plans (and with `--apply` runs) the restore; the exit code says how it went.
pub async fn run(args: &RestoreArgs) -> Outcome {
    let (options, connection, store) = match (
        options(args),
        ConnectionSettings::resolve(&args.settings.flags, &process_env).map_err(|e| e.to_string()),
        read_options(&args.settings.flags, &process_env).map_err(|e| e.to_string()),
    ) {
        (Ok(o), Ok(c), Ok(s)) => (
            RestoreOptions {
                concurrency: c.client.concurrency.max(1),
                ..o
            },
            c,
            s,
        ),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Err(CommandError::usage(e)),
    };
    let stop = StopSignal::default();
    watch_signals(&stop);
    let run = archive::locate(&args.run.run, latest_of(&args.run), &store)
        .await
        .map_err(|e| CommandError::read(&e))?;
    let manifest = run.manifest().await.map_err(|e| CommandError::read(&e))?;
    let mut options = options;
    default_kinds(args, &manifest, &mut options);
    let client = super::connect(connection.client).await.map_err(CommandError::fatal)?;
    let mut report = restore::plan_all(&client, &run, &manifest, &options)
        .await
        .map_err(plan_failure)?;
    let json = args.json || args.output == Some(OutputFormat::Json);
    if !json {
        print_plan(&report, args.apply);
    }
    let mut fatal = None;
    if args.apply
        && let Err(e) = restore::apply_all(&client, &mut report, &options, &stop).await
    {
        fatal = Some(e);
    }
    let written = write_report(args, &run.location, &run.run_id, &report);
    if json {
        if let Err(e) = super::print_json(&report) {
            eprintln!("flowvault restore: could not print the report: {e}");
        }
    } else if args.apply {
        print_outcomes(&report);
    }
    if let Some(e) = fatal {
        return Err(CommandError::fatal(e));
    }
    Ok(super::status(
        match (stop.cause(), args.apply, report.all_good() && written) {
            (Some(StopCause::Signal(2)), true, _) => exit::SIGINT,
            (Some(StopCause::Signal(n)), true, _) => 128 + n,
            (_, false, _) => exit::COMPLETE,
            (_, true, true) => exit::COMPLETE,
            _ => exit::INCOMPLETE,
        },
    ))
}

/// Turns SIGINT and SIGTERM into a stop: the flow in hand is finished or its lock given back,
/// and the report is still written.
fn watch_signals(stop: &StopSignal) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        for (kind, n) in [(SignalKind::interrupt(), 2), (SignalKind::terminate(), 15)] {
            if let Ok(mut s) = signal(kind) {
                let stop = stop.clone();
                tokio::spawn(async move {
                    if s.recv().await.is_some() {
                        eprintln!("flowvault restore: signal {n}: finishing the flow in hand, then writing the report");
                        stop.stop(StopCause::Signal(n));
                    }
                });
            }
        }
    }
}

/// Writes the report; true when it was written.
fn write_report(args: &RestoreArgs, location: &str, run_id: &str, report: &RestoreReport) -> bool {
    let path = report_path(args, location, run_id);
    let written = serde_json::to_vec_pretty(report)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&path, bytes));
    match &written {
        Ok(()) => eprintln!("flowvault restore: report written to {}", path.display()),
        Err(e) => eprintln!(
            "flowvault restore: could not write the report to {}: {e}",
            path.display()
        ),
    }
    written.is_ok()
}

/// `--report`, or beside a local run (`DEST/RUN-restore-STAMP.json`), or the current directory.
fn report_path(args: &RestoreArgs, location: &str, run_id: &str) -> PathBuf {
    if let Some(p) = &args.report {
        return p.clone();
    }
    let stamp = crate::manifest::default_run_id();
    let name = format!("{run_id}-restore-{stamp}.json");
    match Destination::parse(location).ok().as_ref().and_then(|d| d.local_dir()) {
        Some(run_dir) => run_dir
            .parent()
            .map(|p| p.join(&name))
            .unwrap_or_else(|| PathBuf::from(&name)),
        None => PathBuf::from(format!("flowvault-{name}")),
    }
}

fn org_line(report: &RestoreReport) -> String {
    let describe =
        |o: &Option<crate::genesys::Organization>| o.as_ref().map(|o| o.describe()).unwrap_or_else(|| "unknown".into());
    format!(
        "target org {} (archive from org {})",
        describe(&report.target_org),
        describe(&report.archive_org)
    )
}

/// Prints `text` on stdout; a closed stdout is said on stderr.
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        eprintln!("flowvault restore: could not print to stdout: {e}");
    }
}

fn print_plan(report: &RestoreReport, apply: bool) {
    let mut text = format!("restore plan for {}: {}\n", report.run, org_line(report));
    text.push_str(&object_plan(report, false));
    for f in &report.flows {
        text.push_str(&format!(
            "{:<9} {} {} {:?} [{} {}]{}\n",
            f.action.as_str(),
            f.id,
            f.flow_type,
            f.name,
            f.content.as_str(),
            f.archived_version.as_deref().unwrap_or("-"),
            f.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
        ));
        if let Some(drift) = &f.drift {
            text.push_str(&format!("          drift: {drift}\n"));
        }
        for d in &f.dependencies {
            text.push_str(&format!("          needs {d}\n"));
        }
        for p in &f.repointed {
            text.push_str(&format!("          re-point {}\n", p.describe()));
        }
    }
    text.push_str(&object_plan(report, true));
    if let Some(expected) = &report.expected {
        text.push_str(&format!("{expected}\n"));
    }
    if !apply {
        text.push_str("nothing was written; run again with --apply (and --publish to publish) to restore\n");
    }
    emit(&text);
}

fn print_outcomes(report: &RestoreReport) {
    let mut text = String::new();
    for f in report.flows.iter().filter(|f| f.outcome != FlowOutcome::Unchanged) {
        text.push_str(&format!(
            "{:<13} {} {:?}{}{}\n",
            f.outcome.as_str(),
            f.id,
            f.name,
            f.new_id
                .as_deref()
                .map(|n| format!(" → new id {n}"))
                .unwrap_or_default(),
            f.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        ));
        for p in f.repointed.iter().filter(|p| p.places > 0) {
            text.push_str(&format!("              re-pointed {}\n", p.describe()));
        }
        for note in &f.notes {
            text.push_str(&format!("              {note}\n"));
        }
    }
    text.push_str(&object_outcomes(report));
    if let Some(why) = &report.interrupted {
        text.push_str(&format!(
            "interrupted ({why}): flows after the one in hand were not attempted\n"
        ));
    }
    text.push_str(&format!(
        "restored: {} done, {} unchanged, {} failed, {} in conflict, {} refused, {} not attempted\n",
        report.count(FlowOutcome::Done),
        report.count(FlowOutcome::Unchanged),
        report.count(FlowOutcome::Failed),
        report.count(FlowOutcome::Conflict),
        report.count(FlowOutcome::Refused),
        report.count(FlowOutcome::NotAttempted)
    ));
    emit(&text);
}

/// One plan line per Architect object written before the flows (or, `after_flows`, after them:
/// IVRs and emergency groups): `ACTION KIND ID "NAME": reason`, then what differs and what is
/// re-pointed.
fn object_plan(report: &RestoreReport, after_flows: bool) -> String {
    let mut text = String::new();
    let after = |k: ArchitectKind| matches!(k, ArchitectKind::Ivrs | ArchitectKind::EmergencyGroups);
    for o in report.objects.iter().filter(|o| after(o.kind) == after_flows) {
        text.push_str(&format!(
            "{:<9} {} {} {:?}{}\n",
            o.action.as_str(),
            o.kind.as_str(),
            o.id,
            o.name,
            o.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
        ));
        for c in &o.changes {
            text.push_str(&format!("          {c}\n"));
        }
        for p in &o.repointed {
            text.push_str(&format!("          re-point {p}\n"));
        }
    }
    text
}

/// What happened to each Architect object that was not unchanged, and the counts.
fn object_outcomes(report: &RestoreReport) -> String {
    if report.objects.is_empty() {
        return String::new();
    }
    let mut text = String::new();
    for o in report.objects.iter().filter(|o| o.outcome != FlowOutcome::Unchanged) {
        text.push_str(&format!(
            "{:<13} {} {} {:?}{}{}\n",
            o.outcome.as_str(),
            o.kind.as_str(),
            o.id,
            o.name,
            o.new_id
                .as_deref()
                .map(|n| format!(" → new id {n}"))
                .unwrap_or_default(),
            o.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        ));
        for note in &o.notes {
            text.push_str(&format!("              {note}\n"));
        }
    }
    let count = |x: FlowOutcome| report.objects.iter().filter(|o| o.outcome == x).count();
    text.push_str(&format!(
        "objects: {} done, {} unchanged, {} failed, {} in conflict, {} refused, {} not attempted\n",
        count(FlowOutcome::Done),
        count(FlowOutcome::Unchanged),
        count(FlowOutcome::Failed),
        count(FlowOutcome::Conflict),
        count(FlowOutcome::Refused),
        count(FlowOutcome::NotAttempted)
    ));
    text
}
