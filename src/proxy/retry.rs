//! Retry policy pieces: the budget that keeps retries from multiplying load during an outage,
//! and the marker header that stops retry storms through chains of proxies.
//!
//! The budget is per worker and per route: over the last `BUDGET_WINDOW`, retries (and hedges)
//! may be at most `budget` × first attempts, plus `MIN_RETRIES` so a quiet route can still retry
//! at all. Counts live in a ring of time buckets; nothing is allocated per request.

use std::time::{Duration, Instant};

/// Header on every retried or hedged request sent upstream (value: the attempt number, 1 = first
/// retry). A request that arrives with it was already retried by a proxy in front: we do not
/// retry it again.
pub const RETRY_HEADER: &str = "x-coregate-retry";
/// The sliding window the budget looks at.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(10);
/// Buckets in the window (its resolution: a bucket is `BUDGET_WINDOW / BUDGET_BUCKETS`).
pub const BUDGET_BUCKETS: usize = 10;
/// Retries allowed per window whatever the traffic, so a route with little traffic can retry.
pub const MIN_RETRIES: u32 = 3;

/// First attempts and retries over the last `BUDGET_WINDOW`.
pub struct Budget {
    ratio: f64,
    firsts: [u32; BUDGET_BUCKETS],
    retries: [u32; BUDGET_BUCKETS],
    /// Index of the bucket `current_start` belongs to.
    current: usize,
    current_start: Instant,
}

impl Budget {
    pub fn new(ratio: f64, now: Instant) -> Budget {
        Budget {
            ratio,
            firsts: [0; BUDGET_BUCKETS],
            retries: [0; BUDGET_BUCKETS],
            current: 0,
            current_start: now,
        }
    }

    /// Counts a request's first attempt.
    pub fn first(&mut self, now: Instant) {
        self.advance(now);
        self.firsts[self.current] += 1;
    }

    /// Takes one retry from the budget if there is room; `false` means fail fast.
    pub fn try_retry(&mut self, now: Instant) -> bool {
        self.advance(now);
        let firsts: u32 = self.firsts.iter().sum();
        let retries: u32 = self.retries.iter().sum();
        let allowed = (f64::from(firsts) * self.ratio) as u32 + MIN_RETRIES;
        if retries >= allowed {
            return false;
        }
        self.retries[self.current] += 1;
        true
    }

    /// Moves the ring forward to `now`, clearing buckets that fell out of the window.
    fn advance(&mut self, now: Instant) {
        let width = BUDGET_WINDOW / BUDGET_BUCKETS as u32;
        let elapsed = now.saturating_duration_since(self.current_start);
        let steps = (elapsed.as_nanos() / width.as_nanos()) as usize;
        if steps == 0 {
            return;
        }
        for _ in 0..steps.min(BUDGET_BUCKETS) {
            self.current = (self.current + 1) % BUDGET_BUCKETS;
            self.firsts[self.current] = 0;
            self.retries[self.current] = 0;
        }
        self.current_start += width * steps as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_a_fraction_of_first_attempts() {
        let t = Instant::now();
        let mut b = Budget::new(0.1, t);
        for _ in 0..100 {
            b.first(t);
        }
        let granted = (0..100).filter(|_| b.try_retry(t)).count() as u32;
        assert_eq!(granted, 10 + MIN_RETRIES);
    }

    #[test]
    fn the_window_slides() {
        let t = Instant::now();
        let mut b = Budget::new(0.0, t);
        let granted = (0..10).filter(|_| b.try_retry(t)).count() as u32;
        assert_eq!(granted, MIN_RETRIES);
        assert!(!b.try_retry(t + BUDGET_WINDOW / 2));
        assert!(b.try_retry(t + BUDGET_WINDOW + Duration::from_millis(1)));
    }
}
