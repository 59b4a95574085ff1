//! Choosing an endpoint. Each worker has its own balancer per upstream: no shared counters.
//!
//! Every policy sees the same [`PickCtx`] and follows the same preference, so failover, retries
//! and hedges behave alike whatever the policy: a usable endpoint not yet tried for this request,
//! else a usable one even if tried, else `None`. No policy allocates in `pick`; what a policy
//! needs is sized when it is built.
//!
//! | `balance` | type | module |
//! |---|---|---|
//! | `round_robin` | [`RoundRobin`] | `round_robin` |
//! | `random` | [`Random`] | `random` |
//! | `weighted_round_robin` | [`WeightedRoundRobin`] (nginx's smooth algorithm) | `weighted` |
//! | `least_request` | [`LeastRequest`] (power of two choices) | `least_request` |
//! | `consistent_hash` | [`ConsistentHash`] (a hash ring with virtual nodes, not Maglev) | `consistent_hash` |

mod consistent_hash;
mod least_request;
mod random;
mod round_robin;
mod weighted;

pub use consistent_hash::ConsistentHash;
pub use least_request::LeastRequest;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use weighted::WeightedRoundRobin;

use crate::config::{Balance, Upstream};
use std::net::IpAddr;

/// What a policy may look at to pick an endpoint.
pub struct PickCtx<'a> {
    pub client: IpAddr,
    /// Endpoints already tried for this request (failover, retries, hedges avoid them when another is usable).
    pub tried: &'a [usize],
    /// Which endpoints may be picked now (health up, not ejected); len == endpoints.
    pub usable: &'a [bool],
    /// Hash of the request's `hash_key` value (consistent_hash only); see `key_hash`.
    pub key: u64,
    /// Requests in flight per endpoint on this worker (least_request); len == endpoints.
    pub in_flight: &'a [u32],
}

/// A load-balancing policy over one upstream's endpoints.
pub trait Balancer {
    /// Prefer usable and untried; else usable (even if tried); None when no endpoint is usable.
    fn pick(&mut self, ctx: &PickCtx<'_>) -> Option<usize>;
    /// The outcome of a request or connection to `endpoint` (smooth WRR lowers effective weight on failure, recovers on success).
    fn report(&mut self, _endpoint: usize, _ok: bool) {}
}

/// The policy `u.balance` names; `worker` seeds per-worker state so workers don't march in step.
pub fn build(u: &Upstream, worker: usize) -> Box<dyn Balancer> {
    let n = u.endpoints.len();
    match u.balance {
        Balance::RoundRobin => Box::new(RoundRobin::new(n, worker)),
        Balance::Random => Box::new(Random::new(n, worker)),
        Balance::WeightedRoundRobin => Box::new(WeightedRoundRobin::new(
            &u.endpoints.iter().map(|e| e.weight).collect::<Vec<_>>(),
        )),
        Balance::LeastRequest => Box::new(LeastRequest::new(n, worker)),
        Balance::ConsistentHash => Box::new(ConsistentHash::new(&u.endpoints)),
    }
}

/// Stable 64-bit hash for keys and ring points (same value across runs and machines).
///
/// XXH3-64 with seed 0: its output is frozen by the xxHash spec (since 0.8.0), so gateways on
/// different machines and versions place the same key on the same endpoint.
pub fn key_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// `key_hash` of a client address; IPv4-mapped IPv6 folds to IPv4 so dual-stack sockets agree.
pub fn ip_key(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => key_hash(&v4.octets()),
        IpAddr::V6(v6) => key_hash(&v6.octets()),
    }
}

/// Which endpoints a pick may choose from, given the preference every policy shares.
#[derive(Clone, Copy)]
pub(crate) struct Eligible<'c, 'a> {
    ctx: &'c PickCtx<'a>,
    /// Some usable endpoint is untried, so tried ones are skipped this pick.
    avoid_tried: bool,
}

impl<'c, 'a> Eligible<'c, 'a> {
    /// `None` when no endpoint is usable at all.
    pub(crate) fn new(ctx: &'c PickCtx<'a>) -> Option<Self> {
        let mut any_usable = false;
        for (i, &u) in ctx.usable.iter().enumerate() {
            if u {
                if !ctx.tried.contains(&i) {
                    return Some(Eligible {
                        ctx,
                        avoid_tried: true,
                    });
                }
                any_usable = true;
            }
        }
        any_usable.then_some(Eligible {
            ctx,
            avoid_tried: false,
        })
    }

    /// Whether endpoint `i` may be chosen by this pick.
    #[inline]
    pub(crate) fn allows(&self, i: usize) -> bool {
        self.ctx.usable.get(i).copied().unwrap_or(false)
            && !(self.avoid_tried && self.ctx.tried.contains(&i))
    }

    /// How many of the first `n` endpoints may be chosen.
    pub(crate) fn count(&self, n: usize) -> usize {
        (0..n).filter(|&i| self.allows(i)).count()
    }

    /// The `rank`-th (0-based) choosable endpoint among the first `n`.
    pub(crate) fn nth(&self, n: usize, rank: usize) -> Option<usize> {
        (0..n).filter(|&i| self.allows(i)).nth(rank)
    }
}

/// A per-worker random seed: the worker index spread over 64 bits, mixed with the clock.
pub(crate) fn worker_seed(worker: usize) -> u64 {
    /// 2^64 / φ: consecutive worker indices land far apart in the seed space.
    const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (worker as u64 + 1).wrapping_mul(SPREAD)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Endpoint;
    use std::net::SocketAddr;

    /// A context with every endpoint usable, nothing tried, nothing in flight.
    pub(crate) struct Fixture {
        pub usable: Vec<bool>,
        pub in_flight: Vec<u32>,
        pub tried: Vec<usize>,
        pub key: u64,
    }

    impl Fixture {
        pub(crate) fn new(n: usize) -> Fixture {
            Fixture {
                usable: vec![true; n],
                in_flight: vec![0; n],
                tried: Vec::new(),
                key: 0,
            }
        }

        pub(crate) fn ctx(&self) -> PickCtx<'_> {
            PickCtx {
                client: IpAddr::from([127, 0, 0, 1]),
                tried: &self.tried,
                usable: &self.usable,
                key: self.key,
                in_flight: &self.in_flight,
            }
        }
    }

    pub(crate) fn endpoints(weights: &[u32]) -> Vec<Endpoint> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Endpoint {
                addr: SocketAddr::from(([10, 0, 0, i as u8 + 1], 80)),
                weight,
            })
            .collect()
    }

    fn upstream(balance: Balance, weights: &[u32]) -> Upstream {
        let text = r#"
            [[listener]]
            name = "l"
            bind = "127.0.0.1:1"
            [[route]]
            listener = "l"
            upstream = "u"
            [[upstream]]
            name = "u"
            endpoints = ["127.0.0.1:2"]
        "#;
        let mut u = crate::config::Config::parse(text, "t")
            .expect("test config parses")
            .upstreams
            .remove(0);
        u.balance = balance;
        u.endpoints = endpoints(weights);
        u
    }

    /// Every policy, for the properties they all share.
    const ALL: [Balance; 5] = [
        Balance::RoundRobin,
        Balance::Random,
        Balance::WeightedRoundRobin,
        Balance::LeastRequest,
        Balance::ConsistentHash,
    ];

    #[test]
    fn every_policy_returns_none_when_nothing_is_usable() {
        for b in ALL {
            let mut p = build(&upstream(b, &[1, 2, 3]), 0);
            let mut f = Fixture::new(3);
            f.usable = vec![false; 3];
            for _ in 0..10 {
                assert_eq!(p.pick(&f.ctx()), None, "{b:?}");
            }
        }
    }

    #[test]
    fn every_policy_prefers_usable_untried_then_usable_tried() {
        for b in ALL {
            for worker in 0..4 {
                let mut p = build(&upstream(b, &[1, 2, 3, 1]), worker);
                let mut f = Fixture::new(4);
                f.usable = vec![true, true, false, true];
                for key in 0..50u64 {
                    f.key = key_hash(&key.to_le_bytes());
                    f.tried = vec![0, 3];
                    assert_eq!(p.pick(&f.ctx()), Some(1), "{b:?} untried usable");
                    f.tried = vec![0, 1, 3];
                    let got = p.pick(&f.ctx());
                    assert!(
                        matches!(got, Some(0 | 1 | 3)),
                        "{b:?} tried usable: {got:?}"
                    );
                    f.tried = vec![];
                    let got = p.pick(&f.ctx());
                    assert!(
                        matches!(got, Some(0 | 1 | 3)),
                        "{b:?} never unusable: {got:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_policy_picks_the_only_endpoint() {
        for b in ALL {
            let mut p = build(&upstream(b, &[7]), 3);
            let mut f = Fixture::new(1);
            f.tried = vec![0];
            assert_eq!(p.pick(&f.ctx()), Some(0), "{b:?}");
        }
    }

    #[test]
    fn key_hash_is_xxh3_64() {
        // XXH3-64 reference vectors: a changed hash would move every consistent-hash key.
        assert_eq!(key_hash(b""), 0x2D06_8005_38D3_94C2);
        assert_eq!(key_hash(b"a"), key_hash(b"a"));
        assert_ne!(key_hash(b"a"), key_hash(b"b"));
    }

    #[test]
    fn ip_key_folds_mapped_ipv4() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(ip_key(v4), ip_key(mapped));
        assert_eq!(ip_key(v4), key_hash(&[192, 0, 2, 7]));
        assert_ne!(ip_key(v4), ip_key("192.0.2.8".parse().unwrap()));
    }
}
