//! One request through the proxy: pick an endpoint, send the re-framed request, relay the
//! response. Returns whether the client connection may carry another request.

use super::body::{Copy, From};
use super::buffered::{write_all, Buffered};
use super::error::{Kind, ProxyError, Step};
use super::headers::{
    target_parts, write_request_head, write_response_head, OutFraming, RequestLine, StatusLine,
};
use super::leg::{acquire, recycle, Leg};
use crate::http::h1::{
    Framing, HeadLimits, RequestHead, ResponseHead, Upgrade, Version, MAX_HEADERS_CEILING,
};
use crate::route::strip_prefix;
use crate::runtime::buffers::BUFFER_SIZE;
use crate::runtime::worker::WorkerCtx;
use monoio::time::Instant;
use std::net::SocketAddr;
use std::time::Duration;

/// Longest wait for the client's next body bytes (nginx's client_body_timeout).
pub const CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest response head we accept from an upstream.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// How the client connection continues after an exchange.
pub enum Outcome {
    /// The response is complete; the next request may follow.
    KeepAlive,
    /// The response is complete (or cut); close the connection.
    Close,
    /// 101: the connection is now a tunnel to this upstream connection.
    Upgrade(Buffered),
}

/// An exchange that failed; `responded` tells whether the client already has a response head,
/// in which case only closing the connection is left.
pub struct Failure {
    pub error: ProxyError,
    pub responded: bool,
}

impl std::convert::From<ProxyError> for Failure {
    fn from(error: ProxyError) -> Failure {
        Failure {
            error,
            responded: false,
        }
    }
}

/// Proxies the request whose head starts `client`'s buffer.
pub async fn exchange(
    ctx: &WorkerCtx,
    client: &mut Buffered,
    head: &RequestHead,
    resp: &mut ResponseHead,
    route_index: usize,
    peer: SocketAddr,
) -> Result<Outcome, Failure> {
    let config = &ctx.config;
    let route = &config.routes[route_index];
    let deadline = Instant::now() + route.timeout;
    let framing_in = head.framing();
    if let (Some(max), Framing::Length(n)) = (route.max_body, framing_in) {
        if n > max {
            return Err(ProxyError::client(Step::ReadRequestBody, Kind::BodyTooLarge).into());
        }
    }

    let mut out = ctx.bufs.take();
    let head_len = head.head_len();
    let method = head.method();
    let replayable = !framing_in.has_body() && method.is_idempotent();

    let mut fresh_only = false;
    let (leg, resp_len) = loop {
        let mut leg =
            match acquire(ctx, route.upstream, peer, fresh_only, !replayable, deadline).await {
                Ok(leg) => leg,
                Err(e) => {
                    ctx.bufs.give(out);
                    return Err(e.into());
                }
            };
        // Written anew for each attempt: `out` also carries interim responses in between.
        write_upstream_head(&mut out, client.buffered(), head, route, peer);
        // Body bytes that arrived with the head ride in the same write.
        let early = match framing_in {
            Framing::Length(n) => {
                let room = BUFFER_SIZE.saturating_sub(out.len());
                let avail = client.buffered().len().saturating_sub(head_len);
                (n.min(avail as u64) as usize).min(room)
            }
            _ => 0,
        };
        out.extend_from_slice(&client.buffered()[head_len..head_len + early]);
        let (res, o) = write_all(&mut leg.conn.stream, out).await;
        out = o;
        let sent = match res {
            Ok(()) => {
                send_body(
                    client,
                    head,
                    head_len,
                    early,
                    &mut leg,
                    Copy {
                        from: From::Client,
                        read_timeout: CLIENT_BODY_TIMEOUT,
                        max_buffer: BUFFER_SIZE,
                        limit: route.max_body,
                        max_chunk_ext: config.limits.max_chunk_ext,
                    },
                    &mut out,
                )
                .await
            }
            Err(e) => Err(ProxyError::upstream_io(Step::WriteRequest, &e)),
        };
        let result = match sent {
            Ok(()) => {
                read_response_head(ctx, client, &mut leg, resp, head, deadline, &mut out).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(len) => break (leg, len),
            // A pooled connection the upstream closed just as we reused it: replay once on a
            // fresh one, only if the request is idempotent and had no body to lose.
            Err(e)
                if leg.reused
                    && replayable
                    && e.side == super::error::Side::Upstream
                    && !fresh_only =>
            {
                tracing::debug!(error = %e, "reused upstream connection failed; retrying on a new one");
                recycle(ctx, leg.conn);
                fresh_only = true;
            }
            Err(e) => {
                recycle(ctx, leg.conn);
                ctx.bufs.give(out);
                return Err(e.into());
            }
        }
    };
    if !framing_in.has_body() {
        client.consume(head_len);
    }
    {
        let mut ups = ctx.upstreams.borrow_mut();
        let st = &mut ups[route.upstream];
        st.requests += 1;
        st.reused += u64::from(leg.reused);
    }

    super::respond::relay(ctx, client, head, resp, resp_len, leg, route, out).await
}

/// Writes the upstream request head for `head` into `out`.
fn write_upstream_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &RequestHead,
    route: &crate::config::Route,
    peer: SocketAddr,
) {
    let target = &buf[head.target()];
    let host = head.host().map_or(&b""[..], |r| &buf[r]);
    let (authority, path) = target_parts(head.target_form(), target, host);
    let (mut lead, rest) = if route.strip_prefix {
        strip_prefix(path, &route.path_prefix)
    } else {
        (&b""[..], path)
    };
    if lead.is_empty()
        && rest.first() != Some(&b'/')
        && head.target_form() != crate::http::h1::TargetForm::Asterisk
    {
        lead = b"/";
    }
    let upgrade = match head.upgrade() {
        Upgrade::None => None,
        _ => head
            .fields()
            .iter()
            .find(|f| f.is(buf, "upgrade"))
            .map(|f| f.value(buf)),
    };
    let framing = match head.framing() {
        Framing::Length(n) => OutFraming::Length(n),
        Framing::Chunked => OutFraming::Chunked,
        Framing::None | Framing::CloseDelimited => OutFraming::None,
    };
    let line = RequestLine {
        method: &buf[head.method_range()],
        path_lead: lead,
        path: rest,
        authority,
        absolute: head.target_form() == crate::http::h1::TargetForm::Absolute,
        client: peer.ip(),
        proto: "http",
        upgrade,
        te_trailers: head.te_trailers(),
        framing,
    };
    out.clear();
    write_request_head(
        out,
        buf,
        head.fields(),
        head.connection(),
        &line,
        &route.request_headers,
    );
}

/// Sends the request body (if any) after the head; answers `Expect: 100-continue` first.
async fn send_body(
    client: &mut Buffered,
    head: &RequestHead,
    head_len: usize,
    early: usize,
    leg: &mut Leg,
    copy: Copy,
    out: &mut Vec<u8>,
) -> Result<(), ProxyError> {
    let framing = head.framing();
    if !framing.has_body() {
        return Ok(()); // the head stays buffered until the exchange succeeds, for a replay
    }
    client.consume(head_len + early);
    if head.expect_continue()
        && early == 0
        && client.buffered().is_empty()
        && head.version() == Version::Http11
    {
        // We took Expect off the upstream request, so we owe the client the go-ahead.
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        let (res, o) = write_all(&mut client.stream, std::mem::take(out)).await;
        *out = o;
        res.map_err(|e| ProxyError::client_io(Step::WriteResponse, &e))?;
    }
    match framing {
        Framing::Length(n) => {
            copy.length(client, &mut leg.conn.stream, n - early as u64)
                .await
        }
        Framing::Chunked => {
            copy.chunked(client, &mut leg.conn.stream, out, true, true)
                .await
        }
        Framing::None | Framing::CloseDelimited => Ok(()),
    }
}

/// Reads the final response head, relaying 1xx interim responses to HTTP/1.1 clients.
async fn read_response_head(
    ctx: &WorkerCtx,
    client: &mut Buffered,
    leg: &mut Leg,
    resp: &mut ResponseHead,
    request: &RequestHead,
    deadline: Instant,
    out: &mut Vec<u8>,
) -> Result<usize, ProxyError> {
    let (method, client_version) = (request.method(), request.version());
    let cfg = &ctx.config;
    let limits = HeadLimits {
        max_head: MAX_RESPONSE_HEAD,
        max_target: 0,
        max_headers: MAX_HEADERS_CEILING,
    };
    if leg.conn.buffered().is_empty() {
        if let Some(b) = leg.conn.lend(ctx.bufs.take()) {
            ctx.bufs.give(b);
        }
    }
    let upstream_cfg = &cfg.upstreams[leg.upstream];
    let head_deadline = deadline.min(Instant::now() + upstream_cfg.response_timeout);
    loop {
        let parsed = resp.parse(leg.conn.buffered(), &limits, method);
        match parsed {
            Ok(Some(len)) if (100..200).contains(&resp.status()) && resp.status() != 101 => {
                if client_version == Version::Http11 {
                    out.clear();
                    let reason = &leg.conn.buffered()[resp.reason()];
                    let line = StatusLine {
                        status: resp.status(),
                        reason,
                        framing: OutFraming::None,
                        keep_length: false,
                        upgrade: false,
                        close: false,
                    };
                    write_response_head(
                        out,
                        leg.conn.buffered(),
                        resp.fields(),
                        resp.connection(),
                        &line,
                        &Default::default(),
                    );
                    let (res, o) = write_all(&mut client.stream, std::mem::take(out)).await;
                    *out = o;
                    res.map_err(|e| ProxyError::client_io(Step::WriteResponse, &e))?;
                }
                leg.conn.consume(len);
                continue;
            }
            Ok(Some(len)) => return Ok(len),
            Ok(None) => {}
            Err(e) => {
                return Err(ProxyError::upstream(
                    Step::ReadResponseHead,
                    Kind::Malformed(e),
                ))
            }
        }
        match monoio::time::timeout_at(head_deadline, leg.conn.fill(MAX_RESPONSE_HEAD)).await {
            Ok(Ok(0)) => return Err(ProxyError::upstream(Step::ReadResponseHead, Kind::Closed)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(ProxyError::upstream_io(Step::ReadResponseHead, &e)),
            Err(_) => return Err(ProxyError::upstream(Step::ReadResponseHead, Kind::Timeout)),
        }
    }
}
