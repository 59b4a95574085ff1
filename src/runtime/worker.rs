//! One worker: an OS thread pinned to a CPU, running its own monoio runtime and owning its
//! listener sockets, connection table and (later) pools, limiters and metrics shard.

use super::buffers::BufferPool;
use super::connections::Connections;
use super::driver::{Driver, Selection};
use super::notify::Latch;
use crate::config::{Config, Protocol};
use crate::l4::pump::Path;
use crate::l4::splice::PipePool;
use crate::route::RouteTable;
use crate::upstream::UpstreamState;
use futures_channel::mpsc::UnboundedReceiver;
use futures_core::Stream;
use std::cell::RefCell;
use std::net::TcpListener as StdListener;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// io_uring submission queue entries per worker.
pub const URING_ENTRIES: u32 = 4096;
/// Pause after an accept error such as EMFILE, so a full fd table does not spin the core.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Messages from the main thread to a worker.
#[derive(Debug)]
pub enum Control {
    /// Stop accepting, finish open connections, exit.
    Drain,
}

/// What a worker is started with.
pub struct WorkerSpec {
    pub index: usize,
    pub cpu: Option<core_affinity::CoreId>,
    pub selection: Selection,
    pub config: Arc<Config>,
    pub shared: Arc<super::shared::Shared>,
    /// (listener index, this worker's socket).
    pub listeners: Vec<(usize, StdListener)>,
    pub control: UnboundedReceiver<Control>,
    /// Reports `Ok` once the runtime is up and sockets are registered.
    pub started: Sender<Result<(), String>>,
    /// This worker's access log buffer and request ids.
    pub access: crate::log::access::WorkerLog,
}

/// How often idle upstream connections past their `idle_timeout` are closed.
pub const POOL_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Everything a connection task of this worker can reach.
pub struct WorkerCtx {
    pub index: usize,
    pub config: Arc<Config>,
    /// Process-wide state of this config version (health table).
    pub shared: Arc<super::shared::Shared>,
    pub routes: RouteTable,
    /// Verified Basic credentials (bcrypt is far too slow to run per request).
    pub auth_cache: RefCell<crate::auth::AuthCache>,
    /// This worker's per-route policy state (retry budget), one per `[[route]]`.
    pub route_state: RefCell<Vec<crate::proxy::RouteState>>,
    /// This worker's balancers, pools and counters, one per `[[upstream]]`.
    pub upstreams: RefCell<Vec<UpstreamState>>,
    pub bufs: Rc<BufferPool>,
    /// Empty pipes for splice, shared by this worker's tcp listeners.
    pub pipes: PipePool,
    /// How each listener forwards bytes (tcp listeners; `Copy` for http ones, unused).
    pub l4_paths: Vec<Path>,
    pub conns: Rc<Connections>,
    /// Set when the worker drains: idle connections close, busy ones finish their request.
    pub drain: Latch,
    /// Access log lines and request ids (per worker, not per config version).
    pub access: Rc<crate::log::access::WorkerLog>,
}

/// Runs a worker on the calling thread until it has drained.
pub fn run(spec: WorkerSpec) {
    let pinned = match spec.cpu {
        Some(core) if spec.config.runtime.pin => {
            core_affinity::set_for_current(core).then_some(core.id)
        }
        _ => None,
    };
    let started = spec.started.clone();
    let built = match spec.selection.driver {
        Driver::IoUring => {
            // COOP_TASKRUN: completions wait for our next io_uring_enter instead of interrupting
            // the worker with an IPI; SINGLE_ISSUER: only this thread submits. Kernels older
            // than 6.0 refuse these flags, so fall back to a plain ring.
            let mut tuned = io_uring::IoUring::builder();
            tuned.setup_coop_taskrun().setup_single_issuer();
            let build = |urb: io_uring::Builder| {
                monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                    .enable_timer()
                    .with_entries(URING_ENTRIES)
                    .uring_builder(urb)
                    .build()
            };
            build(tuned)
                .or_else(|_| build(io_uring::IoUring::builder()))
                .map(|mut rt| rt.block_on(worker_main(spec, pinned)))
        }
        Driver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(worker_main(spec, pinned))),
    };
    if let Err(e) = built {
        let _ = started.send(Err(format!("cannot start the runtime: {e}")));
    }
}

async fn worker_main(spec: WorkerSpec, pinned: Option<usize>) {
    let WorkerSpec {
        index,
        selection,
        config,
        shared,
        listeners,
        mut control,
        started,
        access,
        ..
    } = spec;
    let mut sockets = Vec::with_capacity(listeners.len());
    for (li, l) in listeners {
        match monoio::net::TcpListener::from_std(l) {
            Ok(l) => sockets.push((li, l)),
            Err(e) => {
                let _ = started.send(Err(format!(
                    "worker {index}: cannot register listener: {e}"
                )));
                return;
            }
        }
    }
    let pipes = PipePool::default();
    let l4_paths = forwarding_paths(&config, &pipes, index);
    let ctx = Rc::new(WorkerCtx {
        index,
        pipes,
        l4_paths,
        conns: Connections::new(
            config.runtime.max_connections_per_worker,
            config.listeners.len(),
        ),
        routes: RouteTable::new(&config),
        route_state: RefCell::new(crate::proxy::RouteState::build(&config, &shared, index)),
        auth_cache: RefCell::new(crate::auth::AuthCache::new()),
        upstreams: RefCell::new(crate::upstream::build(&config, index)),
        bufs: Rc::new(BufferPool::default()),
        config,
        shared,
        drain: Latch::default(),
        access: Rc::new(access),
    });
    // Runs through the drain too (connections finishing then are logged), until close.
    let log_flusher = monoio::spawn(crate::log::access::flush_every_interval(ctx.access.clone()));
    let cpu = pinned.map_or_else(|| "unpinned".to_string(), |c| c.to_string());
    match &selection.fallback_reason {
        None => info!(worker = index, cpu = %cpu, driver = %selection.driver, "worker started"),
        Some(why) => warn!(worker = index, cpu = %cpu, driver = %selection.driver, reason = %why,
            "worker started on epoll: io_uring unavailable"),
    }
    let accepts: Vec<_> = sockets
        .into_iter()
        .map(|(li, l)| monoio::spawn(accept_loop(ctx.clone(), li, l)))
        .collect();
    let _ = started.send(Ok(()));
    drop(started);
    let sweeper = monoio::spawn(sweep_pools(ctx.clone()));
    let rebalancer = monoio::spawn(rebalance_limits(ctx.clone()));

    // Drain on request, and also when the main thread is gone (the channel closed).
    match std::future::poll_fn(|cx| Pin::new(&mut control).poll_next(cx)).await {
        Some(Control::Drain) | None => {}
    }
    ctx.drain.set();
    for a in accepts {
        a.await;
    }
    let open = ctx.conns.total();
    if open > 0 {
        info!(
            worker = index,
            open, "listeners closed; waiting for open connections"
        );
        let limit = ctx.config.runtime.shutdown_timeout;
        if monoio::time::timeout(limit, ctx.conns.wait_idle())
            .await
            .is_err()
        {
            warn!(
                worker = index,
                open = ctx.conns.total(),
                "shutdown_timeout passed; closing the rest"
            );
        }
    }
    sweeper.await;
    rebalancer.await;
    ctx.access.close();
    log_flusher.await;
    for (u, st) in ctx
        .config
        .upstreams
        .iter()
        .zip(ctx.upstreams.borrow().iter())
    {
        if st.requests > 0 {
            info!(worker = index, upstream = %u.name, requests = st.requests, reused = st.reused,
                reuse_ratio = format_args!("{:.4}", st.reused as f64 / st.requests as f64), "upstream connection reuse");
        }
    }
    info!(worker = index, "worker stopped");
}

/// Decides, per tcp listener, splice or copy, and says which in the log (worker 0 at info).
fn forwarding_paths(config: &Config, pipes: &PipePool, worker: usize) -> Vec<Path> {
    let probe = pipes.probe();
    config
        .listeners
        .iter()
        .map(|l| {
            let Protocol::Tcp(fwd) = &l.protocol else {
                return Path::Copy;
            };
            let (path, why) = match (&probe, fwd.splice) {
                (_, false) => (Path::Copy, "splice = false".to_string()),
                (Ok(()), true) => (Path::Splice, format!("pipes of {} bytes", crate::l4::splice::PIPE_SIZE)),
                (Err(e), true) => (Path::Copy, format!("pipes unavailable: {e}")),
            };
            if worker == 0 {
                info!(listener = %l.name, path = path.name(), reason = %why, "tcp listener forwarding path");
            } else {
                tracing::debug!(worker, listener = %l.name, path = path.name(), reason = %why, "tcp listener forwarding path");
            }
            path
        })
        .collect()
}

/// Publishes this worker's demand and adopts its new rate-limit shares, every
/// `REBALANCE_INTERVAL`, while any route has a rate limit.
async fn rebalance_limits(ctx: Rc<WorkerCtx>) {
    if ctx.config.routes.iter().all(|r| r.rate_limit.is_none()) {
        return;
    }
    loop {
        monoio::select! {
            _ = monoio::time::sleep(crate::policy::ratelimit::REBALANCE_INTERVAL) => {},
            _ = ctx.drain.wait() => return,
        }
        let now = std::time::Instant::now();
        for st in ctx.route_state.borrow_mut().iter_mut() {
            if let Some(l) = st.limiter.as_mut() {
                l.rebalance(now);
            }
        }
    }
}

/// Closes expired idle upstream connections until the worker drains.
async fn sweep_pools(ctx: Rc<WorkerCtx>) {
    loop {
        monoio::select! {
            _ = monoio::time::sleep(POOL_SWEEP_INTERVAL) => {},
            _ = ctx.drain.wait() => return,
        }
        let now = std::time::Instant::now();
        for st in ctx.upstreams.borrow_mut().iter_mut() {
            st.pool.sweep(now);
        }
    }
}

/// Accepts on one listener until the worker drains; the socket closes when this returns.
async fn accept_loop(ctx: Rc<WorkerCtx>, li: usize, listener: monoio::net::TcpListener) {
    let cap = ctx.config.listeners[li].max_connections;
    loop {
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
        };
        match accepted {
            Ok((stream, peer)) => {
                let guard = ctx.conns.open(li);
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
async fn connection(
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
