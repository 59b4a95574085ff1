//! Rate limiting: a token bucket per route (`key = "global"`) or per client key (`client_ip`,
//! `header:NAME`), enforced by every worker on its own slice of the budget.
//!
//! No counter is shared per request. Each worker owns a [`Limiter`] per limited route and
//! enforces `rps × share` with a bucket of `burst × share`; every [`REBALANCE_INTERVAL`] it
//! publishes the demand it saw (admitted and rejected requests) in the route's [`RateShared`]
//! and takes as its share its fraction of the total demand, so that the slices follow where
//! traffic actually lands. Keyed limits do the same per key for the keys heavy enough to be
//! published (see `keyed.rs`). `docs/rate-limiting.md` explains the design and the measured
//! accuracy.
//!
//! Time is always passed in, so everything here is deterministic under a fake clock.

mod bucket;
mod global;
mod keyed;
mod shares;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{RateLimit, RequestKey};

pub use keyed::MAX_KEYS;
pub use shares::{RateShared, PUBLISHED_KEYS};

/// How often each worker re-splits the budget: shorter follows moving traffic sooner (traffic
/// moving wholly to another worker costs about one interval of admissions) at the price of
/// noisier demand estimates at low rates and of `N` atomic loads per route per interval.
pub const REBALANCE_INTERVAL: Duration = Duration::from_millis(50);

/// A `rebalance` sooner than this fraction of the interval after the last one is skipped (a
/// doubled timer, say): a count over a sliver of time is mostly noise.
const MIN_REBALANCE_FRACTION: f64 = 0.25;

/// The key used when a keyed route's request has no key (the header is absent): all such
/// requests share one bucket, so dropping the header does not escape the limit.
const MISSING_KEY: &[u8] = b"";

/// One worker's slice for one route.
pub struct Limiter {
    /// The limiter's clock starts here; times are kept as nanoseconds since it.
    origin: Instant,
    last_rebalance: u64,
    kind: Kind,
}

enum Kind {
    Global(global::Global),
    Keyed(Box<keyed::Keyed>),
}

impl Limiter {
    /// `worker` must be below the `workers` given to [`RateShared::new`].
    pub fn new(cfg: &RateLimit, shared: Arc<RateShared>, worker: usize, now: Instant) -> Limiter {
        assert!(
            worker < shared.workers(),
            "worker {worker} of a rate limit shared by {}",
            shared.workers()
        );
        let kind = match cfg.key {
            RequestKey::Global => {
                Kind::Global(global::Global::new(cfg.rps, cfg.burst, shared, worker))
            }
            // Cookie and path keys are refused for rate limits by the config; they would work.
            _ => Kind::Keyed(Box::new(keyed::Keyed::new(
                cfg.rps, cfg.burst, shared, worker,
            ))),
        };
        Limiter {
            origin: now,
            last_rebalance: 0,
            kind,
        }
    }

    /// Takes one token for `key` (None = the route's global bucket; Some(bytes) = client ip
    /// bytes or the header value). Err = seconds until a token is likely (for Retry-After, at
    /// least 1).
    ///
    /// A global route ignores `key`; a keyed route treats `None` as one shared "no key" key.
    pub fn check(&mut self, key: Option<&[u8]>, now: Instant) -> Result<(), u64> {
        let t = self.nanos(now);
        match &mut self.kind {
            Kind::Global(g) => g.check(t),
            Kind::Keyed(k) => k.check(key.unwrap_or(MISSING_KEY), t),
        }
    }

    /// Called by the worker every REBALANCE_INTERVAL: publishes this worker's recent demand and
    /// adopts its new share.
    pub fn rebalance(&mut self, now: Instant) {
        let t = self.nanos(now);
        let dt = t.saturating_sub(self.last_rebalance) as f64 / 1e9;
        if dt < REBALANCE_INTERVAL.as_secs_f64() * MIN_REBALANCE_FRACTION {
            return;
        }
        self.last_rebalance = t;
        match &mut self.kind {
            Kind::Global(g) => g.rebalance(t, dt),
            Kind::Keyed(k) => k.rebalance(t, dt),
        }
    }

    /// Keys whose state this worker holds for the route (0 for a global limit); at most
    /// [`MAX_KEYS`].
    pub fn keys(&self) -> usize {
        match &self.kind {
            Kind::Global(_) => 0,
            Kind::Keyed(k) => k.len(),
        }
    }

    fn nanos(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_nanos() as u64
    }
}
