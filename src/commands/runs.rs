//! `flowvault runs DEST`: the runs in a destination, newest first.

use std::io::Write;

use std::process::ExitCode;

use super::{CommandError, Outcome};
use crate::archive::{self, RunSummary};
use crate::cli::RunsArgs;
use crate::settings::{process_env, read_options};
use crate::sink::{Destination, open_store};

/// Lists the runs.
pub async fn run(args: &RunsArgs) -> Outcome {
    let options = read_options(&args.store.flags, &process_env).map_err(CommandError::usage)?;
    let destination = Destination::parse(&args.destination).map_err(|e| CommandError::read(&e.into()))?;
    let reader = open_store(&destination, &options)
        .await
        .map_err(|e| CommandError::read(&e.into()))?;
    let runs = archive::list_runs(&reader).await.map_err(|e| CommandError::read(&e))?;
    if args.json {
        super::print_json(&runs)?;
    } else {
        print_table(&mut std::io::stdout().lock(), &runs)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(out: &mut impl Write, runs: &[RunSummary]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<24} {:<20} {:<20} {:<8} {:<10} {:>7} {:>8} {:>9} {:>6} {:>7} {:>10}",
        "RUN",
        "STARTED",
        "FINISHED",
        "FORMAT",
        "STATUS",
        "LISTED",
        "EXPORTED",
        "NOT_FOUND",
        "FAILED",
        "SKIPPED",
        "SIZE"
    )?;
    for r in runs {
        let status = match r.complete {
            Some(true) => "complete",
            Some(false) => "INCOMPLETE",
            None => "UNREADABLE",
        };
        let t = r.totals.clone().unwrap_or_default();
        writeln!(
            out,
            "{:<24} {:<20} {:<20} {:<8} {:<10} {:>7} {:>8} {:>9} {:>6} {:>7} {:>10}",
            r.run_id,
            r.started_at.as_deref().unwrap_or("-"),
            r.finished_at.as_deref().unwrap_or("-"),
            r.format.as_deref().unwrap_or("-"),
            status,
            t.listed,
            t.exported,
            t.not_found,
            t.failed,
            t.skipped,
            human_bytes(r.bytes)
        )?;
        if let Some(p) = &r.problem {
            writeln!(out, "  {}: {p}", r.run_id)?;
        }
    }
    if runs.is_empty() {
        writeln!(out, "(no runs)")?;
    }
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
