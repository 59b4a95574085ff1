//! Zero-copy forwarding with splice(2): socket → pipe → socket, never through user space.
//!
//! Everything that touches a pipe lives here. The kernel moves page references from the source
//! socket's receive queue into a pipe and from the pipe into the destination socket's send queue;
//! coregate only says how many bytes. Every call is non-blocking (`SPLICE_F_NONBLOCK` for the
//! pipe, `O_NONBLOCK` on the sockets): the caller waits for readiness with the runtime's poll and
//! only then splices, so no kernel thread ever parks inside a splice waiting for data (io_uring's
//! own splice does exactly that: one `iou-wrk` thread per idle connection).
//!
//! Pipes are pooled per worker and only held while bytes are in flight: an idle forwarded
//! connection owns no pipe, so a thousand idle connections cost no pipe descriptors.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Bytes a pipe holds (F_SETPIPE_SZ): fewer splice calls per byte than the 64 KiB default,
/// within the 1 MiB an unprivileged process may ask for (`fs.pipe-max-size`).
pub const PIPE_SIZE: usize = 256 * 1024;
/// Empty pipes a worker keeps for reuse; more are closed when given back.
pub const MAX_IDLE_PIPES: usize = 64;

/// One pipe: bytes written to `write` come out of `read`. `len` counts bytes inside it.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Capacity the kernel granted.
    cap: usize,
    /// Bytes spliced in and not yet out.
    len: usize,
}

impl Pipe {
    /// A non-blocking pipe of `PIPE_SIZE` bytes (or the system's default when that is refused).
    pub fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on a descriptor we own; F_SETPIPE_SZ takes an int size.
        let got = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE as i32) };
        let cap = if got > 0 {
            got as usize
        } else {
            // Over the user's pipe quota (pipe-user-pages-soft) or pipe-max-size: keep the default.
            // SAFETY: as above; F_GETPIPE_SZ only reads.
            let def = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
            if def > 0 {
                def as usize
            } else {
                4096
            }
        };
        Ok(Pipe {
            read,
            write,
            cap,
            len: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left before a splice into the pipe would stop short.
    pub fn room(&self) -> usize {
        self.cap - self.len
    }

    /// Moves up to `room()` bytes from socket `from` into the pipe. `Ok(0)` is end of stream.
    pub fn fill(&mut self, from: RawFd) -> io::Result<usize> {
        let n = splice(from, self.write.as_raw_fd(), self.room())?;
        self.len += n;
        Ok(n)
    }

    /// Moves up to `len()` bytes from the pipe to socket `to`.
    pub fn drain(&mut self, to: RawFd) -> io::Result<usize> {
        let n = splice(self.read.as_raw_fd(), to, self.len)?;
        self.len -= n;
        Ok(n)
    }
}

/// One non-blocking splice(2) of at most `len` bytes between two descriptors.
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: both descriptors are open for the duration of the call (the caller holds the
        // sockets and the pipe); null offsets are required for sockets and pipes.
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A worker's empty pipes, ready for the next connection that has bytes to move.
#[derive(Default)]
pub struct PipePool {
    idle: RefCell<Vec<Pipe>>,
}

impl PipePool {
    /// An empty pipe from the pool, or a new one.
    pub fn take(&self) -> io::Result<Pipe> {
        match self.idle.borrow_mut().pop() {
            Some(p) => Ok(p),
            None => Pipe::new(),
        }
    }

    /// Returns a pipe; one still holding bytes (an aborted transfer) is closed instead.
    pub fn give(&self, pipe: Pipe) {
        let mut idle = self.idle.borrow_mut();
        if pipe.is_empty() && idle.len() < MAX_IDLE_PIPES {
            idle.push(pipe);
        }
    }

    /// Whether this process can splice at all (pipes creatable): decides a listener's path.
    pub fn probe(&self) -> io::Result<()> {
        let p = self.take()?;
        self.give(p);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn moves_bytes_between_sockets_and_reports_would_block() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (src, _) = l.accept().unwrap();
        let dst = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut sink, _) = l.accept().unwrap();
        src.set_nonblocking(true).unwrap();
        dst.set_nonblocking(true).unwrap();
        let pool = PipePool::default();
        let mut p = pool.take().unwrap();
        assert!(p.cap >= 4096);
        let err = p.fill(src.as_raw_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        a.write_all(b"hello pipe").unwrap();
        let mut got = 0;
        while got < 10 {
            match p.fill(src.as_raw_fd()) {
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(p.len(), 10);
        assert_eq!(p.drain(dst.as_raw_fd()).unwrap(), 10);
        assert!(p.is_empty());
        let mut buf = [0u8; 10];
        sink.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello pipe");
        drop(a);
        let eof = loop {
            match p.fill(src.as_raw_fd()) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(eof, 0);
        pool.give(p);
        assert_eq!(pool.idle.borrow().len(), 1);
    }
}
