//! What workers tell each other, once per rebalance interval: each one's recent demand for the
//! route and, for keyed limits, for its heaviest keys. Nothing here is touched per request.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Of the whole budget, the part lent to workers that currently see (almost) no traffic, split
/// evenly among them: enough for a worker to admit a trickle while the next rebalance notices
/// it has demand, small enough that lending it when that traffic arrives costs at most this
/// fraction of over-admission for one interval.
pub(crate) const SHARE_FLOOR: f64 = 0.05;

/// A count this many standard deviations of Poisson noise away from the estimate is a real
/// shift in traffic and is adopted at once instead of being smoothed.
const NOISE_GATE: f64 = 2.5;

/// Requests an estimate should rest on: the smoothing horizon stretches at low rates until it
/// spans about this many requests, since a count of two or three is mostly noise.
const ESTIMATE_SAMPLES: f64 = 16.0;

/// The longest smoothing horizon, in seconds: below `ESTIMATE_SAMPLES` requests per this, shares
/// stay noisy rather than slow to follow a shift.
const MAX_HORIZON: f64 = 1.0;

/// How many keys each worker publishes per interval (its heaviest); bounds both the shared
/// memory per worker and the lookups every other worker makes at each rebalance.
pub const PUBLISHED_KEYS: usize = 128;

/// A key is published only if its demand on this worker is at least this fraction of `rps / N`:
/// a key below it on every worker is under its limit in total; one below it on some workers
/// only is under-counted by at most this fraction of `rps`.
pub(crate) const PUBLISH_FLOOR: f64 = 0.05;

/// Attempts at reading a list that its owner is rewriting before skipping it for this round.
const SEQLOCK_TRIES: usize = 4;

/// Keeps each worker's published figures on their own cache lines (128: adjacent-line prefetch).
#[repr(align(128))]
struct Padded<T>(T);

/// Process-wide, one per route that has a rate limit; created before workers start, shared by
/// `Arc`. Holds only per-worker published figures (atomics written once per rebalance
/// interval), never touched per request.
pub struct RateShared {
    /// Worker i's smoothed demand for the route in requests/s (`f64` bits); written only by i.
    /// NaN until i first publishes: counted as equal to the reader's own, not as zero, so the
    /// first worker to rebalance does not take the whole budget.
    demand: Box<[Padded<AtomicU64>]>,
    /// Keyed limits only: worker i's heaviest keys and their demand; written only by i.
    heavy: OnceLock<Box<[Padded<HeavyList>]>>,
    /// One random SipHash key for the route, so every worker names a client key by the same
    /// 64-bit hash and a client cannot choose keys that collide.
    hasher: RandomState,
}

impl RateShared {
    pub fn new(workers: usize) -> Arc<RateShared> {
        let workers = workers.max(1);
        Arc::new(RateShared {
            demand: (0..workers)
                .map(|_| Padded(AtomicU64::new(f64::NAN.to_bits())))
                .collect(),
            heavy: OnceLock::new(),
            hasher: RandomState::new(),
        })
    }

    pub(crate) fn workers(&self) -> usize {
        self.demand.len()
    }

    pub(crate) fn publish_demand(&self, worker: usize, rate: f64) {
        self.demand[worker]
            .0
            .store(rate.to_bits(), Ordering::Relaxed);
    }

    /// Sum of every worker's last published demand, with `mine` standing in for `worker`'s own
    /// (fresher than what it published, or equal).
    pub(crate) fn total_demand(&self, worker: usize, mine: f64) -> f64 {
        let others: f64 = (self.demand.iter().enumerate())
            .filter(|&(i, _)| i != worker)
            .map(|(_, d)| f64::from_bits(d.0.load(Ordering::Relaxed)))
            .map(|d| if d.is_nan() { mine } else { d })
            .sum();
        others + mine
    }

    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The per-worker key lists, allocated by the first keyed limiter of the route.
    fn heavy(&self) -> &[Padded<HeavyList>] {
        self.heavy.get_or_init(|| {
            (0..self.workers())
                .map(|_| Padded(HeavyList::new()))
                .collect()
        })
    }

    pub(crate) fn publish_keys(&self, worker: usize, keys: &[(u64, f64)]) {
        self.heavy()[worker].0.publish(keys);
    }

    /// Appends worker `from`'s published keys to `out`; false if it was being rewritten.
    pub(crate) fn read_keys(&self, from: usize, out: &mut Vec<(u64, f64)>) -> bool {
        self.heavy()[from].0.read(out)
    }
}

/// One worker's heaviest keys, behind a sequence lock: one writer (the worker), readers retry or
/// skip a list caught mid-write; every field is atomic, so a torn read is detected, not UB.
pub(crate) struct HeavyList {
    /// Odd while the owner writes.
    seq: AtomicU64,
    len: AtomicU64,
    /// Key hash and demand (`f64` bits), in pairs.
    entries: Box<[[AtomicU64; 2]]>,
}

impl HeavyList {
    fn new() -> HeavyList {
        HeavyList {
            seq: AtomicU64::new(0),
            len: AtomicU64::new(0),
            entries: (0..PUBLISHED_KEYS)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
        }
    }

    fn publish(&self, keys: &[(u64, f64)]) {
        let keys = &keys[..keys.len().min(PUBLISHED_KEYS)];
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (slot, &(hash, demand)) in self.entries.iter().zip(keys) {
            slot[0].store(hash, Ordering::Relaxed);
            slot[1].store(demand.to_bits(), Ordering::Relaxed);
        }
        self.len.store(keys.len() as u64, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    fn read(&self, out: &mut Vec<(u64, f64)>) -> bool {
        let base = out.len();
        for _ in 0..SEQLOCK_TRIES {
            out.truncate(base);
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let len = (self.len.load(Ordering::Relaxed) as usize).min(PUBLISHED_KEYS);
            out.extend(self.entries[..len].iter().map(|slot| {
                let hash = slot[0].load(Ordering::Relaxed);
                (hash, f64::from_bits(slot[1].load(Ordering::Relaxed)))
            }));
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return true;
            }
        }
        out.truncate(base);
        false
    }
}

/// This worker's fraction of the budget: proportional to its share of the demand, which in the
/// steady state admits exactly `rps` in total whenever total demand exceeds it, since then every
/// worker's slice is below its own demand; at least `SHARE_FLOOR / N` so that a quiet worker
/// can start admitting before the next rebalance; an equal split when nobody has demand.
pub(crate) fn share(mine: f64, total: f64, workers: usize) -> f64 {
    let n = workers.max(1) as f64;
    if total.is_nan() || total <= 0.0 {
        return 1.0 / n;
    }
    (mine / total).clamp(SHARE_FLOOR / n, 1.0)
}

/// A smoothed request rate: noise is averaged over about `ESTIMATE_SAMPLES` requests, and a
/// shift beyond the noise is adopted in one interval, since every interval the estimate lags is
/// an interval of a wrong split.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Demand {
    rate: f64,
}

impl Demand {
    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    /// Folds in `count` requests seen over the last `dt` seconds; `total` is the demand that
    /// shares this budget (all workers), which sets how long a horizon is needed.
    pub(crate) fn update(&mut self, count: f64, dt: f64, total: f64) {
        let sample = count / dt;
        let expected = self.rate * dt;
        let surprise = (count - expected).abs() / expected.max(1.0).sqrt();
        let horizon = (ESTIMATE_SAMPLES / total).clamp(dt, MAX_HORIZON.max(dt));
        let weight = if surprise > NOISE_GATE {
            1.0
        } else {
            dt / horizon
        };
        self.rate += weight * (sample - self.rate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_is_proportional_with_a_floor_and_an_equal_split_at_rest() {
        assert_eq!(share(0.0, 0.0, 4), 0.25);
        assert_eq!(share(30.0, 40.0, 2), 0.75);
        assert_eq!(share(0.0, 40.0, 2), SHARE_FLOOR / 2.0);
        assert_eq!(share(40.0, 40.0, 2), 1.0);
        assert_eq!(share(5.0, 0.0, 1), 1.0);
    }

    #[test]
    fn demand_smooths_noise_and_jumps_on_a_shift() {
        let mut d = Demand::default();
        d.update(100.0, 0.1, 1000.0);
        assert_eq!(d.rate(), 1000.0);
        // Noise at a high rate: the horizon is one interval, so the count is the estimate.
        d.update(110.0, 0.1, 1000.0);
        assert_eq!(d.rate(), 1100.0);
        d.update(10.0, 0.1, 1000.0); // a real drop: taken at once
        assert_eq!(d.rate(), 100.0);
        // 2 requests/s in all: a count of 0 or 1 per 50 ms moves the estimate by 5% of the way.
        let mut d = Demand { rate: 1.0 };
        d.update(0.0, 0.05, 2.0);
        assert!((d.rate() - 0.95).abs() < 1e-12);
    }

    #[test]
    fn published_keys_round_trip_and_are_capped() {
        let shared = RateShared::new(2);
        let keys: Vec<(u64, f64)> = (0..PUBLISHED_KEYS as u64 + 5)
            .map(|i| (i, i as f64))
            .collect();
        shared.publish_keys(1, &keys);
        let mut out = vec![(7, 7.0)];
        assert!(shared.read_keys(1, &mut out));
        assert_eq!(out.len(), 1 + PUBLISHED_KEYS);
        assert_eq!(out[1..], keys[..PUBLISHED_KEYS]);
        shared.publish_keys(1, &keys[..2]);
        out.clear();
        assert!(shared.read_keys(1, &mut out));
        assert_eq!(out, keys[..2]);
    }

    #[test]
    fn a_list_read_while_rewritten_is_whole_or_skipped() {
        let shared = RateShared::new(2);
        let writer = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for round in 0..20_000u64 {
                    let keys: Vec<(u64, f64)> =
                        (0..16).map(|i| (round, (round * 16 + i) as f64)).collect();
                    shared.publish_keys(0, &keys);
                }
            })
        };
        let mut out = Vec::new();
        while !writer.is_finished() {
            out.clear();
            if shared.read_keys(0, &mut out) && !out.is_empty() {
                let round = out[0].0;
                assert!(out.iter().all(|&(h, _)| h == round), "torn list");
            }
        }
        writer.join().unwrap();
    }
}
