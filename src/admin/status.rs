//! `GET /status`: what the status page shows, as JSON.
//!
//! Counters are totals since start; a client computes rates from two samples (the status page
//! does, from `requests_total` and each listener's `requests_total`).

use crate::config::{Balance, Protocol};
use crate::metrics::encode::{cpu_label, Process};
use crate::metrics::names::UNROUTED;
use crate::metrics::shard::{RouteCounts, CODE_CLASSES};
use crate::metrics::Merged;
use crate::upstream::breaker::State;
use serde_json::{json, Map, Value};
use std::time::SystemTime;

fn codes(c: &RouteCounts) -> Value {
    let mut m = Map::new();
    for (class, v) in CODE_CLASSES.iter().zip(c.codes) {
        m.insert(class.to_string(), json!(v));
    }
    Value::Object(m)
}

/// The config's spelling of a balancing policy.
fn balance(b: Balance) -> &'static str {
    match b {
        Balance::RoundRobin => "round_robin",
        Balance::WeightedRoundRobin => "weighted_round_robin",
        Balance::Random => "random",
        Balance::LeastRequest => "least_request",
        Balance::ConsistentHash => "consistent_hash",
    }
}

fn breaker(s: State) -> &'static str {
    match s {
        State::Closed => "closed",
        State::HalfOpen => "half_open",
        State::Open => "open",
    }
}

/// The document; `workers` is how many the process runs (silent ones included).
pub fn json(m: &Merged, workers: usize, process: Process) -> Value {
    let newest = m.newest();
    let worker_rows: Vec<Value> = (0..workers)
        .map(|i| match m.workers.iter().find(|s| s.worker == i) {
            Some(s) => json!({
                "index": i,
                "answering": true,
                "cpu": cpu_label(s.cpu),
                "driver": s.driver.to_string(),
                "connections": s.connections,
                "config_version": s.version,
            }),
            None => json!({ "index": i, "answering": false }),
        })
        .collect();
    let mut listeners = Vec::new();
    let mut routes = Vec::new();
    let mut upstreams = Vec::new();
    if let Some(s) = newest {
        let c = &s.config;
        for l in &c.listeners {
            let counts = m
                .listeners
                .get(l.name.as_str())
                .copied()
                .unwrap_or_default();
            let mut requests = RouteCounts::default();
            for ((ln, _), rc) in &m.routes {
                if **ln == *l.name {
                    requests.add(rc);
                }
            }
            let total: u64 = requests.codes.iter().sum();
            let mut row = json!({
                "name": l.name,
                "bind": l.bind.to_string(),
                "protocol": match l.protocol { Protocol::Http => "http", Protocol::Tcp(_) => "tcp" },
                "tls": l.tls.is_some(),
                "connections_active": m.active.get(&l.name).copied().unwrap_or(0),
                "connections_total": counts.accepted,
            });
            if let Protocol::Http = l.protocol {
                row["requests_total"] = json!(total);
                row["requests"] = codes(&requests);
            }
            if let Protocol::Tcp(_) = l.protocol {
                row["forwarded_bytes"] = json!({
                    "to_upstream": counts.to_upstream,
                    "to_client": counts.to_client,
                });
            }
            if l.tls.is_some() {
                row["tls_handshakes"] = json!({ "ok": counts.tls[0], "failed": counts.tls[1] });
            }
            listeners.push(row);
        }
        for (ri, r) in c.routes.iter().enumerate() {
            let listener = &c.listeners[r.listener].name;
            let label = crate::metrics::shard::route_label(c, ri);
            let key = (listener.as_str().into(), label.as_str().into());
            let rc = m.routes.get(&key).copied().unwrap_or_default();
            routes.push(json!({
                "route": label,
                "listener": listener,
                "upstream": c.upstreams[r.upstream].name,
                "requests": codes(&rc),
                "retries": rc.retries,
                "hedges": rc.hedges,
                "rate_limited": rc.rate_limited,
                "auth_denied": rc.auth_401 + rc.auth_403,
            }));
        }
        for (ui, u) in c.upstreams.iter().enumerate() {
            let counts = m
                .upstreams
                .get(u.name.as_str())
                .copied()
                .unwrap_or_default();
            let endpoints: Vec<Value> = (u.endpoints.iter().enumerate())
                .map(|(ei, e)| {
                    let key = (u.name.as_str().into(), e.addr.to_string().into());
                    json!({
                        "addr": e.addr.to_string(),
                        "weight": e.weight,
                        "health": if s.health.is_up(ui, ei) { "up" } else { "down" },
                        "ejected_by_workers": m.ejected_by(&u.name, e.addr),
                        "ejections": m.ejections.get(&key).copied().unwrap_or(0),
                    })
                })
                .collect();
            let breakers: Vec<Value> = (m.workers.iter())
                .filter_map(|w| {
                    let wi = w.config.upstreams.iter().position(|x| x.name == u.name)?;
                    let st = (*w.breakers.get(wi)?)?;
                    Some(json!({ "worker": w.worker, "state": breaker(st) }))
                })
                .collect();
            upstreams.push(json!({
                "name": u.name,
                "balance": balance(u.balance),
                "health_check": u.health_check.is_some(),
                "requests": counts.requests,
                "reused": counts.reused,
                "breaker": if u.circuit_breaker.is_some() { json!(breakers) } else { Value::Null },
                "endpoints": endpoints,
            }));
        }
    }
    let unrouted: u64 = (m.routes.iter())
        .filter(|((_, r), _)| &**r == UNROUTED)
        .map(|(_, c)| c.codes.iter().sum::<u64>())
        .sum();
    let since_epoch = (process.started)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    json!({
        "coregate": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "config": {
            "version": newest.map(|s| s.version),
            "source": newest.map(|s| s.config.source.clone()),
        },
        "started": since_epoch,
        "uptime_seconds": SystemTime::now()
            .duration_since(process.started)
            .unwrap_or_default()
            .as_secs_f64(),
        "requests_total": m.requests(),
        "unrouted_total": unrouted,
        "workers": worker_rows,
        "silent_workers": m.silent,
        "listeners": listeners,
        "routes": routes,
        "upstreams": upstreams,
    })
}
