//! Route authentication: client address lists, API keys, HTTP Basic and bearer JWTs.
//!
//! Config validation reads and checks every key file through `load` and `key`, so `coregate
//! check` reports a bad file with its position in the config. A route's rules are then compiled
//! once per config version into an [`AuthChain`] (keys hashed, users indexed, JWT keys built),
//! shared read-only by the workers; each request is decided by [`AuthChain::check`], with a
//! per-worker [`AuthCache`] that spares repeated bcrypt work.
//!
//! The methods present on one route must all pass, in a fixed order whatever the file's order:
//! `ip` (403), then `api_key`, `basic`, `jwt` (401 with a `WWW-Authenticate` challenge; 403 for
//! a valid JWT that lacks a required claim, RFC 6750 `insufficient_scope`).
//!
//! Allocation on the request path: none for `ip` and `api_key`, none for `basic` (credentials are
//! decoded into a stack buffer; a cache miss costs one bcrypt run, which does not allocate
//! either); `jwt` allocates small buffers (base64 decoding, the claims' JSON map).
//!
//! Secrets never leave this module in a string: `Denied::reason` is a fixed text, and the
//! config's `Debug` output redacts keys, passwords and HMAC secrets (`redact`).

mod api_key;
mod basic;
mod cache;
mod ip;
mod jwt;
pub mod key;
pub mod load;
mod redact;

pub use cache::AuthCache;

use crate::config::Auth;
use std::net::IpAddr;
use std::time::Duration;

/// `basic.realm` and `jwt.realm` when not given: what browsers show in their login prompt.
pub const DEFAULT_REALM: &str = "coregate";
/// `jwt.leeway` when not given: clock skew tolerated on `exp`/`nbf` (Envoy's default too).
pub const DEFAULT_JWT_LEEWAY: Duration = Duration::from_secs(60);
/// `jwt.require_exp` when not given: a token that never expires is refused.
pub const DEFAULT_JWT_REQUIRE_EXP: bool = true;

/// Why a request was refused: the status to answer, its challenge, and a log-safe reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied<'a> {
    /// 401 (no or bad credentials) or 403 (address denied, or a token lacking a claim).
    pub status: u16,
    /// The `WWW-Authenticate` value to send with a 401 (and with a JWT's 403); borrowed from
    /// the chain so a refusal does not allocate.
    pub www_authenticate: Option<&'a str>,
    /// A fixed text for logs and metrics; never contains a credential.
    pub reason: &'static str,
}

/// A route's auth rules, compiled once per config version. Send + Sync: workers share it.
pub struct AuthChain {
    ip: Option<ip::IpRule>,
    api_key: Option<api_key::ApiKeyRule>,
    basic: Option<basic::BasicRule>,
    jwt: Option<jwt::JwtRule>,
}

impl AuthChain {
    /// Compiles a route's rules; fails on two rules of one kind (the config never has them).
    pub fn build(rules: &[Auth]) -> Result<AuthChain, String> {
        let mut chain = AuthChain {
            ip: None,
            api_key: None,
            basic: None,
            jwt: None,
        };
        for rule in rules {
            let (kind, taken) = match rule {
                Auth::Ip { allow, deny } => (
                    "ip",
                    chain.ip.replace(ip::IpRule::new(allow, deny)).is_some(),
                ),
                Auth::ApiKey { header, keys } => (
                    "api_key",
                    chain
                        .api_key
                        .replace(api_key::ApiKeyRule::new(header, keys)?)
                        .is_some(),
                ),
                Auth::Basic { users, realm } => (
                    "basic",
                    chain
                        .basic
                        .replace(basic::BasicRule::new(users, realm)?)
                        .is_some(),
                ),
                Auth::Jwt(j) => ("jwt", chain.jwt.replace(jwt::JwtRule::new(j)?).is_some()),
            };
            if taken {
                return Err(format!("two {kind} rules on one route"));
            }
        }
        Ok(chain)
    }

    /// True when the route has no auth at all (every request passes).
    pub fn is_empty(&self) -> bool {
        self.ip.is_none() && self.api_key.is_none() && self.basic.is_none() && self.jwt.is_none()
    }

    /// Decides for one request. `header(name)` returns the first value of a header field; names
    /// are asked in lower case and the lookup must ignore case.
    pub fn check<'a, 'h>(
        &'a self,
        client: IpAddr,
        header: &dyn Fn(&str) -> Option<&'h [u8]>,
        cache: &mut AuthCache,
    ) -> Result<(), Denied<'a>> {
        if let Some(rule) = &self.ip {
            rule.check(client)?;
        }
        if let Some(rule) = &self.api_key {
            rule.check(header)?;
        }
        if let Some(rule) = &self.basic {
            rule.check(header, cache)?;
        }
        if let Some(rule) = &self.jwt {
            rule.check(header)?;
        }
        Ok(())
    }
}

/// The header field Basic and Bearer credentials travel in (RFC 9110 §11.6.2).
const AUTHORIZATION: &str = "authorization";

/// Strips optional whitespace (SP / HTAB) around a field value.
fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !matches!(b, b' ' | b'\t'));
    let Some(start) = start else { return &[] };
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(start);
    &v[start..=end]
}

/// The credentials after `scheme` in an Authorization value (`Basic xyz` → `xyz`); the scheme
/// is case-insensitive (RFC 9110 §11.1). `None` for another scheme or nothing after it.
fn credentials<'h>(value: &'h [u8], scheme: &str) -> Option<&'h [u8]> {
    let v = trim_ows(value);
    let (name, rest) = v.split_at_checked(scheme.len())?;
    if !name.eq_ignore_ascii_case(scheme.as_bytes()) || rest.first() != Some(&b' ') {
        return None;
    }
    let rest = trim_ows(rest);
    (!rest.is_empty()).then_some(rest)
}

/// SHA-256 of a byte string, on the stack; how API keys and plain passwords are compared.
fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl std::fmt::Debug for AuthChain {
    // By hand: the rules hold key digests and secrets; only which methods are on is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthChain")
            .field("ip", &self.ip.is_some())
            .field("api_key", &self.api_key.is_some())
            .field("basic", &self.basic.is_some())
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests;
