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
use super::worker::{Control, ListenerChange, Reload};
use crate::config::Config;
use futures_channel::mpsc::UnboundedSender;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};

/// How long workers get to acknowledge a new version.
pub const RELOAD_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// What the supervisor can be asked to do.
pub enum Command {
    /// Drain and stop (SIGTERM/SIGINT).
    Stop,
    /// Re-read the config file; the reply carries the new version or why not.
    Reload(Option<Sender<Result<u64, String>>>),
    /// SIGUSR1: reopen log files.
    ReopenLogs,
}

pub struct Supervisor {
    path: Option<PathBuf>,
    workers: usize,
    controls: Vec<UnboundedSender<Control>>,
    config: Arc<Config>,
    shared: Arc<Shared>,
    /// Bind address of each current listener, in config order.
    binds: Vec<SocketAddr>,
    version: u64,
    /// The admin listener as started (not reloadable).
    admin: Option<crate::config::AdminConfig>,
}

impl Supervisor {
    pub fn new(
        config: Arc<Config>,
        shared: Arc<Shared>,
        workers: usize,
        controls: Vec<UnboundedSender<Control>>,
    ) -> Supervisor {
        let path =
            (config.source != crate::demo::DEMO_SOURCE).then(|| PathBuf::from(&config.source));
        Supervisor {
            path,
            workers,
            controls,
            binds: config.listeners.iter().map(|l| l.bind).collect(),
            admin: config.admin.clone(),
            config,
            shared,
            version: 1,
        }
    }

    /// Serves commands until asked to stop (or every sender is gone).
    pub fn run(mut self, commands: Receiver<Command>) {
        while let Ok(cmd) = commands.recv() {
            match cmd {
                Command::Stop => break,
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
                Command::ReopenLogs => info!("SIGUSR1: no log files open to reopen"),
            }
        }
        sd_notify::notify("STOPPING=1");
        for c in &self.controls {
            let _ = c.unbounded_send(Control::Drain);
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
        if config.admin != self.admin {
            warn!("[admin] changed: the admin listener keeps its address and token until the next start");
        }
        let config = Arc::new(config);
        // Keep the sockets of listeners whose address did not change; bind the others first.
        let mut changes: Vec<Vec<ListenerChange>> = (0..self.workers).map(|_| Vec::new()).collect();
        for l in &config.listeners {
            match self.binds.iter().position(|b| *b == l.bind) {
                Some(old) => changes
                    .iter_mut()
                    .for_each(|c| c.push(ListenerChange::Keep(old))),
                None => {
                    let bound = listener::bind_one(l, self.workers)?;
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
        self.binds = config.listeners.iter().map(|l| l.bind).collect();
        self.config = config;
        self.shared = shared;
        self.version = version;
        Ok(version)
    }
}
