//! `accept_proxy_protocol`: a load balancer in front tells us, in a PROXY header, who the client
//! really is. Only peers inside the listener's `trusted` networks may send one, and on such a
//! listener they must: anything else is closed. The header is consumed; the payload behind it is
//! left in the socket for HTTP parsing or splicing.

use super::peek::{self, NoVerdict};
use super::proxy_protocol::{self, Parsed, MAX_HEADER_LEN};
use ipnet::IpNet;
use monoio::net::TcpStream;
use monoio::time::Instant;
use std::net::SocketAddr;
use std::time::Duration;

/// The addresses a connection is about: the client and the address it connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    pub client: SocketAddr,
    pub local: SocketAddr,
}

/// Reads and consumes the PROXY header of a connection from `peer`. `Err` says why the
/// connection must be closed.
pub async fn proxy_header(
    stream: &TcpStream,
    peer: SocketAddr,
    trusted: &[IpNet],
    timeout: Duration,
) -> Result<Addresses, String> {
    let own = Addresses {
        client: peer,
        local: stream.local_addr().unwrap_or(peer),
    };
    if !proxy_protocol::trusted(peer.ip(), trusted) {
        return Err("PROXY protocol peer not in `trusted`".to_string());
    }
    let mut buf = [0u8; MAX_HEADER_LEN];
    let deadline = Instant::now() + timeout;
    let verdict = peek::peek_until(
        stream,
        &mut buf,
        deadline,
        |b| match proxy_protocol::parse(b) {
            Ok(Parsed::Incomplete) => None,
            Ok(Parsed::Header { len, addrs }) => Some(Ok((len, addrs))),
            Err(e) => Some(Err(e)),
        },
    )
    .await;
    let (len, addrs) = match verdict {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return Err(e.reason().to_string()),
        Err(NoVerdict::TimedOut) => return Err("no PROXY header within the timeout".to_string()),
        Err(NoVerdict::Closed) => return Err("closed before a whole PROXY header".to_string()),
        Err(NoVerdict::Full) => return Err("PROXY header too long".to_string()),
        Err(NoVerdict::Io(e)) => return Err(format!("reading the PROXY header: {e}")),
    };
    peek::consume(stream, len).map_err(|e| format!("consuming the PROXY header: {e}"))?;
    Ok(match addrs {
        Some((client, local)) => Addresses { client, local },
        // LOCAL (the balancer's own health check) or an unforwarded family: the socket's own.
        None => own,
    })
}
