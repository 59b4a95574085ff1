//! One worker: an OS thread pinned to a CPU, running its own monoio runtime and owning its
//! listener sockets, connection table, pools, limiters and counters.
//!
//! What a request sees is a `WorkerCtx`: one config version as this worker runs it. A reload
//! builds a whole new context (sharing only the buffer pools, the connection table and the drain
//! latch, and moving over the idle upstream connections of unchanged upstreams) and links the old
//! one to it: requests already running finish on the old version, every new request — on a new
//! connection or the next request of a kept-alive one — starts on the new one.

use super::accept;
use super::buffers::BufferPool;
use super::connections::Connections;
use super::driver::{Driver, Selection};
use super::notify::Latch;
use crate::config::{Config, Protocol};
use crate::l4::pump::Path;
use crate::l4::splice::PipePool;
use crate::metrics::{Recorder, Shard, Slots, Snapshot};
use crate::route::RouteTable;
use crate::upstream::UpstreamState;
use futures_channel::mpsc::UnboundedReceiver;
use futures_core::Stream;
use std::cell::{Cell, RefCell};
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
pub enum Control {
    /// Stop accepting, finish open connections, exit.
    Drain,
    /// Like `Drain`, for a binary upgrade: a successor now accepts on the same sockets, so idle
    /// kept-alive connections get a grace period for one more request (answered with
    /// `connection: close`) instead of being closed under a client that may be sending.
    Handover,
    /// Switch to a new config version.
    Reload(Box<Reload>),
    /// Copy this worker's metrics and gauges into a snapshot for the admin thread.
    Scrape(futures_channel::oneshot::Sender<crate::metrics::Snapshot>),
}

/// A new config version for one worker.
pub struct Reload {
    pub version: u64,
    pub config: Arc<Config>,
    pub shared: Arc<super::shared::Shared>,
    /// Per listener of the new config: the old index of a listener kept with its sockets, or this
    /// worker's socket of a newly bound one.
    pub listeners: Vec<ListenerChange>,
    /// Acknowledged once the worker runs the new version.
    pub done: Sender<Result<(), String>>,
}

pub enum ListenerChange {
    Keep(usize),
    New(StdListener),
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

/// Everything a connection task of this worker can reach: one config version.
pub struct WorkerCtx {
    pub index: usize,
    /// Config version: 1 at start, +1 per reload.
    pub version: u64,
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
    pub pipes: Rc<PipePool>,
    /// How each listener forwards bytes (tcp listeners; `Copy` for http ones, unused).
    pub l4_paths: Vec<Path>,
    pub conns: Rc<Connections>,
    /// Set when the worker drains: idle connections close, busy ones finish their request.
    pub drain: Rc<Latch>,
    /// This worker's metrics (outlives versions) and where this version's series count in it.
    pub metrics: Rc<Shard>,
    pub slots: Slots,
    /// The drain is a handover to an upgraded process (see `Control::Handover`).
    pub handover: Rc<Cell<bool>>,
    /// Access log lines and request ids (per worker, shared by its config versions).
    pub access: Rc<crate::log::access::WorkerLog>,
    /// The version that replaced this one, with the listener renumbering (old → new index).
    successor: RefCell<Option<Successor>>,
    /// TLS listeners' server configs and this worker's upstream connectors.
    pub tls: crate::tls::WorkerTls,
}

/// A newer version and, per listener index of the older one, its index in the newer (`None`:
/// removed).
type Successor = (Rc<WorkerCtx>, Vec<Option<usize>>);

impl WorkerCtx {
    /// Builds this worker's context for `config`, taking the long-lived parts from `base`.
    fn build(
        index: usize,
        version: u64,
        config: Arc<Config>,
        shared: Arc<super::shared::Shared>,
        base: Base,
    ) -> WorkerCtx {
        let l4_paths = forwarding_paths(&config, &base.pipes, index);
        let slots = base.metrics.slots(&config);
        WorkerCtx {
            index,
            version,
            l4_paths,
            routes: RouteTable::new(&config),
            route_state: RefCell::new(crate::proxy::RouteState::build(&config, &shared, index)),
            auth_cache: RefCell::new(crate::auth::AuthCache::new()),
            upstreams: RefCell::new(crate::upstream::build(
                &config,
                index,
                &base.metrics,
                &slots,
            )),
            pipes: base.pipes,
            bufs: base.bufs,
            conns: base.conns,
            drain: base.drain,
            metrics: base.metrics,
            slots,
            handover: base.handover,
            access: base.access,
            tls: crate::tls::WorkerTls::new(&shared.tls, index),
            config,
            shared,
            successor: RefCell::new(None),
        }
    }

    /// Where the request path counts: this worker's shard, through this version's slots.
    pub fn record(&self) -> Recorder<'_> {
        Recorder {
            shard: &self.metrics,
            slots: &self.slots,
        }
    }

    /// The newest version and the listener's index in it; `None` when that listener is gone.
    pub fn latest(self: &Rc<Self>, listener: usize) -> Option<(Rc<WorkerCtx>, usize)> {
        let mut ctx = self.clone();
        let mut li = listener;
        loop {
            let next = match &*ctx.successor.borrow() {
                None => return Some((ctx.clone(), li)),
                Some((next, map)) => {
                    li = (*map.get(li)?)?;
                    next.clone()
                }
            };
            ctx = next;
        }
    }
}

/// The parts of a worker that outlive config versions.
struct Base {
    pipes: Rc<PipePool>,
    bufs: Rc<BufferPool>,
    conns: Rc<Connections>,
    drain: Rc<Latch>,
    metrics: Rc<Shard>,
    handover: Rc<Cell<bool>>,
    access: Rc<crate::log::access::WorkerLog>,
}

/// The worker's current version, read by accept loops and housekeeping at each turn.
pub struct Shell {
    current: RefCell<Rc<WorkerCtx>>,
}

impl Shell {
    pub fn current(&self) -> Rc<WorkerCtx> {
        self.current.borrow().clone()
    }
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
    let first = WorkerCtx::build(
        index,
        1,
        config.clone(),
        shared,
        Base {
            pipes: Rc::new(PipePool::default()),
            bufs: Rc::new(BufferPool::default()),
            conns: Connections::new(
                config.runtime.max_connections_per_worker,
                config.listeners.len(),
            ),
            drain: Rc::new(Latch::default()),
            metrics: Shard::new(),
            handover: Rc::default(),
            access: Rc::new(access),
        },
    );
    // Runs through the drain too (connections finishing then are logged), until `close`.
    let log_flusher = monoio::spawn(crate::log::access::flush_every_interval(
        first.access.clone(),
    ));
    let shell = Rc::new(Shell {
        current: RefCell::new(Rc::new(first)),
    });
    let cpu = pinned.map_or_else(|| "unpinned".to_string(), |c| c.to_string());
    match &selection.fallback_reason {
        None => info!(worker = index, cpu = %cpu, driver = %selection.driver, "worker started"),
        Some(why) => warn!(worker = index, cpu = %cpu, driver = %selection.driver, reason = %why,
            "worker started on epoll: io_uring unavailable"),
    }
    let mut accepts: Vec<accept::Slot> = sockets
        .into_iter()
        .map(|(li, l)| accept::Slot::spawn(shell.clone(), li, l))
        .collect();
    let _ = started.send(Ok(()));
    drop(started);
    let sweeper = monoio::spawn(sweep_pools(shell.clone()));
    let rebalancer = monoio::spawn(rebalance_limits(shell.clone()));

    // Until told to drain (or the main thread is gone: the channel closed), apply reloads and
    // answer scrapes.
    loop {
        match std::future::poll_fn(|cx| Pin::new(&mut control).poll_next(cx)).await {
            Some(Control::Reload(r)) => {
                if let Err(e) = reload(&shell, &mut accepts, *r) {
                    warn!(worker = index, error = %e, "reload failed on this worker");
                }
            }
            Some(Control::Scrape(reply)) => {
                let _ = reply.send(Snapshot::take(&shell.current(), pinned, selection.driver));
            }
            Some(Control::Handover) => {
                shell.current().handover.set(true);
                break;
            }
            Some(Control::Drain) | None => break,
        }
    }
    let ctx = shell.current();
    ctx.drain.set();
    for a in accepts {
        a.join().await;
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
    let (handshakes, failed) = crate::tls::handshake_counts();
    if handshakes + failed > 0 {
        info!(worker = index, handshakes, failed, "TLS handshakes");
    }
    info!(worker = index, "worker stopped");
}

/// Switches this worker to the version in `r` and acknowledges it.
fn reload(shell: &Rc<Shell>, accepts: &mut Vec<accept::Slot>, r: Reload) -> Result<(), String> {
    let old = shell.current();
    let kept: Vec<Option<usize>> = r
        .listeners
        .iter()
        .map(|c| match c {
            ListenerChange::Keep(o) => Some(*o),
            ListenerChange::New(_) => None,
        })
        .collect();
    let mut next = WorkerCtx::build(
        old.index,
        r.version,
        r.config.clone(),
        r.shared.clone(),
        Base {
            pipes: old.pipes.clone(),
            bufs: old.bufs.clone(),
            conns: old.conns.clone(),
            drain: old.drain.clone(),
            metrics: old.metrics.clone(),
            handover: old.handover.clone(),
            access: old.access.clone(),
        },
    );
    carry_pools(&old, &mut next);
    let next = Rc::new(next);
    // Old index → new index, for connections that move to the new version between requests.
    let mut renumber = vec![None; old.config.listeners.len()];
    for (new_i, k) in kept.iter().enumerate() {
        if let Some(o) = k.filter(|&o| o < renumber.len()) {
            renumber[o] = Some(new_i);
        }
    }
    old.conns.remap(&kept);
    // Listeners: kept ones continue under their new index, dropped ones stop, new ones start.
    let mut slots = std::mem::take(accepts);
    let mut result = Ok(());
    for (new_i, change) in r.listeners.into_iter().enumerate() {
        match change {
            ListenerChange::Keep(o) => {
                // A listener may have several sockets here (inherited from an upgrade).
                while let Some(pos) = slots.iter().position(|s| s.index() == o) {
                    let slot = slots.swap_remove(pos);
                    slot.renumber(new_i);
                    accepts.push(slot);
                }
            }
            ListenerChange::New(sock) => match monoio::net::TcpListener::from_std(sock) {
                Ok(l) => accepts.push(accept::Slot::spawn(shell.clone(), new_i, l)),
                Err(e) => result = Err(format!("cannot register listener {new_i}: {e}")),
            },
        }
    }
    for gone in slots {
        gone.stop();
    }
    *old.successor.borrow_mut() = Some((next.clone(), renumber));
    *shell.current.borrow_mut() = next;
    let _ = r.done.send(result.clone());
    result
}

/// Moves the idle keep-alive connections of upstreams whose endpoints did not change.
fn carry_pools(old: &WorkerCtx, next: &mut WorkerCtx) {
    let mut old_states = old.upstreams.borrow_mut();
    let next_states = next.upstreams.get_mut();
    for (ni, nu) in next.config.upstreams.iter().enumerate() {
        let same = old.config.upstreams.iter().position(|ou| {
            ou.name == nu.name
                && ou.endpoints.len() == nu.endpoints.len()
                && ou
                    .endpoints
                    .iter()
                    .zip(&nu.endpoints)
                    .all(|(a, b)| a.addr == b.addr)
        });
        if let Some(oi) = same {
            std::mem::swap(&mut old_states[oi].pool, &mut next_states[ni].pool);
        }
    }
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
/// `REBALANCE_INTERVAL` (a no-op turn while no route has a rate limit).
async fn rebalance_limits(shell: Rc<Shell>) {
    let drain = shell.current().drain.clone();
    loop {
        monoio::select! {
            _ = monoio::time::sleep(crate::policy::ratelimit::REBALANCE_INTERVAL) => {},
            _ = drain.wait() => return,
        }
        let ctx = shell.current();
        let now = std::time::Instant::now();
        for st in ctx.route_state.borrow_mut().iter_mut() {
            if let Some(l) = st.limiter.as_mut() {
                l.rebalance(now);
            }
        }
    }
}

/// Closes expired idle upstream connections until the worker drains.
async fn sweep_pools(shell: Rc<Shell>) {
    let drain = shell.current().drain.clone();
    loop {
        monoio::select! {
            _ = monoio::time::sleep(POOL_SWEEP_INTERVAL) => {},
            _ = drain.wait() => return,
        }
        let ctx = shell.current();
        let now = std::time::Instant::now();
        for st in ctx.upstreams.borrow_mut().iter_mut() {
            st.pool.sweep(now);
        }
    }
}
