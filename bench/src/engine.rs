//! Thread per core: one pinned thread per `-t`, each with its own monoio runtime and its share of
//! the connections; the main thread sets the clock, gathers one report per thread per second,
//! prints progress and merges everything at the end.

use crate::args::{Mode, Plan};
use crate::stats::{histogram, ErrorKind, Interval, Report, Shard, STATUS_SLOTS};
use coregate::runtime::driver::{Driver, Selection};
use hdrhistogram::serialization::interval_log::{IntervalLogWriter, IntervalLogWriterBuilder};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The run's time line, the same for every thread.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Start: connections open, warm-up begins; the open-loop schedule counts from here.
    pub t0: Instant,
    /// Measuring starts (`t0 + warmup`).
    pub measure: Instant,
    /// Measuring ends (`measure + duration`); `None` with `-n` alone.
    pub end: Option<Instant>,
}

impl Clock {
    /// Whether an event at `now` counts.
    #[inline]
    pub fn measured(&self, now: Instant) -> bool {
        now >= self.measure && self.end.map_or(true, |e| now < e)
    }
    /// Whether the run is over at `now`.
    #[inline]
    pub fn over(&self, now: Instant) -> bool {
        self.end.is_some_and(|e| now >= e)
    }
    /// `t` capped at the end of the run.
    #[inline]
    pub fn cap(&self, t: Instant) -> Instant {
        match self.end {
            Some(e) if e < t => e,
            _ => t,
        }
    }
}

/// Everything the connection tasks of one thread share.
pub struct ThreadCtx {
    pub index: usize,
    pub plan: Arc<Plan>,
    pub clock: Clock,
    pub shard: RefCell<Shard>,
    /// The request repeated `pipeline` times (HTTP), or the echo pattern (tcp://).
    pub wire: &'static [u8],
    /// Length of one request in `wire`.
    pub request_len: usize,
    /// The next second the ticker will report, counting from 0.
    next_sec: Cell<u32>,
    pub connected: Cell<bool>,
    pub last_connect_error: RefCell<Option<String>>,
    tx: Sender<Report>,
}

impl ThreadCtx {
    /// Records a complete response that started (was intended, or sent) at `start`.
    #[inline]
    pub fn complete(&self, now: Instant, start: Instant, status: u16) -> bool {
        if !self.clock.measured(now) {
            return false;
        }
        let us =
            u64::try_from(now.saturating_duration_since(start).as_micros()).unwrap_or(u64::MAX);
        self.shard.borrow_mut().complete(us, status);
        true
    }

    /// Counts `n` failed requests; returns whether they were inside the measured run.
    #[inline]
    pub fn error(&self, now: Instant, kind: ErrorKind, n: u64) -> bool {
        if n == 0 || !self.clock.measured(now) {
            return false;
        }
        self.shard.borrow_mut().error(kind, n);
        true
    }

    /// Counts response bytes read.
    #[inline]
    pub fn bytes(&self, now: Instant, n: usize) {
        if self.clock.measured(now) {
            self.shard.borrow_mut().interval_bytes += n as u64;
        }
    }

    pub fn connect_failed(&self, e: &std::io::Error) {
        let mut last = self.last_connect_error.borrow_mut();
        if last.is_none() {
            *last = Some(e.to_string());
        }
    }

    fn send_interval(&self, sec: u32, t_s: f64, data: Interval) {
        let _ = self.tx.send(Report::Tick {
            thread: self.index,
            sec,
            t_s,
            data,
        });
    }
}

/// Sends each second's numbers to the main thread, on the second, whether or not requests end.
async fn ticker(ctx: Rc<ThreadCtx>) {
    loop {
        let sec = ctx.next_sec.get();
        let at = ctx.clock.measure + Duration::from_secs(u64::from(sec) + 1);
        monoio::time::sleep_until(monoio::time::Instant::from_std(at)).await;
        let data = ctx.shard.borrow_mut().take_interval();
        ctx.next_sec.set(sec + 1);
        ctx.send_interval(sec, f64::from(sec + 1), data);
    }
}

/// One connection's part of the run.
#[derive(Debug, Clone, Copy)]
pub struct ConnSpec {
    /// Global index 0..connections: its place in the open-loop schedule.
    pub index: usize,
    /// Measured requests it makes with `-n`.
    pub quota: Option<u64>,
}

async fn thread_main(ctx: Rc<ThreadCtx>, conns: Vec<ConnSpec>) {
    monoio::spawn(ticker(ctx.clone()));
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|spec| {
            let ctx = ctx.clone();
            match &ctx.plan.mode {
                Mode::Http { .. } => monoio::spawn(crate::http::connection(ctx, spec)),
                Mode::Tcp { .. } => monoio::spawn(crate::tcp::connection(ctx, spec)),
            }
        })
        .collect();
    for t in tasks {
        t.await;
    }
    let now = Instant::now();
    let data = ctx.shard.borrow_mut().take_interval();
    if data.requests > 0 || data.errors > 0 || data.bytes > 0 {
        // With -d the last second ends with the run (or on the second); with -n when we are done.
        let sec = ctx.next_sec.get();
        let t_s = match ctx.clock.end {
            Some(end) => end
                .saturating_duration_since(ctx.clock.measure)
                .as_secs_f64()
                .min(f64::from(sec + 1)),
            None => now
                .saturating_duration_since(ctx.clock.measure)
                .as_secs_f64(),
        };
        ctx.send_interval(sec, t_s, data);
    }
    let shard = ctx.shard.borrow();
    let _ = ctx.tx.send(Report::Done {
        thread: ctx.index,
        at: now,
        status: shard.status.clone(),
        errors: shard.errors,
        connected: ctx.connected.get(),
        last_connect_error: ctx.last_connect_error.borrow().clone(),
    });
}

struct ThreadStart {
    index: usize,
    cpu: Option<core_affinity::CoreId>,
    driver: Driver,
    plan: Arc<Plan>,
    wire: &'static [u8],
    request_len: usize,
    conns: Vec<ConnSpec>,
    clock_rx: Receiver<Clock>,
    tx: Sender<Report>,
}

fn run_thread(start: ThreadStart) {
    if let Some(core) = start.cpu {
        core_affinity::set_for_current(core);
    }
    let tx = start.tx.clone();
    let index = start.index;
    let driver = start.driver;
    let main = async move {
        // Runtime up: report ready, wait for the common clock, then go.
        let _ = start.tx.send(Report::Ready);
        let Ok(clock) = start.clock_rx.recv() else {
            return;
        };
        let ctx = Rc::new(ThreadCtx {
            index: start.index,
            plan: start.plan,
            clock,
            shard: RefCell::new(Shard::default()),
            wire: start.wire,
            request_len: start.request_len,
            next_sec: Cell::new(0),
            connected: Cell::new(false),
            last_connect_error: RefCell::new(None),
            tx: start.tx,
        });
        thread_main(ctx, start.conns).await;
    };
    let built = match driver {
        Driver::IoUring => {
            // As the gateway's workers: COOP_TASKRUN and SINGLE_ISSUER, or a plain ring on
            // kernels older than 6.0.
            let mut tuned = io_uring::IoUring::builder();
            tuned.setup_coop_taskrun().setup_single_issuer();
            let build = |urb: io_uring::Builder| {
                monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                    .enable_timer()
                    .with_entries(coregate::runtime::worker::URING_ENTRIES)
                    .uring_builder(urb)
                    .build()
            };
            build(tuned)
                .or_else(|_| build(io_uring::IoUring::builder()))
                .map(|mut rt| rt.block_on(main))
        }
        Driver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(main)),
    };
    if let Err(e) = built {
        let _ = tx.send(Report::Failed {
            thread: index,
            error: format!("cannot start the runtime: {e}"),
        });
    }
}

/// One timeline point: a second of the measured run (the last may be shorter).
#[derive(Debug, Clone)]
pub struct Second {
    pub t_s: f64,
    pub requests: u64,
    pub errors: u64,
    pub bytes: u64,
    pub p99_us: u64,
}

/// Everything measured, merged over the threads.
pub struct Outcome {
    pub driver: Selection,
    pub hist: Histogram<u64>,
    pub requests: u64,
    pub bytes: u64,
    pub status: Vec<u64>,
    pub errors: [u64; 4],
    pub timeline: Vec<Second>,
    pub duration: Duration,
    pub cpu_user: f64,
    pub cpu_sys: f64,
    pub connected: bool,
    pub last_connect_error: Option<String>,
}

/// CPU time of this process so far: (user, system) seconds.
pub fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage only writes the struct we hand it; an all-zero rusage is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid, writable pointer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

/// Spreads `n` connections over `threads`: round robin, so counts differ by at most one.
fn spread(plan: &Plan) -> Vec<Vec<ConnSpec>> {
    let mut out = vec![Vec::new(); plan.threads];
    let c = plan.connections as u64;
    for i in 0..plan.connections {
        let quota = plan.count.map(|n| n / c + u64::from((i as u64) < n % c));
        if quota == Some(0) {
            continue;
        }
        out[i % plan.threads].push(ConnSpec { index: i, quota });
    }
    out
}

/// Progress on stderr: `\r`-updated on a terminal, plain lines otherwise.
struct Progress {
    on: bool,
    tty: bool,
    dirty: bool,
}

impl Progress {
    fn line(&mut self, s: &str) {
        if !self.on {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{s}");
            self.dirty = true;
        } else {
            let _ = writeln!(err, "{s}");
        }
        let _ = err.flush();
    }
    fn finish(&mut self) {
        if self.dirty {
            let _ = writeln!(std::io::stderr());
            self.dirty = false;
        }
    }
}

/// Per-second aggregation: a second is final once every thread has reported it or finished.
struct Seconds {
    first: u32,
    pending: VecDeque<Option<(f64, Interval)>>,
    reported: Vec<u32>,
    done: Vec<bool>,
}

impl Seconds {
    fn add(&mut self, thread: usize, sec: u32, t_s: f64, data: Interval) {
        self.reported[thread] = self.reported[thread].max(sec + 1);
        if sec < self.first {
            return; // cannot happen: a thread reports each second once, in order
        }
        let at = (sec - self.first) as usize;
        while self.pending.len() <= at {
            self.pending.push_back(None);
        }
        match &mut self.pending[at] {
            Some((t, acc)) => {
                *t = t.max(t_s);
                let _ = acc.hist.add(&data.hist);
                acc.requests += data.requests;
                acc.errors += data.errors;
                acc.bytes += data.bytes;
            }
            slot => *slot = Some((t_s, data)),
        }
    }

    /// The next final second, if any; `all` once every thread is done.
    fn pop_final(&mut self, all: bool) -> Option<Option<(f64, Interval)>> {
        let s = self.first;
        let ready = all
            || self
                .reported
                .iter()
                .zip(&self.done)
                .all(|(&r, &d)| d || r > s);
        if !ready || self.pending.is_empty() {
            return None;
        }
        self.first += 1;
        self.pending.pop_front()
    }
}

type HdrWriter<'a, 'b> =
    IntervalLogWriter<'a, 'b, std::io::BufWriter<std::fs::File>, V2DeflateSerializer>;

/// Runs the load; `Err` when no thread could start.
pub fn run(plan: Plan, wire: &'static [u8], request_len: usize) -> Result<Outcome, String> {
    let selection = coregate::runtime::driver::select(coregate::config::DriverChoice::Auto)?;
    if let (Some(why), false) = (&selection.fallback_reason, plan.quiet) {
        eprintln!("coregate-bench: io_uring unavailable ({why}); using epoll");
    }
    let plan = Arc::new(plan);
    let cpus = core_affinity::get_core_ids().unwrap_or_default();
    let (tx, rx) = mpsc::channel::<Report>();
    let mut clock_txs = Vec::new();
    let mut handles = Vec::new();
    for (i, conns) in spread(&plan).into_iter().enumerate() {
        let (ctx_tx, clock_rx) = mpsc::channel();
        clock_txs.push(ctx_tx);
        let start = ThreadStart {
            index: i,
            cpu: (!cpus.is_empty()).then(|| cpus[i % cpus.len()]),
            driver: selection.driver,
            plan: plan.clone(),
            wire,
            request_len,
            conns,
            clock_rx,
            tx: tx.clone(),
        };
        let h = std::thread::Builder::new()
            .name(format!("load-{i}"))
            .spawn(move || run_thread(start))
            .map_err(|e| format!("cannot start thread {i}: {e}"))?;
        handles.push(h);
    }
    drop(tx);
    let threads = handles.len();
    let mut ready = 0;
    while ready < threads {
        match rx.recv() {
            Ok(Report::Ready) => ready += 1,
            Ok(Report::Failed { thread, error }) => {
                drop(clock_txs);
                for h in handles {
                    let _ = h.join();
                }
                return Err(format!("thread {thread}: {error}"));
            }
            Ok(_) => {}
            Err(_) => return Err("the load threads stopped before starting".into()),
        }
    }
    let t0 = Instant::now();
    let measure = t0 + plan.warmup;
    let clock = Clock {
        t0,
        measure,
        end: plan.duration.map(|d| measure + d),
    };
    for c in &clock_txs {
        let _ = c.send(clock);
    }
    let out = gather(&plan, clock, &rx, selection, threads);
    for h in handles {
        let _ = h.join();
    }
    out
}

fn gather(
    plan: &Plan,
    clock: Clock,
    rx: &Receiver<Report>,
    driver: Selection,
    threads: usize,
) -> Result<Outcome, String> {
    let mut progress = Progress {
        on: !plan.quiet,
        tty: std::io::stderr().is_terminal(),
        dirty: false,
    };
    if !plan.warmup.is_zero() {
        progress.line(&format!(
            "warming up for {:.1}s ...",
            plan.warmup.as_secs_f64()
        ));
    }
    let mut hdr_file = match &plan.hdr_log {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("--hdr-log {}: {e}", p.display()))?,
        )),
        None => None,
    };
    let mut serializer = V2DeflateSerializer::new();
    let mut hdr: Option<HdrWriter<'_, '_>> = match hdr_file.as_mut() {
        Some(f) => {
            let start = SystemTime::now() + clock.measure.saturating_duration_since(Instant::now());
            Some(
                IntervalLogWriterBuilder::new()
                    .add_comment(&format!("coregate-bench {}", plan.url))
                    .with_start_time(start)
                    .with_base_time(start)
                    .with_max_value_divisor(1000.0)
                    .begin_log_with(f, &mut serializer)
                    .map_err(|e| format!("--hdr-log: {e}"))?,
            )
        }
        None => None,
    };
    let mut secs = Seconds {
        first: 0,
        pending: VecDeque::new(),
        reported: vec![0; threads],
        done: vec![false; threads],
    };
    let mut hist = histogram();
    let mut requests = 0u64;
    let mut bytes = 0u64;
    let mut errors_so_far = 0u64;
    let mut timeline = Vec::new();
    let mut status = vec![0u64; STATUS_SLOTS];
    let mut errors = [0u64; 4];
    let mut connected = false;
    let mut last_connect_error = None;
    let mut finished_at = clock.measure;
    let mut cpu_start = None;
    let mut prev_t = 0.0f64;
    let mut done = 0;
    let mut finalize = |entry: Option<(f64, Interval)>,
                        hdr: &mut Option<HdrWriter<'_, '_>>,
                        progress: &mut Progress| {
        let Some((t_s, data)) = entry else { return };
        let _ = hist.add(&data.hist);
        requests += data.requests;
        bytes += data.bytes;
        errors_so_far += data.errors;
        let span = (t_s - prev_t).max(1e-3);
        if let Some(w) = hdr.as_mut() {
            let _ = w.write_histogram(
                &data.hist,
                Duration::from_secs_f64(prev_t),
                Duration::from_secs_f64(span),
                None,
            );
        }
        prev_t = t_s;
        let p99 = data.hist.value_at_quantile(0.99);
        progress.line(&format!(
            "[{t_s:6.1}s] {:>10.0} req/s  p99 {:>8}  errors {errors_so_far}",
            data.requests as f64 / span,
            crate::output::fmt_us(p99),
        ));
        timeline.push(Second {
            t_s,
            requests: data.requests,
            errors: data.errors,
            bytes: data.bytes,
            p99_us: p99,
        });
    };
    while done < threads {
        let msg = if cpu_start.is_none() {
            match rx.recv_timeout(clock.measure.saturating_duration_since(Instant::now())) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    cpu_start = Some(cpu_times());
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(m) => m,
                Err(_) => break,
            }
        };
        if cpu_start.is_none() && Instant::now() >= clock.measure {
            cpu_start = Some(cpu_times());
        }
        match msg {
            Report::Tick {
                thread,
                sec,
                t_s,
                data,
            } => secs.add(thread, sec, t_s, data),
            Report::Done {
                thread,
                at,
                status: s,
                errors: e,
                connected: c,
                last_connect_error: lce,
            } => {
                done += 1;
                secs.done[thread] = true;
                finished_at = finished_at.max(at);
                for (a, b) in status.iter_mut().zip(&s) {
                    *a += b;
                }
                for (a, b) in errors.iter_mut().zip(e) {
                    *a += b;
                }
                connected |= c;
                if last_connect_error.is_none() {
                    last_connect_error = lce;
                }
            }
            Report::Failed { thread, error } => {
                return Err(format!("thread {thread}: {error}"));
            }
            Report::Ready => {}
        }
        while let Some(entry) = secs.pop_final(false) {
            finalize(entry, &mut hdr, &mut progress);
        }
    }
    while let Some(entry) = secs.pop_final(true) {
        finalize(entry, &mut hdr, &mut progress);
    }
    let cpu_end = cpu_times();
    let (u0, s0) = cpu_start.unwrap_or(cpu_end);
    progress.finish();
    drop(hdr);
    if let Some(mut f) = hdr_file {
        f.flush().map_err(|e| format!("--hdr-log: {e}"))?;
    }
    let duration = match plan.duration {
        Some(d) => d,
        None => finished_at.saturating_duration_since(clock.measure),
    };
    Ok(Outcome {
        driver,
        hist,
        requests,
        bytes,
        status,
        errors,
        timeline,
        duration,
        cpu_user: (cpu_end.0 - u0).max(0.0),
        cpu_sys: (cpu_end.1 - s0).max(0.0),
        connected,
        last_connect_error,
    })
}
