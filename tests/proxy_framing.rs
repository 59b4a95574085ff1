//! Hostile and unusual framing: every rejection rule answers 400 (or its status) and closes
//! without anything reaching the upstream; chunked bodies are re-framed; pipelining, HEAD,
//! 100-continue and interim responses behave.

mod common;
use common::upstream::{gateway_to, response, Action, Upstream};
use common::*;
use std::io::{Read, Write};

/// Sends `raw`, expects `status`, a closed connection, and nothing at the upstream.
fn assert_rejected(port: u16, up: &Upstream, raw: &[u8], status: u16) {
    let mut s = connect(addr(port));
    s.write_all(raw).unwrap();
    let r = read_response(&mut s)
        .unwrap_or_else(|e| panic!("{e} for {:?}", String::from_utf8_lossy(raw)));
    assert_eq!(r.status, status, "for {:?}", String::from_utf8_lossy(raw));
    assert!(r.header("content-length").is_some());
    assert!(
        closed_by_peer(&mut s),
        "connection left open after {:?}",
        String::from_utf8_lossy(raw)
    );
    assert_eq!(
        up.received().len(),
        0,
        "reached the upstream: {:?}",
        String::from_utf8_lossy(raw)
    );
}

#[test]
fn ambiguous_framing_is_rejected_not_guessed() {
    let up = Upstream::ok("ok");
    let (_g, port) = gateway_to(&up);
    let cases: &[(&str, &[u8], u16)] = &[
        ("CL with TE", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("two CL equal", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
        ("two CL differ", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", 400),
        ("CL list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", 400),
        ("CL plus sign", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 400),
        ("CL minus", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        ("CL hex", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x1\r\n\r\nx", 400),
        ("CL overflow", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
        ("TE not chunked last", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        ("TE chunked twice", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
        ("TE chunked twice fields", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("space before colon", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 0\r\n\r\n", 400),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  continued\r\n\r\n", 400),
        ("NUL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n", 400),
        ("CR in value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n", 400),
        ("bad name", b"GET / HTTP/1.1\r\nHost: a\r\nX(A): 1\r\n\r\n", 400),
        ("bad request line", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("bad version", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 400),
        ("version garbage", b"GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400),
        ("no host", b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400),
        ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("bad host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        ("TE on 1.0", b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ];
    for (name, raw, status) in cases {
        eprintln!("case: {name}");
        assert_rejected(port, &up, raw, *status);
    }
}

#[test]
fn invalid_chunked_bodies_are_rejected() {
    let up = Upstream::ok("ok");
    let (_g, port) = gateway_to(&up);
    let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in [
        "0x1\r\nx\r\n0\r\n\r\n",
        "-1\r\nx\r\n0\r\n\r\n",
        "+1\r\nx\r\n0\r\n\r\n",
        "1_0\r\n",
        " 1\r\nx\r\n0\r\n\r\n",
        "fffffffffffffffff\r\n",
        "1\r\nxy0\r\n\r\n",
        "1\r\nx\n0\r\n\r\n",
        "zz\r\n",
    ] {
        let mut s = connect(addr(port));
        s.write_all(format!("{head}{body}").as_bytes()).unwrap();
        let r = read_response(&mut s).unwrap_or_else(|e| panic!("{e} for {body:?}"));
        assert!(r.status == 400 || r.status == 502, "{body:?}: {}", r.status);
        assert!(closed_by_peer(&mut s), "open after {body:?}");
    }
    // Whatever reached the upstream never carried a complete, valid-looking message.
    assert!(up.received().is_empty(), "{:?}", up.received());
}

#[test]
fn chunked_request_is_reframed_and_trailers_forwarded() {
    let up = Upstream::ok("ok");
    let (_g, port) = gateway_to(&up);
    let raw = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n";
    assert_eq!(roundtrip(addr(port), raw).status, 200);
    let got = up.wait_requests(1).remove(0);
    assert_eq!(got.body, b"hello world");
    assert_eq!(got.header("transfer-encoding").as_deref(), Some("chunked"));
    let raw_body = String::from_utf8_lossy(&got.raw_body).to_string();
    assert!(
        !raw_body.contains("name=value"),
        "extensions must not be forwarded raw: {raw_body:?}"
    );
    assert!(
        raw_body.ends_with("0\r\nX-Checksum: 42\r\n\r\n"),
        "{raw_body:?}"
    );
}

#[test]
fn content_length_body_is_forwarded() {
    let up = Upstream::ok("ok");
    let (_g, port) = gateway_to(&up);
    assert_eq!(
        roundtrip(
            addr(port),
            b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
        )
        .status,
        200
    );
    let got = up.wait_requests(1).remove(0);
    assert_eq!(got.body, b"hello world");
    assert_eq!(got.header("content-length").as_deref(), Some("11"));
}

#[test]
fn chunked_response_reaches_http11_client_chunked_and_http10_client_close_delimited() {
    let up = Upstream::start(|_| {
        Action::Send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: done\r\n\r\n".to_vec())
    });
    let (_g, port) = gateway_to(&up);
    let mut s = connect(addr(port));
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"0\r\nX-T: done\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{text}"
    );
    assert!(
        text.contains("\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: done\r\n\r\n"),
        "{text}"
    );
    // HTTP/1.0 client: no chunking it cannot read; the body ends with the connection.
    let mut s = connect(addr(port));
    s.write_all(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n").unwrap();
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.body, b"abcde");
    assert!(r.header("transfer-encoding").is_none());
}

#[test]
fn close_delimited_response_becomes_chunked_for_keepalive() {
    let up = Upstream::start(|_| {
        Action::SendClose(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end".to_vec())
    });
    let (_g, port) = gateway_to(&up);
    let mut s = connect(addr(port));
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"0\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("until the end"), "{text}");
    // and the client connection stays usable
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let mut more = [0u8; 64];
    assert!(s.read(&mut more).unwrap() > 0);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let up = Upstream::start(|r| {
        Action::Send(response(200, r.request_line().split(' ').nth(1).unwrap()))
    });
    let (_g, port) = gateway_to(&up);
    let mut s = connect(addr(port));
    s.write_all(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /4 HTTP/1.1\r\nHost: a\r\n\r\nGET /5 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    for want in ["/1", "/2", "/3"] {
        let r = read_response(&mut s).unwrap();
        assert_eq!(r.body, want.as_bytes());
    }
    let head = read_response_to(&mut s, true).unwrap();
    assert_eq!(
        head.header("content-length"),
        Some("2"),
        "HEAD keeps the length of the body it describes"
    );
    let r = read_response(&mut s).unwrap();
    assert_eq!(
        r.body, b"/5",
        "HEAD response must not eat the next response"
    );
    let got = up.received();
    assert_eq!(got[1].body, b"abc");
}

#[test]
fn expect_100_continue_gets_a_go_ahead() {
    let up = Upstream::ok("stored");
    let (_g, port) = gateway_to(&up);
    let mut s = connect(addr(port));
    s.write_all(b"PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let cont = read_response_to(&mut s, true).unwrap();
    assert_eq!(cont.status, 100, "the client must not wait forever");
    s.write_all(b"data").unwrap();
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"stored");
    let got = up.wait_requests(1).remove(0);
    assert_eq!(got.body, b"data");
    assert!(got.header("expect").is_none());
}

#[test]
fn body_over_the_route_limit_is_413() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let cfg = basic_config(port, up.addr, 1, "").replace(
        "upstream = \"app\"\n\n[[upstream]]",
        "upstream = \"app\"\nmax_body = 10\n\n[[upstream]]",
    );
    let _g = Gateway::start(&cfg);
    let r = roundtrip(
        addr(port),
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
    );
    assert_eq!(r.status, 413);
    let r = roundtrip(addr(port), b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n");
    assert_eq!(r.status, 413);
    assert_eq!(
        roundtrip(
            addr(port),
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhelloworld"
        )
        .status,
        200
    );
}

#[test]
fn interim_responses_are_relayed() {
    let up = Upstream::start(|_| {
        Action::Send(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec())
    });
    let (_g, port) = gateway_to(&up);
    let mut s = connect(addr(port));
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let hints = read_response_to(&mut s, true).unwrap();
    assert_eq!(hints.status, 103);
    assert_eq!(hints.header("link"), Some("</a.css>; rel=preload"));
    let r = read_response(&mut s).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
}

#[test]
fn invalid_upstream_framing_is_502() {
    for bad in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\0b\r\nContent-Length: 0\r\n\r\n",
        b"SMTP ready\r\n\r\n",
    ] {
        let raw = bad.to_vec();
        let up = Upstream::start(move |_| Action::SendClose(raw.clone()));
        let (_g, port) = gateway_to(&up);
        let r = roundtrip(addr(port), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(r.status, 502, "for {:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn chunk_extension_limit_is_configurable() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let _g = Gateway::start(&basic_config(
        port,
        up.addr,
        1,
        "\n[limits]\nmax_chunk_ext = 8",
    ));
    let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let ok = roundtrip(
        addr(port),
        format!("{head}1;a=b\r\nx\r\n0\r\n\r\n").as_bytes(),
    );
    assert_eq!(ok.status, 200);
    let mut s = connect(addr(port));
    s.write_all(format!("{head}1;name=long-value\r\nx\r\n0\r\n\r\n").as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut s).unwrap().status, 400);
    assert!(closed_by_peer(&mut s));
}
