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
use crate::metrics::Handshake;
use crate::runtime::worker::WorkerCtx;
use acceptor::ServerTls;
use client::{Connector, UpstreamTrust};
use std::cell::Cell;
use std::sync::Arc;

/// The process's TLS state for one config version: built with it, shared by the workers,
/// replaced whole by a reload (the ticket key is process-wide and survives reloads).
pub struct TlsShared {
    /// Per listener, in config order; `None` for plain listeners.
    pub servers: Vec<Option<Arc<ServerTls>>>,
    /// Per worker, per upstream: each worker its own client config (and resumption cache).
    connectors: Vec<Vec<Option<Connector>>>,
    /// The same for the health prober's thread.
    pub prober: Vec<Option<Connector>>,
}

impl TlsShared {
    /// Loads every certificate, key and CA the config names.
    pub fn start(config: &Config, workers: usize) -> Result<TlsShared, String> {
        let servers = config
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| match &l.tls {
                Some(spec) => ServerTls::new(&l.name, spec, tickets::process_ticketer()?)
                    .map(|s| Some(Arc::new(s)))
                    .map_err(|e| format!("listener[{i}].tls: {e}")),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let trust = config
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
        let connectors = || -> Result<Vec<Option<Connector>>, String> {
            trust
                .iter()
                .map(|u| u.as_ref().map(UpstreamTrust::connector).transpose())
                .collect()
        };
        Ok(TlsShared {
            servers,
            connectors: (0..workers)
                .map(|_| connectors())
                .collect::<Result<_, _>>()?,
            prober: connectors()?,
        })
    }
}

/// A worker's view of one version's TLS: the listeners' shared configs, its own connectors.
pub struct WorkerTls {
    pub servers: Vec<Option<Arc<ServerTls>>>,
    pub connectors: Vec<Option<Connector>>,
}

impl WorkerTls {
    pub fn new(shared: &TlsShared, worker: usize) -> WorkerTls {
        WorkerTls {
            servers: shared.servers.clone(),
            connectors: shared.connectors.get(worker).cloned().unwrap_or_default(),
        }
    }
}

thread_local! {
    /// This worker's completed and failed client handshakes (all versions of the config).
    static HANDSHAKES: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The worker's (completed, failed) handshake counts so far.
pub fn handshake_counts() -> (u64, u64) {
    HANDSHAKES.with(Cell::get)
}

/// An accepted connection's stream: as is on a plain listener; on a TLS one after a handshake,
/// or `None` when that failed (counted, logged at debug with the reason) or the worker drains.
pub async fn accept(
    ctx: &WorkerCtx,
    li: usize,
    tcp: monoio::net::TcpStream,
    peer: std::net::SocketAddr,
) -> Option<Stream> {
    let Some(tls) = ctx.tls.servers.get(li).cloned().flatten() else {
        return Some(Stream::Plain(tcp));
    };
    let done = monoio::select! {
        r = tls.accept(tcp) => r,
        _ = ctx.drain.wait() => return None,
    };
    let (ok, failed) = handshake_counts();
    match done {
        Ok(s) => {
            HANDSHAKES.with(|c| c.set((ok + 1, failed)));
            ctx.record().tls_handshake(li, Handshake::Ok);
            log_handshake(ctx.index, &tls.listener, peer, &s);
            Some(Stream::Tls(Box::new(s)))
        }
        Err(why) => {
            HANDSHAKES.with(|c| c.set((ok, failed + 1)));
            ctx.record().tls_handshake(li, Handshake::Failed);
            tracing::debug!(worker = ctx.index, listener = %tls.listener, %peer, reason = %why,
                failed = failed + 1, "TLS handshake failed");
            None
        }
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
