//! Chooses the I/O driver: io_uring when the kernel lets us use it, epoll otherwise, with the reason.

use crate::config::DriverChoice;
use std::fmt;

/// The driver a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    IoUring,
    Epoll,
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Driver::IoUring => "io_uring",
            Driver::Epoll => "epoll",
        })
    }
}

/// The outcome of driver selection, shared by all workers (the kernel answers the same for each).
#[derive(Debug, Clone)]
pub struct Selection {
    pub driver: Driver,
    /// Why io_uring was not used, when `auto` fell back to epoll.
    pub fallback_reason: Option<String>,
}

/// Environment variable (monoio's own) that forces the epoll driver.
pub const FORCE_LEGACY_ENV: &str = "MONOIO_FORCE_LEGACY_DRIVER";

/// Picks the driver for `choice`; `Err` only when io_uring was demanded and cannot be had.
pub fn select(choice: DriverChoice) -> Result<Selection, String> {
    match choice {
        DriverChoice::Epoll => Ok(Selection {
            driver: Driver::Epoll,
            fallback_reason: None,
        }),
        DriverChoice::IoUring => match probe_io_uring() {
            Ok(()) => Ok(Selection {
                driver: Driver::IoUring,
                fallback_reason: None,
            }),
            Err(why) => Err(format!(
                "runtime.driver = \"io_uring\" but io_uring is unavailable: {why}"
            )),
        },
        DriverChoice::Auto => Ok(match probe_io_uring() {
            Ok(()) => Selection {
                driver: Driver::IoUring,
                fallback_reason: None,
            },
            Err(why) => Selection {
                driver: Driver::Epoll,
                fallback_reason: Some(why),
            },
        }),
    }
}

/// Checks that io_uring can be set up and supports every opcode monoio uses.
pub fn probe_io_uring() -> Result<(), String> {
    if let Ok(v) = std::env::var(FORCE_LEGACY_ENV) {
        if matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes") {
            return Err(format!("{FORCE_LEGACY_ENV}={v} is set"));
        }
    }
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .unwrap_or(0);
    if disabled == 2 {
        return Err("kernel.io_uring_disabled = 2 forbids io_uring for every process".into());
    }
    let ring = io_uring::IoUring::new(8).map_err(|e| setup_error(&e, disabled))?;
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("io_uring opcode probe failed: {e}"))?;
    use io_uring::opcode::*;
    let needed = [
        ("accept", Accept::CODE),
        ("async_cancel", AsyncCancel::CODE),
        ("close", Close::CODE),
        ("connect", Connect::CODE),
        ("read", Read::CODE),
        ("readv", Readv::CODE),
        ("recv", Recv::CODE),
        ("send", Send::CODE),
        ("sendmsg", SendMsg::CODE),
        ("recvmsg", RecvMsg::CODE),
        ("timeout", Timeout::CODE),
        ("write", Write::CODE),
        ("writev", Writev::CODE),
        ("poll_add", PollAdd::CODE),
    ];
    let missing: Vec<&str> = needed
        .iter()
        .filter(|(_, c)| !probe.is_supported(*c))
        .map(|(n, _)| *n)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "kernel io_uring lacks opcodes: {} (kernel too old)",
            missing.join(", ")
        ));
    }
    Ok(())
}

/// Turns io_uring_setup's errno into the operator's likely cause.
fn setup_error(e: &std::io::Error, disabled: u8) -> String {
    match e.raw_os_error() {
        Some(libc::EPERM) if disabled == 1 => {
            "io_uring_setup: permission denied (kernel.io_uring_disabled = 1 limits it to a privileged group)".into()
        }
        Some(libc::EPERM) => {
            "io_uring_setup: permission denied (a seccomp profile blocks it, as Docker >= 25 and containerd 2 do by default)".into()
        }
        Some(libc::ENOSYS) => "io_uring_setup: not implemented (kernel older than 5.1 or built without io_uring)".into(),
        Some(libc::ENOMEM) => {
            "io_uring_setup: out of memory (before Linux 5.12 rings count against RLIMIT_MEMLOCK; raise `ulimit -l`)".into()
        }
        _ => format!("io_uring_setup: {e}"),
    }
}
