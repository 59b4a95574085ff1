//! Active health checks: one prober for the whole process, not one per worker, so an endpoint
//! sees one probe per `interval` however many cores coregate runs on.
//!
//! The prober runs on its own thread ("coregate-health") with its own small runtime and writes
//! each endpoint's state into a `HealthTable` of atomics. Workers read those atomics (a relaxed
//! load, no lock) when they pick an endpoint. How wrong a worker can be: a state flip is visible
//! to every worker at its next pick after the store; the flip itself lags reality by at most
//! `interval × unhealthy` (down) or `interval × healthy` (up), plus one probe `timeout`.

use crate::config::{Config, HealthCheck};
use crate::tls::client::Connector;
use crate::tls::Stream;
use monoio::net::TcpStream;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use tracing::{info, warn};

/// Bytes of a probe response read to find its status line.
pub const PROBE_READ: usize = 1024;

/// One endpoint's published state.
#[derive(Default)]
pub struct EndpointHealth {
    /// Down only after `unhealthy` consecutive failed probes; every endpoint starts up.
    down: AtomicBool,
    /// Successful probes so far: a worker that ejected the endpoint lets it back when this moves.
    passes: AtomicU32,
}

/// Every endpoint's state, by upstream then endpoint index, as the config lists them.
pub struct HealthTable {
    upstreams: Vec<Vec<EndpointHealth>>,
    /// Set when a reload replaced this table: its prober stops after the current round.
    retired: AtomicBool,
}

impl HealthTable {
    pub fn new(config: &Config) -> Arc<HealthTable> {
        Arc::new(HealthTable {
            upstreams: config
                .upstreams
                .iter()
                .map(|u| {
                    u.endpoints
                        .iter()
                        .map(|_| EndpointHealth::default())
                        .collect()
                })
                .collect(),
            retired: AtomicBool::new(false),
        })
    }

    /// Stops the prober of a config version that was replaced.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    /// Whether active checks currently consider the endpoint up (always, without checks).
    pub fn is_up(&self, upstream: usize, endpoint: usize) -> bool {
        !self.upstreams[upstream][endpoint]
            .down
            .load(Ordering::Relaxed)
    }

    /// How many probes of the endpoint have passed.
    pub fn passes(&self, upstream: usize, endpoint: usize) -> u32 {
        self.upstreams[upstream][endpoint]
            .passes
            .load(Ordering::Relaxed)
    }
}

/// Starts the prober thread when some upstream has `[upstream.health_check]`.
/// `tls` holds a connector per upstream with `tls` (probes then handshake too).
pub fn start(
    config: Arc<Config>,
    table: Arc<HealthTable>,
    tls: Vec<Option<Connector>>,
) -> Result<(), String> {
    if config.upstreams.iter().all(|u| u.health_check.is_none()) {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("coregate-health".into())
        .spawn(move || {
            let rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build();
            match rt {
                Ok(mut rt) => rt.block_on(probe_all(config, table, tls)),
                Err(e) => warn!(error = %e, "health checks disabled: cannot start their runtime"),
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the health-check thread: {e}"))
}

async fn probe_all(config: Arc<Config>, table: Arc<HealthTable>, tls: Vec<Option<Connector>>) {
    let mut tasks = Vec::new();
    for (ui, u) in config.upstreams.iter().enumerate() {
        let Some(hc) = &u.health_check else { continue };
        for (ei, ep) in u.endpoints.iter().enumerate() {
            let (table, hc, name, addr) = (table.clone(), hc.clone(), u.name.clone(), ep.addr);
            let tls = tls.get(ui).cloned().flatten();
            tasks.push(monoio::spawn(async move {
                watch(&table, ui, ei, &hc, &name, addr, tls.as_ref()).await
            }));
        }
    }
    for t in tasks {
        t.await;
    }
}

/// Probes one endpoint forever, flipping its state after enough consecutive results.
async fn watch(
    table: &HealthTable,
    ui: usize,
    ei: usize,
    hc: &HealthCheck,
    upstream: &str,
    addr: SocketAddr,
    tls: Option<&Connector>,
) {
    let state = &table.upstreams[ui][ei];
    let (mut oks, mut fails) = (0u32, 0u32);
    while !table.retired.load(Ordering::Relaxed) {
        let result =
            match monoio::time::timeout(hc.timeout, probe(addr, hc.path.as_deref(), tls)).await {
                Ok(r) => r,
                Err(_) => Err("timed out".to_string()),
            };
        let down = state.down.load(Ordering::Relaxed);
        match result {
            Ok(()) => {
                state.passes.fetch_add(1, Ordering::Relaxed);
                (oks, fails) = (oks + 1, 0);
                if down && oks >= hc.healthy {
                    state.down.store(false, Ordering::Relaxed);
                    info!(upstream, endpoint = %addr, passes = oks, "endpoint up: health check passed");
                }
            }
            Err(why) => {
                (oks, fails) = (0, fails + 1);
                if !down && fails >= hc.unhealthy {
                    state.down.store(true, Ordering::Relaxed);
                    warn!(upstream, endpoint = %addr, failures = fails, reason = %why, "endpoint down: health check failed");
                }
            }
        }
        monoio::time::sleep(hc.interval).await;
    }
}

/// One probe: a TCP connect (and TLS handshake for a TLS upstream), or with `path` an HTTP GET
/// that must answer 2xx or 3xx.
async fn probe(
    addr: SocketAddr,
    path: Option<&str>,
    tls: Option<&Connector>,
) -> Result<(), String> {
    let tcp = TcpStream::connect_addr(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut s = match tls {
        None => Stream::Plain(tcp),
        Some(c) => c
            .handshake(tcp, addr)
            .await
            .map_err(|e| format!("TLS: {e}"))?,
    };
    let Some(path) = path else { return Ok(()) };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: coregate-health\r\nConnection: close\r\n\r\n"
    );
    let (r, _) = crate::proxy::buffered::write_all(&mut s, req.into_bytes()).await;
    r.map_err(|e| format!("send: {e}"))?;
    let mut got = Vec::with_capacity(PROBE_READ);
    while !got.contains(&b'\n') && got.len() < PROBE_READ {
        let buf = Vec::with_capacity(PROBE_READ - got.len());
        let (r, buf) = s.read_into(buf).await;
        match r {
            Ok(0) => break,
            Ok(_) => got.extend_from_slice(&buf),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    match status_of(&got) {
        Some(code) if (200..400).contains(&code) => Ok(()),
        Some(code) => Err(format!("status {code}")),
        None => Err("no HTTP status line".to_string()),
    }
}

/// The status code of an `HTTP/1.x NNN ...` line.
fn status_of(resp: &[u8]) -> Option<u16> {
    let line = resp.split(|&b| b == b'\n').next()?;
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::status_of;

    #[test]
    fn reads_status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_of(b"HTTP/1.0 302 Found\r\n"), Some(302));
        assert_eq!(status_of(b"HTTP/1.1 5x0 Bad\r\n"), None);
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 20"), None);
    }
}
