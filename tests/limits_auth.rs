//! Rate limits and route auth on the HTTP request path, over real sockets: 429 with
//! `Retry-After` and keep-alive, per-key buckets (client address, header), the global limit's
//! accuracy across two workers, each auth method accepting and refusing (with its challenge),
//! and auth running before the rate limit.
//!
//! Each test runs its own gateway on its own port, with `workers = 1` (one limiter slice, one
//! auth cache: exact sequences) unless it is about workers. Clients bind 127.0.0.x source
//! addresses where a test needs several clients; all traffic stays on loopback. Waits poll with
//! a bound; the only sleeps pace the load generator of the accuracy tests.

mod common;
use common::upstream::Upstream;
use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One listener on 127.0.0.1:`port`, upstream "app", then `routes` (from [`route`]).
fn config(port: u16, up: SocketAddr, workers: usize, routes: &str) -> String {
    format!(
        r#"
[runtime]
workers = {workers}
shutdown_timeout = "1s"

[[listener]]
name = "web"
bind = "127.0.0.1:{port}"

[[upstream]]
name = "app"
endpoints = ["{up}"]

{routes}
"#
    )
}

/// A `[[route]]` to "app" under `prefix`; `extra` goes inside the table (sub-tables last).
fn route(prefix: &str, extra: &str) -> String {
    format!(
        "[[route]]\nlistener = \"web\"\nupstream = \"app\"\npath_prefix = \"{prefix}\"\n{extra}\n"
    )
}

/// A client connection from `source` (any 127.0.0.x: all of 127/8 is loopback on Linux).
fn connect_from(source: [u8; 4], port: u16) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((source, 0)).into()).unwrap();
    s.connect_timeout(&addr(port).into(), WAIT).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// A bodiless GET on `s` with extra header lines; the response.
fn get(s: &mut TcpStream, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: a\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    read_response(s).unwrap()
}

/// A GET on a new connection from `source`.
fn get_from(source: [u8; 4], port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    get(&mut connect_from(source, port), path, headers)
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).to_string()
}

/// `Retry-After` as whole seconds.
fn retry_after(r: &Response) -> u64 {
    r.header("retry-after")
        .unwrap_or_else(|| panic!("no retry-after: {r:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("retry-after not whole seconds: {r:?}"))
}

/// Checks a locally generated refusal: `status`, framed by content-length with a short text
/// body, and kept alive (the request had no body).
fn assert_refusal(r: &Response, status: u16) {
    assert_eq!(r.status, status, "{r:?}");
    let len: usize = r
        .header("content-length")
        .unwrap_or_else(|| panic!("no content-length: {r:?}"))
        .parse()
        .unwrap();
    assert_eq!(len, r.body.len());
    assert!(
        (1..=64).contains(&len) && text(r).starts_with(&status.to_string()),
        "{r:?}"
    );
    assert_eq!(r.header("content-type"), Some("text/plain"), "{r:?}");
    assert_eq!(r.header("connection"), None, "keep-alive expected: {r:?}");
}

/// Paths the upstream received, in order.
fn paths(up: &Upstream) -> Vec<String> {
    up.received()
        .iter()
        .map(|r| r.request_line().split(' ').nth(1).unwrap_or("").to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------------

#[test]
fn rate_limit_burst_then_429_then_recovery_on_the_same_connection() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let _g = Gateway::start(&config(
        port,
        up.addr,
        1,
        &route("/", "rate_limit = { rps = 20, burst = 5 }"),
    ));
    let mut c = connect(addr(port));

    // The bucket starts full: the burst passes at once, the next request is refused.
    let start = Instant::now();
    let mut passed = 0;
    let refused = loop {
        let r = get(&mut c, &format!("/burst-{passed}"), &[]);
        match r.status {
            200 => passed += 1,
            429 => break r,
            _ => panic!("{r:?}"),
        }
        assert!(passed <= 50, "never limited");
    };
    let elapsed = start.elapsed();
    // Exactly the burst; 20 rps refills one token per 50 ms, so a slow box may see one more.
    let refilled = (elapsed.as_secs_f64() * 20.0).floor() as usize;
    assert!(
        (5..=5 + refilled).contains(&passed),
        "{passed} passed in {elapsed:?} before the first 429"
    );
    assert_refusal(&refused, 429);
    assert_eq!(text(&refused), "429 Too Many Requests\n");
    let wait = retry_after(&refused);
    assert!(wait >= 1, "{refused:?}");
    // The refused request never reached the upstream.
    let seen = paths(&up);
    assert_eq!(seen.len(), passed, "{seen:?}");
    assert!(!seen.contains(&format!("/burst-{passed}")), "{seen:?}");

    // Recovery on the same keep-alive connection: a token comes back within Retry-After.
    let limited_at = Instant::now();
    let mut refusals = 0;
    poll(WAIT, "a request to pass again", || {
        let r = get(&mut c, "/again", &[]);
        match r.status {
            200 => Some(()),
            429 => {
                assert_refusal(&r, 429);
                refusals += 1;
                None
            }
            _ => panic!("{r:?}"),
        }
    });
    let recovered = limited_at.elapsed();
    println!("burst {passed} in {elapsed:?}; retry-after {wait}; recovered after {recovered:?} ({refusals} more 429s)");
    assert!(
        recovered < Duration::from_secs(wait),
        "recovered after {recovered:?}, retry-after said {wait}s"
    );
    assert_eq!(up.received().len(), passed + 1);

    // A request with a body that is refused closes the connection (its body is not read).
    let mut closed = None;
    for _ in 0..50 {
        let mut s = connect(addr(port));
        s.write_all(b"POST /body HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\n\r\nhello")
            .unwrap();
        let r = read_response(&mut s).unwrap();
        if r.status == 429 {
            closed = Some((r, s));
            break;
        }
        assert_eq!(r.status, 200, "{r:?}");
    }
    let (r, mut s) = closed.expect("a POST refused with 429");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert!(retry_after(&r) >= 1);
    assert!(closed_by_peer(&mut s));
}

/// `n` GETs on `s` must give `want`; the 429 among them says to retry within `max_wait` s.
fn expect_statuses(s: &mut TcpStream, headers: &[(&str, &str)], want: &[u16], max_wait: u64) {
    let mut got = Vec::new();
    for _ in want {
        let r = get(s, "/k", headers);
        if r.status == 429 {
            assert_refusal(&r, 429);
            let w = retry_after(&r);
            assert!((1..=max_wait).contains(&w), "{r:?}");
        }
        got.push(r.status);
    }
    assert_eq!(got, want, "headers {headers:?}");
}

#[test]
fn client_ip_keys_give_each_address_its_own_bucket() {
    let up = Upstream::ok("ok");
    let port = free_port();
    // One token per 10 s: nothing refills while the test runs.
    let _g = Gateway::start(&config(
        port,
        up.addr,
        1,
        &route(
            "/",
            r#"rate_limit = { rps = 0.1, burst = 3, key = "client_ip" }"#,
        ),
    ));
    let mut one = connect_from([127, 0, 0, 1], port);
    let mut two = connect_from([127, 0, 0, 2], port);
    expect_statuses(&mut one, &[], &[200, 200, 200, 429, 429], 10);
    // 127.0.0.1 exhausted; 127.0.0.2 still has its whole burst.
    expect_statuses(&mut two, &[], &[200, 200, 200, 429], 10);
    // The key is the address, not the connection: a new one from 127.0.0.1 is still limited.
    let r = get_from([127, 0, 0, 1], port, "/k", &[]);
    assert_refusal(&r, 429);
    // And a third address is untouched by both.
    assert_eq!(get_from([127, 0, 0, 3], port, "/k", &[]).status, 200);
    assert_eq!(up.received().len(), 7);
}

#[test]
fn header_keys_give_each_user_its_own_bucket_and_no_header_shares_one() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let _g = Gateway::start(&config(
        port,
        up.addr,
        1,
        &route(
            "/",
            r#"rate_limit = { rps = 0.1, burst = 3, key = "header:x-user" }"#,
        ),
    ));
    let alice = [("x-user", "alice")];
    let bob = [("x-user", "bob")];
    let mut c = connect_from([127, 0, 0, 1], port);
    expect_statuses(&mut c, &alice, &[200, 200, 200, 429], 10);
    // Same connection, another user: a bucket of its own.
    expect_statuses(&mut c, &bob, &[200, 200, 200, 429], 10);
    // The key is the header, not the address: alice from elsewhere is still limited.
    let mut other = connect_from([127, 0, 0, 2], port);
    expect_statuses(&mut other, &alice, &[429], 10);
    // Header names are case-insensitive; the value is the key.
    expect_statuses(&mut other, &[("X-User", "bob")], &[429], 10);
    // Without the header: one shared "no key" bucket, whatever the address.
    expect_statuses(&mut c, &[], &[200, 200, 200, 429], 10);
    expect_statuses(&mut other, &[], &[429], 10);
    assert_eq!(get_from([127, 0, 0, 3], port, "/k", &[]).status, 429);
    // A fresh user is untouched by all of that.
    expect_statuses(&mut other, &[("x-user", "carol")], &[200], 10);

    let mut per_user = BTreeMap::new();
    for r in up.received() {
        *per_user
            .entry(r.header("x-user").unwrap_or_default())
            .or_insert(0) += 1;
    }
    let want: BTreeMap<String, i32> = [("", 3), ("alice", 3), ("bob", 3), ("carol", 1)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(per_user, want);
}

// ---- accuracy of the global limit over two workers ----------------------------------------

/// The accuracy tests measure rates: they run one at a time, not against each other.
static LOAD: Mutex<()> = Mutex::new(());

const RPS: f64 = 200.0;
const BURST: f64 = 200.0;
/// Offered load: twice the limit.
const OFFERED: f64 = 2.0 * RPS;
/// How long load is offered; the first `WARMUP` seconds are left out of the count (they admit
/// the burst, and the bucket is empty only after about one second at 2 × rps).
const RUN: Duration = Duration::from_secs(7);
const WARMUP: usize = 2;
/// A pause in the offered load longer than this (the client or the gateway starved of CPU)
/// makes a run unfit to judge the limiter: the bucket fills up to `burst` during a pause and
/// the tokens beyond it are lost, so fewer than `rps` a second can be admitted through no
/// fault of the limiter. Below `burst / rps` (1 s) nothing is lost; half of that is the margin.
const MAX_PAUSE: f64 = 0.5;
/// Runs measured before giving up on a paced one.
const ATTEMPTS: usize = 3;

/// What one connection saw: (seconds since the load started when sent, status).
type Samples = Vec<(f64, u16)>;

/// Offers `total_rps` spread evenly over `conns` keep-alive connections (each paced at its share,
/// phase-shifted; a connection that falls behind catches up) for `run`.
fn paced_load(conns: Vec<TcpStream>, total_rps: f64, run: Duration) -> Vec<Samples> {
    let n = conns.len();
    let period = Duration::from_secs_f64(n as f64 / total_rps);
    let t0 = Instant::now() + Duration::from_millis(100);
    let threads: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            std::thread::spawn(move || {
                let phase = period.mul_f64(i as f64 / n as f64);
                let mut out = Vec::new();
                for k in 0u32.. {
                    let due = t0 + phase + period * k;
                    if due >= t0 + run {
                        break;
                    }
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now); // pacing, not synchronisation
                    }
                    let sent = (Instant::now() - t0).as_secs_f64();
                    s.write_all(b"GET /load HTTP/1.1\r\nHost: a\r\n\r\n")
                        .unwrap();
                    let r = read_response(&mut s).unwrap();
                    assert!(r.status == 200 || r.status == 429, "{r:?}");
                    out.push((sent, r.status));
                }
                out
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// The worker each of `conns` landed on, from the gateway's debug log (polled until all are in).
fn workers_of(g: &Gateway, conns: &[TcpStream]) -> Vec<usize> {
    let ports: Vec<u16> = conns
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect();
    poll(WAIT, "every connection in the accept log", || {
        let text = g.log_text();
        let mut found = vec![None; ports.len()];
        for line in text.lines().filter(|l| l.contains("connection accepted")) {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .map(str::to_string)
            };
            let (Some(w), Some(peer)) = (field("worker="), field("peer=")) else {
                continue;
            };
            let port: u16 = peer.rsplit(':').next().unwrap().parse().unwrap();
            if let Some(i) = ports.iter().position(|&p| p == port) {
                found[i] = Some(w.parse::<usize>().unwrap());
            }
        }
        found.into_iter().collect::<Option<Vec<_>>>()
    })
}

/// One run's figures over the measured window (seconds `WARMUP..RUN`).
struct Measured {
    /// Per second of the run: requests sent, and answered 200.
    sent: Vec<usize>,
    ok: Vec<usize>,
    offered: usize,
    admitted: usize,
    /// What one process-wide token bucket (rps, burst, full at the start) would have admitted
    /// of the same requests, in the window.
    ideal: usize,
    /// The longest time in the window without any request sent, in seconds.
    pause: f64,
    /// Per worker: (sent, admitted) in the window.
    per_worker: [(usize, usize); 2],
}

impl Measured {
    fn new(samples: &[Samples], workers: &[usize]) -> Measured {
        let secs = RUN.as_secs() as usize;
        let in_window = |t: f64| t >= WARMUP as f64;
        let mut m = Measured {
            sent: vec![0; secs],
            ok: vec![0; secs],
            offered: 0,
            admitted: 0,
            ideal: 0,
            pause: 0.0,
            per_worker: [(0, 0); 2],
        };
        let mut all: Vec<f64> = Vec::new();
        for (conn, s) in samples.iter().enumerate() {
            for &(t, status) in s {
                let ok = usize::from(status == 200);
                let sec = (t as usize).min(secs - 1);
                m.sent[sec] += 1;
                m.ok[sec] += ok;
                all.push(t);
                if in_window(t) {
                    m.offered += 1;
                    m.admitted += ok;
                    m.per_worker[workers[conn]].0 += 1;
                    m.per_worker[workers[conn]].1 += ok;
                }
            }
        }
        all.sort_by(f64::total_cmp);
        let (mut tokens, mut at) = (BURST, 0.0);
        let mut last = WARMUP as f64;
        for &t in &all {
            tokens = (tokens + (t - at) * RPS).min(BURST);
            at = t;
            let admit = tokens >= 1.0;
            if admit {
                tokens -= 1.0;
            }
            if in_window(t) {
                m.ideal += usize::from(admit);
                m.pause = m.pause.max(t - last);
                last = t;
            }
        }
        m.pause = m.pause.max(RUN.as_secs_f64() - last);
        m
    }

    fn expected() -> f64 {
        RPS * (RUN.as_secs_f64() - WARMUP as f64)
    }

    /// Whether the load was offered as planned: above the limit, without a long pause.
    fn paced(&self) -> bool {
        self.pause <= MAX_PAUSE && self.offered as f64 >= 1.5 * Self::expected()
    }

    fn report(&self, what: &str) -> String {
        let expected = Self::expected();
        format!(
            "{what}: sent/s {:?}, 200s/s {:?}; seconds {WARMUP}..{}: offered {}, admitted {} \
             vs {expected} ({:+.1}%), one ideal bucket fed the same requests {} ({:+.1}%); \
             longest pause {:.3} s; per worker (offered, admitted) {:?}",
            self.sent,
            self.ok,
            RUN.as_secs(),
            self.offered,
            self.admitted,
            (self.admitted as f64 / expected - 1.0) * 100.0,
            self.ideal,
            (self.admitted as f64 / self.ideal as f64 - 1.0) * 100.0,
            self.pause,
            self.per_worker,
        )
    }
}

/// Runs the load on `conns` fresh connections to a fresh two-worker gateway, up to `ATTEMPTS`
/// times until a run is paced, and asserts the 200s in the window are within ±10% of
/// `rps × seconds`. Should no run be paced (the box too busy to offer the load evenly), the
/// last run is held to the same ±10% against one ideal bucket fed the same requests instead.
fn assert_accurate(what: &str, conns: usize) {
    let _serial = LOAD.lock().unwrap_or_else(|e| e.into_inner());
    let mut last = None;
    for attempt in 1..=ATTEMPTS {
        let up = Upstream::ok("ok");
        let port = free_port();
        let g = Gateway::start_with(
            &config(
                port,
                up.addr,
                2,
                &route(
                    "/",
                    &format!("rate_limit = {{ rps = {RPS}, burst = {BURST} }}"),
                ),
            ),
            &[],
            &["--log-level", "info,coregate::runtime::accept=debug"],
        );
        let streams: Vec<TcpStream> = (0..conns).map(|_| connect(addr(port))).collect();
        let workers = workers_of(&g, &streams);
        let on0 = workers.iter().filter(|&&w| w == 0).count();
        println!(
            "{what}, attempt {attempt}: connections on worker 0 / 1: {on0} / {}",
            conns - on0
        );
        if conns > 1 {
            assert!(
                on0 > 0 && on0 < conns,
                "the kernel put all {conns} connections on one worker: {workers:?}"
            );
        }
        let m = Measured::new(&paced_load(streams, OFFERED, RUN), &workers);
        println!("{}", m.report(&format!("{what}, attempt {attempt}")));
        if m.paced() {
            let error = m.admitted as f64 / Measured::expected() - 1.0;
            assert!(
                error.abs() <= 0.10,
                "{what}: admitted {} in seconds {WARMUP}..{}, expected {} ±10%",
                m.admitted,
                RUN.as_secs(),
                Measured::expected()
            );
            return;
        }
        println!(
            "{what}, attempt {attempt}: load not paced (pause {:.3} s, offered {}): measuring again",
            m.pause, m.offered
        );
        last = Some(m);
    }
    let m = last.unwrap();
    println!("{what}: no paced run in {ATTEMPTS}; judging the last against an ideal bucket");
    let error = m.admitted as f64 / m.ideal as f64 - 1.0;
    assert!(
        error.abs() <= 0.10,
        "{what}: admitted {}, one ideal bucket {} (not ±10%)",
        m.admitted,
        m.ideal
    );
}

#[test]
fn global_limit_is_accurate_with_all_traffic_on_one_worker() {
    // One keep-alive connection: it stays on the worker that accepted it.
    assert_accurate("one worker", 1);
}

#[test]
fn global_limit_is_accurate_with_traffic_spread_over_both_workers() {
    assert_accurate("spread", 16);
}

// ---------------------------------------------------------------------------------------------
// Auth
// ---------------------------------------------------------------------------------------------

/// Runs the openssl CLI; panics with its output on failure.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI is installed");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// An RSA key pair made by openssl in `dir`: (private PEM text, public key file).
fn rsa_pair(dir: &Path, name: &str) -> (String, String) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        path_str(&private),
    ]);
    openssl(&[
        "pkey",
        "-in",
        path_str(&private),
        "-pubout",
        "-out",
        path_str(&public),
    ]);
    (
        std::fs::read_to_string(private).unwrap(),
        path_str(&public).to_string(),
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: serde_json::Value) -> String {
    encode(&Header::new(alg), &claims, key).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

/// Checks a 401 with exactly `challenge` as its `WWW-Authenticate`.
fn assert_challenge(r: &Response, challenge: &str) {
    assert_refusal(r, 401);
    assert_eq!(r.header("www-authenticate"), Some(challenge), "{r:?}");
}

/// After a test, the upstream must have seen exactly the `want` paths, in order: every request
/// that was refused is missing.
fn assert_reached(up: &Upstream, want: &[&str]) {
    if !want.is_empty() {
        up.wait_requests(want.len());
    }
    assert_eq!(paths(up), want);
}

#[test]
fn ip_allow_and_deny_answer_403_without_a_challenge() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let routes = route(
        "/lan/",
        r#"auth = { ip = { allow = ["127.0.0.0/8"], deny = ["127.0.0.2"] } }"#,
    ) + &route("/one/", r#"auth = { ip = { allow = ["127.0.0.1/32"] } }"#)
        + &route("/open/", r#"auth = { ip = { deny = ["127.0.0.4/31"] } }"#);
    let _g = Gateway::start(&config(port, up.addr, 1, &routes));

    let forbidden = |r: &Response| {
        assert_refusal(r, 403);
        assert_eq!(r.header("www-authenticate"), None, "{r:?}");
    };
    assert_eq!(get_from([127, 0, 0, 1], port, "/lan/a", &[]).status, 200);
    assert_eq!(get_from([127, 0, 0, 3], port, "/lan/b", &[]).status, 200);
    // Deny wins over a matching allow.
    forbidden(&get_from([127, 0, 0, 2], port, "/lan/denied", &[]));
    // Not in the allow list.
    assert_eq!(get_from([127, 0, 0, 1], port, "/one/c", &[]).status, 200);
    forbidden(&get_from([127, 0, 0, 2], port, "/one/denied", &[]));
    forbidden(&get_from([127, 0, 0, 3], port, "/one/denied", &[]));
    // Only a deny list: everyone else passes; /31 covers .4 and .5.
    assert_eq!(get_from([127, 0, 0, 2], port, "/open/d", &[]).status, 200);
    forbidden(&get_from([127, 0, 0, 4], port, "/open/denied", &[]));
    forbidden(&get_from([127, 0, 0, 5], port, "/open/denied", &[]));
    assert_eq!(get_from([127, 0, 0, 6], port, "/open/e", &[]).status, 200);
    // A 403 keeps the connection: the same client may use another route on it.
    let mut c = connect_from([127, 0, 0, 2], port);
    forbidden(&get(&mut c, "/lan/denied", &[]));
    assert_eq!(get(&mut c, "/open/f", &[]).status, 200);

    assert_reached(
        &up,
        &[
            "/lan/a", "/lan/b", "/one/c", "/open/d", "/open/e", "/open/f",
        ],
    );
}

#[test]
fn api_keys_inline_and_from_a_file() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, "# rotated monthly\nfile-key-1\n\n  file-key-2  \r\n").unwrap();
    let routes = route(
        "/inline/",
        r#"auth = { api_key = { keys = ["inline-key-1", "inline-key-2"] } }"#,
    ) + &route(
        "/file/",
        &format!(
            r#"auth = {{ api_key = {{ header = "X-Token", keys_file = "{}" }} }}"#,
            path_str(&keys)
        ),
    );
    let _g = Gateway::start(&config(port, up.addr, 1, &routes));
    let inline = r#"ApiKey header="x-api-key""#;
    let file = r#"ApiKey header="x-token""#;

    // One keep-alive connection throughout: a 401 does not close it.
    let mut c = connect(addr(port));
    assert_challenge(&get(&mut c, "/inline/missing", &[]), inline);
    assert_challenge(
        &get(&mut c, "/inline/wrong", &[("x-api-key", "inline-key-3")]),
        inline,
    );
    assert_challenge(
        &get(&mut c, "/inline/prefix", &[("x-api-key", "inline-key")]),
        inline,
    );
    // The key of the other route does not open this one.
    assert_challenge(
        &get(&mut c, "/inline/other", &[("x-api-key", "file-key-1")]),
        inline,
    );
    assert_eq!(
        get(&mut c, "/inline/ok1", &[("x-api-key", "inline-key-1")]).status,
        200
    );
    assert_eq!(
        get(&mut c, "/inline/ok2", &[("X-API-Key", "inline-key-2")]).status,
        200
    );

    assert_challenge(&get(&mut c, "/file/missing", &[]), file);
    // The default header name does not count on a route that names another.
    assert_challenge(
        &get(&mut c, "/file/default", &[("x-api-key", "file-key-1")]),
        file,
    );
    assert_challenge(
        &get(&mut c, "/file/wrong", &[("x-token", "file-key-3")]),
        file,
    );
    // A comment line is not a key.
    assert_challenge(
        &get(&mut c, "/file/comment", &[("x-token", "# rotated monthly")]),
        file,
    );
    assert_eq!(
        get(&mut c, "/file/ok1", &[("x-token", "file-key-1")]).status,
        200
    );
    // Surrounding blanks in the file are trimmed.
    assert_eq!(
        get(&mut c, "/file/ok2", &[("x-token", "file-key-2")]).status,
        200
    );

    assert_reached(
        &up,
        &["/inline/ok1", "/inline/ok2", "/file/ok1", "/file/ok2"],
    );
    // The key travels on to the upstream (nothing strips it).
    assert_eq!(
        up.received()[0].header("x-api-key").as_deref(),
        Some("inline-key-1")
    );
}

#[test]
fn basic_auth_with_a_bcrypt_htpasswd_file_and_inline_users() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("users.htpasswd");
    // `htpasswd -B` is not installed here; the bcrypt crate makes the same $2b$/$2y$ lines.
    // Cost 8: expensive enough to tell a cache hit from a bcrypt run, cheap in a debug build.
    let hash = bcrypt::hash("s3cret pass", 8).unwrap();
    std::fs::write(&htpasswd, format!("# staff\nalice:{hash}\n")).unwrap();
    let _g = Gateway::start(&config(
        port,
        up.addr,
        1,
        &route(
            "/",
            &format!(
                r#"auth = {{ basic = {{ htpasswd = "{}", users = ["dev:devpass"], realm = "staff" }} }}"#,
                path_str(&htpasswd)
            ),
        ),
    ));
    let challenge = r#"Basic realm="staff", charset="UTF-8""#;
    let mut c = connect(addr(port));

    assert_challenge(&get(&mut c, "/missing", &[]), challenge);
    let wrong = basic("alice", "s3cret");
    assert_challenge(
        &get(&mut c, "/wrong", &[("authorization", &wrong)]),
        challenge,
    );
    let nobody = basic("mallory", "s3cret pass");
    assert_challenge(
        &get(&mut c, "/unknown", &[("authorization", &nobody)]),
        challenge,
    );
    assert_challenge(
        &get(&mut c, "/bearer", &[("authorization", "Bearer abc")]),
        challenge,
    );

    let right = basic("alice", "s3cret pass");
    let t = Instant::now();
    assert_eq!(
        get(&mut c, "/ok1", &[("authorization", &right)]).status,
        200
    );
    let first = t.elapsed();
    let t = Instant::now();
    assert_eq!(
        get(&mut c, "/ok2", &[("authorization", &right)]).status,
        200
    );
    let second = t.elapsed();
    println!("basic: first (bcrypt) {first:?}, second (cached) {second:?}");
    // A cached success does not let a wrong password in.
    assert_challenge(
        &get(&mut c, "/wrong-again", &[("authorization", &wrong)]),
        challenge,
    );
    // Inline plain users (dev) sit beside the file's.
    let dev = basic("dev", "devpass");
    assert_eq!(get(&mut c, "/ok3", &[("authorization", &dev)]).status, 200);
    let dev_wrong = basic("dev", "devpas");
    assert_challenge(
        &get(&mut c, "/wrong-dev", &[("authorization", &dev_wrong)]),
        challenge,
    );

    assert_reached(&up, &["/ok1", "/ok2", "/ok3"]);
}

const SECRET: &str = "hs256-test-secret-0123456789abcdef-0123";

#[test]
fn jwt_hs256_valid_expired_missing_and_wrong_issuer() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let routes = route(
        "/",
        &format!(
            "[route.auth.jwt]\nsecret = \"{SECRET}\"\nissuer = \"https://idp.test\"\n\
             audience = \"api\"\nrealm = \"R\"\n"
        ),
    );
    let _g = Gateway::start(&config(port, up.addr, 1, &routes));
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let now = unix_now();
    let token = |claims| bearer(&sign(Algorithm::HS256, &key, claims));
    let missing = r#"Bearer realm="R""#;
    let invalid = r#"Bearer realm="R", error="invalid_token""#;
    let mut c = connect(addr(port));
    let mut check = |path: &str, auth: Option<&str>, challenge: Option<&str>| {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let r = get(&mut c, path, &headers);
        match challenge {
            None => assert_eq!(r.status, 200, "{path}: {r:?}"),
            Some(ch) => assert_challenge(&r, ch),
        }
    };

    let good = token(json!({"iss": "https://idp.test", "aud": "api", "exp": now + 300}));
    check("/ok1", Some(&good), None);
    check("/missing", None, Some(missing));
    // Expired well beyond the default 60 s leeway.
    let expired = token(json!({"iss": "https://idp.test", "aud": "api", "exp": now - 3600}));
    check("/expired", Some(&expired), Some(invalid));
    let wrong_iss = token(json!({"iss": "https://evil.test", "aud": "api", "exp": now + 300}));
    check("/issuer", Some(&wrong_iss), Some(invalid));
    let wrong_aud = token(json!({"iss": "https://idp.test", "aud": "web", "exp": now + 300}));
    check("/audience", Some(&wrong_aud), Some(invalid));
    let no_exp = token(json!({"iss": "https://idp.test", "aud": "api"}));
    check("/no-exp", Some(&no_exp), Some(invalid));
    let other_key = EncodingKey::from_secret(b"another-secret-of-32-bytes-or-more!!");
    let forged = bearer(&sign(
        Algorithm::HS256,
        &other_key,
        json!({"iss": "https://idp.test", "aud": "api", "exp": now + 300}),
    ));
    check("/signature", Some(&forged), Some(invalid));
    check("/garbage", Some("Bearer not.a.jwt"), Some(invalid));
    check("/scheme", Some("Basic YTpi"), Some(invalid));
    // Within the leeway an expired token still passes; the audience may be one of a list.
    let late = token(json!({"iss": "https://idp.test", "aud": ["web", "api"], "exp": now - 10}));
    check("/ok2", Some(&late), None);

    assert_reached(&up, &["/ok1", "/ok2"]);
}

#[test]
fn jwt_rs256_with_an_openssl_key_and_a_required_claim() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = rsa_pair(dir.path(), "rs");
    let (other_private, _) = rsa_pair(dir.path(), "other");
    let routes = route(
        "/",
        &format!(
            "[route.auth.jwt]\npublic_key = \"{public}\"\nrequired_claims = {{ role = \"admin\" }}\n"
        ),
    );
    let _g = Gateway::start(&config(port, up.addr, 1, &routes));
    let key = EncodingKey::from_rsa_pem(private.as_bytes()).unwrap();
    let other = EncodingKey::from_rsa_pem(other_private.as_bytes()).unwrap();
    let now = unix_now();
    let missing = r#"Bearer realm="coregate""#;
    let invalid = r#"Bearer realm="coregate", error="invalid_token""#;
    let scope = r#"Bearer realm="coregate", error="insufficient_scope""#;
    let mut c = connect(addr(port));

    let admin = bearer(&sign(
        Algorithm::RS256,
        &key,
        json!({"role": "admin", "exp": now + 300}),
    ));
    assert_eq!(
        get(&mut c, "/ok1", &[("authorization", &admin)]).status,
        200
    );
    // A role list holding the required value satisfies it.
    let roles = bearer(&sign(
        Algorithm::RS256,
        &key,
        json!({"role": ["ops", "admin"], "exp": now + 300}),
    ));
    assert_eq!(
        get(&mut c, "/ok2", &[("authorization", &roles)]).status,
        200
    );
    assert_challenge(&get(&mut c, "/missing", &[]), missing);

    // Valid token, claim missing or different: 403 insufficient_scope (still a challenge).
    for (path, claims) in [
        ("/no-role", json!({"exp": now + 300})),
        ("/user-role", json!({"role": "user", "exp": now + 300})),
    ] {
        let t = bearer(&sign(Algorithm::RS256, &key, claims));
        let r = get(&mut c, path, &[("authorization", &t)]);
        assert_refusal(&r, 403);
        assert_eq!(r.header("www-authenticate"), Some(scope), "{r:?}");
    }
    // Another key pair's signature, an HS256 token (algorithm confusion), an expired token: 401.
    let forged = bearer(&sign(
        Algorithm::RS256,
        &other,
        json!({"role": "admin", "exp": now + 300}),
    ));
    assert_challenge(
        &get(&mut c, "/other-key", &[("authorization", &forged)]),
        invalid,
    );
    let hs = bearer(&sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(std::fs::read(&public).unwrap().as_slice()),
        json!({"role": "admin", "exp": now + 300}),
    ));
    assert_challenge(&get(&mut c, "/hs256", &[("authorization", &hs)]), invalid);
    let expired = bearer(&sign(
        Algorithm::RS256,
        &key,
        json!({"role": "admin", "exp": now - 3600}),
    ));
    assert_challenge(
        &get(&mut c, "/expired", &[("authorization", &expired)]),
        invalid,
    );

    assert_reached(&up, &["/ok1", "/ok2"]);
}

// ---------------------------------------------------------------------------------------------
// Auth and rate limit together
// ---------------------------------------------------------------------------------------------

#[test]
fn refused_requests_do_not_spend_the_rate_budget() {
    let up = Upstream::ok("ok");
    let port = free_port();
    // One token per 10 s: the budget is the burst of 3 for the whole test.
    let _g = Gateway::start(&config(
        port,
        up.addr,
        1,
        &route(
            "/",
            r#"rate_limit = { rps = 0.1, burst = 3 }
auth = { ip = { deny = ["127.0.0.2"] }, api_key = { keys = ["good-key"] } }"#,
        ),
    ));
    let challenge = r#"ApiKey header="x-api-key""#;
    let mut anon = connect_from([127, 0, 0, 1], port);
    for _ in 0..10 {
        assert_challenge(&get(&mut anon, "/anon", &[]), challenge);
    }
    for _ in 0..5 {
        assert_challenge(
            &get(&mut anon, "/wrong", &[("x-api-key", "bad-key")]),
            challenge,
        );
    }
    // A denied address with a good key: 403, and no token spent either.
    let mut denied = connect_from([127, 0, 0, 2], port);
    for _ in 0..5 {
        let r = get(&mut denied, "/denied", &[("x-api-key", "good-key")]);
        assert_refusal(&r, 403);
    }
    // The authenticated client still has its whole burst.
    let mut user = connect_from([127, 0, 0, 1], port);
    expect_statuses(
        &mut user,
        &[("x-api-key", "good-key")],
        &[200, 200, 200, 429],
        10,
    );
    // With the budget spent, auth still answers first: 401, not 429.
    assert_challenge(&get(&mut anon, "/anon", &[]), challenge);
    assert_reached(&up, &["/k", "/k", "/k"]);
}
