//! The one retry driver every Genesys request goes through, token requests included.
//!
//! A caller describes one attempt as a closure that sends the request and classifies the answer
//! ([`Attempt`]); [`Retrier::run`] decides what follows: done, wait and retry, or give up. Waits:
//! a `Retry-After` (on a 429 or a 503, whatever status carries it) is honoured and never cut short;
//! without one, throttling and transient faults back off exponentially with jitter. Each kind has
//! its own cap, and every request has a total time budget. Time is tokio's clock (pausable in
//! tests) and the jitter is injectable, so the driver's decisions can be tested exactly.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rand::Rng;
use tokio::time::Instant;
use tracing::{info, warn};

/// Caps and delays for retrying Genesys requests.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Retries allowed for transient faults (5xx, timeouts, resets, garbage bodies).
    pub max_retries: u32,
    /// Retries allowed for 429 responses, counted separately.
    pub max_throttle_retries: u32,
    /// First backoff delay; doubles with each retry.
    pub base_backoff: Duration,
    /// Upper bound of one backoff delay.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a longer one fails the request instead of stalling the run.
    pub max_retry_after: Duration,
    /// Time limit for one HTTP request, body included.
    pub request_timeout: Duration,
    /// Total time one request may take, all its retries and waits included.
    pub max_elapsed: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 8,
            max_throttle_retries: 40,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(600),
            request_timeout: Duration::from_secs(60),
            max_elapsed: Duration::from_secs(3600),
        }
    }
}

/// Picks a delay between `low` and `high` (both inclusive); random in production, fixed in tests.
pub type Jitter = Arc<dyn Fn(Duration, Duration) -> Duration + Send + Sync>;

/// Uniformly random jitter.
pub fn random_jitter() -> Jitter {
    Arc::new(|low, high| {
        let (l, h) = (low.as_millis() as u64, high.as_millis().max(low.as_millis()) as u64);
        Duration::from_millis(rand::rng().random_range(l..=h))
    })
}

/// What one attempt came to.
#[derive(Debug)]
pub enum Attempt<T, E> {
    /// It worked.
    Done(T),
    /// The server is throttling (429): wait its `Retry-After`, or back off without one.
    Throttled {
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
        /// What happened, for logs and the final error.
        reason: String,
    },
    /// A fault that may pass (5xx, timeout, reset, unreadable body); a `Retry-After` is honoured.
    Transient {
        /// The server's `Retry-After`, if it sent one (a 503 may).
        retry_after: Option<Duration>,
        /// What happened.
        reason: String,
    },
    /// The credential was refused and has already been replaced: try again at once.
    Reauthorized {
        /// What happened.
        reason: String,
    },
    /// A failure no retry can fix.
    Fatal(E),
}

/// Why [`Retrier::run`] gave up.
#[derive(Debug)]
pub enum GaveUp<E> {
    /// The attempt said no retry can help.
    Fatal(E),
    /// Retries or the time budget ran out; `last` says what the last failure was.
    Exhausted {
        /// Requests sent.
        attempts: u32,
        /// The last failure and the cap that stopped the retries.
        last: String,
    },
}

/// A successful result and the requests it took.
#[derive(Debug)]
pub struct Success<T> {
    /// The value.
    pub value: T,
    /// Requests sent, the successful one included.
    pub attempts: u32,
}

/// Who paces the requests: the rate limiter for API calls, nobody for token requests.
pub trait Pace: Send + Sync {
    /// Waits for this caller's turn to send.
    fn ready(&self) -> BoxFuture<'_, ()>;
    /// The server throttled; nobody should send for `wait`.
    fn throttled(&self, wait: Duration, retry_after: Option<Duration>);
    /// A request sent at `sent_at` succeeded.
    fn succeeded(&self, sent_at: Instant);
}

/// No pacing: send at once.
pub struct Unpaced;

impl Pace for Unpaced {
    fn ready(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn throttled(&self, _: Duration, _: Option<Duration>) {}
    fn succeeded(&self, _: Instant) {}
}

/// How often one request may be re-sent with a replaced credential.
const MAX_REAUTHORIZATIONS: u32 = 3;
/// Retries of one request logged at info: a fault that passes after one or two retries is the
/// API's ordinary weather, and the run handles it; one that persists is worth a warning. Every
/// retry is counted in the metrics either way.
const QUIET_RETRIES: u32 = 2;

/// The retry driver: caps, waits and the jitter they use.
#[derive(Clone)]
pub struct Retrier {
    config: RetryConfig,
    jitter: Jitter,
}

impl std::fmt::Debug for Retrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retrier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Retrier {
    /// A driver with random jitter.
    pub fn new(config: RetryConfig) -> Self {
        Retrier::with_jitter(config, random_jitter())
    }

    /// A driver with the given jitter (tests pass a fixed one).
    pub fn with_jitter(config: RetryConfig, jitter: Jitter) -> Self {
        Retrier { config, jitter }
    }

    /// The caps and delays.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// Exponential backoff with jitter for retry number `retry` (0-based): between half the step
    /// and the step, so retries neither bunch at zero nor exceed `max_backoff`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self.config.base_backoff.saturating_mul(1u32 << retry.min(20));
        let cap = exp.min(self.config.max_backoff).max(Duration::from_millis(1));
        (self.jitter)(cap / 2, cap)
    }

    /// The wait the server asked for plus up to 100 ms of jitter (never less), or, without a
    /// `Retry-After`, `fallback`.
    fn honour(&self, retry_after: Option<Duration>, fallback: Duration) -> Duration {
        match retry_after {
            Some(d) => d + (self.jitter)(Duration::ZERO, Duration::from_millis(100)),
            None => fallback,
        }
    }

    /// Runs `attempt` until it is done, fails for good, or a cap is reached. `what` names the
    /// request in logs (a URL without secrets); `pace` is waited on before every send.
    pub async fn run<T, E, F, Fut>(&self, what: &str, pace: &dyn Pace, mut attempt: F) -> Result<Success<T>, GaveUp<E>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Attempt<T, E>>,
    {
        let started = Instant::now();
        let mut counts = Counts::default();
        loop {
            pace.ready().await;
            let sent_at = Instant::now();
            counts.attempts += 1;
            let wait = match attempt().await {
                Attempt::Done(value) => {
                    pace.succeeded(sent_at);
                    return Ok(Success {
                        value,
                        attempts: counts.attempts,
                    });
                }
                Attempt::Fatal(e) => return Err(GaveUp::Fatal(e)),
                Attempt::Reauthorized { reason } => {
                    counts.reauthorized += 1;
                    if counts.reauthorized > MAX_REAUTHORIZATIONS {
                        return Err(counts.exhausted(format!("{reason}, {MAX_REAUTHORIZATIONS} new tokens refused")));
                    }
                    continue;
                }
                Attempt::Throttled { retry_after, reason } => {
                    self.check_retry_after(&counts, retry_after, &reason)?;
                    if counts.throttled >= self.config.max_throttle_retries {
                        return Err(counts.exhausted(format!("{reason}, {} throttled retries", counts.throttled)));
                    }
                    let wait = self.honour(retry_after, self.backoff(counts.throttled).max(Duration::from_secs(1)));
                    counts.throttled += 1;
                    pace.throttled(wait, retry_after);
                    if counts.throttled > QUIET_RETRIES {
                        warn!(url = %what, wait_ms = wait.as_millis() as u64, retry = counts.throttled, "{reason}; waiting as the API asked before retrying");
                    } else {
                        info!(url = %what, wait_ms = wait.as_millis() as u64, retry = counts.throttled, "{reason}; waiting as the API asked before retrying");
                    }
                    (wait, reason)
                }
                Attempt::Transient { retry_after, reason } => {
                    self.check_retry_after(&counts, retry_after, &reason)?;
                    if counts.transient >= self.config.max_retries {
                        return Err(counts.exhausted(format!("{reason} ({} retries)", counts.transient)));
                    }
                    let wait = self.honour(retry_after, self.backoff(counts.transient));
                    counts.transient += 1;
                    let how = if retry_after.is_some() {
                        "waiting its Retry-After"
                    } else {
                        "backing off"
                    };
                    if counts.transient > QUIET_RETRIES {
                        warn!(url = %what, wait_ms = wait.as_millis() as u64, retry = counts.transient, "{reason}; {how} before retrying");
                    } else {
                        info!(url = %what, wait_ms = wait.as_millis() as u64, retry = counts.transient, "{reason}; {how} before retrying");
                    }
                    (wait, reason)
                }
            };
            let (wait, reason) = wait;
            if started.elapsed() + wait > self.config.max_elapsed {
                return Err(counts.exhausted(format!(
                    "{reason}; waiting {:.1}s more would exceed the request's {}s time budget",
                    wait.as_secs_f64(),
                    self.config.max_elapsed.as_secs()
                )));
            }
            tokio::time::sleep(wait).await;
        }
    }

    fn check_retry_after<E>(
        &self,
        counts: &Counts,
        retry_after: Option<Duration>,
        reason: &str,
    ) -> Result<(), GaveUp<E>> {
        match retry_after {
            Some(d) if d > self.config.max_retry_after => Err(counts.exhausted(format!(
                "{reason}; Retry-After {}s exceeds the {}s cap",
                d.as_secs(),
                self.config.max_retry_after.as_secs()
            ))),
            _ => Ok(()),
        }
    }
}

#[derive(Default)]
struct Counts {
    attempts: u32,
    transient: u32,
    throttled: u32,
    reauthorized: u32,
}

impl Counts {
    fn exhausted<E>(&self, last: String) -> GaveUp<E> {
        GaveUp::Exhausted {
            attempts: self.attempts,
            last,
        }
    }
}

/// Parses a `Retry-After` header value: delay-seconds (possibly fractional) or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs));
        }
        return None;
    }
    let when = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let delta = when - time::OffsetDateTime::now_utc();
    Some(Duration::from_secs_f64(delta.as_seconds_f64().max(0.0)))
}

/// The `Retry-After` of a response, if it carries a readable one.
pub fn retry_after_of(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn fixed_high() -> Jitter {
        Arc::new(|_, high| high)
    }

    fn retrier(config: RetryConfig) -> Retrier {
        Retrier::with_jitter(config, fixed_high())
    }

    /// Replays `script` one attempt at a time and records when each attempt was made.
    async fn replay(
        r: &Retrier,
        script: Vec<Attempt<&'static str, &'static str>>,
    ) -> (Result<Success<&'static str>, GaveUp<&'static str>>, Vec<Duration>) {
        let t0 = Instant::now();
        let script = Mutex::new(script.into_iter());
        let times = Mutex::new(Vec::new());
        let (s, t) = (&script, &times);
        let result = r
            .run("test", &Unpaced, move || async move {
                t.lock().unwrap().push(Instant::now() - t0);
                s.lock().unwrap().next().unwrap_or(Attempt::Fatal("script ran out"))
            })
            .await;
        (result, times.into_inner().unwrap())
    }

    fn transient(retry_after: Option<u64>) -> Attempt<&'static str, &'static str> {
        Attempt::Transient {
            retry_after: retry_after.map(Duration::from_secs),
            reason: "HTTP 503".into(),
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        assert_eq!(parse_retry_after("65"), Some(Duration::from_secs(65)));
        assert_eq!(parse_retry_after(" 0.25 "), Some(Duration::from_millis(250)));
        assert!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT").is_some());
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-3"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_on_a_503_is_waited_out_in_full() {
        let r = retrier(RetryConfig::default());
        let (result, times) = replay(&r, vec![transient(Some(7)), Attempt::Done("ok")]).await;
        assert_eq!(result.unwrap().attempts, 2);
        assert!(times[1] >= Duration::from_secs(7), "{times:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_waits_its_retry_after_and_never_less() {
        let r = Retrier::with_jitter(RetryConfig::default(), Arc::new(|low, _| low));
        let throttled = Attempt::Throttled {
            retry_after: Some(Duration::from_secs(58)),
            reason: "429".into(),
        };
        let (result, times) = replay(&r, vec![throttled, Attempt::Done("ok")]).await;
        assert!(result.is_ok());
        assert!(times[1] >= Duration::from_secs(58), "{times:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn transient_faults_back_off_exponentially_up_to_the_cap_then_give_up() {
        let config = RetryConfig {
            max_retries: 3,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3),
            ..RetryConfig::default()
        };
        let r = retrier(config);
        let (result, times) = replay(&r, (0..10).map(|_| transient(None)).collect()).await;
        let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
        assert_eq!(gaps, vec![1, 2, 3], "1 s, 2 s, then capped at 3 s");
        match result {
            Err(GaveUp::Exhausted { attempts, last }) => {
                assert_eq!(attempts, 4);
                assert!(last.contains("HTTP 503 (3 retries)"), "{last}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_beyond_the_cap_gives_up_at_once() {
        let r = retrier(RetryConfig::default());
        let (result, times) = replay(&r, vec![transient(Some(601))]).await;
        assert_eq!(times.len(), 1);
        assert!(matches!(result, Err(GaveUp::Exhausted { last, .. }) if last.contains("exceeds the 600s cap")));
    }

    #[tokio::test(start_paused = true)]
    async fn the_total_time_budget_ends_a_request_that_would_wait_past_it() {
        let config = RetryConfig {
            max_elapsed: Duration::from_secs(100),
            ..RetryConfig::default()
        };
        let r = retrier(config);
        let script = (0..10).map(|_| transient(Some(40))).collect();
        let (result, times) = replay(&r, script).await;
        assert_eq!(times.len(), 3, "0 s, 40 s, 80 s; a third wait would end past 100 s");
        assert!(matches!(result, Err(GaveUp::Exhausted { last, .. }) if last.contains("time budget")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_replaced_credential_is_retried_at_once_but_not_forever() {
        let r = retrier(RetryConfig::default());
        let reauth = || Attempt::Reauthorized { reason: "401".into() };
        let (result, times) = replay(&r, vec![reauth(), Attempt::Done("ok")]).await;
        assert_eq!(result.unwrap().attempts, 2);
        assert_eq!(times[1], Duration::ZERO);
        let (result, _) = replay(&r, (0..10).map(|_| reauth()).collect()).await;
        assert!(matches!(result, Err(GaveUp::Exhausted { attempts: 4, .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_answer_is_not_retried() {
        let r = retrier(RetryConfig::default());
        let (result, times) = replay(&r, vec![Attempt::Fatal("403"), Attempt::Done("ok")]).await;
        assert_eq!(times.len(), 1);
        assert!(matches!(result, Err(GaveUp::Fatal("403"))));
    }

    #[test]
    fn backoff_stays_between_half_the_step_and_the_cap() {
        let r = Retrier::new(RetryConfig::default());
        for n in 0..40 {
            assert!(r.backoff(n) <= r.config().max_backoff);
        }
        assert!(r.backoff(10) >= Duration::from_secs(15));
        assert!(r.backoff(0) <= Duration::from_millis(500));
    }
}
