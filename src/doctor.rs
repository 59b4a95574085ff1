//! `coregate doctor`: checks the host against a config before the gateway runs into it — the
//! limits that bite an edge proxy long before CPU does (descriptors, accept queues, ephemeral
//! ports, TIME_WAIT), io_uring availability, and drift from the tuning profile.
//!
//! Every check is a pure function of figures read from `/proc` (passed in), so the verdicts are
//! unit-tested without touching the host.

use crate::config::Config;
use std::fmt;

/// Descriptors per proxied connection: the client's and the upstream's.
pub const FDS_PER_CONNECTION: u64 = 2;
/// Descriptors a worker needs besides connections (ring, listeners, pipes, logs), with margin.
pub const FDS_PER_WORKER_OVERHEAD: u64 = 256;
/// TIME_WAIT sockets above this share of the ephemeral range warn of port exhaustion.
pub const TIME_WAIT_WARN_SHARE: f64 = 0.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "OK",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        })
    }
}

/// One line of the report.
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// The one-line fix (empty when OK).
    pub fix: String,
}

fn check(name: &'static str, verdict: Verdict, detail: String, fix: &str) -> Check {
    Check {
        name,
        verdict,
        detail,
        fix: if verdict == Verdict::Ok {
            String::new()
        } else {
            fix.to_string()
        },
    }
}

/// What doctor reads from the host.
pub struct Host {
    pub cpus: usize,
    pub io_uring: Result<(), String>,
    pub nofile_soft: u64,
    pub somaxconn: Option<u64>,
    pub port_range: Option<(u64, u64)>,
    pub time_wait: Option<u64>,
    pub tw_reuse: Option<u64>,
}

impl Host {
    /// Reads the running host.
    pub fn read() -> Host {
        let num =
            |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit into a valid pointer.
        let nofile_soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
            rl.rlim_cur
        } else {
            0
        };
        let port_range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| {
                let mut it = s.split_whitespace().filter_map(|v| v.parse().ok());
                Some((it.next()?, it.next()?))
            });
        let time_wait = std::fs::read_to_string("/proc/net/sockstat")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("TCP:"))?;
                let mut words = line.split_whitespace();
                while let Some(w) = words.next() {
                    if w == "tw" {
                        return words.next()?.parse().ok();
                    }
                }
                None
            });
        Host {
            cpus: crate::runtime::allowed_cpus().len().max(1),
            io_uring: crate::runtime::driver::probe_io_uring(),
            nofile_soft,
            somaxconn: num("/proc/sys/net/core/somaxconn"),
            port_range,
            time_wait,
            tw_reuse: num("/proc/sys/net/ipv4/tcp_tw_reuse"),
        }
    }
}

/// Every check of `config` against `host`.
pub fn diagnose(config: &Config, host: &Host) -> Vec<Check> {
    let workers = match config.runtime.workers {
        0 => host.cpus,
        n => n,
    } as u64;
    let mut out = Vec::new();
    out.push(match &host.io_uring {
        Ok(()) => check("io_uring", Verdict::Ok, "usable".into(), ""),
        Err(why) if config.runtime.driver == crate::config::DriverChoice::IoUring => check(
            "io_uring",
            Verdict::Fail,
            format!("unusable: {why}"),
            "allow io_uring (kernel.io_uring_disabled=0, seccomp, memlock) or set runtime.driver = \"auto\"",
        ),
        Err(why) => check(
            "io_uring",
            Verdict::Warn,
            format!("unusable, epoll will be used: {why}"),
            "allow io_uring (kernel.io_uring_disabled=0, the seccomp profile, LimitMEMLOCK)",
        ),
    });
    let conns = workers * config.runtime.max_connections_per_worker as u64;
    let need = conns * FDS_PER_CONNECTION + workers * FDS_PER_WORKER_OVERHEAD;
    out.push(check(
        "open files",
        if host.nofile_soft >= need {
            Verdict::Ok
        } else if host.nofile_soft >= need / 4 {
            Verdict::Warn
        } else {
            Verdict::Fail
        },
        format!("RLIMIT_NOFILE {} for up to {conns} connections (needs ~{need})", host.nofile_soft),
        "raise it: LimitNOFILE=1048576 in the unit, or ulimit -n; or lower runtime.max_connections_per_worker",
    ));
    if let Some(somax) = host.somaxconn {
        let backlog = config
            .listeners
            .iter()
            .map(|l| l.backlog as u64)
            .max()
            .unwrap_or(0);
        out.push(check(
            "accept queue",
            if somax >= backlog { Verdict::Ok } else { Verdict::Warn },
            format!("net.core.somaxconn {somax}, largest listener backlog {backlog}"),
            "raise net.core.somaxconn (coregate-tune apply), or the kernel silently caps the backlog",
        ));
    }
    if let Some((lo, hi)) = host.port_range {
        let ports = hi.saturating_sub(lo) + 1;
        let endpoints: u64 = config
            .upstreams
            .iter()
            .map(|u| u.endpoints.len() as u64)
            .sum();
        let pooled: u64 = config
            .upstreams
            .iter()
            .map(|u| u.max_idle_per_worker as u64 * u.endpoints.len() as u64)
            .sum::<u64>()
            * workers;
        let per_endpoint = if endpoints == 0 {
            0
        } else {
            conns / endpoints.max(1)
        };
        out.push(check(
            "ephemeral ports",
            if per_endpoint <= ports && pooled <= ports {
                Verdict::Ok
            } else {
                Verdict::Warn
            },
            format!(
                "ip_local_port_range {lo}-{hi} ({ports} ports per upstream address); up to {pooled} pooled, ~{per_endpoint} busy per endpoint"
            ),
            "widen net.ipv4.ip_local_port_range (coregate-tune apply) or add endpoint addresses",
        ));
        if let Some(tw) = host.time_wait {
            let share = tw as f64 / ports as f64;
            out.push(check(
                "TIME_WAIT",
                if share < TIME_WAIT_WARN_SHARE { Verdict::Ok } else { Verdict::Warn },
                format!(
                    "{tw} sockets in TIME_WAIT ({:.0} % of the port range), tcp_tw_reuse={}",
                    share * 100.0,
                    host.tw_reuse.map_or("?".into(), |v| v.to_string())
                ),
                "keep upstream keep-alive on (max_idle_per_worker), set net.ipv4.tcp_tw_reuse=1 (coregate-tune apply)",
            ));
        }
    }
    out.push(check(
        "cpus",
        if workers <= host.cpus as u64 { Verdict::Ok } else { Verdict::Warn },
        format!("{workers} workers on {} allowed CPUs", host.cpus),
        "set runtime.workers = 0 (one per CPU): more workers than CPUs share cores and lose the point of pinning",
    ));
    out
}

/// Where the tuning tool is looked for: the package's copy, then `$PATH`.
pub const TUNE_PATHS: [&str; 2] = ["/usr/share/coregate/tuning/coregate-tune", "coregate-tune"];

/// Drift from the tuning profile, as `coregate-tune verify` (exit 1 on drift) sees it.
pub fn tuning_drift() -> Check {
    let fix = "coregate-tune apply (after reviewing coregate-tune show)";
    for tool in TUNE_PATHS {
        let Ok(out) = std::process::Command::new(tool).arg("verify").output() else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let drifted = text
            .lines()
            .filter(|l| l.contains("drift") || l.contains("DRIFT"))
            .count();
        return match out.status.code() {
            Some(0) => check("tuning", Verdict::Ok, "no drift from the edge profile".into(), fix),
            Some(1) => check(
                "tuning",
                Verdict::Warn,
                format!("drift from the edge profile ({drifted} lines; `coregate-tune verify` lists them)"),
                fix,
            ),
            _ => check(
                "tuning",
                Verdict::Warn,
                format!("coregate-tune verify failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
                fix,
            ),
        };
    }
    check(
        "tuning",
        Verdict::Warn,
        "coregate-tune not found (installed with the package)".into(),
        "install the coregate package, or run tuning/coregate-tune from the source tree",
    )
}

/// The report as a table.
pub fn render(checks: &[Check]) -> String {
    let mut out = format!("{:<16} {:<5} {}\n", "check", "", "finding / fix");
    for c in checks {
        out.push_str(&format!(
            "{:<16} {:<5} {}\n",
            c.name,
            c.verdict.to_string(),
            c.detail
        ));
        if !c.fix.is_empty() {
            out.push_str(&format!("{:<16} {:<5} fix: {}\n", "", "", c.fix));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host {
            cpus: 4,
            io_uring: Ok(()),
            nofile_soft: 1 << 20,
            somaxconn: Some(4096),
            port_range: Some((32768, 60999)),
            time_wait: Some(100),
            tw_reuse: Some(2),
        }
    }

    fn config(extra: &str) -> Config {
        let text = format!(
            "{extra}\n[[listener]]\nname = \"w\"\nbind = \"127.0.0.1:1\"\n[[route]]\nlistener = \"w\"\nupstream = \"u\"\n[[upstream]]\nname = \"u\"\nendpoints = [\"127.0.0.1:2\"]\n"
        );
        Config::parse(&text, "t.toml").unwrap()
    }

    fn verdict(checks: &[Check], name: &str) -> Verdict {
        checks.iter().find(|c| c.name == name).unwrap().verdict
    }

    #[test]
    fn a_good_host_passes() {
        let checks = diagnose(
            &config("[runtime]\nmax_connections_per_worker = 4096"),
            &host(),
        );
        assert!(
            checks.iter().all(|c| c.verdict == Verdict::Ok),
            "{}",
            render(&checks)
        );
    }

    #[test]
    fn low_limits_warn_or_fail_with_a_fix() {
        let mut h = host();
        h.nofile_soft = 1024;
        h.somaxconn = Some(128);
        h.time_wait = Some(20_000);
        h.io_uring = Err("kernel.io_uring_disabled = 2".into());
        let checks = diagnose(&config("[runtime]\nworkers = 8"), &h);
        assert_eq!(verdict(&checks, "open files"), Verdict::Fail);
        assert_eq!(verdict(&checks, "accept queue"), Verdict::Warn);
        assert_eq!(verdict(&checks, "TIME_WAIT"), Verdict::Warn);
        assert_eq!(verdict(&checks, "io_uring"), Verdict::Warn);
        assert_eq!(verdict(&checks, "cpus"), Verdict::Warn);
        assert!(checks
            .iter()
            .filter(|c| c.verdict != Verdict::Ok)
            .all(|c| !c.fix.is_empty()));
        let forced = diagnose(&config("[runtime]\ndriver = \"io_uring\""), &h);
        assert_eq!(verdict(&forced, "io_uring"), Verdict::Fail);
    }
}
