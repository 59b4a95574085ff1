//! `key = "global"`: one bucket per worker for the whole route, sized by the worker's share.

use std::sync::Arc;

use super::bucket::Bucket;
use super::shares::{share, Demand, RateShared};

/// A worker's slice of a route-wide budget.
pub(crate) struct Global {
    rps: f64,
    burst: f64,
    shared: Arc<RateShared>,
    worker: usize,
    /// Fraction of `rps` and `burst` this worker enforces until the next rebalance.
    share: f64,
    bucket: Bucket,
    /// Requests seen (admitted and rejected) since the last rebalance: demand, not throughput,
    /// so a starved worker's share can grow.
    seen: u64,
    demand: Demand,
    /// The route's total demand at the last rebalance: sets how much smoothing is needed.
    total: f64,
}

impl Global {
    pub(crate) fn new(rps: f64, burst: f64, shared: Arc<RateShared>, worker: usize) -> Global {
        let share = share(0.0, 0.0, shared.workers());
        Global {
            rps,
            burst,
            shared,
            worker,
            share,
            bucket: Bucket::full(capacity(burst, share), 0),
            seen: 0,
            demand: Demand::default(),
            total: 0.0,
        }
    }

    pub(crate) fn check(&mut self, now: u64) -> Result<(), u64> {
        self.seen += 1;
        let rate = self.rps * self.share;
        // A starved worker's slice grows within an interval, so never quote more than the wait
        // at an equal split.
        let retry_rate = rate.max(self.rps / self.shared.workers() as f64);
        (self.bucket).take(now, rate, capacity(self.burst, self.share), retry_rate)
    }

    /// Publishes the demand seen over the last `dt` seconds and adopts the share it implies.
    pub(crate) fn rebalance(&mut self, now: u64, dt: f64) {
        self.demand.update(self.seen as f64, dt, self.total);
        self.seen = 0;
        let mine = self.demand.rate();
        self.shared.publish_demand(self.worker, mine);
        self.total = self.shared.total_demand(self.worker, mine);
        let new = share(mine, self.total, self.shared.workers());
        // Tokens earned so far were earned at the old rate; the new capacity caps what is kept.
        let (old_rate, old_cap) = (self.rps * self.share, capacity(self.burst, self.share));
        self.bucket.refill(now, old_rate, old_cap);
        self.share = new;
        self.bucket
            .refill(now, self.rps * new, capacity(self.burst, new));
    }
}

/// `burst × share`, but at least one token, or a worker with a small share could never admit.
pub(crate) fn capacity(burst: f64, share: f64) -> f64 {
    (burst * share).max(1.0)
}
