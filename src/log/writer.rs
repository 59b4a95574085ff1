//! The access log's one writer thread: takes full buffers from the workers through a bounded
//! channel, writes each with one `write(2)`, and hands the emptied buffer back to its worker.
//!
//! Workers never touch the file, so a slow disk stalls this thread, never an event loop. The
//! file is opened with `O_APPEND` (several processes may share it, as during a binary upgrade)
//! and reopened on request (SIGUSR1, for logrotate). Failures to open or write are logged at
//! most once a second and the lines they lose are counted; nothing here can bring the process
//! down.

use super::access::{AccessStats, DropReport};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How often the writer wakes without work (to honour a reopen request promptly, and to retry a
/// file it could not open).
pub const WRITER_TICK: Duration = Duration::from_millis(100);
/// A file that could not be opened is tried again at most this often.
pub const REOPEN_RETRY: Duration = Duration::from_secs(1);
/// Buffers that grew past this (a few huge lines) are shrunk back before they are returned.
const SHRINK_ABOVE: usize = 4 * super::access::BATCH_CAPACITY;

/// One worker's full buffer.
pub struct Batch {
    pub worker: usize,
    pub lines: u64,
    pub buf: Vec<u8>,
}

/// Where lines go.
pub enum Output {
    Stdout,
    File {
        path: PathBuf,
        /// `None` while the file cannot be opened: lines are dropped and counted.
        file: Option<File>,
        last_attempt: Instant,
    },
}

/// Opens (creating, mode 0644) an access log for appending.
pub fn open(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
}

impl Output {
    fn write(&mut self, batch: &Batch, stats: &AccessStats, failures: &mut DropReport) {
        let result = match self {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&batch.buf).and_then(|_| out.flush())
            }
            Output::File {
                path,
                file,
                last_attempt,
            } => {
                let mut open_error = None;
                if file.is_none() && last_attempt.elapsed() >= REOPEN_RETRY {
                    *last_attempt = Instant::now();
                    match open(path) {
                        Ok(f) => {
                            info!(path = %path.display(), "access log opened");
                            *file = Some(f);
                        }
                        Err(e) => open_error = Some(e),
                    }
                }
                match file {
                    Some(f) => f.write_all(&batch.buf),
                    None => Err(open_error
                        .unwrap_or_else(|| std::io::Error::other("the file could not be opened"))),
                }
            }
        };
        match result {
            Ok(()) => {
                stats.written.fetch_add(batch.lines, Ordering::Relaxed);
            }
            Err(e) => {
                stats
                    .write_dropped
                    .fetch_add(batch.lines, Ordering::Relaxed);
                if let Some(n) = failures.add(batch.lines) {
                    warn!(output = %self.name(), error = %e, dropped = n,
                        "access log: write failed; lines dropped");
                }
            }
        }
    }

    /// Opens the file anew (after logrotate moved it); on failure the old one stays in use.
    fn reopen(&mut self) {
        let Output::File {
            path,
            file,
            last_attempt,
        } = self
        else {
            return;
        };
        *last_attempt = Instant::now();
        match open(path) {
            Ok(f) => {
                *file = Some(f);
                info!(path = %path.display(), "access log reopened");
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e,
                    "access log: cannot reopen the file; still writing to the old one");
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Output::Stdout => "stdout".to_string(),
            Output::File { path, .. } => path.display().to_string(),
        }
    }
}

/// A request to reopen the file (SIGUSR1), seen by the writer within `WRITER_TICK`.
#[derive(Clone)]
pub struct Reopen {
    flag: Arc<AtomicBool>,
    file: bool,
}

impl Reopen {
    /// `false` when there is no file to reopen (stdout).
    pub fn reopen(&self) -> bool {
        if self.file {
            self.flag.store(true, Ordering::Release);
        }
        self.file
    }
}

/// The running writer: ask it to reopen, or wait for it to finish.
pub struct Writer {
    thread: Option<JoinHandle<()>>,
    reopen: Arc<AtomicBool>,
    file: bool,
    pub stats: Arc<AccessStats>,
}

impl Writer {
    /// Starts the thread. It ends when every worker's sender is gone (all lines written).
    pub fn start(
        output: Output,
        batches: Receiver<Batch>,
        back: Vec<SyncSender<Vec<u8>>>,
        stats: Arc<AccessStats>,
    ) -> Result<Writer, String> {
        let reopen = Arc::new(AtomicBool::new(false));
        let file = matches!(output, Output::File { .. });
        let thread = {
            let (reopen, stats) = (reopen.clone(), stats.clone());
            std::thread::Builder::new()
                .name("coregate-accesslog".into())
                .spawn(move || run(output, batches, back, &reopen, &stats))
                .map_err(|e| format!("cannot start the access log writer: {e}"))?
        };
        Ok(Writer {
            thread: Some(thread),
            reopen,
            file,
            stats,
        })
    }

    /// Asks the writer to reopen its file; `false` when it writes to stdout.
    pub fn reopen(&self) -> bool {
        self.reopen_handle().reopen()
    }

    /// What the signal thread keeps to ask for a reopen.
    pub fn reopen_handle(&self) -> Reopen {
        Reopen {
            flag: self.reopen.clone(),
            file: self.file,
        }
    }

    /// Waits (at most `limit`) for the writer to write what the workers sent; call after the
    /// workers have stopped. A writer stuck on a dead disk is left behind, not waited for.
    pub fn finish(mut self, limit: Duration) {
        let Some(t) = self.thread.take() else { return };
        let deadline = Instant::now() + limit;
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            warn!("access log writer did not finish in time; its last lines may be lost");
        }
    }
}

fn run(
    mut out: Output,
    batches: Receiver<Batch>,
    back: Vec<SyncSender<Vec<u8>>>,
    reopen: &AtomicBool,
    stats: &AccessStats,
) {
    let mut failures = DropReport::default();
    loop {
        if reopen.swap(false, Ordering::AcqRel) {
            out.reopen();
        }
        match batches.recv_timeout(WRITER_TICK) {
            Ok(batch) => {
                out.write(&batch, stats, &mut failures);
                let mut buf = batch.buf;
                buf.clear();
                if buf.capacity() > SHRINK_ABOVE {
                    buf.shrink_to(super::access::BATCH_CAPACITY);
                }
                // The worker has room for every buffer it made; if it is gone, so is the buffer.
                if let Some(b) = back.get(batch.worker) {
                    let _ = b.try_send(buf);
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Some(n) = failures.pending() {
                    warn!(output = %out.name(), dropped = n, "access log: lines dropped");
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Some(n) = failures.flush() {
        warn!(output = %out.name(), dropped = n, "access log: lines dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn writes_batches_returns_buffers_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let output = Output::File {
            path: path.clone(),
            file: Some(open(&path).unwrap()),
            last_attempt: Instant::now(),
        };
        let (tx, rx) = sync_channel(4);
        let (back_tx, back_rx) = sync_channel(4);
        let stats = Arc::new(AccessStats::new(1));
        let w = Writer::start(output, rx, vec![back_tx], stats.clone()).unwrap();
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(b"one\ntwo\n");
        let ptr = buf.as_ptr();
        tx.send(Batch {
            worker: 0,
            lines: 2,
            buf,
        })
        .unwrap();
        let back = back_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(back.is_empty());
        assert_eq!(back.as_ptr(), ptr, "the same buffer comes back");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");

        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        assert!(w.reopen());
        // Wait until the writer has opened the new file, then write.
        let start = Instant::now();
        while !path.exists() {
            assert!(start.elapsed() < Duration::from_secs(5), "not reopened");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut buf = back;
        buf.extend_from_slice(b"three\n");
        tx.send(Batch {
            worker: 0,
            lines: 1,
            buf,
        })
        .unwrap();
        drop(tx);
        w.finish(Duration::from_secs(5));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("access.log.1")).unwrap(),
            "one\ntwo\n"
        );
        assert_eq!(stats.written.load(Ordering::Relaxed), 3);
        assert_eq!(stats.dropped(), 0);
    }

    #[test]
    fn a_file_that_cannot_be_opened_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let output = Output::File {
            path: dir.path().join("missing/access.log"),
            file: None,
            last_attempt: Instant::now(),
        };
        let (tx, rx) = sync_channel(4);
        let stats = Arc::new(AccessStats::new(1));
        let w = Writer::start(output, rx, Vec::new(), stats.clone()).unwrap();
        tx.send(Batch {
            worker: 0,
            lines: 3,
            buf: b"a\nb\nc\n".to_vec(),
        })
        .unwrap();
        drop(tx);
        w.finish(Duration::from_secs(5));
        assert_eq!(stats.write_dropped.load(Ordering::Relaxed), 3);
        assert_eq!(stats.dropped(), 3);
    }
}
