//! The access log on the worker side: each request's facts in a small `Entry` on the stack,
//! formatted once at its end into the worker's own buffer; full buffers (or whatever is there
//! every `FLUSH_INTERVAL`) go to the writer thread (`writer.rs`) through a bounded channel.
//!
//! The worker never waits on the writer: it owns at most `BUFFERS_PER_WORKER` buffers of
//! `BATCH_CAPACITY` bytes, and when none is free (all queued behind a slow disk) or the channel
//! is full, the batch at hand is dropped and its lines counted (`AccessStats`, one counter per
//! worker), with a warning at most once a second. The writer hands emptied buffers back, so
//! the steady state allocates nothing.
//!
//! The request id lives here too: every request gets one, logged or not (`request_id.rs`).

use super::format::{self, Clock, HttpLine, Request, TcpLine};
use super::request_id::{Generator, RequestId};
use super::writer::{self, Batch, Output, Writer};
use crate::config::{AccessFormat, AccessLog, LogConfig};
use crate::http::h1::{RequestHead, Version};
use crate::runtime::buffers::BufferPool;
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::warn;

/// Size of a worker's log buffer; a batch is handed over once it holds `FLUSH_AT` bytes.
pub const BATCH_CAPACITY: usize = 64 * 1024;
/// Leaves room for a long line so a buffer rarely grows.
pub const FLUSH_AT: usize = 48 * 1024;
/// Buffers one worker may own (being filled, queued, being written): 512 KiB at most.
pub const BUFFERS_PER_WORKER: usize = 8;
/// A buffer with lines is handed over at least this often.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Dropped lines are reported at most this often (per worker, and by the writer).
pub const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// Counters of the access log, for logs now and metrics later. Each worker writes only its own
/// slot, and only when it drops lines.
pub struct AccessStats {
    /// Lines each worker dropped because the writer was behind.
    pub worker_dropped: Box<[AtomicU64]>,
    /// Lines the writer dropped because the file could not be opened or written.
    pub write_dropped: AtomicU64,
    /// Lines written.
    pub written: AtomicU64,
}

impl AccessStats {
    pub fn new(workers: usize) -> AccessStats {
        AccessStats {
            worker_dropped: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            write_dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
        }
    }

    /// Every line lost so far, by workers and writer.
    pub fn dropped(&self) -> u64 {
        self.worker_dropped
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.write_dropped.load(Ordering::Relaxed)
    }
}

/// Counts lost lines between warnings, so a flood of drops is one warning a second.
#[derive(Default)]
pub struct DropReport {
    pending: u64,
    last: Option<Instant>,
}

impl DropReport {
    /// Adds `n` lost lines; `Some(count)` when a warning is due, with the count since the last.
    pub fn add(&mut self, n: u64) -> Option<u64> {
        self.pending += n;
        self.pending()
    }

    /// `Some(count)` when lines were lost since the last warning and one is due.
    pub fn pending(&mut self) -> Option<u64> {
        if self.pending == 0 || self.last.is_some_and(|t| t.elapsed() < WARN_INTERVAL) {
            return None;
        }
        self.flush()
    }

    /// Whatever is pending, due or not.
    pub fn flush(&mut self) -> Option<u64> {
        if self.pending == 0 {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.pending))
    }
}

/// The process's access log: the writer (when the log is on) and one `WorkerLog` per worker.
pub struct AccessLogs {
    pub writer: Option<Writer>,
    pub workers: Vec<WorkerLog>,
}

/// Opens the access log (a start-up error names `log.access_log`) and starts the writer.
pub fn start(log: &LogConfig, workers: usize) -> Result<AccessLogs, String> {
    let prefix = super::request_id::process_prefix();
    let output = match &log.access_log {
        AccessLog::Off => {
            let workers = (0..workers)
                .map(|i| WorkerLog::new(i, prefix, None))
                .collect();
            return Ok(AccessLogs {
                writer: None,
                workers,
            });
        }
        AccessLog::Stdout => Output::Stdout,
        AccessLog::File(path) => {
            let file = writer::open(path).map_err(|e| {
                format!(
                    "log.access_log: cannot open {} for appending: {e}",
                    path.display()
                )
            })?;
            Output::File {
                path: path.clone(),
                file: Some(file),
                last_attempt: Instant::now(),
            }
        }
    };
    let stats = Arc::new(AccessStats::new(workers));
    let (to_writer, batches) = sync_channel(workers.max(1) * BUFFERS_PER_WORKER);
    let mut backs = Vec::with_capacity(workers);
    let mut logs = Vec::with_capacity(workers);
    for i in 0..workers {
        let (back, returned) = sync_channel(BUFFERS_PER_WORKER);
        backs.push(back);
        let sink = Sink::new(
            i,
            log.access_format,
            to_writer.clone(),
            returned,
            stats.clone(),
            BUFFERS_PER_WORKER,
        );
        logs.push(WorkerLog::new(i, prefix, Some(sink)));
    }
    drop(to_writer); // the writer ends when the last worker's sender is gone
    let writer = Writer::start(output, batches, backs, stats)?;
    Ok(AccessLogs {
        writer: Some(writer),
        workers: logs,
    })
}

/// One request's facts, filled in as it goes and formatted once at its end.
pub struct Entry {
    /// When its first byte was read; `None` when the access log is off (nothing to time).
    start: Option<Instant>,
    pub client: IpAddr,
    pub status: u16,
    /// Response body bytes sent to the client.
    pub bytes: u64,
    pub route: Option<usize>,
    /// The endpoint that answered (or failed last).
    pub upstream: Option<SocketAddr>,
    /// From the start of that attempt to its response head.
    pub upstream_time: Option<Duration>,
    pub id: RequestId,
    /// Raw method, target, protocol, referer and user agent, copied out of the head (which the
    /// body will overwrite) into a buffer borrowed from the worker's pool; logging on only.
    facts: Vec<u8>,
    spans: [(u32, u32); 5],
}

impl Entry {
    fn piece(&self, i: usize) -> &[u8] {
        let (a, b) = self.spans[i];
        self.facts.get(a as usize..b as usize).unwrap_or_default()
    }

    fn capture(&mut self, pieces: [&[u8]; 5], bufs: &BufferPool) {
        if self.facts.capacity() == 0 {
            self.facts = bufs.take();
        }
        self.facts.clear();
        for (span, piece) in self.spans.iter_mut().zip(pieces) {
            let at = self.facts.len();
            self.facts.extend_from_slice(piece);
            *span = (at as u32, self.facts.len() as u32);
        }
    }
}

/// One worker's side of the access log, and its request id source.
pub struct WorkerLog {
    worker: usize,
    ids: Generator,
    /// `None` when the log is off, or once closed (the worker stopped).
    sink: RefCell<Option<Sink>>,
    /// The process's counters; `None` when the log is off.
    stats: Option<Arc<AccessStats>>,
    /// Ends the periodic flush when the worker stops.
    stop: crate::runtime::notify::Latch,
}

impl WorkerLog {
    pub fn new(worker: usize, prefix: u64, sink: Option<Sink>) -> WorkerLog {
        WorkerLog {
            worker,
            ids: Generator::new(prefix, worker),
            stats: sink.as_ref().map(|s| s.stats.clone()),
            sink: RefCell::new(sink),
            stop: Default::default(),
        }
    }

    /// Whether lines are written at all.
    pub fn enabled(&self) -> bool {
        self.stats.is_some()
    }

    /// Runs `f` on the sink; a line that comes after `close` is counted as dropped.
    fn with_sink(&self, f: impl FnOnce(&mut Sink)) {
        match self.sink.borrow_mut().as_mut() {
            Some(sink) => f(sink),
            None => {
                if let Some(stats) = &self.stats {
                    stats.worker_dropped[self.worker].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// A new request's entry (its clock starts now when logging).
    pub fn entry(&self, client: IpAddr) -> Entry {
        Entry {
            start: self.enabled().then(Instant::now),
            client,
            status: 0,
            bytes: 0,
            route: None,
            upstream: None,
            upstream_time: None,
            id: RequestId::default(),
            facts: Vec::new(),
            spans: [(0, 0); 5],
        }
    }

    /// A parsed head: decides the request id (the client's one `X-Request-Id` when acceptable,
    /// else a new one) and, when logging, copies what the line will show.
    pub fn begin(&self, e: &mut Entry, buf: &[u8], head: &RequestHead, bufs: &BufferPool) {
        let logging = self.enabled();
        let (mut client_id, mut ids) = (&b""[..], 0);
        let (mut referer, mut user_agent) = (&b""[..], &b""[..]);
        for f in head.fields() {
            let name = f.name(buf);
            match name.len() {
                12 if name.eq_ignore_ascii_case(b"x-request-id") => {
                    client_id = f.value(buf);
                    ids += 1;
                }
                10 if logging && name.eq_ignore_ascii_case(b"user-agent") => {
                    user_agent = f.value(buf);
                }
                7 if logging && name.eq_ignore_ascii_case(b"referer") => referer = f.value(buf),
                _ => {}
            }
        }
        e.id = match (ids == 1).then(|| RequestId::from_client(client_id)) {
            Some(Some(id)) => id,
            _ => self.ids.next(),
        };
        if logging {
            let protocol: &[u8] = match head.version() {
                Version::Http10 => b"HTTP/1.0",
                Version::Http11 => b"HTTP/1.1",
            };
            e.capture(
                [
                    &buf[head.method_range()],
                    &buf[head.target()],
                    protocol,
                    referer,
                    user_agent,
                ],
                bufs,
            );
        }
    }

    /// A head that did not parse (or arrive in time): a new id, and (when logging) its first
    /// line as sent, or as `partial` saw it.
    pub fn begin_raw(&self, e: &mut Entry, buf: &[u8], bufs: &BufferPool) {
        e.id = self.ids.next();
        if self.enabled() && (e.facts.is_empty() || buf.contains(&b'\n')) {
            self.capture_line(e, buf, bufs);
        }
    }

    /// An incomplete head: once its first line is complete, keeps a copy (a read that times
    /// out takes the buffer with it, and the 408 line should still show the request).
    pub fn partial(&self, e: &mut Entry, buf: &[u8], bufs: &BufferPool) {
        if self.enabled() && e.facts.is_empty() && buf.contains(&b'\n') {
            self.capture_line(e, buf, bufs);
        }
    }

    fn capture_line(&self, e: &mut Entry, buf: &[u8], bufs: &BufferPool) {
        let end = buf
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(buf.len())
            .min(crate::runtime::buffers::BUFFER_SIZE / 2);
        let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
        let mut parts = line.split(|&b| b == b' ');
        let pieces = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(t), Some(p), None) if !m.is_empty() && !t.is_empty() => [m, t, p],
            _ => [&b""[..], line, &b""[..]],
        };
        e.capture([pieces[0], pieces[1], pieces[2], b"", b""], bufs);
    }

    /// Writes the request's line (when logging) and returns its borrowed buffer.
    pub fn finish(&self, e: &mut Entry, bufs: &BufferPool) {
        if let Some(start) = e.start {
            let line = HttpLine {
                client: e.client,
                request: Request {
                    method: e.piece(0),
                    target: e.piece(1),
                    protocol: e.piece(2),
                    referer: e.piece(3),
                    user_agent: e.piece(4),
                },
                status: e.status,
                bytes: e.bytes,
                duration: start.elapsed(),
                upstream: e.upstream,
                upstream_time: e.upstream_time,
                route: e.route,
                request_id: e.id.as_bytes(),
            };
            self.with_sink(|s| s.http(&line));
        }
        if e.facts.capacity() > 0 {
            bufs.give(std::mem::take(&mut e.facts));
        }
    }

    /// Writes a TCP connection's line (when logging).
    pub fn tcp(&self, line: &TcpLine<'_>) {
        if self.enabled() {
            self.with_sink(|s| s.tcp(line));
        }
    }

    /// The periodic hand-over (every `FLUSH_INTERVAL`), and the delayed drop warning.
    pub fn tick(&self) {
        if let Some(sink) = self.sink.borrow_mut().as_mut() {
            sink.tick();
        }
    }

    /// The worker is stopping: ends the periodic flush, hands over what is buffered (waiting
    /// up to a second for room) and lets go of the channel, so the writer can finish.
    pub fn close(&self) {
        self.stop.set();
        let sink = self.sink.borrow_mut().take();
        drop(sink); // `Sink::drop` hands over the rest
    }

    /// The process's counters (`None` when the log is off): lines dropped per worker and by
    /// the writer, lines written. For metrics.
    pub fn stats(&self) -> Option<&Arc<AccessStats>> {
        self.stats.as_ref()
    }
}

/// Runs a worker's periodic flush until `close`.
pub async fn flush_every_interval(log: std::rc::Rc<WorkerLog>) {
    if !log.enabled() {
        return;
    }
    loop {
        monoio::select! {
            _ = monoio::time::sleep(FLUSH_INTERVAL) => log.tick(),
            _ = log.stop.wait() => return,
        }
    }
}

/// A worker's buffer and its way to the writer. Plain std types, so the hand-over and drop
/// policy is tested without a runtime.
pub struct Sink {
    worker: usize,
    format: AccessFormat,
    clock: Clock,
    buf: Vec<u8>,
    lines: u64,
    /// Emptied buffers ready for use (room reserved: never reallocates).
    free: Vec<Vec<u8>>,
    /// Buffers this worker has made (at most `max_buffers`).
    made: usize,
    max_buffers: usize,
    to_writer: SyncSender<Batch>,
    returned: Receiver<Vec<u8>>,
    stats: Arc<AccessStats>,
    drops: DropReport,
    last_flush: Instant,
}

/// What became of a hand-over.
#[derive(Debug, PartialEq, Eq)]
pub enum Handed {
    Nothing,
    Sent,
    /// No free buffer or the channel full: the lines were dropped (and counted).
    Dropped,
}

impl Sink {
    pub fn new(
        worker: usize,
        format: AccessFormat,
        to_writer: SyncSender<Batch>,
        returned: Receiver<Vec<u8>>,
        stats: Arc<AccessStats>,
        max_buffers: usize,
    ) -> Sink {
        Sink {
            worker,
            format,
            clock: Clock::default(),
            buf: Vec::with_capacity(BATCH_CAPACITY),
            lines: 0,
            free: Vec::with_capacity(max_buffers),
            made: 1,
            max_buffers: max_buffers.max(1),
            to_writer,
            returned,
            stats,
            drops: DropReport::default(),
            last_flush: Instant::now(),
        }
    }

    fn http(&mut self, line: &HttpLine<'_>) {
        format::http(
            &mut self.buf,
            self.format,
            &mut self.clock,
            SystemTime::now(),
            line,
        );
        self.added();
    }

    fn tcp(&mut self, line: &TcpLine<'_>) {
        format::tcp(
            &mut self.buf,
            self.format,
            &mut self.clock,
            SystemTime::now(),
            line,
        );
        self.added();
    }

    /// Appends a ready line (tests).
    #[cfg(test)]
    pub fn push_raw(&mut self, line: &[u8]) -> Handed {
        self.buf.extend_from_slice(line);
        self.added()
    }

    fn added(&mut self) -> Handed {
        self.lines += 1;
        if self.buf.len() >= FLUSH_AT {
            return self.hand_over();
        }
        Handed::Nothing
    }

    /// The periodic flush; also reports drops that no later drop reported.
    pub fn tick(&mut self) -> Handed {
        if let Some(n) = self.drops.pending() {
            self.warn(n);
        }
        if self.last_flush.elapsed() + Duration::from_millis(5) < FLUSH_INTERVAL {
            return Handed::Nothing; // a full buffer went just now
        }
        self.hand_over()
    }

    fn warn(&self, n: u64) {
        warn!(
            worker = self.worker,
            dropped = n,
            total = self.stats.worker_dropped[self.worker].load(Ordering::Relaxed),
            "access log: lines dropped; the writer is behind (slow disk?)"
        );
    }

    /// A buffer to continue in: a free one, one the writer gave back, or a new one while under
    /// `max_buffers`.
    fn spare(&mut self) -> Option<Vec<u8>> {
        if let Some(b) = self.free.pop() {
            return Some(b);
        }
        match self.returned.try_recv() {
            Ok(b) => return Some(b),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
        }
        if self.made < self.max_buffers {
            self.made += 1;
            return Some(Vec::with_capacity(BATCH_CAPACITY));
        }
        None
    }

    /// Sends the current buffer to the writer, never waiting.
    pub fn hand_over(&mut self) -> Handed {
        self.last_flush = Instant::now();
        if self.lines == 0 {
            return Handed::Nothing;
        }
        let lines = std::mem::take(&mut self.lines);
        let Some(next) = self.spare() else {
            self.buf.clear();
            self.dropped(lines);
            return Handed::Dropped;
        };
        let full = std::mem::replace(&mut self.buf, next);
        match self.to_writer.try_send(Batch {
            worker: self.worker,
            lines,
            buf: full,
        }) {
            Ok(()) => Handed::Sent,
            Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) => {
                let mut buf = b.buf;
                buf.clear();
                self.free.push(buf);
                self.dropped(lines);
                Handed::Dropped
            }
        }
    }

    fn dropped(&mut self, lines: u64) {
        self.stats.worker_dropped[self.worker].fetch_add(lines, Ordering::Relaxed);
        if let Some(n) = self.drops.add(lines) {
            self.warn(n);
        }
    }

    /// The last hand-over: waits up to a second for room (the worker is stopping anyway).
    pub fn flush_at_stop(&mut self) {
        for _ in 0..200 {
            if self.try_hand_over_keeping() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.hand_over(); // whatever is left (the writer is gone or stuck): dropped, counted
        if let Some(n) = self.drops.flush() {
            self.warn(n);
        }
    }

    /// Like `hand_over`, but a full channel keeps the lines; `true` when done trying.
    fn try_hand_over_keeping(&mut self) -> bool {
        if self.lines == 0 {
            return true;
        }
        let full = std::mem::take(&mut self.buf);
        match self.to_writer.try_send(Batch {
            worker: self.worker,
            lines: self.lines,
            buf: full,
        }) {
            Ok(()) => {
                self.lines = 0;
                self.buf = self.spare().unwrap_or_default();
                true
            }
            Err(TrySendError::Full(b)) => {
                self.buf = b.buf;
                false
            }
            Err(TrySendError::Disconnected(b)) => {
                self.buf = b.buf;
                true
            }
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.flush_at_stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(
        capacity: usize,
        max_buffers: usize,
    ) -> (Sink, Receiver<Batch>, SyncSender<Vec<u8>>, Arc<AccessStats>) {
        let (tx, rx) = sync_channel(capacity);
        let (back, returned) = sync_channel(max_buffers);
        let stats = Arc::new(AccessStats::new(1));
        let s = Sink::new(
            0,
            AccessFormat::Combined,
            tx,
            returned,
            stats.clone(),
            max_buffers,
        );
        (s, rx, back, stats)
    }

    /// Lines until the buffer is handed over; returns how many it took and what happened.
    fn fill(s: &mut Sink) -> (u64, Handed) {
        let line = [b'x'; 999];
        let mut n = 0;
        loop {
            n += 1;
            let mut l = line.to_vec();
            l.push(b'\n');
            match s.push_raw(&l) {
                Handed::Nothing => continue,
                h => return (n, h),
            }
        }
    }

    #[test]
    fn full_buffers_go_to_the_writer_and_come_back() {
        let (mut s, rx, back, stats) = sink(4, 2);
        let (n, h) = fill(&mut s);
        assert_eq!(h, Handed::Sent);
        let batch = rx.try_recv().unwrap();
        assert_eq!(batch.lines, n);
        assert_eq!(batch.buf.len(), n as usize * 1000);
        assert!(batch.buf.capacity() == BATCH_CAPACITY, "never grew");
        // The writer empties it and gives it back; the worker continues in it.
        let ptr = batch.buf.as_ptr();
        let mut buf = batch.buf;
        buf.clear();
        back.send(buf).unwrap();
        assert_eq!(fill(&mut s).1, Handed::Sent);
        assert_eq!(s.buf.as_ptr(), ptr, "the returned buffer is reused");
        assert_eq!(s.made, 2, "no third buffer was made");
        assert_eq!(stats.dropped(), 0);
    }

    #[test]
    fn a_full_channel_drops_and_counts_without_blocking() {
        let (mut s, rx, _back, stats) = sink(1, 8);
        let (n1, h1) = fill(&mut s);
        assert_eq!(h1, Handed::Sent);
        // The writer is stuck: the channel (capacity 1) is full.
        let (n2, h2) = fill(&mut s);
        assert_eq!(h2, Handed::Dropped);
        assert_eq!(stats.worker_dropped[0].load(Ordering::Relaxed), n2);
        // The next lines go on in a buffer; once the writer catches up they are sent.
        let first = rx.try_recv().unwrap();
        assert_eq!(first.lines, n1);
        let (n3, h3) = fill(&mut s);
        assert_eq!(h3, Handed::Sent);
        assert_eq!(rx.try_recv().unwrap().lines, n3);
        assert_eq!(stats.dropped(), n2);
        assert!(s.made <= 3, "made {} buffers", s.made);
    }

    #[test]
    fn no_free_buffer_drops_and_counts() {
        // Two buffers (the one being filled counts), a roomy channel, a writer that never
        // gives buffers back.
        let (mut s, rx, _back, stats) = sink(8, 2);
        assert_eq!(fill(&mut s).1, Handed::Sent);
        // The other buffer is with the writer: the one in hand cannot be swapped out.
        let (n, h) = fill(&mut s);
        assert_eq!(h, Handed::Dropped);
        assert_eq!(stats.worker_dropped[0].load(Ordering::Relaxed), n);
        assert_eq!(s.made, 2);
        assert_eq!(rx.try_iter().count(), 1);
        // Lines keep going into the same buffer meanwhile, without it growing.
        assert_eq!(fill(&mut s).1, Handed::Dropped);
        assert_eq!(s.buf.capacity(), BATCH_CAPACITY);
    }

    #[test]
    fn tick_hands_over_a_partial_buffer() {
        let (mut s, rx, _back, _) = sink(4, 2);
        assert_eq!(s.push_raw(b"one\n"), Handed::Nothing);
        assert!(rx.try_recv().is_err());
        s.last_flush = Instant::now() - FLUSH_INTERVAL;
        assert_eq!(s.tick(), Handed::Sent);
        let b = rx.try_recv().unwrap();
        assert_eq!((b.lines, &b.buf[..]), (1, &b"one\n"[..]));
        s.last_flush = Instant::now() - FLUSH_INTERVAL;
        assert_eq!(s.tick(), Handed::Nothing, "nothing buffered");
    }

    #[test]
    fn dropping_the_sink_hands_over_the_rest() {
        let (mut s, rx, _back, _) = sink(4, 2);
        s.push_raw(b"last\n");
        drop(s);
        assert_eq!(rx.try_recv().unwrap().buf, b"last\n");
    }

    /// The whole worker side of a request's line: entry, id, facts, format, hand-over and the
    /// buffer coming back. After warm-up (buffers made), nothing allocates.
    #[test]
    fn a_request_line_allocates_nothing_in_steady_state() {
        use crate::http::h1::HeadLimits;
        let limits = HeadLimits {
            max_head: 65536,
            max_target: 16384,
            max_headers: 100,
        };
        let heads: [&[u8]; 2] = [
            b"GET /app/x?q=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: curl/8 \"x\"\r\nReferer: http://r/\r\n\r\n",
            b"POST /b HTTP/1.0\r\nX-Request-Id: abc-123\r\nUser-Agent: \xc3\xa9\r\n\r\n",
        ];
        let mut parsed = Vec::new();
        for raw in heads {
            let mut h = RequestHead::new();
            assert!(h.parse(raw, &limits).unwrap().is_some());
            parsed.push((raw, h));
        }
        for format in [AccessFormat::Combined, AccessFormat::Json] {
            let (tx, rx) = sync_channel(BUFFERS_PER_WORKER);
            let (back, returned) = sync_channel(BUFFERS_PER_WORKER);
            let stats = Arc::new(AccessStats::new(1));
            let sink = Sink::new(0, format, tx, returned, stats.clone(), BUFFERS_PER_WORKER);
            let log = WorkerLog::new(0, 42, Some(sink));
            let bufs = BufferPool::default();
            let client: IpAddr = "10.1.2.3".parse().unwrap();
            let upstream: SocketAddr = "[::1]:9001".parse().unwrap();
            let cycle = |i: usize| {
                let (raw, head) = &parsed[i % 2];
                let mut e = log.entry(client);
                log.begin(&mut e, raw, head, &bufs);
                e.route = Some(i % 3);
                e.status = 200;
                e.bytes = i as u64;
                e.upstream = Some(upstream);
                e.upstream_time = Some(Duration::from_micros(321));
                log.finish(&mut e, &bufs);
                log.tcp(&TcpLine {
                    client,
                    listener: "db",
                    end: "done",
                    bytes_sent: 1,
                    bytes_received: 2,
                    duration: Duration::from_millis(3),
                    upstream: None,
                });
                // The writer's part: take full buffers, give them back emptied.
                while let Ok(b) = rx.try_recv() {
                    let mut buf = b.buf;
                    buf.clear();
                    back.send(buf).unwrap();
                }
            };
            for i in 0..3000 {
                cycle(i);
            }
            let n = crate::auth::tests::allocations_during(|| {
                for i in 0..3000 {
                    cycle(i);
                }
            });
            assert_eq!(n, 0, "{format:?}: allocations for 3000 requests");
            assert_eq!(stats.dropped(), 0);
        }
    }

    #[test]
    fn drop_warnings_are_rate_limited() {
        let mut r = DropReport::default();
        assert_eq!(r.add(3), Some(3));
        assert_eq!(r.add(4), None);
        assert_eq!(r.add(5), None);
        r.last = Some(Instant::now() - WARN_INTERVAL);
        assert_eq!(r.pending(), Some(9));
        assert_eq!(r.pending(), None);
    }
}
