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

/// Connects to the org and authenticates (one token request, so bad credentials fail here,
/// before anything else is asked): the one way a command gets a client that speaks for the org
/// (`export`, `plan`, `restore`). `authenticate` is called nowhere else.
pub async fn connect(
    config: crate::genesys::ClientConfig,
) -> Result<std::sync::Arc<crate::genesys::GenesysClient>, crate::genesys::ApiError> {
    let client = std::sync::Arc::new(crate::genesys::GenesysClient::connect(config)?);
    client.authenticate().await?;
    Ok(client)
}

/// Writes `value` as pretty JSON and a newline to stdout (the `--json` of the read commands).
pub fn print_json(value: &impl serde::Serialize) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::other)?;
    writeln!(out)
}

/// How a command ends: its exit code, or an error carrying its own.
pub type Outcome = Result<std::process::ExitCode, CommandError>;

/// Why a command ended early. `main` prints it once, as `flowvault COMMAND: message`.
#[derive(Debug)]
pub enum CommandError {
    /// The reader of stdout went away (`flowvault runs | head -1`): end quietly, status 0.
    Closed,
    /// A one-line message and the exit code it ends with.
    Failed { code: i32, message: String },
}

impl CommandError {
    /// `error` on one line (its lines joined), ending with `code`.
    pub fn new(code: i32, error: impl std::fmt::Display) -> Self {
        let text = error.to_string();
        let line: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        CommandError::Failed {
            code,
            message: line.join(" "),
        }
    }

    /// A malformed flag, variable or setting (exit 2).
    pub fn usage(error: impl std::fmt::Display) -> Self {
        Self::new(exit::USAGE, error)
    }

    /// Credentials, listing, destination or store (exit 1).
    pub fn fatal(error: impl std::fmt::Display) -> Self {
        Self::new(exit::FATAL, error)
    }

    /// The one error table of the commands that take a run or a destination (`runs`, `verify`,
    /// `diff`, `restore`): a malformed location is usage (2), a run or store that cannot be read
    /// is fatal (1); either way one line that says what to fix.
    pub fn read(error: &crate::archive::ReadError) -> Self {
        let code = if error.is_usage() { exit::USAGE } else { exit::FATAL };
        Self::new(code, error)
    }

    /// A write to stdout that failed: a closed pipe ends quietly, anything else is fatal.
    pub fn output(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            CommandError::Closed
        } else {
            Self::fatal(error)
        }
    }
}

impl From<std::io::Error> for CommandError {
    fn from(error: std::io::Error) -> Self {
        Self::output(error)
    }
}

/// `code` as the process's exit status (codes above 255 cannot be one: fatal).
pub fn status(code: i32) -> std::process::ExitCode {
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
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
