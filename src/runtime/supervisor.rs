//! The main thread's side of a running gateway: it owns the config version, turns signals (and
//! admin requests) into commands, and carries out reloads.
//!
//! A reload reads and checks the whole file first: an invalid file changes nothing and the error
//! is logged (and returned to whoever asked). A valid one becomes a new version: listeners with
//! the same bind address keep their sockets (no connection in their accept queues is lost), new
//! ones are bound before anything changes, the shared state (health prober, auth chains, rate
//! shares) is built anew, and every worker switches over; the old prober is then retired.

use super::listener;
use super::sd_notify;
use super::shared::Shared;
use super::upgrade::{self, SocketCopies};
use super::worker::{Control, ListenerChange, Reload};
use crate::config::Config;
use futures_channel::mpsc::UnboundedSender;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};

/// How long workers get to acknowledge a new version.
pub const RELOAD_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// What the supervisor can be asked to do.
pub enum Command {
    /// Drain and stop (SIGTERM/SIGINT); `handover` when an upgraded process took the sockets
    /// (SIGQUIT from it).
    Stop { handover: bool },
    /// Re-read the config file; the reply carries the new version or why not.
    Reload(Option<Sender<Result<u64, String>>>),
    /// SIGUSR1: reopen log files.
    ReopenLogs,
    /// SIGUSR2: start the installed binary with our listening sockets; it stops us when ready.
    Upgrade,
}

pub struct Supervisor {
    path: Option<PathBuf>,
    workers: usize,
    controls: Vec<UnboundedSender<Control>>,
    config: Arc<Config>,
    shared: Arc<Shared>,
    /// Bind address of each current listener, in config order.
    binds: Vec<SocketAddr>,
    /// Asks the access log writer to reopen its file; `None` when the access log is off.
    access_log: Option<crate::log::writer::Reopen>,
    /// Copies of each current listener's sockets, for a binary upgrade.
    sockets: SocketCopies,
    version: u64,
    /// The admin listener, when there is one.
    admin: Option<AdminLink>,
}

/// What the supervisor keeps of the admin listener: its config as started (it is not
/// reloadable), a copy of its socket for a binary upgrade to inherit, and the signal that stops
/// it accepting once a successor serves that socket.
pub struct AdminLink {
    pub config: crate::config::AdminConfig,
    pub socket: (SocketAddr, Vec<std::os::fd::OwnedFd>),
    pub stop: futures_channel::oneshot::Sender<()>,
}

impl Supervisor {
    pub fn new(
        config: Arc<Config>,
        shared: Arc<Shared>,
        workers: usize,
        controls: Vec<UnboundedSender<Control>>,
        sockets: SocketCopies,
        access_log: Option<crate::log::writer::Reopen>,
    ) -> Supervisor {
        let path =
            (config.source != crate::demo::DEMO_SOURCE).then(|| PathBuf::from(&config.source));
        Supervisor {
            path,
            workers,
            controls,
            binds: config.listeners.iter().map(|l| l.bind).collect(),
            admin: None,
            sockets,
            access_log,
            config,
            shared,
            version: 1,
        }
    }

    /// Adds the admin listener (started by `runtime::run`).
    pub fn with_admin(mut self, admin: Option<AdminLink>) -> Supervisor {
        self.admin = admin;
        self
    }

    /// Serves commands until asked to stop (or every sender is gone).
    pub fn run(mut self, commands: Receiver<Command>) {
        let mut handover = false;
        while let Ok(cmd) = commands.recv() {
            match cmd {
                Command::Stop { handover: h } => {
                    handover = h;
                    break;
                }
                Command::Reload(reply) => {
                    sd_notify::reloading();
                    let result = self.reload();
                    sd_notify::notify("READY=1");
                    match &result {
                        Ok(v) => {
                            info!(version = v, config = %self.config.source, "config reloaded")
                        }
                        Err(e) => {
                            error!(error = %e, "reload refused; the running config is unchanged")
                        }
                    }
                    if let Some(reply) = reply {
                        let _ = reply.send(result);
                    }
                }
                Command::ReopenLogs => match self.access_log.as_ref().filter(|r| r.reopen()) {
                    Some(_) => info!("SIGUSR1: reopening the access log"),
                    None => info!("SIGUSR1: no log files open to reopen"),
                },
                Command::Upgrade => match upgrade::spawn_successor(
                    self.sockets
                        .iter()
                        .chain(self.admin.as_ref().map(|a| &a.socket)),
                ) {
                    Ok(pid) => info!(
                        pid,
                        "upgrade: new process started; it stops this one once ready"
                    ),
                    Err(e) => error!(error = %e, "upgrade failed; this process keeps serving"),
                },
            }
        }
        // On a handover the successor already told systemd it is the main process now; a
        // STOPPING=1 from us would make systemd stop the service it runs.
        if !handover {
            sd_notify::notify("STOPPING=1");
        }
        // The successor serves the admin socket now: this process stops taking its connections
        // (on a plain stop it keeps answering, /healthz saying 503, until the process exits).
        if let Some(admin) = self.admin.take().filter(|_| handover) {
            let _ = admin.stop.send(());
        }
        for c in &self.controls {
            let _ = c.unbounded_send(if handover {
                Control::Handover
            } else {
                Control::Drain
            });
        }
    }

    /// Loads, checks and installs the config file as a new version.
    fn reload(&mut self) -> Result<u64, String> {
        let Some(path) = &self.path else {
            return Err("the embedded demo config cannot be reloaded".to_string());
        };
        let config = Config::load(path).map_err(|e| e.to_string())?;
        let missing = config.not_yet_enforced();
        if !missing.is_empty() {
            return Err(format!(
                "this build does not enforce {} yet",
                missing.join(", ")
            ));
        }
        if config.runtime.workers != self.config.runtime.workers
            || config.runtime.driver != self.config.runtime.driver
            || config.runtime.pin != self.config.runtime.pin
        {
            warn!("runtime.workers, driver and pin take effect at the next start, not on reload");
        }
        if config.admin.as_ref() != self.admin.as_ref().map(|a| &a.config) {
            warn!("[admin] changed: the admin listener keeps its address and token until the next start");
        }
        if config.log.access_log != self.config.log.access_log
            || config.log.access_format != self.config.log.access_format
        {
            warn!("log.access_log and access_format take effect at the next start, not on reload");
        }
        let config = Arc::new(config);
        // Keep the sockets of listeners whose address did not change; bind the others first.
        let mut changes: Vec<Vec<ListenerChange>> = (0..self.workers).map(|_| Vec::new()).collect();
        // Per new listener: copies of newly bound sockets (kept ones reuse the old copies).
        let mut copies: Vec<Option<(SocketAddr, Vec<OwnedFd>)>> = Vec::new();
        for l in &config.listeners {
            match self.binds.iter().position(|b| *b == l.bind) {
                Some(old) => {
                    for c in changes.iter_mut() {
                        c.push(ListenerChange::Keep(old));
                    }
                    copies.push(None);
                }
                None => {
                    let bound = listener::bind_one(l, self.workers, &mut Default::default())?;
                    let dups = bound
                        .sockets
                        .iter()
                        .map(upgrade::dup)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| format!("cannot duplicate a socket: {e}"))?;
                    copies.push(Some((l.bind, dups)));
                    for (c, sock) in changes.iter_mut().zip(bound.sockets) {
                        c.push(ListenerChange::New(sock));
                    }
                }
            }
        }
        let shared = Shared::start(&config, self.workers)?;
        let version = self.version + 1;
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        for (control, listeners) in self.controls.iter().zip(changes) {
            let reload = Reload {
                version,
                config: config.clone(),
                shared: shared.clone(),
                listeners,
                done: done_tx.clone(),
            };
            if control
                .unbounded_send(Control::Reload(Box::new(reload)))
                .is_err()
            {
                return Err("a worker is gone".to_string());
            }
        }
        for _ in 0..self.workers {
            match done_rx.recv_timeout(RELOAD_ACK_TIMEOUT) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, "a worker could not take every listener"),
                Err(_) => warn!("a worker did not acknowledge the reload in time"),
            }
        }
        self.shared.health.retire();
        let mut old_copies: Vec<Option<(SocketAddr, Vec<OwnedFd>)>> =
            std::mem::take(&mut self.sockets)
                .into_iter()
                .map(Some)
                .collect();
        self.sockets = copies
            .into_iter()
            .zip(&config.listeners)
            .filter_map(|(c, l)| {
                c.or_else(|| {
                    let old = self.binds.iter().position(|b| *b == l.bind)?;
                    old_copies.get_mut(old)?.take()
                })
            })
            .collect();
        self.binds = config.listeners.iter().map(|l| l.bind).collect();
        self.config = config;
        self.shared = shared;
        self.version = version;
        Ok(version)
    }
}
