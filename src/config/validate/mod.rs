//! File structs → checked `Config`: defaults filled in, names resolved, every value range-checked.

mod listener;
mod route;
mod upstream;

use super::defaults as d;
use super::error::Source;
use super::file::*;
use super::*;
use std::collections::HashSet;
use std::net::IpAddr;
use toml::Spanned;

pub(super) type Result<T> = std::result::Result<T, ConfigError>;

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

pub(super) struct Checker<'a> {
    src: &'a Source<'a>,
}

impl Checker<'_> {
    pub(super) fn at<T>(
        &self,
        v: &Spanned<T>,
        key: impl Into<String>,
        msg: impl Into<String>,
    ) -> ConfigError {
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
                let token = match a.token {
                    None => None,
                    Some(t) => Some(self.admin_token(&t)?),
                };
                Some(AdminConfig { listen, token })
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
        if let Some(a) = admin.as_ref().filter(|a| binds.contains(&a.listen)) {
            return Err(self.src.error_at_file(
                "admin.listen",
                format!("address {} is also a listener's bind", a.listen),
            ));
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

    /// `admin.token`: a bearer token (RFC 6750 token68 characters), long enough to mean something.
    fn admin_token(&self, t: &Spanned<String>) -> Result<String> {
        let v = t.get_ref();
        let token68 = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
        if !v.chars().all(token68) {
            return Err(self.at(
                t,
                "admin.token",
                "only letters, digits and - . _ ~ + / = may appear in a bearer token",
            ));
        }
        if v.len() < d::ADMIN_TOKEN_MIN_LEN {
            return Err(self.at(
                t,
                "admin.token",
                format!(
                    "at least {} characters (try `openssl rand -hex 32`)",
                    d::ADMIN_TOKEN_MIN_LEN
                ),
            ));
        }
        Ok(v.clone())
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
        let max_chunk_ext = size(l.max_chunk_ext, "limits.max_chunk_ext", d::MAX_CHUNK_EXT)?;
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
            max_chunk_ext,
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
        let access_log = match &l.access_log {
            None => AccessLog::Off,
            Some(s) => match s.get_ref().as_str() {
                "off" => AccessLog::Off,
                "stdout" => AccessLog::Stdout,
                "" => return Err(self.at(s, "log.access_log", "empty path")),
                path => AccessLog::File(self.access_log_path(s, path)?),
            },
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

    /// An access log path, relative to the config file's directory; the directory must exist
    /// (the file itself is created at start), and the path must not name a directory.
    fn access_log_path(&self, s: &Spanned<String>, path: &str) -> Result<std::path::PathBuf> {
        let full = match Path::new(self.src.name).parent() {
            Some(dir) if Path::new(path).is_relative() => dir.join(path),
            _ => std::path::PathBuf::from(path),
        };
        let dir = match full.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        if !dir.is_dir() {
            let msg = format!(
                "directory {} does not exist (the access log {} cannot be created)",
                dir.display(),
                full.display()
            );
            return Err(self.at(s, "log.access_log", msg));
        }
        if full.is_dir() {
            let msg = format!("{} is a directory, not a file", full.display());
            return Err(self.at(s, "log.access_log", msg));
        }
        Ok(full)
    }

    pub(super) fn socket_addr(&self, s: &Spanned<String>, key: &str) -> Result<SocketAddr> {
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

    pub(super) fn ip_net(&self, s: &Spanned<String>, key: &str) -> Result<IpNet> {
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

    pub(super) fn upstream_ref(
        &self,
        name: &Spanned<String>,
        ups: &[Upstream],
        key: &str,
    ) -> Result<usize> {
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
}

pub(super) type Span = std::ops::Range<usize>;

pub(super) fn unique<'a>(
    c: &Checker<'_>,
    names: impl Iterator<Item = &'a str>,
    table: &str,
) -> Result<()> {
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

pub(super) fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// A header name is an RFC 9110 token.
pub(super) fn httparse_token(s: &str) -> Option<&str> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    ok.then_some(s)
}

/// `api.example.com` or `*.example.com`: DNS labels, lower case.
pub(super) fn valid_host_pattern(s: &str) -> bool {
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
