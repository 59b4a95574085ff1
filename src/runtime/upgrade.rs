//! Zero-downtime binary upgrade, nginx style: SIGUSR2 makes the running process start the binary
//! now installed at its path as a child that *inherits* the listening sockets (the same kernel
//! sockets, so nothing waiting in an accept queue is lost). The child starts with the same
//! arguments; once every one of its workers listens it tells systemd its pid (`MAINPID=`) and
//! sends SIGQUIT to the old process, which stops accepting, drains (giving idle kept-alive
//! connections a moment for one last request) and exits. If the child fails
//! before that, the old process keeps serving and logs why.
//!
//! The sockets travel as inherited descriptors listed in `COREGATE_INHERIT`
//! (`addr=fd,fd;addr=fd`), the old pid in `COREGATE_UPGRADE_PARENT`.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;
use tracing::{error, info, warn};

/// Environment variable listing inherited listening sockets.
pub const INHERIT_ENV: &str = "COREGATE_INHERIT";
/// Descriptors marked close-on-exec one by one where `close_range` is missing.
pub const MAX_FD_SCAN: i32 = 65_536;
/// Environment variable naming the process to stop once the new one is ready.
pub const PARENT_ENV: &str = "COREGATE_UPGRADE_PARENT";

/// Listening sockets handed over by the process we replace, by bind address.
#[derive(Default)]
pub struct Inherited {
    by_addr: HashMap<SocketAddr, Vec<TcpListener>>,
}

impl Inherited {
    /// Reads (and clears) `COREGATE_INHERIT`; descriptors that are not listening TCP sockets are
    /// ignored with a warning.
    pub fn from_env() -> Inherited {
        let Some(spec) = std::env::var_os(INHERIT_ENV) else {
            return Inherited::default();
        };
        std::env::remove_var(INHERIT_ENV);
        let mut by_addr: HashMap<SocketAddr, Vec<TcpListener>> = HashMap::new();
        for entry in spec.to_string_lossy().split(';').filter(|e| !e.is_empty()) {
            let Some((addr, fds)) = entry.split_once('=') else {
                continue;
            };
            let Ok(addr) = addr.parse::<SocketAddr>() else {
                warn!(entry, "ignoring a malformed inherited socket entry");
                continue;
            };
            for fd in fds.split(',').filter_map(|f| f.parse::<RawFd>().ok()) {
                // SAFETY: the parent listed this descriptor as an open listening socket it left
                // open across exec for us; nothing else in this process owns it.
                let sock = unsafe { TcpListener::from_raw_fd(fd) };
                match sock.local_addr() {
                    Ok(a) if a == addr || addr.port() == 0 => {
                        by_addr.entry(addr).or_default().push(sock)
                    }
                    _ => {
                        warn!(fd, %addr, "ignoring an inherited descriptor that is not that socket")
                    }
                }
            }
        }
        Inherited { by_addr }
    }

    /// The inherited sockets of `addr`, if any (each taken once).
    pub fn take(&mut self, addr: SocketAddr) -> Vec<TcpListener> {
        self.by_addr.remove(&addr).unwrap_or_default()
    }

    /// Sockets nobody claimed (a listener the new config dropped): closed now.
    pub fn close_rest(self) {
        for (addr, socks) in self.by_addr {
            info!(%addr, sockets = socks.len(), "inherited listener not in the config: closed");
        }
    }
}

/// Duplicates of every listening socket, kept by the supervisor to hand to a successor.
pub type SocketCopies = Vec<(SocketAddr, Vec<OwnedFd>)>;

/// Starts the successor process with the listening sockets; returns its pid.
pub fn spawn_successor<'a>(
    sockets: impl IntoIterator<Item = &'a (SocketAddr, Vec<OwnedFd>)>,
) -> Result<u32, String> {
    let exe = current_binary()?;
    let mut spec = String::new();
    let mut fds = Vec::new();
    for (addr, socks) in sockets {
        let list: Vec<String> = socks.iter().map(|s| s.as_raw_fd().to_string()).collect();
        fds.extend(socks.iter().map(|s| s.as_raw_fd()));
        spec.push_str(&format!("{addr}={};", list.join(",")));
    }
    let mut cmd = Command::new(&exe);
    cmd.args(std::env::args_os().skip(1))
        .env(INHERIT_ENV, spec)
        .env(PARENT_ENV, std::process::id().to_string());
    // SAFETY: between fork and exec only close_range/fcntl run (async-signal-safe): every
    // descriptor from 3 up is marked close-on-exec (client connections, rings and pipes must not
    // leak into the new process, or closing them here would not close them), then the listening
    // sockets to hand over are cleared of it.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            if libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            ) != 0
            {
                // Kernels before 5.11: mark them one by one.
                for fd in 3..MAX_FD_SCAN {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            for &fd in &fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let pid = child.id();
    // Reap the child: if it dies before taking over, say so (the old process keeps serving).
    std::thread::Builder::new()
        .name("coregate-upgrade".into())
        .spawn(move || match child.wait() {
            Ok(s) if s.success() => info!(pid, "the upgraded process exited normally"),
            Ok(s) => error!(pid, status = %s, "the upgraded process failed; this one keeps serving unless it was told to stop"),
            Err(e) => error!(pid, error = %e, "cannot wait for the upgraded process"),
        })
        .map_err(|e| format!("cannot watch the new process: {e}"))?;
    Ok(pid)
}

/// The path of the binary to start: this executable's path, which after `install` or a package
/// upgrade holds the new binary (`/proc/self/exe` of a replaced file ends in " (deleted)").
fn current_binary() -> Result<std::path::PathBuf, String> {
    let link =
        std::fs::read_link("/proc/self/exe").map_err(|e| format!("cannot find my binary: {e}"))?;
    let text = link.to_string_lossy();
    Ok(std::path::PathBuf::from(
        text.strip_suffix(" (deleted)").unwrap_or(&text).to_string(),
    ))
}

/// In a successor, once ready: tell systemd the new main pid and stop the old process.
pub fn take_over() {
    let Some(parent) = std::env::var_os(PARENT_ENV) else {
        return;
    };
    std::env::remove_var(PARENT_ENV);
    let Some(pid) = parent.to_str().and_then(|p| p.parse::<i32>().ok()) else {
        return;
    };
    super::sd_notify::notify(&format!("MAINPID={}\nREADY=1", std::process::id()));
    // SAFETY: kill(2) has no memory-safety preconditions; the pid came from our parent.
    if unsafe { libc::kill(pid, libc::SIGQUIT) } == 0 {
        info!(
            old_pid = pid,
            "upgrade: ready; the old process was told to drain and exit"
        );
    } else {
        warn!(old_pid = pid, error = %std::io::Error::last_os_error(), "upgrade: cannot signal the old process");
    }
}

/// Duplicates a socket for the supervisor's copies.
pub fn dup(sock: &TcpListener) -> std::io::Result<OwnedFd> {
    sock.try_clone().map(OwnedFd::from)
}
