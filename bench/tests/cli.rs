//! Runs the real `coregate-bench` binary against small servers on 127.0.0.1.
//!
//! Load runs are serialised (one lock) so that timing assertions do not share the CPU with
//! another run, use `-t 1`, last at most 5 s each, and are killed if they overrun a bound.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_coregate-bench");
/// A run gets this long beyond its own duration before it is killed and the test fails.
const GRACE: Duration = Duration::from_secs(20);

static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    ONE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    json: Option<Value>,
}

/// Runs the binary with `args` (plus `--json` to a temp file) and waits at most `bound`.
fn run(args: &[&str], bound: Duration) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("out.json");
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--json")
        .arg(&json_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start coregate-bench");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + bound + GRACE;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("coregate-bench {args:?} overran {:?}", bound + GRACE);
        }
        thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_t.join().unwrap();
    let stderr = err_t.join().unwrap();
    let json = std::fs::read_to_string(&json_path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
        json,
    }
}

impl Run {
    fn json(&self) -> &Value {
        self.json.as_ref().unwrap_or_else(|| {
            panic!(
                "no JSON (exit {}):\nstdout:\n{}\nstderr:\n{}",
                self.code, self.stdout, self.stderr
            )
        })
    }
    fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "exit {}:\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

fn n(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

/// Starts a server on a free port; `handle` runs on its own thread for each connection.
fn serve<F>(handle: F) -> String
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let handle = Arc::new(handle);
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let h = handle.clone();
            thread::spawn(move || h(s));
        }
    });
    addr
}

/// Reads until at least one whole request head (no body) is buffered; returns how many were
/// complete, consuming them, or `None` at end of stream.
fn read_heads(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let mut count = 0;
        let mut used = 0;
        while let Some(at) = buf[used..].windows(4).position(|w| w == b"\r\n\r\n") {
            used += at + 4;
            count += 1;
        }
        if count > 0 {
            buf.drain(..used);
            return Some(count);
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

/// Answers every request with `response`, after `delay` (each request).
fn responder(response: &'static [u8], delay: Duration) -> impl Fn(TcpStream) + Send + Sync {
    move |mut s: TcpStream| {
        let _ = s.set_nodelay(true);
        let mut buf = Vec::new();
        while let Some(k) = read_heads(&mut s, &mut buf) {
            for _ in 0..k {
                if !delay.is_zero() {
                    thread::sleep(delay);
                }
                if s.write_all(response).is_err() {
                    return;
                }
            }
        }
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn url(addr: &str) -> String {
    format!("http://{addr}/")
}

#[test]
fn fixed_latency_p50() {
    let _g = serial();
    let addr = serve(responder(OK, Duration::from_millis(20)));
    let r = run(
        &["-c", "4", "-t", "1", "-d", "2s", "-q", &url(&addr)],
        Duration::from_secs(2),
    )
    .ok();
    let j = r.json();
    let p50 = n(&j["latency_us"]["p50"]);
    // Tolerance: +5 ms over the server's 20 ms (scheduling of a thread-per-connection server and
    // the generator on a shared 2-core machine).
    assert!(
        (20_000.0..=25_000.0).contains(&p50),
        "p50 {p50}us not in [20ms, 25ms]"
    );
    let reqs = n(&j["requests"]);
    // 4 connections × ~50 requests/s × 2 s.
    assert!((300.0..=420.0).contains(&reqs), "{reqs} requests");
    assert_eq!(n(&j["status"]["200"]), reqs);
    assert!(r.stdout.contains("Requests/sec"), "{}", r.stdout);
}

/// A server that, for one second starting 1.5 s after it starts, answers no connection at all
/// (each request arriving in the window waits until the window closes).
fn stalling_server() -> String {
    let born = Instant::now();
    let from = born + Duration::from_millis(1500);
    let until = from + Duration::from_secs(1);
    serve(move |mut s| {
        let _ = s.set_nodelay(true);
        let mut buf = Vec::new();
        while let Some(k) = read_heads(&mut s, &mut buf) {
            let now = Instant::now();
            if now >= from && now < until {
                thread::sleep(until - now);
            }
            for _ in 0..k {
                if s.write_all(OK).is_err() {
                    return;
                }
            }
        }
    })
}

#[test]
fn open_loop_charges_a_stall_closed_loop_hides_it() {
    let _g = serial();
    let addr = stalling_server();
    let open = run(
        &[
            "--rate",
            "200",
            "-c",
            "8",
            "-t",
            "1",
            "-d",
            "5s",
            "-q",
            &url(&addr),
        ],
        Duration::from_secs(5),
    )
    .ok();
    let addr = stalling_server();
    let closed = run(
        &["-c", "8", "-t", "1", "-d", "5s", "-q", &url(&addr)],
        Duration::from_secs(5),
    )
    .ok();
    let open_p99 = n(&open.json()["latency_us"]["p99"]);
    let closed_p99 = n(&closed.json()["latency_us"]["p99"]);
    assert!(open_p99 >= 300_000.0, "open-loop p99 {open_p99}us");
    assert!(
        open_p99 > 5.0 * closed_p99 || closed_p99 < 100_000.0,
        "open p99 {open_p99}us vs closed p99 {closed_p99}us"
    );
    // Both saw the stall: the worst request waited about a second.
    assert!(n(&open.json()["latency_us"]["max"]) >= 900_000.0);
    assert!(n(&closed.json()["latency_us"]["max"]) >= 900_000.0);
    // The open loop still made (about) its 1000 requests: the backlog was sent after the stall.
    let reqs = n(&open.json()["requests"]);
    assert!((900.0..=1010.0).contains(&reqs), "{reqs} requests");
    let rate = &open.json()["rate"];
    assert_eq!(n(&rate["requested"]), 200.0);
    assert!(closed.json().get("rate").is_none());
}

#[test]
fn open_loop_holds_its_rate() {
    let _g = serial();
    let addr = serve(responder(OK, Duration::ZERO));
    let r = run(
        &[
            "--rate",
            "1000",
            "-c",
            "8",
            "-t",
            "1",
            "-d",
            "5s",
            "-q",
            &url(&addr),
        ],
        Duration::from_secs(5),
    )
    .ok();
    let j = r.json();
    assert_eq!(j["mode"], "open");
    let achieved = n(&j["rate"]["achieved"]);
    assert!(
        (970.0..=1030.0).contains(&achieved),
        "achieved {achieved}/s for 1000/s"
    );
    assert!(!r.stderr.contains("WARNING"), "{}", r.stderr);
    let timeline = j["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 5, "{timeline:?}");
    for s in timeline {
        let k = n(&s["requests"]);
        assert!((900.0..=1100.0).contains(&k), "a second had {k} requests");
    }
    // Pipelined connections keep the schedule too.
    let r = run(
        &[
            "--rate",
            "1000",
            "--pipeline",
            "4",
            "-c",
            "2",
            "-t",
            "1",
            "-d",
            "2s",
            "-q",
            &url(&addr),
        ],
        Duration::from_secs(2),
    )
    .ok();
    let achieved = n(&r.json()["rate"]["achieved"]);
    assert!(
        (970.0..=1030.0).contains(&achieved),
        "pipelined: achieved {achieved}/s for 1000/s"
    );
}

#[test]
fn refused_connections_count_as_connect_errors() {
    let _g = serial();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: nothing listens there now
    let r = run(
        &[
            "-c",
            "2",
            "-t",
            "1",
            "-d",
            "1s",
            "-q",
            &format!("http://127.0.0.1:{port}/"),
        ],
        Duration::from_secs(1),
    );
    assert_eq!(r.code, 1, "no connection at all is exit 1\n{}", r.stderr);
    assert!(r.stderr.contains("not a single connection"), "{}", r.stderr);
    let j = r.json();
    assert!(n(&j["errors"]["connect"]) > 0.0);
    assert_eq!(n(&j["requests"]), 0.0);
}

/// Closes every connection with a TCP reset after reading a request.
fn resetter(mut s: TcpStream) {
    let mut buf = Vec::new();
    if read_heads(&mut s, &mut buf).is_some() {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid socket and a properly sized linger struct.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&s),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
}

#[test]
fn resets_count_as_reset_errors() {
    let _g = serial();
    let addr = serve(resetter);
    let r = run(
        &["-c", "2", "-t", "1", "-d", "1s", "-q", &url(&addr)],
        Duration::from_secs(1),
    )
    .ok();
    let j = r.json();
    assert!(n(&j["errors"]["reset"]) > 0.0, "{j}");
    assert_eq!(n(&j["requests"]), 0.0);
}

#[test]
fn status_codes_are_counted() {
    let _g = serial();
    let addr = serve(responder(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
        Duration::ZERO,
    ));
    let r = run(
        &["-c", "2", "-t", "1", "-d", "1s", "-q", &url(&addr)],
        Duration::from_secs(1),
    )
    .ok();
    let j = r.json();
    let reqs = n(&j["requests"]);
    assert!(reqs > 0.0);
    assert_eq!(n(&j["status"]["503"]), reqs);
    assert!(j["status"].get("200").is_none());
    assert!(r.stdout.contains("503: "), "{}", r.stdout);
}

#[test]
fn garbage_counts_as_parse_errors() {
    let _g = serial();
    let addr = serve(responder(b"this is not http\r\n\r\n", Duration::ZERO));
    let r = run(
        &["-c", "2", "-t", "1", "-d", "1s", "-q", &url(&addr)],
        Duration::from_secs(1),
    )
    .ok();
    let j = r.json();
    assert!(n(&j["errors"]["parse"]) > 0.0, "{j}");
    assert_eq!(n(&j["requests"]), 0.0);
}

#[test]
fn timeouts_count_as_timeout_errors() {
    let _g = serial();
    // Reads requests, never answers.
    let addr = serve(|mut s| {
        let mut buf = Vec::new();
        while read_heads(&mut s, &mut buf).is_some() {}
    });
    let r = run(
        &[
            "-c",
            "2",
            "-t",
            "1",
            "-d",
            "1500ms",
            "--timeout",
            "200ms",
            "-q",
            &url(&addr),
        ],
        Duration::from_millis(1500),
    )
    .ok();
    let j = r.json();
    let t = n(&j["errors"]["timeout"]);
    // 2 connections, one request per 200 ms each, over 1.5 s.
    assert!((8.0..=16.0).contains(&t), "{t} timeouts");
}

const SCHEMA_KEYS: [&str; 17] = [
    "url",
    "mode",
    "threads",
    "connections",
    "pipeline",
    "warmup_s",
    "requests",
    "duration_s",
    "requests_per_sec",
    "bytes_per_sec",
    "latency_us",
    "latency_percentiles",
    "timeline",
    "status",
    "errors",
    "cpu",
    "rate",
];

#[test]
fn json_has_the_schema_and_report_is_written() {
    let _g = serial();
    let addr = serve(responder(OK, Duration::ZERO));
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.html");
    let hdr = dir.path().join("r.hlog");
    let r = run(
        &[
            "--rate",
            "500",
            "-c",
            "4",
            "-t",
            "1",
            "--warmup",
            "500ms",
            "-d",
            "2s",
            "-q",
            "--report",
            report.to_str().unwrap(),
            "--hdr-log",
            hdr.to_str().unwrap(),
            &url(&addr),
        ],
        Duration::from_millis(2500),
    )
    .ok();
    let j = r.json();
    for k in SCHEMA_KEYS {
        assert!(j.get(k).is_some(), "missing {k} in {j}");
    }
    for k in [
        "min", "mean", "stdev", "p50", "p90", "p99", "p999", "p9999", "max",
    ] {
        assert!(j["latency_us"][k].is_number(), "latency_us.{k}");
    }
    for k in ["connect", "timeout", "reset", "parse"] {
        assert_eq!(n(&j["errors"][k]), 0.0, "errors.{k}");
    }
    for k in ["user_s", "sys_s"] {
        assert!(j["cpu"][k].is_number(), "cpu.{k}");
    }
    assert_eq!(j["mode"], "open");
    assert_eq!(n(&j["warmup_s"]), 0.5);
    assert_eq!(n(&j["duration_s"]), 2.0);
    assert_eq!(n(&j["pipeline"]), 1.0);
    assert!(n(&j["rate"]["achieved"]) > 0.0);
    let reqs = n(&j["requests"]);
    assert!(
        (900.0..=1050.0).contains(&reqs),
        "{reqs} requests at 500/s for 2s"
    );
    assert!(n(&j["bytes_per_sec"]) > 0.0);
    let pcts = j["latency_percentiles"].as_array().unwrap();
    assert!(pcts.len() > 5);
    let mut last = (-1.0, 0.0);
    for p in pcts {
        let (pc, us) = (n(&p["percentile"]), n(&p["latency_us"]));
        assert!((0.0..=100.0).contains(&pc) && pc >= last.0 && us >= last.1);
        last = (pc, us);
    }
    let timeline = j["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 2);
    for (i, s) in timeline.iter().enumerate() {
        assert_eq!(n(&s["t_s"]), (i + 1) as f64);
        for k in ["requests", "errors", "p99_us"] {
            assert!(s[k].is_number(), "timeline.{k}");
        }
    }
    let sum: f64 = timeline.iter().map(|s| n(&s["requests"])).sum();
    assert_eq!(sum, reqs);
    let html = std::fs::read_to_string(&report).unwrap();
    // Self-contained: the charts inline, the results (chart data) embedded, nothing fetched.
    assert!(html.contains("<svg"), "no chart in the report");
    assert!(html.contains("99.9%"), "no percentile axis in the report");
    assert!(html.contains("id=\"results\"") && html.contains("latency_percentiles"));
    let p99 = n(&j["latency_us"]["p99"]) as u64;
    assert!(
        html.contains(&format!("\"p99\":{p99}")),
        "embedded results lack p99 {p99}"
    );
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "external asset"
    );
    let log = std::fs::read_to_string(&hdr).unwrap();
    assert!(
        log.lines().filter(|l| !l.starts_with('#')).count() >= 2,
        "{log}"
    );
}

#[test]
fn count_stops_after_exactly_n() {
    let _g = serial();
    let addr = serve(responder(OK, Duration::ZERO));
    let r = run(
        &[
            "-n",
            "777",
            "-c",
            "5",
            "-t",
            "1",
            "--pipeline",
            "3",
            "-q",
            &url(&addr),
        ],
        Duration::from_secs(5),
    )
    .ok();
    let j = r.json();
    assert_eq!(n(&j["requests"]), 777.0);
    assert_eq!(n(&j["status"]["200"]), 777.0);
    assert!(n(&j["duration_s"]) > 0.0);
}

#[test]
fn chunked_pipelined_and_closing_servers() {
    let _g = serial();
    let chunked = serve(responder(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
        Duration::ZERO,
    ));
    let r = run(
        &[
            "-c",
            "4",
            "-t",
            "1",
            "-d",
            "1s",
            "--pipeline",
            "8",
            "-q",
            &url(&chunked),
        ],
        Duration::from_secs(1),
    )
    .ok();
    let j = r.json();
    assert!(n(&j["requests"]) > 100.0);
    let errs: f64 = ["connect", "timeout", "reset", "parse"]
        .iter()
        .map(|k| n(&j["errors"][*k]))
        .sum();
    assert_eq!(errs, 0.0, "{j}");
    // Answers one request per connection, then closes: every request gets a new connection,
    // and pipelined requests left unanswered are sent again, not lost.
    let closing = serve(|mut s| {
        let mut buf = Vec::new();
        if read_heads(&mut s, &mut buf).is_some() {
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let r = run(
        &[
            "-n",
            "200",
            "-c",
            "2",
            "-t",
            "1",
            "--pipeline",
            "2",
            "-q",
            &url(&closing),
        ],
        Duration::from_secs(5),
    )
    .ok();
    let j = r.json();
    assert_eq!(n(&j["requests"]), 200.0, "{j}");
    // And a close-delimited body (no length, no chunking) ends at EOF.
    let eof = serve(|mut s| {
        let mut buf = Vec::new();
        if read_heads(&mut s, &mut buf).is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\nbody until close");
        }
    });
    let r = run(
        &["-n", "50", "-c", "2", "-t", "1", "-q", &url(&eof)],
        Duration::from_secs(5),
    )
    .ok();
    assert_eq!(n(&r.json()["requests"]), 50.0);
}

#[test]
fn method_headers_and_body_are_sent() {
    let _g = serial();
    let seen = Arc::new(Mutex::new(Vec::<u8>::new()));
    let log = seen.clone();
    let addr = serve(move |mut s| {
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        // One request: head plus a 5-byte body.
        while !got.ends_with(b"hello") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
        log.lock().unwrap().extend_from_slice(&got);
        let _ =
            s.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    });
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    std::fs::write(&body, b"hello").unwrap();
    let r = run(
        &[
            "-n",
            "1",
            "-c",
            "1",
            "-m",
            "PUT",
            "-H",
            "X-Test: yes",
            "--body",
            body.to_str().unwrap(),
            "-q",
            &format!("http://{addr}/path?q=1"),
        ],
        Duration::from_secs(5),
    )
    .ok();
    assert_eq!(n(&r.json()["status"]["201"]), 1.0);
    let req = String::from_utf8(seen.lock().unwrap().clone()).unwrap();
    assert!(req.starts_with("PUT /path?q=1 HTTP/1.1\r\n"), "{req}");
    assert!(req.contains(&format!("Host: {addr}\r\n")), "{req}");
    assert!(req.contains("X-Test: yes\r\n"), "{req}");
    assert!(req.contains("Content-Length: 5\r\n"), "{req}");
}

fn echo(mut s: TcpStream) {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(k) => {
                if s.write_all(&buf[..k]).is_err() {
                    return;
                }
            }
        }
    }
}

#[test]
fn tcp_mode_echoes() {
    let _g = serial();
    let addr = serve(echo);
    let size = 300_000u64;
    let r = run(
        &[
            "-c",
            "4",
            "-t",
            "1",
            "-d",
            "1s",
            "--size",
            &size.to_string(),
            "-q",
            &format!("tcp://{addr}"),
        ],
        Duration::from_secs(1),
    )
    .ok();
    let j = r.json();
    assert_eq!(j["mode"], "tcp");
    let tcp = &j["tcp"];
    let done = n(&tcp["conns_done"]);
    assert!(done > 0.0, "{j}");
    assert_eq!(n(&tcp["size"]), size as f64);
    assert_eq!(n(&j["requests"]), done);
    // Bytes echoed back: exactly size per finished connection.
    let bytes = n(&tcp["bytes_per_sec"]) * n(&j["duration_s"]);
    assert!(
        (bytes - done * size as f64).abs() < 1.0,
        "{bytes} bytes for {done} connections"
    );
    for k in ["p50", "p99", "max"] {
        assert!(n(&tcp["conn_time_us"][k]) > 0.0);
    }
    assert_eq!(j["status"], serde_json::json!({}));
    let errs: f64 = ["connect", "timeout", "reset", "parse"]
        .iter()
        .map(|k| n(&j["errors"][*k]))
        .sum();
    assert_eq!(errs, 0.0, "{j}");

    // An echo that corrupts one byte is caught.
    let bad = serve(|mut s| {
        let mut buf = [0u8; 4096];
        while let Ok(k) = s.read(&mut buf) {
            if k == 0 {
                return;
            }
            buf[0] ^= 0xff;
            if s.write_all(&buf[..k]).is_err() {
                return;
            }
        }
    });
    let r = run(
        &[
            "-n",
            "5",
            "-c",
            "1",
            "--size",
            "1000",
            "-q",
            &format!("tcp://{bad}"),
        ],
        Duration::from_secs(5),
    )
    .ok();
    assert_eq!(n(&r.json()["errors"]["parse"]), 5.0);
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        vec!["-c", "0", "http://127.0.0.1:1/"],
        vec!["--size", "10", "http://127.0.0.1:1/"],
        vec!["--rate", "10", "tcp://127.0.0.1:1"],
        vec!["ftp://127.0.0.1:1/"],
        vec!["-d", "soon", "http://127.0.0.1:1/"],
        vec!["-d", "1s", "-n", "5", "http://127.0.0.1:1/"],
        vec!["-H", "no colon", "http://127.0.0.1:1/"],
        vec![],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
