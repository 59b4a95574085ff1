//! Idle keep-alive connections to one upstream, per worker: reuse saves a handshake per request.
//!
//! Idle connections hold only their socket (no buffer). A connection is checked for a close
//! from the upstream before it is handed out again.

use crate::tls::Stream;
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

struct Idle {
    stream: Stream,
    since: Instant,
}

/// One upstream's idle connections on this worker, per endpoint.
pub struct Pool {
    idle: Vec<VecDeque<Idle>>,
    count: usize,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub fn new(endpoints: usize, max_idle: usize, idle_timeout: Duration) -> Pool {
        Pool {
            idle: (0..endpoints).map(|_| VecDeque::new()).collect(),
            count: 0,
            max_idle,
            idle_timeout,
        }
    }

    /// The most recently used connection to `endpoint` that is within its idle timeout and,
    /// when `verify`, has not been closed by the upstream.
    pub fn checkout(&mut self, endpoint: usize, verify: bool) -> Option<Stream> {
        let now = Instant::now();
        let queue = self.idle.get_mut(endpoint)?;
        while let Some(c) = queue.pop_back() {
            self.count -= 1;
            if now.duration_since(c.since) < self.idle_timeout && (!verify || still_open(&c.stream))
            {
                return Some(c.stream);
            }
        }
        None
    }

    /// Parks a connection whose last exchange ended cleanly; the oldest goes when full.
    pub fn checkin(&mut self, endpoint: usize, stream: Stream) {
        if self.max_idle == 0 {
            return;
        }
        if self.count >= self.max_idle {
            let fullest = (0..self.idle.len()).max_by_key(|&i| self.idle[i].len());
            if let Some(q) = fullest.and_then(|i| self.idle.get_mut(i)) {
                q.pop_front();
                self.count -= 1;
            }
        }
        if let Some(q) = self.idle.get_mut(endpoint) {
            q.push_back(Idle {
                stream,
                since: Instant::now(),
            });
            self.count += 1;
        }
    }

    /// Closes connections idle longer than `idle_timeout`, so they do not linger in CLOSE_WAIT.
    pub fn sweep(&mut self, now: Instant) {
        for q in &mut self.idle {
            while q
                .front()
                .is_some_and(|c| now.duration_since(c.since) >= self.idle_timeout)
            {
                q.pop_front();
                self.count -= 1;
            }
        }
    }

    pub fn idle_count(&self) -> usize {
        self.count
    }
}

/// True when the upstream has neither closed the connection nor sent anything unasked.
///
/// One non-blocking `recv(MSG_PEEK)`: cheaper than a failed request on a dead connection.
fn still_open(stream: &Stream) -> bool {
    let mut byte = 0u8;
    // SAFETY: recv on a socket fd we own, into one valid byte of stack memory.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}
