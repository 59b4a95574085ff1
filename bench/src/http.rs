//! One HTTP/1.1 load connection: keep-alive, pipelining, closed or open loop, strict parsing.
//!
//! The connection keeps a ring of requests in flight, each with the time its latency counts from
//! (the send time in closed loop, the intended send time in open loop) and the time it was
//! written (for `--timeout`). Requests are written straight from the pre-encoded wire bytes and
//! responses are read into one buffer per connection, so the loop allocates nothing.
//!
//! When a connection fails, every request in flight on it counts one error of the failure's kind.
//! Requests left unanswered after a response that closes the connection (`Connection: close`,
//! close-delimited body) are not failures: they are sent again on the next connection and keep
//! their start time.

use crate::args::Mode;
use crate::engine::{ConnSpec, ThreadCtx};
use crate::stats::ErrorKind;
use coregate::http::h1::{ChunkedDecoder, Event, Framing, HeadLimits, Method, ResponseHead};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio::time::{sleep_until, timeout_at};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Read buffer per connection: above the 64 KiB head limit, so any valid head fits.
const READ_BUF: usize = 80 * 1024;
/// Closed loop: pause after a failed connect, doubling up to the maximum.
const BACKOFF_MIN: Duration = Duration::from_millis(1);
const BACKOFF_MAX: Duration = Duration::from_millis(100);

fn mono(t: Instant) -> monoio::time::Instant {
    monoio::time::Instant::from_std(t)
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Latency counts from here.
    start: Instant,
    /// Written at (for the timeout).
    sent: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Head,
    Length(u64),
    Chunked,
    Close,
}

/// Where the connection is in the current response.
struct Parser {
    body: Body,
    head: ResponseHead,
    chunked: ChunkedDecoder,
    limits: HeadLimits,
    method: Method,
    status: u16,
    keep_alive: bool,
}

enum Next {
    Reconnect,
    Stop,
}

/// What reading a buffer found.
enum Parsed {
    /// Consumed this many bytes; the rest is an incomplete head or chunk line.
    More(usize),
    /// A response ended the connection (Connection: close, close-delimited, 101).
    Close,
    Error,
}

struct Conn {
    ctx: Rc<ThreadCtx>,
    spec: ConnSpec,
    /// Open loop: requests per second in total.
    rate: Option<f64>,
    pipeline: usize,
    /// Measured requests completed or failed (for `-n`).
    attempts: u64,
    /// Open loop: the next request's place in this connection's schedule.
    slot: u64,
    /// Open loop: when the connection last woke from waiting on the timer with room to send.
    /// Until then, a due request waited for the generator's timer (monoio's timers tick in
    /// milliseconds), not for the server, so its latency counts from no earlier than this.
    last_wake: Instant,
    ring: VecDeque<Entry>,
    /// Requests at the back of the ring not written yet.
    unsent: usize,
    rbuf: Option<Vec<u8>>,
    parser: Parser,
    backoff: Duration,
}

/// Runs one connection until the run ends.
pub async fn connection(ctx: Rc<ThreadCtx>, spec: ConnSpec) {
    let (method, rate) = match &ctx.plan.mode {
        Mode::Http { request, rate } => (request.method, *rate),
        Mode::Tcp { .. } => return,
    };
    let pipeline = ctx.plan.pipeline;
    let conn = Conn {
        spec,
        rate,
        pipeline,
        attempts: 0,
        slot: 0,
        last_wake: ctx.clock.t0,
        ring: VecDeque::with_capacity(pipeline),
        unsent: 0,
        rbuf: Some(Vec::with_capacity(READ_BUF)),
        parser: Parser {
            body: Body::Head,
            head: ResponseHead::new(),
            chunked: ChunkedDecoder::new(),
            limits: HeadLimits::default(),
            method,
            status: 0,
            keep_alive: true,
        },
        backoff: BACKOFF_MIN,
        ctx,
    };
    conn.run().await;
}

impl Conn {
    async fn run(mut self) {
        loop {
            if self.ring.is_empty() && !self.wait_for_work().await {
                return;
            }
            let Some(stream) = self.connect().await else {
                if self.ctx.clock.over(Instant::now()) {
                    return;
                }
                continue;
            };
            if let Next::Stop = self.session(stream).await {
                return;
            }
        }
    }

    /// Requests this connection may still start under `-n`.
    fn quota_left(&self) -> u64 {
        match self.spec.quota {
            Some(q) => q.saturating_sub(self.attempts + self.ring.len() as u64),
            None => u64::MAX,
        }
    }

    fn quota_done(&self) -> bool {
        self.spec.quota.is_some_and(|q| self.attempts >= q)
    }

    /// Open loop: when request `k` of this connection is due.
    fn slot_time(&self, k: u64, rate: f64) -> Instant {
        let conns = self.ctx.plan.connections as f64;
        let at = (k as f64 * conns + self.spec.index as f64) / rate;
        self.ctx.clock.t0 + Duration::from_secs_f64(at)
    }

    /// Whether open-loop request time `t` is past the end of the run.
    fn after_end(&self, t: Instant) -> bool {
        self.ctx.clock.end.is_some_and(|e| t >= e)
    }

    /// Puts the requests that may start now into the ring. `idle`: the connection just woke
    /// from waiting on the timer with room to send (see `last_wake`).
    fn admit(&mut self, now: Instant, idle: bool) {
        let room = (self.pipeline - self.ring.len())
            .min(self.quota_left().try_into().unwrap_or(usize::MAX));
        match self.rate {
            None => {
                if self.ctx.clock.over(now) {
                    return;
                }
                for _ in 0..room {
                    self.ring.push_back(Entry {
                        start: now,
                        sent: now,
                    });
                }
                self.unsent += room;
            }
            Some(rate) => {
                if idle {
                    self.last_wake = now;
                }
                for _ in 0..room {
                    let t = self.slot_time(self.slot, rate);
                    if t > now || self.after_end(t) {
                        break;
                    }
                    self.ring.push_back(Entry {
                        start: t.max(self.last_wake),
                        sent: now,
                    });
                    self.slot += 1;
                    self.unsent += 1;
                }
            }
        }
    }

    /// With nothing in flight: waits for the next request (open loop) and admits it.
    /// `false` when this connection is done.
    async fn wait_for_work(&mut self) -> bool {
        if self.quota_done() {
            return false;
        }
        let now = Instant::now();
        match self.rate {
            None => {
                self.admit(now, false);
                !self.ring.is_empty()
            }
            Some(rate) => {
                let t = self.slot_time(self.slot, rate);
                if self.after_end(t) {
                    return false;
                }
                if t <= now {
                    self.admit(now, false);
                    return !self.ring.is_empty();
                }
                sleep_until(mono(t)).await;
                self.admit(Instant::now(), true);
                !self.ring.is_empty()
            }
        }
    }

    /// Every request in flight failed with `kind`.
    fn fail_all(&mut self, kind: ErrorKind) {
        let n = self.ring.len() as u64;
        self.ring.clear();
        self.unsent = 0;
        if self.ctx.error(Instant::now(), kind, n) {
            self.attempts += n;
        }
    }

    async fn connect(&mut self) -> Option<TcpStream> {
        let ctx = self.ctx.clone();
        let now = Instant::now();
        let deadline = ctx.clock.cap(now + ctx.plan.timeout);
        let failed = match timeout_at(mono(deadline), TcpStream::connect_addr(ctx.plan.addr)).await
        {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                ctx.connected.set(true);
                self.backoff = BACKOFF_MIN;
                return Some(s);
            }
            Ok(Err(e)) => {
                ctx.connect_failed(&e);
                true
            }
            Err(_) => !ctx.clock.over(Instant::now()),
        };
        if failed {
            self.fail_all(ErrorKind::Connect);
            if self.rate.is_none() {
                let until = ctx.clock.cap(Instant::now() + self.backoff);
                sleep_until(mono(until)).await;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            }
        }
        None
    }

    /// Sends and reads on one connection until it must be reopened or the run ends.
    async fn session(&mut self, mut stream: TcpStream) -> Next {
        let ctx = self.ctx.clone();
        let wire: &'static [u8] = ctx.wire;
        let timeout = ctx.plan.timeout;
        self.parser.reset();
        // Whatever is in the ring was never written on this connection.
        self.unsent = self.ring.len();
        let mut buf = self
            .rbuf
            .take()
            .unwrap_or_else(|| Vec::with_capacity(READ_BUF));
        buf.clear();
        let next = loop {
            if self.ring.is_empty() && !self.wait_for_work().await {
                break Next::Stop;
            }
            if self.unsent > 0 {
                let now = Instant::now();
                let n = self.unsent;
                let first = self.ring.len() - n;
                for e in self.ring.range_mut(first..) {
                    e.sent = now;
                }
                let out = wire.get(..n * ctx.request_len).unwrap_or(wire);
                let deadline = ctx.clock.cap(now + timeout);
                let res = timeout_at(mono(deadline), stream.write_all(out)).await;
                self.unsent = 0;
                match res {
                    Ok((Ok(_), _)) => {}
                    Ok((Err(_), _)) => {
                        self.fail_all(ErrorKind::Reset);
                        break Next::Reconnect;
                    }
                    Err(_) if ctx.clock.over(Instant::now()) => break Next::Stop,
                    Err(_) => {
                        self.fail_all(ErrorKind::Timeout);
                        break Next::Reconnect;
                    }
                }
            }
            let Some(oldest) = self.ring.front().map(|e| e.sent) else {
                continue;
            };
            let deadline = ctx.clock.cap(oldest + timeout);
            // Open loop with room in the pipeline: wake for the next request if it is due first.
            if let Some(rate) = self.rate {
                if self.ring.len() < self.pipeline && self.quota_left() > 0 {
                    let next = self.slot_time(self.slot, rate);
                    if next < deadline && !self.after_end(next) {
                        match timeout_at(mono(next), stream.readable(false)).await {
                            Err(_) => {
                                self.admit(Instant::now(), true);
                                continue;
                            }
                            Ok(Err(_)) => {
                                self.fail_all(ErrorKind::Reset);
                                break Next::Reconnect;
                            }
                            Ok(Ok(())) => {}
                        }
                    }
                }
            }
            let len = buf.len();
            let read = timeout_at(mono(deadline), stream.read(buf.slice_mut(len..))).await;
            let now = Instant::now();
            let (res, slice) = match read {
                Ok(r) => r,
                Err(_) => {
                    // The buffer went with the cancelled read.
                    buf = Vec::with_capacity(READ_BUF);
                    if ctx.clock.over(now) {
                        break Next::Stop;
                    }
                    self.fail_all(ErrorKind::Timeout);
                    break Next::Reconnect;
                }
            };
            buf = slice.into_inner();
            match res {
                Ok(0) => {
                    if self.parser.body == Body::Close && !self.ring.is_empty() {
                        self.finish(now);
                        // Anything still in flight is sent again on the next connection.
                        break Next::Reconnect;
                    }
                    self.fail_all(ErrorKind::Reset);
                    break Next::Reconnect;
                }
                Ok(n) => ctx.bytes(now, n),
                Err(_) => {
                    self.fail_all(ErrorKind::Reset);
                    break Next::Reconnect;
                }
            }
            match self.parse(&buf, now) {
                Parsed::More(used) => {
                    if used == buf.len() {
                        buf.clear();
                    } else if used > 0 {
                        buf.copy_within(used.., 0);
                        buf.truncate(buf.len() - used);
                    } else if buf.len() == buf.capacity() {
                        self.fail_all(ErrorKind::Parse);
                        break Next::Reconnect;
                    }
                }
                Parsed::Close => break Next::Reconnect,
                Parsed::Error => {
                    self.fail_all(ErrorKind::Parse);
                    break Next::Reconnect;
                }
            }
            if self.quota_done() && self.ring.is_empty() {
                break Next::Stop;
            }
            if ctx.clock.over(now) {
                break Next::Stop;
            }
            self.admit(now, false);
        };
        buf.clear();
        self.rbuf = Some(buf);
        next
    }

    /// The response at the front of the ring is complete.
    #[inline]
    fn finish(&mut self, now: Instant) {
        if let Some(e) = self.ring.pop_front() {
            if self.ctx.complete(now, e.start, self.parser.status) {
                self.attempts += 1;
            }
        }
        self.parser.body = Body::Head;
    }

    /// Reads as many responses from `buf` as it holds.
    fn parse(&mut self, buf: &[u8], now: Instant) -> Parsed {
        let mut pos = 0;
        loop {
            let rest = buf.get(pos..).unwrap_or_default();
            match self.parser.body {
                Body::Head => {
                    if rest.is_empty() {
                        return Parsed::More(pos);
                    }
                    if self.ring.is_empty() {
                        return Parsed::Error; // bytes nobody asked for
                    }
                    let p = &mut self.parser;
                    let n = match p.head.parse(rest, &p.limits, p.method) {
                        Ok(Some(n)) => n,
                        Ok(None) => return Parsed::More(pos),
                        Err(_) => return Parsed::Error,
                    };
                    pos += n;
                    if p.head.is_informational() && !p.head.is_switching_protocols() {
                        continue; // 100 Continue and the like: the final response follows
                    }
                    p.status = p.head.status();
                    p.keep_alive = p.head.keep_alive();
                    match p.head.framing() {
                        Framing::None | Framing::Length(0) => {}
                        Framing::Length(n) => {
                            p.body = Body::Length(n);
                            continue;
                        }
                        Framing::Chunked => {
                            p.chunked.reset();
                            p.body = Body::Chunked;
                            continue;
                        }
                        Framing::CloseDelimited => {
                            p.body = Body::Close;
                            continue;
                        }
                    }
                }
                Body::Length(left) => {
                    let take = left.min(rest.len() as u64);
                    pos += take as usize;
                    if take < left {
                        self.parser.body = Body::Length(left - take);
                        return Parsed::More(pos);
                    }
                }
                Body::Chunked => match self.parser.chunked.decode(rest) {
                    Ok((n, ev)) => {
                        pos += n;
                        match ev {
                            Event::Done => {}
                            Event::NeedMore => return Parsed::More(pos),
                            Event::Data(_) | Event::Trailer(_) => continue,
                        }
                    }
                    Err(_) => return Parsed::Error,
                },
                Body::Close => return Parsed::More(buf.len()),
            }
            // A response is complete.
            self.finish(now);
            if !self.parser.keep_alive {
                return Parsed::Close;
            }
        }
    }
}

impl Parser {
    fn reset(&mut self) {
        self.body = Body::Head;
        self.chunked.reset();
        self.status = 0;
        self.keep_alive = true;
    }
}
