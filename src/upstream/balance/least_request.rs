//! Least request by the power of two choices: draw two distinct choosable endpoints at random and
//! take the one with fewer requests in flight on this worker (a tie is broken at random).
//!
//! Two random candidates instead of the global minimum: nearly as good at avoiding a loaded
//! endpoint, and workers that see the same counts do not all pile onto the same "least" one.
//! Weights are not consulted: the comparison is on raw in-flight counts.

use super::{worker_seed, Balancer, Eligible, PickCtx};

/// Power of two choices over `ctx.in_flight`, with a per-worker generator.
pub struct LeastRequest {
    rng: fastrand::Rng,
    endpoints: usize,
}

impl LeastRequest {
    /// Seeded from the worker index and the clock, so workers draw different pairs.
    pub fn new(endpoints: usize, worker: usize) -> LeastRequest {
        LeastRequest::with_seed(endpoints, worker_seed(worker))
    }

    /// A reproducible sequence, for tests.
    pub fn with_seed(endpoints: usize, seed: u64) -> LeastRequest {
        LeastRequest {
            rng: fastrand::Rng::with_seed(seed),
            endpoints,
        }
    }
}

impl Balancer for LeastRequest {
    fn pick(&mut self, ctx: &PickCtx<'_>) -> Option<usize> {
        let eligible = Eligible::new(ctx)?;
        let k = eligible.count(self.endpoints);
        if k <= 1 {
            return eligible.nth(self.endpoints, 0);
        }
        // Two distinct ranks: the second is drawn from k - 1 and shifted past the first.
        let r1 = self.rng.usize(..k);
        let mut r2 = self.rng.usize(..k - 1);
        if r2 >= r1 {
            r2 += 1;
        }
        let a = eligible.nth(self.endpoints, r1)?;
        let b = eligible.nth(self.endpoints, r2)?;
        let load = |i: usize| ctx.in_flight.get(i).copied().unwrap_or(0);
        Some(match load(a).cmp(&load(b)) {
            std::cmp::Ordering::Less => a,
            std::cmp::Ordering::Greater => b,
            std::cmp::Ordering::Equal if self.rng.bool() => a,
            std::cmp::Ordering::Equal => b,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::Fixture;
    use super::*;

    fn counts(lr: &mut LeastRequest, f: &Fixture, picks: usize) -> Vec<u32> {
        let mut c = vec![0u32; f.usable.len()];
        for _ in 0..picks {
            c[lr.pick(&f.ctx()).unwrap()] += 1;
        }
        c
    }

    #[test]
    fn two_endpoints_the_idle_one_always_wins() {
        let mut f = Fixture::new(2);
        f.in_flight = vec![10, 0];
        let mut lr = LeastRequest::new(2, 0);
        assert_eq!(counts(&mut lr, &f, 1000), [0, 1000]);
    }

    #[test]
    fn three_endpoints_the_busy_one_never_wins() {
        let mut f = Fixture::new(3);
        f.in_flight = vec![10, 0, 0];
        let mut lr = LeastRequest::with_seed(3, 7);
        let c = counts(&mut lr, &f, 3000);
        assert_eq!(c[0], 0, "{c:?}");
        assert!(c[1] > 1200 && c[2] > 1200, "ties split at random: {c:?}");
    }

    #[test]
    fn three_endpoints_share_follows_the_pairs() {
        // Pairs {0,1}→1, {0,2}→2, {1,2}→2: endpoint 2 wins 2/3, endpoint 1 1/3, endpoint 0 never.
        let mut f = Fixture::new(3);
        f.in_flight = vec![5, 3, 0];
        let mut lr = LeastRequest::with_seed(3, 11);
        let c = counts(&mut lr, &f, 3000);
        assert_eq!(c[0], 0, "{c:?}");
        assert!((850..=1150).contains(&c[1]), "{c:?}");
        assert!((1850..=2150).contains(&c[2]), "{c:?}");
    }

    #[test]
    fn idle_endpoints_share_evenly() {
        let f = Fixture::new(4);
        let mut lr = LeastRequest::with_seed(4, 3);
        let c = counts(&mut lr, &f, 4000);
        assert!(c.iter().all(|&n| (850..=1150).contains(&n)), "{c:?}");
    }

    #[test]
    fn one_usable_endpoint_is_picked_whatever_its_load() {
        let mut f = Fixture::new(3);
        f.usable = vec![false, true, false];
        f.in_flight = vec![0, 100, 0];
        let mut lr = LeastRequest::new(3, 1);
        assert_eq!(counts(&mut lr, &f, 100), [0, 100, 0]);
    }

    #[test]
    fn unusable_and_tried_are_not_candidates() {
        let mut f = Fixture::new(4);
        f.usable[0] = false;
        f.tried = vec![1];
        f.in_flight = vec![0, 0, 9, 9];
        let mut lr = LeastRequest::with_seed(4, 5);
        let c = counts(&mut lr, &f, 1000);
        assert_eq!((c[0], c[1]), (0, 0), "{c:?}");
    }
}
