//! The reverse proxy's everyday behaviour: forwarding, proxy-owned headers, routing, pooling,
//! and real nginx as an upstream.

mod common;
use common::upstream::{gateway_to, response, Action, Upstream};
use common::*;
use std::io::Write;

#[test]
fn forwards_request_and_response() {
    let up = Upstream::start(|r| {
        let body = format!("you asked for {}", r.request_line());
        Action::Send(response(200, &body))
    });
    let (_g, port) = gateway_to(&up);
    let r = roundtrip(
        addr(port),
        b"GET /hello?x=1 HTTP/1.1\r\nHost: site.example\r\nUser-Agent: t\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"you asked for GET /hello?x=1 HTTP/1.1");
    let got = up.wait_requests(1).remove(0);
    assert_eq!(got.header("host").as_deref(), Some("site.example"));
    assert_eq!(got.header("user-agent").as_deref(), Some("t"));
}

#[test]
fn forwarding_fields_are_set() {
    let up = Upstream::ok("ok");
    let (_g, port) = gateway_to(&up);
    let req = b"GET / HTTP/1.1\r\nHost: site.example:8443\r\nX-Forwarded-For: 203.0.113.9\r\nX-Real-IP: 6.6.6.6\r\nVia: 1.0 edge\r\nX-Forwarded-Proto: ftp\r\n\r\n";
    assert_eq!(roundtrip(addr(port), req).status, 200);
    let got = up.wait_requests(1).remove(0);
    assert_eq!(
        got.headers("x-forwarded-for"),
        vec!["203.0.113.9, 127.0.0.1"]
    );
    assert_eq!(got.headers("x-real-ip"), vec!["127.0.0.1"]);
    assert_eq!(got.headers("x-forwarded-proto"), vec!["http"]);
    assert_eq!(got.headers("x-forwarded-host"), vec!["site.example:8443"]);
    assert_eq!(got.headers("via"), vec!["1.0 edge, 1.1 coregate"]);
}

#[test]
fn repeated_forwarded_for_fields_are_joined_in_order() {
    let up = Upstream::ok("ok");
    let (_g, port) = gateway_to(&up);
    let req = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n\r\n";
    assert_eq!(roundtrip(addr(port), req).status, 200);
    let got = up.wait_requests(1).remove(0);
    assert_eq!(
        got.headers("x-forwarded-for"),
        vec!["1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"]
    );
}

#[test]
fn hop_by_hop_fields_are_removed_both_ways() {
    let up = Upstream::start(|_| {
        Action::Send(
            b"HTTP/1.1 200 OK\r\nConnection: X-Secret-Hop, keep-alive\r\nX-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
        )
    });
    let (_g, port) = gateway_to(&up);
    let req = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Drop-Me\r\nX-Drop-Me: 1\r\nKeep-Alive: 300\r\nProxy-Connection: keep-alive\r\nTE: trailers, deflate\r\nTrailer: X-T\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nUpgrade: h2c\r\nX-Keep: yes\r\n\r\n";
    let r = roundtrip(addr(port), req);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"ok");
    for gone in ["x-secret-hop", "keep-alive", "proxy-authenticate"] {
        assert!(
            r.header(gone).is_none(),
            "{gone} reached the client: {:?}",
            r.headers
        );
    }
    let cookies: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    let got = up.wait_requests(1).remove(0);
    for gone in [
        "connection",
        "x-drop-me",
        "keep-alive",
        "proxy-connection",
        "trailer",
        "proxy-authorization",
        "upgrade",
    ] {
        assert!(
            got.header(gone).is_none(),
            "{gone} reached the upstream:\n{}",
            got.head
        );
    }
    assert_eq!(got.headers("te"), vec!["trailers"]);
    assert_eq!(got.header("x-keep").as_deref(), Some("yes"));
}

#[test]
fn upstream_keepalive_connections_are_reused() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let mut g = Gateway::start(&basic_config(port, up.addr, 1, ""));
    let mut s = connect(addr(port));
    for _ in 0..200 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s).unwrap().status, 200);
    }
    // New client connections reuse the same upstream connection too.
    for _ in 0..50 {
        assert_eq!(
            roundtrip(addr(port), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status,
            200
        );
    }
    assert_eq!(
        up.accepted(),
        1,
        "every request should ride the first upstream connection"
    );
    g.signal(libc::SIGTERM);
    assert_eq!(g.wait_exit(WAIT).code(), Some(0));
    let log = g.log_text();
    assert!(
        log.contains("requests=250") && log.contains("reused=249"),
        "{log}"
    );
}

#[test]
fn an_upstream_that_closed_its_idle_connection_is_not_reused() {
    // Each response closes the connection: the gateway must notice and not send into it.
    let up = Upstream::start(|_| {
        Action::SendClose(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec())
    });
    let (g, port) = gateway_to(&up);
    let mut s = connect(addr(port));
    for i in 0..20 {
        s.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
            .unwrap();
        let r = read_response(&mut s).unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.status, 200, "request {i}: {}", g.log_text());
        // The upstream has closed the pooled connection, and the gateway's kernel has seen the
        // FIN (its side is no longer ESTABLISHED), before the next POST arrives.
        poll(WAIT, "upstream close", || (up.closed() > i).then_some(()));
        poll(WAIT, "FIN at the gateway", || {
            (!states_towards(up.addr.port()).contains(&"01".to_string())).then_some(())
        });
    }
    assert_eq!(up.received().len(), 20);
    assert_eq!(up.accepted(), 20);
}

#[test]
fn idempotent_requests_survive_a_pooled_connection_closing_in_the_race_window() {
    // The upstream closes right after answering, racing the next request: GETs are replayed
    // on a fresh connection when the reused one turns out dead, so none fails.
    let up = Upstream::start(|_| {
        Action::SendClose(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec())
    });
    let (_g, port) = gateway_to(&up);
    let mut s = connect(addr(port));
    for i in 0..100 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        let r = read_response(&mut s).unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.status, 200, "request {i}");
    }
}

#[test]
fn routes_by_host_and_longest_prefix_with_strip() {
    let api =
        Upstream::start(|r| Action::Send(response(200, &format!("api {}", r.request_line()))));
    let www =
        Upstream::start(|r| Action::Send(response(200, &format!("www {}", r.request_line()))));
    let any =
        Upstream::start(|r| Action::Send(response(200, &format!("any {}", r.request_line()))));
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
host = "api.example.com"
path_prefix = "/v1/"
strip_prefix = true
upstream = "api"
[[route]]
listener = "web"
host = "*.example.com"
upstream = "www"
response_headers = {{ set = {{ "x-served-by" = "www" }}, remove = ["x-powered-by"] }}
request_headers = {{ set = {{ "x-route" = "www" }}, remove = ["cookie"] }}
[[route]]
listener = "web"
path_prefix = "/static/"
upstream = "any"
[[upstream]]
name = "api"
endpoints = ["{}"]
[[upstream]]
name = "www"
endpoints = ["{}"]
[[upstream]]
name = "any"
endpoints = ["{}"]
"#,
        api.addr, www.addr, any.addr
    );
    let _g = Gateway::start(&cfg);
    let get = |host: &str, target: &str| {
        let r = roundtrip(
            addr(port),
            format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nCookie: c=1\r\n\r\n").as_bytes(),
        );
        (r.status, String::from_utf8_lossy(&r.body).to_string(), r)
    };
    assert_eq!(
        get("API.example.com", "/v1/users?id=3").1,
        "api GET /users?id=3 HTTP/1.1"
    );
    assert_eq!(
        get("api.example.com:80", "/v2/x").1,
        "www GET /v2/x HTTP/1.1"
    );
    let (_, body, r) = get("shop.example.com", "/");
    assert_eq!(body, "www GET / HTTP/1.1");
    assert_eq!(r.header("x-served-by"), Some("www"));
    let got = www.received();
    assert!(got
        .iter()
        .all(|g| g.header("x-route").as_deref() == Some("www") && g.header("cookie").is_none()));
    assert_eq!(
        get("other.test", "/static/a.css").1,
        "any GET /static/a.css HTTP/1.1"
    );
    assert_eq!(get("other.test", "/nothing").0, 404);
    // An absolute-form target routes by its authority and reaches the upstream in origin form.
    assert_eq!(
        get("ignored.test", "http://api.example.com/v1/abs").1,
        "api GET /abs HTTP/1.1"
    );
    let abs = api.received().into_iter().last().unwrap();
    assert_eq!(abs.header("host").as_deref(), Some("api.example.com"));
}

#[test]
fn no_route_is_404_with_a_body() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let cfg = basic_config(port, up.addr, 1, "").replace(
        "upstream = \"app\"\n\n[[upstream]]",
        "upstream = \"app\"\npath_prefix = \"/only/\"\n\n[[upstream]]",
    );
    let _g = Gateway::start(&cfg);
    let r = roundtrip(addr(port), b"GET /other HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 404);
    assert!(!r.body.is_empty());
    assert_eq!(up.received().len(), 0);
}

#[test]
fn real_nginx_as_the_upstream() {
    let Some(nginx) = common::nginx::Nginx::start(
        "  location / { add_header X-Upstream nginx; return 200 \"hello from nginx $request_uri $http_x_forwarded_for\\n\"; }\n  location /big { return 200 \"$request_body\"; }",
    ) else {
        return;
    };
    let port = free_port();
    let up: std::net::SocketAddr = format!("127.0.0.1:{}", nginx.port).parse().unwrap();
    let _g = Gateway::start(&basic_config(port, up, 1, ""));
    let mut s = connect(addr(port));
    for i in 0..20 {
        s.write_all(format!("GET /n{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut s).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-upstream"), Some("nginx"));
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            format!("hello from nginx /n{i} 127.0.0.1\n")
        );
    }
    // curl through the gateway, as a user would.
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{port}/curl"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from nginx /curl 127.0.0.1\n"
    );
}
