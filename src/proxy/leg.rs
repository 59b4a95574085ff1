//! The upstream side of one exchange: which endpoint, which connection, whether it was reused.

use super::buffered::Buffered;
use super::error::{Kind, ProxyError, Step};
use crate::runtime::worker::WorkerCtx;
use crate::upstream::balance::PickCtx;
use monoio::time::Instant;
use std::net::SocketAddr;

use crate::upstream::MAX_CONNECT_ATTEMPTS;

/// An upstream connection in use by this exchange.
pub(super) struct Leg {
    pub upstream: usize,
    pub endpoint: usize,
    pub conn: Buffered,
    pub reused: bool,
}

/// A pooled connection, or a new one; connect failures move on to other endpoints.
///
/// `verify` checks a pooled connection for a close before use; requests that can be replayed
/// skip it (a dead connection costs them one retry, not an error), saving a syscall each.
pub(super) async fn acquire(
    ctx: &WorkerCtx,
    upstream: usize,
    peer: SocketAddr,
    fresh_only: bool,
    verify: bool,
    deadline: Instant,
) -> Result<Leg, ProxyError> {
    let cfg = &ctx.config.upstreams[upstream];
    let mut tried = [usize::MAX; MAX_CONNECT_ATTEMPTS];
    let attempts = MAX_CONNECT_ATTEMPTS.min(cfg.endpoints.len()).max(1);
    let mut last = ProxyError::upstream(Step::Connect, Kind::Refused);
    for attempt in 0..attempts {
        let endpoint = {
            let mut ups = ctx.upstreams.borrow_mut();
            let st = &mut ups[upstream];
            let picked = st.balancer.pick(&PickCtx {
                client: peer.ip(),
                tried: &tried[..attempt],
                usable: &st.usable,
                key: 0,
                in_flight: &st.in_flight,
            });
            let Some(ep) = picked else {
                return Err(last);
            };
            if !fresh_only {
                if let Some(stream) = st.pool.checkout(ep, verify) {
                    return Ok(Leg {
                        upstream,
                        endpoint: ep,
                        conn: Buffered::new(stream),
                        reused: true,
                    });
                }
            }
            ep
        };
        tried[attempt] = endpoint;
        let limit = cfg
            .connect_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        match crate::upstream::connect(cfg.endpoints[endpoint].addr, limit).await {
            Ok(stream) => {
                return Ok(Leg {
                    upstream,
                    endpoint,
                    conn: Buffered::new(stream),
                    reused: false,
                })
            }
            Err(e) => {
                tracing::warn!(upstream = %cfg.name, endpoint = %cfg.endpoints[endpoint].addr, error = %e, "connect failed");
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
