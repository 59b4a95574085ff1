//! A connection (plain or TLS) and its read buffer: bytes read but not yet used are `buf[pos..]`.
//!
//! monoio's I/O takes buffers by value (io_uring owns them while an operation runs), so the
//! buffer is moved into each read or write and put back after.

pub use crate::tls::Stream;
use std::io;

pub struct Buffered {
    pub stream: Stream,
    buf: Vec<u8>,
    pos: usize,
}

impl Buffered {
    /// A connection with no buffer yet; one is lent when there is data to read.
    pub fn new(stream: impl Into<Stream>) -> Buffered {
        Buffered {
            stream: stream.into(),
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// Bytes read and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Marks `n` buffered bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Lends a buffer for reading; no-op if one is already held.
    pub fn lend(&mut self, buf: Vec<u8>) -> Option<Vec<u8>> {
        if self.buf.capacity() == 0 {
            self.buf = buf;
            self.pos = 0;
            None
        } else {
            Some(buf)
        }
    }

    /// Hands the buffer back when nothing is buffered, so an idle connection holds none.
    pub fn reclaim(&mut self) -> Option<Vec<u8>> {
        if self.buffered().is_empty() && self.buf.capacity() > 0 {
            self.pos = 0;
            Some(std::mem::take(&mut self.buf))
        } else {
            None
        }
    }

    /// Moves unconsumed bytes to the front so offsets from a parse start at 0.
    pub fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Reads more bytes after the buffered ones; the buffer grows to at most `max` bytes.
    /// Returns 0 at end of stream, or when the buffer is full at `max`.
    pub async fn fill(&mut self, max: usize) -> io::Result<usize> {
        if self.pos > 0 && self.buf.len() == self.buf.capacity() {
            self.compact();
        }
        if self.buf.len() == self.buf.capacity() {
            let room = max
                .saturating_sub(self.buf.len())
                .min(self.buf.capacity().max(4096));
            if room == 0 {
                return Ok(0);
            }
            self.buf.reserve_exact(room);
        }
        let buf = std::mem::take(&mut self.buf);
        let (res, buf) = self.stream.read_into(buf).await;
        self.buf = buf;
        res
    }

    /// Writes buffered bytes `[0, n)` to `to`, then consumes them.
    pub async fn forward(&mut self, n: usize, to: &mut Stream) -> io::Result<()> {
        let (start, end) = (self.pos, self.pos + n.min(self.buffered().len()));
        let buf = std::mem::take(&mut self.buf);
        let (res, buf) = to.write_range(buf, start..end).await;
        self.buf = buf;
        res?;
        self.consume(end - start);
        Ok(())
    }
}

/// Writes all of `out` and gives the buffer back.
pub async fn write_all(stream: &mut Stream, out: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
    let len = out.len();
    stream.write_range(out, 0..len).await
}
