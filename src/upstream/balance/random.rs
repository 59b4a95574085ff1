//! Random: uniform over the endpoints the pick may choose (weights are not consulted).

use super::{worker_seed, Balancer, Eligible, PickCtx};

/// Uniform random choice from a per-worker generator (no shared RNG state between workers).
pub struct Random {
    rng: fastrand::Rng,
    endpoints: usize,
}

impl Random {
    /// Seeded from the worker index and the clock, so workers and restarts draw differently.
    pub fn new(endpoints: usize, worker: usize) -> Random {
        Random::with_seed(endpoints, worker_seed(worker))
    }

    /// A reproducible sequence, for tests.
    pub fn with_seed(endpoints: usize, seed: u64) -> Random {
        Random {
            rng: fastrand::Rng::with_seed(seed),
            endpoints,
        }
    }
}

impl Balancer for Random {
    fn pick(&mut self, ctx: &PickCtx<'_>) -> Option<usize> {
        let eligible = Eligible::new(ctx)?;
        // Count, then draw a rank: one draw and no retry loop, however few endpoints are up.
        let k = eligible.count(self.endpoints);
        if k == 0 {
            return None;
        }
        eligible.nth(self.endpoints, self.rng.usize(..k))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::Fixture;
    use super::*;

    /// Pearson's chi-square over `counts` against a uniform expectation.
    fn chi_square(counts: &[u32]) -> f64 {
        let total: u32 = counts.iter().sum();
        let expected = f64::from(total) / counts.len() as f64;
        counts
            .iter()
            .map(|&c| (f64::from(c) - expected).powi(2) / expected)
            .sum()
    }

    #[test]
    fn roughly_even() {
        let f = Fixture::new(4);
        for seed in 0..20 {
            let mut r = Random::with_seed(4, seed);
            let mut counts = [0u32; 4];
            for _ in 0..40_000 {
                counts[r.pick(&f.ctx()).unwrap()] += 1;
            }
            // 3 degrees of freedom: P(chi² > 16.27) = 0.001.
            assert!(chi_square(&counts) < 16.27, "seed {seed}: {counts:?}");
        }
    }

    #[test]
    fn never_unusable_and_even_over_the_rest() {
        let mut f = Fixture::new(5);
        f.usable = vec![true, false, true, false, true];
        let mut r = Random::with_seed(5, 2);
        let mut counts = [0u32; 5];
        for _ in 0..30_000 {
            counts[r.pick(&f.ctx()).unwrap()] += 1;
        }
        assert_eq!((counts[1], counts[3]), (0, 0));
        // 2 degrees of freedom: P(chi² > 13.82) = 0.001.
        assert!(
            chi_square(&[counts[0], counts[2], counts[4]]) < 13.82,
            "{counts:?}"
        );
    }

    #[test]
    fn workers_draw_differently() {
        let f = Fixture::new(16);
        let seq = |w| {
            let mut r = Random::new(16, w);
            (0..32)
                .map(|_| r.pick(&f.ctx()).unwrap())
                .collect::<Vec<_>>()
        };
        assert_ne!(seq(0), seq(1));
    }
}
