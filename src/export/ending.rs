//! How a run ended. One typed value decides the manifest's `complete` and `incomplete_reason`
//! and the exit code, so they can never disagree.

use super::stop::StopCause;
use crate::genesys::{ApiError, ListError};
use crate::sink::SinkError;

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The credentials stopped working (revoked client, token endpoint gone).
    #[error("{0}")]
    Credentials(ApiError),
    /// The listing failed after its retries.
    #[error("listing flows failed: {0}")]
    Listing(ListError),
    /// A flow document could not be stored: the destination is unusable.
    #[error("could not store the flow at {location}: {source}")]
    Store {
        /// Where the run was being written.
        location: String,
        /// What the destination said.
        source: SinkError,
    },
    /// The destination failed while the last documents were being written.
    #[error("the destination failed: {0}")]
    Settle(SinkError),
    /// The archive or the manifest could not be sealed.
    #[error("the destination failed while sealing the run: {0}")]
    Seal(SinkError),
    /// The Architect phase could not go on (the credentials stopped working while reading it).
    #[error("reading the Architect objects failed: {0}")]
    Architect(String),
    /// The run was stopped and the destination did not answer within the shutdown grace period.
    #[error(
        "the destination {location} stopped answering after the stop (nothing for 10s, past the shutdown grace period); what it had not taken is lost"
    )]
    Stalled {
        /// Where the run was being written.
        location: String,
    },
}

impl RunError {
    /// True when the destination itself broke, so a partial archive cannot be sealed.
    pub fn is_destination_failure(&self) -> bool {
        matches!(
            self,
            RunError::Store { .. } | RunError::Settle(_) | RunError::Seal(_) | RunError::Stalled { .. }
        )
    }
}

/// How a run ended.
#[derive(Debug)]
pub enum Ending {
    /// Every flow of the verified listing was exported or deleted meanwhile.
    Complete,
    /// The run went through, but it cannot claim every flow: the reason says why.
    Incomplete(String),
    /// The run was stopped from outside; what was fetched is kept.
    Stopped(StopCause),
    /// The run could not go on; what was fetched is kept where the destination allows.
    Fatal(RunError),
}

impl Ending {
    /// Whether the manifest may say `"complete": true`.
    pub fn is_complete(&self) -> bool {
        matches!(self, Ending::Complete)
    }

    /// The manifest's `incomplete_reason`.
    pub fn reason(&self) -> Option<String> {
        match self {
            Ending::Complete => None,
            Ending::Incomplete(why) => Some(why.clone()),
            Ending::Stopped(cause) => Some(cause.to_string()),
            Ending::Fatal(e) => Some(e.to_string()),
        }
    }
}
