//! The response half of an exchange: relay the upstream's response (or switch to a tunnel on
//! 101), framed for this client, then park or close the upstream connection.

use super::body::{Copy, From};
use super::buffered::{write_all, Buffered};
use super::error::{Kind, ProxyError, Step};
use super::exchange::{Failure, Outcome};
use super::headers::{write_response_head, OutFraming, StatusLine};
use super::leg::{recycle, Leg};
use crate::config::Route;
use crate::http::h1::{Framing, Method, RequestHead, ResponseHead, Upgrade, Version};
use crate::log::access::Entry;
use crate::runtime::buffers::BUFFER_SIZE;
use crate::runtime::worker::WorkerCtx;

/// Sends the response whose head (`resp_len` bytes) starts `leg`'s buffer to the client.
#[allow(clippy::too_many_arguments)] // one call site; the exchange's state, passed whole
pub(super) async fn relay(
    ctx: &WorkerCtx,
    client: &mut Buffered,
    head: &RequestHead,
    resp: &ResponseHead,
    resp_len: usize,
    mut leg: Leg,
    route: &Route,
    mut out: Vec<u8>,
    entry: &mut Entry,
) -> Result<Outcome, Failure> {
    let config = &ctx.config;
    let method = head.method();
    // 101: the connection becomes a tunnel.
    if resp.status() == 101 {
        if head.upgrade() == Upgrade::None {
            recycle(ctx, leg.conn);
            ctx.bufs.give(out);
            return Err(ProxyError::upstream(
                Step::ReadResponseHead,
                Kind::Malformed(crate::http::h1::HeadError::StatusLine),
            )
            .into());
        }
        out.clear();
        let line = StatusLine {
            status: 101,
            reason: b"Switching Protocols",
            framing: OutFraming::None,
            keep_length: false,
            upgrade: true,
            close: false,
            request_id: entry.id.as_bytes(),
        };
        write_response_head(
            &mut out,
            leg.conn.buffered(),
            resp.fields(),
            resp.connection(),
            &line,
            &route.response_headers,
        );
        leg.conn.consume(resp_len);
        entry.status = 101;
        let (res, o) = write_all(&mut client.stream, out).await;
        ctx.bufs.give(o);
        return match res {
            Ok(()) => Ok(Outcome::Upgrade(leg.conn)),
            Err(e) => Err(Failure {
                error: ProxyError::client_io(Step::WriteResponse, &e),
                responded: true,
            }),
        };
    }

    let framing = resp.framing();
    let client_11 = head.version() == Version::Http11;
    let out_framing = match framing {
        Framing::None => OutFraming::None,
        Framing::Length(n) => OutFraming::Length(n),
        Framing::Chunked | Framing::CloseDelimited if client_11 => OutFraming::Chunked,
        Framing::Chunked | Framing::CloseDelimited => OutFraming::Close,
    };
    let close = !head.keep_alive() || ctx.drain.is_set() || out_framing == OutFraming::Close;
    let status = resp.status();
    out.clear();
    let line = StatusLine {
        status,
        reason: &leg.conn.buffered()[resp.reason()],
        framing: out_framing,
        keep_length: framing == Framing::None && (method == Method::Head || status == 304),
        upgrade: false,
        close,
        request_id: entry.id.as_bytes(),
    };
    write_response_head(
        &mut out,
        leg.conn.buffered(),
        resp.fields(),
        resp.connection(),
        &line,
        &route.response_headers,
    );
    let upstream_keeps = resp.keep_alive() && framing != Framing::CloseDelimited;
    leg.conn.consume(resp_len);
    // Body bytes that arrived with the head go out in the same write.
    let mut early = 0;
    if let Framing::Length(n) = framing {
        let room = BUFFER_SIZE.saturating_sub(out.len());
        early = (n.min(leg.conn.buffered().len() as u64) as usize).min(room);
        out.extend_from_slice(&leg.conn.buffered()[..early]);
        leg.conn.consume(early);
    }
    entry.status = status;
    let (res, o) = write_all(&mut client.stream, out).await;
    out = o;
    if let Err(e) = res {
        recycle(ctx, leg.conn);
        ctx.bufs.give(out);
        return Err(Failure {
            error: ProxyError::client_io(Step::WriteResponse, &e),
            responded: true,
        });
    }
    let upstream_cfg = &config.upstreams[route.upstream];
    let copy = Copy {
        from: From::Upstream,
        read_timeout: upstream_cfg.response_timeout,
        max_buffer: BUFFER_SIZE,
        limit: None,
        max_chunk_ext: ctx.config.limits.max_chunk_ext,
        sent: Default::default(),
    };
    let copied = match framing {
        Framing::None => Ok(()),
        Framing::Length(n) => {
            copy.length(&mut leg.conn, &mut client.stream, n - early as u64)
                .await
        }
        Framing::Chunked => {
            copy.chunked(
                &mut leg.conn,
                &mut client.stream,
                &mut out,
                client_11,
                head.te_trailers(),
            )
            .await
        }
        Framing::CloseDelimited => {
            copy.until_close(&mut leg.conn, &mut client.stream, &mut out, client_11)
                .await
        }
    };
    ctx.bufs.give(out);
    entry.bytes = early as u64 + copy.sent.get();
    if let Err(e) = copied {
        recycle(ctx, leg.conn);
        return Err(Failure {
            error: e,
            responded: true,
        });
    }
    if upstream_keeps && leg.conn.buffered().is_empty() {
        if let Some(b) = leg.conn.reclaim() {
            ctx.bufs.give(b);
        }
        ctx.upstreams.borrow_mut()[route.upstream]
            .pool
            .checkin(leg.endpoint, leg.conn.stream);
    } else {
        recycle(ctx, leg.conn);
    }
    Ok(if close {
        Outcome::Close
    } else {
        Outcome::KeepAlive
    })
}
