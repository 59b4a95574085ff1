//! Attempts of one request at the upstream: the plain attempt of a bodiless request (what
//! retries and hedges send), and hedging — a second copy to another endpoint when the first has
//! not answered within `hedge.after`; the first response head wins and the loser's connection
//! is closed, never pooled mid-response.

use super::buffered::write_all;
use super::error::ProxyError;
use super::exchange::read_response_head;
use super::leg::{acquire, Leg, Pick, Tried};
use crate::config::Hedge;
use crate::http::h1::{RequestHead, ResponseHead};
use crate::runtime::worker::WorkerCtx;
use monoio::time::Instant;
use std::io::Write;
use std::time::Duration;

/// Why an attempt failed, with what the retry decision needs.
pub(super) struct AttemptError {
    pub error: ProxyError,
    /// The attempt went out on a pooled connection (a failure may just be a stale one).
    pub reused: bool,
    /// The endpoint it reached, if it got past connecting.
    pub endpoint: Option<usize>,
}

impl AttemptError {
    pub fn before_connect(error: ProxyError) -> AttemptError {
        AttemptError {
            error,
            reused: false,
            endpoint: None,
        }
    }
}

pub(super) type Attempt = Result<(Leg, usize), AttemptError>;

/// Adds the retry marker (attempt `n`) to a rendered request head.
pub(super) fn mark_retry(head: &mut Vec<u8>, n: u32) {
    debug_assert!(head.ends_with(b"\r\n\r\n"));
    head.truncate(head.len() - 2);
    head.extend_from_slice(super::retry::RETRY_HEADER.as_bytes());
    head.extend_from_slice(b": ");
    let _ = write!(head, "{n}\r\n\r\n");
}

/// Sends a rendered bodiless request (`req`) and reads the response head; interim 1xx responses
/// are dropped (a hedged request has no single client to relay them to). Gives `req` back.
#[allow(clippy::too_many_arguments)] // the attempt's whole state
pub(super) async fn plain(
    ctx: &WorkerCtx,
    upstream: usize,
    pick: Pick,
    tried: &Tried,
    req: Vec<u8>,
    head: &RequestHead,
    resp: &mut ResponseHead,
    deadline: Instant,
) -> (Attempt, Vec<u8>) {
    let mut leg = match acquire(ctx, upstream, pick, tried, false, false, deadline).await {
        Ok(leg) => leg,
        Err(e) => return (Err(AttemptError::before_connect(e)), req),
    };
    let (res, mut req) = write_all(&mut leg.conn.stream, req).await;
    let result = match res {
        Ok(()) => read_response_head(ctx, None, &mut leg, resp, head, deadline, &mut req).await,
        Err(e) => Err(ProxyError::upstream_io(
            super::error::Step::WriteRequest,
            &e,
        )),
    };
    let attempt = match result {
        Ok(len) => Ok((leg, len)),
        Err(error) => {
            let failed = AttemptError {
                error,
                reused: leg.reused,
                endpoint: Some(leg.endpoint),
            };
            super::leg::recycle(ctx, leg.conn);
            Err(failed)
        }
    };
    (attempt, req)
}

/// How long to wait for the first response head before hedging; `None` = do not hedge yet (a
/// percentile needs recent latencies to mean anything).
pub(super) fn hedge_delay(ctx: &WorkerCtx, upstream: usize, hedge: &Hedge) -> Option<Duration> {
    match hedge {
        Hedge::After(d) => Some(*d),
        Hedge::AfterPercentile(p) => ctx.upstreams.borrow()[upstream].latency.quantile(p / 100.0),
    }
}

/// Which copy of a hedged request answered first.
pub(super) enum Won {
    First(Attempt),
    /// The hedge won; its response head is in the second `ResponseHead`.
    Second(Attempt),
}

/// Runs the first attempt, and after `delay` without a response head a second one to another
/// endpoint (if `may_hedge` grants it); the first response head wins. Returns the winner and
/// both request buffers.
#[allow(clippy::too_many_arguments)] // the two attempts' state
pub(super) async fn hedged(
    ctx: &WorkerCtx,
    upstream: usize,
    pick: Pick,
    tried: &Tried,
    reqs: (Vec<u8>, Vec<u8>),
    head: &RequestHead,
    resps: (&mut ResponseHead, &mut ResponseHead),
    deadline: Instant,
    delay: Duration,
    may_hedge: impl FnOnce() -> bool,
) -> (Won, Vec<Vec<u8>>) {
    let (req1, mut req2) = reqs;
    let (resp1, resp2) = resps;
    let first = plain(ctx, upstream, pick, tried, req1, head, resp1, deadline);
    let mut first = std::pin::pin!(first);
    monoio::select! {
        (attempt, req1) = &mut first => return (Won::First(attempt), vec![req1, req2]),
        _ = monoio::time::sleep(delay) => {}
    }
    if !may_hedge() {
        let (attempt, req1) = first.await;
        return (Won::First(attempt), vec![req1, req2]);
    }
    tracing::debug!(upstream = %ctx.config.upstreams[upstream].name, after = ?delay, "hedging: second copy sent");
    mark_retry(&mut req2, 1);
    let second = plain(ctx, upstream, pick, tried, req2, head, resp2, deadline);
    let mut second = std::pin::pin!(second);
    let mut bufs = Vec::with_capacity(2);
    let mut first_failed = None;
    let mut second_failed = None;
    loop {
        monoio::select! {
            (attempt, req) = &mut first, if first_failed.is_none() => {
                bufs.push(req);
                match attempt {
                    Ok(won) => return (Won::First(Ok(won)), bufs),
                    Err(e) => first_failed = Some(e),
                }
            },
            (attempt, req) = &mut second, if second_failed.is_none() => {
                bufs.push(req);
                match attempt {
                    Ok(won) => return (Won::Second(Ok(won)), bufs),
                    Err(e) => second_failed = Some(e),
                }
            },
        }
        if let (Some(_), Some(e)) = (&first_failed, second_failed.take()) {
            // Both failed: report the first's error, the original request's.
            let first = first_failed.take().unwrap_or(e);
            return (Won::First(Err(first)), bufs);
        }
    }
}
