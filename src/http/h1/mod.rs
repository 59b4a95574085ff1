//! HTTP/1.1 wire format, sans-I/O: request and response heads, body framing, chunked coding.
//!
//! Everything works on byte slices the connection owns: `httparse` tokenizes a head in place, then
//! our own checks enforce RFC 9112 strictly ("reject, never guess"), because a proxy that reads a
//! message differently from its peers is a request-smuggling vector. Parsed heads keep offsets
//! into the read buffer (no copy, no per-request allocation once their `Vec`s have warmed up).
//!
//! Choices the RFCs leave open, made once here:
//! - a version other than HTTP/1.0 or HTTP/1.1 is 400 (not 505): we cannot tell a real
//!   HTTP/2.0 client from garbage, and neither may continue on this connection;
//! - Transfer-Encoding in an HTTP/1.0 message is an error (RFC 9112 §6.1 calls its framing faulty);
//! - an unknown transfer-coding in a request is 501; in a response it only matters if final;
//! - `Expect` other than `100-continue` is 417;
//! - a method longer than [`MAX_METHOD_LEN`] is 501, which also bounds the early 414 check;
//! - `#` in a request-target is 400 (no fragment in RFC 9112 §3.2; peers disagree on stripping it).

mod chunk_encode;
mod chunk_ext;
mod chunked;
mod connection;
mod fields;
mod framing;
mod limits;
mod method;
mod request;
mod response;
mod target;
mod trailer;

pub use chunk_encode::{encode_chunk, encode_last_chunk, ChunkHeader, CHUNK_END, LAST_CHUNK};
pub use chunked::{ChunkError, ChunkedDecoder, Event, MAX_CHUNK_EXT, MAX_CHUNK_SIZE_DIGITS};
pub use connection::{Connection, Upgrade};
pub use fields::Field;
pub use framing::Framing;
pub use limits::HeadLimits;
pub use method::{Method, MAX_METHOD_LEN};
pub use request::RequestHead;
pub use response::ResponseHead;
pub use target::TargetForm;
pub use trailer::MAX_TRAILER_SECTION;

/// Header slots live on the parser's stack; the config refuses `max_headers` above this.
pub use crate::config::defaults::MAX_HEADERS_CEILING;

/// The two protocol versions an HTTP/1 connection may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`: close by default, no Transfer-Encoding.
    Http10,
    /// `HTTP/1.1`: persistent by default, Host required.
    Http11,
}

impl Version {
    /// httparse reports the minor digit only; it accepts nothing but `HTTP/1.0` and `HTTP/1.1`.
    pub(crate) fn from_minor(minor: u8) -> Option<Version> {
        match minor {
            0 => Some(Version::Http10),
            1 => Some(Version::Http11),
            _ => None,
        }
    }

    /// The version as written on the wire, for forwarding and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// Why a head was refused; each variant names the one rule the peer broke.
///
/// [`HeadError::status`] is what a client gets for its request; for an upstream response head
/// any error means the proxy answers 502 instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Method, spacing or line shape of the request line is wrong.
    RequestLine,
    /// Method longer than [`MAX_METHOD_LEN`].
    MethodTooLong,
    /// Request-target has a byte or a form RFC 9112 §3.2 does not allow.
    Target,
    /// Request-target longer than [`HeadLimits::max_target`].
    TargetTooLong,
    /// Not `HTTP/1.0` or `HTTP/1.1`.
    Version,
    /// Status line is malformed or the code is outside 100..=599.
    StatusLine,
    /// A line ends in LF without CR (RFC 9112 §2.2 allows rejecting; we do).
    BareLf,
    /// Field name is empty or has a byte outside the RFC 9110 token set.
    FieldName,
    /// Whitespace between field name and colon (RFC 9112 §5.1 requires 400).
    WhitespaceBeforeColon,
    /// A field line starts with SP/HTAB (obs-fold, RFC 9112 §5.2).
    ObsFold,
    /// CR, LF, NUL or another control byte inside a field value.
    FieldValue,
    /// Head longer than [`HeadLimits::max_head`].
    HeadTooLarge,
    /// More field lines than [`HeadLimits::max_headers`].
    TooManyFields,
    /// Both Content-Length and Transfer-Encoding (RFC 9112 §6.3 rule 3).
    ContentLengthWithTransferEncoding,
    /// Several Content-Length fields or a list value, even identical ones.
    MultipleContentLength,
    /// Content-Length not 1*DIGIT or over `u64::MAX`.
    ContentLength,
    /// Transfer-Encoding empty, with an empty element, or with a non-token coding.
    TransferEncoding,
    /// `chunked` is not the final transfer-coding of a request.
    ChunkedNotLast,
    /// `chunked` applied more than once (RFC 9112 §7).
    ChunkedTwice,
    /// A request transfer-coding we do not implement (RFC 9112 §6.1: 501).
    UnknownTransferCoding,
    /// Transfer-Encoding in an HTTP/1.0 message (RFC 9112 §6.1: faulty framing).
    TransferEncodingHttp10,
    /// HTTP/1.1 request without Host (RFC 9112 §3.2).
    MissingHost,
    /// More than one Host field.
    MultipleHost,
    /// Host is not `uri-host [ ":" port ]`.
    Host,
    /// A Connection option that is not a token.
    ConnectionOption,
    /// An expectation other than `100-continue`.
    Expectation,
}

impl HeadError {
    /// The status a client gets for a request broken this way.
    pub fn status(self) -> u16 {
        use HeadError::*;
        match self {
            TargetTooLong => 414,
            HeadTooLarge | TooManyFields => 431,
            MethodTooLong | UnknownTransferCoding => 501,
            Expectation => 417,
            _ => 400,
        }
    }

    /// The rule broken, short enough for a log line.
    pub fn reason(self) -> &'static str {
        use HeadError::*;
        match self {
            RequestLine => "malformed request line",
            MethodTooLong => "method too long",
            Target => "invalid request-target",
            TargetTooLong => "request-target too long",
            Version => "unsupported http version",
            StatusLine => "malformed status line",
            BareLf => "line not ended by crlf",
            FieldName => "invalid field name",
            WhitespaceBeforeColon => "whitespace before colon",
            ObsFold => "obsolete line folding",
            FieldValue => "invalid field value",
            HeadTooLarge => "head too large",
            TooManyFields => "too many header fields",
            ContentLengthWithTransferEncoding => "content-length with transfer-encoding",
            MultipleContentLength => "several content-length values",
            ContentLength => "invalid content-length",
            TransferEncoding => "malformed transfer-encoding",
            ChunkedNotLast => "chunked is not the final transfer-coding",
            ChunkedTwice => "chunked applied twice",
            UnknownTransferCoding => "unknown transfer-coding",
            TransferEncodingHttp10 => "transfer-encoding in http/1.0",
            MissingHost => "missing host",
            MultipleHost => "several host fields",
            Host => "invalid host",
            ConnectionOption => "invalid connection option",
            Expectation => "unsupported expectation",
        }
    }
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for HeadError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_rfc() {
        assert_eq!(HeadError::TargetTooLong.status(), 414);
        assert_eq!(HeadError::HeadTooLarge.status(), 431);
        assert_eq!(HeadError::TooManyFields.status(), 431);
        assert_eq!(HeadError::UnknownTransferCoding.status(), 501);
        assert_eq!(HeadError::Expectation.status(), 417);
        assert_eq!(HeadError::ContentLengthWithTransferEncoding.status(), 400);
        assert_eq!(
            HeadError::ContentLengthWithTransferEncoding.to_string(),
            "content-length with transfer-encoding"
        );
    }
}
