//! The admin listener end to end, real binary and real sockets: `/metrics` after known traffic
//! (exact counts and label sets, connections, bytes forwarded, retries, 429s, auth refusals,
//! ejections, the workers' drivers), both exposition formats, `/status` JSON, the status page
//! (rendered by headless Chromium when it is installed), `POST /reload` with a valid and an
//! invalid file, the bearer token, `/healthz`, and the wrong methods and paths.

mod common;
use common::upstream::{Action, Upstream};
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A GET on the admin listener (plus extra header lines, each ending in CRLF).
fn admin(port: u16, method: &str, path: &str, extra: &str) -> Response {
    let raw = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\n{extra}\r\n");
    let mut s = connect(addr(port));
    s.write_all(raw.as_bytes()).unwrap();
    read_response(&mut s).unwrap()
}

fn metrics(port: u16) -> String {
    let r = admin(port, "GET", "/metrics", "");
    assert_eq!(r.status, 200);
    String::from_utf8(r.body).unwrap()
}

/// The value of the sample written exactly as `series` (name and labels), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

/// Every sample line of one family (`name{` or `name `).
fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            !l.starts_with('#')
                && (l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        })
        .collect()
}

/// Polls the scrape until `series` has `value`.
fn wait_sample(port: u16, series: &str, value: f64) -> String {
    let mut last = String::new();
    let found = poll_quiet(|| {
        last = metrics(port);
        sample(&last, series) == Some(value)
    });
    assert!(found, "{series} never became {value}:\n{last}");
    last
}

/// Polls `f` for up to `WAIT`; whether it became true.
fn poll_quiet(mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < WAIT {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A TCP upstream that echoes every connection until EOF.
fn echo_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    a
}

const GET_APP: &[u8] = b"GET /app/x HTTP/1.1\r\nHost: t\r\n\r\n";
const GET_NONE: &[u8] = b"GET /elsewhere HTTP/1.1\r\nHost: t\r\n\r\n";

fn traffic_config(web: u16, tcp: u16, admin: u16, up: SocketAddr, echo: SocketAddr) -> String {
    format!(
        r#"
[runtime]
workers = 2
shutdown_timeout = "2s"

[admin]
listen = "127.0.0.1:{admin}"

[[listener]]
name = "web"
bind = "127.0.0.1:{web}"

[[listener]]
name = "tcp"
bind = "127.0.0.1:{tcp}"
protocol = "tcp"
upstream = "echo"

[[route]]
listener = "web"
path_prefix = "/app/"
upstream = "app"

[[upstream]]
name = "app"
endpoints = ["{up}"]

[[upstream]]
name = "echo"
endpoints = ["{echo}"]
"#
    )
}

#[test]
fn metrics_count_known_traffic_exactly() {
    let up = Upstream::ok("hello");
    let echo = echo_upstream();
    let (web, tcp, admin_port) = (free_port(), free_port(), free_port());
    let g = Gateway::start(&traffic_config(web, tcp, admin_port, up.addr, echo));

    // 7 answered 200 (5 on their own connections, 2 on connections kept open), 3 unrouted 404s.
    for _ in 0..5 {
        assert_eq!(roundtrip(addr(web), GET_APP).status, 200);
    }
    let mut held: Vec<TcpStream> = (0..2).map(|_| connect(addr(web))).collect();
    for c in &mut held {
        c.write_all(GET_APP).unwrap();
        assert_eq!(read_response(c).unwrap().status, 200);
    }
    for _ in 0..3 {
        assert_eq!(roundtrip(addr(web), GET_NONE).status, 404);
    }
    // 1000 bytes each way through the tcp listener.
    let mut t = connect(addr(tcp));
    let payload = vec![b'x'; 1000];
    t.write_all(&payload).unwrap();
    let mut back = vec![0u8; 1000];
    t.read_exact(&mut back).unwrap();
    assert_eq!(back, payload);

    // The closed connections' tasks end a moment after the client sees the response.
    let text = wait_sample(
        admin_port,
        r#"coregate_connections_active{listener="web"}"#,
        2.0,
    );
    assert_eq!(
        samples(&text, "coregate_requests_total"),
        [
            r#"coregate_requests_total{listener="web",route="unrouted",code="4xx"} 3"#,
            r#"coregate_requests_total{listener="web",route="web:/app/",code="2xx"} 7"#,
        ],
        "{text}"
    );
    let route = r#"listener="web",route="web:/app/""#;
    assert_eq!(
        sample(
            &text,
            &format!("coregate_request_duration_seconds_count{{{route}}}")
        ),
        Some(7.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("coregate_request_duration_seconds_bucket{{le=\"+Inf\",{route}}}")
        ),
        Some(7.0)
    );
    assert_eq!(
        sample(&text, r#"coregate_connections_total{listener="web"}"#),
        Some(10.0)
    );
    assert_eq!(
        sample(&text, r#"coregate_connections_active{listener="tcp"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"coregate_connections_total{listener="tcp"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"coregate_upstream_requests_total{upstream="app"}"#),
        Some(7.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"coregate_upstream_response_seconds_count{upstream="app"}"#
        ),
        Some(7.0)
    );
    for dir in ["to_upstream", "to_client"] {
        assert_eq!(
            sample(
                &text,
                &format!(r#"coregate_forwarded_bytes_total{{listener="tcp",direction="{dir}"}}"#)
            ),
            Some(1000.0),
            "{text}"
        );
    }
    // The web listener forwards no bytes at L4: no such series.
    assert!(!text.contains(r#"coregate_forwarded_bytes_total{listener="web""#));

    // One worker_info per worker, with the driver the worker logged at start.
    let info = samples(&text, "coregate_worker_info");
    assert_eq!(info.len(), 2, "{text}");
    let log = g.log_text();
    for w in 0..2 {
        let line = log
            .lines()
            .find(|l| l.contains("worker started") && l.contains(&format!("worker={w} ")))
            .unwrap();
        let driver = line
            .split("driver=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next();
        let want = format!(
            r#"coregate_worker_info{{worker="{w}",driver="{}","#,
            driver.unwrap()
        );
        assert!(info.iter().any(|l| l.starts_with(&want)), "{want}\n{text}");
    }
    assert_eq!(sample(&text, "coregate_workers_silent"), Some(0.0));
    assert_eq!(sample(&text, "coregate_config_version"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            &format!(
                r#"coregate_endpoint_up{{upstream="app",endpoint="{}"}}"#,
                up.addr
            )
        ),
        Some(1.0)
    );
    // Every family is ours.
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(l.starts_with("coregate_"), "{l}");
    }
    drop((held, t));
}

#[test]
fn both_exposition_formats() {
    let up = Upstream::ok("hello");
    let (web, admin_port) = (free_port(), free_port());
    let cfg = basic_config(
        web,
        up.addr,
        1,
        &format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n"),
    );
    let _g = Gateway::start(&cfg);
    assert_eq!(roundtrip(addr(web), GET_APP).status, 200);

    let plain = admin(admin_port, "GET", "/metrics", "");
    assert_eq!(
        plain.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(plain.body).unwrap();
    assert!(
        text.contains("# TYPE coregate_requests_total counter\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE coregate_connections_active gauge\n"));
    assert!(text.contains("# TYPE coregate_request_duration_seconds histogram\n"));
    assert!(!text.contains("# EOF"));
    assert_eq!(
        sample(
            &text,
            r#"coregate_requests_total{listener="web",route="web:/",code="2xx"}"#
        ),
        Some(1.0)
    );

    let om = admin(
        admin_port,
        "GET",
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n",
    );
    assert!(om
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    let text = String::from_utf8(om.body).unwrap();
    assert!(
        text.contains("# TYPE coregate_requests counter\n"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn policy_counters_retries_rate_limits_auth_and_ejections() {
    let ok = Upstream::ok("ok");
    let flaky = Upstream::start(|_| {
        Action::Send(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n".to_vec())
    });
    let (web, admin_port) = (free_port(), free_port());
    let cfg = format!(
        r#"
[runtime]
workers = 1

[admin]
listen = "127.0.0.1:{admin_port}"

[[listener]]
name = "web"
bind = "127.0.0.1:{web}"

[[route]]
listener = "web"
path_prefix = "/limited/"
upstream = "ok"
rate_limit = {{ rps = 1, burst = 1 }}

[[route]]
listener = "web"
path_prefix = "/private/"
upstream = "ok"
auth = {{ api_key = {{ keys = ["secret-key"] }} }}

[[route]]
listener = "web"
path_prefix = "/flaky/"
upstream = "flaky"
retry = {{ attempts = 2 }}

[[upstream]]
name = "ok"
endpoints = ["{ok}"]

[[upstream]]
name = "flaky"
endpoints = ["{flaky}"]
max_fails = 3
fail_timeout = "60s"
"#,
        ok = ok.addr,
        flaky = flaky.addr
    );
    let _g = Gateway::start(&cfg);
    let get = |path: &str| {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        roundtrip(addr(web), raw.as_bytes()).status
    };
    // Burst 1: the first passes, the next two (well within a second) are refused.
    assert_eq!(
        [get("/limited/a"), get("/limited/a"), get("/limited/a")],
        [200, 429, 429]
    );
    assert_eq!(get("/private/a"), 401);
    // One request, two retries, all 503: the third consecutive failure ejects the endpoint.
    assert_eq!(get("/flaky/a"), 503);
    assert_eq!(flaky.received().len(), 3);

    let text = metrics(admin_port);
    let l = |route: &str| format!(r#"listener="web",route="web:{route}""#);
    let want = [
        (
            format!("coregate_rate_limited_total{{{}}}", l("/limited/")),
            2.0,
        ),
        (
            format!("coregate_requests_total{{{},code=\"4xx\"}}", l("/limited/")),
            2.0,
        ),
        (
            format!("coregate_requests_total{{{},code=\"2xx\"}}", l("/limited/")),
            1.0,
        ),
        (
            format!(
                "coregate_auth_denied_total{{{},code=\"401\"}}",
                l("/private/")
            ),
            1.0,
        ),
        (format!("coregate_retries_total{{{}}}", l("/flaky/")), 2.0),
        (format!("coregate_retries_total{{{}}}", l("/limited/")), 0.0),
        (
            format!("coregate_requests_total{{{},code=\"5xx\"}}", l("/flaky/")),
            1.0,
        ),
        (
            format!(
                r#"coregate_upstream_ejections_total{{upstream="flaky",endpoint="{}"}}"#,
                flaky.addr
            ),
            1.0,
        ),
        (
            format!(
                r#"coregate_endpoint_ejected{{upstream="flaky",endpoint="{}"}}"#,
                flaky.addr
            ),
            1.0,
        ),
        (
            format!(
                r#"coregate_endpoint_ejected{{upstream="ok",endpoint="{}"}}"#,
                ok.addr
            ),
            0.0,
        ),
        (
            r#"coregate_upstream_response_seconds_count{upstream="flaky"}"#.to_string(),
            3.0,
        ),
    ];
    for (series, value) in want {
        assert_eq!(sample(&text, &series), Some(value), "{series}\n{text}");
    }
}

#[test]
fn status_json_and_the_status_page() {
    let up = Upstream::ok("hello");
    let echo = echo_upstream();
    let (web, tcp, admin_port) = (free_port(), free_port(), free_port());
    let _g = Gateway::start(&traffic_config(web, tcp, admin_port, up.addr, echo));
    for _ in 0..3 {
        assert_eq!(roundtrip(addr(web), GET_APP).status, 200);
    }

    let r = admin(admin_port, "GET", "/status", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let s: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(s["config"]["version"], 1);
    assert!(s["config"]["source"]
        .as_str()
        .unwrap()
        .ends_with("coregate.toml"));
    assert!(s["uptime_seconds"].as_f64().unwrap() >= 0.0);
    let workers = s["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    for (i, w) in workers.iter().enumerate() {
        assert_eq!(w["index"], i);
        assert_eq!(w["answering"], true);
        assert!(["io_uring", "epoll"].contains(&w["driver"].as_str().unwrap()));
    }
    let listeners = s["listeners"].as_array().unwrap();
    let names: Vec<&str> = listeners
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "tcp"]);
    assert_eq!(listeners[0]["protocol"], "http");
    assert_eq!(listeners[0]["bind"], format!("127.0.0.1:{web}"));
    assert_eq!(listeners[0]["requests"]["2xx"], 3);
    assert_eq!(listeners[1]["protocol"], "tcp");
    assert!(listeners[1]["forwarded_bytes"].is_object());
    assert_eq!(s["routes"][0]["route"], "web:/app/");
    let ups = s["upstreams"].as_array().unwrap();
    assert_eq!(ups.len(), 2);
    assert_eq!(ups[0]["name"], "app");
    assert_eq!(ups[0]["requests"], 3);
    assert_eq!(ups[0]["endpoints"][0]["addr"], up.addr.to_string());
    assert_eq!(ups[0]["endpoints"][0]["health"], "up");
    assert_eq!(
        ups[0]["endpoints"][0]["ejected_by_workers"],
        serde_json::json!([])
    );
    assert_eq!(s["requests_total"], 3);

    // The page: self-contained HTML.
    let page = admin(admin_port, "GET", "/", "");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = String::from_utf8(page.body).unwrap();
    for needle in [
        "<!doctype html>",
        "<table id=\"workers\">",
        "<table id=\"listeners\">",
        "<div id=\"upstreams\"",
        "<style>",
        "fetch(\"/status\"",
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    for external in ["src=\"http", "href=\"http", "@import", "<link"] {
        assert!(!html.contains(external), "external asset: {external}");
    }
    // HEAD: the same head, no body.
    let mut s = connect(addr(admin_port));
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let head = read_response_to(&mut s, true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length").unwrap(),
        html.len().to_string()
    );

    render_in_chromium(admin_port);
}

/// With Chromium installed, renders the page headless and checks its script filled the worker
/// rows and the upstream endpoints from `/status`. Skipped (with a note) without Chromium.
fn render_in_chromium(admin_port: u16) {
    let Some(browser) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new("which")
                .arg(b)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    else {
        eprintln!("note: chromium not installed; the status page was not rendered");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            // Virtual time runs until the page's fetch has been answered and rendered.
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("http://127.0.0.1:{admin_port}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut dom = String::new();
        let _ = out.read_to_string(&mut dom);
        dom
    });
    let limit = Duration::from_secs(60);
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("chromium did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dom = reader.join().unwrap();
    for w in 0..2 {
        assert!(
            dom.contains(&format!("<tr class=\"worker\" data-worker=\"{w}\">")),
            "worker row {w} missing after the script ran:\n{dom}"
        );
    }
    assert!(dom.contains("class=\"endpoint up\""), "{dom}");
    assert!(dom.contains(">healthy<"), "{dom}");
}

fn reload_config(
    web: u16,
    admin_port: u16,
    up: SocketAddr,
    tag: &str,
    admin_extra: &str,
) -> String {
    format!(
        r#"
[runtime]
workers = 2

[admin]
listen = "127.0.0.1:{admin_port}"
{admin_extra}

[[listener]]
name = "web"
bind = "127.0.0.1:{web}"

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

#[test]
fn post_reload_applies_a_valid_file_and_refuses_an_invalid_one() {
    let up = Upstream::ok("ok");
    let (web, admin_port) = (free_port(), free_port());
    let mut g = Gateway::start(&reload_config(web, admin_port, up.addr, "one", ""));
    let version = || {
        roundtrip(addr(web), GET_APP)
            .header("x-version")
            .map(str::to_string)
    };
    assert_eq!(version().as_deref(), Some("one"));

    // A valid file: the new version answers at once. Its [admin] token is not applied: the
    // admin listener is not reloadable (logged).
    let token = "token = \"0123456789abcdef0123\"";
    std::fs::write(
        &g.config,
        reload_config(web, admin_port, up.addr, "two", token),
    )
    .unwrap();
    let r = admin(admin_port, "POST", "/reload", "Content-Length: 0\r\n");
    assert_eq!(
        (r.status, String::from_utf8_lossy(&r.body).trim()),
        (200, "reloaded: config version 2")
    );
    assert_eq!(version().as_deref(), Some("two"));
    g.wait_log("[admin] changed");
    assert_eq!(admin(admin_port, "GET", "/healthz", "").status, 200);
    let m = metrics(admin_port);
    assert_eq!(sample(&m, "coregate_config_version"), Some(2.0));
    // Counts survived the reload (route and listener kept their names).
    assert_eq!(
        sample(
            &m,
            r#"coregate_requests_total{listener="web",route="web:/",code="2xx"}"#
        ),
        Some(2.0),
        "{m}"
    );

    // An invalid file: 400 with the error, the running version keeps serving.
    std::fs::write(&g.config, "[[listener]]\nname = \"web\"\nbind = 12\n").unwrap();
    let r = admin(admin_port, "POST", "/reload", "");
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert_eq!(r.status, 400, "{body}");
    assert!(body.contains("coregate.toml:3:"), "{body}");
    assert!(body.contains("the running config is unchanged"), "{body}");
    assert_eq!(version().as_deref(), Some("two"));
    let s: serde_json::Value =
        serde_json::from_slice(&admin(admin_port, "GET", "/status", "").body).unwrap();
    assert_eq!(s["config"]["version"], 2);
}

#[test]
fn token_is_required_when_set() {
    let up = Upstream::ok("ok");
    let (web, admin_port) = (free_port(), free_port());
    let token = "s3cr3t-admin-token-0123";
    let cfg = basic_config(
        web,
        up.addr,
        1,
        &format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{token}\"\n"),
    );
    let _g = Gateway::start(&cfg);
    for path in ["/metrics", "/status", "/healthz", "/", "/nowhere"] {
        let r = admin(admin_port, "GET", path, "");
        assert_eq!(r.status, 401, "{path}");
        assert!(r
            .headers
            .iter()
            .any(|(n, v)| n == "www-authenticate" && v.starts_with("Bearer")));
    }
    assert_eq!(admin(admin_port, "POST", "/reload", "").status, 401);
    let wrong = admin(
        admin_port,
        "GET",
        "/metrics",
        "Authorization: Bearer s3cr3t-admin-token-0124\r\n",
    );
    assert_eq!(wrong.status, 401);
    let bearer = format!("Authorization: Bearer {token}\r\n");
    assert_eq!(admin(admin_port, "GET", "/metrics", &bearer).status, 200);
    assert_eq!(admin(admin_port, "GET", "/status", &bearer).status, 200);
    // A browser: HTTP Basic with the token as password, any user name.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ops:{token}"));
    let r = admin(
        admin_port,
        "GET",
        "/",
        &format!("Authorization: Basic {basic}\r\n"),
    );
    assert_eq!(r.status, 200);
    // The token never reaches the log.
    assert!(!_g.log_text().contains(token));
}

#[test]
fn admin_keys_are_checked() {
    let listener = "[[listener]]\nname = \"w\"\nbind = \"127.0.0.1:1\"\n";
    let (code, err, _, _) = check(&format!("[admin]\ntoken = \"short\"\n{listener}"));
    assert_eq!(code, 1);
    assert!(
        err.contains("admin.token") && err.contains("at least 16"),
        "{err}"
    );
    let spaced = "[admin]\ntoken = \"has a space 0123456789\"\n";
    let (code, err, _, _) = check(&format!("{spaced}{listener}"));
    assert_eq!(code, 1);
    assert!(err.contains("admin.token"), "{err}");
    let (code, err, _, _) = check(&format!("[admin]\nlisten = \"127.0.0.1:1\"\n{listener}"));
    assert_eq!(code, 1);
    assert!(
        err.contains("admin.listen") && err.contains("listener"),
        "{err}"
    );
    let good = "[admin]\nlisten = \"127.0.0.1:2\"\ntoken = \"0123456789abcdef\"\n";
    let (code, err, _, _) = check(&format!("{good}{listener}"));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("not enforced"), "{err}");
}

#[test]
fn healthz_methods_and_paths() {
    let up = Upstream::ok("ok");
    let (web, admin_port) = (free_port(), free_port());
    let cfg = basic_config(
        web,
        up.addr,
        2,
        &format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n"),
    );
    let _g = Gateway::start(&cfg);
    let r = admin(admin_port, "GET", "/healthz", "");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]));
    assert_eq!(r.header("connection"), Some("close"));
    let r = roundtrip(
        addr(admin_port),
        b"POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = admin(admin_port, "GET", "/reload", "");
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    assert_eq!(admin(admin_port, "GET", "/metrics/extra", "").status, 404);
    assert_eq!(
        admin(admin_port, "GET", "/healthz?verbose=1", "").status,
        200
    );
    // A malformed request gets the strict parser's 400.
    let r = roundtrip(addr(admin_port), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 400);
}

#[test]
fn a_taken_admin_port_fails_start_up() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = basic_config(
        free_port(),
        addr(1),
        1,
        &format!("[admin]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut g = Gateway::spawn(&cfg, &[], &[]);
    let status = g.wait_exit(WAIT);
    assert_eq!(status.code(), Some(1));
    assert!(
        g.log_text()
            .contains(&format!("admin.listen 127.0.0.1:{port}")),
        "{}",
        g.log_text()
    );
}

#[test]
fn the_admin_socket_is_handed_over_by_a_binary_upgrade() {
    let up = Upstream::ok("ok");
    let (web, admin_port) = (free_port(), free_port());
    let cfg = basic_config(
        web,
        up.addr,
        1,
        &format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n"),
    );
    let mut g = Gateway::start(&cfg);
    let status = |port| -> serde_json::Value {
        serde_json::from_slice(&admin(port, "GET", "/status", "").body).unwrap()
    };
    let old_pid = g.child.id();
    assert_eq!(status(admin_port)["pid"], old_pid);
    g.signal(libc::SIGUSR2);
    g.wait_log("upgrade: new process started");
    let text = g.log_text();
    let line = text
        .lines()
        .find(|l| l.contains("upgrade: new process started"))
        .unwrap();
    let pid: i32 = line.rsplit("pid=").next().unwrap().trim().parse().unwrap();
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let _successor = Kill(pid);
    assert_eq!(g.wait_exit(WAIT).code(), Some(0), "{}", g.log_text());
    let log = g.log_text();
    assert!(log.contains("admin socket inherited"), "{log}");
    assert!(log.contains("stopped accepting"), "{log}");
    // The same port, now answered by the new process.
    let s = status(admin_port);
    assert_eq!(s["pid"], pid, "{s}");
    assert_eq!(admin(admin_port, "GET", "/healthz", "").status, 200);
}

#[test]
fn access_log_lines_are_counted() {
    let up = Upstream::ok("ok");
    let (web, admin_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let cfg = basic_config(
        web,
        up.addr,
        1,
        &format!(
            "[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n[log]\naccess_log = \"{}\"\n",
            log.display()
        ),
    );
    let _g = Gateway::start(&cfg);
    for _ in 0..3 {
        assert_eq!(roundtrip(addr(web), GET_APP).status, 200);
    }
    let text = wait_sample(admin_port, "coregate_access_log_lines_total", 3.0);
    assert_eq!(
        sample(&text, "coregate_access_log_dropped_total"),
        Some(0.0)
    );
    // Without an access log, no such series.
    let (web2, admin2) = (free_port(), free_port());
    let cfg = basic_config(
        web2,
        up.addr,
        1,
        &format!("[admin]\nlisten = \"127.0.0.1:{admin2}\"\n"),
    );
    let _g2 = Gateway::start(&cfg);
    assert!(!metrics(admin2).contains("coregate_access_log"));
}
