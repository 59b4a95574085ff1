//! `[[route]]` tables: matching, header rules and the per-route policies.

use super::super::defaults as d;
use super::super::file::*;
use super::super::*;
use super::{httparse_token, list, valid_host_pattern};
use super::{Checker, Result};
use crate::auth::{key, load};
use std::path::Path;
use toml::Spanned;

impl Checker<'_> {
    pub(super) fn route(
        &self,
        i: usize,
        r: RouteFile,
        listeners: &[Listener],
        ups: &[Upstream],
    ) -> Result<Route> {
        let key = |k: &str| format!("route[{i}].{k}");
        let listener = listeners
            .iter()
            .position(|l| &l.name == r.listener.get_ref())
            .ok_or_else(|| {
                let known: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
                self.at(
                    &r.listener,
                    key("listener"),
                    format!(
                        "no listener named {:?} (known: {})",
                        r.listener.get_ref(),
                        list(&known)
                    ),
                )
            })?;
        if !matches!(listeners[listener].protocol, Protocol::Http) {
            return Err(self.at(
                &r.listener,
                key("listener"),
                "routes apply to http listeners only",
            ));
        }
        let upstream = self.upstream_ref(&r.upstream, ups, &key("upstream"))?;
        let host = match &r.host {
            None => None,
            Some(h) => {
                let v = h.get_ref().to_ascii_lowercase();
                if !valid_host_pattern(&v) {
                    return Err(self.at(h, key("host"), format!("invalid host {v:?}: expected a name like api.example.com or *.example.com")));
                }
                Some(match v.strip_prefix('*') {
                    Some(suffix) => HostMatch::Suffix(suffix.to_string()),
                    None => HostMatch::Exact(v),
                })
            }
        };
        let path_prefix = match &r.path_prefix {
            None => d::PATH_PREFIX.to_string(),
            Some(p) if !p.get_ref().starts_with('/') => {
                return Err(self.at(p, key("path_prefix"), "must start with '/'"))
            }
            Some(p) => p.get_ref().clone(),
        };
        let rate_limit = match r.rate_limit {
            None => None,
            Some(rl) => {
                let (span, rl) = (rl.span(), rl.into_inner());
                let burst = rl.burst.unwrap_or(rl.rps);
                if !(rl.rps > 0.0 && rl.rps.is_finite() && burst >= 1.0 && burst.is_finite()) {
                    return Err(self.src.error(
                        span,
                        key("rate_limit"),
                        "rps must be > 0 and burst >= 1",
                    ));
                }
                let key_name = rl.key.as_deref().unwrap_or(d::RATE_LIMIT_KEY);
                let k = request_key(key_name, false).ok_or_else(|| {
                    self.src.error(
                        span.clone(),
                        key("rate_limit.key"),
                        format!(
                            "unknown key {key_name:?}: expected global, client_ip or header:NAME"
                        ),
                    )
                })?;
                Some(RateLimit {
                    rps: rl.rps,
                    burst,
                    key: k,
                })
            }
        };
        let retry = match r.retry {
            None => None,
            Some(rt) => {
                let (span, rt) = (rt.span(), rt.into_inner());
                let budget = rt.budget.unwrap_or(d::RETRY_BUDGET);
                if !(0.0..=1.0).contains(&budget) {
                    return Err(self.src.error(
                        span,
                        key("retry.budget"),
                        "must be between 0 and 1",
                    ));
                }
                Some(Retry {
                    attempts: rt.attempts.unwrap_or(d::RETRY_ATTEMPTS),
                    budget,
                })
            }
        };
        let hedge = match r.hedge {
            None => None,
            Some(h) => {
                let after = &h.get_ref().after;
                let parsed = match after.strip_prefix('p') {
                    Some(p) => p
                        .parse::<f64>()
                        .ok()
                        .filter(|v| *v > 0.0 && *v < 100.0)
                        .map(Hedge::AfterPercentile),
                    None => units::parse_duration(after).ok().map(Hedge::After),
                };
                Some(parsed.ok_or_else(|| self.at(&h, key("hedge.after"), format!("invalid {after:?}: expected a percentile like \"p99\" or a duration like \"50ms\"")))?)
            }
        };
        let fallback = match r.fallback {
            None => None,
            Some(f) => {
                let status = f.get_ref().status.unwrap_or(d::FALLBACK_STATUS);
                if !(200..=599).contains(&status) {
                    return Err(self.at(
                        &f,
                        key("fallback.status"),
                        format!("invalid status {status}: expected 200..=599"),
                    ));
                }
                Some(Fallback {
                    status,
                    body: f.into_inner().body.unwrap_or_default(),
                })
            }
        };
        let auth = match r.auth {
            None => Vec::new(),
            Some(a) => self.auth(a, &key("auth"))?,
        };
        Ok(Route {
            listener,
            host,
            path_prefix,
            upstream,
            strip_prefix: r.strip_prefix.unwrap_or(d::STRIP_PREFIX),
            timeout: r.timeout.map_or(d::ROUTE_TIMEOUT, |t| t.0),
            request_headers: self.header_rules(
                r.request_headers,
                &r.listener,
                &key("request_headers"),
            )?,
            response_headers: self.header_rules(
                r.response_headers,
                &r.listener,
                &key("response_headers"),
            )?,
            max_body: r.max_body.map(|b| b.0),
            rate_limit,
            retry,
            hedge,
            fallback,
            auth,
        })
    }

    fn header_rules(
        &self,
        h: Option<HeaderRulesFile>,
        at: &Spanned<String>,
        key: &str,
    ) -> Result<HeaderRules> {
        let Some(h) = h else {
            return Ok(HeaderRules::default());
        };
        for name in h.set.keys().chain(h.remove.iter()) {
            if httparse_token(name).is_none() {
                return Err(self.at(at, key, format!("invalid header name {name:?}")));
            }
        }
        for (name, value) in &h.set {
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(self.at(
                    at,
                    format!("{key}.set.{name}"),
                    "header values must not contain CR, LF or NUL",
                ));
            }
        }
        Ok(HeaderRules {
            set: h
                .set
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            remove: h
                .remove
                .into_iter()
                .map(|k| k.to_ascii_lowercase())
                .collect(),
        })
    }

    /// `route.auth`: every key file is read and checked here, so `check` reports it with its
    /// position; the rules come out in the order they are applied (ip, api_key, basic, jwt).
    fn auth(&self, a: Spanned<AuthFile>, key: &str) -> Result<Vec<Auth>> {
        let span = a.span();
        let a = a.into_inner();
        let mut out = Vec::new();
        if let Some(ip) = a.ip {
            out.push(self.auth_ip(ip, &format!("{key}.ip"))?);
        }
        let (basic, jwt) = (a.basic.is_some(), a.jwt.is_some());
        if let Some(k) = a.api_key {
            let hspan = k.get_ref().header.as_ref().map(|h| h.span());
            let rule = self.auth_api_key(k, &format!("{key}.api_key"))?;
            if let (Auth::ApiKey { header, .. }, Some(hspan)) = (&rule, hspan) {
                if header == "authorization" && (basic || jwt) {
                    return Err(self.src.error(
                        hspan,
                        format!("{key}.api_key.header"),
                        "basic and jwt read Authorization too; give the api key another header",
                    ));
                }
            }
            out.push(rule);
        }
        if basic && jwt {
            return Err(self.src.error(
                span,
                key,
                "basic and jwt both read the Authorization header, so no request could pass both",
            ));
        }
        if let Some(b) = a.basic {
            out.push(self.auth_basic(b, &format!("{key}.basic"))?);
        }
        if let Some(j) = a.jwt {
            out.push(self.auth_jwt(j, &format!("{key}.jwt"))?);
        }
        if out.is_empty() {
            return Err(self
                .src
                .error(span, key, "expected one of api_key, basic, jwt, ip"));
        }
        crate::auth::AuthChain::build(&out).map_err(|e| self.src.error(span, key, e))?;
        Ok(out)
    }

    /// The config file's path, which relative key file paths are resolved against.
    pub(super) fn config_path(&self) -> &Path {
        Path::new(self.src.name)
    }

    /// A path from the config, relative to the config file's directory (like auth key files).
    pub(super) fn resolve_path(&self, path: &str) -> std::path::PathBuf {
        crate::auth::load::resolve(self.config_path(), path)
    }

    fn auth_ip(&self, ip: Spanned<IpRulesFile>, key: &str) -> Result<Auth> {
        let span = ip.span();
        let ip = ip.into_inner();
        let nets = |v: &[Spanned<String>], k: &str| -> Result<Vec<IpNet>> {
            v.iter()
                .enumerate()
                .map(|(i, s)| self.ip_net(s, &format!("{key}.{k}[{i}]")))
                .collect()
        };
        let (allow, deny) = (nets(&ip.allow, "allow")?, nets(&ip.deny, "deny")?);
        if allow.is_empty() && deny.is_empty() {
            return Err(self
                .src
                .error(span, key, "needs `allow` or `deny` networks"));
        }
        Ok(Auth::Ip { allow, deny })
    }

    fn auth_api_key(&self, k: Spanned<ApiKeyFile>, key: &str) -> Result<Auth> {
        let span = k.span();
        let k = k.into_inner();
        let header = match &k.header {
            None => d::API_KEY_HEADER.to_string(),
            Some(h) => httparse_token(h.get_ref())
                .ok_or_else(|| {
                    self.at(
                        h,
                        format!("{key}.header"),
                        format!("invalid header name {:?}", h.get_ref()),
                    )
                })?
                .to_ascii_lowercase(),
        };
        let mut keys = Vec::new();
        for (i, s) in k.keys.iter().enumerate() {
            load::check_api_key(s.get_ref())
                .map_err(|e| self.at(s, format!("{key}.keys[{i}]"), e))?;
            keys.push(s.get_ref().clone());
        }
        if let Some(f) = &k.keys_file {
            let fkey = format!("{key}.keys_file");
            let (path, text) = load::read_file(self.config_path(), f.get_ref())
                .map_err(|e| self.at(f, &fkey, e))?;
            let before = keys.len();
            for (line, l) in load::lines(&text) {
                load::check_api_key(l).map_err(|e| {
                    self.at(f, &fkey, format!("{}: line {line}: {e}", path.display()))
                })?;
                keys.push(l.to_string());
            }
            if keys.len() == before {
                return Err(self.at(f, fkey, format!("{} holds no keys", path.display())));
            }
        }
        if keys.is_empty() {
            return Err(self.src.error(
                span,
                format!("{key}.keys"),
                "needs at least one key (`keys` or `keys_file`)",
            ));
        }
        keys.sort();
        keys.dedup();
        Ok(Auth::ApiKey { header, keys })
    }

    fn auth_basic(&self, b: Spanned<BasicFile>, key: &str) -> Result<Auth> {
        let span = b.span();
        let b = b.into_inner();
        let mut users: Vec<BasicUser> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, u) in b.users.iter().enumerate() {
            let ukey = format!("{key}.users[{i}]");
            let user =
                load::parse_basic_entry(u.get_ref(), true).map_err(|e| self.at(u, &ukey, e))?;
            if !seen.insert(user.name.clone()) {
                return Err(self.at(u, ukey, format!("user {:?} appears twice", user.name)));
            }
            users.push(user);
        }
        if let Some(f) = &b.htpasswd {
            let fkey = format!("{key}.htpasswd");
            let (path, text) = load::read_file(self.config_path(), f.get_ref())
                .map_err(|e| self.at(f, &fkey, e))?;
            let before = users.len();
            for (line, l) in load::lines(&text) {
                let at =
                    |e: String| self.at(f, &fkey, format!("{}: line {line}: {e}", path.display()));
                let user = load::parse_basic_entry(l, false).map_err(at)?;
                if !seen.insert(user.name.clone()) {
                    return Err(at(format!("user {:?} appears twice", user.name)));
                }
                users.push(user);
            }
            if users.len() == before {
                return Err(self.at(f, fkey, format!("{} holds no users", path.display())));
            }
        }
        if users.is_empty() {
            return Err(self.src.error(
                span,
                format!("{key}.users"),
                "needs at least one user (`users` or `htpasswd`)",
            ));
        }
        Ok(Auth::Basic {
            users,
            realm: self.auth_realm(b.realm.as_ref(), key)?,
        })
    }

    fn auth_realm(&self, realm: Option<&Spanned<String>>, key: &str) -> Result<String> {
        match realm {
            None => Ok(crate::auth::DEFAULT_REALM.to_string()),
            Some(r) => {
                load::check_realm(r.get_ref())
                    .map_err(|e| self.at(r, format!("{key}.realm"), e))?;
                Ok(r.get_ref().clone())
            }
        }
    }

    fn auth_jwt(&self, j: Spanned<JwtFile>, key: &str) -> Result<Auth> {
        let span = j.span();
        let j = j.into_inner();
        let algorithm = match &j.algorithm {
            None => None,
            Some(a) => Some(match a.get_ref().as_str() {
                "HS256" => (JwtAlgorithm::HS256, a),
                "RS256" => (JwtAlgorithm::RS256, a),
                "ES256" => (JwtAlgorithm::ES256, a),
                other => {
                    return Err(self.at(
                        a,
                        format!("{key}.algorithm"),
                        format!("unknown algorithm {other:?}: expected HS256, RS256 or ES256"),
                    ))
                }
            }),
        };
        let (algorithm, jwt_key) = match (&j.secret, &j.secret_file, &j.public_key) {
            (None, None, Some(pem)) => self.jwt_public_key(pem, algorithm, key)?,
            (Some(s), None, None) => {
                let secret = s.get_ref().clone().into_bytes();
                self.jwt_secret(secret, s, &format!("{key}.secret"), algorithm, key)?
            }
            (None, Some(f), None) => {
                let skey = format!("{key}.secret_file");
                let (_, text) = load::read_file(self.config_path(), f.get_ref())
                    .map_err(|e| self.at(f, &skey, e))?;
                // A trailing newline is the editor's, not the secret's.
                let secret = text.trim_end_matches(['\r', '\n']).as_bytes().to_vec();
                self.jwt_secret(secret, f, &skey, algorithm, key)?
            }
            _ => {
                return Err(self.src.error(
                    span,
                    key,
                    "give exactly one of `secret` or `secret_file` (HS256) or `public_key` (RS256, ES256)",
                ))
            }
        };
        let text = |v: &Option<Spanned<String>>, k: &str| -> Result<Option<String>> {
            match v {
                Some(s) if s.get_ref().is_empty() => {
                    Err(self.at(s, format!("{key}.{k}"), "must not be empty"))
                }
                other => Ok(other.as_ref().map(|s| s.get_ref().clone())),
            }
        };
        let mut required_claims = Vec::new();
        for (name, v) in j.required_claims.iter().flatten() {
            let ckey = format!("{key}.required_claims.{name}");
            let value = match v.get_ref() {
                toml::Value::String(s) => ClaimValue::Str(s.clone()),
                toml::Value::Integer(i) => ClaimValue::Int(*i),
                toml::Value::Boolean(b) => ClaimValue::Bool(*b),
                _ => return Err(self.at(v, ckey, "expected a string, integer or boolean")),
            };
            if name.is_empty() {
                return Err(self.at(v, ckey, "a claim name must not be empty"));
            }
            required_claims.push((name.clone(), value));
        }
        Ok(Auth::Jwt(Box::new(JwtAuth {
            algorithm,
            key: jwt_key,
            issuer: text(&j.issuer, "issuer")?,
            audience: text(&j.audience, "audience")?,
            required_claims,
            leeway: j
                .leeway
                .map_or(crate::auth::DEFAULT_JWT_LEEWAY, |l| l.into_inner().0),
            require_exp: j
                .require_exp
                .unwrap_or(crate::auth::DEFAULT_JWT_REQUIRE_EXP),
            realm: self.auth_realm(j.realm.as_ref(), key)?,
        })))
    }

    /// An HS256 secret, inline or from `secret_file` (`at` and `skey` say which).
    fn jwt_secret(
        &self,
        secret: Vec<u8>,
        at: &Spanned<String>,
        skey: &str,
        algorithm: Option<(JwtAlgorithm, &Spanned<String>)>,
        key: &str,
    ) -> Result<(JwtAlgorithm, JwtKey)> {
        if let Some((alg @ (JwtAlgorithm::RS256 | JwtAlgorithm::ES256), a)) = algorithm {
            return Err(self.at(
                a,
                format!("{key}.algorithm"),
                format!("{alg:?} verifies with `public_key`, not a secret"),
            ));
        }
        if secret.len() < MIN_HS256_SECRET {
            return Err(self.at(
                at,
                skey,
                format!(
                    "an HS256 secret needs at least {MIN_HS256_SECRET} bytes (RFC 7518 §3.2); this one has {}",
                    secret.len()
                ),
            ));
        }
        Ok((JwtAlgorithm::HS256, JwtKey::Secret(secret)))
    }

    /// `public_key`: a PEM file path or the PEM text; the key decides the algorithm unless
    /// `algorithm` is given, and then they must agree.
    fn jwt_public_key(
        &self,
        pem: &Spanned<String>,
        algorithm: Option<(JwtAlgorithm, &Spanned<String>)>,
        key: &str,
    ) -> Result<(JwtAlgorithm, JwtKey)> {
        let pkey = format!("{key}.public_key");
        if let Some((JwtAlgorithm::HS256, a)) = algorithm {
            return Err(self.at(
                a,
                format!("{key}.algorithm"),
                "HS256 needs `secret` or `secret_file`, not `public_key`",
            ));
        }
        let (name, text) = if pem.get_ref().trim_start().starts_with("-----BEGIN") {
            ("inline PEM".to_string(), pem.get_ref().clone())
        } else {
            let (path, text) = load::read_file(self.config_path(), pem.get_ref())
                .map_err(|e| self.at(pem, &pkey, e))?;
            (path.display().to_string(), text)
        };
        let public = key::parse_public_key_pem(text.as_bytes())
            .map_err(|e| self.at(pem, &pkey, format!("{name}: {e}")))?;
        match (algorithm.map(|(a, _)| a), public) {
            (None | Some(JwtAlgorithm::RS256), key::PublicKey::Rsa { der, bits }) => {
                if !(key::RSA_MIN_BITS..=key::RSA_MAX_BITS).contains(&bits) {
                    return Err(self.at(
                        pem,
                        pkey,
                        format!(
                            "{name}: an RSA {bits}-bit key; RS256 needs {} to {} bits",
                            key::RSA_MIN_BITS,
                            key::RSA_MAX_BITS
                        ),
                    ));
                }
                Ok((JwtAlgorithm::RS256, JwtKey::Rsa(der)))
            }
            (None | Some(JwtAlgorithm::ES256), key::PublicKey::EcP256(point)) => {
                Ok((JwtAlgorithm::ES256, JwtKey::EcP256(point)))
            }
            (alg, other) => {
                let need = match alg {
                    Some(JwtAlgorithm::ES256) => "ES256 needs an EC P-256 key",
                    Some(_) => "RS256 needs an RSA key",
                    None => "supported keys are RSA (RS256) and EC P-256 (ES256)",
                };
                Err(self.at(
                    pem,
                    pkey,
                    format!("{name} holds {}; {need}", other.describe()),
                ))
            }
        }
    }
}

/// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output, 256 bits.
const MIN_HS256_SECRET: usize = 32;

/// `global | client_ip | header:NAME`, plus `cookie:NAME | path` where hashing allows them.
pub(super) fn request_key(s: &str, hashing: bool) -> Option<RequestKey> {
    match s {
        "global" if !hashing => Some(RequestKey::Global),
        "client_ip" => Some(RequestKey::ClientIp),
        "path" if hashing => Some(RequestKey::Path),
        _ => {
            if let Some(h) = s.strip_prefix("header:") {
                return httparse_token(h).map(|h| RequestKey::Header(h.to_ascii_lowercase()));
            }
            let c = s.strip_prefix("cookie:").filter(|_| hashing)?;
            (!c.is_empty()).then(|| RequestKey::Cookie(c.to_string()))
        }
    }
}
