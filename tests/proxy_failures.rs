//! When upstreams fail: the contract's statuses, failover before any byte is sent, no re-sent
//! POSTs, honest truncation mid-body, timeouts; and the 101 tunnel.

mod common;
use common::upstream::{Action, Upstream};
use common::*;
use std::io::{Read, Write};
use std::time::Duration;

fn config_with(port: u16, endpoints: &str, upstream_extra: &str, route_extra: &str) -> String {
    format!(
        r#"
[runtime]
workers = 1
[[listener]]
name = "web"
bind = "127.0.0.1:{port}"
[[route]]
listener = "web"
upstream = "app"
{route_extra}
[[upstream]]
name = "app"
endpoints = [{endpoints}]
{upstream_extra}
"#
    )
}

fn dead_port() -> u16 {
    free_port() // nothing listens there once the probe socket is gone
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

#[test]
fn refused_upstream_is_502() {
    let port = free_port();
    let _g = Gateway::start(&config_with(
        port,
        &format!("\"127.0.0.1:{}\"", dead_port()),
        "",
        "",
    ));
    let r = roundtrip(addr(port), GET);
    assert_eq!(r.status, 502);
    assert!(!r.body.is_empty());
}

#[test]
fn connect_failures_fail_over_to_the_next_endpoint() {
    let up = Upstream::ok("alive");
    let port = free_port();
    let eps = format!("\"127.0.0.1:{}\", \"{}\"", dead_port(), up.addr);
    let _g = Gateway::start(&config_with(port, &eps, "", ""));
    for _ in 0..6 {
        let r = roundtrip(
            addr(port),
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
        );
        assert_eq!((r.status, r.body.as_slice()), (200, &b"alive"[..]));
    }
    assert_eq!(up.received().len(), 6);
}

#[test]
fn slow_upstream_is_504_after_response_timeout() {
    let up = Upstream::start(|_| Action::Stall(Duration::from_secs(5)));
    let port = free_port();
    let _g = Gateway::start(&config_with(
        port,
        &format!("\"{}\"", up.addr),
        "response_timeout = \"300ms\"",
        "",
    ));
    let start = std::time::Instant::now();
    assert_eq!(roundtrip(addr(port), GET).status, 504);
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[test]
fn route_timeout_bounds_the_whole_wait() {
    let up = Upstream::start(|_| Action::Stall(Duration::from_secs(5)));
    let port = free_port();
    let _g = Gateway::start(&config_with(
        port,
        &format!("\"{}\"", up.addr),
        "",
        "timeout = \"300ms\"",
    ));
    assert_eq!(roundtrip(addr(port), GET).status, 504);
}

#[test]
fn reset_or_close_before_answering_is_502_and_a_post_is_never_resent() {
    let up = Upstream::start(|_| Action::Close);
    let port = free_port();
    let _g = Gateway::start(&config_with(port, &format!("\"{}\"", up.addr), "", ""));
    let r = roundtrip(
        addr(port),
        b"POST /pay HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(r.status, 502);
    assert_eq!(
        up.received().len(),
        1,
        "a POST that reached the upstream must not be sent again"
    );

    let reset = Upstream::start(|_| Action::SendReset(Vec::new()));
    let port = free_port();
    let _g2 = Gateway::start(&config_with(port, &format!("\"{}\"", reset.addr), "", ""));
    assert_eq!(roundtrip(addr(port), GET).status, 502);
}

#[test]
fn upstream_death_mid_body_closes_the_client_without_a_clean_end() {
    // Content-Length promised 100, 10 delivered.
    let up = Upstream::start(|_| {
        Action::SendReset(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789".to_vec())
    });
    let port = free_port();
    let _g = Gateway::start(&config_with(port, &format!("\"{}\"", up.addr), "", ""));
    let mut s = connect(addr(port));
    s.write_all(GET).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = &got[text.find("\r\n\r\n").unwrap() + 4..];
    assert!(body.len() < 100, "the client must see the cut");

    // Chunked: no final chunk may be invented.
    let up = Upstream::start(|_| {
        Action::SendClose(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".to_vec(),
        )
    });
    let port = free_port();
    let _g = Gateway::start(&config_with(port, &format!("\"{}\"", up.addr), "", ""));
    let mut s = connect(addr(port));
    s.write_all(GET).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("hello"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "a cut body must not look complete: {text:?}"
    );
}

#[test]
fn websocket_upgrade_becomes_a_two_way_tunnel() {
    let up = Upstream::start(|r| {
        assert_eq!(r.header("upgrade").as_deref(), Some("websocket"));
        assert!(r
            .header("connection")
            .unwrap()
            .to_ascii_lowercase()
            .contains("upgrade"));
        let hello = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n".to_vec();
        Action::Takeover(
            hello,
            Box::new(|mut s| {
                // Echo until the client half-closes, then close.
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            }),
        )
    });
    let port = free_port();
    let _g = Gateway::start(&config_with(port, &format!("\"{}\"", up.addr), "", ""));
    let mut s = connect(addr(port));
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    let r = read_response_to(&mut s, true).unwrap();
    assert_eq!(r.status, 101);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    for msg in [&b"ping"[..], &[0x81, 0x02, b'h', b'i'], &vec![7u8; 100_000]] {
        s.write_all(msg).unwrap();
        let mut echoed = vec![0u8; msg.len()];
        s.read_exact(&mut echoed).unwrap();
        assert_eq!(echoed, msg);
    }
    // Half-close from the client travels through; the upstream then closes, and so do we.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn upgrade_declined_by_the_upstream_stays_http() {
    let up = Upstream::ok("plain");
    let port = free_port();
    let _g = Gateway::start(&config_with(port, &format!("\"{}\"", up.addr), "", ""));
    let mut s = connect(addr(port));
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"plain"[..]));
    s.write_all(GET).unwrap();
    assert_eq!(read_response(&mut s).unwrap().status, 200);
}

#[test]
fn a_101_nobody_asked_for_is_502() {
    let up = Upstream::start(|_| {
        Action::SendClose(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"
                .to_vec(),
        )
    });
    let port = free_port();
    let _g = Gateway::start(&config_with(port, &format!("\"{}\"", up.addr), "", ""));
    assert_eq!(roundtrip(addr(port), GET).status, 502);
}

/// Kibibytes of resident memory of a process.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn one_gib_streams_both_ways_in_bounded_memory() {
    const SIZE: u64 = 1 << 30;
    // A raw upstream: count the request body, then send SIZE bytes back. Nothing is stored.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up_addr = listener.local_addr().unwrap();
    let upstream = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let mut remaining = SIZE;
        let mut buf = vec![0u8; 256 * 1024];
        while remaining > 0 {
            let want = remaining.min(buf.len() as u64) as usize;
            let n = s.read(&mut buf[..want]).unwrap();
            assert!(n > 0, "request body cut at {}", SIZE - remaining);
            remaining -= n as u64;
        }
        s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes())
            .unwrap();
        let chunk = vec![b'z'; 256 * 1024];
        let mut sent = 0;
        while sent < SIZE {
            s.write_all(&chunk).unwrap();
            sent += chunk.len() as u64;
        }
    });
    let port = free_port();
    let g = Gateway::start(&config_with(
        port,
        &format!("\"{up_addr}\""),
        "response_timeout = \"60s\"",
        "timeout = \"120s\"",
    ));
    let pid = g.child.id();
    let baseline = rss_kib(pid);
    let mut s = connect(addr(port));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(
            format!("POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let chunk = vec![b'a'; 256 * 1024];
        let mut sent = 0;
        while sent < SIZE {
            w.write_all(&chunk).unwrap();
            sent += chunk.len() as u64;
        }
    });
    let mut peak = baseline;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 200"));
    let mut got: u64 = 0;
    let mut buf = vec![0u8; 256 * 1024];
    let mut reads = 0u64;
    while got < SIZE {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "response cut at {got}");
        got += n as u64;
        reads += 1;
        if reads % 256 == 0 {
            peak = peak.max(rss_kib(pid));
        }
    }
    writer.join().unwrap();
    upstream.join().unwrap();
    peak = peak.max(rss_kib(pid));
    assert_eq!(got, SIZE);
    // One pooled buffer per direction: the gateway's memory must not follow the body size.
    assert!(
        peak < baseline + 32 * 1024,
        "RSS grew from {baseline} KiB to {peak} KiB"
    );
}
