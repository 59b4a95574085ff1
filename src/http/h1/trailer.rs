//! The trailer section ending a chunked body (RFC 9112 §7.1.2), one complete field line at a time.

use super::fields::parse_line;
use super::{ChunkError, HeadError};
use std::ops::Range;

/// Trailer octets per message, CRLFs included; real trailers (checksums, gRPC status) are tiny.
pub const MAX_TRAILER_SECTION: usize = 16 * 1024;

/// One step through the trailer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Line {
    /// A valid field line at these offsets, CRLF excluded.
    Field(Range<usize>),
    /// The empty line ending the section (and the message).
    End,
    /// No LF yet: the line must be presented again, whole, with more bytes.
    Partial,
}

/// Progress through one trailer section.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Trailers {
    /// Octets of complete lines so far, for [`MAX_TRAILER_SECTION`].
    len: usize,
    /// How much of the pending partial line was already searched for LF, so re-scans stay linear.
    scanned: usize,
}

impl Trailers {
    /// Reads the line starting `input`; returns how many octets it used (0 while `Partial`).
    pub(super) fn line(&mut self, input: &[u8]) -> Result<(usize, Line), ChunkError> {
        let from = self.scanned.min(input.len());
        let rest = input.get(from..).unwrap_or_default();
        let Some(lf) = rest.iter().position(|&b| b == b'\n').map(|i| from + i) else {
            self.scanned = input.len();
            return if self.len.saturating_add(input.len()) > MAX_TRAILER_SECTION {
                Err(ChunkError::TrailerTooLarge)
            } else {
                Ok((0, Line::Partial))
            };
        };
        self.scanned = 0;
        self.len = self.len.saturating_add(lf + 1);
        if self.len > MAX_TRAILER_SECTION {
            return Err(ChunkError::TrailerTooLarge);
        }
        let line = input.get(..lf).unwrap_or_default();
        let line = line
            .strip_suffix(b"\r")
            .ok_or(ChunkError::Trailer(HeadError::BareLf))?;
        if line.is_empty() {
            return Ok((lf + 1, Line::End));
        }
        parse_line(line).map_err(ChunkError::Trailer)?;
        Ok((lf + 1, Line::Field(0..line.len())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_end() {
        let mut t = Trailers::default();
        let input = b"Checksum: abc\r\n\r\nnext";
        assert_eq!(t.line(input), Ok((15, Line::Field(0..13))));
        assert_eq!(t.line(&input[15..]), Ok((2, Line::End)));
    }

    #[test]
    fn partial_line_is_not_consumed() {
        let mut t = Trailers::default();
        assert_eq!(t.line(b"X: y"), Ok((0, Line::Partial)));
        assert_eq!(t.line(b"X: y\r"), Ok((0, Line::Partial)));
        assert_eq!(t.line(b"X: y\r\n"), Ok((6, Line::Field(0..4))));
    }

    #[test]
    fn invalid_lines() {
        let bad = |input: &[u8]| Trailers::default().line(input).err();
        let trailer = |e| Some(ChunkError::Trailer(e));
        assert_eq!(bad(b"X: y\n"), trailer(HeadError::BareLf));
        assert_eq!(bad(b"\n"), trailer(HeadError::BareLf));
        assert_eq!(bad(b" folded\r\n"), trailer(HeadError::ObsFold));
        assert_eq!(bad(b"X : y\r\n"), trailer(HeadError::WhitespaceBeforeColon));
        assert_eq!(bad(b"X(: y\r\n"), trailer(HeadError::FieldName));
        assert_eq!(bad(b"X: a\0b\r\n"), trailer(HeadError::FieldValue));
        assert_eq!(bad(b"X: a\rb\r\n"), trailer(HeadError::FieldValue));
    }

    #[test]
    fn section_is_bounded() {
        let mut t = Trailers::default();
        let line = format!("X: {}\r\n", "a".repeat(1000));
        let mut used = 0;
        let err = loop {
            match t.line(line.as_bytes()) {
                Ok((n, Line::Field(_))) => used += n,
                Ok(other) => panic!("{other:?}"),
                Err(e) => break e,
            }
        };
        assert_eq!(err, ChunkError::TrailerTooLarge);
        assert!(used <= MAX_TRAILER_SECTION);
        let huge = vec![b'a'; MAX_TRAILER_SECTION + 1];
        assert_eq!(
            Trailers::default().line(&huge),
            Err(ChunkError::TrailerTooLarge)
        );
    }
}
