//! The client-side rate limiter shared by every request to one Genesys org.
//!
//! Requests are spaced evenly at the configured rate (no bursts, so a server counting in a
//! sliding window never sees more than the limit). When the API answers 429 anyway, everybody
//! pauses until its `Retry-After` has passed and the pace drops by a tenth, or to what the API
//! accepted in the `Retry-After` window before the 429 (less the headroom), whichever is slower;
//! successes bring it back up (to the configured rate, or without one to the learned pace, which
//! it then holds: creeping beyond it only overshoots the same limit again). One 429 storm therefore
//! lowers the pace once, not once per request, and even `--rate-limit off` settles just under
//! the server's real limit instead of bursting into it again and again. Nobody is given a turn
//! during a pause: turns are handed out when it ends, so the first of them already go at the pace
//! learned from it.

use std::collections::VecDeque;
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
    /// When recently accepted requests were sent (the last `MAX_WINDOW`, at most `MAX_RECENT`).
    recent: VecDeque<Instant>,
    /// A 429 at this instant whose `Retry-After` (the window) is still to be learned from, once
    /// the requests sent before it have all answered.
    pending_estimate: Option<(Instant, Duration)>,
    /// The pace learned from the last throttling: without a configured rate, the pace recovers up
    /// to it and holds it.
    learned: Option<Duration>,
}

/// The share of the configured rate actually used: requests leave evenly spaced, but arrive with
/// network and scheduling jitter; 2% headroom (20 ms of jitter over a one-second window at any
/// rate) keeps a server counting in a sliding window from seeing more than its limit, so 429s
/// (and the pauses they force) stay rare. (Bursts of a whole window, which a sliding window
/// would allow, were measured too: a burst whose tail leaves late under load collides with the
/// next one, and each 429 pauses everyone; even spacing does not.)
pub const HEADROOM: f64 = 0.98;
/// How much slower the limiter goes after a 429 (interval × this).
const SLOWDOWN: f64 = 1.10;
/// How much faster it goes after each success, back towards the configured rate.
const RECOVERY: f64 = 0.995;
/// The same without a configured rate: slow enough that probing for more costs a 429 only every
/// few hundred requests.
const RECOVERY_UNCAPPED: f64 = 0.9998;
/// Successes needed before the observed rate is trusted.
const MIN_OBSERVED: usize = 5;
/// The longest window over which accepted requests are remembered.
const MAX_WINDOW: Duration = Duration::from_secs(600);
/// The most accepted requests remembered.
const MAX_RECENT: usize = 100_000;

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
                recent: VecDeque::new(),
                pending_estimate: None,
                learned: None,
            }),
        }
    }

    /// The pace in requests per second (the configured rate less the headroom), if limited.
    pub fn paced_rate(&self) -> Option<f64> {
        self.configured.map(|i| 1.0 / i.as_secs_f64())
    }

    /// Waits for this caller's turn to send one request. Nobody is given a turn while the API has
    /// everyone paused: turns are handed out when the pause ends, at the pace learned from it
    /// (turns handed out during the pause would keep the pace from before it).
    pub async fn acquire(&self) {
        loop {
            let until = self.lock().paused_until;
            if Instant::now() >= until {
                break;
            }
            tokio::time::sleep_until(until).await;
        }
        let start = {
            let mut s = self.lock();
            let now = Instant::now();
            s.apply_pending_estimate(now);
            let start = now.max(s.next_slot).max(s.paused_until);
            if let Some(interval) = s.interval {
                s.next_slot = start + interval;
            }
            start
        };
        tokio::time::sleep_until(start).await;
        // The first request after a pause is the one to learn from it.
        self.lock().apply_pending_estimate(Instant::now());
    }

    /// Records a 429: nobody sends until `wait` has passed, and the pace drops once per pause.
    /// When the API said how long to wait (`retry_after`), that is taken as its counting window:
    /// once the pause is over (and so every request sent before the 429 has answered), the requests
    /// it accepted in that window are taken as its limit, and the pace drops to that less the
    /// headroom if that is slower still.
    pub fn throttled(&self, wait: Duration, retry_after: Option<Duration>) {
        let mut s = self.lock();
        let now = Instant::now();
        if now >= s.paused_until {
            s.interval = s.interval.map(|i| i.mul_f64(SLOWDOWN));
            s.pending_estimate = retry_after
                .filter(|w| *w >= Duration::from_millis(100))
                .map(|w| (now, w));
            if let Some(i) = s.interval {
                tracing::info!("the API throttled; pacing requests at {:.2}/s", 1.0 / i.as_secs_f64());
            }
        }
        s.paused_until = s.paused_until.max(now + wait);
        s.next_slot = s.next_slot.max(s.paused_until);
    }

    /// How long sending stays paused by the API's last throttling (zero when it is not paused).
    pub fn paused_for(&self) -> Duration {
        self.lock().paused_until.saturating_duration_since(Instant::now())
    }

    /// Records a request sent at `sent_at` that succeeded: the pace recovers a little (towards the
    /// configured rate, if any).
    pub fn succeeded(&self, sent_at: Instant) {
        let mut s = self.lock();
        let now = Instant::now();
        s.recent.push_back(sent_at);
        while s.recent.len() > MAX_RECENT || s.recent.front().is_some_and(|t| now.duration_since(*t) > MAX_WINDOW) {
            s.recent.pop_front();
        }
        s.interval = match (s.interval, self.configured, s.learned) {
            (Some(current), Some(configured), _) if current > configured => {
                Some(current.mul_f64(RECOVERY).max(configured))
            }
            (Some(current), None, Some(learned)) => Some(current.mul_f64(RECOVERY).max(learned)),
            (Some(current), None, None) => Some(current.mul_f64(RECOVERY_UNCAPPED)),
            (other, _, _) => other,
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain data that no panic can leave half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Learns from the last 429 once its pause is over.
    fn apply_pending_estimate(&mut self, now: Instant) {
        if now >= self.paused_until
            && let Some((at, window)) = self.pending_estimate.take()
        {
            self.learn_from_throttling(at, window);
        }
    }

    /// Sets the pace from the requests the API accepted in the `window` before a 429 at `at`.
    fn learn_from_throttling(&mut self, at: Instant, window: Duration) {
        let from = at.checked_sub(window).unwrap_or(at);
        let accepted = self.recent.iter().filter(|t| **t >= from && **t <= at).count();
        if accepted < MIN_OBSERVED {
            return; // too little to learn from
        }
        let observed = Duration::from_secs_f64(window.as_secs_f64() / (accepted as f64 * HEADROOM));
        // Intervals: the longer one is the slower pace.
        let interval = self.interval.map_or(observed, |i| i.max(observed));
        tracing::info!(
            "the API accepted {accepted} requests in the {:.1}s before throttling; pacing requests at {:.2}/s",
            window.as_secs_f64(),
            1.0 / interval.as_secs_f64()
        );
        self.interval = Some(interval);
        self.learned = Some(observed);
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
        limiter.throttled(Duration::from_secs(5), None);
        limiter.throttled(Duration::from_secs(5), None);
        limiter.acquire().await;
        assert!(Instant::now() - t0 >= Duration::from_secs(5));
        let interval = limiter.lock().interval.unwrap();
        assert!(
            interval > Duration::from_millis(105) && interval < Duration::from_millis(115),
            "{interval:?}"
        );
        for _ in 0..1000 {
            limiter.succeeded(Instant::now());
        }
        assert_eq!(limiter.lock().interval, limiter.configured);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_limit_a_429_sets_the_pace_to_what_the_api_accepted() {
        let limiter = RateLimiter::new(None);
        // 50 requests accepted over one second, then a 429.
        for _ in 0..30 {
            limiter.succeeded(Instant::now());
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        let mut sent = Vec::new();
        for _ in 0..50 {
            sent.push(Instant::now());
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        // The 429 comes back before the accepted requests have answered...
        limiter.throttled(Duration::from_secs(1), Some(Duration::from_secs(1)));
        for t in sent {
            limiter.succeeded(t);
        }
        // ...and the pace is learned when the pause is over.
        limiter.acquire().await;
        let pace = 1.0 / limiter.lock().interval.expect("a pace is set").as_secs_f64();
        assert!(
            (48.5..49.5).contains(&pace),
            "50 accepted in the 1 s window, less the headroom: {pace}"
        );
        // Held there: successes do not creep past the limit the API showed.
        for _ in 0..10_000 {
            limiter.succeeded(Instant::now());
        }
        let held = 1.0 / limiter.lock().interval.expect("a pace is set").as_secs_f64();
        assert!((pace - held).abs() < 0.01, "{pace} → {held}");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_pace_the_callers_waiting_out_the_first_429_leave_spaced_not_together() {
        let limiter = RateLimiter::new(None);
        for _ in 0..20 {
            limiter.acquire().await;
            limiter.succeeded(Instant::now());
        }
        limiter.throttled(Duration::from_secs(1), Some(Duration::from_secs(1)));
        let t0 = Instant::now();
        let mut left = Vec::new();
        for _ in 0..5 {
            limiter.acquire().await;
            left.push(Instant::now() - t0);
        }
        assert!(
            left[0] >= Duration::from_secs(1),
            "nobody leaves before the pause ends: {left:?}"
        );
        assert!(
            left.windows(2).all(|w| w[1] - w[0] >= Duration::from_millis(40)),
            "spaced at what was accepted so far (20 in the window): {left:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_callers_waiting_out_the_first_429_leave_at_the_pace_learned_from_it() {
        let limiter = std::sync::Arc::new(RateLimiter::new(None));
        // An opening burst: 50 requests in 0.2 s, of which only 10 have answered at the 429.
        let mut sent = Vec::new();
        for _ in 0..50 {
            limiter.acquire().await;
            sent.push(Instant::now());
            tokio::time::advance(Duration::from_millis(4)).await;
        }
        for t in &sent[..10] {
            limiter.succeeded(*t);
        }
        limiter.throttled(Duration::from_secs(1), Some(Duration::from_secs(1)));
        // Twenty callers line up during the pause; the other 40 answer meanwhile.
        let t0 = Instant::now();
        let waiting: Vec<_> = (0..20)
            .map(|_| {
                let l = limiter.clone();
                tokio::spawn(async move {
                    l.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        tokio::time::advance(Duration::from_millis(100)).await;
        for t in &sent[10..] {
            limiter.succeeded(*t);
        }
        let mut left = Vec::new();
        for w in waiting {
            left.push(w.await.unwrap() - t0);
        }
        left.sort();
        assert!(left[0] >= Duration::from_secs(1), "{left:?}");
        let span = left[19] - left[0];
        // 19 gaps at 49/s: 0.39 s (at the 10 answered by the 429 it would be 1.96 s).
        assert!(
            span >= Duration::from_millis(380) && span <= Duration::from_millis(400),
            "spaced at the 50 accepted in the window, less the headroom: {span:?}"
        );
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
