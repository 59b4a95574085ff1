//! Choosing an endpoint. Each worker has its own balancer per upstream: no shared counters.
//!
//! Policies plug in through [`Balancer`]; the traffic-policy work adds the others.

use std::net::IpAddr;

/// What a policy may look at to pick an endpoint.
pub struct PickCtx<'a> {
    pub client: IpAddr,
    /// Endpoints already tried for this request (failover skips them).
    pub tried: &'a [usize],
}

/// A load-balancing policy over one upstream's endpoints.
pub trait Balancer {
    /// An endpoint index in `0..endpoints`, avoiding `ctx.tried` when another is available.
    fn pick(&mut self, ctx: &PickCtx<'_>) -> usize;
}

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
    fn pick(&mut self, ctx: &PickCtx<'_>) -> usize {
        for _ in 0..self.endpoints {
            let i = self.next;
            self.next = (self.next + 1) % self.endpoints;
            if !ctx.tried.contains(&i) {
                return i;
            }
        }
        let i = self.next;
        self.next = (self.next + 1) % self.endpoints;
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles_and_skips_tried() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let mut rr = RoundRobin::new(3, 0);
        let picks: Vec<usize> = (0..6)
            .map(|_| {
                rr.pick(&PickCtx {
                    client: ip,
                    tried: &[],
                })
            })
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert_eq!(
            rr.pick(&PickCtx {
                client: ip,
                tried: &[0, 1]
            }),
            2
        );
        assert_eq!(
            rr.pick(&PickCtx {
                client: ip,
                tried: &[0, 1, 2]
            }),
            0
        );
        let mut one = RoundRobin::new(1, 5);
        assert_eq!(
            one.pick(&PickCtx {
                client: ip,
                tried: &[0]
            }),
            0
        );
    }
}
