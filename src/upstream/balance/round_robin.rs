//! Round robin: `i = (i + 1) mod n`, skipping endpoints the pick may not choose.

use super::{Balancer, Eligible, PickCtx};

/// `i = (i + 1) mod n`; starts at the worker's index so workers do not march in step.
pub struct RoundRobin {
    next: usize,
    endpoints: usize,
}

impl RoundRobin {
    pub fn new(endpoints: usize, worker: usize) -> RoundRobin {
        RoundRobin {
            next: worker % endpoints.max(1),
            endpoints: endpoints.max(1),
        }
    }
}

impl Balancer for RoundRobin {
    fn pick(&mut self, ctx: &PickCtx<'_>) -> Option<usize> {
        let eligible = Eligible::new(ctx)?;
        for _ in 0..self.endpoints {
            let i = self.next;
            self.next = (self.next + 1) % self.endpoints;
            if eligible.allows(i) {
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::Fixture;
    use super::*;

    #[test]
    fn cycles_exactly_evenly() {
        let f = Fixture::new(3);
        let mut rr = RoundRobin::new(3, 0);
        let picks: Vec<usize> = (0..6).map(|_| rr.pick(&f.ctx()).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        let mut counts = [0u32; 3];
        for _ in 0..3000 {
            counts[rr.pick(&f.ctx()).unwrap()] += 1;
        }
        assert_eq!(counts, [1000; 3]);
    }

    #[test]
    fn starts_at_the_worker_index() {
        let f = Fixture::new(3);
        assert_eq!(RoundRobin::new(3, 1).pick(&f.ctx()), Some(1));
        assert_eq!(RoundRobin::new(3, 5).pick(&f.ctx()), Some(2));
    }

    #[test]
    fn skips_tried_then_allows_them() {
        let mut f = Fixture::new(3);
        let mut rr = RoundRobin::new(3, 0);
        f.tried = vec![0, 1];
        assert_eq!(rr.pick(&f.ctx()), Some(2));
        f.tried = vec![0, 1, 2];
        assert_eq!(rr.pick(&f.ctx()), Some(0));
        let mut one = RoundRobin::new(1, 5);
        f = Fixture::new(1);
        f.tried = vec![0];
        assert_eq!(one.pick(&f.ctx()), Some(0));
    }

    #[test]
    fn skips_unusable_evenly() {
        let mut f = Fixture::new(4);
        f.usable[1] = false;
        let mut rr = RoundRobin::new(4, 0);
        let picks: Vec<usize> = (0..6).map(|_| rr.pick(&f.ctx()).unwrap()).collect();
        assert_eq!(picks, [0, 2, 3, 0, 2, 3]);
    }
}
