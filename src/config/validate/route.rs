//! `[[route]]` tables: matching, header rules and the per-route policies.

use super::super::defaults as d;
use super::super::file::*;
use super::super::*;
use super::{httparse_token, list, valid_host_pattern};
use super::{Checker, Result};
use std::net::IpAddr;
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

    fn auth(&self, a: Spanned<AuthFile>, key: &str) -> Result<Vec<Auth>> {
        let span = a.span();
        let a = a.into_inner();
        let mut out = Vec::new();
        if let Some(k) = a.api_key {
            if k.keys.is_empty() {
                return Err(self.src.error(
                    span,
                    format!("{key}.api_key.keys"),
                    "needs at least one key",
                ));
            }
            out.push(Auth::ApiKey {
                header: k
                    .header
                    .unwrap_or_else(|| d::API_KEY_HEADER.into())
                    .to_ascii_lowercase(),
                keys: k.keys,
            });
        }
        if let Some(b) = a.basic {
            if b.users.is_empty() || b.users.iter().any(|u| !u.contains(':')) {
                return Err(self.src.error(
                    span,
                    format!("{key}.basic.users"),
                    "expected \"user:password\" entries",
                ));
            }
            out.push(Auth::Basic {
                users: b.users,
                realm: b.realm.unwrap_or_else(|| "coregate".into()),
            });
        }
        if let Some(j) = a.jwt {
            if j.secret.is_none() && j.public_key.is_none() {
                return Err(self.src.error(
                    span,
                    format!("{key}.jwt"),
                    "needs `secret` (HS256) or `public_key` (RS256/ES256)",
                ));
            }
            out.push(Auth::Jwt {
                secret: j.secret,
                public_key: j.public_key,
                issuer: j.issuer,
                audience: j.audience,
            });
        }
        if let Some(ip) = a.ip {
            let nets = |v: &[String], k: &str| -> Result<Vec<IpNet>> {
                v.iter()
                    .map(|s| {
                        s.parse::<IpNet>()
                            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                            .map_err(|_| {
                                self.src.error(
                                    span.clone(),
                                    format!("{key}.ip.{k}"),
                                    format!("invalid network {s:?}"),
                                )
                            })
                    })
                    .collect()
            };
            out.push(Auth::Ip {
                allow: nets(&ip.allow, "allow")?,
                deny: nets(&ip.deny, "deny")?,
            });
        }
        if out.is_empty() {
            return Err(self
                .src
                .error(span, key, "expected one of api_key, basic, jwt, ip"));
        }
        Ok(out)
    }
}

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
