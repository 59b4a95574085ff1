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

/// A metric family: name (counters without `_total`), type, help, label names.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Family {
    /// The name its samples carry (`_total` added to counters).
    pub fn exposed(&self) -> String {
        match self.kind {
            Kind::Counter => format!("{}_total", self.name),
            _ => self.name.to_string(),
        }
    }
}

const fn family(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Family {
    Family {
        name,
        kind,
        help,
        labels,
    }
}

/// `route` label of requests answered before (or without) a route: no match (404) or a
/// malformed, too large or too slow request head (400, 408, 414, 431, 501).
pub const UNROUTED: &str = "unrouted";

// Requests (HTTP listeners).
/// Contract name.
pub const REQUESTS: Family = family(
    "coregate_requests",
    Kind::Counter,
    &["listener", "route", "code"],
    "HTTP requests answered, by status class (coregate's own answers included)",
);
pub const REQUEST_DURATION: Family = family(
    "coregate_request_duration_seconds",
    Kind::Histogram,
    &["listener", "route"],
    "Time from a request's first byte to the end of its response (to the 101 for upgrades)",
);
pub const RETRIES: Family = family(
    "coregate_retries",
    Kind::Counter,
    &["listener", "route"],
    "Retries sent (each one granted by the route's retry budget)",
);
pub const HEDGES: Family = family(
    "coregate_hedges",
    Kind::Counter,
    &["listener", "route"],
    "Hedged second copies sent",
);
pub const RATE_LIMITED: Family = family(
    "coregate_rate_limited",
    Kind::Counter,
    &["listener", "route"],
    "Requests refused with 429 by the route's rate limit",
);
pub const AUTH_DENIED: Family = family(
    "coregate_auth_denied",
    Kind::Counter,
    &["listener", "route", "code"],
    "Requests refused by the route's auth (401 no or bad credentials, 403 address denied or claim missing)",
);

// Connections.
/// Contract name.
pub const CONNECTIONS_ACTIVE: Family = family(
    "coregate_connections_active",
    Kind::Gauge,
    &["listener"],
    "Open client connections",
);
pub const CONNECTIONS: Family = family(
    "coregate_connections",
    Kind::Counter,
    &["listener"],
    "Client connections accepted",
);
pub const FORWARDED_BYTES: Family = family(
    "coregate_forwarded_bytes",
    Kind::Counter,
    &["listener", "direction"],
    "Bytes forwarded by tcp listeners; direction: to_upstream (client to upstream) or to_client",
);
/// Hook for the TLS handshake: [`crate::metrics::Recorder::tls_handshake`].
pub const TLS_HANDSHAKES: Family = family(
    "coregate_tls_handshakes",
    Kind::Counter,
    &["listener", "result"],
    "TLS handshakes on listeners that terminate TLS; result: ok or failed",
);

// Access log (process-wide counters, read at scrape time).
pub const ACCESS_LOG_LINES: Family = family(
    "coregate_access_log_lines",
    Kind::Counter,
    &[],
    "Access log lines written (present when log.access_log is on)",
);
pub const ACCESS_LOG_DROPPED: Family = family(
    "coregate_access_log_dropped",
    Kind::Counter,
    &[],
    "Access log lines lost: a worker's buffers all queued behind a slow writer, or the file not writable",
);

// Upstreams.
pub const UPSTREAM_REQUESTS: Family = family(
    "coregate_upstream_requests",
    Kind::Counter,
    &["upstream"],
    "Requests whose response came from the upstream (the winning attempt)",
);
pub const UPSTREAM_REUSED: Family = family(
    "coregate_upstream_reused",
    Kind::Counter,
    &["upstream"],
    "Of coregate_upstream_requests_total, those sent on a pooled keep-alive connection",
);
/// Computed at scrape time.
pub const UPSTREAM_REUSE_RATIO: Family = family(
    "coregate_upstream_reuse_ratio",
    Kind::Gauge,
    &["upstream"],
    "coregate_upstream_reused_total / coregate_upstream_requests_total since start",
);
pub const UPSTREAM_RESPONSE: Family = family(
    "coregate_upstream_response_seconds",
    Kind::Histogram,
    &["upstream"],
    "Time from an attempt's start (pooled connection or connect) to the upstream's response head",
);
pub const UPSTREAM_EJECTIONS: Family = family(
    "coregate_upstream_ejections",
    Kind::Counter,
    &["upstream", "endpoint"],
    "Passive-health ejections of an endpoint (max_fails consecutive failures on one worker)",
);
pub const ENDPOINT_UP: Family = family(
    "coregate_endpoint_up",
    Kind::Gauge,
    &["upstream", "endpoint"],
    "Active health check verdict: 1 up, 0 down (always 1 without [upstream.health_check])",
);
pub const ENDPOINT_EJECTED: Family = family(
    "coregate_endpoint_ejected",
    Kind::Gauge,
    &["upstream", "endpoint"],
    "Workers that currently eject the endpoint (passive health)",
);
pub const BREAKER_STATE: Family = family(
    "coregate_breaker_state",
    Kind::Gauge,
    &["upstream", "worker"],
    "Circuit breaker of an upstream on a worker: 0 closed, 1 half-open, 2 open",
);

// Process and workers.
/// Always 1.
pub const WORKER_INFO: Family = family(
    "coregate_worker_info",
    Kind::Gauge,
    &["worker", "driver", "cpu"],
    "One per worker that answered the scrape: its I/O driver (io_uring or epoll) and CPU (or unpinned)",
);
pub const WORKER_CONNECTIONS: Family = family(
    "coregate_worker_connections_active",
    Kind::Gauge,
    &["worker"],
    "Open client connections on each worker (how SO_REUSEPORT spread them)",
);
pub const WORKERS_SILENT: Family = family(
    "coregate_workers_silent",
    Kind::Gauge,
    &[],
    "Workers that did not answer this scrape in time (their numbers are missing from it)",
);
pub const CONFIG_VERSION: Family = family(
    "coregate_config_version",
    Kind::Gauge,
    &[],
    "Config version the workers run: 1 at start, +1 per reload",
);
pub const START_TIME: Family = family(
    "coregate_start_time_seconds",
    Kind::Gauge,
    &[],
    "Start time of the process, seconds since the Unix epoch",
);
/// Always 1.
pub const BUILD_INFO: Family = family(
    "coregate_build_info",
    Kind::Gauge,
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
    ACCESS_LOG_LINES,
    ACCESS_LOG_DROPPED,
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
