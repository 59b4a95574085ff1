//! A client connection on an HTTP listener: wait for a request, read its head under the limits,
//! route it, proxy it, repeat while keep-alive allows.
//!
//! An idle connection holds no buffer: it waits for readability, then borrows one from the
//! worker's pool, and gives it back once nothing is buffered.
//!
//! Every request that got a byte in ends in exactly one access log line (`log::access`),
//! whoever answered it: the upstream, or coregate itself (400, 404, 408, 413, 429, ...); a
//! client that leaves before any response is logged as 499, like nginx.

use super::h1::{HeadLimits, RequestHead, ResponseHead};
use super::status;
use crate::log::access::Entry;
use crate::proxy::buffered::{Buffered, Stream};
use crate::proxy::error::{Kind, ProxyError, Side, Step};
use crate::proxy::{exchange, headers::target_parts, Answer, Outcome};
use crate::runtime::connections::ConnectionGuard;
use crate::runtime::worker::WorkerCtx;
use monoio::time::Instant;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// How long to keep reading (and discarding) after an error response before closing.
pub const LINGER_TIME: Duration = Duration::from_secs(2);
/// During a handover to an upgraded process, how long an idle kept-alive connection may still
/// bring one more request before it is closed.
pub const HANDOVER_IDLE_GRACE: Duration = Duration::from_secs(2);
/// How many bytes to discard at most while lingering.
pub const LINGER_BYTES: usize = 1 << 20;

/// Serves one client connection until it closes, misbehaves, or the worker drains.
pub async fn serve(
    mut ctx: Rc<WorkerCtx>,
    mut listener: usize,
    stream: Stream,
    peer: SocketAddr,
    _guard: ConnectionGuard,
) {
    let mut client = Buffered::new(stream);
    let mut head = RequestHead::new();
    let mut resp = ResponseHead::new();
    loop {
        // Each request runs on the newest config version (a reload may have happened since the
        // last one); a listener the reload removed ends its kept-alive connections here.
        if client.buffered().is_empty() {
            if let Some(b) = client.reclaim() {
                ctx.bufs.give(b);
            }
            // Between requests: the idle timeout applies, and a draining worker closes at once.
            let idle = ctx.config.limits.client_idle_timeout;
            let ready = monoio::select! {
                r = monoio::time::timeout(idle, client.stream.readable()) => r,
                _ = ctx.drain.wait() => {
                    if !ctx.handover.get() {
                        return;
                    }
                    // A successor accepts new connections now; a client of this one may be
                    // sending its next request right now: serve it (with `connection: close`).
                    monoio::time::timeout(HANDOVER_IDLE_GRACE, client.stream.readable()).await
                }
            };
            if !matches!(ready, Ok(Ok(()))) {
                return;
            }
            if let Some(b) = client.lend(ctx.bufs.take()) {
                ctx.bufs.give(b);
            }
        } else {
            client.compact(); // a pipelined request: parse offsets start at 0
        }
        match ctx.latest(listener) {
            Some((newest, li)) => (ctx, listener) = (newest, li),
            None => return finish(&ctx, client),
        }
        let limits = &ctx.config.limits;
        let head_limits = HeadLimits {
            max_head: limits.max_request_head,
            max_target: limits.max_request_target,
            max_headers: limits.max_headers,
        };
        let started = Instant::now();
        let deadline = started + limits.client_header_timeout;
        let mut entry = ctx.access.entry(peer.ip());
        loop {
            match head.parse(client.buffered(), &head_limits) {
                Ok(Some(_)) => break,
                Ok(None) => ctx.access.partial(&mut entry, client.buffered(), &ctx.bufs),
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "bad request head");
                    ctx.record()
                        .answered(listener, None, e.status(), started.elapsed());
                    return reject_raw(&ctx, &mut client, e.status(), &mut entry).await;
                }
            }
            let before = client.buffered().len();
            match monoio::time::timeout_at(deadline, client.fill(limits.max_request_head)).await {
                Ok(Ok(0)) if before >= limits.max_request_head => {
                    ctx.record()
                        .answered(listener, None, 431, started.elapsed());
                    return reject_raw(&ctx, &mut client, 431, &mut entry).await;
                }
                Ok(Ok(0)) | Ok(Err(_)) => return finish(&ctx, client), // closed mid-head: nobody to answer
                Ok(Ok(_)) => {}
                Err(_) if before == 0 => return finish(&ctx, client),
                Err(_) => {
                    ctx.record()
                        .answered(listener, None, 408, started.elapsed());
                    return reject_raw(&ctx, &mut client, 408, &mut entry).await;
                }
            }
        }
        ctx.access
            .begin(&mut entry, client.buffered(), &head, &ctx.bufs);
        let route = {
            let buf = client.buffered();
            let host = head.host().map_or(&b""[..], |r| &buf[r]);
            let (authority, path) = target_parts(head.target_form(), &buf[head.target()], host);
            ctx.routes.find(listener, authority, path)
        };
        let Some(route) = route else {
            let code = status::for_error(&ProxyError::client(Step::ReadRequestHead, Kind::NoRoute))
                .unwrap_or(404);
            ctx.record()
                .answered(listener, None, code, started.elapsed());
            return reject(&ctx, &mut client, code, &mut entry).await;
        };
        entry.route = Some(route);
        let outcome = exchange(&ctx, &mut client, &head, &mut resp, route, peer, &mut entry).await;
        if let Some(code) = answered_status(&outcome, &resp) {
            ctx.record()
                .answered(listener, Some(route), code, started.elapsed());
        }
        match outcome {
            Ok(Outcome::KeepAlive) => ctx.access.finish(&mut entry, &ctx.bufs),
            Ok(Outcome::Close) => {
                ctx.access.finish(&mut entry, &ctx.bufs);
                return finish(&ctx, client);
            }
            Ok(Outcome::Answer(a)) => {
                if !answer(&ctx, &mut client, &head, &a, &mut entry).await {
                    return;
                }
            }
            Ok(Outcome::Upgrade(upstream)) => {
                // Logged at the 101: the tunnel's bytes are not HTTP's.
                ctx.access.finish(&mut entry, &ctx.bufs);
                return crate::proxy::tunnel_run(client, upstream, ctx.bufs.clone()).await;
            }
            Err(failure) => {
                let e = failure.error;
                match e.side {
                    Side::Client => tracing::debug!(%peer, error = %e, "client failed"),
                    _ => tracing::warn!(%peer, route, error = %e, "proxy error"),
                }
                if failure.responded {
                    // Mid-response: only an abrupt close is honest. Logged with the status sent.
                    ctx.access.finish(&mut entry, &ctx.bufs);
                    return finish(&ctx, client);
                }
                match status::for_error(&e) {
                    Some(code) => return reject(&ctx, &mut client, code, &mut entry).await,
                    None => {
                        entry.status = CLIENT_CLOSED;
                        ctx.access.finish(&mut entry, &ctx.bufs);
                        return finish(&ctx, client);
                    }
                }
            }
        }
    }
}

/// The status the client got for an exchange (`None`: it got none, it went away).
fn answered_status(
    result: &Result<Outcome, crate::proxy::Failure>,
    resp: &ResponseHead,
) -> Option<u16> {
    match result {
        Ok(Outcome::KeepAlive | Outcome::Close) => Some(resp.status()),
        Ok(Outcome::Answer(a)) => Some(a.status),
        Ok(Outcome::Upgrade(_)) => Some(101),
        Err(f) if f.responded => Some(resp.status()),
        Err(f) => status::for_error(&f.error),
    }
}

/// Returns the connection's buffer to the pool as it closes.
fn finish(ctx: &WorkerCtx, mut client: Buffered) {
    client.consume(usize::MAX);
    if let Some(b) = client.reclaim() {
        ctx.bufs.give(b);
    }
}

/// The status logged for a client that went away before it got a response (nginx's 499).
pub const CLIENT_CLOSED: u16 = 499;

/// Sends a policy answer (fallback, 503, 429, 401, 403). Keeps the connection when the request
/// had no body and keep-alive allows; otherwise closes with lingering. Returns whether to go on.
async fn answer(
    ctx: &WorkerCtx,
    client: &mut Buffered,
    head: &RequestHead,
    a: &Answer,
    entry: &mut Entry,
) -> bool {
    let close = head.framing().has_body() || !head.keep_alive() || ctx.drain.is_set();
    let mut digits = [0u8; 20];
    let mut headers: [(&str, &str); 3] = [("", ""); 3];
    let mut n = 0;
    if let Some(secs) = a.retry_after {
        // Formatted on the stack: a flood of rejected requests allocates nothing.
        let mut w = &mut digits[..];
        let _ = std::io::Write::write_fmt(&mut w, format_args!("{secs}"));
        let len = 20 - w.len();
        headers[n] = (
            "retry-after",
            std::str::from_utf8(&digits[..len]).unwrap_or("1"),
        );
        n += 1;
    }
    if let Some(v) = &a.www_authenticate {
        headers[n] = ("www-authenticate", v);
        n += 1;
    }
    let id = entry.id;
    if !id.is_empty() {
        headers[n] = (crate::log::request_id::HEADER, id.as_str());
        n += 1;
    }
    let body = a
        .fallback
        .and_then(|r| ctx.config.routes[r].fallback.as_ref())
        .map(|f| f.body.as_str());
    entry.status = a.status;
    entry.bytes = body.map_or(status::error_body_len(a.status), |b| b.len() as u64);
    ctx.access.finish(entry, &ctx.bufs);
    let mut out = ctx.bufs.take();
    status::write_local(
        &mut out,
        &status::Local {
            status: a.status,
            headers: &headers[..n],
            body,
            close,
        },
    );
    if close {
        linger(ctx, client, out).await;
        return false;
    }
    client.consume(head.head_len());
    let (res, out) = crate::proxy::buffered::write_all(&mut client.stream, out).await;
    ctx.bufs.give(out);
    res.is_ok()
}

/// Answers with an error status and closes, lingering so the answer is not lost to a reset.
async fn reject(ctx: &WorkerCtx, client: &mut Buffered, code: u16, entry: &mut Entry) {
    let mut out = ctx.bufs.take();
    status::write_error(&mut out, code, entry.id.as_bytes());
    entry.status = code;
    entry.bytes = status::error_body_len(code);
    ctx.access.finish(entry, &ctx.bufs);
    linger(ctx, client, out).await;
}

/// `reject` for a head that did not parse (or arrive): the log shows its first line as sent.
async fn reject_raw(ctx: &WorkerCtx, client: &mut Buffered, code: u16, entry: &mut Entry) {
    ctx.access.begin_raw(entry, client.buffered(), &ctx.bufs);
    reject(ctx, client, code, entry).await
}

/// Writes `out` (a response that ends the connection), then closes like nginx's lingering close.
async fn linger(ctx: &WorkerCtx, client: &mut Buffered, out: Vec<u8>) {
    let (res, mut out) = crate::proxy::buffered::write_all(&mut client.stream, out).await;
    if res.is_ok() {
        // Like nginx's lingering close: half-close, then drain what the client still sends,
        // so closing with unread bytes does not reset the connection and destroy the answer.
        let _ = client.stream.shutdown().await;
        let deadline = Instant::now() + LINGER_TIME;
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            client.consume(usize::MAX);
            match monoio::time::timeout_at(deadline, client.fill(out.capacity())).await {
                Ok(Ok(n)) if n > 0 => discarded += n,
                _ => break,
            }
        }
    }
    out.clear();
    ctx.bufs.give(out);
    client.consume(usize::MAX);
    if let Some(b) = client.reclaim() {
        ctx.bufs.give(b);
    }
}
