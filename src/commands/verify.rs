//! `flowvault verify RUN`: proves a run against its manifest. Exit 0 when everything holds, 3
//! when something does not (each problem one line), 4 when every byte holds but the run is
//! incomplete, 1 when the run cannot be read, 2 usage.

use std::io::Write;

use super::{CommandError, Outcome, exit};
use crate::archive::{self, Latest, verify};
use crate::cli::{RunArg, VerifyArgs};
use crate::settings::{process_env, read_options};

/// The `--latest` flags as one value.
pub fn latest_of(arg: &RunArg) -> Option<Latest> {
    match (arg.latest, arg.latest_complete) {
        (_, true) => Some(Latest::Complete),
        (true, false) => Some(Latest::Any),
        _ => None,
    }
}

/// Verifies the run; the exit code says what it found.
pub async fn run(args: &VerifyArgs) -> Outcome {
    let options = read_options(&args.store.flags, &process_env).map_err(CommandError::usage)?;
    if args.quick && !args.run.run.to_ascii_lowercase().starts_with("s3://") {
        return Err(CommandError::usage(
            "--quick compares S3's stored checksums; it needs an s3:// run in the objects format",
        ));
    }
    let run = archive::locate(&args.run.run, latest_of(&args.run), &options)
        .await
        .map_err(|e| CommandError::read(&e))?;
    if args.quick && run.has_archive {
        return Err(CommandError::usage(
            "--quick works on the objects format only; a tar.gz must be read to be verified",
        ));
    }
    let report = verify::verify(&run, args.quick)
        .await
        .map_err(|e| CommandError::read(&e))?;
    if args.json {
        super::print_json(&report)?;
    } else {
        print(&mut std::io::stdout().lock(), &report)?;
    }
    Ok(super::status(match (report.ok(), &report.incomplete) {
        (false, _) => exit::INCOMPLETE,
        (true, Some(_)) => exit::VERIFIED_INCOMPLETE,
        (true, None) => exit::COMPLETE,
    }))
}

fn print(out: &mut impl Write, r: &verify::VerifyReport) -> std::io::Result<()> {
    for p in &r.problems {
        writeln!(out, "PROBLEM {p}")?;
    }
    let mode = if r.mode == "quick" {
        "quick check: S3's stored checksums compared, no byte downloaded (weaker than a full verify)"
    } else {
        "every byte read"
    };
    if let Some(why) = &r.incomplete {
        writeln!(out, "incomplete: {why}")?;
    }
    if r.ok() {
        let whole = if r.incomplete.is_some() {
            "; the run itself is incomplete, see above"
        } else {
            ""
        };
        writeln!(
            out,
            "verified: {} documents of {} match the manifest ({mode}, {} bytes){whole}",
            r.documents_verified, r.location, r.bytes_read
        )
    } else {
        writeln!(
            out,
            "FAILED: {} problems in {} ({} documents verified; {mode})",
            r.problems.len(),
            r.location,
            r.documents_verified
        )
    }
}
