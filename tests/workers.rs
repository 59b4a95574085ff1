//! Workers and listeners: one SO_REUSEPORT socket per worker, connections spread over workers,
//! bind failures, driver selection and fallback, the per-worker connection cap.

mod common;
use common::*;
use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn two_workers_two_sockets_and_both_serve() {
    let up = common::upstream::Upstream::ok("ok");
    let port = free_port();
    let g = Gateway::start_with(
        &basic_config(port, up.addr, 2, ""),
        &[],
        &["--log-level", "coregate=debug"],
    );
    assert_eq!(
        listening_sockets(port),
        2,
        "one listening socket per worker"
    );
    let workers_seen = |log: &str| -> HashSet<String> {
        log.lines()
            .filter(|l| l.contains("connection accepted"))
            .filter_map(|l| {
                l.split("worker=")
                    .nth(1)?
                    .split_whitespace()
                    .next()
                    .map(str::to_string)
            })
            .collect()
    };
    for _ in 0..64 {
        let r = roundtrip(addr(port), GET);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"ok");
        if workers_seen(&g.log_text()).len() == 2 {
            break;
        }
    }
    // SO_REUSEPORT hashes the 4-tuple: 64 connections all on one of two sockets is ~2^-63.
    assert_eq!(
        workers_seen(&g.log_text()),
        HashSet::from(["0".to_string(), "1".to_string()])
    );
}

#[test]
fn workers_log_index_cpu_and_driver() {
    let up = common::upstream::Upstream::ok("ok");
    let port = free_port();
    let g = Gateway::start(&basic_config(port, up.addr, 2, ""));
    let log = g.log_text();
    for w in ["worker=0", "worker=1"] {
        let line = log
            .lines()
            .find(|l| l.contains("worker started") && l.contains(w))
            .expect(&log);
        assert!(line.contains("cpu=") && line.contains("driver="), "{line}");
    }
}

#[test]
fn port_taken_exits_1_quickly_naming_the_address() {
    let up = common::upstream::Upstream::ok("ok");
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let start = Instant::now();
    let mut g = Gateway::spawn(&basic_config(port, up.addr, 2, ""), &[], &[]);
    let status = g.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(1));
    assert!(start.elapsed() < Duration::from_secs(2));
    let log = g.log_text();
    assert!(
        log.contains(&format!("127.0.0.1:{port}")) && log.contains("\"web\""),
        "{log}"
    );
    assert!(
        !log.contains("panicked") && !log.contains("backtrace"),
        "{log}"
    );
    assert_eq!(log.trim().lines().count(), 1, "one message: {log}");
}

#[test]
fn a_second_gateway_on_the_same_port_is_refused() {
    let up = common::upstream::Upstream::ok("ok");
    let port = free_port();
    let _first = Gateway::start(&basic_config(port, up.addr, 1, ""));
    let mut second = Gateway::spawn(&basic_config(port, up.addr, 1, ""), &[], &[]);
    assert_eq!(second.wait_exit(WAIT).code(), Some(1));
    assert!(
        second.log_text().contains("Address already in use"),
        "{}",
        second.log_text()
    );
}

fn serves_with(driver_line: &str, envs: &[(&str, &str)]) -> String {
    let up = common::upstream::Upstream::ok("ok");
    let port = free_port();
    let g = Gateway::start_with(&basic_config(port, up.addr, 1, driver_line), envs, &[]);
    let r = roundtrip(addr(port), GET);
    assert_eq!(r.status, 200);
    g.log_text()
}

#[test]
fn epoll_driver_serves() {
    let log = serves_with("driver = \"epoll\"", &[]);
    assert!(log.contains("driver=epoll"), "{log}");
}

#[test]
fn auto_driver_serves_on_io_uring_when_available() {
    let log = serves_with("driver = \"auto\"", &[]);
    let io_uring_usable = coregate::runtime::driver::probe_io_uring().is_ok();
    let expected = if io_uring_usable {
        "driver=io_uring"
    } else {
        "driver=epoll"
    };
    assert!(log.contains(expected), "{log}");
}

#[test]
fn auto_falls_back_to_epoll_and_says_why() {
    let log = serves_with("driver = \"auto\"", &[("MONOIO_FORCE_LEGACY_DRIVER", "1")]);
    let line = log
        .lines()
        .find(|l| l.contains("worker started"))
        .expect(&log);
    assert!(line.contains("driver=epoll"), "{line}");
    assert!(
        line.contains("MONOIO_FORCE_LEGACY_DRIVER"),
        "reason missing: {line}"
    );
}

#[test]
fn forced_io_uring_fails_start_with_the_reason() {
    let up = common::upstream::Upstream::ok("ok");
    let port = free_port();
    let mut g = Gateway::spawn(
        &basic_config(port, up.addr, 1, "driver = \"io_uring\""),
        &[("MONOIO_FORCE_LEGACY_DRIVER", "1")],
        &[],
    );
    assert_eq!(g.wait_exit(WAIT).code(), Some(1));
    let log = g.log_text();
    assert!(
        log.contains("io_uring is unavailable") && log.contains("MONOIO_FORCE_LEGACY_DRIVER"),
        "{log}"
    );
}

#[test]
fn connection_cap_pauses_accepting_instead_of_failing() {
    let up = common::upstream::Upstream::ok("ok");
    let port = free_port();
    let _g = Gateway::start(&basic_config(
        port,
        up.addr,
        1,
        "max_connections_per_worker = 1",
    ));
    let mut first = connect(addr(port));
    first.write_all(GET).unwrap();
    assert_eq!(read_response(&mut first).unwrap().status, 200);
    // The second connection completes its handshake in the kernel backlog but is not served...
    let mut second = connect(addr(port));
    second.write_all(GET).unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let waited = read_response(&mut second);
    assert!(waited.is_err(), "served beyond the cap: {waited:?}");
    // ...until the first one goes away; then it is accepted and answered.
    drop(first);
    second.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(read_response(&mut second).unwrap().status, 200);
}

#[test]
fn ipv6_listener_serves() {
    let up = common::upstream::Upstream::ok("ok");
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    }
    let port = free_port();
    let cfg = basic_config(port, up.addr, 1, "").replace(
        &format!("bind = \"127.0.0.1:{port}\""),
        &format!("bind = \"[::1]:{port}\""),
    );
    let _g = Gateway::start(&cfg);
    let r = roundtrip(
        std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
        GET,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn json_log_format() {
    let up = common::upstream::Upstream::ok("ok");
    let port = free_port();
    let g = Gateway::start_with(
        &basic_config(port, up.addr, 1, ""),
        &[],
        &["--log-format", "json"],
    );
    let log = g.log_text();
    let first = log.lines().next().unwrap();
    let v: serde_json::Value =
        serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert!(
        v.get("level").is_some() && v.get("message").is_some(),
        "{first}"
    );
}

#[test]
fn every_contract_key_is_enforced_now() {
    // `[admin]` was the last key `run` refused (tests/admin.rs covers what it does).
    let up = common::upstream::Upstream::ok("ok");
    let port = free_port();
    let cfg = format!(
        "[admin]\nlisten = \"127.0.0.1:{}\"\n{}",
        free_port(),
        basic_config(port, up.addr, 1, "")
    );
    let mut g = Gateway::spawn(&cfg, &[], &[]);
    g.wait_log("coregate ready");
    assert!(!g.log_text().contains("not enforce"), "{}", g.log_text());
}

/// Installs a seccomp filter that makes io_uring_setup fail with EPERM, as Docker's default
/// profile does; runs in the child between fork and exec.
fn deny_io_uring(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    const IO_URING_SETUP: u32 = 425; // same number on x86_64 and aarch64
                                     // SAFETY: only async-signal-safe calls (prctl) between fork and exec; the filter program
                                     // lives on this stack frame for the duration of the prctl call that copies it.
    unsafe {
        cmd.pre_exec(|| {
            let filter = [
                libc::sock_filter {
                    code: 0x20,
                    jt: 0,
                    jf: 0,
                    k: 0,
                }, // ld [nr]
                libc::sock_filter {
                    code: 0x15,
                    jt: 0,
                    jf: 1,
                    k: IO_URING_SETUP,
                }, // jeq
                libc::sock_filter {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: 0x0005_0000 | libc::EPERM as u32,
                }, // ret ERRNO
                libc::sock_filter {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: 0x7fff_0000,
                }, // ret ALLOW
            ];
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut _,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const _ as libc::c_ulong,
                    0,
                    0,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn auto_falls_back_when_seccomp_blocks_io_uring() {
    let up = common::upstream::Upstream::ok("ok");
    let port = free_port();
    let mut g = Gateway::spawn_cmd(
        &basic_config(port, up.addr, 1, "driver = \"auto\""),
        &[],
        &[],
        deny_io_uring,
    );
    g.wait_log("coregate ready");
    assert_eq!(roundtrip(addr(port), GET).status, 200);
    let log = g.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("worker started"))
        .expect(&log);
    assert!(
        line.contains("driver=epoll") && line.contains("seccomp"),
        "{line}"
    );
}
