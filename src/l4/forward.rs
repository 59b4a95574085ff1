//! A connection on a `tcp` listener, from accept to close: the client's real address (PROXY
//! header from a trusted balancer), the upstream (by SNI or the listener's own), a connection to
//! one of its endpoints (failing over), our own PROXY header, then both directions pumped until
//! both have ended — or one side resets, which resets the other, or nothing moves for
//! `idle_timeout`.

use super::accept::{self, Addresses};
use super::peek::{self, NoVerdict};
use super::proxy_protocol::{encode_v1, encode_v2};
use super::pump::{pump, End, Moved, Path, Shared};
use super::sni::{self, Sni, MAX_NAME_LEN};
use crate::config::{ProxyProtocol, TcpForward};
use crate::log::format::TcpLine;
use crate::runtime::connections::ConnectionGuard;
use crate::runtime::worker::WorkerCtx;
use crate::upstream::balance::ip_key;
use crate::upstream::MAX_CONNECT_ATTEMPTS;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Instant;
use tracing::{debug, warn};

/// Forwards one accepted connection until both directions are done.
pub async fn serve(
    ctx: Rc<WorkerCtx>,
    li: usize,
    client: TcpStream,
    peer: SocketAddr,
    _guard: ConnectionGuard,
) {
    let listener = &ctx.config.listeners[li];
    let crate::config::Protocol::Tcp(fwd) = &listener.protocol else {
        return;
    };
    let started = Instant::now();
    let timeout = ctx.config.limits.client_header_timeout;
    let addrs = match &listener.accept_proxy_protocol {
        None => Addresses {
            client: peer,
            local: client.local_addr().unwrap_or(peer),
        },
        Some(nets) => match accept::proxy_header(&client, peer, nets, timeout).await {
            Ok(a) => a,
            Err(why) => {
                warn!(listener = %listener.name, %peer, reason = %why, "connection closed");
                return;
            }
        },
    };
    // The access log line, written when the connection ends (however it ends).
    let log = |end: &str, upstream: Option<SocketAddr>, sent: u64, received: u64| {
        ctx.access.tcp(&TcpLine {
            client: addrs.client.ip(),
            listener: &listener.name,
            end,
            bytes_sent: received,
            bytes_received: sent,
            duration: started.elapsed(),
            upstream,
        })
    };
    let Some(upstream) = choose_upstream(&ctx, fwd, &client, &addrs).await else {
        debug!(listener = %listener.name, client = %addrs.client, "no upstream for this connection; closed");
        return log("no_upstream", None, 0, 0);
    };
    let Some((endpoint, mut up)) = connect(&ctx, upstream, &addrs).await else {
        return log("connect_failed", None, 0, 0);
    };
    if fwd.proxy_protocol != ProxyProtocol::Off {
        let mut header = Vec::with_capacity(super::proxy_protocol::MAX_HEADER_LEN);
        if fwd.proxy_protocol == ProxyProtocol::V1 {
            encode_v1(&mut header, addrs.client, addrs.local);
        } else {
            encode_v2(&mut header, addrs.client, addrs.local);
        }
        let (res, _) = up.write_all(header).await;
        if let Err(e) = res {
            debug!(%endpoint, error = %e, "sending the PROXY header failed");
            return log(Ended::UpstreamFailed.name(), Some(endpoint), 0, 0);
        }
    }
    if let Err(e) = set_nonblocking(&client).and_then(|_| set_nonblocking(&up)) {
        warn!(error = %e, "cannot make sockets non-blocking; closed");
        return;
    }
    let path = ctx.l4_paths[li];
    let last_activity = Cell::new(Instant::now());
    let shared = Shared {
        pipes: &ctx.pipes,
        bufs: &ctx.bufs,
        last_activity: &last_activity,
    };
    let (sent, received) = (Cell::new(0u64), Cell::new(0u64));
    let (to_upstream, to_client) = ctx.record().forwarded(li);
    let end = relay(
        &client,
        &up,
        path,
        &shared,
        ([&sent, &to_upstream], [&received, &to_client]),
        fwd.idle_timeout,
    )
    .await;
    debug!(listener = %listener.name, client = %addrs.client, %endpoint, path = path.name(),
        sent = sent.get(), received = received.get(), end = ?end, "tcp connection closed");
    log(end.name(), Some(endpoint), sent.get(), received.get());
    match end {
        Ended::Done | Ended::Idle => {}
        // A reset travels on as a reset: SO_LINGER 0 makes the close below send RST.
        Ended::ClientFailed => reset_on_close(&up),
        Ended::UpstreamFailed => reset_on_close(&client),
    }
}

/// How often a half-closed connection checks the side that sent its FIN for a later reset.
pub const HALF_CLOSED_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a socket has an error or hang-up pending (a reset), without reading from it.
fn has_failed(s: &TcpStream) -> bool {
    let mut pfd = libc::pollfd {
        fd: s.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: poll reads and writes one valid pollfd; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// How a forwarded connection ended.
#[derive(Debug, Clone, Copy)]
enum Ended {
    /// Both directions saw end of stream.
    Done,
    /// Nothing moved for `idle_timeout`.
    Idle,
    /// The client reset (or its socket failed).
    ClientFailed,
    /// The upstream reset (or its socket failed).
    UpstreamFailed,
}

impl Ended {
    /// As the access log says it.
    fn name(self) -> &'static str {
        match self {
            Ended::Done => "done",
            Ended::Idle => "idle",
            Ended::ClientFailed => "client_reset",
            Ended::UpstreamFailed => "upstream_reset",
        }
    }
}

/// Runs both directions and the idle watchdog until the connection is over.
async fn relay(
    client: &TcpStream,
    up: &TcpStream,
    path: Path,
    sh: &Shared<'_>,
    (sent, received): (Moved<'_>, Moved<'_>),
    idle: std::time::Duration,
) -> Ended {
    let mut to_up = std::pin::pin!(pump(client, up, path, sh, sent));
    let mut to_client = std::pin::pin!(pump(up, client, path, sh, received));
    let (mut up_done, mut client_done) = (false, false);
    while !(up_done && client_done) {
        // Once a direction has ended, its source reports readable forever (EOF), so a reset
        // there is invisible to the other pump: check it with a zero-event poll (errors only).
        let ended_source = match (up_done, client_done) {
            (true, false) => Some((client, Ended::ClientFailed)),
            (false, true) => Some((up, Ended::UpstreamFailed)),
            _ => None,
        };
        let watchdog = async {
            loop {
                let due = sh.last_activity.get() + idle;
                let now = Instant::now();
                if now >= due {
                    return Ended::Idle;
                }
                let Some((source, failed)) = &ended_source else {
                    monoio::time::sleep(due - now).await;
                    continue;
                };
                if has_failed(source) {
                    return match failed {
                        Ended::ClientFailed => Ended::ClientFailed,
                        _ => Ended::UpstreamFailed,
                    };
                }
                monoio::time::sleep((due - now).min(HALF_CLOSED_CHECK)).await;
            }
        };
        monoio::select! {
            end = &mut to_up, if !up_done => match end {
                End::Eof => up_done = true,
                End::Source(_) => return Ended::ClientFailed,
                End::Dest(_) => return Ended::UpstreamFailed,
            },
            end = &mut to_client, if !client_done => match end {
                End::Eof => client_done = true,
                End::Source(_) => return Ended::UpstreamFailed,
                End::Dest(_) => return Ended::ClientFailed,
            },
            ended = watchdog => return ended,
        }
    }
    Ended::Done
}

/// The upstream for this connection: by TLS server name when the listener has `sni_routes`, else
/// (or when no route matches) the listener's own `upstream`.
async fn choose_upstream(
    ctx: &WorkerCtx,
    fwd: &TcpForward,
    client: &TcpStream,
    addrs: &Addresses,
) -> Option<usize> {
    if fwd.sni_routes.is_empty() {
        return fwd.upstream;
    }
    let mut buf = ctx.bufs.take();
    buf.resize(sni::MAX_HELLO_BYTES, 0);
    let deadline = monoio::time::Instant::now() + ctx.config.limits.client_header_timeout;
    let mut scratch = [0u8; MAX_NAME_LEN];
    let routed = peek::peek_until(client, &mut buf, deadline, |b| {
        match sni::server_name(b, &mut scratch) {
            Sni::Incomplete => None,
            Sni::Found(name) => Some(sni::route(name, &fwd.sni_routes).or(fwd.upstream)),
            Sni::Missing | Sni::NotTls => Some(sni::route("", &fwd.sni_routes).or(fwd.upstream)),
        }
    })
    .await;
    ctx.bufs.give(buf);
    match routed {
        Ok(u) => u,
        // Timed out or closed mid-hello: nobody to forward to.
        Err(NoVerdict::TimedOut | NoVerdict::Closed | NoVerdict::Io(_)) => {
            debug!(client = %addrs.client, "no complete ClientHello; closed");
            None
        }
        Err(NoVerdict::Full) => sni::route("", &fwd.sni_routes).or(fwd.upstream),
    }
}

/// Connects to an endpoint of `upstream`, trying others when one refuses or times out.
async fn connect(
    ctx: &WorkerCtx,
    upstream: usize,
    addrs: &Addresses,
) -> Option<(SocketAddr, TcpStream)> {
    let cfg = &ctx.config.upstreams[upstream];
    let health = &ctx.shared.health;
    let mut tried = [usize::MAX; MAX_CONNECT_ATTEMPTS];
    let attempts = MAX_CONNECT_ATTEMPTS.min(cfg.endpoints.len()).max(1);
    for attempt in 0..attempts {
        let client = addrs.client.ip();
        let picked = ctx.upstreams.borrow_mut()[upstream].pick(
            upstream,
            health,
            client,
            ip_key(client),
            &tried[..attempt],
            Instant::now(),
        );
        let Some(ep) = picked else { break };
        tried[attempt] = ep;
        let addr = cfg.endpoints[ep].addr;
        let result = crate::upstream::connect(addr, cfg.connect_timeout).await;
        ctx.upstreams.borrow_mut()[upstream].outcome(
            cfg,
            upstream,
            ep,
            result.is_ok(),
            health,
            Instant::now(),
        );
        match result {
            Ok(s) => return Some((addr, s)),
            Err(e) => warn!(upstream = %cfg.name, endpoint = %addr, error = %e, "connect failed"),
        }
    }
    warn!(upstream = %cfg.name, client = %addrs.client, attempts, "no endpoint accepted; client closed");
    None
}

fn set_nonblocking(s: &TcpStream) -> std::io::Result<()> {
    let fd = s.as_raw_fd();
    // SAFETY: fcntl on an open descriptor owned by `s`; F_GETFL/F_SETFL take and return ints.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the coming close send RST instead of FIN (SO_LINGER with a zero timeout).
fn reset_on_close(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads one `linger` from a valid pointer; the descriptor is open.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
