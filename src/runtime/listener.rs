//! Listening sockets: one SO_REUSEPORT socket per worker and listener, so the kernel spreads
//! connections across cores with no shared accept queue and no accept lock.

use super::upgrade::Inherited;
use crate::config::Config;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener};

/// The sockets of one `[[listener]]`, one per worker.
pub struct BoundListener {
    pub name: String,
    pub addr: SocketAddr,
    pub sockets: Vec<TcpListener>,
}

/// Binds every listener once per worker; the error names the listener and address.
/// Sockets inherited from a process being upgraded are used instead of binding anew.
pub fn bind_all(
    config: &Config,
    workers: usize,
    inherited: &mut Inherited,
) -> Result<Vec<BoundListener>, String> {
    let bound = config
        .listeners
        .iter()
        .map(|l| bind_one(l, workers, inherited))
        .collect();
    std::mem::take(inherited).close_rest();
    bound
}

/// Binds one listener once per worker (or takes its inherited sockets, adding sockets to the
/// same SO_REUSEPORT group when this process runs more workers than the old one).
pub fn bind_one(
    l: &crate::config::Listener,
    workers: usize,
    inherited: &mut Inherited,
) -> Result<BoundListener, String> {
    let fail = |what: &str, e: io::Error| {
        format!(
            "listener {:?}: cannot {what} {}: {}",
            l.name,
            l.bind,
            plain(&e)
        )
    };
    let mut sockets = inherited.take(l.bind);
    let mut addr = l.bind;
    if let Some(first) = sockets.first() {
        addr = first
            .local_addr()
            .map_err(|e| fail("read the address of", e))?;
        tracing::info!(listener = %l.name, %addr, sockets = sockets.len(), "listening sockets inherited");
    } else {
        // A plain bind first: SO_REUSEPORT would otherwise let us silently share a port
        // with another process (a second coregate, say) running as the same user.
        exclusive_check(l.bind).map_err(|e| fail("bind", e))?;
    }
    while sockets.len() < workers {
        let s = reuseport_socket(addr, l.backlog).map_err(|e| fail("listen on", e))?;
        // Port 0: every worker must share the port the kernel gave the first one.
        addr = s.local_addr().map_err(|e| fail("read the address of", e))?;
        sockets.push(s);
    }
    Ok(BoundListener {
        name: l.name.clone(),
        addr,
        sockets,
    })
}

fn exclusive_check(addr: SocketAddr) -> io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())
}

fn reuseport_socket(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // Like nginx's ipv6only=on: [::]:80 and 0.0.0.0:80 can be separate listeners.
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.set_tcp_nodelay(true)?; // accepted sockets inherit it: no setsockopt per connection
    s.bind(&addr.into())?;
    s.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(s.into())
}

/// The OS message without the "(os error N)" suffix, for one-line start-up errors.
fn plain(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
