//! Zero-downtime binary upgrade: SIGUSR2 starts the binary with the listening sockets, the new
//! process takes over and stops the old one, and no request fails in between.

mod common;
use common::upstream::Upstream;
use common::*;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Kills the successor process when the test ends, whatever happened.
struct Successor(i32);

impl Drop for Successor {
    fn drop(&mut self) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn sigusr2_hands_the_sockets_to_a_new_process_without_failing_a_request() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let mut g = Gateway::start(&basic_config(port, up.addr, 2, ""));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                let keep = i % 2 == 0;
                let mut conn: Option<std::net::TcpStream> = None;
                while !stop.load(Ordering::Relaxed) {
                    let c = conn.get_or_insert_with(|| connect(addr(port)));
                    let outcome = c
                        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                        .map_err(|e| format!("write: {e}"))
                        .and_then(|_| read_response(c).map_err(|e| format!("read: {e}")))
                        .and_then(|r| match r.status {
                            // Like any HTTP client: `connection: close` ends a kept-alive one.
                            200 => Ok(r.header("connection") == Some("close")),
                            s => Err(format!("status {s}")),
                        });
                    if let Err(e) = &outcome {
                        eprintln!("request failed (keep-alive {keep}): {e}");
                    }
                    let good = outcome.is_ok();
                    let counter = if good { &ok } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                    // The draining old process answers `connection: close`; the next request
                    // opens a new connection, which the new process accepts.
                    if !keep || !good || outcome == Ok(true) {
                        conn = None;
                    }
                }
            })
        })
        .collect();
    poll(WAIT, "traffic", || {
        (ok.load(Ordering::Relaxed) > 50).then_some(())
    });
    let old_pid = g.child.id() as i32;
    g.signal(libc::SIGUSR2);
    g.wait_log("upgrade: new process started");
    let text = g.log_text();
    let line = text
        .lines()
        .find(|l| l.contains("upgrade: new process started"))
        .unwrap();
    let pid: i32 = line.rsplit("pid=").next().unwrap().trim().parse().unwrap();
    let _successor = Successor(pid);
    // The old process drains (SIGQUIT from its successor) and exits 0; the new one serves.
    assert_eq!(g.wait_exit(WAIT).code(), Some(0), "{}", g.log_text());
    assert!(g.log_text().contains("listening sockets inherited"));
    assert!(alive(pid), "the new process is running");
    assert_ne!(pid, old_pid);
    let before = ok.load(Ordering::Relaxed);
    poll(WAIT, "traffic after the old process left", || {
        (ok.load(Ordering::Relaxed) > before + 50).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "ok {}\n{}",
        ok.load(Ordering::Relaxed),
        g.log_text()
    );
    assert_eq!(
        listening_sockets(port),
        2,
        "the new process's two workers listen"
    );
}
