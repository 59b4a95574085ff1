//! Every metric coregate exports: its name, help text and labels, in one place.
//!
//! Names are what dashboards and alerts are written against: `coregate_requests_total` and
//! `coregate_connections_active` are in the public contract and keep their names; rename nothing
//! here without a deprecation alias. Counter names are given without their `_total` suffix, which
//! the encoder appends (OpenMetrics writes the family name without it on `# TYPE`).
//!
//! Label values: `listener` and `upstream` are the config's names; `route` is
//! `<listener>:<host><path_prefix>` (the host left out when the route has none, e.g. `web:/api/`,
//! `web:api.example.com/`), or [`UNROUTED`] for requests no route matched or that failed before
//! routing; `code` is the status class `1xx`…`5xx`; `endpoint` is the endpoint's address.

/// A metric family: name (counters without `_total`), help, label names (documentation and tests).
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

const fn family(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Family {
    Family { name, help, labels }
}

/// `route` label of requests answered before (or without) a route: no match (404) or a
/// malformed, too large or too slow request head (400, 408, 414, 431, 501).
pub const UNROUTED: &str = "unrouted";

// Requests (HTTP listeners).
/// Counter. Contract name.
pub const REQUESTS: Family = family(
    "coregate_requests",
    &["listener", "route", "code"],
    "HTTP requests answered, by status class (coregate's own answers included)",
);
/// Histogram.
pub const REQUEST_DURATION: Family = family(
    "coregate_request_duration_seconds",
    &["listener", "route"],
    "Time from a request's first byte to the end of its response (to the 101 for upgrades)",
);
/// Counter.
pub const RETRIES: Family = family(
    "coregate_retries",
    &["listener", "route"],
    "Retries sent (each one granted by the route's retry budget)",
);
/// Counter.
pub const HEDGES: Family = family(
    "coregate_hedges",
    &["listener", "route"],
    "Hedged second copies sent",
);
/// Counter.
pub const RATE_LIMITED: Family = family(
    "coregate_rate_limited",
    &["listener", "route"],
    "Requests refused with 429 by the route's rate limit",
);
/// Counter.
pub const AUTH_DENIED: Family = family(
    "coregate_auth_denied",
    &["listener", "route", "code"],
    "Requests refused by the route's auth (401 no or bad credentials, 403 address denied or claim missing)",
);

// Connections.
/// Gauge. Contract name.
pub const CONNECTIONS_ACTIVE: Family = family(
    "coregate_connections_active",
    &["listener"],
    "Open client connections",
);
/// Counter.
pub const CONNECTIONS: Family = family(
    "coregate_connections",
    &["listener"],
    "Client connections accepted",
);
/// Counter.
pub const FORWARDED_BYTES: Family = family(
    "coregate_forwarded_bytes",
    &["listener", "direction"],
    "Bytes forwarded by tcp listeners; direction: to_upstream (client to upstream) or to_client",
);
/// Counter. Hook: [`crate::metrics::Recorder::tls_handshake`].
pub const TLS_HANDSHAKES: Family = family(
    "coregate_tls_handshakes",
    &["listener", "result"],
    "TLS handshakes on listeners that terminate TLS; result: ok or failed",
);

// Upstreams.
/// Counter.
pub const UPSTREAM_REQUESTS: Family = family(
    "coregate_upstream_requests",
    &["upstream"],
    "Requests whose response came from the upstream (the winning attempt)",
);
/// Counter.
pub const UPSTREAM_REUSED: Family = family(
    "coregate_upstream_reused",
    &["upstream"],
    "Of coregate_upstream_requests_total, those sent on a pooled keep-alive connection",
);
/// Gauge, computed at scrape time.
pub const UPSTREAM_REUSE_RATIO: Family = family(
    "coregate_upstream_reuse_ratio",
    &["upstream"],
    "coregate_upstream_reused_total / coregate_upstream_requests_total since start",
);
/// Histogram.
pub const UPSTREAM_RESPONSE: Family = family(
    "coregate_upstream_response_seconds",
    &["upstream"],
    "Time from an attempt's start (pooled connection or connect) to the upstream's response head",
);
/// Counter.
pub const UPSTREAM_EJECTIONS: Family = family(
    "coregate_upstream_ejections",
    &["upstream", "endpoint"],
    "Passive-health ejections of an endpoint (max_fails consecutive failures on one worker)",
);
/// Gauge.
pub const ENDPOINT_UP: Family = family(
    "coregate_endpoint_up",
    &["upstream", "endpoint"],
    "Active health check verdict: 1 up, 0 down (always 1 without [upstream.health_check])",
);
/// Gauge.
pub const ENDPOINT_EJECTED: Family = family(
    "coregate_endpoint_ejected",
    &["upstream", "endpoint"],
    "Workers that currently eject the endpoint (passive health)",
);
/// Gauge.
pub const BREAKER_STATE: Family = family(
    "coregate_breaker_state",
    &["upstream", "worker"],
    "Circuit breaker of an upstream on a worker: 0 closed, 1 half-open, 2 open",
);

// Process and workers.
/// Gauge (always 1).
pub const WORKER_INFO: Family = family(
    "coregate_worker_info",
    &["worker", "driver", "cpu"],
    "One per worker that answered the scrape: its I/O driver (io_uring or epoll) and CPU (or unpinned)",
);
/// Gauge.
pub const WORKER_CONNECTIONS: Family = family(
    "coregate_worker_connections_active",
    &["worker"],
    "Open client connections on each worker (how SO_REUSEPORT spread them)",
);
/// Gauge.
pub const WORKERS_SILENT: Family = family(
    "coregate_workers_silent",
    &[],
    "Workers that did not answer this scrape in time (their numbers are missing from it)",
);
/// Gauge.
pub const CONFIG_VERSION: Family = family(
    "coregate_config_version",
    &[],
    "Config version the workers run: 1 at start, +1 per reload",
);
/// Gauge.
pub const START_TIME: Family = family(
    "coregate_start_time_seconds",
    &[],
    "Start time of the process, seconds since the Unix epoch",
);
/// Gauge (always 1).
pub const BUILD_INFO: Family = family(
    "coregate_build_info",
    &["version"],
    "The coregate version serving",
);

/// Every family, in the order `/metrics` writes them (README and tests walk this list).
pub const ALL: &[Family] = &[
    REQUESTS,
    REQUEST_DURATION,
    RETRIES,
    HEDGES,
    RATE_LIMITED,
    AUTH_DENIED,
    CONNECTIONS_ACTIVE,
    CONNECTIONS,
    FORWARDED_BYTES,
    TLS_HANDSHAKES,
    UPSTREAM_REQUESTS,
    UPSTREAM_REUSED,
    UPSTREAM_REUSE_RATIO,
    UPSTREAM_RESPONSE,
    UPSTREAM_EJECTIONS,
    ENDPOINT_UP,
    ENDPOINT_EJECTED,
    BREAKER_STATE,
    WORKER_INFO,
    WORKER_CONNECTIONS,
    WORKERS_SILENT,
    CONFIG_VERSION,
    START_TIME,
    BUILD_INFO,
];

/// Upper bounds (seconds) of the latency histograms' buckets; `+Inf` follows the last.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// `code` label of a status.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// `direction` label values of [`FORWARDED_BYTES`].
pub const TO_UPSTREAM: &str = "to_upstream";
pub const TO_CLIENT: &str = "to_client";

#[cfg(test)]
mod tests {
    #[test]
    fn every_name_is_prefixed_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for f in super::ALL {
            assert!(f.name.starts_with("coregate_"), "{}", f.name);
            assert!(
                !f.name.ends_with("_total"),
                "{}: the encoder adds _total",
                f.name
            );
            assert!(seen.insert(f.name), "{} twice", f.name);
        }
        let bounds = super::LATENCY_BUCKETS;
        assert!(bounds.windows(2).all(|w| w[0] < w[1]));
    }
}
