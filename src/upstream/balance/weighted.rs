//! Smooth weighted round robin, nginx's algorithm (`ngx_http_upstream_get_peer`).
//!
//! Each endpoint has `weight` (from the config), `effective` (starts at weight, lowered by
//! failures, recovered by successes) and `current`. A pick adds `effective` to every choosable
//! endpoint's `current`, chooses the largest `current` (the first on a tie) and subtracts the
//! total of the effective weights from it. Weights 5,1,1 give `a a b a c a a`: the heavy
//! endpoint's turns are spread out instead of sent in a burst.
//!
//! Failures and recovery, in fixed point ([`SCALE`] units per unit of weight so that a weight-1
//! endpoint can be lowered too):
//! - a failure lowers `effective` by `weight / FAILURE_STEPS` — nginx's
//!   `effective_weight -= weight / max_fails` with `max_fails = FAILURE_STEPS`;
//! - a success raises it by `weight / SCALE`, up to `weight` (nginx adds 1 per pick instead; here
//!   recovery is earned, and proportional so heavy and light endpoints recover alike);
//! - it never drops below `weight / SCALE`: an endpoint at zero would never be picked, so never
//!   succeed, so never recover.
//!
//! One failure costs what `SCALE / FAILURE_STEPS` = 4 successes restore, so an endpoint's share
//! shrinks while more than 1 in 5 of its outcomes fail and grows back while fewer do.

use super::{Balancer, Eligible, PickCtx};

/// Fixed-point units per unit of configured weight (also the floor and recovery step divisor).
pub const SCALE: i64 = 16;
/// Failures that take an endpoint from its full weight to the floor (nginx's `max_fails`).
pub const FAILURE_STEPS: i64 = 4;

/// nginx's smooth weighted round robin, with failure-lowered effective weights.
pub struct WeightedRoundRobin {
    /// Configured weight × SCALE.
    weight: Vec<i64>,
    effective: Vec<i64>,
    current: Vec<i64>,
}

impl WeightedRoundRobin {
    pub fn new(weights: &[u32]) -> WeightedRoundRobin {
        let weight: Vec<i64> = weights
            .iter()
            .map(|&w| i64::from(w.max(1)) * SCALE)
            .collect();
        WeightedRoundRobin {
            effective: weight.clone(),
            current: vec![0; weight.len()],
            weight,
        }
    }

    /// Effective weight of `endpoint` in configured-weight units × SCALE.
    #[cfg(test)]
    fn effective(&self, endpoint: usize) -> i64 {
        self.effective[endpoint]
    }
}

impl Balancer for WeightedRoundRobin {
    fn pick(&mut self, ctx: &PickCtx<'_>) -> Option<usize> {
        let eligible = Eligible::new(ctx)?;
        let mut total = 0;
        let mut best: Option<usize> = None;
        for i in 0..self.weight.len() {
            if !eligible.allows(i) {
                continue;
            }
            self.current[i] += self.effective[i];
            total += self.effective[i];
            match best {
                Some(b) if self.current[i] <= self.current[b] => {}
                _ => best = Some(i),
            }
        }
        let b = best?;
        self.current[b] -= total;
        Some(b)
    }

    fn report(&mut self, endpoint: usize, ok: bool) {
        let Some(&weight) = self.weight.get(endpoint) else {
            return;
        };
        let floor = weight / SCALE;
        let e = &mut self.effective[endpoint];
        *e = if ok {
            (*e + weight / SCALE).min(weight)
        } else {
            (*e - weight / FAILURE_STEPS).max(floor)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::Fixture;
    use super::*;

    fn picks(w: &mut WeightedRoundRobin, f: &Fixture, n: usize) -> String {
        (0..n)
            .map(|_| (b'a' + w.pick(&f.ctx()).unwrap() as u8) as char)
            .collect()
    }

    #[test]
    fn five_one_one_is_smooth() {
        let f = Fixture::new(3);
        let mut w = WeightedRoundRobin::new(&[5, 1, 1]);
        assert_eq!(picks(&mut w, &f, 7), "aabacaa");
        assert_eq!(picks(&mut w, &f, 14), "aabacaaaabacaa");
    }

    #[test]
    fn equal_weights_are_round_robin() {
        let f = Fixture::new(3);
        let mut w = WeightedRoundRobin::new(&[2, 2, 2]);
        assert_eq!(picks(&mut w, &f, 6), "abcabc");
    }

    #[test]
    fn skips_an_unusable_endpoint() {
        let mut f = Fixture::new(3);
        f.usable[1] = false;
        let mut w = WeightedRoundRobin::new(&[5, 1, 1]);
        let s = picks(&mut w, &f, 60);
        assert!(!s.contains('b'), "{s}");
        assert_eq!(s.matches('a').count(), 50, "{s}");
        assert_eq!(s.matches('c').count(), 10, "{s}");
        // Smooth over the survivors too: never more than 5 a's in a row.
        assert!(!s.contains("aaaaaa"), "{s}");
    }

    #[test]
    fn avoids_tried() {
        let mut f = Fixture::new(3);
        f.tried = vec![0];
        let mut w = WeightedRoundRobin::new(&[5, 1, 1]);
        for _ in 0..10 {
            assert_ne!(w.pick(&f.ctx()), Some(0));
        }
    }

    #[test]
    fn failures_lower_effective_weight_and_successes_restore_it() {
        let f = Fixture::new(2);
        let mut w = WeightedRoundRobin::new(&[1, 1]);
        let full = SCALE;
        w.report(0, false);
        assert_eq!(w.effective(0), full - full / FAILURE_STEPS);
        w.report(0, false);
        w.report(0, false);
        assert_eq!(w.effective(0), full / FAILURE_STEPS);
        // 4 units against 16: a's share is 4/20 of the picks.
        let s = picks(&mut w, &f, 200);
        let a = s.matches('a').count();
        assert!((39..=41).contains(&a), "{a} of 200: {s}");
        // Floor: never zero, so it still sees traffic and can recover.
        for _ in 0..10 {
            w.report(0, false);
        }
        assert_eq!(w.effective(0), 1);
        assert!(picks(&mut w, &f, 34).contains('a'));
        // Successes restore it by weight / SCALE each, capped at the configured weight.
        for _ in 0..(full - 1) {
            w.report(0, true);
        }
        assert_eq!(w.effective(0), full);
        w.report(0, true);
        assert_eq!(w.effective(0), full);
        let s = picks(&mut w, &f, 200);
        assert!((99..=101).contains(&s.matches('a').count()), "{s}");
        // The other endpoint was untouched throughout.
        assert_eq!(w.effective(1), full);
        // Reports for an endpoint that does not exist are ignored.
        w.report(7, false);
    }

    #[test]
    fn heavy_endpoints_fall_and_recover_in_proportion() {
        let mut w = WeightedRoundRobin::new(&[10]);
        w.report(0, false);
        assert_eq!(w.effective(0), 10 * SCALE * 3 / 4);
        for _ in 0..(SCALE / FAILURE_STEPS) {
            w.report(0, true);
        }
        assert_eq!(w.effective(0), 10 * SCALE);
    }
}
