//! The circuit breaker of one upstream on one worker: sans-I/O, the caller passes the time.
//!
//! - **Closed**: every request goes through; outcomes are counted over a sliding `window` made of
//!   [`BUCKETS`] time buckets (so the window seen is between `(BUCKETS-1)/BUCKETS` of `window` and
//!   all of it). Once the window holds at least `min_requests` outcomes and
//!   `errors / requests >= error_rate`, the breaker opens.
//! - **Open**: nothing goes through until `open_for` has passed; then it is half-open.
//! - **HalfOpen**: at most `half_open_probes` requests go through, as probes. When all of them
//!   succeed it closes with an empty window; when one fails it opens again for a full `open_for`.
//!   A probe round that has not concluded within `open_for` (a probe cancelled before its outcome
//!   was recorded) starts over, so a lost probe cannot wedge the breaker half-open.
//!
//! Outcomes of requests admitted in an earlier state (a request sent while closed that fails
//! after the breaker opened) are ignored: only closed-state outcomes fill the window and only
//! probes decide a half-open round (a probe from a round that was started over counts toward the
//! new one: `Admit` carries no round number).

use crate::config::CircuitBreaker;
use std::time::{Duration, Instant};

/// Time buckets in the sliding window: finer slides more smoothly, coarser costs less to sum.
pub const BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

/// Whether one request may go to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// A half-open trial request: record its outcome with `probe = true`.
    Probe,
    No,
}

/// Outcomes in one time bucket.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    requests: u32,
    errors: u32,
}

/// Outcomes over the last `BUCKETS` bucket widths, with running totals.
#[derive(Debug)]
struct Window {
    buckets: [Bucket; BUCKETS],
    /// Start of bucket number 0.
    epoch: Instant,
    /// Bucket width: `window / BUCKETS` (at least 1ns).
    width: Duration,
    /// Number, counted from `epoch`, of the newest bucket (stored at `head % BUCKETS`).
    head: u64,
    requests: u64,
    errors: u64,
}

impl Window {
    fn new(window: Duration, now: Instant) -> Window {
        Window {
            buckets: [Bucket::default(); BUCKETS],
            epoch: now,
            width: (window / BUCKETS as u32).max(Duration::from_nanos(1)),
            head: 0,
            requests: 0,
            errors: 0,
        }
    }

    /// Empties the window, starting it at `now`.
    fn reset(&mut self, now: Instant) {
        *self = Window::new(self.width * BUCKETS as u32, now);
    }

    /// Moves the head to the bucket holding `now`, emptying the buckets that fell out.
    fn advance(&mut self, now: Instant) {
        let slot = (now.saturating_duration_since(self.epoch).as_nanos() / self.width.as_nanos())
            .min(u128::from(u64::MAX)) as u64;
        if slot <= self.head {
            // Same bucket, or a time from before it (outcomes can arrive out of order).
            return;
        }
        let expired = (slot - self.head).min(BUCKETS as u64);
        for k in 1..=expired {
            let b = &mut self.buckets[((self.head + k) % BUCKETS as u64) as usize];
            self.requests -= u64::from(b.requests);
            self.errors -= u64::from(b.errors);
            *b = Bucket::default();
        }
        self.head = slot;
    }

    fn add(&mut self, now: Instant, ok: bool) {
        if self.requests == 0 {
            // Empty (so every bucket is): anchor the buckets at the first outcome.
            self.epoch = now;
            self.head = 0;
        }
        self.advance(now);
        let b = &mut self.buckets[(self.head % BUCKETS as u64) as usize];
        b.requests = b.requests.saturating_add(1);
        self.requests += 1;
        if !ok {
            b.errors = b.errors.saturating_add(1);
            self.errors += 1;
        }
    }
}

/// One upstream's breaker on one worker.
#[derive(Debug)]
pub struct Breaker {
    state: State,
    error_rate: f64,
    min_requests: u64,
    open_for: Duration,
    probes: u32,
    window: Window,
    /// When the breaker last opened (Open) or the current probe round began (HalfOpen).
    since: Instant,
    /// Probes admitted and probes succeeded in the current half-open round.
    probes_sent: u32,
    probes_ok: u32,
}

impl Breaker {
    pub fn new(cfg: &CircuitBreaker) -> Breaker {
        // Placeholder times only: the window re-anchors at its first outcome, `since` on opening.
        let now = Instant::now();
        Breaker {
            state: State::Closed,
            error_rate: cfg.error_rate,
            min_requests: u64::from(cfg.min_requests),
            open_for: cfg.open_for,
            probes: cfg.half_open_probes.max(1),
            window: Window::new(cfg.window, now),
            since: now,
            probes_sent: 0,
            probes_ok: 0,
        }
    }

    /// Whether a request may go to the upstream at `now` (Open → HalfOpen once open_for has passed).
    pub fn admit(&mut self, now: Instant) -> Admit {
        match self.state {
            State::Closed => return Admit::Yes,
            State::Open if now.saturating_duration_since(self.since) < self.open_for => {
                return Admit::No
            }
            State::Open => self.begin_probes(now),
            State::HalfOpen => {
                if self.probes_sent >= self.probes
                    && now.saturating_duration_since(self.since) >= self.open_for
                {
                    self.begin_probes(now);
                }
            }
        }
        if self.probes_sent < self.probes {
            self.probes_sent += 1;
            Admit::Probe
        } else {
            Admit::No
        }
    }

    /// The outcome of an admitted request; returns Some(new_state) when the state changed (for the log).
    pub fn record(&mut self, now: Instant, ok: bool, probe: bool) -> Option<State> {
        match (self.state, probe) {
            (State::Closed, false) => {
                self.window.add(now, ok);
                let w = &self.window;
                // Divided, not cross-multiplied: 3 errors of 30 meet an error_rate of 0.1 exactly.
                let tripped = w.requests >= self.min_requests.max(1)
                    && w.errors as f64 / w.requests as f64 >= self.error_rate;
                tripped.then(|| self.open(now))
            }
            (State::HalfOpen, true) if !ok => Some(self.open(now)),
            (State::HalfOpen, true) => {
                self.probes_ok += 1;
                (self.probes_ok >= self.probes).then(|| {
                    self.state = State::Closed;
                    self.window.reset(now);
                    State::Closed
                })
            }
            // Late outcomes from an earlier state.
            _ => None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    fn open(&mut self, now: Instant) -> State {
        self.state = State::Open;
        self.since = now;
        State::Open
    }

    fn begin_probes(&mut self, now: Instant) {
        self.state = State::HalfOpen;
        self.since = now;
        self.probes_sent = 0;
        self.probes_ok = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configured window: 10 buckets of 1s.
    const WINDOW: Duration = Duration::from_secs(10);
    /// The configured open time.
    const OPEN_FOR: Duration = Duration::from_secs(5);

    fn cfg() -> CircuitBreaker {
        CircuitBreaker {
            error_rate: 0.5,
            min_requests: 10,
            window: WINDOW,
            open_for: OPEN_FOR,
            half_open_probes: 3,
        }
    }

    /// A fake clock: `at(ms)` is a fixed start plus `ms` milliseconds.
    struct Clock(Instant);

    impl Clock {
        fn new() -> Clock {
            Clock(Instant::now())
        }
        fn at(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }
    }

    /// Records `n` outcomes at `now`, returning the last state change.
    fn feed(b: &mut Breaker, now: Instant, n: u32, ok: bool) -> Option<State> {
        let mut changed = None;
        for _ in 0..n {
            assert_eq!(b.admit(now), Admit::Yes);
            changed = b.record(now, ok, false).or(changed);
        }
        changed
    }

    /// A breaker opened at `at(0)`.
    fn opened(c: &Clock) -> Breaker {
        let mut b = Breaker::new(&cfg());
        assert_eq!(feed(&mut b, c.at(0), 10, false), Some(State::Open));
        b
    }

    #[test]
    fn closed_admits_everything() {
        let c = Clock::new();
        let mut b = Breaker::new(&cfg());
        assert_eq!(b.state(), State::Closed);
        assert_eq!(feed(&mut b, c.at(0), 100, true), None);
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn stays_closed_below_min_requests_even_at_full_error_rate() {
        let c = Clock::new();
        let mut b = Breaker::new(&cfg());
        assert_eq!(feed(&mut b, c.at(0), 9, false), None);
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn stays_closed_below_the_error_rate() {
        let c = Clock::new();
        let mut b = Breaker::new(&cfg());
        assert_eq!(feed(&mut b, c.at(0), 11, true), None);
        assert_eq!(feed(&mut b, c.at(1), 10, false), None); // 10/21 < 0.5
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn closed_to_open_at_min_requests_and_error_rate() {
        let c = Clock::new();
        let mut b = Breaker::new(&cfg());
        assert_eq!(feed(&mut b, c.at(0), 5, true), None);
        assert_eq!(feed(&mut b, c.at(100), 4, false), None); // 4/9: too few
        assert_eq!(b.record(c.at(200), false, false), Some(State::Open)); // 5/10
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.admit(c.at(200)), Admit::No);
    }

    #[test]
    fn old_outcomes_slide_out_of_the_window() {
        let c = Clock::new();
        let mut b = Breaker::new(&cfg());
        assert_eq!(feed(&mut b, c.at(0), 9, false), None);
        // A full window later the 9 errors are gone: 9 more errors are still below min_requests.
        assert_eq!(feed(&mut b, c.at(10_000), 9, false), None);
        assert_eq!(b.state(), State::Closed);
        // Within the window they add up.
        assert_eq!(feed(&mut b, c.at(12_000), 1, false), Some(State::Open));
    }

    #[test]
    fn the_window_slides_bucket_by_bucket() {
        let c = Clock::new();
        let mut b = Breaker::new(&cfg());
        let bucket = WINDOW.as_millis() as u64 / BUCKETS as u64;
        // 5 errors in bucket 0, 4 oks in bucket 5: 9 outcomes, below min_requests.
        assert_eq!(feed(&mut b, c.at(0), 5, false), None);
        assert_eq!(feed(&mut b, c.at(5 * bucket), 4, true), None);
        // In bucket 10, bucket 0 has slid out: 0 errors of 5, where 5 of 10 would have tripped.
        assert_eq!(feed(&mut b, c.at(10 * bucket), 1, true), None);
        assert_eq!(b.window.requests, 5);
        assert_eq!(b.window.errors, 0);
        // Still in bucket 9 the errors count: a fresh breaker trips there.
        let mut b = Breaker::new(&cfg());
        assert_eq!(feed(&mut b, c.at(0), 5, false), None);
        assert_eq!(feed(&mut b, c.at(5 * bucket), 4, true), None);
        assert_eq!(
            feed(&mut b, c.at(10 * bucket - 1), 1, true),
            Some(State::Open)
        );
    }

    #[test]
    fn a_long_idle_gap_empties_the_window() {
        let c = Clock::new();
        let mut b = Breaker::new(&cfg());
        assert_eq!(feed(&mut b, c.at(0), 9, false), None);
        assert_eq!(feed(&mut b, c.at(1_000_000_000), 1, false), None);
        assert_eq!(b.window.requests, 1);
    }

    #[test]
    fn out_of_order_outcomes_count_in_the_current_bucket() {
        let c = Clock::new();
        let mut b = Breaker::new(&cfg());
        assert_eq!(feed(&mut b, c.at(5_000), 5, false), None);
        assert_eq!(feed(&mut b, c.at(4_000), 5, false), Some(State::Open));
    }

    #[test]
    fn open_refuses_until_open_for_then_half_open() {
        let c = Clock::new();
        let mut b = opened(&c);
        assert_eq!(b.admit(c.at(0)), Admit::No);
        assert_eq!(b.admit(c.at(4_999)), Admit::No);
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.admit(c.at(5_000)), Admit::Probe);
        assert_eq!(b.state(), State::HalfOpen);
    }

    #[test]
    fn half_open_admits_at_most_the_probes() {
        let c = Clock::new();
        let mut b = opened(&c);
        let t = c.at(5_000);
        assert_eq!(
            [b.admit(t), b.admit(t), b.admit(t), b.admit(t), b.admit(t)],
            [
                Admit::Probe,
                Admit::Probe,
                Admit::Probe,
                Admit::No,
                Admit::No
            ]
        );
    }

    #[test]
    fn half_open_to_closed_when_every_probe_succeeds() {
        let c = Clock::new();
        let mut b = opened(&c);
        let t = c.at(5_000);
        for _ in 0..3 {
            assert_eq!(b.admit(t), Admit::Probe);
        }
        assert_eq!(b.record(t, true, true), None);
        assert_eq!(b.record(t, true, true), None);
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(b.record(t, true, true), Some(State::Closed));
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.admit(t), Admit::Yes);
        // A fresh window: the 10 errors that opened it are forgotten.
        assert_eq!((b.window.requests, b.window.errors), (0, 0));
        assert_eq!(feed(&mut b, t, 9, false), None);
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn half_open_to_open_when_a_probe_fails_and_open_for_restarts() {
        let c = Clock::new();
        let mut b = opened(&c);
        let t = c.at(5_000);
        for _ in 0..3 {
            assert_eq!(b.admit(t), Admit::Probe);
        }
        assert_eq!(b.record(t, true, true), None);
        assert_eq!(b.record(c.at(5_100), false, true), Some(State::Open));
        assert_eq!(b.state(), State::Open);
        // The last probe's late success changes nothing.
        assert_eq!(b.record(c.at(5_200), true, true), None);
        assert_eq!(b.admit(c.at(10_099)), Admit::No);
        assert_eq!(b.admit(c.at(10_100)), Admit::Probe);
        assert_eq!(b.state(), State::HalfOpen);
    }

    #[test]
    fn a_lost_probe_round_starts_over_after_open_for() {
        let c = Clock::new();
        let mut b = opened(&c);
        for _ in 0..3 {
            assert_eq!(b.admit(c.at(5_000)), Admit::Probe);
        }
        // The probes never report back.
        assert_eq!(b.admit(c.at(9_999)), Admit::No);
        assert_eq!(b.admit(c.at(10_000)), Admit::Probe);
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(b.record(c.at(10_001), true, true), None);
        assert_eq!(b.admit(c.at(10_001)), Admit::Probe);
        assert_eq!(b.admit(c.at(10_001)), Admit::Probe);
        assert_eq!(b.admit(c.at(10_001)), Admit::No);
        assert_eq!(b.record(c.at(10_002), true, true), None);
        assert_eq!(b.record(c.at(10_002), true, true), Some(State::Closed));
    }

    #[test]
    fn late_ordinary_outcomes_do_not_move_open_or_half_open() {
        let c = Clock::new();
        let mut b = opened(&c);
        assert_eq!(b.record(c.at(1), true, false), None);
        assert_eq!(b.record(c.at(1), false, false), None);
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.admit(c.at(5_000)), Admit::Probe);
        for ok in [true, false, true] {
            assert_eq!(b.record(c.at(5_001), ok, false), None);
        }
        assert_eq!(b.state(), State::HalfOpen);
        // A stray probe outcome while closed is not a window outcome either.
        let mut b = Breaker::new(&cfg());
        for _ in 0..20 {
            assert_eq!(b.record(c.at(0), false, true), None);
        }
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn the_error_rate_is_met_exactly() {
        let c = Clock::new();
        let mut b = Breaker::new(&CircuitBreaker {
            error_rate: 0.1,
            min_requests: 30,
            ..cfg()
        });
        assert_eq!(feed(&mut b, c.at(0), 27, true), None);
        assert_eq!(feed(&mut b, c.at(0), 2, false), None);
        assert_eq!(feed(&mut b, c.at(0), 1, false), Some(State::Open)); // 3/30
    }

    #[test]
    fn an_error_rate_of_one_needs_every_request_to_fail() {
        let c = Clock::new();
        let mut b = Breaker::new(&CircuitBreaker {
            error_rate: 1.0,
            ..cfg()
        });
        assert_eq!(feed(&mut b, c.at(0), 1, true), None);
        assert_eq!(feed(&mut b, c.at(0), 20, false), None);
        let mut b = Breaker::new(&CircuitBreaker {
            error_rate: 1.0,
            ..cfg()
        });
        assert_eq!(feed(&mut b, c.at(0), 10, false), Some(State::Open));
    }
}
