//! Configuration: the file layer (`file`), its checked form (`Config`) and the rules between them.
//!
//! A `Config` is immutable once built; reload builds a whole new one and swaps it in.

pub mod defaults;
mod error;
mod file;
pub mod units;
mod validate;

pub use error::ConfigError;

use ipnet::IpNet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The checked configuration every worker runs from.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (`<demo>` for the embedded one), for messages.
    pub source: String,
    pub runtime: RuntimeConfig,
    pub admin: Option<AdminConfig>,
    pub limits: Limits,
    pub log: LogConfig,
    pub listeners: Vec<Listener>,
    pub routes: Vec<Route>,
    pub upstreams: Vec<Upstream>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverChoice {
    Auto,
    IoUring,
    Epoll,
}

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// 0 = one per allowed CPU; resolved when workers start.
    pub workers: usize,
    pub driver: DriverChoice,
    pub pin: bool,
    pub shutdown_timeout: Duration,
    pub max_connections_per_worker: usize,
}

/// `[admin]`: read once at start; a reload that changes it is logged and takes effect at the
/// next start.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Every admin request must carry `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_request_head: usize,
    pub max_request_target: usize,
    pub max_headers: usize,
    pub max_chunk_ext: usize,
    pub client_header_timeout: Duration,
    pub client_idle_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    Off,
    Stdout,
    /// Resolved against the config file's directory; its directory exists (checked at load).
    File(std::path::PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessFormat {
    Combined,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub level: String,
    pub access_log: AccessLog,
    pub access_format: AccessFormat,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub bind: SocketAddr,
    pub backlog: u32,
    pub protocol: Protocol,
    /// Networks whose PROXY protocol header is believed; `None` = no header expected.
    pub accept_proxy_protocol: Option<Vec<IpNet>>,
    pub tls: Option<ListenerTls>,
    /// Open connections per worker on this listener; at the cap the worker pauses accepting here.
    pub max_connections: Option<usize>,
}

#[derive(Debug, Clone)]
pub enum Protocol {
    Http,
    Tcp(TcpForward),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    Off,
    V1,
    V2,
}

#[derive(Debug, Clone)]
pub struct TcpForward {
    /// Index into `Config::upstreams`; `None` when only `sni_routes` decide.
    pub upstream: Option<usize>,
    pub proxy_protocol: ProxyProtocol,
    /// SNI name (exact, `*.suffix`, or `*`) → upstream index.
    pub sni_routes: Vec<(String, usize)>,
    /// No byte in either direction for this long closes the connection.
    pub idle_timeout: Duration,
    /// splice(2) through pooled pipes (`true`) or a pooled-buffer copy.
    pub splice: bool,
}

#[derive(Debug, Clone)]
pub struct ListenerTls {
    /// (cert path, key path), resolved against the config file's directory; the first is the
    /// default certificate (clients without SNI).
    pub certs: Vec<(PathBuf, PathBuf)>,
    /// The whole handshake must finish within it, else the connection closes.
    pub handshake_timeout: Duration,
    pub min_version: TlsVersion,
    /// ALPN protocols offered, in preference order; a client offering none of them is refused.
    pub alpn: Vec<String>,
    /// Refuse clients without SNI or naming no certificate, instead of serving the default.
    pub strict_sni: bool,
    /// Resumption through the process's rotating ticket key.
    pub session_tickets: bool,
    /// Client certificates (mTLS); `None` = not asked for.
    pub client_auth: Option<ClientAuth>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V12,
    V13,
}

#[derive(Debug, Clone)]
pub struct ClientAuth {
    /// CA bundle that client certificates must chain to.
    pub ca: PathBuf,
    /// `false` = a client without a certificate is let in (without the subject header).
    pub required: bool,
    /// Request header carrying the verified subject upstream; always stripped from requests.
    pub subject_header: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostMatch {
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Suffix(String),
}

#[derive(Debug, Clone, Default)]
pub struct HeaderRules {
    pub set: Vec<(String, String)>,
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RequestKey {
    Global,
    ClientIp,
    Header(String),
    Cookie(String),
    Path,
}

#[derive(Debug, Clone)]
pub struct RateLimit {
    pub rps: f64,
    pub burst: f64,
    pub key: RequestKey,
}

#[derive(Debug, Clone)]
pub struct Retry {
    pub attempts: u32,
    pub budget: f64,
}

#[derive(Debug, Clone)]
pub enum Hedge {
    AfterPercentile(f64),
    After(Duration),
}

#[derive(Debug, Clone)]
pub struct Fallback {
    pub status: u16,
    pub body: String,
}

/// One authentication method of a route, with its key files already read and checked.
///
/// `Debug` is written by hand (`crate::auth::redact`) so secrets never reach a log line.
#[derive(Clone)]
pub enum Auth {
    /// A header carrying one of `keys` (inline and `keys_file` merged, deduplicated).
    ApiKey { header: String, keys: Vec<String> },
    /// HTTP Basic (RFC 7617) against users from `users` and the `htpasswd` file.
    Basic {
        users: Vec<BasicUser>,
        realm: String,
    },
    /// A bearer JWT (RFC 7519); boxed because it is much larger than the other methods.
    Jwt(Box<JwtAuth>),
    /// Client address lists; `deny` wins over `allow`, an empty `allow` allows all.
    Ip { allow: Vec<IpNet>, deny: Vec<IpNet> },
}

/// A Basic user and how their password is checked.
#[derive(Clone)]
pub struct BasicUser {
    pub name: String,
    pub password: BasicPassword,
}

#[derive(Clone)]
pub enum BasicPassword {
    /// A `$2a$`/`$2b$`/`$2x$`/`$2y$` bcrypt hash as htpasswd -B writes it.
    Bcrypt(String),
    /// A plain password written inline in the config (for development only).
    Plain(String),
}

/// `route.auth.jwt`, checked: algorithm and key agree, the key is parsed.
#[derive(Clone)]
pub struct JwtAuth {
    pub algorithm: JwtAlgorithm,
    pub key: JwtKey,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Claims the token must carry with these values (or arrays containing them).
    pub required_claims: Vec<(String, ClaimValue)>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Whether a token without `exp` is refused.
    pub require_exp: bool,
    /// The realm of the `WWW-Authenticate: Bearer` challenge.
    pub realm: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    HS256,
    RS256,
    ES256,
}

/// Verification key material, already out of its PEM wrapping.
#[derive(Clone)]
pub enum JwtKey {
    /// The HMAC secret (HS256).
    Secret(Vec<u8>),
    /// A PKCS#1 `RSAPublicKey` DER (RS256).
    Rsa(Vec<u8>),
    /// An uncompressed SEC1 P-256 point (ES256).
    EcP256(Vec<u8>),
}

/// A value a required claim must have.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimValue {
    Str(String),
    Int(i64),
    Bool(bool),
}

#[derive(Debug, Clone)]
pub struct Route {
    pub listener: usize,
    pub host: Option<HostMatch>,
    pub path_prefix: String,
    pub upstream: usize,
    pub strip_prefix: bool,
    pub timeout: Duration,
    pub request_headers: HeaderRules,
    pub response_headers: HeaderRules,
    pub max_body: Option<u64>,
    pub rate_limit: Option<RateLimit>,
    pub retry: Option<Retry>,
    pub hedge: Option<Hedge>,
    pub fallback: Option<Fallback>,
    pub auth: Vec<Auth>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    WeightedRoundRobin,
    Random,
    LeastRequest,
    ConsistentHash,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// Name sent as SNI and verified in the certificate; `None` = the endpoint's IP address.
    pub sni: Option<String>,
    /// CA bundle (resolved path); `None` = the system's roots.
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// `None` = a TCP connect check.
    pub path: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy: u32,
    pub unhealthy: u32,
}

#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    pub error_rate: f64,
    pub min_requests: u32,
    pub window: Duration,
    pub open_for: Duration,
    pub half_open_probes: u32,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub balance: Balance,
    pub hash_key: RequestKey,
    pub endpoints: Vec<Endpoint>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle_per_worker: usize,
    /// Consecutive failures (connect, reset, 5xx) that eject an endpoint on a worker; 0 = never.
    pub max_fails: u32,
    /// First ejection's length; each repeat doubles it, up to `MAX_EJECTION`.
    pub fail_timeout: Duration,
    pub tls: Option<UpstreamTls>,
    pub health_check: Option<HealthCheck>,
    pub circuit_breaker: Option<CircuitBreaker>,
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: name.clone(),
            position: None,
            key: String::new(),
            message: format!("cannot read config file: {e}"),
        })?;
        Config::parse(&text, &name)
    }

    /// Checks config text; `name` is what errors call the file.
    pub fn parse(text: &str, name: &str) -> Result<Config, ConfigError> {
        validate::parse(error::Source { name, text })
    }

    /// Keys this build accepts but does not enforce yet; `run` refuses them rather than ignore them.
    /// (Every key is enforced now; kept so the next half-built feature has its place.)
    pub fn not_yet_enforced(&self) -> Vec<String> {
        Vec::new()
    }
}
