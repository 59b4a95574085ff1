//! The process: pick the driver, bind listeners, start one pinned worker per core, then turn
//! signals into control messages until the workers have drained.

mod accept;
pub mod buffers;
pub mod connections;
pub mod driver;
mod listener;
pub mod notify;
pub mod sd_notify;
pub mod shared;
pub mod supervisor;
pub mod upgrade;
pub mod worker;

use crate::config::Config;
use futures_channel::mpsc::{unbounded, UnboundedSender};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;
use std::sync::Arc;
use std::time::Duration;
use supervisor::Command;
use tracing::{error, info, warn};
use worker::{Control, WorkerSpec};

/// How long workers get to build their runtimes and register sockets.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the access log writer gets, after the workers stopped, to write their last lines.
pub const ACCESS_LOG_FINISH: Duration = Duration::from_secs(2);

/// CPUs this process may run on (its affinity mask, so `taskset` and cpusets are respected).
pub fn allowed_cpus() -> Vec<core_affinity::CoreId> {
    core_affinity::get_core_ids().unwrap_or_default()
}

/// Runs the gateway until SIGTERM/SIGINT and a graceful drain; `Err` is a start-up failure.
pub fn run(config: Config) -> Result<(), String> {
    let started = std::time::SystemTime::now();
    let config = Arc::new(config);
    let cpus = allowed_cpus();
    let workers = match config.runtime.workers {
        0 => cpus.len().max(1),
        n => n,
    };
    let selection = driver::select(config.runtime.driver)?;
    let mut inherited = upgrade::Inherited::from_env();
    // The admin socket first: after a binary upgrade it is among the inherited ones.
    let admin_socket = match &config.admin {
        Some(a) => Some(crate::admin::bind(
            a.listen,
            inherited.take(a.listen).into_iter().next(),
        )?),
        None => None,
    };
    let mut bound = listener::bind_all(&config, workers, &mut inherited)?;
    // Copies of every listening socket, for a binary upgrade to hand over.
    let copies = config
        .listeners
        .iter()
        .zip(&bound)
        .map(|(l, b)| {
            let fds = b
                .sockets
                .iter()
                .map(upgrade::dup)
                .collect::<Result<Vec<_>, _>>();
            fds.map(|f| (l.bind, f))
                .map_err(|e| format!("cannot duplicate a listening socket: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Socket j of a listener goes to worker j mod workers (inherited sets may be larger).
    let mut per_worker: Vec<Vec<(usize, std::net::TcpListener)>> =
        (0..workers).map(|_| Vec::new()).collect();
    for (li, b) in bound.iter_mut().enumerate() {
        for (j, sock) in b.sockets.drain(..).enumerate() {
            per_worker[j % workers].push((li, sock));
        }
    }
    let mut per_worker = per_worker.into_iter();
    let shared = shared::Shared::start(&config, workers)?;
    let access = crate::log::access::start(&config.log, workers)?;
    let mut worker_logs = access.workers.into_iter();
    // Registered before any worker starts, so a signal during start-up is not lost.
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;

    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let mut controls: Vec<UnboundedSender<Control>> = Vec::with_capacity(workers);
    let mut handles = Vec::with_capacity(workers);
    for index in 0..workers {
        let (tx, rx) = unbounded();
        controls.push(tx);
        let spec = WorkerSpec {
            index,
            cpu: (!cpus.is_empty()).then(|| cpus[index % cpus.len()]),
            selection: selection.clone(),
            config: config.clone(),
            shared: shared.clone(),
            listeners: per_worker.next().unwrap_or_default(),
            control: rx,
            started: started_tx.clone(),
            access: worker_logs.next().expect("one access log per worker"),
        };
        let handle = std::thread::Builder::new()
            .name(format!("coregate-w{index}"))
            .spawn(move || worker::run(spec))
            .map_err(|e| format!("cannot start worker thread {index}: {e}"))?;
        handles.push(handle);
    }
    drop(started_tx);

    let drain_all = |controls: &[UnboundedSender<Control>]| {
        for c in controls {
            let _ = c.unbounded_send(Control::Drain);
        }
    };
    for _ in 0..workers {
        let failure = match started_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(_) => "a worker did not start in time".to_string(),
        };
        drain_all(&controls);
        for h in handles {
            let _ = h.join();
        }
        return Err(failure);
    }
    for b in &bound {
        info!(listener = %b.name, addr = %b.addr, workers, "listening");
    }
    let (commands, command_rx) = std::sync::mpsc::channel();
    let mut admin_link = None;
    if let (Some(listener), Some(admin)) = (admin_socket, &config.admin) {
        let (stop, stop_rx) = futures_channel::oneshot::channel();
        let started_admin = upgrade::dup(&listener)
            .map_err(|e| format!("cannot duplicate the admin socket: {e}"))
            .and_then(|copy| {
                admin_link = Some(supervisor::AdminLink {
                    config: admin.clone(),
                    socket: (admin.listen, vec![copy]),
                    stop,
                });
                crate::admin::start(crate::admin::Spec {
                    listener,
                    token: admin.token.clone(),
                    controls: controls.clone(),
                    commands: commands.clone(),
                    started,
                    stop: stop_rx,
                })
            });
        if let Err(e) = started_admin {
            drain_all(&controls);
            for h in handles {
                let _ = h.join();
            }
            return Err(e);
        }
    }
    info!(workers, driver = %selection.driver, config = %config.source, "coregate ready");

    sd_notify::notify("READY=1");
    upgrade::take_over();
    let access_writer = access.writer;
    let reopen = access_writer.as_ref().map(|w| w.reopen_handle());
    let supervisor =
        supervisor::Supervisor::new(config.clone(), shared, workers, controls, copies, reopen)
            .with_admin(admin_link);
    let supervisor_thread = std::thread::Builder::new()
        .name("coregate-main".into())
        .spawn(move || supervisor.run(command_rx))
        .map_err(|e| format!("cannot start the supervisor thread: {e}"))?;
    let signal_handle = signals.handle();
    let signal_commands = commands.clone();
    let signal_thread = std::thread::Builder::new()
        .name("coregate-signals".into())
        .spawn(move || {
            let mut draining = false;
            for sig in signals.forever() {
                let cmd = match sig {
                    SIGTERM | SIGINT | SIGQUIT if draining => {
                        warn!("second stop signal: exiting without waiting for connections");
                        std::process::exit(1);
                    }
                    SIGTERM | SIGINT => {
                        draining = true;
                        info!(
                            signal = sig,
                            "stopping: no new connections; open ones may finish"
                        );
                        Command::Stop { handover: false }
                    }
                    SIGQUIT => {
                        draining = true;
                        info!("SIGQUIT: handing over to the upgraded process; draining");
                        Command::Stop { handover: true }
                    }
                    SIGHUP => {
                        info!("SIGHUP: reloading the config");
                        Command::Reload(None)
                    }
                    SIGUSR1 => Command::ReopenLogs,
                    SIGUSR2 => {
                        info!("SIGUSR2: starting the new binary with the listening sockets");
                        Command::Upgrade
                    }
                    _ => continue,
                };
                let _ = signal_commands.send(cmd);
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    drop(commands);

    let mut panicked = 0;
    for h in handles {
        if h.join().is_err() {
            panicked += 1;
        }
    }
    signal_handle.close();
    let _ = signal_thread.join();
    let _ = supervisor_thread.join();
    if let Some(w) = access_writer {
        w.finish(ACCESS_LOG_FINISH);
    }
    if panicked > 0 {
        error!(panicked, "workers ended abnormally");
        return Err(format!("{panicked} worker(s) ended abnormally"));
    }
    info!("coregate stopped");
    Ok(())
}
