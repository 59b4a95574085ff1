//! The process: pick the driver, bind listeners, start one pinned worker per core, then turn
//! signals into control messages until the workers have drained.

pub mod buffers;
pub mod connections;
pub mod driver;
mod listener;
pub mod notify;
pub mod shared;
pub mod worker;

use crate::config::Config;
use futures_channel::mpsc::{unbounded, UnboundedSender};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};
use worker::{Control, WorkerSpec};

/// How long workers get to build their runtimes and register sockets.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// CPUs this process may run on (its affinity mask, so `taskset` and cpusets are respected).
pub fn allowed_cpus() -> Vec<core_affinity::CoreId> {
    core_affinity::get_core_ids().unwrap_or_default()
}

/// Runs the gateway until SIGTERM/SIGINT and a graceful drain; `Err` is a start-up failure.
pub fn run(config: Config) -> Result<(), String> {
    let config = Arc::new(config);
    let cpus = allowed_cpus();
    let workers = match config.runtime.workers {
        0 => cpus.len().max(1),
        n => n,
    };
    let selection = driver::select(config.runtime.driver)?;
    let mut bound = listener::bind_all(&config, workers)?;
    let shared = shared::Shared::start(&config, workers)?;
    // Registered before any worker starts, so a signal during start-up is not lost.
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1])
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
            listeners: bound
                .iter_mut()
                .enumerate()
                .map(|(li, b)| (li, b.sockets.remove(0)))
                .collect(),
            control: rx,
            started: started_tx.clone(),
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
    info!(workers, driver = %selection.driver, config = %config.source, "coregate ready");

    let signal_handle = signals.handle();
    let reload_shared = shared.clone();
    let signal_thread = std::thread::Builder::new()
        .name("coregate-signals".into())
        .spawn(move || {
            let mut draining = false;
            for sig in signals.forever() {
                match sig {
                    SIGTERM | SIGINT if draining => {
                        warn!("second stop signal: exiting without waiting for connections");
                        std::process::exit(1);
                    }
                    SIGTERM | SIGINT => {
                        draining = true;
                        info!(
                            signal = sig,
                            "stopping: no new connections; open ones may finish"
                        );
                        drain_all(&controls);
                    }
                    SIGHUP => {
                        // Certificates only for now; the rest of the config needs a restart.
                        info!("SIGHUP: re-reading TLS certificates; the rest of the config is unchanged");
                        reload_shared.tls.reload();
                    }
                    SIGUSR1 => info!("SIGUSR1: no log files open to reopen"),
                    _ => {}
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;

    let mut panicked = 0;
    for h in handles {
        if h.join().is_err() {
            panicked += 1;
        }
    }
    signal_handle.close();
    let _ = signal_thread.join();
    if panicked > 0 {
        error!(panicked, "workers ended abnormally");
        return Err(format!("{panicked} worker(s) ended abnormally"));
    }
    info!("coregate stopped");
    Ok(())
}
