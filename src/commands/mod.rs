//! The subcommands, one file each, and the exit codes they end with.

pub mod demo;
pub mod diff;
pub mod doctor;
pub mod export;
pub mod plan;
pub mod progress;
pub mod restore;
pub mod runs;
pub mod sim;
pub mod verify;

/// Writes `value` as pretty JSON and a newline to stdout (the `--json` of the read commands).
pub fn print_json(value: &impl serde::Serialize) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::other)?;
    writeln!(out)
}

/// Prints `flowvault COMMAND: error` on one line and hands back `code`.
pub fn fail(command: &str, error: impl std::fmt::Display, code: i32) -> i32 {
    let text = error.to_string();
    let line: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    eprintln!("flowvault {command}: {}", line.join(" "));
    code
}

/// The one error table of the commands that take a run or a destination (`runs`, `verify`,
/// `diff`, `restore`): a malformed location is usage (2), a run or store that cannot be read is
/// fatal (1); either way one line that says what to fix.
pub fn fail_read(command: &str, error: &crate::archive::ReadError) -> i32 {
    let code = if error.is_usage() { exit::USAGE } else { exit::FATAL };
    fail(command, error, code)
}

/// Exit codes, by who is at fault (documented in the README).
pub mod exit {
    /// Every listed flow exported (or deleted meanwhile); the manifest says `"complete": true`.
    pub const COMPLETE: i32 = 0;
    /// Fatal: credentials, listing or destination; one line says what to fix.
    pub const FATAL: i32 = 1;
    /// Usage: a flag, variable or file setting is malformed or missing.
    pub const USAGE: i32 = 2;
    /// Incomplete: some flows failed, or the listing could not be proven complete; the archive and
    /// manifest were still written and the manifest says why.
    pub const INCOMPLETE: i32 = 3;
    /// `verify`: every byte holds, but the run's manifest says it is incomplete.
    pub const VERIFIED_INCOMPLETE: i32 = 4;
    /// `--max-duration` elapsed; the manifest says `"complete": false`.
    pub const TIMED_OUT: i32 = 124;
    /// Interrupted by SIGINT.
    pub const SIGINT: i32 = 130;
    /// Terminated by SIGTERM.
    pub const SIGTERM: i32 = 143;
}

use crate::export::{Ending, StopCause};

/// The exit code for how a run ended.
pub fn exit_code(ending: &Ending) -> i32 {
    match ending {
        Ending::Complete => exit::COMPLETE,
        Ending::Incomplete(_) => exit::INCOMPLETE,
        Ending::Fatal(_) => exit::FATAL,
        Ending::Stopped(StopCause::MaxDuration(_)) => exit::TIMED_OUT,
        Ending::Stopped(StopCause::Signal(2)) => exit::SIGINT,
        Ending::Stopped(StopCause::Signal(n)) => 128 + n,
    }
}
