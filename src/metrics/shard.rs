//! One worker's metrics: plain counters and fixed-bucket histograms, owned by the worker's thread
//! and touched by nothing else. The admin thread never reads them directly: it asks the worker
//! for a copy (`Control::Scrape`), and merges the workers' copies.
//!
//! Series are keyed by name (listener, route label, upstream, endpoint address), not by config
//! index, so counts carry over a reload: each config version gets a [`Slots`] table from its
//! indices to the shard's series, built once per version (the only place that allocates). A
//! series whose route or listener a reload removed keeps its last values (a counter must not go
//! backwards); gauges are read from the current version only.

use super::names::{self, LATENCY_BUCKETS};
use crate::config::{Config, HostMatch};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Bucket slots of a latency histogram: the finite bounds, then `+Inf`.
pub const BUCKETS: usize = LATENCY_BUCKETS.len() + 1;

/// [`LATENCY_BUCKETS`] in nanoseconds, for a comparison without floating point per observation.
const BOUNDS_NS: [u64; LATENCY_BUCKETS.len()] = {
    let mut out = [0u64; LATENCY_BUCKETS.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = (LATENCY_BUCKETS[i] * 1e9) as u64;
        i += 1;
    }
    out
};

/// A latency histogram: per-bucket counts (not cumulative) and the sum, as plain integers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Histogram {
    pub counts: [u64; BUCKETS],
    /// Sum of the observations in nanoseconds (u128: years of summed latency without overflow).
    pub sum_ns: u128,
}

impl Histogram {
    pub fn observe(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let slot = BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BUCKETS - 1);
        self.counts[slot] += 1;
        self.sum_ns += u128::from(ns);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }

    pub fn add(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.sum_ns += other.sum_ns;
    }
}

/// Counts of one (listener, route) pair.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RouteCounts {
    /// Requests answered, by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub codes: [u64; 5],
    pub duration: Histogram,
    pub retries: u64,
    pub hedges: u64,
    pub rate_limited: u64,
    pub auth_401: u64,
    pub auth_403: u64,
}

impl RouteCounts {
    pub fn add(&mut self, o: &RouteCounts) {
        for (a, b) in self.codes.iter_mut().zip(o.codes) {
            *a += b;
        }
        self.duration.add(&o.duration);
        self.retries += o.retries;
        self.hedges += o.hedges;
        self.rate_limited += o.rate_limited;
        self.auth_401 += o.auth_401;
        self.auth_403 += o.auth_403;
    }
}

/// The status-class labels, in `RouteCounts::codes` order.
pub const CODE_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Counts of one listener.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ListenerCounts {
    pub accepted: u64,
    /// TLS handshakes: ok, failed.
    pub tls: [u64; 2],
    pub to_upstream: u64,
    pub to_client: u64,
}

impl ListenerCounts {
    pub fn add(&mut self, o: &ListenerCounts) {
        self.accepted += o.accepted;
        self.tls[0] += o.tls[0];
        self.tls[1] += o.tls[1];
        self.to_upstream += o.to_upstream;
        self.to_client += o.to_client;
    }
}

/// Counts of one upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UpstreamCounts {
    pub requests: u64,
    pub reused: u64,
    pub response: Histogram,
}

impl UpstreamCounts {
    pub fn add(&mut self, o: &UpstreamCounts) {
        self.requests += o.requests;
        self.reused += o.reused;
        self.response.add(&o.response);
    }
}

/// A listener's live series. The byte counters are cells shared with the tcp connections
/// forwarding on it, so bytes count as they move, not when a connection closes.
#[derive(Default)]
struct ListenerSeries {
    accepted: u64,
    tls: [u64; 2],
    to_upstream: Rc<Cell<u64>>,
    to_client: Rc<Cell<u64>>,
}

/// Series key: (listener, route), (listener, ""), (upstream, ""), (upstream, endpoint).
pub type Key = (Arc<str>, Arc<str>);

/// Series of one kind, by key, in first-seen order.
struct Table<T> {
    keys: Vec<Key>,
    values: Vec<T>,
    index: HashMap<Key, usize>,
}

impl<T: Default> Table<T> {
    fn slot(&mut self, a: &str, b: &str) -> usize {
        let key: Key = (a.into(), b.into());
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        self.keys.push(key.clone());
        self.values.push(T::default());
        self.index.insert(key, self.values.len() - 1);
        self.values.len() - 1
    }
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            keys: Vec::new(),
            values: Vec::new(),
            index: HashMap::new(),
        }
    }
}

#[derive(Default)]
struct Inner {
    listeners: Table<ListenerSeries>,
    routes: Table<RouteCounts>,
    upstreams: Table<UpstreamCounts>,
    /// Ejections per (upstream, endpoint).
    ejections: Table<u64>,
}

/// One worker's metrics; lives in the worker's `Base`, so it outlives config versions.
#[derive(Default)]
pub struct Shard {
    inner: RefCell<Inner>,
}

/// Where one config version's listeners, routes, upstreams and endpoints count in the shard.
#[derive(Debug, Default)]
pub struct Slots {
    pub listener: Vec<usize>,
    /// Per listener: its requests without a route.
    pub unrouted: Vec<usize>,
    pub route: Vec<usize>,
    pub upstream: Vec<usize>,
    /// Per upstream, per endpoint.
    pub endpoint: Vec<Vec<usize>>,
}

/// The `route` label of a route: `<listener>:<host><path_prefix>`.
pub fn route_label(config: &Config, route: usize) -> String {
    let r = &config.routes[route];
    let listener = &config.listeners[r.listener].name;
    match &r.host {
        None => format!("{listener}:{}", r.path_prefix),
        Some(HostMatch::Exact(h)) => format!("{listener}:{h}{}", r.path_prefix),
        Some(HostMatch::Suffix(s)) => format!("{listener}:*{s}{}", r.path_prefix),
    }
}

/// A copy of a shard's counters, sendable to the admin thread.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub listeners: Vec<(Arc<str>, ListenerCounts)>,
    pub routes: Vec<(Key, RouteCounts)>,
    pub upstreams: Vec<(Arc<str>, UpstreamCounts)>,
    pub ejections: Vec<(Key, u64)>,
}

impl Shard {
    pub fn new() -> Rc<Shard> {
        Rc::new(Shard::default())
    }

    /// The slot table of `config` (creating the series it adds).
    pub fn slots(&self, config: &Config) -> Slots {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        Slots {
            listener: (config.listeners.iter())
                .map(|l| inner.listeners.slot(&l.name, ""))
                .collect(),
            unrouted: (config.listeners.iter())
                .map(|l| inner.routes.slot(&l.name, names::UNROUTED))
                .collect(),
            route: (0..config.routes.len())
                .map(|r| {
                    let listener = &config.listeners[config.routes[r].listener].name;
                    inner.routes.slot(listener, &route_label(config, r))
                })
                .collect(),
            upstream: (config.upstreams.iter())
                .map(|u| inner.upstreams.slot(&u.name, ""))
                .collect(),
            endpoint: (config.upstreams.iter())
                .map(|u| {
                    (u.endpoints.iter())
                        .map(|e| inner.ejections.slot(&u.name, &e.addr.to_string()))
                        .collect()
                })
                .collect(),
        }
    }

    /// Copies every series out (at scrape time, on the worker's thread).
    pub fn counts(&self) -> Counts {
        let inner = self.inner.borrow();
        Counts {
            listeners: (inner.listeners.keys.iter())
                .zip(&inner.listeners.values)
                .map(|(k, l)| {
                    let c = ListenerCounts {
                        accepted: l.accepted,
                        tls: l.tls,
                        to_upstream: l.to_upstream.get(),
                        to_client: l.to_client.get(),
                    };
                    (k.0.clone(), c)
                })
                .collect(),
            routes: (inner.routes.keys.iter())
                .zip(&inner.routes.values)
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            upstreams: (inner.upstreams.keys.iter())
                .zip(&inner.upstreams.values)
                .map(|(k, v)| (k.0.clone(), *v))
                .collect(),
            ejections: (inner.ejections.keys.iter())
                .zip(&inner.ejections.values)
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }

    /// Counts an ejection of the endpoint in `slot` (from `Slots::endpoint`).
    pub fn ejected(&self, slot: usize) {
        self.inner.borrow_mut().ejections.values[slot] += 1;
    }

    fn route(&self, slot: usize, f: impl FnOnce(&mut RouteCounts)) {
        f(&mut self.inner.borrow_mut().routes.values[slot]);
    }
}

/// The request path's handle: the worker's shard seen through one config version's slots. Every
/// call is a few integer additions; nothing allocates, nothing is shared with another thread.
#[derive(Clone, Copy)]
pub struct Recorder<'a> {
    pub shard: &'a Shard,
    pub slots: &'a Slots,
}

/// Which way a TLS handshake went, for [`Recorder::tls_handshake`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    Ok,
    Failed,
}

impl Handshake {
    pub fn label(self) -> &'static str {
        match self {
            Handshake::Ok => "ok",
            Handshake::Failed => "failed",
        }
    }
}

impl Recorder<'_> {
    /// A client connection was accepted on listener `li`.
    pub fn accepted(&self, li: usize) {
        self.shard.inner.borrow_mut().listeners.values[self.slots.listener[li]].accepted += 1;
    }

    /// A request on listener `li` was answered with `status` (`route`: `None` when it never got
    /// one), `took` after its first byte.
    pub fn answered(&self, li: usize, route: Option<usize>, status: u16, took: Duration) {
        let slot = match route {
            Some(r) => self.slots.route[r],
            None => self.slots.unrouted[li],
        };
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.shard.route(slot, |c| {
            c.codes[class] += 1;
            c.duration.observe(took);
        });
    }

    /// A retry of a request on `route` was sent.
    pub fn retry(&self, route: usize) {
        self.shard
            .route(self.slots.route[route], |c| c.retries += 1);
    }

    /// A hedged copy of a request on `route` was sent.
    pub fn hedge(&self, route: usize) {
        self.shard.route(self.slots.route[route], |c| c.hedges += 1);
    }

    /// A request on `route` got 429.
    pub fn rate_limited(&self, route: usize) {
        self.shard
            .route(self.slots.route[route], |c| c.rate_limited += 1);
    }

    /// Auth refused a request on `route` with `status` (401 or 403).
    pub fn auth_denied(&self, route: usize, status: u16) {
        self.shard.route(self.slots.route[route], |c| {
            if status == 403 {
                c.auth_403 += 1
            } else {
                c.auth_401 += 1
            }
        });
    }

    /// An upstream answered an attempt with a response head, `took` after the attempt began.
    pub fn upstream_response(&self, upstream: usize, took: Duration) {
        let slot = self.slots.upstream[upstream];
        self.shard.inner.borrow_mut().upstreams.values[slot]
            .response
            .observe(took);
    }

    /// A request's response is coming from `upstream`, over a pooled connection if `reused`.
    pub fn upstream_request(&self, upstream: usize, reused: bool) {
        let slot = self.slots.upstream[upstream];
        let mut inner = self.shard.inner.borrow_mut();
        let c = &mut inner.upstreams.values[slot];
        c.requests += 1;
        c.reused += u64::from(reused);
    }

    /// The TLS hook: a handshake on listener `li` ended.
    pub fn tls_handshake(&self, li: usize, result: Handshake) {
        let slot = self.slots.listener[li];
        let i = usize::from(result == Handshake::Failed);
        self.shard.inner.borrow_mut().listeners.values[slot].tls[i] += 1;
    }

    /// The byte counters of tcp listener `li`: (client → upstream, upstream → client).
    pub fn forwarded(&self, li: usize) -> (Rc<Cell<u64>>, Rc<Cell<u64>>) {
        let inner = self.shard.inner.borrow();
        let l = &inner.listeners.values[self.slots.listener[li]];
        (l.to_upstream.clone(), l.to_client.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_take_their_upper_bound() {
        let mut h = Histogram::default();
        h.observe(Duration::from_micros(500)); // le 0.0005
        h.observe(Duration::from_micros(501)); // le 0.001
        h.observe(Duration::from_secs(30)); // le 30
        h.observe(Duration::from_secs(31)); // +Inf
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[BUCKETS - 2], 1);
        assert_eq!(h.counts[BUCKETS - 1], 1);
        assert_eq!(h.count(), 4);
        assert!((h.sum_seconds() - 61.001001).abs() < 1e-9);
    }

    const CONFIG: &str = r#"
[[listener]]
name = "web"
bind = "127.0.0.1:1"
[[route]]
listener = "web"
upstream = "app"
[[route]]
listener = "web"
host = "*.example.com"
path_prefix = "/api/"
upstream = "app"
[[upstream]]
name = "app"
endpoints = ["127.0.0.1:2", "127.0.0.1:3"]
"#;

    #[test]
    fn counts_survive_a_new_slot_table() {
        let config = Config::parse(CONFIG, "t").unwrap();
        assert_eq!(route_label(&config, 1), "web:*.example.com/api/");
        let shard = Shard::new();
        let slots = shard.slots(&config);
        let rec = Recorder {
            shard: &shard,
            slots: &slots,
        };
        rec.answered(0, Some(1), 200, Duration::from_millis(1));
        rec.answered(0, None, 404, Duration::from_millis(1));
        rec.accepted(0);
        // A reload that drops the first route: the second keeps its series.
        let mut next = config.clone();
        next.routes.remove(0);
        let slots2 = shard.slots(&next);
        assert_eq!(slots2.route[0], slots.route[1]);
        let rec = Recorder {
            shard: &shard,
            slots: &slots2,
        };
        rec.answered(0, Some(0), 503, Duration::from_millis(1));
        rec.accepted(0);
        let counts = shard.counts();
        let api = counts
            .routes
            .iter()
            .find(|((_, r), _)| &**r == "web:*.example.com/api/")
            .unwrap();
        assert_eq!(api.1.codes, [0, 1, 0, 0, 1]);
        let unrouted = counts
            .routes
            .iter()
            .find(|((_, r), _)| &**r == names::UNROUTED)
            .unwrap();
        assert_eq!(unrouted.1.codes, [0, 0, 0, 1, 0]);
        assert_eq!(counts.listeners[0].1.accepted, 2);
        assert_eq!(counts.ejections.len(), 2);
    }
}
