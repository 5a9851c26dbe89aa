//! The retry policy for Genesys calls: which failures are retried, how long to wait, and the caps.
//!
//! 429 honours `Retry-After` (never sooner; values of a minute and more occur) and has its own,
//! larger cap, because sustained throttling should slow a run down, not fail it. 5xx, timeouts,
//! resets and unreadable bodies back off exponentially with full jitter up to `max_backoff`.

use std::time::Duration;

use rand::Rng;

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
        }
    }
}

impl RetryConfig {
    /// Exponential backoff with full jitter for the given retry number (0-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self.base_backoff.saturating_mul(1u32 << retry.min(20));
        let cap = exp.min(self.max_backoff);
        let millis = cap.as_millis().max(1) as u64;
        // Full jitter, but never less than half the step, so retries do not bunch at zero.
        let low = millis / 2;
        Duration::from_millis(rand::rng().random_range(low..=millis))
    }

    /// The wait after a 429: the server's `Retry-After` plus a little jitter (never less), or
    /// backoff when the header is absent.
    pub fn throttle_wait(&self, retry_after: Option<Duration>, retry: u32) -> Duration {
        match retry_after {
            Some(d) => {
                let jitter = rand::rng().random_range(0..=100u64);
                d + Duration::from_millis(jitter)
            }
            None => self.backoff(retry).max(Duration::from_secs(1)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        assert_eq!(parse_retry_after("65"), Some(Duration::from_secs(65)));
        assert_eq!(parse_retry_after(" 0.25 "), Some(Duration::from_millis(250)));
        assert!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT").is_some());
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-3"), None);
    }

    #[test]
    fn throttle_wait_is_never_shorter_than_retry_after() {
        let cfg = RetryConfig::default();
        for _ in 0..100 {
            assert!(cfg.throttle_wait(Some(Duration::from_secs(58)), 3) >= Duration::from_secs(58));
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let cfg = RetryConfig::default();
        assert!(cfg.backoff(0) <= Duration::from_millis(500));
        for n in 0..40 {
            assert!(cfg.backoff(n) <= cfg.max_backoff);
        }
        assert!(cfg.backoff(10) >= Duration::from_secs(15));
    }
}
