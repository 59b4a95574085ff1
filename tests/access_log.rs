//! The access log and request ids, end to end: the real binary, real sockets, the log file
//! read back and parsed (combined with a regex, json with serde_json).

mod common;

use common::upstream::{Action, Upstream};
use common::*;
use regex::Regex;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One worker (lines in request order), an HTTP listener with `/app` routed to `up` and
/// nothing else, and `[log]` as given.
fn config(port: u16, up: SocketAddr, log: &str, extra: &str) -> String {
    format!(
        r#"
[runtime]
workers = 1
shutdown_timeout = "2s"

[log]
{log}

[[listener]]
name = "web"
bind = "127.0.0.1:{port}"

[[route]]
listener = "web"
path_prefix = "/app"
upstream = "app"

[[upstream]]
name = "app"
endpoints = ["{up}"]
{extra}
"#
    )
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits until `path` holds at least `n` complete lines.
fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    poll(WAIT, &format!("{n} lines in {}", path.display()), || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        (text.ends_with('\n') && lines.len() >= n).then_some(lines)
    })
}

fn access_path(g: &Gateway) -> PathBuf {
    g.dir.path().join("access.log")
}

/// The known traffic: a proxied 200 (with a user agent that needs escaping and a referer), a
/// 404 nobody routes, a 400 (two Host fields). Returns the id the upstream saw for the 200.
fn known_traffic(port: u16, up: &Upstream) -> String {
    let r = roundtrip(
        addr(port),
        b"GET /app/x?q=1 HTTP/1.1\r\nHost: a.example\r\nUser-Agent: test \"agent\"\r\nReferer: http://r.example/\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, &r.body[..]), (200, &b"hello"[..]));
    let seen = up.wait_requests(1)[0].header("x-request-id").unwrap();
    assert_eq!(r.header("x-request-id"), Some(seen.as_str()));
    let r = roundtrip(
        addr(port),
        b"GET /nope HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 404);
    let r = roundtrip(
        addr(port),
        b"GET /app/y HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    seen
}

fn generated_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

const COMBINED: &str = r#"^(?P<client>\S+) - - \[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] "(?P<request>(?:[^"\\]|\\x[0-9A-F]{2})*)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>(?:[^"\\]|\\x[0-9A-F]{2})*)" "(?P<ua>(?:[^"\\]|\\x[0-9A-F]{2})*)" (?P<rt>\d+\.\d{3}) (?P<upstream>\S+) (?P<urt>\d+\.\d{3}|-) (?P<route>\d+|-) (?P<id>\S+)$"#;

#[test]
fn combined_lines_after_known_traffic() {
    let up = Upstream::ok("hello");
    let port = free_port();
    let g = Gateway::start(&config(
        port,
        up.addr,
        "access_log = \"access.log\"\naccess_format = \"combined\"",
        "",
    ));
    let seen = known_traffic(port, &up);
    let lines = wait_lines(&access_path(&g), 3);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let re = Regex::new(COMBINED).unwrap();
    let caps: Vec<_> = lines
        .iter()
        .map(|l| {
            re.captures(l)
                .unwrap_or_else(|| panic!("not combined: {l}"))
        })
        .collect();
    for c in &caps {
        println!("{}", &c[0]);
        assert_eq!(&c["client"], "127.0.0.1");
    }

    let ok = &caps[0];
    assert_eq!(&ok["request"], "GET /app/x?q=1 HTTP/1.1");
    assert_eq!((&ok["status"], &ok["bytes"]), ("200", "5"));
    assert_eq!(&ok["referer"], "http://r.example/");
    assert_eq!(&ok["ua"], r"test \x22agent\x22");
    assert_eq!(&ok["upstream"], up.addr.to_string());
    assert_ne!(&ok["urt"], "-");
    assert!(ok["urt"].parse::<f64>().unwrap() <= ok["rt"].parse::<f64>().unwrap());
    assert_eq!(&ok["route"], "0");
    assert_eq!(&ok["id"], seen);
    assert!(generated_id(&seen), "{seen}");

    let not_found = &caps[1];
    assert_eq!(&not_found["request"], "GET /nope HTTP/1.1");
    assert_eq!((&not_found["status"], &not_found["bytes"]), ("404", "14"));
    assert_eq!(
        (
            &not_found["upstream"],
            &not_found["urt"],
            &not_found["route"]
        ),
        ("-", "-", "-")
    );
    assert_eq!((&not_found["referer"], &not_found["ua"]), ("-", "-"));

    let bad = &caps[2];
    assert_eq!(&bad["request"], "GET /app/y HTTP/1.1");
    assert_eq!((&bad["status"], &bad["bytes"]), ("400", "16"));
    assert_eq!(&bad["upstream"], "-");
    let ids: Vec<&str> = caps
        .iter()
        .map(|c| c.name("id").unwrap().as_str())
        .collect();
    assert!(ids.iter().all(|i| generated_id(i)), "{ids:?}");
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "{ids:?}");
}

fn parse_json(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

const JSON_KEYS: [&str; 14] = [
    "time",
    "client",
    "method",
    "target",
    "protocol",
    "status",
    "bytes",
    "duration_ms",
    "upstream",
    "upstream_ms",
    "route",
    "request_id",
    "user_agent",
    "referer",
];

#[test]
fn json_lines_after_known_traffic() {
    let up = Upstream::ok("hello");
    let port = free_port();
    let g = Gateway::start(&config(
        port,
        up.addr,
        "access_log = \"access.log\"\naccess_format = \"json\"",
        "",
    ));
    let seen = known_traffic(port, &up);
    let lines = wait_lines(&access_path(&g), 3);
    let v = parse_json(&lines);
    let time = Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$").unwrap();
    for (line, o) in lines.iter().zip(&v) {
        println!("{line}");
        let keys: Vec<&String> = o.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), JSON_KEYS.len(), "{line}");
        for k in JSON_KEYS {
            assert!(o.get(k).is_some(), "{k} missing: {line}");
        }
        assert!(time.is_match(o["time"].as_str().unwrap()), "{line}");
        assert_eq!(o["client"], "127.0.0.1");
        assert!(o["duration_ms"].as_f64().unwrap() >= 0.0);
    }
    let ok = &v[0];
    assert_eq!(
        (&ok["method"], &ok["target"], &ok["protocol"]),
        (
            &Value::from("GET"),
            &Value::from("/app/x?q=1"),
            &Value::from("HTTP/1.1")
        )
    );
    assert_eq!(
        (ok["status"].as_u64(), ok["bytes"].as_u64()),
        (Some(200), Some(5))
    );
    assert_eq!(ok["upstream"], up.addr.to_string());
    let upstream_ms = ok["upstream_ms"].as_f64().expect("upstream_ms is a number");
    assert!(upstream_ms > 0.0 && upstream_ms <= ok["duration_ms"].as_f64().unwrap());
    assert_eq!(ok["route"], 0);
    assert_eq!(ok["request_id"], seen.as_str());
    assert_eq!(ok["user_agent"], "test \"agent\"");
    assert_eq!(ok["referer"], "http://r.example/");

    let not_found = &v[1];
    assert_eq!(
        (not_found["status"].as_u64(), not_found["bytes"].as_u64()),
        (Some(404), Some(14))
    );
    assert_eq!(not_found["target"], "/nope");
    assert_eq!(not_found["upstream"], "-");
    assert!(not_found["upstream_ms"].is_null() && not_found["route"].is_null());
    assert_eq!(
        (&not_found["user_agent"], &not_found["referer"]),
        (&Value::from("-"), &Value::from("-"))
    );

    let bad = &v[2];
    assert_eq!(
        (bad["status"].as_u64(), bad["bytes"].as_u64()),
        (Some(400), Some(16))
    );
    assert_eq!(
        (&bad["method"], &bad["target"]),
        (&Value::from("GET"), &Value::from("/app/y"))
    );
    assert!(generated_id(bad["request_id"].as_str().unwrap()));
}

/// Every status coregate answers by itself is logged, with the request id it sent back.
#[test]
fn answers_coregate_gives_itself_are_logged() {
    let up = Upstream::ok("hello");
    let dead = free_port(); // nothing listens: connect refused
    let port = free_port();
    let cfg = format!(
        r#"
[runtime]
workers = 1

[limits]
client_header_timeout = "500ms"
max_request_head = "4KiB"

[log]
access_log = "access.log"
access_format = "json"

[[listener]]
name = "web"
bind = "127.0.0.1:{port}"

[[route]]
listener = "web"
path_prefix = "/small"
upstream = "app"
max_body = 10

[[route]]
listener = "web"
path_prefix = "/limited"
upstream = "app"
rate_limit = {{ rps = 1, burst = 1 }}

[[route]]
listener = "web"
path_prefix = "/private"
upstream = "app"
auth = {{ api_key = {{ keys = ["k-0123456789"] }} }}

[[route]]
listener = "web"
path_prefix = "/down"
upstream = "dead"
fallback = {{ status = 503 }}

[[upstream]]
name = "app"
endpoints = ["{}"]

[[upstream]]
name = "dead"
endpoints = ["127.0.0.1:{dead}"]
"#,
        up.addr
    );
    let g = Gateway::start(&cfg);
    let close = "Connection: close\r\n";
    let mut expected = Vec::new();
    let mut send = |raw: String, status: u16, target: &str| {
        let r = roundtrip(addr(port), raw.as_bytes());
        assert_eq!(r.status, status, "{raw}");
        let id = r.header("x-request-id").expect("id sent back").to_string();
        expected.push((status, target.to_string(), id));
    };
    send(
        format!("POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n{close}\r\n"),
        413,
        "/small",
    );
    send(
        format!("GET /limited HTTP/1.1\r\nHost: a\r\n{close}\r\n"),
        200,
        "/limited",
    );
    send(
        format!("GET /limited HTTP/1.1\r\nHost: a\r\n{close}\r\n"),
        429,
        "/limited",
    );
    send(
        format!("GET /private HTTP/1.1\r\nHost: a\r\n{close}\r\n"),
        401,
        "/private",
    );
    send(
        format!("GET /down HTTP/1.1\r\nHost: a\r\n{close}\r\n"),
        503,
        "/down",
    );
    let big = "x".repeat(5000);
    send(
        format!("GET /small HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n"),
        431,
        "/small",
    );
    // 408: half a head, then silence past client_header_timeout.
    let mut s = connect(addr(port));
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n").unwrap();
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.status, 408);
    expected.push((
        408,
        "/slow".into(),
        r.header("x-request-id").unwrap().to_string(),
    ));

    let lines = wait_lines(&access_path(&g), expected.len());
    let v = parse_json(&lines);
    for ((status, target, id), o) in expected.iter().zip(&v) {
        println!("{o}");
        assert_eq!(o["status"].as_u64(), Some(u64::from(*status)), "{o}");
        assert_eq!(o["target"], target.as_str(), "{o}");
        assert_eq!(o["request_id"], id.as_str(), "{o}");
    }
    // The 503 came from a route whose endpoint refused: its address is logged.
    assert_eq!(v[4]["upstream"], format!("127.0.0.1:{dead}"));
    assert_eq!(v[4]["route"], 3);
    assert_eq!(v[1]["upstream"], up.addr.to_string());
}

#[test]
fn request_ids_are_generated_kept_or_replaced_and_passed_upstream() {
    let up = Upstream::ok("hello");
    let port = free_port();
    let g = Gateway::start(&config(
        port,
        up.addr,
        "access_log = \"access.log\"\naccess_format = \"json\"",
        "",
    ));
    let get = |extra: &str| {
        roundtrip(
            addr(port),
            format!("GET /app HTTP/1.1\r\nHost: a\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
        )
    };
    let generated = get("");
    let kept = get("X-Request-Id: client-id_1.2:3\r\n");
    let invalid = get("X-Request-Id: has a space\r\n");
    let twice = get("X-Request-Id: one\r\nX-Request-Id: two\r\n");
    let long = get(&format!("X-Request-Id: {}\r\n", "a".repeat(129)));
    let received = up.wait_requests(5);
    let ids: Vec<Vec<String>> = received.iter().map(|r| r.headers("x-request-id")).collect();
    for i in &ids {
        assert_eq!(i.len(), 1, "exactly one id upstream: {ids:?}");
    }
    let ids: Vec<&str> = ids.iter().map(|i| i[0].as_str()).collect();
    assert!(generated_id(ids[0]));
    assert_eq!(ids[1], "client-id_1.2:3");
    for i in [2, 3, 4] {
        assert!(generated_id(ids[i]), "replaced: {}", ids[i]);
    }
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "{ids:?}");
    for (r, id) in [&generated, &kept, &invalid, &twice, &long]
        .iter()
        .zip(&ids)
    {
        assert_eq!(
            r.header("x-request-id"),
            Some(*id),
            "sent back to the client"
        );
    }
    let logged: Vec<String> = parse_json(&wait_lines(&access_path(&g), 5))
        .iter()
        .map(|o| o["request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(logged, ids);
}

#[test]
fn an_upstreams_own_request_id_in_the_response_is_kept() {
    let up = Upstream::start(|_| {
        Action::Send(
            b"HTTP/1.1 200 OK\r\nX-Request-Id: from-app\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        )
    });
    let port = free_port();
    let _g = Gateway::start(&config(port, up.addr, "", ""));
    let r = roundtrip(
        addr(port),
        b"GET /app HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let ids: Vec<_> = r
        .headers
        .iter()
        .filter(|(n, _)| n == "x-request-id")
        .collect();
    assert_eq!(ids.len(), 1, "{:?}", r.headers);
    assert_eq!(ids[0].1, "from-app");
    // The access log is off, yet the upstream got an id.
    assert!(generated_id(
        &up.wait_requests(1)[0].header("x-request-id").unwrap()
    ));
}

#[test]
fn keep_alive_and_pipelined_requests_each_get_a_line() {
    let up = Upstream::ok("hello");
    let port = free_port();
    let g = Gateway::start(&config(
        port,
        up.addr,
        "access_log = \"access.log\"\naccess_format = \"json\"",
        "",
    ));
    let mut s = connect(addr(port));
    s.write_all(b"GET /app/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /app/2 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s).unwrap().status, 200);
    assert_eq!(read_response(&mut s).unwrap().status, 200);
    s.write_all(b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s).unwrap().status, 404);
    let v = parse_json(&wait_lines(&access_path(&g), 3));
    let targets: Vec<&str> = v.iter().map(|o| o["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["/app/1", "/app/2", "/nope"]);
}

#[test]
fn sigusr1_reopens_the_file() {
    let up = Upstream::ok("hello");
    let port = free_port();
    let mut g = Gateway::start(&config(port, up.addr, "access_log = \"access.log\"", ""));
    let path = access_path(&g);
    let get = |t: &str| {
        let r = roundtrip(
            addr(port),
            format!("GET {t} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 200);
    };
    get("/app/before");
    wait_lines(&path, 1);
    let rotated = g.dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    g.signal(libc::SIGUSR1);
    // The writer opens a new file at the old path.
    poll(WAIT, "a new access.log", || path.exists().then_some(()));
    get("/app/after");
    let new = wait_lines(&path, 1);
    assert_eq!(new.len(), 1);
    assert!(new[0].contains("/app/after"), "{new:?}");
    let old = lines_of(&rotated);
    assert_eq!(old.len(), 1);
    assert!(old[0].contains("/app/before"), "{old:?}");
    g.wait_log("access log reopened");
}

#[test]
fn stdout_gets_the_lines() {
    let up = Upstream::ok("hello");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdout.txt");
    let file = std::fs::File::create(&out).unwrap();
    let mut g = Gateway::spawn_cmd(
        &config(
            port,
            up.addr,
            "access_log = \"stdout\"\naccess_format = \"json\"",
            "",
        ),
        &[],
        &[],
        |cmd| {
            cmd.stdout(file);
        },
    );
    g.wait_log("coregate ready");
    let r = roundtrip(
        addr(port),
        b"GET /app/out HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let v = parse_json(&wait_lines(&out, 1));
    assert_eq!(v[0]["target"], "/app/out");
    // Nothing to reopen on stdout.
    g.signal(libc::SIGUSR1);
    g.wait_log("no log files open to reopen");
}

#[test]
fn lines_buffered_at_stop_are_written() {
    let up = Upstream::ok("hello");
    let port = free_port();
    let mut g = Gateway::start(&config(port, up.addr, "access_log = \"access.log\"", ""));
    for i in 0..20 {
        let r = roundtrip(
            addr(port),
            format!("GET /app/{i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 200);
    }
    g.signal(libc::SIGTERM);
    assert!(g.wait_exit(WAIT).success());
    assert_eq!(lines_of(&access_path(&g)).len(), 20);
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let cfg = config(
        free_port(),
        "127.0.0.1:1".parse().unwrap(),
        "access_log = \"no/such/dir/access.log\"",
        "",
    );
    let (code, err, _, _dir) = check(&cfg);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("log.access_log"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains(":7:"), "points at the line: {err}");

    let mut g = Gateway::spawn(&cfg, &[], &[]);
    assert_eq!(g.wait_exit(WAIT).code(), Some(1));
    assert!(g.log_text().contains("log.access_log"), "{}", g.log_text());

    let (code, err, _, _dir) = check(&config(
        free_port(),
        "127.0.0.1:1".parse().unwrap(),
        "access_log = \"/\"",
        "",
    ));
    assert_eq!(code, 1);
    assert!(
        err.contains("log.access_log") && err.contains("directory"),
        "{err}"
    );
}

#[test]
fn a_file_that_cannot_be_opened_at_start_is_a_clear_error() {
    // The directory exists at `check`, then is replaced by a file before `run` opens the log.
    let up = Upstream::ok("hello");
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let cfg = config(
        free_port(),
        up.addr,
        &format!("access_log = \"{}\"", logs.join("access.log").display()),
        "",
    );
    let (code, err, _, _d) = check(&cfg);
    assert_eq!(code, 0, "{err}");
    std::fs::create_dir(logs.join("access.log")).unwrap();
    let mut g = Gateway::spawn(&cfg, &[], &[]);
    assert_eq!(g.wait_exit(WAIT).code(), Some(1));
    let text = g.log_text();
    assert!(text.contains("log.access_log"), "{text}");
}

/// An upstream that echoes every byte until the client half-closes.
fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut b = [0u8; 4096];
                loop {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&b[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    a
}

#[test]
fn tcp_connections_get_a_line_at_close() {
    let echo = echo_server();
    let port = free_port();
    let cfg = format!(
        r#"
[runtime]
workers = 1

[log]
access_log = "access.log"
access_format = "{{FORMAT}}"

[[listener]]
name = "db"
bind = "127.0.0.1:{port}"
protocol = "tcp"
upstream = "echo"

[[upstream]]
name = "echo"
endpoints = ["{echo}"]
"#
    );
    let combined_tcp = Regex::new(
        r#"^127\.0\.0\.1 - - \[[^\]]+ \+0000\] "TCP db" (\S+) (\d+) (\d+) (\d+\.\d{3}) (\S+)$"#,
    )
    .unwrap();
    for format in ["combined", "json"] {
        let g = Gateway::start(&cfg.replace("{FORMAT}", format));
        let mut s = connect(addr(port));
        s.write_all(b"hello").unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(closed_by_peer(&mut s));
        let line = wait_lines(&access_path(&g), 1).remove(0);
        println!("{line}");
        if format == "combined" {
            let c = combined_tcp
                .captures(&line)
                .unwrap_or_else(|| panic!("{line}"));
            assert_eq!((&c[1], &c[2], &c[3]), ("done", "5", "5"));
            assert_eq!(&c[5], echo.to_string());
        } else {
            let o: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(o["protocol"], "tcp");
            assert_eq!(o["listener"], "db");
            assert_eq!(o["end"], "done");
            assert_eq!(
                (o["bytes"].as_u64(), o["bytes_received"].as_u64()),
                (Some(5), Some(5))
            );
            assert_eq!(o["upstream"], echo.to_string());
        }
        drop(g);
        poll(WAIT, "the port to be free", || {
            (listening_sockets(port) == 0).then_some(())
        });
    }
}

#[test]
fn stop_with_a_request_still_open_does_not_wait_for_the_writer() {
    let up = Upstream::start(|_| Action::Stall(Duration::from_secs(8)));
    let port = free_port();
    let mut g = Gateway::start(&config(port, up.addr, "access_log = \"access.log\"", ""));
    let mut s = connect(addr(port));
    s.write_all(b"GET /app/slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    up.wait_requests(1);
    let stopping = std::time::Instant::now();
    g.signal(libc::SIGTERM);
    assert!(g.wait_exit(WAIT).success());
    // shutdown_timeout is 2 s; the writer adds nothing noticeable after it.
    let took = stopping.elapsed();
    assert!(took < Duration::from_millis(3500), "stop took {took:?}");
    assert!(!g.log_text().contains("did not finish"), "{}", g.log_text());
}

#[test]
fn the_log_goes_on_across_a_reload() {
    let up = Upstream::ok("hello");
    let port = free_port();
    let mut g = Gateway::start(&config(port, up.addr, "access_log = \"access.log\"", ""));
    let get = |t: &str| {
        let r = roundtrip(
            addr(port),
            format!("GET {t} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 200);
    };
    get("/app/before");
    // The new version changes the format: that takes a restart (and says so); lines go on.
    let next = config(
        port,
        up.addr,
        "access_log = \"access.log\"\naccess_format = \"json\"",
        "",
    )
    .replace("path_prefix = \"/app\"", "path_prefix = \"/v2\"");
    std::fs::write(&g.config, next).unwrap();
    g.signal(libc::SIGHUP);
    g.wait_log("config reloaded");
    g.wait_log("take effect at the next start");
    get("/v2/after");
    let lines = wait_lines(&access_path(&g), 2);
    let re = Regex::new(COMBINED).unwrap();
    let requests: Vec<String> = lines
        .iter()
        .map(|l| {
            let c = re.captures(l).unwrap_or_else(|| panic!("{l}"));
            c["request"].to_string()
        })
        .collect();
    assert_eq!(
        requests,
        ["GET /app/before HTTP/1.1", "GET /v2/after HTTP/1.1"]
    );
}
