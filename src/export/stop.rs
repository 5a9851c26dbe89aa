//! Stopping a run from outside: a signal from the scheduler or `--max-duration`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long no store may have answered before a stopped run stops waiting for it.
/// Long enough that a store slowed by load (a busy CI machine, big parts) is not taken for frozen.
pub const STORE_SILENCE: Duration = Duration::from_secs(10);

/// Why a run ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopCause {
    /// A signal (SIGINT = 2, SIGTERM = 15).
    Signal(i32),
    /// `--max-duration` elapsed.
    MaxDuration(Duration),
}

impl std::fmt::Display for StopCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopCause::Signal(2) => f.write_str("interrupted by SIGINT"),
            StopCause::Signal(15) => f.write_str("terminated by SIGTERM"),
            StopCause::Signal(n) => write!(f, "stopped by signal {n}"),
            StopCause::MaxDuration(d) => write!(f, "--max-duration of {}s elapsed", d.as_secs()),
        }
    }
}

/// A request to stop a run, shared between whoever stops it and the pipeline.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    token: CancellationToken,
    cause: Arc<Mutex<Option<StopCause>>>,
    /// When the first stop came.
    at: Arc<Mutex<Option<tokio::time::Instant>>>,
}

impl StopSignal {
    /// Asks the run to stop; the first cause wins.
    pub fn stop(&self, cause: StopCause) {
        let mut c = self.cause.lock().unwrap_or_else(|e| e.into_inner());
        if c.is_none() {
            *c = Some(cause);
            *self.at.lock().unwrap_or_else(|e| e.into_inner()) = Some(tokio::time::Instant::now());
        }
        self.token.cancel();
    }

    /// Resolves `grace` after a stop was requested (never, without one): what the run does for
    /// the destination after that is cut, so a frozen store cannot hold a stopped run.
    pub async fn grace_over(&self, grace: Duration) {
        self.stopped().await;
        let at = *self.at.lock().unwrap_or_else(|e| e.into_inner());
        tokio::time::sleep_until(at.unwrap_or_else(tokio::time::Instant::now) + grace).await;
    }

    /// The cause, once stopped.
    pub fn cause(&self) -> Option<StopCause> {
        self.cause.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Resolves when a stop is requested.
    pub async fn stopped(&self) {
        self.token.cancelled().await
    }

    /// Resolves once a stop's `grace` is over *and* no store has answered for [`STORE_SILENCE`]:
    /// when a stopped run stops waiting for its destination. A slow store that keeps answering
    /// is waited for; a frozen one is not.
    pub async fn store_given_up(&self, grace: Duration) {
        self.grace_over(grace).await;
        loop {
            let silent = crate::sink::silent_for();
            if silent >= STORE_SILENCE {
                return;
            }
            tokio::time::sleep((STORE_SILENCE - silent).max(Duration::from_millis(50))).await;
        }
    }

    /// Stops the run with [`StopCause::MaxDuration`] once `limit` has passed.
    pub fn stop_after(&self, limit: Duration) {
        let stop = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            stop.stop(StopCause::MaxDuration(limit));
        });
    }
}
