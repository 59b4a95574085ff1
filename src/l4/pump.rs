//! One direction of a forwarded connection: bytes from one socket to the other until the source
//! ends, then a half-close (`shutdown(SHUT_WR)`) of the destination.
//!
//! The loop is readiness-driven: wait until the source is readable, borrow a conduit (a pooled
//! pipe for splice, or a pooled buffer for the copy path), move what is there with non-blocking
//! calls, and give the conduit back as soon as it is empty and the source has nothing more — so an
//! idle direction holds neither a pipe nor a buffer, and no kernel thread waits on its behalf.

use super::splice::{Pipe, PipePool};
use crate::runtime::buffers::BufferPool;
use monoio::net::TcpStream;
use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

/// How a listener moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// splice(2) through a pooled pipe: the bytes never enter user space.
    Splice,
    /// read(2)/write(2) through a pooled buffer: where splice is off or unavailable.
    Copy,
}

impl Path {
    pub fn name(self) -> &'static str {
        match self {
            Path::Splice => "splice",
            Path::Copy => "copy",
        }
    }
}

/// How one direction ended.
#[derive(Debug)]
pub enum End {
    /// The source closed its sending side; the destination got `shutdown(SHUT_WR)`.
    Eof,
    /// Reading the source failed (typically a reset): the other side should be reset too.
    Source(io::Error),
    /// Writing the destination failed (reset, or it closed): the source should be reset.
    Dest(io::Error),
}

/// What a direction shares with the connection task.
pub struct Shared<'a> {
    pub pipes: &'a PipePool,
    pub bufs: &'a BufferPool,
    /// When bytes last moved in either direction (the idle timeout).
    pub last_activity: &'a Cell<Instant>,
}

/// Counters of the bytes written to the destination: this connection's, and its listener's in
/// the worker's metrics (live, so a long connection's traffic shows before it closes).
pub type Moved<'a> = [&'a Cell<u64>; 2];

/// Moves bytes from `from` to `to` until `from` ends or either fails. Both sockets must be
/// non-blocking.
pub async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    path: Path,
    sh: &Shared<'_>,
    moved: Moved<'_>,
) -> End {
    let (src, dst) = (from.as_raw_fd(), to.as_raw_fd());
    let mut held: Option<Conduit> = None;
    let mut eof = false;
    let mut writable = true;
    loop {
        let c = match held.as_mut() {
            Some(c) => c,
            None => {
                if let Err(e) = from.readable(false).await {
                    return End::Source(e);
                }
                held.insert(Conduit::take(path, sh))
            }
        };
        // Read what is there while the conduit has room.
        let mut read_blocked = eof || c.room() == 0;
        if !read_blocked {
            match c.fill(src) {
                Ok(0) => {
                    eof = true;
                    read_blocked = true;
                }
                Ok(_) => sh.last_activity.set(Instant::now()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => read_blocked = true,
                Err(e) => return End::Source(e),
            }
        }
        // Write what is held while the destination takes it.
        if !c.is_empty() && writable {
            match c.drain(dst) {
                Ok(n) => {
                    for m in moved {
                        m.set(m.get() + n as u64);
                    }
                    sh.last_activity.set(Instant::now());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => writable = false,
                Err(e) => return End::Dest(e),
            }
        }
        if c.is_empty() {
            if eof {
                if let Some(c) = held.take() {
                    c.give(sh);
                }
                // SAFETY: `dst` is the open socket `to`; shutdown only changes its state. An error
                // (ENOTCONN: the peer already reset) leaves nothing to half-close.
                unsafe { libc::shutdown(dst, libc::SHUT_WR) };
                return End::Eof;
            }
            if read_blocked {
                if let Some(c) = held.take() {
                    c.give(sh);
                }
            }
            continue;
        }
        if read_blocked && !writable {
            if let Err(e) = to.writable(false).await {
                return End::Dest(e);
            }
            writable = true;
        }
    }
}

/// Where bytes wait between the two sockets.
enum Conduit {
    Pipe(Pipe),
    /// A pooled buffer: bytes `start..buf.len()` are waiting to be written.
    Buf {
        buf: Vec<u8>,
        start: usize,
    },
}

impl Conduit {
    fn take(path: Path, sh: &Shared<'_>) -> Conduit {
        if path == Path::Splice {
            match sh.pipes.take() {
                Ok(p) => return Conduit::Pipe(p),
                // Out of descriptors or pipe quota: this stretch goes through a buffer instead.
                Err(e) => tracing::debug!(error = %e, "no pipe for splice; copying"),
            }
        }
        Conduit::Buf {
            buf: sh.bufs.take(),
            start: 0,
        }
    }

    fn give(self, sh: &Shared<'_>) {
        match self {
            Conduit::Pipe(p) => sh.pipes.give(p),
            Conduit::Buf { buf, .. } => sh.bufs.give(buf),
        }
    }

    fn room(&self) -> usize {
        match self {
            Conduit::Pipe(p) => p.room(),
            Conduit::Buf { buf, .. } => buf.capacity() - buf.len(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Conduit::Pipe(p) => p.is_empty(),
            Conduit::Buf { buf, start } => *start == buf.len(),
        }
    }

    fn fill(&mut self, from: RawFd) -> io::Result<usize> {
        match self {
            Conduit::Pipe(p) => p.fill(from),
            Conduit::Buf { buf, .. } => {
                let spare = buf.spare_capacity_mut();
                // SAFETY: read(2) writes at most `spare.len()` bytes into the buffer's spare
                // capacity, which is valid for writes; `from` is an open socket.
                let n = unsafe { libc::read(from, spare.as_mut_ptr().cast(), spare.len()) };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: the kernel initialised the first `n` spare bytes.
                unsafe { buf.set_len(buf.len() + n as usize) };
                Ok(n as usize)
            }
        }
    }

    fn drain(&mut self, to: RawFd) -> io::Result<usize> {
        match self {
            Conduit::Pipe(p) => p.drain(to),
            Conduit::Buf { buf, start } => {
                let pending = &buf[*start..];
                // SAFETY: `pending` is initialised memory valid for reads of its length; `to` is
                // an open socket. MSG_NOSIGNAL: a closed peer is an EPIPE error, not a SIGPIPE.
                let n = unsafe {
                    libc::send(
                        to,
                        pending.as_ptr().cast(),
                        pending.len(),
                        libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                    )
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                *start += n as usize;
                if *start == buf.len() {
                    buf.clear();
                    *start = 0;
                }
                Ok(n as usize)
            }
        }
    }
}
