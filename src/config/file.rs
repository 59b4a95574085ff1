//! The config file as written: serde structs that mirror the TOML, checked later by `validate`.
//!
//! Fields that validation refers back to are `Spanned`, so its errors can name line and column.

use super::units::{ByteSize, DurationStr};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub runtime: RuntimeFile,
    pub admin: Option<AdminFile>,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub log: LogFile,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerFile>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteFile>,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeFile {
    pub workers: Option<usize>,
    pub driver: Option<Spanned<String>>,
    pub pin: Option<bool>,
    pub shutdown_timeout: Option<DurationStr>,
    pub max_connections_per_worker: Option<Spanned<usize>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    pub listen: Option<Spanned<String>>,
    pub token: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_request_head: Option<Spanned<ByteSize>>,
    pub max_request_target: Option<Spanned<ByteSize>>,
    pub max_headers: Option<Spanned<usize>>,
    pub max_chunk_ext: Option<Spanned<ByteSize>>,
    pub client_header_timeout: Option<DurationStr>,
    pub client_idle_timeout: Option<DurationStr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    pub level: Option<Spanned<String>>,
    pub access_log: Option<Spanned<String>>,
    pub access_format: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    pub name: Spanned<String>,
    pub bind: Spanned<String>,
    pub protocol: Option<Spanned<String>>,
    pub backlog: Option<Spanned<u32>>,
    pub upstream: Option<Spanned<String>>,
    pub proxy_protocol: Option<Spanned<String>>,
    pub sni_routes: Option<BTreeMap<String, Spanned<String>>>,
    pub accept_proxy_protocol: Option<AcceptProxyFile>,
    pub tls: Option<Spanned<ListenerTlsFile>>,
    pub max_connections: Option<Spanned<usize>>,
    pub idle_timeout: Option<Spanned<DurationStr>>,
    pub splice: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptProxyFile {
    pub trusted: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsFile {
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    #[serde(default)]
    pub certs: Vec<CertFile>,
    pub handshake_timeout: Option<Spanned<DurationStr>>,
    pub min_version: Option<Spanned<String>>,
    pub alpn: Option<Vec<Spanned<String>>>,
    pub strict_sni: Option<bool>,
    pub session_tickets: Option<bool>,
    pub client_ca: Option<Spanned<String>>,
    pub client_auth: Option<Spanned<String>>,
    pub client_subject_header: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertFile {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub listener: Spanned<String>,
    pub host: Option<Spanned<String>>,
    pub path_prefix: Option<Spanned<String>>,
    pub upstream: Spanned<String>,
    pub strip_prefix: Option<bool>,
    pub timeout: Option<DurationStr>,
    pub request_headers: Option<HeaderRulesFile>,
    pub response_headers: Option<HeaderRulesFile>,
    pub max_body: Option<ByteSize>,
    pub rate_limit: Option<Spanned<RateLimitFile>>,
    pub retry: Option<Spanned<RetryFile>>,
    pub hedge: Option<Spanned<HedgeFile>>,
    pub fallback: Option<Spanned<FallbackFile>>,
    pub auth: Option<Spanned<AuthFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRulesFile {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    pub rps: f64,
    pub burst: Option<f64>,
    pub key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    pub attempts: Option<u32>,
    pub budget: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HedgeFile {
    pub after: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackFile {
    pub status: Option<u16>,
    pub body: Option<String>,
}

/// `route.auth`: each method present must pass (ip first, then api_key, basic, jwt).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub api_key: Option<Spanned<ApiKeyFile>>,
    pub basic: Option<Spanned<BasicFile>>,
    pub jwt: Option<Spanned<JwtFile>>,
    pub ip: Option<Spanned<IpRulesFile>>,
}

// The three credential tables below hold secrets, so their `Debug` is written by hand (below).

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyFile {
    pub header: Option<Spanned<String>>,
    #[serde(default)]
    pub keys: Vec<Spanned<String>>,
    /// One key per line; blank lines and `#` comments skipped.
    pub keys_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicFile {
    /// `user:$2y$...` bcrypt lines as htpasswd writes them, or `user:password` (development).
    #[serde(default)]
    pub users: Vec<Spanned<String>>,
    /// An htpasswd file of bcrypt entries (`htpasswd -B`).
    pub htpasswd: Option<Spanned<String>>,
    pub realm: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtFile {
    /// HS256 | RS256 | ES256; default from the key given.
    pub algorithm: Option<Spanned<String>>,
    pub secret: Option<Spanned<String>>,
    pub secret_file: Option<Spanned<String>>,
    /// A PEM file path, or the PEM text itself.
    pub public_key: Option<Spanned<String>>,
    pub issuer: Option<Spanned<String>>,
    pub audience: Option<Spanned<String>>,
    pub required_claims: Option<BTreeMap<String, Spanned<toml::Value>>>,
    pub leeway: Option<Spanned<DurationStr>>,
    pub require_exp: Option<bool>,
    pub realm: Option<Spanned<String>>,
}

/// Stands in for a secret in the `Debug` output below.
const REDACTED: &str = "<redacted>";

impl std::fmt::Debug for ApiKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyFile")
            .field("header", &self.header)
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .field("keys_file", &self.keys_file)
            .finish()
    }
}

impl std::fmt::Debug for BasicFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // User names are kept, what follows their colon is not.
        let names: Vec<&str> = self
            .users
            .iter()
            .map(|u| u.get_ref().split(':').next().unwrap_or_default())
            .collect();
        f.debug_struct("BasicFile")
            .field("users", &names)
            .field("htpasswd", &self.htpasswd)
            .field("realm", &self.realm)
            .finish()
    }
}

impl std::fmt::Debug for JwtFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtFile")
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret.as_ref().map(|_| REDACTED))
            .field("secret_file", &self.secret_file)
            .field("public_key", &self.public_key)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("required_claims", &self.required_claims)
            .field("leeway", &self.leeway)
            .field("require_exp", &self.require_exp)
            .field("realm", &self.realm)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpRulesFile {
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    pub name: Spanned<String>,
    pub balance: Option<Spanned<String>>,
    pub hash_key: Option<Spanned<String>>,
    pub endpoints: Vec<Spanned<EndpointFile>>,
    pub connect_timeout: Option<DurationStr>,
    pub response_timeout: Option<DurationStr>,
    pub idle_timeout: Option<DurationStr>,
    pub max_idle_per_worker: Option<usize>,
    pub max_fails: Option<u32>,
    pub fail_timeout: Option<DurationStr>,
    pub tls: Option<Spanned<UpstreamTlsFile>>,
    pub health_check: Option<HealthCheckFile>,
    pub circuit_breaker: Option<Spanned<BreakerFile>>,
}

/// An endpoint: `"127.0.0.1:9001"` or `{ addr = "127.0.0.1:9002", weight = 3 }`.
#[derive(Debug)]
pub enum EndpointFile {
    Addr(String),
    Table(EndpointTableFile),
}

impl<'de> Deserialize<'de> for EndpointFile {
    // By hand rather than `untagged`, so an unknown key inside the table is named in the error.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = EndpointFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an address \"host:port\" or a table { addr, weight }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<EndpointFile, E> {
                Ok(EndpointFile::Addr(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<EndpointFile, A::Error> {
                EndpointTableFile::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(EndpointFile::Table)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointTableFile {
    pub addr: String,
    pub weight: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsFile {
    pub sni: Option<Spanned<String>>,
    pub ca: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    pub path: Option<String>,
    pub interval: Option<DurationStr>,
    pub timeout: Option<DurationStr>,
    pub healthy: Option<u32>,
    pub unhealthy: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerFile {
    pub error_rate: Option<f64>,
    pub min_requests: Option<u32>,
    pub window: Option<DurationStr>,
    pub open_for: Option<DurationStr>,
    pub half_open_probes: Option<u32>,
}
