//! Hot reload (SIGHUP): a new config version for new requests, nothing dropped, an invalid file
//! changes nothing, listeners come and go, and systemd hears about it in order.

mod common;
use common::upstream::Upstream;
use common::*;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

fn config(port: u16, up: std::net::SocketAddr, tag: &str, extra_listener: &str) -> String {
    format!(
        r#"
[runtime]
workers = 2
shutdown_timeout = "5s"

[[listener]]
name = "web"
bind = "127.0.0.1:{port}"
{extra_listener}

[[route]]
listener = "web"
upstream = "app"
response_headers = {{ set = {{ "x-version" = "{tag}" }} }}

[[upstream]]
name = "app"
endpoints = ["{up}"]
"#
    )
}

/// Reloads and waits until the log has one more "config reloaded" than before.
fn reload(g: &mut Gateway) {
    let before = g.log_text().matches("config reloaded").count();
    g.signal(libc::SIGHUP);
    let log = g.log.clone();
    poll(WAIT, "the reload", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        (text.matches("config reloaded").count() > before).then_some(())
    });
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn new_requests_use_the_new_version_even_on_a_kept_alive_connection() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let mut g = Gateway::start(&config(port, up.addr, "one", ""));
    let mut c = connect(addr(port));
    c.write_all(GET).unwrap();
    assert_eq!(
        read_response(&mut c).unwrap().header("x-version"),
        Some("one")
    );
    std::fs::write(&g.config, config(port, up.addr, "two", "")).unwrap();
    reload(&mut g);
    // The same connection: its next request runs on the new version, on the same worker, whose
    // idle upstream connection was carried over to the new version (no new upstream connection).
    c.write_all(GET).unwrap();
    assert_eq!(
        read_response(&mut c).unwrap().header("x-version"),
        Some("two")
    );
    assert_eq!(up.accepted(), 1, "the pooled upstream connection was kept");
    assert_eq!(roundtrip(addr(port), GET).header("x-version"), Some("two"));
}

#[test]
fn an_invalid_file_keeps_the_running_config() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let mut g = Gateway::start(&config(port, up.addr, "one", ""));
    std::fs::write(&g.config, "[[listener]]\nname = \"web\"\nbind = 12\n").unwrap();
    g.signal(libc::SIGHUP);
    g.wait_log("reload refused; the running config is unchanged");
    assert!(
        g.log_text().contains("coregate.toml:3:"),
        "{}",
        g.log_text()
    );
    let r = roundtrip(addr(port), GET);
    assert_eq!((r.status, r.header("x-version")), (200, Some("one")));
}

#[test]
fn listeners_are_added_and_removed() {
    let up = Upstream::ok("ok");
    let (port, second) = (free_port(), free_port());
    let mut g = Gateway::start(&config(port, up.addr, "one", ""));
    let extra = format!("\n[[listener]]\nname = \"more\"\nbind = \"127.0.0.1:{second}\"\n\n[[route]]\nlistener = \"more\"\nupstream = \"app\"\n");
    std::fs::write(&g.config, config(port, up.addr, "two", &extra)).unwrap();
    reload(&mut g);
    assert_eq!(roundtrip(addr(second), GET).status, 200);
    assert_eq!(listening_sockets(second), 2, "one socket per worker");
    // Back to one listener: the second port stops listening.
    std::fs::write(&g.config, config(port, up.addr, "three", "")).unwrap();
    reload(&mut g);
    poll(WAIT, "the removed listener to close", || {
        (listening_sockets(second) == 0).then_some(())
    });
    assert_eq!(
        roundtrip(addr(port), GET).header("x-version"),
        Some("three")
    );
}

#[test]
fn twenty_reloads_under_load_fail_no_request() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let mut g = Gateway::start(&config(port, up.addr, "v0", ""));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                // Half the clients keep connections alive, half open one per request.
                let keep = i % 2 == 0;
                let mut conn: Option<std::net::TcpStream> = None;
                while !stop.load(Ordering::Relaxed) {
                    let c = conn.get_or_insert_with(|| connect(addr(port)));
                    let good = c.write_all(GET).is_ok()
                        && matches!(read_response(c), Ok(r) if r.status == 200);
                    if good {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    if !keep || !good {
                        conn = None;
                    }
                }
            })
        })
        .collect();
    for i in 1..=20 {
        std::fs::write(&g.config, config(port, up.addr, &format!("v{i}"), "")).unwrap();
        reload(&mut g);
        let before = ok.load(Ordering::Relaxed);
        poll(WAIT, "requests to keep flowing", || {
            (ok.load(Ordering::Relaxed) > before + 5).then_some(())
        });
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "ok: {}",
        ok.load(Ordering::Relaxed)
    );
    assert!(ok.load(Ordering::Relaxed) > 100);
    assert_eq!(roundtrip(addr(port), GET).header("x-version"), Some("v20"));
}

#[test]
fn systemd_hears_ready_reloading_ready_stopping() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut g = Gateway::start_with(
        &config(port, up.addr, "one", ""),
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
        &[],
    );
    let next = || {
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).expect("a notify message");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    assert_eq!(next(), "READY=1");
    g.signal(libc::SIGHUP);
    let reloading = next();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert_eq!(next(), "READY=1");
    g.signal(libc::SIGTERM);
    assert_eq!(next(), "STOPPING=1");
    assert_eq!(g.wait_exit(WAIT).code(), Some(0));
}
