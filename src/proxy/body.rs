//! Moving a message body from one socket to another through the reading side's buffer.
//!
//! Memory per connection stays at one buffer whatever the body size: bytes are forwarded as
//! they arrive. Chunked bodies are decoded and re-encoded, never passed through raw.

use super::buffered::{write_all, Buffered, Stream};
use super::error::{Kind, ProxyError, Step};
use crate::http::h1::{ChunkedDecoder, Event};
use monoio::time::Instant;
use std::io::Write;
use std::time::Duration;

/// Which side we read the body from, for error attribution.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum From {
    Client,
    Upstream,
}

impl From {
    fn read_err(self, kind: Kind) -> ProxyError {
        match self {
            From::Client => ProxyError::client(Step::ReadRequestBody, kind),
            From::Upstream => ProxyError::upstream(Step::ReadResponseBody, kind),
        }
    }

    fn write_err(self, e: &std::io::Error) -> ProxyError {
        match self {
            From::Client => ProxyError::upstream_io(Step::WriteRequest, e),
            From::Upstream => ProxyError::client_io(Step::WriteResponse, e),
        }
    }
}

/// Bounds on one body copy.
pub struct Copy {
    pub from: From,
    /// Longest wait for the next bytes from the reading side.
    pub read_timeout: Duration,
    /// Largest buffer the reading side may grow to.
    pub max_buffer: usize,
    /// Most body bytes allowed (chunked request bodies against `max_body`).
    pub limit: Option<u64>,
    /// Longest chunk extension accepted per chunk line.
    pub max_chunk_ext: usize,
    /// Bytes written to the destination so far, framing included (the access log's `bytes`).
    pub sent: std::cell::Cell<u64>,
}

impl Copy {
    async fn fill(&self, src: &mut Buffered) -> Result<(), ProxyError> {
        let deadline = Instant::now() + self.read_timeout;
        match monoio::time::timeout_at(deadline, src.fill(self.max_buffer)).await {
            Ok(Ok(0)) => Err(self.from.read_err(Kind::Closed)),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(match self.from {
                From::Client => ProxyError::client_io(Step::ReadRequestBody, &e),
                From::Upstream => ProxyError::upstream_io(Step::ReadResponseBody, &e),
            }),
            Err(_) => Err(self.from.read_err(Kind::Timeout)),
        }
    }

    /// Copies exactly `n` bytes.
    pub async fn length(
        &self,
        src: &mut Buffered,
        dst: &mut Stream,
        mut n: u64,
    ) -> Result<(), ProxyError> {
        while n > 0 {
            if src.buffered().is_empty() {
                self.fill(src).await?;
            }
            let take = (src.buffered().len() as u64).min(n) as usize;
            src.forward(take, dst)
                .await
                .map_err(|e| self.from.write_err(&e))?;
            self.count(take);
            n -= take as u64;
        }
        Ok(())
    }

    /// Copies until the reading side closes; `chunk` re-encodes as chunked for the client.
    pub async fn until_close(
        &self,
        src: &mut Buffered,
        dst: &mut Stream,
        out: &mut Vec<u8>,
        chunk: bool,
    ) -> Result<(), ProxyError> {
        loop {
            if src.buffered().is_empty() {
                match self.fill(src).await {
                    Err(ProxyError {
                        kind: Kind::Closed, ..
                    }) => break,
                    r => r?,
                }
            }
            if chunk {
                out.clear();
                let data = src.buffered();
                let _ = write!(out, "{:x}\r\n", data.len());
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
                let n = data.len();
                src.consume(n);
                self.write(dst, out).await?;
            } else {
                let n = src.buffered().len();
                src.forward(n, dst)
                    .await
                    .map_err(|e| self.from.write_err(&e))?;
                self.count(n);
            }
        }
        if chunk {
            out.clear();
            out.extend_from_slice(b"0\r\n\r\n");
            self.write(dst, out).await?;
        }
        Ok(())
    }

    /// Decodes a chunked body and writes it re-encoded (`rechunk`) or raw (for HTTP/1.0 clients).
    /// Trailer fields are forwarded when re-encoding and `trailers` allows them.
    pub async fn chunked(
        &self,
        src: &mut Buffered,
        dst: &mut Stream,
        out: &mut Vec<u8>,
        rechunk: bool,
        trailers: bool,
    ) -> Result<(), ProxyError> {
        let mut decoder = ChunkedDecoder::with_max_ext(self.max_chunk_ext);
        let mut total: u64 = 0;
        out.clear();
        let mut trailer_started = false;
        loop {
            if src.buffered().is_empty() {
                self.flush(dst, out).await?;
                self.fill(src).await?;
            }
            let (used, event) = decoder
                .decode(src.buffered())
                .map_err(|_| self.from.read_err(Kind::BadChunk))?;
            match event {
                Event::Data(range) => {
                    let data = &src.buffered()[range];
                    total += data.len() as u64;
                    if self.limit.is_some_and(|l| total > l) {
                        return Err(self.from.read_err(Kind::BodyTooLarge));
                    }
                    if rechunk {
                        let _ = write!(out, "{:x}\r\n", data.len());
                        out.extend_from_slice(data);
                        out.extend_from_slice(b"\r\n");
                    } else {
                        out.extend_from_slice(data);
                    }
                    src.consume(used);
                    if out.len() >= self.max_buffer {
                        self.flush(dst, out).await?;
                    }
                }
                Event::Trailer(range) => {
                    if rechunk && trailers {
                        if !trailer_started {
                            out.extend_from_slice(b"0\r\n");
                            trailer_started = true;
                        }
                        out.extend_from_slice(&src.buffered()[range]);
                        out.extend_from_slice(b"\r\n");
                    }
                    src.consume(used);
                }
                Event::NeedMore => {
                    src.consume(used);
                    self.flush(dst, out).await?;
                    self.fill(src).await?;
                }
                Event::Done => {
                    src.consume(used);
                    if rechunk {
                        if !trailer_started {
                            out.extend_from_slice(b"0\r\n");
                        }
                        out.extend_from_slice(b"\r\n");
                    }
                    return self.flush(dst, out).await;
                }
            }
        }
    }

    async fn flush(&self, dst: &mut Stream, out: &mut Vec<u8>) -> Result<(), ProxyError> {
        if out.is_empty() {
            return Ok(());
        }
        self.write(dst, out).await?;
        out.clear();
        Ok(())
    }

    async fn write(&self, dst: &mut Stream, out: &mut Vec<u8>) -> Result<(), ProxyError> {
        let (res, buf) = write_all(dst, std::mem::take(out)).await;
        *out = buf;
        res.map_err(|e| self.from.write_err(&e))?;
        self.count(out.len());
        Ok(())
    }

    fn count(&self, n: usize) {
        self.sent.set(self.sent.get() + n as u64);
    }
}
