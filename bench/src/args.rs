//! The command line: options, the target URL, and the request encoded once for the whole run.

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use coregate::http::h1::Method;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Default run length when neither `-d` nor `-n` is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Bytes pushed per connection in tcp:// mode when `--size` is not given.
pub const DEFAULT_TCP_SIZE: u64 = 16 * 1024;

/// coregate-bench: an HTTP/1.1 and TCP load generator, thread per core on io_uring.
#[derive(Parser, Debug)]
#[command(name = "coregate-bench", version, about, long_about = None)]
pub struct Args {
    /// Connections, spread over the threads.
    #[arg(short = 'c', long = "connections", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub connections: u64,

    /// Threads, each pinned to one CPU [default: one per CPU].
    #[arg(short = 't', long = "threads", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub threads: Option<u64>,

    /// Run for this long (e.g. 10s, 500ms, 2m) [default: 10s].
    #[arg(short = 'd', long = "duration", value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,

    /// Stop after this many measured requests in total (tcp://: connections).
    #[arg(short = 'n', long = "requests", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// Open loop: this many requests per second in total, latency from each intended send time.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Run this long first and discard its results.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,

    /// Request method.
    #[arg(short = 'm', long = "method")]
    pub method: Option<String>,

    /// Request header "name: value" (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,

    /// Request body, read from this file (Content-Length is added).
    #[arg(long, value_name = "FILE")]
    pub body: Option<PathBuf>,

    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub pipeline: u64,

    /// Write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write a self-contained HTML report to this file.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,

    /// tcp:// only: bytes to push through and read back per connection [default: 16384].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub size: Option<u64>,

    /// Per-request timeout (tcp://: per read or write), counted as a `timeout` error.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,

    /// Write an HdrHistogram interval log (one interval per second) to this file.
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,

    /// No progress lines on stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// http://host[:port]/path or tcp://host:port
    #[arg(value_name = "URL")]
    pub url: String,
}

/// `10s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| e.to_string());
    }
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "`{s}` is not a positive number of requests per second"
        )),
    }
}

/// What a run talks to and how.
#[derive(Debug, Clone)]
pub enum Mode {
    /// HTTP/1.1 requests; `rate` is set for open loop.
    Http { request: Request, rate: Option<f64> },
    /// Push `size` bytes through an echo upstream per connection.
    Tcp { size: u64 },
}

/// The request, encoded once.
#[derive(Debug, Clone)]
pub struct Request {
    /// One request: head and body.
    pub bytes: Vec<u8>,
    /// Its method, which decides how responses are framed (HEAD has no body).
    pub method: Method,
}

/// Everything a run needs, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    pub addr: SocketAddr,
    pub mode: Mode,
    pub connections: usize,
    pub threads: usize,
    pub pipeline: usize,
    pub warmup: Duration,
    /// Set unless `-n` was given.
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    pub timeout: Duration,
    pub quiet: bool,
    pub json: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub hdr_log: Option<PathBuf>,
}

impl Plan {
    pub fn mode_name(&self) -> &'static str {
        match &self.mode {
            Mode::Http { rate: None, .. } => "closed",
            Mode::Http { rate: Some(_), .. } => "open",
            Mode::Tcp { .. } => "tcp",
        }
    }
    pub fn rate(&self) -> Option<f64> {
        match &self.mode {
            Mode::Http { rate, .. } => *rate,
            Mode::Tcp { .. } => None,
        }
    }
}

/// Why the plan could not be made: a usage error (exit 2) or the target cannot be resolved (exit 1).
pub enum PlanError {
    Usage(String),
    Resolve(String),
}

/// Exits with clap's usage-error status (2) and message.
pub fn usage_error(msg: &str) -> ! {
    Args::command()
        .error(ErrorKind::ValueValidation, msg)
        .exit()
}

/// A parsed URL.
#[derive(Debug, PartialEq, Eq)]
struct Url {
    tcp: bool,
    host: String,
    port: u16,
    /// As written, for the Host header.
    authority: String,
    /// Path and query, `/` when absent.
    path: String,
}

fn parse_url(url: &str) -> Result<Url, String> {
    let (tcp, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("tcp://") {
        (true, r)
    } else if url.starts_with("https://") {
        return Err("https:// is not supported (plain HTTP/1.1 only)".into());
    } else {
        return Err(format!(
            "`{url}`: the URL must start with http:// or tcp://"
        ));
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() {
        return Err(format!("`{url}`: no host"));
    }
    if authority.contains('@') {
        return Err(format!("`{url}`: user info is not supported"));
    }
    if path.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'#') {
        return Err(format!(
            "`{url}`: the path has spaces, control characters or a fragment"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6
            .find(']')
            .ok_or_else(|| format!("`{url}`: unclosed IPv6 bracket"))?;
        let after = &v6[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("`{url}`: junk after the IPv6 address")),
        };
        (v6[..end].to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("`{url}`: no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("`{url}`: bad port `{p}`"))?,
        None if tcp => return Err(format!("`{url}`: tcp:// needs a port")),
        None => 80,
    };
    if tcp && !(path.is_empty() || path == "/") {
        return Err(format!("`{url}`: tcp:// takes no path"));
    }
    let path = if path.is_empty() {
        "/".to_string()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    Ok(Url {
        tcp,
        host,
        port,
        authority: authority.to_string(),
        path,
    })
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Encodes the request once: request line, Host (unless given), headers, Content-Length, body.
fn encode_request(
    method: &str,
    url: &Url,
    headers: &[String],
    body: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
    if !is_token(method) {
        return Err(format!("`{method}` is not a valid method"));
    }
    let mut out = Vec::with_capacity(256 + body.map_or(0, <[u8]>::len));
    out.extend_from_slice(format!("{method} {} HTTP/1.1\r\n", url.path).as_bytes());
    let mut has_host = false;
    let mut has_length = false;
    let mut lines = Vec::new();
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("header `{h}` is not `name: value`"))?;
        let (name, value) = (name.trim(), value.trim());
        if !is_token(name) {
            return Err(format!("header name `{name}` is not a token"));
        }
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(format!("header `{name}` has control characters"));
        }
        has_host |= name.eq_ignore_ascii_case("host");
        if name.eq_ignore_ascii_case("content-length") {
            has_length = true;
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(
                "Transfer-Encoding cannot be set: bodies are sent with Content-Length".into(),
            );
        }
        lines.push(format!("{name}: {value}\r\n"));
    }
    if !has_host {
        out.extend_from_slice(format!("Host: {}\r\n", url.authority).as_bytes());
    }
    for l in &lines {
        out.extend_from_slice(l.as_bytes());
    }
    if let Some(b) = body {
        if !has_length {
            out.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
    if let Some(b) = body {
        out.extend_from_slice(b);
    }
    Ok(out)
}

fn cpu_count() -> usize {
    core_affinity::get_core_ids().map_or(0, |c| c.len()).max(1)
}

impl Args {
    /// Checks the options together and resolves the target.
    pub fn plan(self) -> Result<Plan, PlanError> {
        use PlanError::Usage;
        let url = parse_url(&self.url).map_err(Usage)?;
        let mode = if url.tcp {
            let given = [
                (self.rate.is_some(), "--rate"),
                (self.method.is_some(), "-m"),
                (!self.headers.is_empty(), "-H"),
                (self.body.is_some(), "--body"),
                (self.pipeline != 1, "--pipeline"),
            ];
            if let Some((_, name)) = given.iter().find(|(set, _)| *set) {
                return Err(Usage(format!("{name} applies to http:// URLs only")));
            }
            Mode::Tcp {
                size: self.size.unwrap_or(DEFAULT_TCP_SIZE),
            }
        } else {
            if self.size.is_some() {
                return Err(Usage("--size applies to tcp:// URLs only".into()));
            }
            let body = match &self.body {
                Some(p) => Some(
                    std::fs::read(p).map_err(|e| Usage(format!("--body {}: {e}", p.display())))?,
                ),
                None => None,
            };
            let method = self.method.as_deref().unwrap_or("GET");
            let bytes =
                encode_request(method, &url, &self.headers, body.as_deref()).map_err(Usage)?;
            Mode::Http {
                request: Request {
                    bytes,
                    method: Method::from_bytes(method.as_bytes()),
                },
                rate: self.rate,
            }
        };
        if self.timeout.is_zero() {
            return Err(Usage("--timeout must be more than 0".into()));
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err(Usage("-d must be more than 0".into()));
        }
        let connections = usize::try_from(self.connections).unwrap_or(usize::MAX);
        let threads = self
            .threads
            .map_or_else(cpu_count, |t| usize::try_from(t).unwrap_or(usize::MAX))
            .min(connections)
            .max(1);
        let addr = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| PlanError::Resolve(format!("cannot resolve {}: {e}", url.host)))?
            .next()
            .ok_or_else(|| PlanError::Resolve(format!("{} has no address", url.host)))?;
        Ok(Plan {
            url: self.url,
            addr,
            mode,
            connections,
            threads,
            pipeline: usize::try_from(self.pipeline).unwrap_or(1),
            warmup: self.warmup,
            duration: match self.requests {
                Some(_) => self.duration,
                None => Some(self.duration.unwrap_or(DEFAULT_DURATION)),
            },
            count: self.requests,
            timeout: self.timeout,
            quiet: self.quiet,
            json: self.json,
            report: self.report,
            hdr_log: self.hdr_log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:8080/a/b?x=1").unwrap();
        assert_eq!(
            u,
            Url {
                tcp: false,
                host: "127.0.0.1".into(),
                port: 8080,
                authority: "127.0.0.1:8080".into(),
                path: "/a/b?x=1".into()
            }
        );
        let u = parse_url("http://example.com").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = parse_url("http://[::1]:81?q").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 81, "/?q")
        );
        let u = parse_url("tcp://localhost:9000").unwrap();
        assert!(u.tcp);
        assert!(parse_url("tcp://localhost").is_err());
        assert!(parse_url("tcp://h:1/x").is_err());
        assert!(parse_url("https://h/").is_err());
        assert!(parse_url("ftp://h/").is_err());
        assert!(parse_url("http://h:0/").is_err());
        assert!(parse_url("http://h:99999/").is_err());
        assert!(parse_url("http:///x").is_err());
        assert!(parse_url("http://h/a b").is_err());
    }

    #[test]
    fn request_encoding() {
        let u = parse_url("http://h:8/p").unwrap();
        let r = encode_request("POST", &u, &["X-A: 1".into()], Some(b"hello")).unwrap();
        assert_eq!(
            r,
            b"POST /p HTTP/1.1\r\nHost: h:8\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello"
        );
        let r = encode_request("GET", &u, &["host: other".into()], None).unwrap();
        assert_eq!(r, b"GET /p HTTP/1.1\r\nhost: other\r\n\r\n");
        assert!(encode_request("G T", &u, &[], None).is_err());
        assert!(encode_request("GET", &u, &["nocolon".into()], None).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-1").is_err());
    }
}
