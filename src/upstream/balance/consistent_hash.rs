//! Consistent hashing on a hash ring with virtual nodes (the Karger ring, as in nginx's `hash ...
//! consistent` and Envoy's `RING_HASH`; not Maglev's lookup table).
//!
//! Each endpoint owns `VNODES_PER_WEIGHT × weight` points on a 64-bit ring, point `i` of endpoint
//! `addr` being `key_hash("addr#i")`, so every worker and every gateway builds the same ring from
//! the same endpoint list. A key goes to the owner of the first point at or after it (wrapping
//! around), skipping owners the pick may not choose. Taking an endpoint out (`usable = false`)
//! therefore moves only the keys that were on it, each to the next owner clockwise, which spreads
//! them over the rest; many virtual nodes per endpoint keep the shares even with few endpoints.
//!
//! The ring is a sorted `Vec<u64>` of points beside the owner of each, searched by bisection.

use super::{key_hash, Balancer, Eligible, PickCtx};
use crate::config::Endpoint;
use std::fmt::Write;

/// Ring points per unit of weight: enough that 4 equal endpoints get shares within a few percent.
pub const VNODES_PER_WEIGHT: u64 = 160;
/// Ring size cap (12 bytes a point, per worker): large weights are scaled down to fit, keeping ratios.
pub const MAX_RING_POINTS: u64 = 1 << 16;

/// A hash ring of `(point, owner)` sorted by point.
pub struct ConsistentHash {
    points: Vec<u64>,
    owners: Vec<u32>,
}

impl ConsistentHash {
    pub fn new(endpoints: &[Endpoint]) -> ConsistentHash {
        let wanted: u64 = endpoints
            .iter()
            .map(|e| VNODES_PER_WEIGHT * u64::from(e.weight.max(1)))
            .sum();
        let mut ring: Vec<(u64, u32)> = Vec::new();
        let mut label = String::new();
        for (owner, e) in endpoints.iter().enumerate() {
            let want = VNODES_PER_WEIGHT * u64::from(e.weight.max(1));
            let vnodes = if wanted <= MAX_RING_POINTS {
                want
            } else {
                let scaled = u128::from(want) * u128::from(MAX_RING_POINTS) / u128::from(wanted);
                (scaled as u64).max(1)
            };
            for i in 0..vnodes {
                label.clear();
                let _ = write!(label, "{}#{i}", e.addr);
                ring.push((key_hash(label.as_bytes()), owner as u32));
            }
        }
        // Ties (two equal points) are ordered by owner, so every worker agrees on the ring.
        ring.sort_unstable();
        ConsistentHash {
            points: ring.iter().map(|&(p, _)| p).collect(),
            owners: ring.iter().map(|&(_, o)| o).collect(),
        }
    }
}

impl Balancer for ConsistentHash {
    fn pick(&mut self, ctx: &PickCtx<'_>) -> Option<usize> {
        let eligible = Eligible::new(ctx)?;
        let start = self.points.partition_point(|&p| p < ctx.key);
        let (before, after) = self.owners.split_at(start);
        after
            .iter()
            .chain(before)
            .map(|&o| o as usize)
            .find(|&o| eligible.allows(o))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{endpoints, Fixture};
    use super::*;

    /// Keys hashed per test: enough for shares to settle within a few percent.
    const KEYS: u64 = 10_000;

    fn key(i: u64) -> u64 {
        key_hash(format!("client-{i}").as_bytes())
    }

    fn owners(ring: &mut ConsistentHash, f: &mut Fixture) -> Vec<usize> {
        (0..KEYS)
            .map(|i| {
                f.key = key(i);
                ring.pick(&f.ctx()).unwrap()
            })
            .collect()
    }

    #[test]
    fn same_key_same_endpoint_on_every_ring_built_alike() {
        let eps = endpoints(&[1, 1, 1, 1]);
        let mut a = ConsistentHash::new(&eps);
        let mut b = ConsistentHash::new(&eps);
        let mut f = Fixture::new(4);
        let first = owners(&mut a, &mut f);
        assert_eq!(owners(&mut a, &mut f), first);
        assert_eq!(owners(&mut b, &mut f), first);
    }

    #[test]
    fn points_are_hashes_of_addr_hash_index() {
        let ring = ConsistentHash::new(&endpoints(&[1, 2]));
        assert_eq!(ring.points.len() as u64, 3 * VNODES_PER_WEIGHT);
        assert!(ring.points.windows(2).all(|w| w[0] <= w[1]));
        for label in ["10.0.0.1:80#0", "10.0.0.1:80#159", "10.0.0.2:80#319"] {
            assert!(ring.points.contains(&key_hash(label.as_bytes())), "{label}");
        }
        assert!(!ring.points.contains(&key_hash(b"10.0.0.1:80#160")));
    }

    #[test]
    fn keys_spread_evenly_over_equal_endpoints() {
        let mut ring = ConsistentHash::new(&endpoints(&[1, 1, 1, 1]));
        let mut f = Fixture::new(4);
        let mut counts = [0u64; 4];
        for o in owners(&mut ring, &mut f) {
            counts[o] += 1;
        }
        let fair = KEYS / 4;
        for c in counts {
            assert!(c.abs_diff(fair) * 5 <= fair, "±20% of {fair}: {counts:?}");
        }
    }

    #[test]
    fn weights_scale_shares() {
        let mut ring = ConsistentHash::new(&endpoints(&[3, 1]));
        let mut f = Fixture::new(2);
        let heavy = owners(&mut ring, &mut f)
            .iter()
            .filter(|&&o| o == 0)
            .count() as u64;
        assert!((6_500..=8_500).contains(&heavy), "{heavy} of {KEYS}");
    }

    #[test]
    fn removing_one_of_four_moves_only_its_keys() {
        let mut ring = ConsistentHash::new(&endpoints(&[1, 1, 1, 1]));
        let mut f = Fixture::new(4);
        let before = owners(&mut ring, &mut f);
        f.usable[2] = false;
        let after = owners(&mut ring, &mut f);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if *b == 2 {
                assert_ne!(*a, 2);
                moved += 1;
            } else {
                assert_eq!(a, b, "a key not on the removed endpoint moved");
            }
        }
        assert!((2_000..=3_000).contains(&moved), "~1/4 moved: {moved}");
        // Its keys spread over all three others, not onto one neighbour.
        for survivor in [0, 1, 3] {
            let got = before
                .iter()
                .zip(&after)
                .filter(|(b, a)| **b == 2 && **a == survivor)
                .count();
            assert!(got > moved / 6, "endpoint {survivor} took {got} of {moved}");
        }
        // Back in: every key returns to where it was.
        f.usable[2] = true;
        assert_eq!(owners(&mut ring, &mut f), before);
    }

    #[test]
    fn a_tried_owner_is_skipped_for_the_next_clockwise() {
        let mut ring = ConsistentHash::new(&endpoints(&[1, 1, 1]));
        let mut f = Fixture::new(3);
        for i in 0..100 {
            f.key = key(i);
            f.tried = vec![];
            let first = ring.pick(&f.ctx()).unwrap();
            f.tried = vec![first];
            let second = ring.pick(&f.ctx()).unwrap();
            assert_ne!(second, first);
            // Where the key goes with its owner out is where a failover goes.
            f.tried = vec![];
            f.usable[first] = false;
            assert_eq!(ring.pick(&f.ctx()), Some(second));
            f.usable[first] = true;
            f.tried = vec![0, 1, 2];
            assert_eq!(ring.pick(&f.ctx()), Some(first));
        }
    }

    #[test]
    fn keys_past_the_last_point_wrap_to_the_first() {
        let mut ring = ConsistentHash::new(&endpoints(&[1, 1]));
        let mut f = Fixture::new(2);
        f.key = u64::MAX;
        let wrap = ring.owners[0] as usize;
        if *ring.points.last().unwrap() < u64::MAX {
            assert_eq!(ring.pick(&f.ctx()), Some(wrap));
        }
        f.key = 0;
        assert_eq!(ring.pick(&f.ctx()), Some(wrap));
    }

    #[test]
    fn huge_weights_are_capped_keeping_ratios() {
        let ring = ConsistentHash::new(&endpoints(&[1_000_000, 3_000_000]));
        assert!(ring.points.len() as u64 <= MAX_RING_POINTS);
        let heavy = ring.owners.iter().filter(|&&o| o == 1).count();
        assert_eq!(heavy * 4, ring.points.len() * 3);
    }
}
