//! One TLS listener's server side: its rustls config (built with the config version: a reload
//! builds a new one, connections already established keep theirs), and the handshake of each
//! accepted connection under a timeout.

use super::certs::{self, Loaded};
use super::resolver::Resolver;
use super::stream::TlsStream;
use super::x509;
use crate::config::{ListenerTls, TlsVersion};
use monoio::net::TcpStream;
use rustls::crypto::CryptoProvider;
use rustls::server::{NoServerSessionStorage, ProducesTickets, ServerConfig, WebPkiClientVerifier};
use rustls::{Connection, ServerConnection};
use std::sync::Arc;
use tracing::{info, warn};

/// Days before expiry from which loading a certificate logs a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// A TLS listener's state, shared by every worker of the process.
pub struct ServerTls {
    /// The listener's name, for logs.
    pub listener: String,
    pub spec: ListenerTls,
    config: Arc<ServerConfig>,
}

impl ServerTls {
    /// Loads the listener's certificates (and client CA) and builds its server config.
    pub fn new(
        listener: &str,
        spec: &ListenerTls,
        ticketer: Arc<dyn ProducesTickets>,
    ) -> Result<ServerTls, String> {
        let (config, loaded) = build(spec, &certs::provider(), &ticketer)?;
        log_certs(listener, &loaded);
        Ok(ServerTls {
            listener: listener.to_string(),
            spec: spec.clone(),
            config: Arc::new(config),
        })
    }

    /// Handshakes with a client; the error is a reason for the log.
    pub async fn accept(&self, tcp: TcpStream) -> Result<TlsStream, String> {
        let conn = ServerConnection::new(self.config.clone())
            .map_err(|e| format!("cannot start a session: {e}"))?;
        let mut stream = TlsStream::new(tcp, Connection::Server(conn));
        match monoio::time::timeout(self.spec.handshake_timeout, stream.handshake()).await {
            Err(_) => return Err("handshake timeout".to_string()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(())) => {}
        }
        if self.spec.client_auth.is_some() {
            let subject = stream
                .session()
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| x509::parse(c))
                .map(|i| i.subject);
            stream.set_client_subject(subject);
        }
        Ok(stream)
    }
}

/// Builds a server config from the files `spec` names.
fn build(
    spec: &ListenerTls,
    provider: &Arc<CryptoProvider>,
    ticketer: &Arc<dyn ProducesTickets>,
) -> Result<(ServerConfig, Vec<Loaded>), String> {
    let loaded = spec
        .certs
        .iter()
        .map(|(c, k)| certs::load(c, k, provider))
        .collect::<Result<Vec<_>, _>>()?;
    let versions: &[&rustls::SupportedProtocolVersion] = match spec.min_version {
        TlsVersion::V12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match &spec.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let roots = certs::roots(&auth.ca)?;
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let v = if auth.required {
                v
            } else {
                v.allow_unauthenticated()
            };
            let verifier = v
                .build()
                .map_err(|e| format!("{}: {e}", auth.ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(Resolver::new(&loaded, spec.strict_sni)));
    config.alpn_protocols = spec.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // Resumption only through the shared ticketer: a per-process session cache would need a
    // lock on every handshake and would not survive a client landing on another core anyway.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    if spec.session_tickets {
        config.ticketer = ticketer.clone();
        config.send_tls13_tickets = crate::config::defaults::TLS13_TICKETS;
    } else {
        config.send_tls13_tickets = 0;
    }
    config.max_early_data_size = 0; // 0-RTT data is replayable: never accepted
    Ok((config, loaded))
}

/// Says which certificates a listener serves, and warns about expired or expiring ones.
fn log_certs(listener: &str, loaded: &[Loaded]) {
    let now = certs::unix_now();
    for (i, l) in loaded.iter().enumerate() {
        let names = l.names().join(",");
        let days_left = l.info.not_after.map(|t| (t - now).div_euclid(86_400));
        match days_left {
            Some(d) if d < 0 => {
                warn!(listener, subject = %l.info.subject, names, "certificate has expired")
            }
            Some(d) if d < EXPIRY_WARNING_DAYS => {
                warn!(listener, subject = %l.info.subject, names, days_left = d, "certificate expires soon")
            }
            _ => {}
        }
        info!(listener, index = i, subject = %l.info.subject, names, days_left, "certificate loaded");
    }
}
