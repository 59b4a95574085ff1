//! The fixed page every HTTP listener serves until the proxy exists: it reads real request heads
//! under the configured limits and timeouts, honours keep-alive and pipelining, and names the
//! worker so tests and newcomers can see connections spread across cores.

use super::status::write_error;
use crate::runtime::connections::ConnectionGuard;
use crate::runtime::worker::WorkerCtx;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

/// Bytes asked of the kernel per read.
pub const READ_CHUNK: usize = 4096;

/// A parsed request head: what the fixed page needs to answer and frame the next request.
struct Head {
    len: usize,
    head_only: bool,
    keep_alive: bool,
    has_body: bool,
}

enum Parsed {
    Complete(Head),
    Incomplete,
    Reject(u16),
}

/// Serves one client connection until it closes, misbehaves, or the worker drains.
pub async fn serve(
    ctx: Rc<WorkerCtx>,
    mut stream: TcpStream,
    _peer: SocketAddr,
    _guard: ConnectionGuard,
) {
    let limits = &ctx.config.limits;
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(512);
    loop {
        if buf.is_empty() {
            // Between requests: the idle timeout applies, and a draining worker closes at once.
            let read = monoio::select! {
                r = monoio::time::timeout(limits.client_idle_timeout, read_more(&mut stream, buf)) => r,
                _ = ctx.drain.wait() => return,
            };
            match read {
                Ok((Ok(n), b)) if n > 0 => buf = b,
                _ => return,
            }
        }
        let deadline =
            monoio::time::Instant::from_std(Instant::now() + limits.client_header_timeout);
        let head = loop {
            match parse(&buf, &ctx) {
                Parsed::Complete(h) => break h,
                Parsed::Reject(code) => return reject(&mut stream, out, code).await,
                Parsed::Incomplete => {}
            }
            if buf.len() >= limits.max_request_head {
                return reject(&mut stream, out, 431).await;
            }
            match monoio::time::timeout_at(deadline, read_more(&mut stream, buf)).await {
                Ok((Ok(n), b)) if n > 0 => buf = b,
                Ok(_) => return, // closed or reset mid-head: nobody to answer
                Err(_) => return reject(&mut stream, out, 408).await,
            }
        };
        let close = !head.keep_alive || head.has_body || ctx.drain.is_set();
        out.clear();
        let body = format!(
            "coregate worker {} answered; routing and proxying arrive with the HTTP proxy.\n",
            ctx.index
        );
        let _ = write!(
            out,
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nx-coregate-worker: {}\r\n{}\r\n",
            body.len(),
            ctx.index,
            if close { "connection: close\r\n" } else { "" }
        );
        if !head.head_only {
            out.extend_from_slice(body.as_bytes());
        }
        let (res, o) = stream.write_all(out).await;
        out = o;
        if res.is_err() || close {
            return;
        }
        buf.drain(..head.len); // pipelined bytes stay for the next round
    }
}

async fn reject(stream: &mut TcpStream, mut out: Vec<u8>, code: u16) {
    out.clear();
    write_error(&mut out, code);
    let (res, out) = stream.write_all(out).await;
    if res.is_ok() {
        lingering_close(stream, out).await;
    }
}

/// How long to keep reading (and discarding) after an error response before closing.
pub const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);
/// How many bytes to discard at most while lingering.
pub const LINGER_BYTES: usize = 1 << 20;

/// Like nginx's lingering close: half-close, then drain what the client still sends, so closing
/// with unread bytes does not reset the connection and destroy the error response in flight.
async fn lingering_close(stream: &mut TcpStream, mut buf: Vec<u8>) {
    let _ = monoio::io::AsyncWriteRent::shutdown(stream).await;
    let deadline = monoio::time::Instant::now() + LINGER_TIME;
    let mut discarded = 0;
    while discarded < LINGER_BYTES {
        buf.clear();
        buf.reserve(READ_CHUNK);
        match monoio::time::timeout_at(deadline, stream.read(buf)).await {
            Ok((Ok(n), b)) if n > 0 => {
                discarded += n;
                buf = b;
            }
            _ => return,
        }
    }
}

/// Reads more bytes after what `buf` holds, growing it by at most one chunk.
async fn read_more(stream: &mut TcpStream, mut buf: Vec<u8>) -> (std::io::Result<usize>, Vec<u8>) {
    buf.reserve(READ_CHUNK);
    let len = buf.len();
    let (res, slice) = stream.read(buf.slice_mut(len..)).await;
    (res, slice.into_inner())
}

fn parse(buf: &[u8], ctx: &WorkerCtx) -> Parsed {
    let limits = &ctx.config.limits;
    // A request line longer than the target limit is 414 before the line is even complete.
    let line_end = buf.iter().position(|&b| b == b'\n');
    let line_len = line_end.unwrap_or(buf.len());
    if line_len > limits.max_request_target + "OPTIONS  HTTP/1.1\r".len() {
        return Parsed::Reject(414);
    }
    let mut headers = [httparse::EMPTY_HEADER; crate::config::defaults::MAX_HEADERS_CEILING];
    let n = limits.max_headers.min(headers.len());
    let mut req = httparse::Request::new(&mut headers[..n]);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => Parsed::Incomplete,
        Err(httparse::Error::TooManyHeaders) => Parsed::Reject(431),
        Err(_) => Parsed::Reject(400),
        Ok(httparse::Status::Complete(len)) => {
            if req.path.map_or(0, str::len) > limits.max_request_target {
                return Parsed::Reject(414);
            }
            let version = req.version.unwrap_or(1);
            let mut keep_alive = version == 1;
            let mut has_body = false;
            let mut hosts = 0;
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("connection") {
                    for token in h.value.split(|&b| b == b',') {
                        let t = token.trim_ascii();
                        if t.eq_ignore_ascii_case(b"close") {
                            keep_alive = false;
                        } else if t.eq_ignore_ascii_case(b"keep-alive") && version == 0 {
                            keep_alive = true;
                        }
                    }
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    has_body = true;
                } else if h.name.eq_ignore_ascii_case("content-length") {
                    has_body |= h.value.trim_ascii() != b"0";
                } else if h.name.eq_ignore_ascii_case("host") {
                    hosts += 1;
                }
            }
            if version == 1 && hosts != 1 {
                return Parsed::Reject(400);
            }
            let head_only = req.method == Some("HEAD");
            Parsed::Complete(Head {
                len,
                head_only,
                keep_alive,
                has_body,
            })
        }
    }
}
