//! Response heads from upstreams (RFC 9112 §4): as strict as requests, since any error means 502.

use super::connection::Connection;
use super::fields::{check_crlf, collect, diagnose, is_value_byte, Field};
use super::framing::{Framing, FramingFields};
use super::{HeadError, HeadLimits, Method, Version, MAX_HEADERS_CEILING};
use std::ops::Range;

/// Offset of the status code in the status line: after `HTTP/1.x` and one SP.
const CODE_AT: usize = "HTTP/1.1 ".len();

/// A parsed response head; keep one per upstream connection so its `Vec`s are reused.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    len: usize,
    version: Version,
    status: u16,
    reason: Range<usize>,
    fields: Vec<Field>,
    connection: Connection,
    framing: FramingFields,
    request_method: Method,
}

impl Default for ResponseHead {
    fn default() -> Self {
        ResponseHead {
            len: 0,
            version: Version::Http11,
            status: 0,
            reason: 0..0,
            fields: Vec::new(),
            connection: Connection::default(),
            framing: FramingFields::default(),
            request_method: Method::Get,
        }
    }
}

impl ResponseHead {
    /// An empty head, ready for [`ResponseHead::parse`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the head at the start of `buf`: `Ok(Some(len))` when complete, `Ok(None)` for more.
    ///
    /// The request's method decides the body framing (RFC 9112 §6.3), so it is given here.
    /// `limits.max_target` is ignored. Any error means the upstream is broken: answer 502.
    pub fn parse(
        &mut self,
        buf: &[u8],
        limits: &HeadLimits,
        request_method: Method,
    ) -> Result<Option<usize>, HeadError> {
        self.clear();
        self.request_method = request_method;
        // No empty lines before a status line: after a response they signal a framing desync.
        if matches!(buf.first(), Some(b'\r' | b'\n')) {
            return Err(HeadError::StatusLine);
        }
        let window = buf.get(..limits.max_head).unwrap_or(buf);
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS_CEILING];
        let n = limits.max_headers.min(MAX_HEADERS_CEILING);
        let mut res = httparse::Response::new(slots.get_mut(..n).unwrap_or_default());
        let len = match res.parse(window) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                check_crlf(window)?;
                return if buf.len() > limits.max_head {
                    Err(HeadError::HeadTooLarge)
                } else {
                    Ok(None)
                };
            }
            Err(e) => return Err(response_error(e, window)),
        };
        let head = window.get(..len).unwrap_or_default();
        check_crlf(head)?;
        self.version = res
            .version
            .and_then(Version::from_minor)
            .ok_or(HeadError::Version)?;
        self.status = res
            .code
            .filter(|c| (100..=599).contains(c))
            .ok_or(HeadError::StatusLine)?;
        self.reason = reason(head).ok_or(HeadError::StatusLine)?;
        collect(buf, res.headers, &mut self.fields)?;
        self.connection.read(buf, &self.fields)?;
        self.framing = FramingFields::read(buf, &self.fields, self.version)?;
        self.len = len;
        Ok(Some(len))
    }

    /// Forgets the previous response, keeping allocations.
    fn clear(&mut self) {
        let mut fields = std::mem::take(&mut self.fields);
        let mut connection = std::mem::take(&mut self.connection);
        fields.clear();
        connection.clear();
        *self = ResponseHead {
            fields,
            connection,
            ..ResponseHead::default()
        };
    }

    /// Octets of the head, status line to the final CRLF CRLF; the body starts here.
    pub fn head_len(&self) -> usize {
        self.len
    }
    /// HTTP/1.0 or HTTP/1.1.
    pub fn version(&self) -> Version {
        self.version
    }
    /// The status code, 100..=599.
    pub fn status(&self) -> u16 {
        self.status
    }
    /// The reason phrase's offsets; empty when the upstream sent none.
    pub fn reason(&self) -> Range<usize> {
        self.reason.clone()
    }
    /// Every field line in order, repeated names kept separate.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }
    /// The Connection options.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }
    /// 1xx: forward it, then read the final response from the same connection.
    pub fn is_informational(&self) -> bool {
        (100..=199).contains(&self.status)
    }
    /// 101: after this head the connection carries another protocol.
    pub fn is_switching_protocols(&self) -> bool {
        self.status == 101
    }

    /// The method of the request this response answers, as given to [`ResponseHead::parse`].
    pub fn request_method(&self) -> Method {
        self.request_method
    }

    /// How the body is delimited: no body after HEAD, 1xx, 204, 304 or a 2xx to CONNECT.
    pub fn framing(&self) -> Framing {
        self.framing.response(self.status, self.request_method)
    }

    /// Whether the upstream connection can carry another request after this response's body.
    ///
    /// False for close-delimited bodies and for 101 / a 2xx to CONNECT, which turn it into a tunnel.
    pub fn keep_alive(&self) -> bool {
        let tunnel = self.is_switching_protocols()
            || (self.request_method == Method::Connect && (200..=299).contains(&self.status));
        !tunnel
            && self.framing() != Framing::CloseDelimited
            && self.connection.persistent(self.version)
    }
}

/// The reason phrase of the status line starting `head`, checked byte by byte.
fn reason(head: &[u8]) -> Option<Range<usize>> {
    let end = head.iter().position(|&b| b == b'\r')?;
    let start = match head.get(CODE_AT + 3)? {
        b' ' => CODE_AT + 4,
        _ => CODE_AT + 3,
    };
    let bytes = head.get(start..end)?;
    bytes
        .iter()
        .all(|&b| is_value_byte(b))
        .then_some(start..end)
}

/// Turns an httparse error into the rule it stands for.
fn response_error(e: httparse::Error, window: &[u8]) -> HeadError {
    match e {
        httparse::Error::Version => HeadError::Version,
        httparse::Error::Status | httparse::Error::Token => HeadError::StatusLine,
        httparse::Error::HeaderName => diagnose(window, HeadError::FieldName),
        httparse::Error::HeaderValue => diagnose(window, HeadError::FieldValue),
        httparse::Error::NewLine => diagnose(window, HeadError::StatusLine),
        httparse::Error::TooManyHeaders => HeadError::TooManyFields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_for(raw: &[u8], method: Method) -> Result<ResponseHead, HeadError> {
        let mut head = ResponseHead::new();
        let len = head.parse(raw, &HeadLimits::default(), method)?;
        assert_eq!(len, Some(head.head_len()));
        Ok(head)
    }

    fn parse(raw: &[u8]) -> Result<ResponseHead, HeadError> {
        parse_for(raw, Method::Get)
    }

    #[test]
    fn ok_with_length() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello";
        let h = parse(raw).unwrap();
        assert_eq!((h.status(), h.version()), (200, Version::Http11));
        assert_eq!(&raw[h.reason()], b"OK");
        assert_eq!(h.head_len(), raw.len() - 5);
        assert_eq!(h.fields().len(), 2);
        assert_eq!(h.framing(), Framing::Length(5));
        assert!(h.keep_alive());
        let h = parse_for(raw, Method::Head).unwrap();
        assert_eq!(h.framing(), Framing::None);
        assert!(h.keep_alive());
    }

    #[test]
    fn bodiless_statuses() {
        for status in [
            "100 Continue",
            "101 Switching Protocols",
            "103 Early Hints",
            "204 No Content",
            "304 Not Modified",
        ] {
            let raw = format!("HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n");
            let h = parse(raw.as_bytes()).unwrap();
            assert_eq!(h.framing(), Framing::None, "{status}");
            assert_eq!(h.is_informational(), status.starts_with('1'));
        }
        let h = parse(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n").unwrap();
        assert!(h.is_switching_protocols() && !h.keep_alive());
        let h = parse_for(
            b"HTTP/1.1 200 Connection established\r\n\r\n",
            Method::Connect,
        );
        let h = h.unwrap();
        assert_eq!(h.framing(), Framing::None);
        assert!(!h.keep_alive(), "the connection is a tunnel now");
    }

    #[test]
    fn close_delimited_and_chunked() {
        let h = parse(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        assert_eq!(h.framing(), Framing::CloseDelimited);
        assert!(!h.keep_alive());
        let h = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").unwrap();
        assert_eq!(h.framing(), Framing::CloseDelimited);
        let h = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: br, chunked\r\n\r\n").unwrap();
        assert_eq!(h.framing(), Framing::Chunked);
        assert!(h.keep_alive());
    }

    #[test]
    fn status_line_shapes() {
        let h = parse(b"HTTP/1.1 200\r\n\r\n").unwrap();
        assert_eq!((h.status(), h.reason().len()), (200, 0));
        let h = parse(b"HTTP/1.0 404 Not  Found\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(h.reason(), 13..23);
        assert!(!h.keep_alive(), "HTTP/1.0 closes by default");
        let h = parse(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        assert!(h.keep_alive());
        let h =
            parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(h.connection().close() && !h.keep_alive());
    }

    #[test]
    fn partial_until_complete() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let mut head = ResponseHead::new();
        for end in 0..raw.len() {
            assert_eq!(
                head.parse(&raw[..end], &HeadLimits::default(), Method::Get),
                Ok(None)
            );
        }
        let small = HeadLimits {
            max_head: 20,
            ..HeadLimits::default()
        };
        assert_eq!(
            head.parse(raw, &small, Method::Get),
            Err(HeadError::HeadTooLarge)
        );
    }

    #[test]
    fn every_rejection_rule() {
        use HeadError::*;
        #[rustfmt::skip]
        let cases: &[(&str, &[u8], HeadError)] = &[
            ("cl with te", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", ContentLengthWithTransferEncoding),
            ("two cl", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", MultipleContentLength),
            ("cl list", b"HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\n", MultipleContentLength),
            ("cl sign", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", ContentLength),
            ("chunked twice", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", ChunkedTwice),
            ("empty te", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n", TransferEncoding),
            ("te in http/1.0", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", TransferEncodingHttp10),
            ("obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\n\r\n", ObsFold),
            ("space before colon", b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n", WhitespaceBeforeColon),
            ("nul in value", b"HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n", FieldValue),
            ("bare lf", b"HTTP/1.1 200 OK\nX: a\n\n", BareLf),
            ("http/2", b"HTTP/2.0 200 OK\r\n\r\n", Version),
            ("status 600", b"HTTP/1.1 600 Odd\r\n\r\n", StatusLine),
            ("status 099", b"HTTP/1.1 099 Odd\r\n\r\n", StatusLine),
            ("four digits", b"HTTP/1.1 2000 OK\r\n\r\n", StatusLine),
            ("control in reason", b"HTTP/1.1 200 O\x01K\r\n\r\n", StatusLine),
            ("leading crlf", b"\r\nHTTP/1.1 200 OK\r\n\r\n", StatusLine),
            ("bad connection option", b"HTTP/1.1 200 OK\r\nConnection: a/b\r\n\r\n", ConnectionOption),
        ];
        for (name, raw, want) in cases {
            assert_eq!(parse(raw).err(), Some(*want), "{name}");
        }
    }
}
