//! One request through the proxy: pick an endpoint, send the re-framed request, relay the
//! response. Returns whether the client connection may carry another request.

use super::attempt::{self, hedge_delay, mark_retry, Attempt, AttemptError, Won};
use super::body::{Copy, From};
use super::buffered::{write_all, Buffered};
use super::error::{Kind, ProxyError, Step};
use super::headers::{
    target_parts, write_request_head, write_response_head, OutFraming, RequestLine, StatusLine,
};
use super::leg::{acquire, recycle, Leg, Pick, Tried};
use super::retry::RETRY_HEADER;
use crate::config::Route;
use crate::http::h1::{
    Framing, HeadLimits, RequestHead, ResponseHead, Upgrade, Version, MAX_HEADERS_CEILING,
};
use crate::log::access::Entry;
use crate::route::strip_prefix;
use crate::runtime::buffers::BUFFER_SIZE;
use crate::runtime::worker::WorkerCtx;
use crate::upstream::balance::{ip_key, key_hash};
use crate::upstream::breaker::{Admit, State};
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
    /// Not proxied: answer by policy (breaker open, fallback, later auth and rate limits).
    Answer(Answer),
}

/// A response coregate gives itself instead of proxying; the request is still in the buffer.
#[derive(Debug, Default)]
pub struct Answer {
    pub status: u16,
    /// The route whose `fallback` body to send (else the status text).
    pub fallback: Option<usize>,
    /// Seconds for `Retry-After` (429).
    pub retry_after: Option<u64>,
    /// A `WWW-Authenticate` challenge (401).
    pub www_authenticate: Option<String>,
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

/// Proxies the request whose head starts `client`'s buffer: circuit breaker, attempts (with
/// retries and a hedge where the route allows), then the response relay. `entry` carries the
/// request id upstream and collects what the access log says (upstream, status, bytes).
pub async fn exchange(
    ctx: &WorkerCtx,
    client: &mut Buffered,
    head: &RequestHead,
    resp: &mut ResponseHead,
    route_index: usize,
    peer: SocketAddr,
    entry: &mut Entry,
) -> Result<Outcome, Failure> {
    let config = &ctx.config;
    let route = &config.routes[route_index];
    let deadline = Instant::now() + route.timeout;
    let framing_in = head.framing();
    if let Some(answer) = check_access(ctx, client.buffered(), head, route_index, peer) {
        return Ok(Outcome::Answer(answer));
    }
    if let Some(answer) = check_rate(ctx, client.buffered(), head, route_index, peer) {
        return Ok(Outcome::Answer(answer));
    }
    if let (Some(max), Framing::Length(n)) = (route.max_body, framing_in) {
        if n > max {
            return Err(ProxyError::client(Step::ReadRequestBody, Kind::BodyTooLarge).into());
        }
    }
    let upstream = route.upstream;
    let head_len = head.head_len();
    let replayable = !framing_in.has_body() && head.method().is_idempotent();

    // An open circuit answers at once, without touching the upstream.
    let admit = {
        let mut ups = ctx.upstreams.borrow_mut();
        let st = &mut ups[upstream];
        st.breaker.as_mut().map_or(Admit::Yes, |b| {
            let was = b.state();
            let admit = b.admit(std::time::Instant::now());
            // Open → half-open happens here, in admit (record only reports open and closed).
            if was == State::Open && b.state() == State::HalfOpen {
                let name = &config.upstreams[upstream].name;
                tracing::info!(upstream = %name, worker = ctx.index, "circuit breaker half-open");
            }
            admit
        })
    };
    if admit == Admit::No {
        tracing::debug!(upstream = %config.upstreams[upstream].name, "circuit open: not sent");
        return unavailable(route_index, route);
    }
    let probe = admit == Admit::Probe;
    // A request another proxy already retried is not retried again (no retry storms).
    let marked = head
        .fields()
        .iter()
        .any(|f| f.is(client.buffered(), RETRY_HEADER));
    let retry = route.retry.as_ref().filter(|_| replayable && !marked);
    let hedge = route.hedge.as_ref().filter(|_| replayable && !marked);
    if retry.is_some() || hedge.is_some() {
        ctx.route_state.borrow_mut()[route_index]
            .budget
            .first(std::time::Instant::now());
    }
    let pick = Pick {
        client: peer.ip(),
        key: balance_key(ctx, upstream, client.buffered(), head, peer),
    };
    let tried = Tried::default();
    let id = entry.id;
    let endpoint_addr = |ep: usize| config.upstreams[upstream].endpoints[ep].addr;
    let mut out = ctx.bufs.take();
    let mut fresh_only = false;
    let mut retries = 0u32;
    let mut budget_spent = false;
    let (leg, resp_len) = loop {
        let started = Instant::now();
        let attempt = match hedge {
            Some(h) if retries == 0 && !fresh_only => {
                let (attempt, o) = hedged_attempt(
                    ctx,
                    client,
                    head,
                    route_index,
                    pick,
                    &tried,
                    resp,
                    deadline,
                    h,
                    out,
                    id.as_bytes(),
                )
                .await;
                out = o;
                attempt
            }
            _ => {
                let (attempt, o) = single_attempt(
                    ctx,
                    client,
                    head,
                    route,
                    pick,
                    &tried,
                    fresh_only,
                    replayable,
                    deadline,
                    resp,
                    retries,
                    out,
                    id.as_bytes(),
                )
                .await;
                out = o;
                attempt
            }
        };
        let now = std::time::Instant::now();
        match attempt {
            Ok((leg, len)) => {
                let status = resp.status();
                let ok = status < 500;
                entry.upstream = Some(endpoint_addr(leg.endpoint));
                entry.upstream_time = Some(started.elapsed());
                record(
                    ctx,
                    upstream,
                    leg.endpoint,
                    ok,
                    probe,
                    Some(started.elapsed()),
                    now,
                );
                let gateway_error = (502..=504).contains(&status);
                if gateway_error
                    && may_retry(
                        ctx,
                        route_index,
                        retry,
                        retries,
                        deadline,
                        &mut budget_spent,
                    )
                {
                    tracing::debug!(
                        status,
                        retries,
                        "upstream answered a gateway error; retrying elsewhere"
                    );
                    recycle(ctx, leg.conn);
                    retries += 1;
                    continue;
                }
                break (leg, len);
            }
            // A pooled connection the upstream closed just as we reused it: replay once on a
            // fresh one, only if the request is idempotent and had no body to lose. Not the
            // endpoint's fault, so not counted against it.
            Err(e)
                if e.reused
                    && replayable
                    && e.error.side == super::error::Side::Upstream
                    && !fresh_only =>
            {
                tracing::debug!(error = %e.error, "reused upstream connection failed; retrying on a new one");
                fresh_only = true;
            }
            Err(e) => {
                if let Some(ep) = e.endpoint.or_else(|| tried.last()) {
                    entry.upstream = Some(endpoint_addr(ep));
                    entry.upstream_time = Some(started.elapsed());
                }
                let upstream_side = e.error.side == super::error::Side::Upstream;
                if let Some(ep) = e.endpoint.filter(|_| upstream_side) {
                    record(ctx, upstream, ep, false, probe, None, now);
                } else if upstream_side && (probe || e.error.kind != Kind::Unavailable) {
                    // No endpoint accepted a connection: a failure of the upstream for the
                    // breaker (passive health already counted each refused connect).
                    record_breaker(ctx, upstream, false, probe, now);
                }
                let retryable = upstream_side && e.error.kind != Kind::Unavailable;
                if retryable
                    && may_retry(
                        ctx,
                        route_index,
                        retry,
                        retries,
                        deadline,
                        &mut budget_spent,
                    )
                {
                    tracing::debug!(error = %e.error, retries, "attempt failed; retrying elsewhere");
                    retries += 1;
                    continue;
                }
                ctx.bufs.give(out);
                let unreachable = upstream_side
                    && (e.error.kind == Kind::Unavailable || e.error.step == Step::Connect);
                if route.fallback.is_some() && (unreachable || budget_spent) {
                    return unavailable(route_index, route);
                }
                return Err(e.error.into());
            }
        }
    };
    if !framing_in.has_body() {
        client.consume(head_len);
    }
    {
        let mut ups = ctx.upstreams.borrow_mut();
        let st = &mut ups[upstream];
        st.requests += 1;
        st.reused += u64::from(leg.reused);
    }
    ctx.record().upstream_request(upstream, leg.reused);

    super::respond::relay(ctx, client, head, resp, resp_len, leg, route, out, entry).await
}

/// One attempt as the request arrived: head, then the body streamed from the client, then the
/// response head (1xx relayed). Retries of bodiless requests go through here too, marked.
#[allow(clippy::too_many_arguments)] // the exchange's state, passed whole
async fn single_attempt(
    ctx: &WorkerCtx,
    client: &mut Buffered,
    head: &RequestHead,
    route: &Route,
    pick: Pick,
    tried: &Tried,
    fresh_only: bool,
    replayable: bool,
    deadline: Instant,
    resp: &mut ResponseHead,
    retries: u32,
    mut out: Vec<u8>,
    request_id: &[u8],
) -> (Attempt, Vec<u8>) {
    let head_len = head.head_len();
    let framing_in = head.framing();
    let mut leg = match acquire(
        ctx,
        route.upstream,
        pick,
        tried,
        fresh_only,
        !replayable,
        deadline,
    )
    .await
    {
        Ok(leg) => leg,
        Err(e) => return (Err(AttemptError::before_connect(e)), out),
    };
    // Written anew for each attempt: `out` also carries interim responses in between.
    write_upstream_head(&mut out, ctx, client, head, route, pick.client, request_id);
    if retries > 0 {
        mark_retry(&mut out, retries);
    }
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
            let copy = Copy {
                from: From::Client,
                read_timeout: CLIENT_BODY_TIMEOUT,
                max_buffer: BUFFER_SIZE,
                limit: route.max_body,
                max_chunk_ext: ctx.config.limits.max_chunk_ext,
                sent: Default::default(),
            };
            send_body(client, head, head_len, early, &mut leg, copy, &mut out).await
        }
        Err(e) => Err(ProxyError::upstream_io(Step::WriteRequest, &e)),
    };
    let result = match sent {
        Ok(()) => {
            read_response_head(ctx, Some(client), &mut leg, resp, head, deadline, &mut out).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(len) => (Ok((leg, len)), out),
        Err(error) => {
            let failed = AttemptError {
                error,
                reused: leg.reused,
                endpoint: Some(leg.endpoint),
            };
            recycle(ctx, leg.conn);
            (Err(failed), out)
        }
    }
}

/// The first attempt of a hedged route: the rendered head goes out once, and a second copy to
/// another endpoint after the hedge delay (budget permitting); the first response head wins.
#[allow(clippy::too_many_arguments)] // the exchange's state, passed whole
async fn hedged_attempt(
    ctx: &WorkerCtx,
    client: &Buffered,
    head: &RequestHead,
    route_index: usize,
    pick: Pick,
    tried: &Tried,
    resp: &mut ResponseHead,
    deadline: Instant,
    hedge: &crate::config::Hedge,
    mut out: Vec<u8>,
    request_id: &[u8],
) -> (Attempt, Vec<u8>) {
    let route = &ctx.config.routes[route_index];
    write_upstream_head(&mut out, ctx, client, head, route, pick.client, request_id);
    let Some(delay) = hedge_delay(ctx, route.upstream, hedge) else {
        return attempt::plain(ctx, route.upstream, pick, tried, out, head, resp, deadline).await;
    };
    let mut copy = ctx.bufs.take();
    copy.extend_from_slice(&out);
    let mut second = ResponseHead::new();
    let may_hedge = || {
        let granted = ctx.route_state.borrow_mut()[route_index]
            .budget
            .try_retry(std::time::Instant::now());
        if granted {
            ctx.record().hedge(route_index);
        }
        granted
    };
    let (won, mut bufs) = attempt::hedged(
        ctx,
        route.upstream,
        pick,
        tried,
        (out, copy),
        head,
        (resp, &mut second),
        deadline,
        delay,
        may_hedge,
    )
    .await;
    let attempt = match won {
        Won::First(a) => a,
        Won::Second(a) => {
            std::mem::swap(resp, &mut second);
            a
        }
    };
    let out = bufs.pop().unwrap_or_default();
    for b in bufs {
        ctx.bufs.give(b);
    }
    (attempt, out)
}

/// Whether another attempt may go out: the route allows retries, attempts remain, the time
/// left beats the upstream's typical latency, and the retry budget has room.
fn may_retry(
    ctx: &WorkerCtx,
    route_index: usize,
    retry: Option<&crate::config::Retry>,
    retries: u32,
    deadline: Instant,
    budget_spent: &mut bool,
) -> bool {
    let Some(retry) = retry else { return false };
    if retries >= retry.attempts {
        return false;
    }
    let route = &ctx.config.routes[route_index];
    let left = deadline.saturating_duration_since(Instant::now());
    let typical = ctx.upstreams.borrow()[route.upstream].latency.quantile(0.5);
    if typical.is_some_and(|t| left < t) {
        return false;
    }
    let granted = ctx.route_state.borrow_mut()[route_index]
        .budget
        .try_retry(std::time::Instant::now());
    if granted {
        ctx.record().retry(route_index);
    } else {
        *budget_spent = true;
        tracing::debug!(route = route_index, "retry budget spent: failing fast");
    }
    granted
}

/// Feeds an attempt's outcome to passive health, the balancer, the breaker and the latency
/// tracker.
fn record(
    ctx: &WorkerCtx,
    upstream: usize,
    endpoint: usize,
    ok: bool,
    probe: bool,
    took: Option<std::time::Duration>,
    now: std::time::Instant,
) {
    let cfg = &ctx.config.upstreams[upstream];
    {
        let mut ups = ctx.upstreams.borrow_mut();
        let st = &mut ups[upstream];
        st.outcome(cfg, upstream, endpoint, ok, &ctx.shared.health, now);
        if let Some(t) = took {
            st.latency.record(t, now);
            ctx.record().upstream_response(upstream, t);
        }
    }
    record_breaker(ctx, upstream, ok, probe, now);
}

fn record_breaker(
    ctx: &WorkerCtx,
    upstream: usize,
    ok: bool,
    probe: bool,
    now: std::time::Instant,
) {
    let mut ups = ctx.upstreams.borrow_mut();
    if let Some(b) = ups[upstream].breaker.as_mut() {
        if let Some(state) = b.record(now, ok, probe) {
            let name = &ctx.config.upstreams[upstream].name;
            match state {
                State::Open => {
                    tracing::warn!(upstream = %name, worker = ctx.index, "circuit breaker open")
                }
                State::HalfOpen => {
                    tracing::info!(upstream = %name, worker = ctx.index, "circuit breaker half-open")
                }
                State::Closed => {
                    tracing::info!(upstream = %name, worker = ctx.index, "circuit breaker closed")
                }
            }
        }
    }
}

/// The consistent-hash key of this request (0 for other policies, which ignore it).
fn balance_key(
    ctx: &WorkerCtx,
    upstream: usize,
    buf: &[u8],
    head: &RequestHead,
    peer: SocketAddr,
) -> u64 {
    let u = &ctx.config.upstreams[upstream];
    if u.balance != crate::config::Balance::ConsistentHash {
        return 0;
    }
    let host = head.host().map_or(&b""[..], |r| &buf[r]);
    let (_, path) = target_parts(head.target_form(), &buf[head.target()], host);
    let mut scratch = [0u8; 16];
    match super::keys::request_key(&u.hash_key, buf, head, path, peer.ip(), &mut scratch) {
        Some(k) => key_hash(k),
        None => ip_key(peer.ip()),
    }
}

/// Auth: `Some` is the refusal to send (401 with a challenge, or 403).
fn check_access(
    ctx: &WorkerCtx,
    buf: &[u8],
    head: &RequestHead,
    route_index: usize,
    peer: SocketAddr,
) -> Option<Answer> {
    let chain = &ctx.shared.auth[route_index];
    if chain.is_empty() {
        return None;
    }
    let header = |name: &str| {
        head.fields()
            .iter()
            .find(|f| f.is(buf, name))
            .map(|f| f.value(buf))
    };
    let mut cache = ctx.auth_cache.borrow_mut();
    let denied = chain.check(peer.ip(), &header, &mut cache).err()?;
    tracing::debug!(%peer, route = route_index, status = denied.status, reason = denied.reason, "auth refused");
    ctx.record().auth_denied(route_index, denied.status);
    Some(Answer {
        status: denied.status,
        // Only refusals allocate this copy of the challenge.
        www_authenticate: denied.www_authenticate.map(str::to_string),
        ..Answer::default()
    })
}

/// Rate limit: `Some` is the 429 to send, with `Retry-After`.
fn check_rate(
    ctx: &WorkerCtx,
    buf: &[u8],
    head: &RequestHead,
    route_index: usize,
    peer: SocketAddr,
) -> Option<Answer> {
    let route = &ctx.config.routes[route_index];
    let cfg = route.rate_limit.as_ref()?;
    let mut scratch = [0u8; 16];
    let host = head.host().map_or(&b""[..], |r| &buf[r]);
    let (_, path) = target_parts(head.target_form(), &buf[head.target()], host);
    let key = super::keys::request_key(&cfg.key, buf, head, path, peer.ip(), &mut scratch);
    let mut states = ctx.route_state.borrow_mut();
    let limiter = states[route_index].limiter.as_mut()?;
    let retry_after = limiter.check(key, std::time::Instant::now()).err()?;
    tracing::debug!(%peer, route = route_index, retry_after, "rate limited");
    ctx.record().rate_limited(route_index);
    Some(Answer {
        status: 429,
        retry_after: Some(retry_after),
        ..Answer::default()
    })
}

/// The answer when the upstream cannot be used (circuit open, nothing usable, budget spent):
/// the route's fallback, else 503.
fn unavailable(route_index: usize, route: &Route) -> Result<Outcome, Failure> {
    Ok(Outcome::Answer(Answer {
        status: route.fallback.as_ref().map_or(503, |f| f.status),
        fallback: route.fallback.is_some().then_some(route_index),
        ..Answer::default()
    }))
}

/// Writes the upstream request head for `head` into `out`.
fn write_upstream_head(
    out: &mut Vec<u8>,
    ctx: &WorkerCtx,
    conn: &Buffered,
    head: &RequestHead,
    route: &crate::config::Route,
    client: std::net::IpAddr,
    request_id: &[u8],
) {
    let buf = conn.buffered();
    // mTLS listeners: the subject header is always ours, never the client's.
    let subject_header = ctx.config.listeners[route.listener]
        .tls
        .as_ref()
        .and_then(|t| t.client_auth.as_ref())
        .map(|a| (a.subject_header.as_str(), conn.stream.client_subject()));
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
        client,
        proto: if conn.stream.is_tls() {
            "https"
        } else {
            "http"
        },
        subject_header,
        upgrade,
        te_trailers: head.te_trailers(),
        framing,
        request_id,
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

/// Reads the final response head, relaying 1xx interim responses to HTTP/1.1 clients (dropping
/// them when there is no single client to relay to: hedged attempts).
pub(super) async fn read_response_head(
    ctx: &WorkerCtx,
    mut client: Option<&mut Buffered>,
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
                if let Some(client) = client
                    .as_deref_mut()
                    .filter(|_| client_version == Version::Http11)
                {
                    out.clear();
                    let reason = &leg.conn.buffered()[resp.reason()];
                    let line = StatusLine {
                        status: resp.status(),
                        reason,
                        framing: OutFraming::None,
                        keep_length: false,
                        upgrade: false,
                        close: false,
                        request_id: b"",
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
