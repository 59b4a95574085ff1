//! Passive health: what a worker learns from its own traffic. `max_fails` consecutive failures
//! (connect errors, resets, 5xx) eject an endpoint from this worker's picks for `fail_timeout`,
//! doubled on each repeat up to `MAX_EJECTION`; it returns when that time is up or when an
//! active probe passes.
//!
//! Each worker keeps its own view (no shared counter per request), so with N workers an endpoint
//! that fails every request is ejected by each worker after `max_fails` of that worker's requests:
//! at most N × `max_fails` failed requests in all before every worker avoids it.

use crate::config::defaults::MAX_EJECTION;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default)]
struct Outlier {
    /// Consecutive failures so far.
    fails: u32,
    /// Ejected until then.
    until: Option<Instant>,
    /// Ejections in a row (the back-off exponent); reset by a success after a return.
    times: u32,
    /// Active-probe passes seen when ejected: a later pass lets the endpoint back early.
    passes_at_eject: u32,
}

/// One worker's passive view of one upstream's endpoints.
pub struct Outliers {
    eps: Vec<Outlier>,
    max_fails: u32,
    base: Duration,
}

impl Outliers {
    pub fn new(endpoints: usize, max_fails: u32, base: Duration) -> Outliers {
        Outliers {
            eps: vec![Outlier::default(); endpoints],
            max_fails,
            base,
        }
    }

    /// Whether the endpoint is ejected at `now`; `passes` is the active checks' pass count.
    pub fn ejected(&mut self, ep: usize, now: Instant, passes: u32) -> bool {
        let o = &mut self.eps[ep];
        match o.until {
            Some(t) if now < t && passes == o.passes_at_eject => true,
            Some(_) => {
                o.until = None;
                o.fails = 0;
                false
            }
            None => false,
        }
    }

    /// `ejected` without its side effect (a returned endpoint is forgotten at its next pick):
    /// for reports.
    pub fn is_ejected(&self, ep: usize, now: Instant, passes: u32) -> bool {
        let o = &self.eps[ep];
        matches!(o.until, Some(t) if now < t && passes == o.passes_at_eject)
    }

    /// Records an outcome; returns the ejection's length when this failure ejected the endpoint.
    pub fn record(&mut self, ep: usize, ok: bool, now: Instant, passes: u32) -> Option<Duration> {
        let o = &mut self.eps[ep];
        if ok {
            o.fails = 0;
            if o.until.is_none() {
                o.times = 0;
            }
            return None;
        }
        o.fails += 1;
        if self.max_fails == 0 || o.fails < self.max_fails || o.until.is_some() {
            return None;
        }
        let length = self
            .base
            .saturating_mul(1u32 << o.times.min(16))
            .min(MAX_EJECTION);
        o.until = Some(now + length);
        o.times += 1;
        o.passes_at_eject = passes;
        Some(length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejects_after_max_fails_and_backs_off() {
        let t0 = Instant::now();
        let mut o = Outliers::new(2, 3, Duration::from_secs(10));
        assert_eq!(o.record(0, false, t0, 0), None);
        assert_eq!(o.record(0, false, t0, 0), None);
        assert_eq!(o.record(0, false, t0, 0), Some(Duration::from_secs(10)));
        assert!(o.ejected(0, t0 + Duration::from_secs(9), 0));
        assert!(!o.ejected(1, t0, 0));
        // Back after the ejection; failing again doubles it.
        assert!(!o.ejected(0, t0 + Duration::from_secs(10), 0));
        let t1 = t0 + Duration::from_secs(10);
        for _ in 0..2 {
            assert_eq!(o.record(0, false, t1, 0), None);
        }
        assert_eq!(o.record(0, false, t1, 0), Some(Duration::from_secs(20)));
        // A success after returning resets the back-off.
        let t2 = t1 + Duration::from_secs(20);
        assert!(!o.ejected(0, t2, 0));
        o.record(0, true, t2, 0);
        for _ in 0..2 {
            o.record(0, false, t2, 0);
        }
        assert_eq!(o.record(0, false, t2, 0), Some(Duration::from_secs(10)));
    }

    #[test]
    fn an_active_pass_ends_the_ejection_and_zero_disables() {
        let t0 = Instant::now();
        let mut o = Outliers::new(1, 1, Duration::from_secs(60));
        assert!(o.record(0, false, t0, 7).is_some());
        assert!(o.ejected(0, t0, 7));
        assert!(!o.ejected(0, t0, 8));
        let mut off = Outliers::new(1, 0, Duration::from_secs(60));
        for _ in 0..100 {
            assert_eq!(off.record(0, false, t0, 0), None);
        }
        assert!(!off.ejected(0, t0, 0));
    }

    #[test]
    fn ejection_is_capped() {
        let t0 = Instant::now();
        let mut o = Outliers::new(1, 1, Duration::from_secs(100));
        let mut t = t0;
        let mut last = Duration::ZERO;
        for _ in 0..10 {
            last = o.record(0, false, t, 0).unwrap();
            t += last;
            assert!(!o.ejected(0, t, 0));
        }
        assert_eq!(last, MAX_EJECTION);
    }
}
