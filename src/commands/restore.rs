//! `flowvault restore RUN`: plans putting archived flows back into an org and, with `--apply`,
//! does it. Exit 0 when everything planned was done (or for a plan), 3 when a flow failed or is
//! in conflict, 1 fatal, 2 usage.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use super::exit;
use super::verify::latest_of;
use crate::archive;
use crate::cli::RestoreArgs;
use crate::genesys::GenesysClient;
use crate::manifest::Content;
use crate::restore::{self, RestoreError, RestoreOptions, RestoreReport, Selection};
use crate::settings::{ConnectionSettings, parse_duration, process_env, read_options};
use crate::sink::Destination;

fn options(args: &RestoreArgs) -> Result<RestoreOptions, String> {
    let selection = Selection {
        ids: args.flows.clone(),
        name_glob: args.name.clone(),
        types: args.types.clone(),
        all: args.all,
    };
    if selection.is_empty() {
        return Err("choose the flows to restore: --flow ID, --name GLOB, --type TYPE or --all".into());
    }
    Ok(RestoreOptions {
        selection,
        content: (args.content.as_deref() == Some("latest")).then_some(Content::Latest),
        publish: args.publish,
        force_unlock: args.force_unlock,
        to_other_org: args.to_other_org,
        operation_timeout: parse_duration(&args.operation_timeout, "--operation-timeout").map_err(|e| e.to_string())?,
    })
}

/// Plans (and with `--apply` runs) the restore; the exit code.
pub async fn run(args: &RestoreArgs) -> i32 {
    let (options, connection, store) = match (
        options(args),
        ConnectionSettings::resolve(&args.settings.flags, &process_env).map_err(|e| e.to_string()),
        read_options(&args.settings.flags, &process_env).map_err(|e| e.to_string()),
    ) {
        (Ok(o), Ok(c), Ok(s)) => (o, c, s),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return super::fail("restore", e, exit::USAGE),
    };
    let run = match archive::locate(&args.run.run, latest_of(&args.run), &store).await {
        Ok(r) => r,
        Err(e) => return super::fail_read("restore", &e),
    };
    let manifest = match run.manifest().await {
        Ok(m) => m,
        Err(e) => return super::fail_read("restore", &e),
    };
    let client = match GenesysClient::connect(connection.client) {
        Ok(c) => Arc::new(c),
        Err(e) => return super::fail("restore", e, exit::FATAL),
    };
    if let Err(e) = client.authenticate().await {
        return super::fail("restore", e, exit::FATAL);
    }
    let mut report = match restore::plan(&client, &run, &manifest, &options).await {
        Ok(r) => r,
        Err(e @ (RestoreError::OtherOrg { .. } | RestoreError::NothingSelected)) => {
            return super::fail("restore", e, exit::USAGE);
        }
        Err(e) => return super::fail("restore", e, exit::FATAL),
    };
    let json = args.output == "json";
    if !json {
        print_plan(&report, args.apply);
    }
    let mut fatal = None;
    if args.apply
        && let Err(e) = restore::apply(&client, &mut report, &options).await
    {
        fatal = Some(e);
    }
    let path = report_path(args, &run.location, &run.run_id);
    let written = std::fs::write(&path, serde_json::to_vec_pretty(&report).unwrap_or_default());
    if json {
        let _ = super::print_json(&report);
    } else if args.apply {
        print_outcomes(&report);
    }
    match &written {
        Ok(()) => eprintln!("flowvault restore: report written to {}", path.display()),
        Err(e) => eprintln!(
            "flowvault restore: could not write the report to {}: {e}",
            path.display()
        ),
    }
    if let Some(e) = fatal {
        return super::fail("restore", e, exit::FATAL);
    }
    match (args.apply, report.all_good()) {
        (false, _) => exit::COMPLETE,
        (true, true) if written.is_ok() => exit::COMPLETE,
        _ => exit::INCOMPLETE,
    }
}

/// `--report`, or beside a local run (`DEST/RUN-restore-STAMP.json`), or the current directory.
fn report_path(args: &RestoreArgs, location: &str, run_id: &str) -> PathBuf {
    if let Some(p) = &args.report {
        return p.clone();
    }
    let stamp = crate::manifest::default_run_id();
    let name = format!("{run_id}-restore-{stamp}.json");
    match Destination::parse(location) {
        Ok(Destination::Local(run_dir)) => run_dir
            .parent()
            .map(|p| p.join(&name))
            .unwrap_or_else(|| PathBuf::from(&name)),
        _ => PathBuf::from(format!("flowvault-{name}")),
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

fn print_plan(report: &RestoreReport, apply: bool) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "restore plan for {}: {}", report.run, org_line(report));
    for f in &report.flows {
        let _ = writeln!(
            out,
            "{:<9} {} {} {:?} [{} {}]{}",
            f.action.as_str(),
            f.id,
            f.flow_type,
            f.name,
            f.content.as_str(),
            f.archived_version.as_deref().unwrap_or("-"),
            f.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
        );
        for d in &f.dependencies {
            let _ = writeln!(out, "          needs {d}");
        }
    }
    if !apply {
        let _ = writeln!(
            out,
            "nothing was written; run again with --apply (and --publish to publish) to restore"
        );
    }
}

fn print_outcomes(report: &RestoreReport) {
    let mut out = std::io::stdout().lock();
    for f in report.flows.iter().filter(|f| f.outcome != "unchanged") {
        let _ = writeln!(
            out,
            "{:<9} {} {:?}{}{}",
            f.outcome,
            f.id,
            f.name,
            f.new_id
                .as_deref()
                .map(|n| format!(" → new id {n}"))
                .unwrap_or_default(),
            f.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    let count = |o: &str| report.flows.iter().filter(|f| f.outcome == o).count();
    let _ = writeln!(
        out,
        "restored: {} done, {} unchanged, {} failed, {} in conflict",
        count("done"),
        count("unchanged"),
        count("failed"),
        count("conflict")
    );
}
