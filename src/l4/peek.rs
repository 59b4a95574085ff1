//! Looking at a connection's first bytes without taking them: `recv(MSG_PEEK)` until a parser has
//! a verdict. The PROXY header check and the SNI router both start here, so the bytes they
//! inspect stay in the socket for splice to forward untouched.
//!
//! Waiting for *more* bytes than are already queued uses `SO_RCVLOWAT`: poll only reports the
//! socket readable once one byte beyond what was peeked has arrived, so a ClientHello trickling in
//! over several segments costs one wake-up per segment, not a busy loop.

use monoio::net::TcpStream;
use monoio::time::Instant;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// Why peeking stopped without a verdict.
#[derive(Debug)]
pub enum NoVerdict {
    /// The peer closed (or stopped sending) before the parser could decide.
    Closed,
    /// `buf` filled up and the parser still wants more.
    Full,
    /// The deadline passed.
    TimedOut,
    Io(io::Error),
}

/// Peeks into `buf` until `decide` returns a verdict for the bytes at the head of the stream.
pub async fn peek_until<T>(
    stream: &TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    mut decide: impl FnMut(&[u8]) -> Option<T>,
) -> Result<T, NoVerdict> {
    let fd = stream.as_raw_fd();
    let mut lowat = 1;
    let result = loop {
        let n = match recv(fd, buf, libc::MSG_PEEK) {
            Ok(0) => break Err(NoVerdict::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => break Err(NoVerdict::Io(e)),
        };
        if n > 0 {
            if let Some(v) = decide(&buf[..n]) {
                break Ok(v);
            }
            if n == buf.len() {
                break Err(NoVerdict::Full);
            }
            if n < lowat {
                // Woken without a new byte: the peer half-closed with its bytes still queued.
                break Err(NoVerdict::Closed);
            }
            lowat = n + 1;
            set_rcvlowat(fd, lowat);
        }
        match monoio::time::timeout_at(deadline, stream.readable(false)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => break Err(NoVerdict::Io(e)),
            Err(_) => break Err(NoVerdict::TimedOut),
        }
    };
    if lowat > 1 {
        set_rcvlowat(fd, 1);
    }
    result
}

/// Takes exactly `len` bytes that an earlier peek saw, discarding them.
pub fn consume(stream: &TcpStream, len: usize) -> io::Result<()> {
    let mut scratch = [0u8; 1024];
    let mut left = len;
    while left > 0 {
        let want = left.min(scratch.len());
        match recv(stream.as_raw_fd(), &mut scratch[..want], 0)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => left -= n,
        }
    }
    Ok(())
}

/// One non-blocking recv(2).
fn recv(fd: RawFd, buf: &mut [u8], flags: i32) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length; `fd` is an open socket owned by the caller.
    let n = unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            flags | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Sets `SO_RCVLOWAT`; on failure poll simply wakes earlier and the peek loop sees no new byte.
fn set_rcvlowat(fd: RawFd, bytes: usize) {
    let v = bytes as libc::c_int;
    // SAFETY: setsockopt reads one c_int from a valid pointer; `fd` is an open socket.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
