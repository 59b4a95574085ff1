//! Chunked transfer coding (RFC 9112 §7.1): an incremental, zero-copy decoder.
//!
//! The decoder never copies: it tells the caller which octets of the slice it was given are data
//! or trailer lines. Size lines, extensions and CRLFs are consumed as they come, so any split of
//! the input works; only a trailer field line is held back until its LF arrives, so that each
//! [`Event::Trailer`] names one whole line the proxy can forward or drop.

use super::chunk_ext::{self, Ext, Step};
use super::trailer::{Line, Trailers};
use super::HeadError;
use std::ops::Range;

/// Hex digits in a chunk size: 16 fill a `u64`, so a 17th is refused even if it is a leading 0.
pub const MAX_CHUNK_SIZE_DIGITS: usize = 16;

/// Octets after the size on one chunk line (extensions); nobody needs more, a flood is refused.
pub const MAX_CHUNK_EXT: usize = crate::config::defaults::MAX_CHUNK_EXT as usize;

/// What the decoder found; ranges index the slice given to [`ChunkedDecoder::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Body octets to forward.
    Data(Range<usize>),
    /// One complete trailer field line, CRLF excluded, already validated.
    Trailer(Range<usize>),
    /// Everything usable was consumed; call again with the unconsumed rest plus more bytes.
    NeedMore,
    /// The body ended; octets after the consumed count belong to the next message.
    Done,
}

/// Why a chunked body was refused: 400 from a client, 502 from an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// The size is not `1*HEXDIG` followed by `;`, BWS `;` or CRLF.
    Size,
    /// More than [`MAX_CHUNK_SIZE_DIGITS`] hex digits.
    SizeTooLong,
    /// A chunk extension breaks the RFC 9112 §7.1.1 grammar.
    Extension,
    /// Extensions longer than [`MAX_CHUNK_EXT`].
    ExtensionTooLong,
    /// A chunk-size line ends in something other than CRLF.
    LineEnding,
    /// Chunk data not followed by exactly CRLF.
    DataNotFollowedByCrlf,
    /// A trailer line breaks a field rule (the same rules as header fields).
    Trailer(HeadError),
    /// Trailer section longer than [`super::MAX_TRAILER_SECTION`].
    TrailerTooLarge,
}

impl ChunkError {
    /// The rule broken, short enough for a log line.
    pub fn reason(self) -> &'static str {
        match self {
            ChunkError::Size => "invalid chunk size",
            ChunkError::SizeTooLong => "chunk size too long",
            ChunkError::Extension => "invalid chunk extension",
            ChunkError::ExtensionTooLong => "chunk extension too long",
            ChunkError::LineEnding => "chunk line not ended by crlf",
            ChunkError::DataNotFollowedByCrlf => "chunk data not followed by crlf",
            ChunkError::Trailer(e) => e.reason(),
            ChunkError::TrailerTooLarge => "trailer section too large",
        }
    }
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ChunkError {}

/// Where the decoder is inside the body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// On a chunk-size line or the CRLF after data: consumed one octet at a time.
    Line(LineState),
    /// Inside chunk data.
    Data { remaining: u64 },
    /// After the last chunk: trailer lines, then an empty line.
    Trailers(Trailers),
    /// The final CRLF was consumed.
    Done,
}

/// Where the decoder is on a line it consumes octet by octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    /// Reading size digits.
    Size { digits: usize, size: u64 },
    /// After the digits: extensions (or nothing) up to CR; `ext` counts their octets.
    Ext { size: u64, at: Ext, ext: usize },
    /// CR of the size line seen; LF must follow.
    SizeLf { size: u64 },
    /// Data over; CR must follow.
    DataCr,
    /// CR after data seen; LF must follow.
    DataLf,
}

/// The state at the start of every chunk.
const CHUNK_START: State = State::Line(LineState::Size { digits: 0, size: 0 });

/// Decodes one chunked body; create a new one (or [`ChunkedDecoder::reset`]) per message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: State,
    /// Longest extension text accepted per chunk line.
    max_ext: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: CHUNK_START,
            max_ext: MAX_CHUNK_EXT,
        }
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that refuses chunk extensions longer than `max_ext` octets per line.
    pub fn with_max_ext(max_ext: usize) -> Self {
        ChunkedDecoder {
            state: CHUNK_START,
            max_ext,
        }
    }

    /// Readies the decoder for the next body.
    pub fn reset(&mut self) {
        self.state = CHUNK_START;
    }

    /// Whether the whole body, trailers included, has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from the start of `input`: returns how many octets were consumed and one event.
    ///
    /// Consumed octets must not be presented again; unconsumed ones must, with more appended.
    /// After an error the body is unusable and the connection must be closed.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Event), ChunkError> {
        let mut pos = 0;
        loop {
            match &mut self.state {
                State::Data { remaining } => {
                    let available = input.len().saturating_sub(pos);
                    if available == 0 {
                        return Ok((pos, Event::NeedMore));
                    }
                    let n = usize::try_from(*remaining).map_or(available, |r| r.min(available));
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.state = State::Line(LineState::DataCr);
                    }
                    return Ok((pos + n, Event::Data(pos..pos + n)));
                }
                State::Trailers(trailers) => {
                    let rest = input.get(pos..).unwrap_or_default();
                    let (used, line) = trailers.line(rest)?;
                    let event = match line {
                        Line::Field(r) => Event::Trailer(r.start + pos..r.end + pos),
                        Line::Partial => Event::NeedMore,
                        Line::End => {
                            self.state = State::Done;
                            Event::Done
                        }
                    };
                    return Ok((pos + used, event));
                }
                State::Done => return Ok((pos, Event::Done)),
                State::Line(line) => {
                    let Some(&b) = input.get(pos) else {
                        return Ok((pos, Event::NeedMore));
                    };
                    self.state = line_byte(*line, b, self.max_ext)?;
                    pos += 1;
                }
            }
        }
    }
}

/// Advances through a size line or a data CRLF by one octet.
fn line_byte(line: LineState, b: u8, max_ext: usize) -> Result<State, ChunkError> {
    let next = match line {
        LineState::Size { digits, size } => match (b as char).to_digit(16) {
            Some(_) if digits == MAX_CHUNK_SIZE_DIGITS => return Err(ChunkError::SizeTooLong),
            // At most 16 digits, so the shift never drops a set bit.
            Some(d) => LineState::Size {
                digits: digits + 1,
                size: (size << 4) | u64::from(d),
            },
            None if digits == 0 => return Err(ChunkError::Size),
            None => ext_byte(size, Ext::Start, 0, b, max_ext)?,
        },
        LineState::Ext { size, at, ext } => ext_byte(size, at, ext, b, max_ext)?,
        LineState::SizeLf { size } => {
            return match (b, size) {
                (b'\n', 0) => Ok(State::Trailers(Trailers::default())),
                (b'\n', _) => Ok(State::Data { remaining: size }),
                _ => Err(ChunkError::LineEnding),
            };
        }
        LineState::DataCr if b == b'\r' => LineState::DataLf,
        LineState::DataLf if b == b'\n' => return Ok(CHUNK_START),
        LineState::DataCr | LineState::DataLf => return Err(ChunkError::DataNotFollowedByCrlf),
    };
    Ok(State::Line(next))
}

/// Feeds one octet after the size digits to the extension grammar.
fn ext_byte(
    size: u64,
    at: Ext,
    ext: usize,
    b: u8,
    max_ext: usize,
) -> Result<LineState, ChunkError> {
    match chunk_ext::step(at, b) {
        Step::LineEnd => Ok(LineState::SizeLf { size }),
        Step::Next(_) if ext >= max_ext => Err(ChunkError::ExtensionTooLong),
        Step::Next(at) => Ok(LineState::Ext {
            size,
            at,
            ext: ext + 1,
        }),
        Step::Invalid if b == b'\n' => Err(ChunkError::LineEnding),
        // Right after the digits, a stray octet is part of a malformed size (`0x1`, `1_0`).
        Step::Invalid if matches!(at, Ext::Start | Ext::BeforeSemi) => Err(ChunkError::Size),
        Step::Invalid => Err(ChunkError::Extension),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::h1::{encode_chunk, encode_last_chunk};

    /// What a whole body decoded to: data, trailer lines, and octets consumed.
    #[derive(Debug, Default, PartialEq)]
    struct Decoded {
        data: Vec<u8>,
        trailers: Vec<Vec<u8>>,
        used: usize,
    }

    /// Feeds `input` in pieces of `step` octets the way a connection would, keeping unconsumed
    /// octets for the next call; `None` if the body never ended.
    fn decode(input: &[u8], step: usize) -> Result<Option<Decoded>, ChunkError> {
        let (mut dec, mut out) = (ChunkedDecoder::new(), Decoded::default());
        let mut arrived = 0;
        loop {
            let buf = &input[out.used..arrived];
            let (n, event) = dec.decode(buf)?;
            match event {
                Event::Data(r) => out.data.extend_from_slice(&buf[r]),
                Event::Trailer(r) => out.trailers.push(buf[r].to_vec()),
                Event::Done => {
                    out.used += n;
                    return Ok(Some(out));
                }
                Event::NeedMore if arrived == input.len() => return Ok(None),
                Event::NeedMore => arrived = (arrived + step).min(input.len()),
            }
            out.used += n;
        }
    }

    #[test]
    fn split_anywhere_gives_the_same_result() {
        let body = b"5\r\nhello\r\n1a;name=\"v;al\" ; x\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nA: 1\r\nB: two\r\n\r\nNEXT";
        let whole = decode(body, body.len()).unwrap().unwrap();
        assert_eq!(whole.data, b"helloabcdefghijklmnopqrstuvwxyz");
        assert_eq!(whole.trailers, [b"A: 1".to_vec(), b"B: two".to_vec()]);
        assert_eq!(
            whole.used,
            body.len() - 4,
            "the next message is not consumed"
        );
        for step in 1..body.len() {
            assert_eq!(
                decode(body, step).unwrap().as_ref(),
                Some(&whole),
                "step {step}"
            );
        }
    }

    #[test]
    fn simple_bodies() {
        let got = decode(b"0\r\n\r\n", 100).unwrap().unwrap();
        assert_eq!((got.data.len(), got.used), (0, 5));
        let got = decode(b"000;ext\r\n\r\nGET", 100).unwrap().unwrap();
        assert_eq!(got.used, 11);
        let got = decode(b"A\r\n0123456789\r\nf\r\n0123456789abcde\r\n0\r\n\r\n", 100).unwrap();
        assert_eq!(got.unwrap().data.len(), 25);
        assert_eq!(decode(b"5\r\nhel", 100), Ok(None));
    }

    #[test]
    fn decoder_stays_done() {
        let mut dec = ChunkedDecoder::new();
        assert_eq!(dec.decode(b"0\r\n\r\nrest"), Ok((5, Event::Done)));
        assert!(dec.is_done());
        assert_eq!(dec.decode(b"rest"), Ok((0, Event::Done)));
        dec.reset();
        assert_eq!(dec.decode(b"1\r\nx"), Ok((4, Event::Data(3..4))));
    }

    #[test]
    fn largest_size_is_accepted() {
        let mut dec = ChunkedDecoder::new();
        let (n, event) = dec.decode(b"ffffffffffffffff\r\nab").unwrap();
        assert_eq!((n, event), (20, Event::Data(18..20)));
        assert_eq!(dec.decode(b"cd"), Ok((2, Event::Data(0..2))));
    }

    #[test]
    fn invalid_bodies() {
        use ChunkError::*;
        let too_long = format!("1;{}\r\n", "a".repeat(MAX_CHUNK_EXT));
        let cases: [(&str, &[u8], ChunkError); 18] = [
            ("0x prefix", b"0x1\r\na\r\n", Size),
            ("minus", b"-1\r\n", Size),
            ("plus", b"+1\r\n", Size),
            ("underscore", b"1_0\r\n", Size),
            ("leading space", b" 1\r\n", Size),
            ("trailing space", b"1 \r\n", Size),
            ("empty size", b"\r\n", Size),
            ("17 digits", b"00000000000000001\r\n", SizeTooLong),
            ("bare lf after size", b"1\na\r\n", LineEnding),
            ("cr without lf", b"1\rXa\r\n", LineEnding),
            ("bad extension", b"1;a b\r\n", Extension),
            ("extension too long", too_long.as_bytes(), ExtensionTooLong),
            ("data then junk", b"1\r\nab\r\n", DataNotFollowedByCrlf),
            (
                "data then bare lf",
                b"1\r\na\n0\r\n\r\n",
                DataNotFollowedByCrlf,
            ),
            (
                "data then cr only",
                b"1\r\na\r0\r\n\r\n",
                DataNotFollowedByCrlf,
            ),
            (
                "trailer obs-fold",
                b"0\r\nA: b\r\n c\r\n\r\n",
                Trailer(HeadError::ObsFold),
            ),
            (
                "trailer bad name",
                b"0\r\nA b: c\r\n\r\n",
                Trailer(HeadError::FieldName),
            ),
            ("final bare lf", b"0\r\n\n", Trailer(HeadError::BareLf)),
        ];
        for (name, body, want) in cases {
            assert_eq!(decode(body, body.len()), Err(want), "{name}");
            assert_eq!(decode(body, 1), Err(want), "{name}, one byte at a time");
        }
        assert_eq!(ChunkError::Size.to_string(), "invalid chunk size");
    }

    #[test]
    fn encoded_bodies_decode_back() {
        let mut body = Vec::new();
        for piece in [&b"hello"[..], &[7u8; 300], b"x"] {
            encode_chunk(&mut body, piece);
        }
        encode_last_chunk(&mut body, [&b"T: v"[..]]);
        let got = decode(&body, 7).unwrap().unwrap();
        assert_eq!(
            (got.data.len(), got.trailers.len(), got.used),
            (306, 1, body.len())
        );
    }
}
