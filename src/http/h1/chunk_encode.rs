//! Writing chunked coding (RFC 9112 §7.1) without allocating: the proxy re-chunks bodies.

use super::MAX_CHUNK_SIZE_DIGITS;
use std::io::Write;

/// The last-chunk line; trailer lines and a final CRLF follow it (see [`encode_last_chunk`]).
pub const LAST_CHUNK: &[u8] = b"0\r\n";

/// The CRLF closing every chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";

/// A chunk-size line for `size` octets of data, built on the stack; `0` would end the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    buf: [u8; MAX_CHUNK_SIZE_DIGITS + 2],
    len: usize,
}

impl ChunkHeader {
    /// Formats `{size:x}\r\n`.
    pub fn new(size: u64) -> Self {
        let mut buf = [0u8; MAX_CHUNK_SIZE_DIGITS + 2];
        let unused = {
            let mut cursor = &mut buf[..];
            // 16 hex digits and CRLF always fit, so the write cannot fail.
            let _ = write!(cursor, "{size:x}\r\n");
            cursor.len()
        };
        ChunkHeader {
            buf,
            len: buf.len() - unused,
        }
    }

    /// The line's octets, to write before the data.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// Appends one chunk carrying `data`; empty data writes nothing, since `0` would end the body.
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(ChunkHeader::new(data.len() as u64).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(CHUNK_END);
}

/// Appends the last chunk, each trailer field line (given without CRLF), and the final CRLF.
pub fn encode_last_chunk<'a>(out: &mut Vec<u8>, trailers: impl IntoIterator<Item = &'a [u8]>) {
    out.extend_from_slice(LAST_CHUNK);
    for line in trailers {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder() {
        assert_eq!(ChunkHeader::new(0).as_bytes(), b"0\r\n");
        assert_eq!(ChunkHeader::new(26).as_bytes(), b"1a\r\n");
        assert_eq!(
            ChunkHeader::new(u64::MAX).as_bytes(),
            b"ffffffffffffffff\r\n"
        );
        let mut out = Vec::new();
        encode_last_chunk(&mut out, [&b"A: 1"[..], b"B: 2"]);
        assert_eq!(out, b"0\r\nA: 1\r\nB: 2\r\n\r\n");
        out.clear();
        encode_last_chunk(&mut out, []);
        assert_eq!(out, b"0\r\n\r\n");
    }

    #[test]
    fn chunks() {
        let mut out = Vec::new();
        encode_chunk(&mut out, b"");
        assert!(out.is_empty(), "an empty chunk would end the body");
        encode_chunk(&mut out, &[b'x'; 17]);
        assert_eq!(&out[..4], b"11\r\n");
        assert_eq!(out.len(), 4 + 17 + 2);
        assert!(out.ends_with(b"x\r\n"));
    }
}
