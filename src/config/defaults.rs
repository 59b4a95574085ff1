//! Every default of the configuration, in one place, so docs and code cannot drift.
//!
//! The README's config reference quotes these values; `tests/config_check.rs` pins a few of them.

use std::time::Duration;

/// `runtime.workers`: 0 means one worker per CPU in the process's affinity mask.
pub const WORKERS: usize = 0;
/// `runtime.driver`: io_uring when the kernel allows it, epoll otherwise.
pub const DRIVER: &str = "auto";
/// `runtime.pin`: pin worker i to the i-th allowed CPU.
pub const PIN: bool = true;
/// `runtime.shutdown_timeout`: how long open connections may finish after SIGTERM.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// `runtime.max_connections_per_worker`: beyond it a worker pauses accepting (the kernel queues).
pub const MAX_CONNECTIONS_PER_WORKER: usize = 16_384;

/// `admin.listen`: loopback only, so metrics and reload are never exposed by accident.
pub const ADMIN_LISTEN: &str = "127.0.0.1:9901";
/// `admin.token`: none, so the loopback address is the only protection; set one whenever the
/// admin address is reachable by anyone who should not reload the config.
pub const ADMIN_TOKEN: &str = "none";
/// Shortest `admin.token` accepted.
pub const ADMIN_TOKEN_MIN_LEN: usize = 16;

/// `limits.max_request_head`: request line + headers; beyond it the client gets 431.
pub const MAX_REQUEST_HEAD: u64 = 64 * 1024;
/// `limits.max_request_target`: beyond it 414; an 8000-octet request line must pass (RFC 9112 §3).
pub const MAX_REQUEST_TARGET: u64 = 16 * 1024;
/// `limits.max_headers`: header fields per request; beyond it 431.
pub const MAX_HEADERS: usize = 100;
/// Largest `limits.max_headers` accepted: header slots live on the parser's stack.
pub const MAX_HEADERS_CEILING: usize = 256;
/// `limits.max_chunk_ext`: chunk-extension octets per chunk line; beyond it 400 (502 upstream).
pub const MAX_CHUNK_EXT: u64 = 4096;
/// `limits.client_header_timeout`: the whole request head must arrive within it, else 408.
pub const CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `limits.client_idle_timeout`: an idle keep-alive client connection is closed after it.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// `log.level`: overridden by `--log-level` or `RUST_LOG`.
pub const LOG_LEVEL: &str = "info";
/// `log.access_log`: off | stdout | a file path.
pub const ACCESS_LOG: &str = "off";
/// `log.access_format`: combined | json.
pub const ACCESS_FORMAT: &str = "combined";

/// `listener.protocol`.
pub const LISTENER_PROTOCOL: &str = "http";
/// `listener.backlog`: the listen(2) queue of each worker's socket.
pub const BACKLOG: u32 = 4096;
/// `listener.proxy_protocol` (tcp listeners): no header sent upstream.
pub const PROXY_PROTOCOL: &str = "off";
/// `listener.idle_timeout` (tcp listeners): no byte either way for this long closes both sides
/// (nginx's `proxy_timeout`).
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// `listener.splice` (tcp listeners): forward with splice(2) through pipes, not a user-space copy.
pub const SPLICE: bool = true;
/// `listener.max_connections`: none; only `runtime.max_connections_per_worker` applies.
pub const LISTENER_MAX_CONNECTIONS: &str = "none";

/// `listener.tls.handshake_timeout`: a client that has not finished its handshake by then is
/// closed (slow or stalled handshakes must not hold a connection slot).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// `listener.tls.min_version`: TLS 1.2 and 1.3; older versions are never offered.
pub const TLS_MIN_VERSION: &str = "1.2";
/// `listener.tls.alpn`: HTTP/1.1 only until h2 exists; a client offering only others is refused
/// with the `no_application_protocol` alert.
pub const TLS_ALPN: &[&str] = &["http/1.1"];
/// `listener.tls.strict_sni`: serve the first certificate to clients without (or with an
/// unknown) SNI, like nginx's default server.
pub const TLS_STRICT_SNI: bool = false;
/// `listener.tls.session_tickets`: resumption by ticket, keys shared by all workers.
pub const TLS_SESSION_TICKETS: bool = true;
/// `listener.tls.client_auth` (with `client_ca`): a client certificate is required.
pub const TLS_CLIENT_AUTH: &str = "required";
/// `listener.tls.client_subject_header` (with `client_ca`): carries the verified subject.
pub const TLS_CLIENT_SUBJECT_HEADER: &str = "x-client-subject";
/// TLS 1.3 tickets sent after a full handshake: two, like OpenSSL, so a client can open two
/// resumed connections in parallel.
pub const TLS13_TICKETS: usize = 2;
/// How often the process's session-ticket key is replaced; the previous key still decrypts, so
/// a ticket is good for one to two periods (RFC 8446 allows up to 7 days).
pub const TICKET_KEY_ROTATION: Duration = Duration::from_secs(6 * 3600);

/// `route.path_prefix`: matches every path.
pub const PATH_PREFIX: &str = "/";
/// `route.strip_prefix`.
pub const STRIP_PREFIX: bool = false;
/// `route.timeout`: whole-request deadline.
pub const ROUTE_TIMEOUT: Duration = Duration::from_secs(30);
/// `route.rate_limit.key`: one bucket for the whole route.
pub const RATE_LIMIT_KEY: &str = "global";
/// `route.retry.attempts`: tries after the first one.
pub const RETRY_ATTEMPTS: u32 = 2;
/// `route.retry.budget`: retries allowed as a fraction of requests in the window.
pub const RETRY_BUDGET: f64 = 0.1;
/// `route.fallback.status`.
pub const FALLBACK_STATUS: u16 = 503;
/// `route.auth.api_key.header`.
pub const API_KEY_HEADER: &str = "x-api-key";

/// `upstream.balance`.
pub const BALANCE: &str = "round_robin";
/// `upstream.hash_key` (consistent_hash only).
pub const HASH_KEY: &str = "client_ip";
/// `upstream.endpoints[].weight`.
pub const WEIGHT: u32 = 1;
/// `upstream.connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// `upstream.response_timeout`: until the response head arrives.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// `upstream.idle_timeout`: a pooled keep-alive connection is closed after it.
pub const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `upstream.max_idle_per_worker`: pooled idle connections per worker and upstream.
pub const MAX_IDLE_PER_WORKER: usize = 64;

/// `upstream.max_fails`: consecutive failures (connect, reset, 5xx) that eject an endpoint from a
/// worker's picks (passive health, nginx's name); 0 turns passive ejection off.
pub const MAX_FAILS: u32 = 5;
/// `upstream.fail_timeout`: how long the first ejection lasts; repeats double it.
pub const FAIL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest ejection, however often an endpoint keeps failing.
pub const MAX_EJECTION: Duration = Duration::from_secs(300);

/// `upstream.health_check.interval`.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
/// `upstream.health_check.timeout`.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// `upstream.health_check.healthy`: consecutive successes to mark an endpoint up.
pub const HEALTHY: u32 = 2;
/// `upstream.health_check.unhealthy`: consecutive failures to mark an endpoint down.
pub const UNHEALTHY: u32 = 3;

/// `upstream.circuit_breaker.error_rate`.
pub const BREAKER_ERROR_RATE: f64 = 0.5;
/// `upstream.circuit_breaker.min_requests`.
pub const BREAKER_MIN_REQUESTS: u32 = 20;
/// `upstream.circuit_breaker.window`.
pub const BREAKER_WINDOW: Duration = Duration::from_secs(10);
/// `upstream.circuit_breaker.open_for`.
pub const BREAKER_OPEN_FOR: Duration = Duration::from_secs(5);
/// `upstream.circuit_breaker.half_open_probes`.
pub const BREAKER_HALF_OPEN_PROBES: u32 = 3;
