//! `flowvault runs DEST`: the runs in a destination, newest first.

use std::io::Write;

use super::exit;
use crate::archive::{self, RunSummary};
use crate::cli::RunsArgs;
use crate::settings::{process_env, read_options};
use crate::sink::Destination;
use crate::sink::reader::open_reader;

/// Lists the runs; the exit code.
pub async fn run(args: &RunsArgs) -> i32 {
    let options = match read_options(&args.store.flags, &process_env) {
        Ok(o) => o,
        Err(e) => return super::fail("runs", e, exit::USAGE),
    };
    let destination = match Destination::parse(&args.destination) {
        Ok(d) => d,
        Err(e) => return super::fail_read("runs", &e.into()),
    };
    let runs = match open_reader(&destination, &options).await {
        Ok(reader) => archive::list_runs(&reader).await,
        Err(e) => Err(e.into()),
    };
    let runs = match runs {
        Ok(r) => r,
        Err(e) => return super::fail_read("runs", &e),
    };
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        super::print_json(&runs)
    } else {
        print_table(&mut out, &runs)
    };
    match written {
        Ok(()) => exit::COMPLETE,
        Err(e) => super::fail("runs", e, exit::FATAL),
    }
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
