//! File structs → checked `Config`: defaults filled in, names resolved, every value range-checked.

use super::defaults as d;
use super::error::Source;
use super::file::*;
use super::*;
use std::collections::HashSet;
use std::net::{IpAddr, ToSocketAddrs};
use toml::Spanned;

type Result<T> = std::result::Result<T, ConfigError>;

/// Parses TOML text into a checked config.
pub(super) fn parse(src: Source<'_>) -> Result<Config> {
    let de =
        toml::Deserializer::parse(src.text).map_err(|e| toml_error(&src, &e, String::new()))?;
    let file: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = clean_path(&e.path().to_string());
        toml_error(&src, e.inner(), key)
    })?;
    Checker { src: &src }.config(file)
}

/// Removes serde_spanned's private field names from a serde_path_to_error path.
fn clean_path(path: &str) -> String {
    let cleaned: Vec<&str> = path
        .split('.')
        .filter(|seg| !seg.starts_with("$__serde_spanned"))
        .collect();
    let joined = cleaned.join(".");
    if joined == "." || joined == "?" {
        String::new()
    } else {
        joined
    }
}

fn toml_error(src: &Source<'_>, e: &toml::de::Error, key: String) -> ConfigError {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => src.error(span, key, message),
        None => src.error_at_file(key, message),
    }
}

struct Checker<'a> {
    src: &'a Source<'a>,
}

impl Checker<'_> {
    fn at<T>(&self, v: &Spanned<T>, key: impl Into<String>, msg: impl Into<String>) -> ConfigError {
        self.src.error(v.span(), key, msg)
    }

    fn config(&self, f: FileConfig) -> Result<Config> {
        let runtime = self.runtime(f.runtime)?;
        let admin = match f.admin {
            None => None,
            Some(a) => {
                let listen = match a.listen {
                    Some(s) => self.socket_addr(&s, "admin.listen")?,
                    None => d::ADMIN_LISTEN
                        .parse()
                        .expect("default admin address parses"),
                };
                Some(AdminConfig { listen })
            }
        };
        let limits = self.limits(f.limits)?;
        let log = self.log(f.log)?;
        let upstreams = f
            .upstreams
            .into_iter()
            .enumerate()
            .map(|(i, u)| self.upstream(i, u))
            .collect::<Result<Vec<_>>>()?;
        unique(self, upstreams.iter().map(|u| u.name.as_str()), "upstream")?;
        let listeners = f
            .listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| self.listener(i, l, &upstreams))
            .collect::<Result<Vec<_>>>()?;
        unique(self, listeners.iter().map(|l| l.name.as_str()), "listener")?;
        let mut binds = HashSet::new();
        for (i, l) in listeners.iter().enumerate() {
            if !binds.insert(l.bind) {
                return Err(self.src.error_at_file(
                    format!("listener[{i}].bind"),
                    format!("address {} is used by two listeners", l.bind),
                ));
            }
        }
        let mut seen_routes = HashSet::new();
        let mut routes = Vec::with_capacity(f.routes.len());
        for (i, r) in f.routes.into_iter().enumerate() {
            let span = r.listener.span();
            let route = self.route(i, r, &listeners, &upstreams)?;
            if !seen_routes.insert((
                route.listener,
                route.host.clone(),
                route.path_prefix.clone(),
            )) {
                return Err(self.src.error(
                    span,
                    format!("route[{i}]"),
                    "another route has the same listener, host and path_prefix",
                ));
            }
            routes.push(route);
        }
        Ok(Config {
            source: self.src.name.to_string(),
            runtime,
            admin,
            limits,
            log,
            listeners,
            routes,
            upstreams,
        })
    }

    fn runtime(&self, r: RuntimeFile) -> Result<RuntimeConfig> {
        let driver = match &r.driver {
            None => DriverChoice::Auto,
            Some(s) => match s.get_ref().as_str() {
                "auto" => DriverChoice::Auto,
                "io_uring" => DriverChoice::IoUring,
                "epoll" => DriverChoice::Epoll,
                other => {
                    return Err(self.at(
                        s,
                        "runtime.driver",
                        format!("unknown driver {other:?}: expected auto, io_uring or epoll"),
                    ))
                }
            },
        };
        let max_connections_per_worker = match r.max_connections_per_worker {
            Some(v) if *v.get_ref() == 0 => {
                return Err(self.at(
                    &v,
                    "runtime.max_connections_per_worker",
                    "must be at least 1",
                ))
            }
            Some(v) => v.into_inner(),
            None => d::MAX_CONNECTIONS_PER_WORKER,
        };
        Ok(RuntimeConfig {
            workers: r.workers.unwrap_or(d::WORKERS),
            driver,
            pin: r.pin.unwrap_or(d::PIN),
            shutdown_timeout: r.shutdown_timeout.map_or(d::SHUTDOWN_TIMEOUT, |t| t.0),
            max_connections_per_worker,
        })
    }

    fn limits(&self, l: LimitsFile) -> Result<Limits> {
        let size = |v: Option<Spanned<units::ByteSize>>,
                    key: &str,
                    default: u64|
         -> Result<usize> {
            match v {
                None => Ok(default as usize),
                Some(s) if s.get_ref().0 == 0 => Err(self.at(&s, key, "must be greater than 0")),
                Some(s) => {
                    usize::try_from(s.get_ref().0).map_err(|_| self.at(&s, key, "too large"))
                }
            }
        };
        let max_request_head = size(
            l.max_request_head,
            "limits.max_request_head",
            d::MAX_REQUEST_HEAD,
        )?;
        let max_request_target = size(
            l.max_request_target,
            "limits.max_request_target",
            d::MAX_REQUEST_TARGET,
        )?;
        let max_headers = match l.max_headers {
            None => d::MAX_HEADERS,
            Some(v) if *v.get_ref() == 0 || *v.get_ref() > d::MAX_HEADERS_CEILING => {
                return Err(self.at(
                    &v,
                    "limits.max_headers",
                    format!("must be between 1 and {}", d::MAX_HEADERS_CEILING),
                ))
            }
            Some(v) => v.into_inner(),
        };
        Ok(Limits {
            max_request_head,
            max_request_target,
            max_headers,
            client_header_timeout: l
                .client_header_timeout
                .map_or(d::CLIENT_HEADER_TIMEOUT, |t| t.0),
            client_idle_timeout: l
                .client_idle_timeout
                .map_or(d::CLIENT_IDLE_TIMEOUT, |t| t.0),
        })
    }

    fn log(&self, l: LogFile) -> Result<LogConfig> {
        let level = match l.level {
            None => d::LOG_LEVEL.to_string(),
            Some(s) => {
                if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(s.get_ref()) {
                    return Err(self.at(
                        &s,
                        "log.level",
                        format!("invalid level {:?}: {e}", s.get_ref()),
                    ));
                }
                s.into_inner()
            }
        };
        let access_log = match l.access_log.as_deref().unwrap_or(d::ACCESS_LOG) {
            "off" => AccessLog::Off,
            "stdout" => AccessLog::Stdout,
            path => AccessLog::File(path.to_string()),
        };
        let access_format = match &l.access_format {
            None => AccessFormat::Combined,
            Some(s) => match s.get_ref().as_str() {
                "combined" => AccessFormat::Combined,
                "json" => AccessFormat::Json,
                other => {
                    return Err(self.at(
                        s,
                        "log.access_format",
                        format!("unknown format {other:?}: expected combined or json"),
                    ))
                }
            },
        };
        Ok(LogConfig {
            level,
            access_log,
            access_format,
        })
    }

    fn socket_addr(&self, s: &Spanned<String>, key: &str) -> Result<SocketAddr> {
        s.get_ref().parse().map_err(|_| {
            self.at(
                s,
                key,
                format!(
                    "invalid address {:?}: expected IP:port, like 0.0.0.0:8080 or [::]:8080",
                    s.get_ref()
                ),
            )
        })
    }

    fn listener(&self, i: usize, l: ListenerFile, ups: &[Upstream]) -> Result<Listener> {
        let key = |k: &str| format!("listener[{i}].{k}");
        if l.name.get_ref().is_empty() {
            return Err(self.at(&l.name, key("name"), "must not be empty"));
        }
        let bind = self.socket_addr(&l.bind, &key("bind"))?;
        let backlog = match l.backlog {
            None => d::BACKLOG,
            Some(b) if *b.get_ref() == 0 => {
                return Err(self.at(&b, key("backlog"), "must be at least 1"))
            }
            Some(b) => b.into_inner(),
        };
        let proto_name = l
            .protocol
            .as_ref()
            .map_or(d::LISTENER_PROTOCOL, |p| p.get_ref().as_str());
        let tcp_only = |v: Option<Span>, k: &str| -> Result<()> {
            match v {
                Some(span) if proto_name != "tcp" => {
                    Err(self.src.error(span, key(k), "only for protocol = \"tcp\""))
                }
                _ => Ok(()),
            }
        };
        tcp_only(l.upstream.as_ref().map(Spanned::span), "upstream")?;
        tcp_only(
            l.proxy_protocol.as_ref().map(Spanned::span),
            "proxy_protocol",
        )?;
        tcp_only(
            l.sni_routes
                .as_ref()
                .and_then(|m| m.values().next())
                .map(Spanned::span),
            "sni_routes",
        )?;
        let protocol = match proto_name {
            "http" => Protocol::Http,
            "tcp" => {
                if let Some(t) = &l.tls {
                    return Err(self.at(
                        t,
                        key("tls"),
                        "TLS termination is for http listeners; use sni_routes to pass TLS through",
                    ));
                }
                let upstream = match &l.upstream {
                    Some(u) => Some(self.upstream_ref(u, ups, &key("upstream"))?),
                    None => None,
                };
                let proxy_protocol = match &l.proxy_protocol {
                    None => ProxyProtocol::Off,
                    Some(p) => match p.get_ref().as_str() {
                        "off" => ProxyProtocol::Off,
                        "v1" => ProxyProtocol::V1,
                        "v2" => ProxyProtocol::V2,
                        other => {
                            return Err(self.at(
                                p,
                                key("proxy_protocol"),
                                format!("unknown value {other:?}: expected off, v1 or v2"),
                            ))
                        }
                    },
                };
                let mut sni_routes = Vec::new();
                for (name, target) in l.sni_routes.iter().flatten() {
                    let k = key(&format!("sni_routes.{name:?}"));
                    if !valid_host_pattern(name) && name != "*" {
                        return Err(self.at(target, k, format!("invalid server name {name:?}")));
                    }
                    sni_routes.push((
                        name.to_ascii_lowercase(),
                        self.upstream_ref(target, ups, &k)?,
                    ));
                }
                if upstream.is_none() && sni_routes.is_empty() {
                    return Err(self.at(
                        &l.name,
                        key("upstream"),
                        "a tcp listener needs `upstream` or `sni_routes`",
                    ));
                }
                Protocol::Tcp(TcpForward {
                    upstream,
                    proxy_protocol,
                    sni_routes,
                })
            }
            other => {
                let p = l
                    .protocol
                    .as_ref()
                    .expect("a non-default protocol was written");
                return Err(self.at(
                    p,
                    key("protocol"),
                    format!("unknown protocol {other:?}: expected http or tcp"),
                ));
            }
        };
        let accept_proxy_protocol = match l.accept_proxy_protocol {
            None => None,
            Some(a) => Some(
                a.trusted
                    .iter()
                    .enumerate()
                    .map(|(j, n)| {
                        self.ip_net(n, &key(&format!("accept_proxy_protocol.trusted[{j}]")))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        let tls = match l.tls {
            None => None,
            Some(t) => {
                let span = t.span();
                let t = t.into_inner();
                let mut certs = Vec::new();
                match (t.cert, t.key) {
                    (Some(c), Some(k)) => certs.push((c, k)),
                    (None, None) => {}
                    _ => {
                        return Err(self.src.error(
                            span,
                            key("tls"),
                            "`cert` and `key` go together",
                        ))
                    }
                }
                certs.extend(t.certs.into_iter().map(|c| (c.cert, c.key)));
                if certs.is_empty() {
                    return Err(self.src.error(
                        span,
                        key("tls"),
                        "needs `cert` and `key`, or [[listener.tls.certs]]",
                    ));
                }
                Some(ListenerTls { certs })
            }
        };
        Ok(Listener {
            name: l.name.into_inner(),
            bind,
            backlog,
            protocol,
            accept_proxy_protocol,
            tls,
        })
    }

    fn ip_net(&self, s: &Spanned<String>, key: &str) -> Result<IpNet> {
        let t = s.get_ref();
        t.parse::<IpNet>()
            .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| {
                self.at(
                    s,
                    key,
                    format!("invalid network {t:?}: expected an address or CIDR like 10.0.0.0/8"),
                )
            })
    }

    fn upstream_ref(&self, name: &Spanned<String>, ups: &[Upstream], key: &str) -> Result<usize> {
        ups.iter()
            .position(|u| &u.name == name.get_ref())
            .ok_or_else(|| {
                let known: Vec<&str> = ups.iter().map(|u| u.name.as_str()).collect();
                self.at(
                    name,
                    key,
                    format!(
                        "no upstream named {:?} (known: {})",
                        name.get_ref(),
                        list(&known)
                    ),
                )
            })
    }

    fn route(
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

    fn upstream(&self, i: usize, u: UpstreamFile) -> Result<Upstream> {
        let key = |k: &str| format!("upstream[{i}].{k}");
        if u.name.get_ref().is_empty() {
            return Err(self.at(&u.name, key("name"), "must not be empty"));
        }
        let balance = match &u.balance {
            None => Balance::RoundRobin,
            Some(b) => match b.get_ref().as_str() {
                "round_robin" => Balance::RoundRobin,
                "weighted_round_robin" => Balance::WeightedRoundRobin,
                "random" => Balance::Random,
                "least_request" => Balance::LeastRequest,
                "consistent_hash" => Balance::ConsistentHash,
                other => return Err(self.at(b, key("balance"), format!(
                    "unknown balance {other:?}: expected round_robin, weighted_round_robin, random, least_request or consistent_hash"
                ))),
            },
        };
        let hash_key = match &u.hash_key {
            None => request_key(d::HASH_KEY, true).expect("default hash key parses"),
            Some(h) => request_key(h.get_ref(), true).ok_or_else(|| {
                self.at(
                    h,
                    key("hash_key"),
                    format!(
                        "unknown key {:?}: expected client_ip, header:NAME, cookie:NAME or path",
                        h.get_ref()
                    ),
                )
            })?,
        };
        if u.endpoints.is_empty() {
            return Err(self.at(&u.name, key("endpoints"), "needs at least one endpoint"));
        }
        let mut endpoints = Vec::new();
        for (j, e) in u.endpoints.iter().enumerate() {
            let k = key(&format!("endpoints[{j}]"));
            let (addr, weight) = match e.get_ref() {
                EndpointFile::Addr(a) => (a, d::WEIGHT),
                EndpointFile::Table(t) => (&t.addr, t.weight.unwrap_or(d::WEIGHT)),
            };
            if weight == 0 {
                return Err(self.at(e, format!("{k}.weight"), "must be at least 1"));
            }
            let addr = resolve(addr).map_err(|m| self.at(e, k.clone(), m))?;
            endpoints.push(Endpoint { addr, weight });
        }
        let positive =
            |t: Option<units::DurationStr>, k: &str, default: Duration| -> Result<Duration> {
                let v = t.map_or(default, |t| t.0);
                if v.is_zero() {
                    return Err(self.at(&u.name, key(k), "must be greater than 0"));
                }
                Ok(v)
            };
        let health_check = match u.health_check {
            None => None,
            Some(h) => {
                if let Some(p) = &h.path {
                    if !p.starts_with('/') {
                        return Err(self.at(
                            &u.name,
                            key("health_check.path"),
                            "must start with '/'",
                        ));
                    }
                }
                let hc = HealthCheck {
                    path: h.path,
                    interval: positive(h.interval, "health_check.interval", d::HEALTH_INTERVAL)?,
                    timeout: positive(h.timeout, "health_check.timeout", d::HEALTH_TIMEOUT)?,
                    healthy: h.healthy.unwrap_or(d::HEALTHY).max(1),
                    unhealthy: h.unhealthy.unwrap_or(d::UNHEALTHY).max(1),
                };
                Some(hc)
            }
        };
        let circuit_breaker = match u.circuit_breaker {
            None => None,
            Some(b) => {
                let rate = b.get_ref().error_rate.unwrap_or(d::BREAKER_ERROR_RATE);
                if !(rate > 0.0 && rate <= 1.0) {
                    return Err(self.at(
                        &b,
                        key("circuit_breaker.error_rate"),
                        "must be in (0, 1]",
                    ));
                }
                let b = b.into_inner();
                Some(CircuitBreaker {
                    error_rate: rate,
                    min_requests: b.min_requests.unwrap_or(d::BREAKER_MIN_REQUESTS),
                    window: positive(b.window, "circuit_breaker.window", d::BREAKER_WINDOW)?,
                    open_for: positive(
                        b.open_for,
                        "circuit_breaker.open_for",
                        d::BREAKER_OPEN_FOR,
                    )?,
                    half_open_probes: b
                        .half_open_probes
                        .unwrap_or(d::BREAKER_HALF_OPEN_PROBES)
                        .max(1),
                })
            }
        };
        Ok(Upstream {
            balance,
            hash_key,
            endpoints,
            connect_timeout: positive(u.connect_timeout, "connect_timeout", d::CONNECT_TIMEOUT)?,
            response_timeout: positive(
                u.response_timeout,
                "response_timeout",
                d::RESPONSE_TIMEOUT,
            )?,
            idle_timeout: positive(u.idle_timeout, "idle_timeout", d::UPSTREAM_IDLE_TIMEOUT)?,
            max_idle_per_worker: u.max_idle_per_worker.unwrap_or(d::MAX_IDLE_PER_WORKER),
            tls: u.tls.map(|t| UpstreamTls {
                sni: t.sni,
                ca: t.ca,
            }),
            health_check,
            circuit_breaker,
            name: u.name.into_inner(),
        })
    }
}

type Span = std::ops::Range<usize>;

fn unique<'a>(c: &Checker<'_>, names: impl Iterator<Item = &'a str>, table: &str) -> Result<()> {
    let mut seen = HashSet::new();
    for (i, n) in names.enumerate() {
        if !seen.insert(n) {
            return Err(c.src.error_at_file(
                format!("{table}[{i}].name"),
                format!("{table} name {n:?} is used twice"),
            ));
        }
    }
    Ok(())
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// `global | client_ip | header:NAME`, plus `cookie:NAME | path` where hashing allows them.
fn request_key(s: &str, hashing: bool) -> Option<RequestKey> {
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

/// A header name is an RFC 9110 token.
fn httparse_token(s: &str) -> Option<&str> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    ok.then_some(s)
}

/// `api.example.com` or `*.example.com`: DNS labels, lower case.
fn valid_host_pattern(s: &str) -> bool {
    let name = s.strip_prefix("*.").unwrap_or(s);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// An endpoint address: `IP:port`, or `name:port` resolved once at load (like nginx).
fn resolve(addr: &str) -> std::result::Result<SocketAddr, String> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    if !addr.contains(':') {
        return Err(format!("invalid address {addr:?}: expected host:port"));
    }
    match addr.to_socket_addrs() {
        Ok(mut it) => it
            .next()
            .ok_or_else(|| format!("{addr:?} resolves to no address")),
        Err(e) => Err(format!("cannot resolve {addr:?}: {e}")),
    }
}
