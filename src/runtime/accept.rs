//! Accept loops: one per listener socket of this worker. Each accept takes the worker's current
//! config version, so after a reload new connections start on the new version; a listener kept
//! across a reload keeps its socket and loop and only changes its index.

use super::notify::Latch;
use super::worker::{Shell, WorkerCtx, ACCEPT_ERROR_BACKOFF};
use crate::config::Protocol;
use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use tracing::{info, warn};

/// A running accept loop.
pub struct Slot {
    index: Rc<Cell<usize>>,
    stop: Rc<Latch>,
    task: monoio::task::JoinHandle<()>,
}

impl Slot {
    /// Starts accepting on `listener`, config listener index `index`.
    pub fn spawn(shell: Rc<Shell>, index: usize, listener: monoio::net::TcpListener) -> Slot {
        let index = Rc::new(Cell::new(index));
        let stop = Rc::new(Latch::default());
        let task = monoio::spawn(accept_loop(shell, index.clone(), stop.clone(), listener));
        Slot { index, stop, task }
    }

    pub fn index(&self) -> usize {
        self.index.get()
    }

    /// The listener kept its socket across a reload but has a new index.
    pub fn renumber(&self, index: usize) {
        self.index.set(index);
    }

    /// The listener is gone from the config: stop accepting and close its socket.
    pub fn stop(self) {
        self.stop.set();
    }

    /// Waits for the loop to end (after a drain).
    pub async fn join(self) {
        self.task.await
    }
}

/// Accepts on one listener until the worker drains or the listener is dropped by a reload; the
/// socket closes when this returns.
async fn accept_loop(
    shell: Rc<Shell>,
    index: Rc<Cell<usize>>,
    stop: Rc<Latch>,
    listener: monoio::net::TcpListener,
) {
    loop {
        if stop.is_set() {
            return;
        }
        let ctx = shell.current();
        let li = index.get();
        let cap = ctx.config.listeners[li].max_connections;
        if ctx.conns.total() >= ctx.config.runtime.max_connections_per_worker {
            monoio::select! {
                _ = ctx.conns.wait_for_room() => {},
                _ = ctx.drain.wait() => return,
            }
        }
        if let Some(max) = cap.filter(|&m| ctx.conns.on_listener(li) >= m) {
            warn!(worker = ctx.index, listener = %ctx.config.listeners[li].name, max_connections = max,
                "listener at max_connections on this worker; accepting paused until one closes");
            monoio::select! {
                _ = ctx.conns.wait_for_room_on(li, max) => {},
                _ = ctx.drain.wait() => return,
            }
            info!(worker = ctx.index, listener = %ctx.config.listeners[li].name, "accepting again");
        }
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = ctx.drain.wait() => return,
            _ = stop.wait() => return,
        };
        // A reload may have happened while waiting: the connection starts on the newest version.
        let (ctx, li) = (shell.current(), index.get());
        match accepted {
            Ok((stream, peer)) => {
                let guard = ctx.conns.open(li);
                ctx.record().accepted(li);
                tracing::debug!(worker = ctx.index, listener = li, %peer, "connection accepted");
                let fut = connection(ctx.clone(), li, stream, peer, guard);
                monoio::spawn(Contained {
                    index: ctx.index,
                    fut,
                });
            }
            Err(e) => {
                let listener_name = &ctx.config.listeners[li].name;
                match e.raw_os_error() {
                    // The peer gave up between SYN and accept: nothing to do.
                    Some(libc::ECONNABORTED | libc::EINTR | libc::EAGAIN) => {}
                    _ => {
                        warn!(worker = ctx.index, listener = %listener_name, error = %e, "accept failed; pausing");
                        monoio::select! {
                            _ = monoio::time::sleep(ACCEPT_ERROR_BACKOFF) => {},
                            _ = ctx.drain.wait() => return,
                        }
                    }
                }
            }
        }
    }
}

/// One accepted connection's task: the real client address first (when a trusted balancer sends
/// a PROXY header), then HTTP or TCP forwarding.
pub(super) async fn connection(
    ctx: Rc<WorkerCtx>,
    li: usize,
    stream: monoio::net::TcpStream,
    peer: std::net::SocketAddr,
    guard: super::connections::ConnectionGuard,
) {
    let listener = &ctx.config.listeners[li];
    match &listener.protocol {
        Protocol::Tcp(_) => crate::l4::forward::serve(ctx, li, stream, peer, guard).await,
        Protocol::Http => {
            let client = match &listener.accept_proxy_protocol {
                None => peer,
                Some(nets) => {
                    let limit = ctx.config.limits.client_header_timeout;
                    match crate::l4::accept::proxy_header(&stream, peer, nets, limit).await {
                        Ok(a) => a.client,
                        Err(why) => {
                            warn!(listener = %listener.name, %peer, reason = %why, "connection closed");
                            return;
                        }
                    }
                }
            };
            let Some(stream) = crate::tls::accept(&ctx, li, stream, client).await else {
                return;
            };
            crate::http::serve(ctx, li, stream, client, guard).await
        }
    }
}

pin_project_lite::pin_project! {
    /// Runs a connection task so that a bug that panics ends that one connection, not the
    /// worker and every other connection on it; the panic is logged.
    struct Contained<F> {
        index: usize,
        #[pin]
        fut: F,
    }
}

impl<F: std::future::Future<Output = ()>> std::future::Future for Contained<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let this = self.project();
        let index = *this.index;
        let fut = this.fut;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(p) => p,
            Err(_) => {
                tracing::error!(
                    worker = index,
                    "connection task panicked; connection closed"
                );
                std::task::Poll::Ready(())
            }
        }
    }
}
