//! Traffic policies over real sockets: balancing (round robin, smooth weighted, consistent hash,
//! least request), active and passive health, the circuit breaker, retries and their budget,
//! hedging, and the route fallback.
//!
//! Every test runs its own gateway on its own ports, with `workers = 1` (each worker has its own
//! balancer, breaker and passive view, so one worker makes sequences exact) unless it is about
//! workers. Waits poll with a bound; traffic goes to 127.0.0.1 only.

mod common;
use common::upstream::{response, Action, Upstream};
use common::*;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One listener, one route to upstream "app". `upstream_extra` goes after `endpoints` (keys,
/// then `[upstream.*]` tables); `route_extra` inside the `[[route]]` table.
fn config(port: u16, endpoints: &str, upstream_extra: &str, route_extra: &str) -> String {
    format!(
        r#"
[runtime]
workers = 1
shutdown_timeout = "1s"

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

/// `"addr", "addr", ...` for the `endpoints` array.
fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn addrs(ups: &[Upstream]) -> Vec<SocketAddr> {
    ups.iter().map(|u| u.addr).collect()
}

/// An address nothing listens on (connects are refused).
fn dead_addr() -> SocketAddr {
    addr(free_port())
}

/// A response that tells the gateway not to pool the connection, and closes it.
fn closing(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An upstream whose `/healthz` answers `health` (an HTTP status, changeable at any time) and
/// whose other paths answer 200 with `name`.
fn checked(name: &'static str, health: &Arc<AtomicU16>) -> Upstream {
    let health = health.clone();
    Upstream::start(move |r| {
        if r.request_line().starts_with("GET /healthz") {
            Action::SendClose(closing(health.load(Ordering::SeqCst), "hc"))
        } else {
            Action::Send(response(200, name))
        }
    })
}

/// Requests an upstream got, health probes left out.
fn traffic(up: &Upstream) -> usize {
    up.received()
        .iter()
        .filter(|r| !r.request_line().contains("/healthz"))
        .count()
}

/// Log lines containing every one of `needles`.
fn log_lines(g: &Gateway, needles: &[&str]) -> usize {
    g.log_text()
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

/// Polls until the log has at least `n` lines with every one of `needles`; returns how long it
/// took. Panics (with the log) after `limit`.
fn wait_lines(g: &Gateway, needles: &[&str], n: usize, limit: Duration) -> Duration {
    let start = Instant::now();
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        poll(limit, &format!("{n} log line(s) with {needles:?}"), || {
            (log_lines(g, needles) >= n).then_some(())
        })
    }));
    if found.is_err() {
        panic!(
            "no {n} log line(s) with {needles:?} within {limit:?}; log:\n{}",
            g.log_text()
        );
    }
    start.elapsed()
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).to_string()
}

/// A keep-alive client: one connection reused while the gateway keeps it open, a new one after
/// it answers `connection: close`.
struct Client {
    addr: SocketAddr,
    conn: Option<TcpStream>,
}

impl Client {
    fn new(port: u16) -> Client {
        Client {
            addr: addr(port),
            conn: None,
        }
    }

    fn send(&mut self, raw: &[u8]) -> Response {
        let addr = self.addr;
        let s = self.conn.get_or_insert_with(|| connect(addr));
        s.write_all(raw).unwrap();
        let r = read_response(s).unwrap();
        if r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            self.conn = None;
        }
        r
    }

    fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
    }

    /// The body of a GET that must answer 200.
    fn get_ok(&mut self, path: &str) -> String {
        let r = self.get(path);
        assert_eq!(r.status, 200, "{r:?}");
        text(&r)
    }

    /// Whether the gateway still holds this connection open (keep-alive).
    fn is_open(&self) -> bool {
        self.conn.is_some()
    }
}

// ---------------------------------------------------------------------------------------------
// Balancing
// ---------------------------------------------------------------------------------------------

#[test]
fn round_robin_is_exactly_even_and_in_order() {
    let ups = [Upstream::ok("a"), Upstream::ok("b"), Upstream::ok("c")];
    let port = free_port();
    let _g = Gateway::start(&config(
        port,
        &list(&addrs(&ups)),
        "balance = \"round_robin\"",
        "",
    ));
    let mut c = Client::new(port);
    let seq: String = (0..300).map(|_| c.get_ok("/")).collect();
    assert_eq!(seq, "abc".repeat(100));
    for u in &ups {
        assert_eq!(u.received().len(), 100);
    }
}

#[test]
fn smooth_weighted_round_robin_interleaves_five_one_one() {
    let ups = [Upstream::ok("a"), Upstream::ok("b"), Upstream::ok("c")];
    let endpoints = format!(
        "{{ addr = \"{}\", weight = 5 }}, {{ addr = \"{}\", weight = 1 }}, {{ addr = \"{}\", weight = 1 }}",
        ups[0].addr, ups[1].addr, ups[2].addr
    );
    let port = free_port();
    let _g = Gateway::start(&config(
        port,
        &endpoints,
        "balance = \"weighted_round_robin\"",
        "",
    ));
    let mut c = Client::new(port);
    let seq: String = (0..14).map(|_| c.get_ok("/")).collect();
    assert_eq!(seq, "aabacaa".repeat(2), "nginx's smooth sequence, twice");
    let more: String = (0..700).map(|_| c.get_ok("/")).collect();
    let count = |ch| more.chars().filter(|&x| x == ch).count();
    assert_eq!((count('a'), count('b'), count('c')), (500, 100, 100));
}

#[test]
fn consistent_hash_keeps_users_and_moves_only_a_dead_endpoints_users() {
    // Upstreams answer with `connection: close`, so the gateway pools nothing: once the victim's
    // listener is gone, every new request to it is a refused connect (no stale pooled
    // connection answering for a dead endpoint).
    const NAMES: [&str; 4] = ["a", "b", "c", "d"];
    let mut ups: Vec<Option<Upstream>> = NAMES
        .iter()
        .map(|&n| Some(Upstream::start(move |_| Action::SendClose(closing(200, n)))))
        .collect();
    let eps: Vec<SocketAddr> = ups.iter().map(|u| u.as_ref().unwrap().addr).collect();
    let port = free_port();
    // Removal made deterministic: max_fails = 1 with a long fail_timeout ejects the victim on its
    // first refused connect and keeps it out for the rest of the test. The request that hit the
    // refusal fails over (before any byte went out) to the next untried endpoint on the ring,
    // which is the same endpoint later picks choose with the victim ejected, so every user of
    // the victim lands on one stable new endpoint from its first request on.
    let g = Gateway::start(&config(
        port,
        &list(&eps),
        "balance = \"consistent_hash\"\nhash_key = \"header:x-user\"\nmax_fails = 1\nfail_timeout = \"60s\"",
        "",
    ));
    let mut c = Client::new(port);
    let pass = |c: &mut Client| -> Vec<String> {
        (0..200)
            .map(|u| {
                let r = c.send(
                    format!("GET /p HTTP/1.1\r\nHost: a\r\nx-user: user-{u}\r\n\r\n").as_bytes(),
                );
                assert_eq!(r.status, 200, "user-{u}: {r:?}");
                text(&r)
            })
            .collect()
    };
    let before = pass(&mut c);
    for _ in 0..2 {
        assert_eq!(pass(&mut c), before, "a user must stay on its endpoint");
    }
    for n in NAMES {
        let users = before.iter().filter(|e| *e == n).count();
        assert!(
            users >= 10,
            "endpoint {n} got {users} of 200 users: {before:?}"
        );
    }

    // Stop endpoint "b": its listener closes, connects are refused.
    let victim = eps[1];
    drop(ups[1].take());
    poll(WAIT, "the victim's listener to close", || {
        (listening_sockets(victim.port()) == 0).then_some(())
    });

    let after = pass(&mut c);
    assert_eq!(
        pass(&mut c),
        after,
        "moved users must settle on one endpoint"
    );
    let mut landed = HashSet::new();
    for (u, (was, now)) in before.iter().zip(&after).enumerate() {
        if was == "b" {
            assert_ne!(now, "b", "user-{u}");
            landed.insert(now.clone());
        } else {
            assert_eq!(
                was, now,
                "user-{u} was not on the dead endpoint and must not move"
            );
        }
    }
    assert!(
        landed.len() >= 2,
        "a dead endpoint's users spread over the ring, not onto one neighbour: {landed:?}"
    );
    assert_eq!(
        log_lines(
            &g,
            &[
                "endpoint ejected after consecutive failures",
                &victim.to_string()
            ]
        ),
        1,
        "{}",
        g.log_text()
    );
}

#[test]
fn least_request_sends_most_requests_to_the_fast_endpoint() {
    let slow = Upstream::start(|_| {
        std::thread::sleep(Duration::from_millis(300));
        Action::Send(response(200, "slow"))
    });
    let fast = Upstream::ok("fast");
    let port = free_port();
    let _g = Gateway::start(&config(
        port,
        &list(&[slow.addr, fast.addr]),
        "balance = \"least_request\"",
        "",
    ));
    let counts = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let counts = counts.clone();
            std::thread::spawn(move || {
                let mut c = Client::new(port);
                for _ in 0..10 {
                    let b = c.get_ok("/");
                    *counts.lock().unwrap().entry(b).or_default() += 1;
                }
            })
        })
        .collect();
    for t in clients {
        t.join().unwrap();
    }
    let counts = counts.lock().unwrap().clone();
    let fast_n = counts.get("fast").copied().unwrap_or(0);
    eprintln!("least_request split: {counts:?}");
    assert_eq!(counts.values().sum::<usize>(), 200);
    assert!(
        fast_n >= 160,
        "fast endpoint got {fast_n} of 200: {counts:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Active health checks
// ---------------------------------------------------------------------------------------------

const HEALTH: &str = r#"
[upstream.health_check]
path = "/healthz"
interval = "100ms"
timeout = "500ms"
healthy = 2
unhealthy = 2
"#;

#[test]
fn active_health_checks_take_an_endpoint_out_and_back() {
    let (ha, hb) = (Arc::new(AtomicU16::new(200)), Arc::new(AtomicU16::new(200)));
    let (a, b) = (checked("a", &ha), checked("b", &hb));
    let port = free_port();
    let g = Gateway::start(&config(port, &list(&[a.addr, b.addr]), HEALTH, ""));
    let (a_addr, b_addr) = (a.addr.to_string(), b.addr.to_string());
    let mut c = Client::new(port);
    let seq: String = (0..10).map(|_| c.get_ok("/")).collect();
    assert_eq!(seq, "ab".repeat(5));

    // Down: after `unhealthy` (2) failed probes 100ms apart; 2s is generous slack.
    ha.store(500, Ordering::SeqCst);
    let took = wait_lines(
        &g,
        &["endpoint down: health check failed", &a_addr],
        1,
        Duration::from_secs(2),
    );
    eprintln!("down after {took:?}");
    let a_before = traffic(&a);
    let seq: String = (0..20).map(|_| c.get_ok("/")).collect();
    assert_eq!(seq, "b".repeat(20), "a down endpoint gets no traffic");
    assert_eq!(traffic(&a), a_before);

    // Up again: after `healthy` (2) passing probes.
    ha.store(200, Ordering::SeqCst);
    let took = wait_lines(
        &g,
        &["endpoint up: health check passed", &a_addr],
        1,
        Duration::from_secs(2),
    );
    eprintln!("up after {took:?}");
    let seq: String = (0..10).map(|_| c.get_ok("/")).collect();
    assert_eq!(seq.matches('a').count(), 5, "traffic returns: {seq}");

    // All down: 503 at once, without trying anything.
    ha.store(500, Ordering::SeqCst);
    hb.store(503, Ordering::SeqCst);
    wait_lines(
        &g,
        &["endpoint down: health check failed", &a_addr],
        2,
        Duration::from_secs(2),
    );
    wait_lines(
        &g,
        &["endpoint down: health check failed", &b_addr],
        1,
        Duration::from_secs(2),
    );
    let (a_before, b_before) = (traffic(&a), traffic(&b));
    for _ in 0..5 {
        let start = Instant::now();
        let r = roundtrip(addr(port), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let took = start.elapsed();
        assert_eq!(r.status, 503, "{r:?}");
        assert!(took < Duration::from_millis(100), "503 took {took:?}");
    }
    assert_eq!((traffic(&a), traffic(&b)), (a_before, b_before));
}

#[test]
fn tcp_health_check_marks_a_closed_endpoint_down() {
    // No `path`: a TCP connect check. The listener of endpoint "a" goes away: down.
    let a = Upstream::ok("a");
    let b = Upstream::ok("b");
    let a_addr = a.addr;
    let port = free_port();
    let g = Gateway::start(&config(
        port,
        &list(&[a.addr, b.addr]),
        "max_fails = 0\n[upstream.health_check]\ninterval = \"100ms\"\ntimeout = \"500ms\"\nunhealthy = 2\nhealthy = 2",
        "",
    ));
    drop(a);
    wait_lines(
        &g,
        &["endpoint down: health check failed", &a_addr.to_string()],
        1,
        Duration::from_secs(2),
    );
    // Nothing goes to "a" any more (max_fails = 0: only the active check keeps it out). Its
    // pooled connection may still be alive, so "a" answering would mean the pick ignored the
    // health table.
    let mut c = Client::new(port);
    for _ in 0..10 {
        assert_eq!(c.get_ok("/"), "b");
    }
}

#[test]
fn one_health_prober_for_all_workers() {
    // Two workers, one probe per interval: the prober is per process, not per worker.
    let h = Arc::new(AtomicU16::new(200));
    let up = checked("a", &h);
    let port = free_port();
    let cfg = config(port, &list(&[up.addr]), HEALTH, "").replace("workers = 1", "workers = 2");
    let _g = Gateway::start(&cfg);
    let probes = || {
        up.received()
            .iter()
            .filter(|r| r.request_line().contains("/healthz"))
            .count()
    };
    // Count over one second, from the first probe on.
    poll(WAIT, "a first probe", || (probes() > 0).then_some(()));
    let (start, first) = (Instant::now(), probes());
    poll(Duration::from_secs(3), "one second", || {
        (start.elapsed() >= Duration::from_secs(1)).then_some(())
    });
    let n = probes() - first;
    assert!(
        (3..=13).contains(&n),
        "{n} probes in 1s at a 100ms interval (two probers would make ~20)"
    );
}

// ---------------------------------------------------------------------------------------------
// Passive health
// ---------------------------------------------------------------------------------------------

#[test]
fn passive_ejection_after_max_fails_then_return_after_fail_timeout() {
    // "bad" answers 500 on a keep-alive connection; the gateway pools and reuses it.
    let bad = Upstream::start(|_| Action::Send(response(500, "bad")));
    let good = Upstream::ok("good");
    let port = free_port();
    let g = Gateway::start(&config(
        port,
        &list(&[bad.addr, good.addr]),
        "max_fails = 2\nfail_timeout = \"1s\"",
        "",
    ));
    let bad_addr = bad.addr.to_string();
    let ejected = [
        "endpoint ejected after consecutive failures",
        bad_addr.as_str(),
    ];
    let mut c = Client::new(port);
    // Round robin: bad, good, bad. The second 500 ejects.
    let statuses: Vec<u16> = (0..3).map(|_| c.get("/").status).collect();
    assert_eq!(statuses, [500, 200, 500]);
    let ejected_at = Instant::now();
    assert_eq!(log_lines(&g, &ejected), 1, "{}", g.log_text());
    assert_eq!(bad.received().len(), 2);
    for _ in 0..20 {
        assert_eq!(c.get_ok("/"), "good");
    }
    assert!(
        ejected_at.elapsed() < Duration::from_secs(1),
        "too slow to check the ejection window"
    );
    assert_eq!(
        bad.received().len(),
        2,
        "no request reaches an ejected endpoint"
    );

    // Back after fail_timeout (1s).
    poll(Duration::from_secs(3), "bad to get traffic again", || {
        c.get("/");
        (bad.received().len() > 2).then_some(())
    });
    let back = ejected_at.elapsed();
    assert!(back >= Duration::from_millis(900), "back after {back:?}");
    // Two more failures eject it again, for twice as long.
    poll(Duration::from_secs(2), "the second ejection", || {
        c.get("/");
        (log_lines(&g, &ejected) >= 2).then_some(())
    });
    assert_eq!(bad.received().len(), 4);
    assert_eq!(
        log_lines(&g, &[ejected[0], ejected[1], "ejected_for=2s"]),
        1,
        "{}",
        g.log_text()
    );
}

/// An endpoint that fails every request on a fresh connection (a reset, or a 5xx with
/// `connection: close`) must still be ejected after `max_fails` consecutive failures.
fn ejects_failing_endpoint(bad: Upstream) {
    let good = Upstream::ok("good");
    let port = free_port();
    let g = Gateway::start(&config(
        port,
        &list(&[bad.addr, good.addr]),
        "max_fails = 2\nfail_timeout = \"30s\"",
        "",
    ));
    for _ in 0..20 {
        let mut c = Client::new(port);
        c.get("/");
    }
    assert!(
        bad.received().len() <= 2,
        "{} requests reached an endpoint that failed every one (max_fails = 2); log:\n{}",
        bad.received().len(),
        g.log_text()
    );
    assert_eq!(
        log_lines(&g, &["endpoint ejected after consecutive failures"]),
        1
    );
}

#[test]
fn passive_ejection_counts_resets_on_fresh_connections() {
    ejects_failing_endpoint(Upstream::start(|_| Action::SendReset(Vec::new())));
}

#[test]
fn passive_ejection_counts_5xx_that_close_the_connection() {
    ejects_failing_endpoint(Upstream::start(|_| Action::SendClose(closing(500, "bad"))));
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker
// ---------------------------------------------------------------------------------------------

const BREAKER: &str = r#"max_fails = 0
[upstream.circuit_breaker]
error_rate = 0.5
min_requests = 4
window = "10s"
open_for = "500ms"
half_open_probes = 1
"#;

/// An upstream answering `status` (changeable) to everything.
fn switchable(status: &Arc<AtomicU16>) -> Upstream {
    let status = status.clone();
    Upstream::start(move |_| {
        let s = status.load(Ordering::SeqCst);
        Action::Send(response(s, if s == 200 { "fine" } else { "failing" }))
    })
}

/// Sends the 4 failing requests that open the breaker; returns when the 4th answer arrived.
fn trip(c: &mut Client, g: &Gateway, up: &Upstream) -> Instant {
    for i in 0..4 {
        assert_eq!(c.get("/").status, 500, "request {i}");
    }
    let opened = Instant::now();
    assert_eq!(up.received().len(), 4);
    wait_lines(g, &["circuit breaker open"], 1, WAIT);
    opened
}

#[test]
fn circuit_breaker_opens_probes_and_closes() {
    let status = Arc::new(AtomicU16::new(500));
    let up = switchable(&status);
    let port = free_port();
    let g = Gateway::start(&config(port, &list(&[up.addr]), BREAKER, ""));
    let mut c = Client::new(port);
    let opened = trip(&mut c, &g, &up);

    // Open: 503 at once, nothing reaches the upstream. The breaker opened before the 4th answer
    // arrived, so the 400ms after it are inside `open_for`.
    let mut answered = 0;
    while opened.elapsed() < Duration::from_millis(400) {
        let start = Instant::now();
        let r = c.get("/");
        assert_eq!(r.status, 503, "{r:?}");
        assert!(start.elapsed() < Duration::from_millis(100));
        answered += 1;
    }
    assert!(answered > 0);
    assert_eq!(
        up.received().len(),
        4,
        "an open breaker must not touch the upstream"
    );

    // After open_for one probe goes through; it fails, so the breaker opens again.
    let mut rejected = 0;
    let probe = poll(Duration::from_secs(3), "the first probe", || {
        let r = c.get("/");
        match r.status {
            503 => {
                rejected += 1;
                None
            }
            s => Some(s),
        }
    });
    let probed_after = opened.elapsed();
    assert_eq!(probe, 500);
    assert!(
        probed_after >= Duration::from_millis(450),
        "probe after {probed_after:?}"
    );
    assert_eq!(up.received().len(), 5, "exactly one probe");
    wait_lines(&g, &["circuit breaker open"], 2, WAIT);
    let reopened = Instant::now();
    assert_eq!(c.get("/").status, 503, "a failed probe reopens the breaker");

    // Heal the upstream; the next probe succeeds and closes the breaker.
    status.store(200, Ordering::SeqCst);
    let first_ok = poll(Duration::from_secs(3), "a successful probe", || {
        let r = c.get("/");
        (r.status == 200).then(|| text(&r))
    });
    assert_eq!(first_ok, "fine");
    assert!(reopened.elapsed() >= Duration::from_millis(400));
    assert_eq!(up.received().len(), 6, "one probe per half-open round");
    wait_lines(&g, &["circuit breaker closed"], 1, WAIT);
    for _ in 0..10 {
        assert_eq!(c.get_ok("/"), "fine");
    }
    assert_eq!(up.received().len(), 16);
}

#[test]
fn circuit_breaker_logs_half_open() {
    let status = Arc::new(AtomicU16::new(500));
    let up = switchable(&status);
    let port = free_port();
    let g = Gateway::start(&config(port, &list(&[up.addr]), BREAKER, ""));
    let mut c = Client::new(port);
    trip(&mut c, &g, &up);
    status.store(200, Ordering::SeqCst);
    poll(Duration::from_secs(3), "a successful probe", || {
        (c.get("/").status == 200).then_some(())
    });
    wait_lines(&g, &["circuit breaker closed"], 1, WAIT);
    // The transition open → half-open is the one in between; its log line must be there too.
    let log = g.log_text();
    let at = |needle: &str| log.find(needle);
    let (open, half, closed) = (
        at("circuit breaker open"),
        at("circuit breaker half-open"),
        at("circuit breaker closed"),
    );
    assert!(
        half.is_some() && open < half && half < closed,
        "no half-open line between open and closed:\n{log}"
    );
}

#[test]
fn open_circuit_breaker_serves_the_route_fallback() {
    let status = Arc::new(AtomicU16::new(500));
    let up = switchable(&status);
    let port = free_port();
    let g = Gateway::start(&config(
        port,
        &list(&[up.addr]),
        BREAKER,
        "fallback = { status = 503, body = \"circuit open, try later\" }",
    ));
    let mut c = Client::new(port);
    trip(&mut c, &g, &up);
    let r = c.get("/");
    assert_eq!(
        (r.status, text(&r).as_str()),
        (503, "circuit open, try later")
    );
    assert_eq!(r.header("content-length"), Some("23"));
    assert!(c.is_open(), "a bodiless request keeps its connection");
    assert_eq!(up.received().len(), 4);
}

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

const RETRY: &str = "retry = { attempts = 2, budget = 0.1 }";

/// A gateway over [bad, good] with retries on; returns the first GET's answer.
fn retried_get(bad: &Upstream, good: &Upstream, request: &[u8]) -> Response {
    let port = free_port();
    let _g = Gateway::start(&config(
        port,
        &list(&[bad.addr, good.addr]),
        "max_fails = 0",
        RETRY,
    ));
    roundtrip(addr(port), request)
}

const GET: &[u8] = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";

#[test]
fn a_failed_get_is_retried_on_another_endpoint() {
    // Reset before the response head.
    let bad = Upstream::start(|_| Action::SendReset(Vec::new()));
    let good = Upstream::ok("good");
    let r = retried_get(&bad, &good, GET);
    assert_eq!((r.status, text(&r).as_str()), (200, "good"));
    assert_eq!(bad.received().len(), 1);
    let got = good.wait_requests(1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("x-coregate-retry").as_deref(), Some("1"));

    // A 503 answer.
    let bad = Upstream::start(|_| Action::Send(response(503, "busy")));
    let good = Upstream::ok("good");
    let r = retried_get(&bad, &good, GET);
    assert_eq!((r.status, text(&r).as_str()), (200, "good"));
    assert_eq!(bad.received().len(), 1);
    assert_eq!(
        good.received()[0].header("x-coregate-retry").as_deref(),
        Some("1")
    );

    // A 500 is the application's answer: relayed, not retried.
    let bad = Upstream::start(|_| Action::Send(response(500, "app error")));
    let good = Upstream::ok("good");
    let r = retried_get(&bad, &good, GET);
    assert_eq!((r.status, text(&r).as_str()), (500, "app error"));
    assert_eq!(good.received().len(), 0);
}

#[test]
fn each_retry_goes_to_a_new_endpoint_and_is_numbered() {
    // Round robin over [bad, bad, good]: attempt, retry 1, retry 2.
    let bads = [
        Upstream::start(|_| Action::SendReset(Vec::new())),
        Upstream::start(|_| Action::Send(response(502, "bad gateway"))),
    ];
    let good = Upstream::ok("good");
    let port = free_port();
    let _g = Gateway::start(&config(
        port,
        &list(&[bads[0].addr, bads[1].addr, good.addr]),
        "max_fails = 0",
        RETRY,
    ));
    let r = roundtrip(addr(port), GET);
    assert_eq!((r.status, text(&r).as_str()), (200, "good"));
    let first = bads[0].received();
    let second = bads[1].received();
    let third = good.received();
    assert_eq!((first.len(), second.len(), third.len()), (1, 1, 1));
    assert_eq!(first[0].header("x-coregate-retry"), None);
    assert_eq!(second[0].header("x-coregate-retry").as_deref(), Some("1"));
    assert_eq!(third[0].header("x-coregate-retry").as_deref(), Some("2"));
}

/// An upstream answering 200 "warm" to its first request and `status` to every later one.
fn warm_then(status: u16) -> Upstream {
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Upstream::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            Action::Send(response(200, "warm"))
        } else {
            Action::Send(response(status, "failing"))
        }
    })
}

/// `[bad weight 10, good weight 1]` with smooth WRR: the picks run a, a, a (the third even after
/// a failure lowered bad's effective weight to 3/4), so only the `tried` set keeps a retry or a
/// hedge of the second request off "bad".
fn heavy_bad(bad: &Upstream, good: &Upstream) -> String {
    format!(
        "{{ addr = \"{}\", weight = 10 }}, {{ addr = \"{}\", weight = 1 }}",
        bad.addr, good.addr
    )
}

#[test]
fn a_retry_avoids_an_endpoint_reached_on_a_pooled_connection() {
    // Request 1 warms a pooled connection to "bad"; request 2 goes out on it and gets a 503. Its
    // retry must avoid "bad" like a retry after a fresh connection does.
    let bad = warm_then(503);
    let good = Upstream::ok("good");
    let port = free_port();
    let _g = Gateway::start(&config(
        port,
        &heavy_bad(&bad, &good),
        "balance = \"weighted_round_robin\"\nmax_fails = 0",
        RETRY,
    ));
    let mut c = Client::new(port);
    assert_eq!(c.get_ok("/"), "warm");
    let r = c.get("/");
    let seen = bad.received();
    assert_eq!(
        seen.iter().map(|r| r.conn).collect::<Vec<_>>()[..2],
        [0, 0],
        "request 2 went out on the pooled connection"
    );
    assert_eq!((r.status, text(&r).as_str()), (200, "good"));
    assert_eq!(
        seen.len(),
        2,
        "the retry went back to the endpoint that just failed: {:?}",
        seen.iter()
            .map(|r| (r.conn, r.header("x-coregate-retry")))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        good.received()[0].header("x-coregate-retry").as_deref(),
        Some("1")
    );
}

#[test]
fn a_post_that_reached_an_upstream_is_never_resent() {
    // The upstream reads the whole body, then resets.
    let bad = Upstream::start(|_| Action::SendReset(Vec::new()));
    let good = Upstream::ok("good");
    let r = retried_get(
        &bad,
        &good,
        b"POST /pay HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.status, 502, "{r:?}");
    let got = bad.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"hello");
    assert_eq!(
        good.received().len(),
        0,
        "the POST must not go anywhere else"
    );
}

#[test]
fn a_request_already_retried_upstream_of_us_is_not_retried() {
    let bad = Upstream::start(|_| Action::SendReset(Vec::new()));
    let good = Upstream::ok("good");
    let r = retried_get(
        &bad,
        &good,
        b"GET /x HTTP/1.1\r\nHost: a\r\nx-coregate-retry: 1\r\n\r\n",
    );
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(bad.received().len(), 1);
    assert_eq!(good.received().len(), 0);
}

/// 50 GETs to three endpoints that all reset, with `budget = 0.0`: (statuses, bodies, retries
/// seen upstream).
fn spend_budget(route_extra: &str) -> (Vec<(u16, String)>, usize) {
    let ups: Vec<Upstream> = (0..3)
        .map(|_| Upstream::start(|_| Action::SendReset(Vec::new())))
        .collect();
    let port = free_port();
    let _g = Gateway::start(&config(
        port,
        &list(&addrs(&ups)),
        "max_fails = 0",
        &format!("retry = {{ attempts = 2, budget = 0.0 }}\n{route_extra}"),
    ));
    let mut c = Client::new(port);
    let answers: Vec<(u16, String)> = (0..50)
        .map(|_| {
            let r = c.get("/");
            (r.status, text(&r))
        })
        .collect();
    let seen: Vec<_> = ups.iter().flat_map(|u| u.received()).collect();
    let retries = seen
        .iter()
        .filter(|r| r.header("x-coregate-retry").is_some())
        .count();
    assert_eq!(
        seen.len(),
        50 + retries,
        "every request reached an upstream"
    );
    (answers, retries)
}

#[test]
fn the_retry_budget_caps_retries_and_then_serves_the_fallback() {
    let (answers, retries) = spend_budget("");
    eprintln!("retries with budget 0: {retries}");
    assert!(
        (1..=3).contains(&retries),
        "{retries} retries with budget 0 (MIN_RETRIES = 3)"
    );
    assert!(answers.iter().all(|(s, _)| *s == 502), "{answers:?}");

    let (answers, retries) =
        spend_budget("fallback = { status = 503, body = \"retry budget spent\" }");
    assert!((1..=3).contains(&retries), "{retries}");
    let fallbacks = answers
        .iter()
        .filter(|(s, b)| *s == 503 && b == "retry budget spent")
        .count();
    assert!(
        answers
            .iter()
            .all(|(s, b)| *s == 502 || (*s == 503 && b == "retry budget spent")),
        "{answers:?}"
    );
    assert!(fallbacks >= 47, "{fallbacks} fallbacks: {answers:?}");
}

// ---------------------------------------------------------------------------------------------
// Hedging
// ---------------------------------------------------------------------------------------------

/// An endpoint that answers its first `warm` requests at once (leaving a pooled connection
/// behind), and later ones only after 1s; if the gateway closes the connection before that, it
/// records when it saw the EOF in `eof_at` and never answers.
fn slow_after(warm: usize, eof_at: &Arc<Mutex<Option<Instant>>>) -> Upstream {
    let e = eof_at.clone();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Upstream::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < warm {
            return Action::Send(response(200, "warm"));
        }
        let e = e.clone();
        Action::Takeover(
            Vec::new(),
            Box::new(move |mut s| {
                let start = Instant::now();
                s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                let mut b = [0u8; 64];
                while start.elapsed() < Duration::from_secs(1) {
                    match s.read(&mut b) {
                        Ok(0) => {
                            *e.lock().unwrap() = Some(Instant::now());
                            return;
                        }
                        Ok(_) => {}
                        Err(err)
                            if matches!(
                                err.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => {
                            *e.lock().unwrap() = Some(Instant::now());
                            return;
                        }
                    }
                }
                let _ = s.write_all(&response(200, "slow"));
            }),
        )
    })
}

#[test]
fn a_hedge_wins_over_a_slow_endpoint_whose_connection_is_then_closed() {
    let eof_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let slow = slow_after(0, &eof_at);
    let fast = Upstream::ok("fast");
    let port = free_port();
    let _g = Gateway::start(&config(
        port,
        &list(&[slow.addr, fast.addr]),
        "",
        "hedge = { after = \"50ms\" }",
    ));
    let start = Instant::now();
    let r = roundtrip(addr(port), GET);
    let answered = Instant::now();
    let took = answered - start;
    assert_eq!((r.status, text(&r).as_str()), (200, "fast"));
    assert!(
        took < Duration::from_millis(500),
        "hedged request took {took:?}"
    );
    assert!(
        took >= Duration::from_millis(50),
        "hedged before `after`: {took:?}"
    );
    assert_eq!(
        slow.received().len(),
        1,
        "the first copy went to the slow endpoint"
    );
    let got = fast.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("x-coregate-retry").as_deref(), Some("1"));
    let eof = poll(
        Duration::from_secs(2),
        "the slow endpoint to see EOF",
        || *eof_at.lock().unwrap(),
    );
    assert!(
        eof.saturating_duration_since(answered) < Duration::from_millis(500),
        "the loser's connection closed {:?} after the winner answered",
        eof.saturating_duration_since(answered)
    );
}

#[test]
fn a_hedge_avoids_an_endpoint_reached_on_a_pooled_connection() {
    // Request 1 warms a pooled connection to "slow"; request 2 goes out on it and stalls. The
    // hedge must go to the other endpoint (weights as in `heavy_bad`).
    let eof_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let slow = slow_after(1, &eof_at);
    let fast = Upstream::ok("fast");
    let port = free_port();
    let _g = Gateway::start(&config(
        port,
        &heavy_bad(&slow, &fast),
        "balance = \"weighted_round_robin\"",
        "hedge = { after = \"50ms\" }",
    ));
    let mut c = Client::new(port);
    assert_eq!(c.get_ok("/"), "warm");
    let start = Instant::now();
    let r = c.get("/");
    let took = start.elapsed();
    let seen = slow.received();
    assert_eq!(
        seen[1].conn, 0,
        "request 2 went out on the pooled connection"
    );
    assert_eq!(
        (r.status, text(&r).as_str(), seen.len()),
        (200, "fast", 2),
        "took {took:?}; the hedge went to {:?}",
        seen.iter()
            .map(|r| (r.conn, r.header("x-coregate-retry")))
            .collect::<Vec<_>>()
    );
    assert!(took < Duration::from_millis(500), "took {took:?}");
}

// ---------------------------------------------------------------------------------------------
// Fallback
// ---------------------------------------------------------------------------------------------

#[test]
fn fallback_when_every_endpoint_refuses_and_the_connection_lives_on() {
    let ok = Upstream::ok("elsewhere");
    let port = free_port();
    let cfg = format!(
        r#"
[runtime]
workers = 1

[[listener]]
name = "web"
bind = "127.0.0.1:{port}"

[[route]]
listener = "web"
upstream = "app"
fallback = {{ status = 503, body = "try later" }}

[[route]]
listener = "web"
path_prefix = "/ok/"
upstream = "other"

[[upstream]]
name = "app"
endpoints = [{}]

[[upstream]]
name = "other"
endpoints = ["{}"]
"#,
        list(&[dead_addr(), dead_addr()]),
        ok.addr
    );
    let _g = Gateway::start(&cfg);
    let mut c = Client::new(port);
    for _ in 0..8 {
        let r = c.get("/");
        assert_eq!((r.status, text(&r).as_str()), (503, "try later"), "{r:?}");
        assert_eq!(r.header("content-length"), Some("9"));
        assert!(c.is_open(), "a fallback keeps the connection: {r:?}");
    }
    assert_eq!(c.get_ok("/ok/x"), "elsewhere");
    let r = c.get("/");
    assert_eq!((r.status, text(&r).as_str()), (503, "try later"));
}
