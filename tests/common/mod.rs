//! Test harness: start the real `coregate` binary on loopback and talk raw bytes to it.
//!
//! Every wait polls with a deadline; nothing sleeps to synchronise.

#![allow(dead_code)]

pub mod nginx;
pub mod upstream;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Upper bound for anything a test waits on.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_coregate")
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 10 ms until it returns `Some`, or panics with `what` after `limit`.
pub fn poll<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running gateway; killed when dropped.
pub struct Gateway {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    pub config: PathBuf,
}

impl Gateway {
    /// Writes `config` to a file and runs `coregate run --config` on it, without waiting.
    pub fn spawn(config: &str, envs: &[(&str, &str)], extra_args: &[&str]) -> Gateway {
        Self::spawn_cmd(config, envs, extra_args, |_| {})
    }

    /// Like `spawn`, with a last say over the command (a `pre_exec` hook, say).
    pub fn spawn_cmd(
        config: &str,
        envs: &[(&str, &str)],
        extra_args: &[&str],
        customize: impl FnOnce(&mut Command),
    ) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coregate.toml");
        std::fs::write(&path, config).unwrap();
        let log = dir.path().join("stderr.log");
        let mut cmd = Command::new(binary());
        cmd.arg("run").arg("--config").arg(&path).args(extra_args);
        cmd.env_remove("RUST_LOG").envs(envs.iter().copied());
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        customize(&mut cmd);
        let child = cmd.spawn().unwrap();
        Gateway {
            child,
            dir,
            log,
            config: path,
        }
    }

    /// Runs and waits until it logs that it is ready.
    pub fn start(config: &str) -> Gateway {
        Self::start_with(config, &[], &[])
    }

    pub fn start_with(config: &str, envs: &[(&str, &str)], extra_args: &[&str]) -> Gateway {
        let mut g = Self::spawn(config, envs, extra_args);
        g.wait_log("coregate ready");
        g
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `needle` in the log; panics with the log if the process exits first.
    pub fn wait_log(&mut self, needle: &str) {
        let log = self.log.clone();
        let child = &mut self.child;
        poll(WAIT, needle, || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(needle) {
                return Some(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("coregate exited ({status}) before logging {needle:?}:\n{text}");
            }
            None
        })
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let child = &mut self.child;
        poll(limit, "coregate to exit", || child.try_wait().unwrap())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `coregate ARGS` to completion (bounded), returning (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = poll(WAIT, "coregate CLI to finish", || child.try_wait().unwrap());
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), out, err)
}

/// Writes a config to a temp file and runs `coregate check` on it.
pub fn check(config: &str) -> (i32, String, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("check.toml");
    std::fs::write(&path, config).unwrap();
    let (code, _, err) = run_cli(&["check", "--config", path.to_str().unwrap()]);
    (code, err, path, dir)
}

/// A client connection with read/write timeouts so no test can hang.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// A response read off the wire: status, lower-cased headers, body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one content-length-framed response (or up to EOF without one).
pub fn read_response(s: &mut TcpStream) -> std::io::Result<Response> {
    read_response_to(s, false)
}

pub fn read_response_to(s: &mut TcpStream, head_request: bool) -> std::io::Result<Response> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("eof after {:?}", String::from_utf8_lossy(&buf)),
            ));
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = Vec::new();
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse::<usize>().unwrap());
    match len {
        _ if head_request => {}
        Some(n) => {
            body.resize(n, 0);
            s.read_exact(&mut body)?;
        }
        None => {
            s.read_to_end(&mut body)?;
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Sends raw bytes on a new connection and reads one response.
pub fn roundtrip(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    read_response(&mut s).unwrap()
}

/// True once the peer has closed (EOF or reset) within the stream's read timeout; data is skipped.
pub fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

/// One /proc/net/tcp (or tcp6) row.
struct TcpRow {
    state: String,
    local: u16,
    remote: u16,
    rx_queue: u64,
}

/// /proc/net/tcp rows, v4 and v6.
fn tcp_rows() -> Vec<TcpRow> {
    let port = |f: &str| u16::from_str_radix(f.rsplit(':').next()?, 16).ok();
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .skip(1)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(TcpRow {
                state: f.get(3)?.to_string(),
                local: port(f.get(1)?)?,
                remote: port(f.get(2)?)?,
                rx_queue: u64::from_str_radix(f.get(4)?.split(':').nth(1)?, 16).ok()?,
            })
        })
        .collect()
}

/// TCP states (hex, as in /proc/net/tcp: 01 ESTABLISHED, 08 CLOSE_WAIT...) of sockets whose
/// remote port is `port`: the client side of connections to a server on `port`.
pub fn states_towards(port: u16) -> Vec<String> {
    tcp_rows()
        .into_iter()
        .filter(|r| r.remote == port)
        .map(|r| r.state)
        .collect()
}

/// True when the server side of a connection to `port` exists, was accepted, and has no unread
/// bytes: the gateway has taken the connection and read what the client sent.
pub fn accepted_and_read(port: u16) -> bool {
    let rows = tcp_rows();
    let backlog_empty = rows
        .iter()
        .filter(|r| r.state == "0A" && r.local == port)
        .all(|r| r.rx_queue == 0);
    let server_side: Vec<_> = rows
        .iter()
        .filter(|r| r.state == "01" && r.local == port)
        .collect();
    backlog_empty && !server_side.is_empty() && server_side.iter().all(|r| r.rx_queue == 0)
}

/// Listening sockets (state LISTEN) on `port`, from /proc/net/tcp and tcp6.
pub fn listening_sockets(port: u16) -> usize {
    tcp_rows()
        .iter()
        .filter(|r| r.state == "0A" && r.local == port)
        .count()
}

/// A minimal config with one HTTP listener on `port`, routing everything to `upstream`.
pub fn basic_config(port: u16, upstream: SocketAddr, workers: usize, extra: &str) -> String {
    format!(
        r#"
[runtime]
workers = {workers}
shutdown_timeout = "5s"
{extra}

[[listener]]
name = "web"
bind = "127.0.0.1:{port}"

[[route]]
listener = "web"
upstream = "app"

[[upstream]]
name = "app"
endpoints = ["{upstream}"]
"#
    )
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
