//! Upstreams as one worker sees them: its own balancer, idle-connection pool and counters for
//! each `[[upstream]]`. Nothing here is shared with another worker.

pub mod balance;
pub mod breaker;
pub mod health;
pub mod latency;
pub mod passive;
pub mod pool;

use crate::config::Config;
use crate::proxy::error::{Kind, ProxyError, Step};
use balance::Balancer;
use monoio::net::TcpStream;
use pool::Pool;
use std::net::SocketAddr;
use std::time::Duration;

/// Endpoints tried for one request or TCP connection when connecting fails (failover happens
/// before any byte is sent).
pub const MAX_CONNECT_ATTEMPTS: usize = 3;

/// One upstream on one worker.
pub struct UpstreamState {
    pub balancer: Box<dyn Balancer>,
    /// Per endpoint, whether it may be picked; all true until health checks and ejection land.
    pub usable: Vec<bool>,
    /// Per endpoint, requests in flight on this worker; zeros until the request path counts them.
    pub in_flight: Vec<u32>,
    pub pool: Pool,
    /// Requests sent, and how many went on a reused connection (the reuse ratio).
    pub requests: u64,
    pub reused: u64,
}

/// The worker's upstream states, in config order.
pub fn build(config: &Config, worker: usize) -> Vec<UpstreamState> {
    config
        .upstreams
        .iter()
        .map(|u| UpstreamState {
            balancer: balance::build(u, worker),
            usable: vec![true; u.endpoints.len()],
            in_flight: vec![0; u.endpoints.len()],
            pool: Pool::new(u.endpoints.len(), u.max_idle_per_worker, u.idle_timeout),
            requests: 0,
            reused: 0,
        })
        .collect()
}

/// Opens a connection to an endpoint within `timeout`.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ProxyError> {
    match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
        Ok(Ok(s)) => {
            // Requests are written whole; Nagle would only delay the last segment.
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(ProxyError::upstream_io(Step::Connect, &e)),
        Err(_) => Err(ProxyError::upstream(Step::Connect, Kind::Timeout)),
    }
}
