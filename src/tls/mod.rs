//! TLS termination on http listeners and TLS to upstreams, on rustls (ring provider).
//!
//! - `certs`: PEM chains and keys, checked to match; CA bundles; the system roots.
//! - `resolver`: SNI → certificate (exact, `*.suffix`, default or refuse).
//! - `tickets`: the process-wide, rotating session-ticket key (resumption on any core).
//! - `acceptor`: a listener's server config behind an `ArcSwap` (reload), the handshake.
//! - `client`: upstream TLS (SNI, verification, ALPN), one client config per worker.
//! - `stream`: `Stream`, the plain-or-TLS socket the HTTP path reads and writes.
//! - `x509`: the subject, SAN names and expiry read from a certificate.

pub mod acceptor;
pub mod certs;
pub mod client;
pub mod resolver;
pub mod stream;
pub mod tickets;
pub mod x509;

pub use stream::Stream;

use crate::config::Config;
use acceptor::ServerTls;
use client::{Connector, UpstreamTrust};
use std::cell::Cell;
use std::sync::Arc;
use tracing::{error, info};

/// The process's TLS state: built once at start, shared by the workers, reloaded on SIGHUP.
pub struct TlsShared {
    /// Per listener, in config order; `None` for plain listeners.
    pub servers: Vec<Option<Arc<ServerTls>>>,
    /// Per upstream, in config order; `None` for plain upstreams.
    pub upstreams: Vec<Option<UpstreamTrust>>,
}

impl TlsShared {
    /// Loads every certificate, key and CA the config names; one ticketer for all listeners.
    pub fn start(config: &Config) -> Result<TlsShared, String> {
        let ticketer: Option<Arc<dyn rustls::server::ProducesTickets>> =
            if config.listeners.iter().any(|l| l.tls.is_some()) {
                Some(tickets::Ticketer::new(
                    crate::config::defaults::TICKET_KEY_ROTATION,
                )?)
            } else {
                None
            };
        let servers = config
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| match (&l.tls, &ticketer) {
                (Some(spec), Some(t)) => ServerTls::new(&l.name, spec, t.clone())
                    .map(|s| Some(Arc::new(s)))
                    .map_err(|e| format!("listener[{i}].tls: {e}")),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let upstreams = config
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| match &u.tls {
                Some(t) => UpstreamTrust::load(t)
                    .map(Some)
                    .map_err(|e| format!("upstream[{i}].tls: {e}")),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TlsShared { servers, upstreams })
    }

    /// Re-reads every TLS listener's files (SIGHUP); a listener whose new files fail keeps
    /// serving its old certificates, and the log says why.
    pub fn reload(&self) {
        for s in self.servers.iter().flatten() {
            match s.reload() {
                Ok(n) => {
                    info!(listener = %s.listener, certificates = n, "TLS certificates reloaded")
                }
                Err(why) => error!(listener = %s.listener, reason = %why,
                    "TLS reload failed; the previous certificates stay in use"),
            }
        }
    }

    /// Per-thread connectors for the upstreams (each its own resumption cache).
    pub fn connectors(&self) -> Result<Vec<Option<Connector>>, String> {
        self.upstreams
            .iter()
            .map(|u| u.as_ref().map(UpstreamTrust::connector).transpose())
            .collect()
    }
}

/// A worker's TLS: the shared listener state, its own upstream connectors, its counters.
pub struct WorkerTls {
    pub servers: Vec<Option<Arc<ServerTls>>>,
    pub connectors: Vec<Option<Connector>>,
    /// Handshakes completed on this worker's listeners.
    pub handshakes: Cell<u64>,
    /// Client handshakes that failed (garbage, timeout, refused version or certificate).
    pub failed: Cell<u64>,
}

impl WorkerTls {
    pub fn new(shared: &TlsShared) -> Result<WorkerTls, String> {
        Ok(WorkerTls {
            servers: shared.servers.clone(),
            connectors: shared.connectors()?,
            handshakes: Cell::new(0),
            failed: Cell::new(0),
        })
    }
}

/// One debug line per completed handshake: what was negotiated, and whether it resumed.
pub fn log_handshake(
    worker: usize,
    listener: &str,
    peer: std::net::SocketAddr,
    s: &stream::TlsStream,
) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let c = s.session();
    let sni = match c {
        rustls::Connection::Server(sc) => sc.server_name(),
        rustls::Connection::Client(_) => None,
    };
    tracing::debug!(
        worker,
        listener,
        %peer,
        version = ?c.protocol_version(),
        cipher = ?c.negotiated_cipher_suite().map(|s| s.suite()),
        alpn = c.alpn_protocol().map(String::from_utf8_lossy).as_deref(),
        sni,
        resumed = c.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        client_cert = s.client_subject(),
        "TLS handshake done"
    );
}
