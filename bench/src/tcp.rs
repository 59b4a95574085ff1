//! tcp:// mode: each connection connects, writes `--size` bytes while reading them back from an
//! echo upstream, checks them, closes, and starts over.
//!
//! Byte `i` of every stream is `i % 251`, so the echo is checked without keeping what was sent.

use crate::args::Mode;
use crate::engine::{ConnSpec, ThreadCtx};
use crate::stats::ErrorKind;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use monoio::net::TcpStream;
use monoio::time::{sleep_until, timeout_at};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Bytes per write and per read.
pub const CHUNK: usize = 64 * 1024;
/// The pattern's period: a prime, so it does not line up with chunk sizes.
pub const PERIOD: usize = 251;

const BACKOFF_MIN: Duration = Duration::from_millis(1);
const BACKOFF_MAX: Duration = Duration::from_millis(100);

/// The pattern buffer: `CHUNK + PERIOD` bytes, byte `i` = `i % PERIOD`.
pub fn pattern() -> Vec<u8> {
    (0..CHUNK + PERIOD).map(|i| (i % PERIOD) as u8).collect()
}

fn mono(t: Instant) -> monoio::time::Instant {
    monoio::time::Instant::from_std(t)
}

/// How one echo round ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    Done,
    Failed(ErrorKind),
    /// The run ended first: not counted.
    Over,
}

/// Runs one connection slot until the run ends.
pub async fn connection(ctx: Rc<ThreadCtx>, spec: ConnSpec) {
    let Mode::Tcp { size } = ctx.plan.mode else {
        return;
    };
    let mut rbuf = Some(Vec::with_capacity(CHUNK));
    let mut attempts = 0u64;
    let mut backoff = BACKOFF_MIN;
    loop {
        let start = Instant::now();
        if ctx.clock.over(start) || spec.quota.is_some_and(|q| attempts >= q) {
            return;
        }
        let deadline = ctx.clock.cap(start + ctx.plan.timeout);
        let stream = match timeout_at(mono(deadline), TcpStream::connect_addr(ctx.plan.addr)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                ctx.connect_failed(&e);
                if ctx.error(Instant::now(), ErrorKind::Connect, 1) {
                    attempts += 1;
                }
                let until = ctx.clock.cap(Instant::now() + backoff);
                sleep_until(mono(until)).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            Err(_) => {
                if ctx.error(Instant::now(), ErrorKind::Connect, 1) {
                    attempts += 1;
                }
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        ctx.connected.set(true);
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let round = first_failure(
            push(&ctx, &mut wr, size),
            pull(&ctx, &mut rd, &mut rbuf, size),
        )
        .await;
        drop((rd, wr));
        let now = Instant::now();
        match round {
            Round::Done => {
                if ctx.complete(now, start, 0) {
                    attempts += 1;
                    ctx.bytes(now, usize::try_from(size).unwrap_or(usize::MAX));
                }
            }
            Round::Failed(kind) => {
                if ctx.error(now, kind, 1) {
                    attempts += 1;
                }
            }
            Round::Over => return,
        }
    }
}

/// Runs the writer and the reader together: done when both are, or at the first failure (the
/// other side is dropped then, so a bad echo does not wait for a blocked write to time out).
async fn first_failure(w: impl Future<Output = Round>, r: impl Future<Output = Round>) -> Round {
    let mut w = pin!(w);
    let mut r = pin!(r);
    let (mut w_out, mut r_out) = (None, None);
    poll_fn(|cx| {
        if r_out.is_none() {
            if let Poll::Ready(x) = r.as_mut().poll(cx) {
                r_out = Some(x);
            }
        }
        if w_out.is_none() {
            if let Poll::Ready(x) = w.as_mut().poll(cx) {
                w_out = Some(x);
            }
        }
        match (r_out, w_out) {
            (Some(x), _) | (_, Some(x)) if x != Round::Done => Poll::Ready(x),
            (Some(_), Some(_)) => Poll::Ready(Round::Done),
            _ => Poll::Pending,
        }
    })
    .await
}

/// Writes `size` pattern bytes.
async fn push(ctx: &ThreadCtx, wr: &mut impl AsyncWriteRent, size: u64) -> Round {
    let pattern: &'static [u8] = ctx.wire;
    let mut sent = 0u64;
    while sent < size {
        let n = (size - sent).min(CHUNK as u64) as usize;
        let off = (sent % PERIOD as u64) as usize;
        let Some(out) = pattern.get(off..off + n) else {
            return Round::Failed(ErrorKind::Parse);
        };
        let deadline = ctx.clock.cap(Instant::now() + ctx.plan.timeout);
        match timeout_at(mono(deadline), wr.write_all(out)).await {
            Ok((Ok(_), _)) => sent += n as u64,
            Ok((Err(_), _)) => return Round::Failed(ErrorKind::Reset),
            Err(_) if ctx.clock.over(Instant::now()) => return Round::Over,
            Err(_) => return Round::Failed(ErrorKind::Timeout),
        }
    }
    Round::Done
}

/// Reads `size` bytes back and checks them against the pattern.
async fn pull(
    ctx: &ThreadCtx,
    rd: &mut impl AsyncReadRent,
    rbuf: &mut Option<Vec<u8>>,
    size: u64,
) -> Round {
    let pattern: &'static [u8] = ctx.wire;
    let mut got = 0u64;
    while got < size {
        let mut buf = rbuf.take().unwrap_or_else(|| Vec::with_capacity(CHUNK));
        buf.clear();
        let want = (size - got).min(CHUNK as u64) as usize;
        let deadline = ctx.clock.cap(Instant::now() + ctx.plan.timeout);
        let read = timeout_at(mono(deadline), rd.read(buf.slice_mut(0..want))).await;
        let (res, slice) = match read {
            Ok(r) => r,
            Err(_) if ctx.clock.over(Instant::now()) => return Round::Over,
            Err(_) => return Round::Failed(ErrorKind::Timeout),
        };
        let buf = slice.into_inner();
        let n = match res {
            Ok(0) | Err(_) => {
                *rbuf = Some(buf);
                return Round::Failed(ErrorKind::Reset);
            }
            Ok(n) => n,
        };
        let off = (got % PERIOD as u64) as usize;
        let ok = buf.get(..n) == pattern.get(off..off + n);
        *rbuf = Some(buf);
        if !ok {
            return Round::Failed(ErrorKind::Parse);
        }
        got += n as u64;
    }
    Round::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_repeats() {
        let p = pattern();
        assert_eq!(p.len(), CHUNK + PERIOD);
        assert_eq!(p[PERIOD], 0);
        assert_eq!(p[PERIOD + 7], 7);
    }
}
