//! The progress bar of `export` on a terminal: flows handled of listed, rate, ETA, and a visible
//! state while the API has paused the run. Logs are written above it (`LogWriter` suspends the bar
//! for each line), so both stay readable.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::export::Progress;
use crate::genesys::GenesysClient;

/// The bar being shown, if any; the log writer draws around it.
static ACTIVE: OnceLock<Mutex<Option<ProgressBar>>> = OnceLock::new();

fn active() -> &'static Mutex<Option<ProgressBar>> {
    ACTIVE.get_or_init(|| Mutex::new(None))
}

/// A progress bar fed from a run's counters and its client's limiter.
pub struct Display {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

/// Shows a bar on stderr until [`Display::finish`].
pub fn start(progress: Arc<Progress>, client: Arc<GenesysClient>) -> Display {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(5));
    let style = ProgressStyle::with_template("{spinner} {pos}/{len} flows  {per_sec}  ETA {eta}  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    if let Ok(mut a) = active().lock() {
        *a = Some(bar.clone());
    }
    let b = bar.clone();
    let ticker = tokio::spawn(async move {
        loop {
            b.set_length(progress.listed.load(Ordering::Relaxed));
            b.set_position(progress.handled.load(Ordering::Relaxed));
            let paused = client.limiter().paused_for();
            if paused.is_zero() {
                b.set_message("");
            } else {
                b.set_message(format!(
                    "paused by the API (429): resuming in {:.0}s",
                    paused.as_secs_f64().ceil()
                ));
            }
            b.tick();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    Display { bar, ticker }
}

impl Display {
    /// Removes the bar.
    pub fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
        if let Ok(mut a) = active().lock() {
            *a = None;
        }
    }
}

/// Writes log lines to stderr above the progress bar, when one is shown.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = active().lock().ok().and_then(|a| a.clone());
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}
