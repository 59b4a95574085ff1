//! Graceful stop, signals, request-head limits and timeouts of HTTP listeners, and `demo`.

mod common;
use common::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn sigterm_mid_request_still_completes_the_response_then_exits_0() {
    let up = common::upstream::Upstream::ok("ok");
    let port = free_port();
    let mut g = Gateway::start(&basic_config(port, up.addr, 1, ""));
    let mut s = connect(addr(port));
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n").unwrap();
    // Stop only once the worker has accepted the connection and read its first bytes.
    poll(WAIT, "worker to read the partial head", || {
        accepted_and_read(port).then_some(())
    });
    g.signal(libc::SIGTERM);
    g.wait_log("stopping");
    // New connections are refused once the listener closed.
    poll(WAIT, "listener closed", || {
        (listening_sockets(port) == 0).then_some(())
    });
    assert!(std::net::TcpStream::connect(addr(port)).is_err());
    s.write_all(b"User-Agent: test\r\n\r\n").unwrap();
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(g.wait_exit(WAIT).code(), Some(0));
}

#[test]
fn idle_keepalive_connections_close_at_once_on_stop() {
    let up = common::upstream::Upstream::ok("ok");
    let port = free_port();
    let mut g = Gateway::start(&basic_config(port, up.addr, 1, ""));
    let mut s = connect(addr(port));
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s).unwrap().status, 200);
    g.signal(libc::SIGINT);
    assert!(closed_by_peer(&mut s));
    assert_eq!(g.wait_exit(WAIT).code(), Some(0));
}

#[test]
fn shutdown_timeout_bounds_the_drain() {
    let up = common::upstream::Upstream::ok("ok");
    let port = free_port();
    let cfg = basic_config(port, up.addr, 1, "")
        .replace("shutdown_timeout = \"5s\"", "shutdown_timeout = \"200ms\"");
    let mut g = Gateway::start(&cfg);
    let mut s = connect(addr(port));
    s.write_all(b"GET / HTTP/1.1\r\n").unwrap(); // never finished
    poll(WAIT, "worker to read the partial head", || {
        accepted_and_read(port).then_some(())
    });
    g.signal(libc::SIGTERM);
    assert_eq!(g.wait_exit(WAIT).code(), Some(0));
    assert!(
        g.log_text().contains("shutdown_timeout passed"),
        "{}",
        g.log_text()
    );
}

#[test]
fn sighup_does_not_stop_the_gateway() {
    let up = common::upstream::Upstream::ok("ok");
    let port = free_port();
    let mut g = Gateway::start(&basic_config(port, up.addr, 1, ""));
    g.signal(libc::SIGHUP);
    g.wait_log("config reloaded");
    assert_eq!(
        roundtrip(addr(port), b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );
    assert!(g.child.try_wait().unwrap().is_none());
}

fn limits_gateway() -> (Gateway, u16, common::upstream::Upstream) {
    let up = common::upstream::Upstream::ok("ok");
    let port = free_port();
    let extra = "\n[limits]\nmax_request_head = \"16KiB\"\nmax_request_target = 8192\nmax_headers = 10\nclient_header_timeout = \"300ms\"\nclient_idle_timeout = \"400ms\"";
    (
        Gateway::start(&basic_config(port, up.addr, 1, extra)),
        port,
        up,
    )
}

#[test]
fn head_limits_answer_431_414_and_close() {
    let (_g, port, _up) = limits_gateway();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let mut s = connect(addr(port));
    s.write_all(big.as_bytes()).unwrap();
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.status, 431);
    assert_eq!(
        r.header("content-length").map(str::to_string),
        Some(r.body.len().to_string())
    );
    assert!(closed_by_peer(&mut s));

    let many: String = (0..11).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = roundtrip(
        addr(port),
        format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n").as_bytes(),
    );
    assert_eq!(r.status, 431);

    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    assert_eq!(roundtrip(addr(port), long.as_bytes()).status, 414);
    let ok = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(7990));
    assert_eq!(roundtrip(addr(port), ok.as_bytes()).status, 200);
}

#[test]
fn an_8000_octet_request_line_passes_with_defaults() {
    let up = common::upstream::Upstream::ok("ok");
    let port = free_port();
    let _g = Gateway::start(&basic_config(port, up.addr, 1, ""));
    let line = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "b".repeat(7995));
    assert!(line.find("\r\n").unwrap() >= 8000);
    assert_eq!(roundtrip(addr(port), line.as_bytes()).status, 200);
}

#[test]
fn slow_head_gets_408_and_close() {
    let (_g, port, _up) = limits_gateway();
    let mut s = connect(addr(port));
    s.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.status, 408);
    assert!(closed_by_peer(&mut s));
}

#[test]
fn idle_client_is_closed_after_client_idle_timeout() {
    let (_g, port, _up) = limits_gateway();
    let mut s = connect(addr(port));
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s).unwrap().status, 200);
    let mut b = [0u8; 1];
    assert_eq!(
        s.read(&mut b).unwrap(),
        0,
        "idle connection should be closed"
    );
}

#[test]
fn keepalive_pipelining_and_malformed_requests() {
    let up = common::upstream::Upstream::ok("ok");
    let port = free_port();
    let _g = Gateway::start(&basic_config(port, up.addr, 1, ""));
    let mut s = connect(addr(port));
    s.write_all(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nHEAD /b HTTP/1.1\r\nHost: t\r\n\r\nGET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s).unwrap().status, 200);
    let head = read_response_to(&mut s, true).unwrap();
    assert_eq!(head.status, 200);
    let last = read_response(&mut s).unwrap();
    assert_eq!(last.header("connection"), Some("close"));
    assert!(closed_by_peer(&mut s));

    for bad in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        let mut s = connect(addr(port));
        s.write_all(bad).unwrap();
        assert_eq!(
            read_response(&mut s).unwrap().status,
            400,
            "{}",
            String::from_utf8_lossy(bad)
        );
        assert!(closed_by_peer(&mut s));
    }
}

#[test]
fn demo_runs_on_8080_and_curl_reaches_it() {
    let mut child = Command::new(binary())
        .arg("demo")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut banner = String::new();
    let mut chunk = [0u8; 1024];
    while !banner.contains("Stop with Ctrl-C") {
        let n = stdout.read(&mut chunk).unwrap();
        assert!(n > 0, "demo closed stdout early: {banner}");
        banner.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    assert!(banner.contains("http://127.0.0.1:8080/"), "{banner}");
    let out = poll(WAIT, "curl to reach the demo", || {
        let o = Command::new("curl")
            .args(["-s", "-i", "--max-time", "2", "http://127.0.0.1:8080/"])
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).to_string())
    });
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // The banner's status page answers.
    assert!(banner.contains("http://127.0.0.1:9901/"), "{banner}");
    let health = Command::new("curl")
        .args(["-s", "--max-time", "2", "http://127.0.0.1:9901/healthz"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&health.stdout), "ok\n");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = poll(Duration::from_secs(10), "demo to exit", || {
        child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0));
}

#[test]
fn version_flag() {
    let (code, out, _) = run_cli(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("coregate "), "{out}");
}
