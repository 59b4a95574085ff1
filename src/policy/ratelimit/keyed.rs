//! `key = "client_ip"` / `"header:NAME"`: per worker, a bounded table of per-key buckets.
//!
//! A key's bucket enforces `rps × share` where `share` is 1 unless other workers published the
//! same key among their heaviest, in which case it is this worker's fraction of the key's total
//! demand. A key's limit therefore depends on that key's traffic only: a flood on one key or one
//! worker cannot shrink another key's limit.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::bucket::Bucket;
use super::global::capacity;
use super::shares::{share, Demand, RateShared, PUBLISHED_KEYS, PUBLISH_FLOOR};

/// Per route per worker, the most keys whose state is kept; bounds memory under a flood of
/// distinct client addresses or header values (about 100 bytes per key, see the docs).
pub const MAX_KEYS: usize = 65_536;

/// CLOCK steps an insertion may spend sparing recently used keys before it evicts one anyway:
/// bounds the worst-case latency of a request that brings a new key.
const MAX_SWEEP: usize = 64;

/// One key's state on this worker.
#[derive(Debug, Clone)]
struct Entry {
    /// SipHash of the key under the route's random key: the key's only identity here.
    hash: u64,
    bucket: Bucket,
    /// Fraction of `rps` this worker enforces for the key (1 = no other worker reported it).
    share: f32,
    /// Rebalance scratch: the key's demand published by the other workers.
    others: f32,
    demand: Demand,
    /// Requests seen (admitted and rejected) since the last rebalance.
    count: u32,
    /// Epoch whose rebalance last found the key in another worker's list.
    matched: u32,
    /// In `active`: seen recently enough that its demand is still being tracked.
    listed: bool,
    /// CLOCK's bit: used since the hand last passed.
    referenced: bool,
}

/// Identity hasher: the map's keys are already uniform 64-bit SipHash values.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `u64`'s Hash; fold anything else rather than panic.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Key hash → slot, with entries in a slab reused in place: after warm-up, nothing allocates.
struct Table {
    index: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
    entries: Vec<Entry>,
    hand: usize,
    max: usize,
}

/// A worker's per-key buckets for one route.
pub(crate) struct Keyed {
    rps: f64,
    burst: f64,
    shared: Arc<RateShared>,
    worker: usize,
    table: Table,
    /// Advances at every rebalance; entries compare theirs to it instead of being reset.
    epoch: u32,
    /// Slots whose demand is tracked: seen since the last rebalance, or seen before and not yet
    /// decayed (a key at 5 requests/s is absent from most 50 ms intervals, yet still there).
    /// Each slot once; capacity kept ≥ the table, so pushing never allocates.
    active: Vec<u32>,
    /// Slots whose share is below 1, to restore when other workers stop reporting the key.
    reduced: Vec<u32>,
    /// Rebalance scratch, kept to avoid allocating every interval.
    candidates: Vec<(u64, f64)>,
    published: Vec<(u64, f64)>,
    matched: Vec<u32>,
}

/// The first epoch; leaves room below it for "never" (`epoch - 2`).
const FIRST_EPOCH: u32 = 2;

/// A key leaves `active` when its demand falls below this fraction of the publishing threshold:
/// it no longer matters to any share, and tracking it would cost a step per rebalance.
const FORGET_FRACTION: f64 = 0.25;

impl Keyed {
    pub(crate) fn new(rps: f64, burst: f64, shared: Arc<RateShared>, worker: usize) -> Keyed {
        Keyed::with_max_keys(rps, burst, shared, worker, MAX_KEYS)
    }

    pub(crate) fn with_max_keys(
        rps: f64,
        burst: f64,
        shared: Arc<RateShared>,
        worker: usize,
        max: usize,
    ) -> Keyed {
        // Allocate the route's key lists now, not on a worker's first rebalance.
        shared.publish_keys(worker, &[]);
        Keyed {
            rps,
            burst,
            shared,
            worker,
            table: Table {
                index: HashMap::default(),
                entries: Vec::new(),
                hand: 0,
                max: max.max(1),
            },
            epoch: FIRST_EPOCH,
            active: Vec::new(),
            reduced: Vec::new(),
            candidates: Vec::new(),
            published: Vec::new(),
            matched: Vec::new(),
        }
    }

    pub(crate) fn check(&mut self, key: &[u8], now: u64) -> Result<(), u64> {
        let hash = self.shared.hash(key);
        let slot = match self.table.index.get(&hash) {
            Some(&slot) => {
                self.table.entries[slot as usize].referenced = true;
                slot
            }
            None => self.insert(hash, now),
        };
        let entry = &mut self.table.entries[slot as usize];
        if !entry.listed {
            entry.listed = true;
            self.active.push(slot);
        }
        entry.count = entry.count.saturating_add(1);
        let share = f64::from(entry.share);
        let rate = self.rps * share;
        let retry_rate = rate.max(self.rps / self.shared.workers() as f64);
        (entry.bucket).take(now, rate, capacity(self.burst, share), retry_rate)
    }

    /// A slot for a key not in the table: a new one while below `max`, else an evicted one.
    fn insert(&mut self, hash: u64, now: u64) -> u32 {
        let mut fresh = Entry {
            hash,
            bucket: Bucket::full(capacity(self.burst, 1.0), now),
            share: 1.0,
            others: 0.0,
            demand: Demand::default(),
            count: 0,
            matched: self.epoch.wrapping_sub(2),
            listed: false,
            // Unused until its second request: a one-off key is the first to go.
            referenced: false,
        };
        let table = &mut self.table;
        let slot = if table.entries.len() < table.max {
            table.entries.push(fresh);
            if self.active.capacity() < table.entries.len() {
                self.active.reserve(table.entries.len() - self.active.len());
            }
            table.entries.len() - 1
        } else {
            let slot = table.victim(now, self.rps, self.burst);
            let old = &mut table.entries[slot];
            table.index.remove(&old.hash);
            // The newcomer inherits a place in `active`, so the slot is listed once.
            fresh.listed = old.listed;
            *old = fresh;
            slot
        };
        table.index.insert(hash, slot as u32);
        slot as u32
    }

    /// Publishes this worker's heaviest keys of the last `dt` seconds and re-derives the share of
    /// every key that another worker also reported.
    pub(crate) fn rebalance(&mut self, now: u64, dt: f64) {
        let workers = self.shared.workers();
        let threshold = PUBLISH_FLOOR * self.rps / workers as f64;
        let entries = &mut self.table.entries;

        let forget = threshold * FORGET_FRACTION;
        let epoch = self.epoch;
        let candidates = &mut self.candidates;
        candidates.clear();
        self.active.retain(|&slot| {
            let e = &mut entries[slot as usize];
            // The key's total as of the last rebalance, if other workers reported it then.
            let others = if e.matched == epoch {
                f64::from(e.others)
            } else {
                0.0
            };
            e.demand
                .update(f64::from(e.count), dt, e.demand.rate() + others);
            e.count = 0;
            if e.demand.rate() >= threshold {
                candidates.push((e.hash, e.demand.rate()));
            }
            e.listed = e.demand.rate() >= forget;
            if !e.listed {
                e.demand = Demand::default();
            }
            e.listed
        });
        if self.candidates.len() > PUBLISHED_KEYS {
            let heaviest_first = |a: &(u64, f64), b: &(u64, f64)| b.1.total_cmp(&a.1);
            (self.candidates).select_nth_unstable_by(PUBLISHED_KEYS - 1, heaviest_first);
            self.candidates.truncate(PUBLISHED_KEYS);
        }
        if workers == 1 {
            self.epoch = self.epoch.wrapping_add(1);
            return;
        }
        self.shared.publish_keys(self.worker, &self.candidates);

        let next = self.epoch.wrapping_add(1);
        self.matched.clear();
        for other in (0..workers).filter(|&w| w != self.worker) {
            self.published.clear();
            if !self.shared.read_keys(other, &mut self.published) {
                continue;
            }
            for &(hash, demand) in &self.published {
                if let Some(&slot) = self.table.index.get(&hash) {
                    let e = &mut entries[slot as usize];
                    if e.matched != next {
                        e.matched = next;
                        e.others = 0.0;
                        self.matched.push(slot);
                    }
                    e.others += demand as f32;
                }
            }
        }
        for &slot in &self.matched {
            let e = &mut entries[slot as usize];
            let mine = e.demand.rate();
            let s = share(mine, mine + f64::from(e.others), workers);
            set_share(e, s, now, self.rps, self.burst);
        }
        for &slot in &self.reduced {
            let e = &mut entries[slot as usize];
            if e.matched != next && e.share < 1.0 {
                set_share(e, 1.0, now, self.rps, self.burst);
            }
        }
        self.reduced.clear();
        (self.reduced).extend(
            self.matched
                .iter()
                .filter(|&&s| entries[s as usize].share < 1.0),
        );
        self.epoch = next;
    }

    pub(crate) fn len(&self) -> usize {
        self.table.entries.len()
    }

    #[cfg(test)]
    pub(crate) fn share_of(&self, key: &[u8]) -> Option<f64> {
        let hash = self.shared.hash(key);
        let slot = *self.table.index.get(&hash)?;
        Some(f64::from(self.table.entries[slot as usize].share))
    }

    /// Every container's capacity: growth is the only way this code allocates.
    #[cfg(test)]
    pub(crate) fn capacities(&self) -> [usize; 7] {
        [
            self.table.index.capacity(),
            self.table.entries.capacity(),
            self.active.capacity(),
            self.reduced.capacity(),
            self.candidates.capacity(),
            self.published.capacity(),
            self.matched.capacity(),
        ]
    }

    #[cfg(test)]
    pub(crate) fn index_len(&self) -> usize {
        self.table.index.len()
    }
}

impl Table {
    /// CLOCK: from the hand, the first entry that is full (it holds nothing a fresh bucket would
    /// not) or unused since the hand last passed (about least recently used); the used ones it
    /// passes are spared once. After `MAX_SWEEP` spared in a row, the next one goes regardless.
    fn victim(&mut self, now: u64, rps: f64, burst: f64) -> usize {
        let len = self.entries.len();
        for _ in 0..MAX_SWEEP {
            let slot = self.hand;
            self.hand = (self.hand + 1) % len;
            let e = &mut self.entries[slot];
            let share = f64::from(e.share);
            if !e.referenced || e.bucket.is_full(now, rps * share, capacity(burst, share)) {
                return slot;
            }
            e.referenced = false;
        }
        let slot = self.hand;
        self.hand = (self.hand + 1) % len;
        slot
    }
}

/// Changes a key's share, crediting tokens earned so far at the old rate first.
fn set_share(e: &mut Entry, share: f64, now: u64, rps: f64, burst: f64) {
    let old = f64::from(e.share);
    e.bucket.refill(now, rps * old, capacity(burst, old));
    e.share = share as f32;
    e.bucket.refill(now, rps * share, capacity(burst, share));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_stays_small() {
        // docs/rate-limiting.md counts on 56 bytes per key (plus about 34 in the index).
        assert_eq!(std::mem::size_of::<Entry>(), 56);
    }
}
