//! The client-side rate limiter shared by every request to one Genesys org.
//!
//! A known rate (configured, or learned from the API's 429s) is held as a sliding window, the way
//! the API counts: at most `cap` requests leave in any `span`, where `cap` is what the rate
//! allows in about a second and `span` that second stretched by the headroom. A run therefore
//! starts with a full window instead of ramping up from nothing, and then holds the rate less
//! the headroom (2%, which absorbs network and scheduling jitter so a server counting arrivals
//! never sees more than its limit). When the API answers 429 anyway, everybody pauses until its
//! `Retry-After` has passed and requests are spaced evenly, a tenth slower than before, or at
//! what the API accepted in the `Retry-After` window before the 429 (less the headroom),
//! whichever is slower; successes bring the spacing back to the rate (without a configured one:
//! to the learned pace, which it then holds: creeping beyond it only overshoots the same limit
//! again). One 429 storm therefore lowers the pace once, not once per request, and even
//! `--rate-limit off` settles just under the server's real limit instead of bursting into it
//! again and again. Nobody is given a turn during a pause: turns are handed out when it ends, so
//! the first of them already go at the pace learned from it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Spaces requests to at most a configured rate, and pauses everyone after a 429.
#[derive(Debug)]
pub struct RateLimiter {
    configured: Option<Duration>,
    configured_window: Option<Window>,
    state: Mutex<State>,
}

/// At most `cap` requests leave in any `span`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    cap: usize,
    span: Duration,
}

impl Window {
    /// The window holding `per_second` less the headroom: `cap` is what the rate allows in a
    /// second (at least one request), `span` a second (or the time one request takes at a rate
    /// below one a second), stretched by the headroom. No second ever holds more than the rate.
    fn for_rate(per_second: f64) -> Option<Window> {
        if !per_second.is_finite() || per_second <= 0.0 {
            return None;
        }
        let cap = (per_second.floor() as usize).clamp(1, 100_000);
        let span = Duration::from_secs_f64((cap as f64 / per_second).max(1.0) / WINDOW_HEADROOM);
        Some(Window { cap, span })
    }
}

#[derive(Debug)]
struct State {
    /// Even spacing, after a 429 (and while the API has not shown its limit).
    interval: Option<Duration>,
    next_slot: Instant,
    paused_until: Instant,
    /// The sliding window in force, and when the requests in it left.
    window: Option<Window>,
    sent: VecDeque<Instant>,
    /// When recently accepted requests were sent (the last `MAX_WINDOW`, at most `MAX_RECENT`).
    recent: VecDeque<Instant>,
    /// A 429 at this instant whose `Retry-After` (the window) is still to be learned from, once
    /// the requests sent before it have all answered.
    pending_estimate: Option<(Instant, Duration)>,
    /// The pace learned from the last throttling: without a configured rate, the pace recovers up
    /// to it and holds it.
    learned: Option<Duration>,
}

/// The share of a learned rate used when spacing evenly after a 429.
pub const HEADROOM: f64 = 0.97;
/// The share of a known rate a sliding window uses: the window is stretched by 2%, so a request
/// leaves no sooner than a window and 20 ms (at one a second) after the one `cap` before it.
pub const WINDOW_HEADROOM: f64 = 0.98;
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
            .map(|r| Duration::from_secs_f64(1.0 / (r * WINDOW_HEADROOM)));
        let configured_window = per_second.and_then(Window::for_rate);
        let now = Instant::now();
        RateLimiter {
            configured,
            configured_window,
            state: Mutex::new(State {
                interval: None,
                next_slot: now,
                paused_until: now,
                window: configured_window,
                sent: VecDeque::new(),
                recent: VecDeque::new(),
                pending_estimate: None,
                learned: None,
            }),
        }
    }

    /// The pace in requests per second (the configured rate less the window's headroom), if limited.
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
            s.apply_pending_estimate(now, self.configured.is_some());
            let mut start = now.max(s.next_slot).max(s.paused_until);
            if let Some(interval) = s.interval {
                s.next_slot = start + interval;
            }
            if let Some(w) = s.window {
                while s.sent.len() >= w.cap {
                    let Some(oldest) = s.sent.pop_front() else { break };
                    start = start.max(oldest + w.span);
                }
                s.sent.push_back(start);
            }
            start
        };
        tokio::time::sleep_until(start).await;
        // The first request after a pause is the one to learn from it.
        self.lock()
            .apply_pending_estimate(Instant::now(), self.configured.is_some());
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
            // From a sliding window to even spacing, a tenth slower than the window's rate.
            let current = s.interval.or(s.window.map(|w| w.span / w.cap as u32));
            s.interval = current.map(|i| i.mul_f64(SLOWDOWN));
            s.window = None;
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
                let next = current.mul_f64(RECOVERY).max(configured);
                if next == configured {
                    // Back at the configured rate: its window again (the requests in it so
                    // far left evenly spaced, so none is owed).
                    s.window = self.configured_window;
                    s.sent.clear();
                }
                Some(next)
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
    fn apply_pending_estimate(&mut self, now: Instant, configured: bool) {
        if now >= self.paused_until
            && let Some((at, window)) = self.pending_estimate.take()
        {
            self.learn_from_throttling(at, window, configured);
        }
    }

    /// Sets the pace from the requests the API accepted in the `window` before a 429 at `at`.
    fn learn_from_throttling(&mut self, at: Instant, window: Duration, configured: bool) {
        let from = at.checked_sub(window).unwrap_or(at);
        let accepted = self.recent.iter().filter(|t| **t >= from && **t <= at).count();
        if accepted < MIN_OBSERVED {
            return; // too little to learn from
        }
        let observed = Duration::from_secs_f64(window.as_secs_f64() / (accepted as f64 * HEADROOM));
        if !configured {
            // The API showed its window: hold it as one (less the headroom), as a known rate is.
            let w = Window {
                cap: accepted,
                span: window.div_f64(WINDOW_HEADROOM),
            };
            tracing::info!(
                "the API accepted {accepted} requests in the {:.1}s before throttling; sending at most {accepted} every {:.2}s",
                window.as_secs_f64(),
                w.span.as_secs_f64()
            );
            (self.window, self.interval, self.learned) = (Some(w), None, Some(observed));
            // The requests that left within the last span still count against it.
            let since = at.checked_sub(w.span).unwrap_or(at);
            self.sent = self.recent.iter().copied().filter(|t| *t >= since).collect();
            while self.sent.len() > w.cap {
                self.sent.pop_front();
            }
            return;
        }
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
    async fn a_configured_rate_sends_one_window_at_once_then_holds_the_rate_less_the_headroom() {
        let limiter = RateLimiter::new(Some(10.0));
        let t0 = Instant::now();
        for _ in 0..10 {
            limiter.acquire().await;
        }
        assert_eq!(Instant::now(), t0, "a full window at the start");
        for _ in 0..20 {
            limiter.acquire().await;
        }
        let elapsed = (Instant::now() - t0).as_secs_f64();
        assert!((elapsed - 2.0 / WINDOW_HEADROOM).abs() < 0.005, "{elapsed}");
        // A rate that is not whole: no second ever holds more than it allows.
        let limiter = RateLimiter::new(Some(7.5));
        let mut left = Vec::new();
        for _ in 0..60 {
            limiter.acquire().await;
            left.push(Instant::now());
            tokio::time::advance(Duration::from_millis(13)).await;
        }
        for (i, t) in left.iter().enumerate() {
            let in_a_second = left[i..].iter().filter(|u| **u < *t + Duration::from_secs(1)).count();
            assert!(
                in_a_second <= 7,
                "{in_a_second} requests within a second of request {i}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_everyone_and_slows_the_rate_once() {
        let limiter = RateLimiter::new(Some(10.0 / WINDOW_HEADROOM));
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
        assert_eq!(limiter.lock().window, limiter.configured_window, "back to the window");
    }

    /// 50 requests accepted over one second, then a 429 with a one-second `Retry-After`.
    async fn fifty_then_a_429(limiter: &RateLimiter) {
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
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_limit_a_429_sets_the_window_to_what_the_api_accepted() {
        let limiter = RateLimiter::new(None);
        for _ in 0..30 {
            limiter.succeeded(Instant::now());
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        fifty_then_a_429(&limiter).await;
        // ...and the window is learned when the pause is over.
        limiter.acquire().await;
        let w = limiter.lock().window.expect("a window is set");
        assert_eq!(w.cap, 50);
        assert!((w.span.as_secs_f64() - 1.0 / WINDOW_HEADROOM).abs() < 0.001, "{w:?}");
        // Held there: successes do not creep past the limit the API showed.
        for _ in 0..10_000 {
            limiter.succeeded(Instant::now());
        }
        assert_eq!(limiter.lock().window, Some(w));
        assert_eq!(limiter.lock().interval, None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_callers_waiting_out_the_first_429_never_exceed_the_window_learned_from_it() {
        let limiter = std::sync::Arc::new(RateLimiter::new(None));
        fifty_then_a_429(&limiter).await;
        let t0 = Instant::now();
        let waiting: Vec<_> = (0..120)
            .map(|_| {
                let l = limiter.clone();
                tokio::spawn(async move {
                    l.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        let mut left = Vec::new();
        for w in waiting {
            left.push(w.await.unwrap());
        }
        left.sort();
        assert!(
            left[0] >= t0 + Duration::from_secs(1),
            "nobody leaves before the pause ends"
        );
        for (i, t) in left.iter().enumerate() {
            let in_a_second = left[i..].iter().filter(|u| **u < *t + Duration::from_secs(1)).count();
            assert!(
                in_a_second <= 50,
                "{in_a_second} requests within a second of request {i}"
            );
        }
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
