//! The upstream side of one exchange: which endpoint, which connection, whether it was reused.

use super::buffered::Buffered;
use super::error::{Kind, ProxyError, Step};
use crate::runtime::worker::WorkerCtx;
use crate::upstream::{InFlight, MAX_CONNECT_ATTEMPTS};
use monoio::time::Instant;
use std::cell::Cell;
use std::net::IpAddr;

/// Most endpoints remembered as tried for one request (connect failovers, retries, hedges).
pub const MAX_TRIED: usize = 16;

/// Endpoints a request already went to; later picks avoid them while others are usable. Cells,
/// because a request's hedge and its first attempt add to it concurrently.
#[derive(Default)]
pub(super) struct Tried {
    eps: [Cell<usize>; MAX_TRIED],
    len: Cell<usize>,
}

impl Tried {
    /// The endpoints so far, copied out (the balancer wants a slice).
    fn snapshot(&self, into: &mut [usize; MAX_TRIED]) -> usize {
        let len = self.len.get();
        for (slot, ep) in into.iter_mut().zip(&self.eps[..len]) {
            *slot = ep.get();
        }
        len
    }

    /// The endpoint added last (the access log's upstream when none answered).
    pub fn last(&self) -> Option<usize> {
        let len = self.len.get();
        len.checked_sub(1).map(|i| self.eps[i].get())
    }

    fn push(&self, ep: usize) {
        let len = self.len.get();
        if len < MAX_TRIED && !self.eps[..len].iter().any(|e| e.get() == ep) {
            self.eps[len].set(ep);
            self.len.set(len + 1);
        }
    }
}

/// What the balancer may look at for this request.
#[derive(Clone, Copy)]
pub(super) struct Pick {
    pub client: IpAddr,
    /// Hash of the upstream's `hash_key` for this request (consistent_hash), else 0.
    pub key: u64,
}

/// An upstream connection in use by this exchange.
pub(super) struct Leg {
    pub upstream: usize,
    pub endpoint: usize,
    pub conn: Buffered,
    pub reused: bool,
    /// Counts this request in flight to its endpoint until the leg is gone.
    pub _busy: InFlight,
}

/// A pooled connection, or a new one; connect failures (recorded for passive health) move on
/// to other endpoints, at most `MAX_CONNECT_ATTEMPTS` per call.
///
/// `verify` checks a pooled connection for a close before use; requests that can be replayed
/// skip it (a dead connection costs them one retry, not an error), saving a syscall each.
#[allow(clippy::too_many_arguments)] // the request's picking state, passed whole
pub(super) async fn acquire(
    ctx: &WorkerCtx,
    upstream: usize,
    pick: Pick,
    tried: &Tried,
    fresh_only: bool,
    verify: bool,
    deadline: Instant,
) -> Result<Leg, ProxyError> {
    let cfg = &ctx.config.upstreams[upstream];
    let health = &ctx.shared.health;
    let mut last = ProxyError::upstream(Step::Connect, Kind::Unavailable);
    for _ in 0..MAX_CONNECT_ATTEMPTS.min(cfg.endpoints.len()).max(1) {
        let (endpoint, busy) = {
            let mut ups = ctx.upstreams.borrow_mut();
            let st = &mut ups[upstream];
            let now = std::time::Instant::now();
            let mut seen = [0; MAX_TRIED];
            let n = tried.snapshot(&mut seen);
            let Some(ep) = st.pick(upstream, health, pick.client, pick.key, &seen[..n], now) else {
                return Err(last);
            };
            let busy = st.start(ep);
            // Tried whether the connection is pooled or new: a retry or hedge of this request
            // must avoid the endpoint either way.
            tried.push(ep);
            if !fresh_only {
                if let Some(stream) = st.pool.checkout(ep, verify) {
                    return Ok(Leg {
                        upstream,
                        endpoint: ep,
                        conn: Buffered::new(stream),
                        reused: true,
                        _busy: busy,
                    });
                }
            }
            (ep, busy)
        };
        let limit = cfg
            .connect_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let addr = cfg.endpoints[endpoint].addr;
        let tls = ctx.tls.connectors[upstream].as_ref();
        let result = crate::tls::client::connect(tls, addr, limit, &cfg.name).await;
        // Only a failed connect is an outcome here: a successful one is not yet a successful
        // request (the exchange records that), and counting it would reset the endpoint's
        // consecutive failures before every request on a fresh connection.
        if result.is_err() {
            let now = std::time::Instant::now();
            ctx.upstreams.borrow_mut()[upstream]
                .outcome(cfg, upstream, endpoint, false, health, now);
        }
        match result {
            Ok(stream) => {
                return Ok(Leg {
                    upstream,
                    endpoint,
                    conn: Buffered::new(stream),
                    reused: false,
                    _busy: busy,
                })
            }
            Err(e) => {
                tracing::warn!(upstream = %cfg.name, endpoint = %addr, error = %e, "connect failed");
                last = e;
            }
        }
    }
    Err(last)
}

/// Closes an upstream connection that cannot be reused, keeping its buffer.
pub(super) fn recycle(ctx: &WorkerCtx, mut conn: Buffered) {
    conn.consume(usize::MAX);
    if let Some(b) = conn.reclaim() {
        ctx.bufs.give(b);
    }
}
