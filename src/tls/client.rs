//! TLS to upstreams (`upstream.tls`): SNI, verification against the system roots or a CA file,
//! ALPN http/1.1. Each worker has its own client config, so its session-resumption cache is
//! touched by one thread only; the connections are pooled like plain ones.

use super::certs;
use super::stream::{Stream, TlsStream};
use crate::config::UpstreamTls;
use crate::proxy::error::{Kind, ProxyError, Step};
use monoio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, RootCertStore};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What an upstream's TLS needs, loaded once per process (roots are parsed once).
#[derive(Debug)]
pub struct UpstreamTrust {
    roots: Arc<RootCertStore>,
    /// The name to send and verify; `None` verifies the endpoint's IP address.
    name: Option<ServerName<'static>>,
}

impl UpstreamTrust {
    /// Loads the CA file, or the system roots when none is configured.
    pub fn load(tls: &UpstreamTls) -> Result<UpstreamTrust, String> {
        let roots = match &tls.ca {
            Some(ca) => certs::roots(ca)?,
            None => certs::system_roots()?,
        };
        let name = match &tls.sni {
            None => None,
            Some(s) => {
                Some(ServerName::try_from(s.clone()).map_err(|e| format!("sni {s:?}: {e}"))?)
            }
        };
        Ok(UpstreamTrust {
            roots: Arc::new(roots),
            name,
        })
    }

    /// A connector for one thread (its own resumption cache).
    pub fn connector(&self) -> Result<Connector, String> {
        let versions = &[&rustls::version::TLS13, &rustls::version::TLS12];
        let mut config = ClientConfig::builder_with_provider(certs::provider())
            .with_protocol_versions(versions)
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Connector {
            config: Arc::new(config),
            name: self.name.clone(),
        })
    }
}

/// One thread's client side of an upstream's TLS.
#[derive(Clone)]
pub struct Connector {
    config: Arc<ClientConfig>,
    name: Option<ServerName<'static>>,
}

impl Connector {
    /// The name to verify for an endpoint, and the SNI (none for an address).
    pub fn name_for(&self, addr: SocketAddr) -> ServerName<'static> {
        self.name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()))
    }

    /// TLS over an open connection; the error is a reason for the log.
    pub async fn handshake(&self, tcp: TcpStream, addr: SocketAddr) -> Result<Stream, String> {
        let conn = ClientConnection::new(self.config.clone(), self.name_for(addr))
            .map_err(|e| format!("cannot start a session: {e}"))?;
        let mut s = TlsStream::new(tcp, Connection::Client(conn));
        s.handshake().await.map_err(|e| e.to_string())?;
        Ok(Stream::Tls(Box::new(s)))
    }
}

/// Connects to an endpoint within `timeout` (the TCP connect and, with TLS, the handshake).
pub async fn connect(
    tls: Option<&Connector>,
    addr: SocketAddr,
    timeout: Duration,
    upstream: &str,
) -> Result<Stream, ProxyError> {
    let start = monoio::time::Instant::now();
    let tcp = crate::upstream::connect(addr, timeout).await?;
    let Some(tls) = tls else {
        return Ok(Stream::Plain(tcp));
    };
    let left = timeout.saturating_sub(start.elapsed());
    match monoio::time::timeout(left, tls.handshake(tcp, addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(why)) => {
            tracing::warn!(upstream, endpoint = %addr, reason = %why, "upstream TLS handshake failed");
            Err(ProxyError::upstream(Step::Connect, Kind::Io))
        }
        Err(_) => {
            tracing::warn!(upstream, endpoint = %addr, "upstream TLS handshake timed out");
            Err(ProxyError::upstream(Step::Connect, Kind::Timeout))
        }
    }
}
