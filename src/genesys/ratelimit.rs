//! The client-side rate limiter shared by every request to one Genesys org.
//!
//! Requests are spaced evenly at the configured rate (no bursts, so a server counting in a
//! sliding window never sees more than the limit). When the API answers 429 anyway, everybody
//! pauses until its `Retry-After` has passed and the rate drops a little; successes creep it back
//! up to the configured rate. One 429 storm therefore lowers the rate once, not once per request.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Spaces requests to at most a configured rate, and pauses everyone after a 429.
#[derive(Debug)]
pub struct RateLimiter {
    configured: Option<Duration>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    interval: Option<Duration>,
    next_slot: Instant,
    paused_until: Instant,
}

/// The share of the configured rate actually used: requests leave evenly spaced, but arrive with
/// network and scheduling jitter; 3% headroom keeps a server counting in a sliding window from
/// ever seeing more than its limit, so 429s (and the pauses they force) stay rare.
pub const HEADROOM: f64 = 0.97;
/// How much slower the limiter goes after a 429 (interval × this).
const SLOWDOWN: f64 = 1.10;
/// How much faster it goes after each success, back towards the configured rate.
const RECOVERY: f64 = 0.995;

impl RateLimiter {
    /// A limiter allowing `per_second` requests a second; `None` or a non-positive rate means
    /// unlimited (only 429 pauses apply).
    pub fn new(per_second: Option<f64>) -> Self {
        let configured = per_second
            .filter(|r| r.is_finite() && *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / (r * HEADROOM)));
        let now = Instant::now();
        RateLimiter {
            configured,
            state: Mutex::new(State {
                interval: configured,
                next_slot: now,
                paused_until: now,
            }),
        }
    }

    /// The pace in requests per second (the configured rate less the headroom), if limited.
    pub fn paced_rate(&self) -> Option<f64> {
        self.configured.map(|i| 1.0 / i.as_secs_f64())
    }

    /// Waits for this caller's turn to send one request.
    pub async fn acquire(&self) {
        let start = {
            let mut s = self.lock();
            let now = Instant::now();
            let start = now.max(s.next_slot).max(s.paused_until);
            if let Some(interval) = s.interval {
                s.next_slot = start + interval;
            }
            start
        };
        tokio::time::sleep_until(start).await;
    }

    /// Records a 429: nobody sends until `wait` has passed, and the rate drops once per pause.
    pub fn throttled(&self, wait: Duration) {
        let mut s = self.lock();
        let now = Instant::now();
        if now >= s.paused_until
            && let Some(interval) = s.interval
        {
            s.interval = Some(interval.mul_f64(SLOWDOWN));
        }
        s.paused_until = s.paused_until.max(now + wait);
        s.next_slot = s.next_slot.max(s.paused_until);
    }

    /// Records a success: the rate recovers a little towards the configured one.
    pub fn succeeded(&self) {
        let mut s = self.lock();
        if let (Some(current), Some(configured)) = (s.interval, self.configured)
            && current > configured
        {
            s.interval = Some(current.mul_f64(RECOVERY).max(configured));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain data that no panic can leave half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_at_the_configured_rate() {
        let limiter = RateLimiter::new(Some(10.0 / HEADROOM));
        let t0 = Instant::now();
        for _ in 0..11 {
            limiter.acquire().await;
        }
        let elapsed = Instant::now() - t0;
        assert!(
            elapsed >= Duration::from_millis(999) && elapsed <= Duration::from_millis(1001),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_everyone_and_slows_the_rate_once() {
        let limiter = RateLimiter::new(Some(10.0 / HEADROOM));
        limiter.acquire().await;
        let t0 = Instant::now();
        limiter.throttled(Duration::from_secs(5));
        limiter.throttled(Duration::from_secs(5));
        limiter.acquire().await;
        assert!(Instant::now() - t0 >= Duration::from_secs(5));
        let interval = limiter.lock().interval.unwrap();
        assert!(
            interval > Duration::from_millis(105) && interval < Duration::from_millis(115),
            "{interval:?}"
        );
        for _ in 0..1000 {
            limiter.succeeded();
        }
        assert_eq!(limiter.lock().interval, limiter.configured);
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_only_waits_for_pauses() {
        let limiter = RateLimiter::new(None);
        let t0 = Instant::now();
        for _ in 0..100 {
            limiter.acquire().await;
        }
        assert_eq!(Instant::now(), t0);
        assert_eq!(limiter.paced_rate(), None);
    }
}
