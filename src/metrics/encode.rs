//! `/metrics`: the merged snapshot written by `prometheus-client`'s text encoder.
//!
//! The crate's usual model is a registry of live metric objects updated by the application;
//! ours live in per-worker shards and are merged at scrape time, so one [`Collector`] per scrape
//! owns the merged numbers and writes them through the crate's descriptor and metric encoders
//! (names, label escaping, histogram buckets and number formatting are the crate's).
//!
//! The crate writes OpenMetrics text. A scraper that asks for it (Prometheus does, in its
//! `Accept`) gets exactly that; anyone else gets the Prometheus text format 0.0.4, which differs
//! only in two places: a counter family is named with its `_total` suffix on `# HELP` and
//! `# TYPE` (OpenMetrics names the family without it), and there is no `# EOF` line.
//! [`to_text_format`] makes exactly those two edits.

use super::names::{self as n, Family, Kind, LATENCY_BUCKETS};
use super::shard::{Histogram, BUCKETS, CODE_CLASSES};
use super::snapshot::Merged;
use crate::config::Protocol;
use crate::upstream::breaker::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::BTreeSet;
use std::fmt;
use std::time::SystemTime;

/// Content type of the Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a scrape knows besides the workers' numbers.
#[derive(Debug, Clone, Copy)]
pub struct Process {
    pub started: SystemTime,
}

/// Writes the scrape; OpenMetrics text when `openmetrics`, else the Prometheus text format.
pub fn encode(merged: Merged, process: Process, openmetrics: bool) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape { merged, process }));
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail; a collector error would only truncate the output.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    if openmetrics {
        out
    } else {
        to_text_format(&out)
    }
}

/// OpenMetrics text → Prometheus text format 0.0.4 (see the module comment).
pub fn to_text_format(om: &str) -> String {
    let counters: BTreeSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len() + 16 * counters.len());
    for line in om.lines() {
        if line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

struct Scrape {
    merged: Merged,
    process: Process,
}

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrape")
            .field("workers", &self.merged.workers.len())
            .finish_non_exhaustive()
    }
}

fn describe<'s>(
    enc: &'s mut DescriptorEncoder<'_>,
    f: &'s Family,
) -> Result<MetricEncoder<'s>, fmt::Error> {
    let t = match f.kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
    };
    enc.encode_descriptor(f.name, f.help, None, t)
}

fn counter(e: &mut MetricEncoder<'_>, labels: &[(&str, &str)], v: u64) -> fmt::Result {
    e.encode_family(&labels)?
        .encode_counter::<NoLabelSet, u64, u64>(&v, None)
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    e: &mut MetricEncoder<'_>,
    labels: &[(&str, &str)],
    v: V,
) -> fmt::Result {
    if labels.is_empty() {
        return e.encode_gauge(&v);
    }
    e.encode_family(&labels)?.encode_gauge(&v)
}

fn histogram(e: &mut MetricEncoder<'_>, labels: &[(&str, &str)], h: &Histogram) -> fmt::Result {
    let mut buckets = [(f64::INFINITY, 0u64); BUCKETS];
    for (i, b) in buckets.iter_mut().enumerate() {
        b.0 = LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
        b.1 = h.counts[i];
    }
    e.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
        h.sum_seconds(),
        h.count(),
        &buckets,
        None,
    )
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let m = &self.merged;
        let newest = m.newest();
        let routed = || m.routes.iter().filter(|((_, r), _)| &**r != n::UNROUTED);

        let mut e = describe(&mut enc, &n::REQUESTS)?;
        for ((l, r), c) in &m.routes {
            for (class, v) in CODE_CLASSES.iter().zip(c.codes) {
                if v > 0 {
                    counter(&mut e, &[("listener", l), ("route", r), ("code", class)], v)?;
                }
            }
        }
        let mut e = describe(&mut enc, &n::REQUEST_DURATION)?;
        for ((l, r), c) in m.routes.iter().filter(|(_, c)| c.duration.count() > 0) {
            histogram(&mut e, &[("listener", l), ("route", r)], &c.duration)?;
        }
        type Pick = fn(&super::shard::RouteCounts) -> u64;
        let per_route: [(&Family, Pick); 3] = [
            (&n::RETRIES, |c| c.retries),
            (&n::HEDGES, |c| c.hedges),
            (&n::RATE_LIMITED, |c| c.rate_limited),
        ];
        for (f, pick) in per_route {
            let mut e = describe(&mut enc, f)?;
            for ((l, r), c) in routed() {
                counter(&mut e, &[("listener", l), ("route", r)], pick(c))?;
            }
        }
        let mut e = describe(&mut enc, &n::AUTH_DENIED)?;
        for ((l, r), c) in routed() {
            for (code, v) in [("401", c.auth_401), ("403", c.auth_403)] {
                if v > 0 {
                    counter(&mut e, &[("listener", l), ("route", r), ("code", code)], v)?;
                }
            }
        }

        let mut e = describe(&mut enc, &n::CONNECTIONS_ACTIVE)?;
        for (l, v) in &m.active {
            gauge(&mut e, &[("listener", l)], *v as u64)?;
        }
        let mut e = describe(&mut enc, &n::CONNECTIONS)?;
        for (l, c) in &m.listeners {
            counter(&mut e, &[("listener", l)], c.accepted)?;
        }
        let configured = |pred: fn(&crate::config::Listener) -> bool, name: &str| {
            newest.is_some_and(|s| s.config.listeners.iter().any(|l| l.name == name && pred(l)))
        };
        let mut e = describe(&mut enc, &n::FORWARDED_BYTES)?;
        for (l, c) in &m.listeners {
            let tcp = configured(|l| matches!(l.protocol, Protocol::Tcp(_)), l);
            if tcp || c.to_upstream + c.to_client > 0 {
                counter(
                    &mut e,
                    &[("listener", l), ("direction", n::TO_UPSTREAM)],
                    c.to_upstream,
                )?;
                counter(
                    &mut e,
                    &[("listener", l), ("direction", n::TO_CLIENT)],
                    c.to_client,
                )?;
            }
        }
        let mut e = describe(&mut enc, &n::TLS_HANDSHAKES)?;
        for (l, c) in &m.listeners {
            if configured(|l| l.tls.is_some(), l) || c.tls[0] + c.tls[1] > 0 {
                counter(&mut e, &[("listener", l), ("result", "ok")], c.tls[0])?;
                counter(&mut e, &[("listener", l), ("result", "failed")], c.tls[1])?;
            }
        }

        if let Some(stats) = newest.and_then(|s| s.access.as_ref()) {
            use std::sync::atomic::Ordering::Relaxed;
            let mut e = describe(&mut enc, &n::ACCESS_LOG_LINES)?;
            e.encode_counter::<NoLabelSet, u64, u64>(&stats.written.load(Relaxed), None)?;
            let mut e = describe(&mut enc, &n::ACCESS_LOG_DROPPED)?;
            e.encode_counter::<NoLabelSet, u64, u64>(&stats.dropped(), None)?;
        }
        let mut e = describe(&mut enc, &n::UPSTREAM_REQUESTS)?;
        for (u, c) in &m.upstreams {
            counter(&mut e, &[("upstream", u)], c.requests)?;
        }
        let mut e = describe(&mut enc, &n::UPSTREAM_REUSED)?;
        for (u, c) in &m.upstreams {
            counter(&mut e, &[("upstream", u)], c.reused)?;
        }
        let mut e = describe(&mut enc, &n::UPSTREAM_REUSE_RATIO)?;
        for (u, c) in m.upstreams.iter().filter(|(_, c)| c.requests > 0) {
            gauge(
                &mut e,
                &[("upstream", u)],
                c.reused as f64 / c.requests as f64,
            )?;
        }
        let mut e = describe(&mut enc, &n::UPSTREAM_RESPONSE)?;
        for (u, c) in m.upstreams.iter().filter(|(_, c)| c.response.count() > 0) {
            histogram(&mut e, &[("upstream", u)], &c.response)?;
        }
        let mut e = describe(&mut enc, &n::UPSTREAM_EJECTIONS)?;
        for ((u, ep), v) in &m.ejections {
            counter(&mut e, &[("upstream", u), ("endpoint", ep)], *v)?;
        }
        if let Some(s) = newest {
            let mut e = describe(&mut enc, &n::ENDPOINT_UP)?;
            for (ui, u) in s.config.upstreams.iter().enumerate() {
                for (ei, ep) in u.endpoints.iter().enumerate() {
                    let addr = ep.addr.to_string();
                    let up = u64::from(s.health.is_up(ui, ei));
                    gauge(&mut e, &[("upstream", &u.name), ("endpoint", &addr)], up)?;
                }
            }
            let mut e = describe(&mut enc, &n::ENDPOINT_EJECTED)?;
            for u in &s.config.upstreams {
                for ep in &u.endpoints {
                    let addr = ep.addr.to_string();
                    let by = m.ejected_by(&u.name, ep.addr).len() as u64;
                    gauge(&mut e, &[("upstream", &u.name), ("endpoint", &addr)], by)?;
                }
            }
        }
        let mut e = describe(&mut enc, &n::BREAKER_STATE)?;
        for s in &m.workers {
            let worker = s.worker.to_string();
            for (u, b) in s.config.upstreams.iter().zip(&s.breakers) {
                let Some(state) = b else { continue };
                let v: u64 = match state {
                    State::Closed => 0,
                    State::HalfOpen => 1,
                    State::Open => 2,
                };
                gauge(&mut e, &[("upstream", &u.name), ("worker", &worker)], v)?;
            }
        }

        let mut e = describe(&mut enc, &n::WORKER_INFO)?;
        for s in &m.workers {
            let (worker, cpu) = (s.worker.to_string(), cpu_label(s.cpu));
            let driver = s.driver.to_string();
            gauge(
                &mut e,
                &[("worker", &worker), ("driver", &driver), ("cpu", &cpu)],
                1u64,
            )?;
        }
        let mut e = describe(&mut enc, &n::WORKER_CONNECTIONS)?;
        for s in &m.workers {
            gauge(
                &mut e,
                &[("worker", &s.worker.to_string())],
                s.connections as u64,
            )?;
        }
        let mut e = describe(&mut enc, &n::WORKERS_SILENT)?;
        gauge(&mut e, &[], m.silent.len() as u64)?;
        if let Some(s) = newest {
            let mut e = describe(&mut enc, &n::CONFIG_VERSION)?;
            gauge(&mut e, &[], s.version)?;
        }
        let started = (self.process.started)
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let mut e = describe(&mut enc, &n::START_TIME)?;
        gauge(&mut e, &[], started)?;
        let mut e = describe(&mut enc, &n::BUILD_INFO)?;
        gauge(&mut e, &[("version", env!("CARGO_PKG_VERSION"))], 1u64)?;
        Ok(())
    }
}

/// The `cpu` label: the CPU number, or `unpinned`.
pub fn cpu_label(cpu: Option<usize>) -> String {
    cpu.map_or_else(|| "unpinned".to_string(), |c| c.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_format_names_counters_with_total_and_drops_eof() {
        let om = "# HELP coregate_requests Requests.\n# TYPE coregate_requests counter\n\
                  coregate_requests_total{code=\"2xx\"} 7\n# HELP coregate_x X.\n\
                  # TYPE coregate_x gauge\ncoregate_x 1\n# EOF\n";
        assert_eq!(
            super::to_text_format(om),
            "# HELP coregate_requests_total Requests.\n# TYPE coregate_requests_total counter\n\
             coregate_requests_total{code=\"2xx\"} 7\n# HELP coregate_x X.\n\
             # TYPE coregate_x gauge\ncoregate_x 1\n"
        );
    }
}
