//! Scrape protocol: the admin thread sends each worker `Control::Scrape`; the worker copies its
//! shard and reads its gauges into a [`Snapshot`] and sends it back; the admin thread merges
//! the snapshots that arrived in time. Workers never share a counter: this is how they agree.

use super::shard::{Counts, Histogram, Key, ListenerCounts, RouteCounts, UpstreamCounts};
use crate::config::Config;
use crate::log::access::AccessStats;
use crate::runtime::driver::Driver;
use crate::runtime::worker::WorkerCtx;
use crate::upstream::breaker::State;
use crate::upstream::health::HealthTable;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One worker's answer to a scrape.
pub struct Snapshot {
    pub worker: usize,
    /// The CPU it is pinned to (`None`: unpinned).
    pub cpu: Option<usize>,
    pub driver: Driver,
    /// The config version it runs, with that version's config and health table.
    pub version: u64,
    pub config: Arc<Config>,
    pub health: Arc<HealthTable>,
    /// Open client connections on this worker.
    pub connections: usize,
    /// Per listener of `config`: open connections.
    pub active: Vec<usize>,
    /// Per upstream of `config`: its circuit breaker's state, when it has one.
    pub breakers: Vec<Option<State>>,
    /// Per upstream of `config`, per endpoint: whether this worker ejects it now.
    pub ejected: Vec<Vec<bool>>,
    pub counts: Counts,
    /// The access log's process-wide counters (`None`: the log is off); read by the admin thread.
    pub access: Option<Arc<AccessStats>>,
}

impl Snapshot {
    /// Reads this worker's state (on the worker's thread).
    pub fn take(ctx: &WorkerCtx, cpu: Option<usize>, driver: Driver) -> Snapshot {
        let config = &ctx.config;
        let health = &ctx.shared.health;
        let now = std::time::Instant::now();
        let ups = ctx.upstreams.borrow();
        Snapshot {
            worker: ctx.index,
            cpu,
            driver,
            version: ctx.version,
            config: ctx.config.clone(),
            health: health.clone(),
            connections: ctx.conns.total(),
            active: (0..config.listeners.len())
                .map(|li| ctx.conns.on_listener(li))
                .collect(),
            breakers: ups
                .iter()
                .map(|u| u.breaker.as_ref().map(|b| b.state()))
                .collect(),
            ejected: (ups.iter().enumerate())
                .map(|(ui, u)| {
                    (0..config.upstreams[ui].endpoints.len())
                        .map(|ep| u.outliers.is_ejected(ep, now, health.passes(ui, ep)))
                        .collect()
                })
                .collect(),
            counts: ctx.metrics.counts(),
            access: ctx.access.stats().cloned(),
        }
    }
}

/// The workers' snapshots added up.
pub struct Merged {
    /// The snapshots, by worker index.
    pub workers: Vec<Snapshot>,
    /// Workers that did not answer in time.
    pub silent: Vec<usize>,
    pub listeners: BTreeMap<Arc<str>, ListenerCounts>,
    pub routes: BTreeMap<Key, RouteCounts>,
    pub upstreams: BTreeMap<Arc<str>, UpstreamCounts>,
    pub ejections: BTreeMap<Key, u64>,
    /// Open connections per listener name (current config).
    pub active: BTreeMap<String, usize>,
}

impl Merged {
    pub fn new(mut workers: Vec<Snapshot>, silent: Vec<usize>) -> Merged {
        workers.sort_by_key(|s| s.worker);
        let mut m = Merged {
            workers: Vec::new(),
            silent,
            listeners: BTreeMap::new(),
            routes: BTreeMap::new(),
            upstreams: BTreeMap::new(),
            ejections: BTreeMap::new(),
            active: BTreeMap::new(),
        };
        for s in &workers {
            for (k, c) in &s.counts.listeners {
                m.listeners.entry(k.clone()).or_default().add(c);
            }
            for (k, c) in &s.counts.routes {
                m.routes.entry(k.clone()).or_default().add(c);
            }
            for (k, c) in &s.counts.upstreams {
                m.upstreams.entry(k.clone()).or_default().add(c);
            }
            for (k, c) in &s.counts.ejections {
                *m.ejections.entry(k.clone()).or_default() += c;
            }
            for (l, n) in s.config.listeners.iter().zip(&s.active) {
                *m.active.entry(l.name.clone()).or_default() += n;
            }
        }
        m.workers = workers;
        m
    }

    /// The newest config version among the workers (they differ only mid-reload).
    pub fn newest(&self) -> Option<&Snapshot> {
        self.workers.iter().max_by_key(|s| s.version)
    }

    /// Requests answered, all listeners and routes.
    pub fn requests(&self) -> u64 {
        self.routes
            .values()
            .map(|c| c.codes.iter().sum::<u64>())
            .sum()
    }

    /// How many workers eject `endpoint` of upstream `ui` (of the newest config) now.
    pub fn ejected_by(&self, upstream: &str, endpoint: std::net::SocketAddr) -> Vec<usize> {
        let mut out = Vec::new();
        for s in &self.workers {
            let Some(ui) = s.config.upstreams.iter().position(|u| u.name == upstream) else {
                continue;
            };
            let eps = &s.config.upstreams[ui].endpoints;
            if let Some(ei) = eps.iter().position(|e| e.addr == endpoint) {
                if s.ejected[ui][ei] {
                    out.push(s.worker);
                }
            }
        }
        out
    }

    /// All requests' latency histogram, summed over routes (for the status page).
    pub fn request_duration(&self) -> Histogram {
        let mut h = Histogram::default();
        for c in self.routes.values() {
            h.add(&c.duration);
        }
        h
    }
}
