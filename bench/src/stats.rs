//! What each thread counts, and the messages it sends the main thread.

use hdrhistogram::Histogram;
use std::time::Instant;

/// Lowest and highest latency recorded, in microseconds (1 µs .. 60 s), and the precision.
pub const HIST_LOW: u64 = 1;
pub const HIST_HIGH: u64 = 60_000_000;
pub const HIST_SIGFIG: u8 = 3;

/// Status codes are counted in a flat table indexed by code.
pub const STATUS_SLOTS: usize = 600;

/// An empty latency histogram in microseconds.
pub fn histogram() -> Histogram<u64> {
    // The bounds are constants that the crate accepts (low >= 1, high >= 2 * low, sigfig <= 5).
    Histogram::new_with_bounds(HIST_LOW, HIST_HIGH, HIST_SIGFIG)
        .unwrap_or_else(|e| unreachable!("constant histogram bounds: {e}"))
}

/// Why a request failed; every failed request counts once under one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection could not be made (refused, unreachable, connect timed out).
    Connect = 0,
    /// No (complete) response within `--timeout`.
    Timeout = 1,
    /// The peer reset or closed the connection before the response was complete.
    Reset = 2,
    /// The response broke HTTP/1.1 framing (or, in tcp:// mode, the echo differed).
    Parse = 3,
}

/// JSON names of the error kinds, in `ErrorKind` order.
pub const ERROR_NAMES: [&str; 4] = ["connect", "timeout", "reset", "parse"];

/// One thread's counters; the histogram and the `interval_*` counts cover the current second.
pub struct Shard {
    pub interval: Histogram<u64>,
    pub interval_requests: u64,
    pub interval_errors: u64,
    pub interval_bytes: u64,
    pub status: Vec<u64>,
    pub errors: [u64; 4],
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            interval: histogram(),
            interval_requests: 0,
            interval_errors: 0,
            interval_bytes: 0,
            status: vec![0; STATUS_SLOTS],
            errors: [0; 4],
        }
    }
}

impl Shard {
    /// Records one complete response (or echoed tcp:// connection).
    #[inline]
    pub fn complete(&mut self, latency_us: u64, status: u16) {
        self.interval.saturating_record(latency_us.max(HIST_LOW));
        self.interval_requests += 1;
        if let Some(slot) = self.status.get_mut(usize::from(status)) {
            *slot += 1;
        }
    }

    #[inline]
    pub fn error(&mut self, kind: ErrorKind, n: u64) {
        self.errors[kind as usize] += n;
        self.interval_errors += n;
    }

    /// Takes the current second's numbers, leaving empty ones.
    pub fn take_interval(&mut self) -> Interval {
        let out = Interval {
            hist: std::mem::replace(&mut self.interval, histogram()),
            requests: self.interval_requests,
            errors: self.interval_errors,
            bytes: self.interval_bytes,
        };
        self.interval_requests = 0;
        self.interval_errors = 0;
        self.interval_bytes = 0;
        out
    }
}

/// One second (or the last, partial one) of one thread.
pub struct Interval {
    pub hist: Histogram<u64>,
    pub requests: u64,
    pub errors: u64,
    pub bytes: u64,
}

/// Messages from the load threads to the main thread.
pub enum Report {
    /// The thread's runtime is up; it waits for the start time.
    Ready,
    /// The runtime could not be built.
    Failed { thread: usize, error: String },
    /// Second `sec` of the measured run (counting from 0) ended at `t_s` seconds.
    Tick {
        thread: usize,
        sec: u32,
        t_s: f64,
        data: Interval,
    },
    /// The thread finished; its last, partial second came as a `Tick` just before.
    Done {
        thread: usize,
        at: Instant,
        status: Vec<u64>,
        errors: [u64; 4],
        connected: bool,
        last_connect_error: Option<String>,
    },
}
