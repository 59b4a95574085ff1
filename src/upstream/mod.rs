//! Upstreams as one worker sees them: its own balancer, idle-connection pool and counters for
//! each `[[upstream]]`. Nothing here is shared with another worker.

pub mod balance;
pub mod breaker;
pub mod health;
pub mod latency;
pub mod passive;
pub mod pool;

use crate::config::{Config, Upstream};
use crate::metrics::{Shard, Slots};
use crate::proxy::error::{Kind, ProxyError, Step};
use balance::{Balancer, PickCtx};
use breaker::Breaker;
use health::HealthTable;
use latency::Latency;
use monoio::net::TcpStream;
use passive::Outliers;
use pool::Pool;
use std::cell::Cell;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use std::time::Instant;

/// Endpoints tried for one request or TCP connection when connecting fails (failover happens
/// before any byte is sent).
pub const MAX_CONNECT_ATTEMPTS: usize = 3;

/// One upstream on one worker.
pub struct UpstreamState {
    pub balancer: Box<dyn Balancer>,
    /// Per endpoint, whether it may be picked now: scratch, refilled before each pick.
    usable: Vec<bool>,
    /// Per endpoint, requests in flight on this worker, shared with the `InFlight` guards.
    in_flight: Rc<[Cell<u32>]>,
    /// `in_flight` as plain numbers for the balancer: scratch, refilled before each pick.
    in_flight_view: Vec<u32>,
    pub pool: Pool,
    /// Passive health: endpoints this worker ejected after consecutive failures.
    pub outliers: Outliers,
    pub breaker: Option<Breaker>,
    /// Recent response-head latency (retry cut-off, `hedge = { after = "p99" }`).
    pub latency: Latency,
    /// Requests sent, and how many went on a reused connection (the reuse ratio).
    pub requests: u64,
    pub reused: u64,
    /// The worker's metrics shard and the ejection series of each endpoint in it.
    metrics: Rc<Shard>,
    ejection_slots: Vec<usize>,
}

/// Counts a request in flight to one endpoint for as long as it lives (least_request).
pub struct InFlight {
    counts: Rc<[Cell<u32>]>,
    endpoint: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let c = &self.counts[self.endpoint];
        c.set(c.get().saturating_sub(1));
    }
}

impl UpstreamState {
    /// An endpoint for a request or connection: the balancer's choice among endpoints that are
    /// up (active checks) and not ejected (passive), avoiding `tried`. `None`: nothing usable.
    pub fn pick(
        &mut self,
        index: usize,
        health: &HealthTable,
        client: IpAddr,
        key: u64,
        tried: &[usize],
        now: Instant,
    ) -> Option<usize> {
        for ep in 0..self.usable.len() {
            self.usable[ep] = health.is_up(index, ep)
                && !self.outliers.ejected(ep, now, health.passes(index, ep));
            self.in_flight_view[ep] = self.in_flight[ep].get();
        }
        self.balancer.pick(&PickCtx {
            client,
            tried,
            usable: &self.usable,
            key,
            in_flight: &self.in_flight_view,
        })
    }

    /// Marks a request to `endpoint` in flight until the guard drops.
    pub fn start(&self, endpoint: usize) -> InFlight {
        let c = &self.in_flight[endpoint];
        c.set(c.get() + 1);
        InFlight {
            counts: self.in_flight.clone(),
            endpoint,
        }
    }

    /// Feeds an outcome (a connect failure, a reset, a 5xx are failures) to passive health and
    /// the balancer; logs an ejection.
    pub fn outcome(
        &mut self,
        u: &Upstream,
        index: usize,
        endpoint: usize,
        ok: bool,
        health: &HealthTable,
        now: Instant,
    ) {
        self.balancer.report(endpoint, ok);
        let passes = health.passes(index, endpoint);
        if let Some(length) = self.outliers.record(endpoint, ok, now, passes) {
            self.metrics.ejected(self.ejection_slots[endpoint]);
            tracing::warn!(upstream = %u.name, endpoint = %u.endpoints[endpoint].addr,
                failures = u.max_fails, ejected_for = ?length, "endpoint ejected after consecutive failures");
        }
    }
}

/// The worker's upstream states, in config order.
pub fn build(
    config: &Config,
    worker: usize,
    metrics: &Rc<Shard>,
    slots: &Slots,
) -> Vec<UpstreamState> {
    let now = Instant::now();
    config
        .upstreams
        .iter()
        .enumerate()
        .map(|(ui, u)| {
            let n = u.endpoints.len();
            UpstreamState {
                balancer: balance::build(u, worker),
                usable: vec![true; n],
                in_flight: (0..n).map(|_| Cell::new(0)).collect(),
                in_flight_view: vec![0; n],
                pool: Pool::new(n, u.max_idle_per_worker, u.idle_timeout),
                outliers: Outliers::new(n, u.max_fails, u.fail_timeout),
                breaker: u.circuit_breaker.as_ref().map(Breaker::new),
                latency: Latency::new(now),
                requests: 0,
                reused: 0,
                metrics: metrics.clone(),
                ejection_slots: slots.endpoint[ui].clone(),
            }
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
