//! Request heads (RFC 9112 §3): request line, fields, and what they mean for the proxy.

use super::connection::{Connection, Upgrade};
use super::fields::{check_crlf, collect, diagnose, elements, is_token, span, Field};
use super::framing::{Framing, FramingFields};
use super::limits::early_target_check;
use super::method::{Method, MAX_METHOD_LEN};
use super::target::{classify, is_host, TargetForm};
use super::{HeadError, HeadLimits, Version, MAX_HEADERS_CEILING};
use std::ops::Range;

/// A parsed request head; keep one per connection so its `Vec`s are reused across requests.
#[derive(Debug, Clone)]
pub struct RequestHead {
    len: usize,
    method: Method,
    method_range: Range<usize>,
    target: Range<usize>,
    target_form: TargetForm,
    version: Version,
    fields: Vec<Field>,
    framing: Framing,
    host: Option<Range<usize>>,
    connection: Connection,
    upgrade: Upgrade,
    expect_continue: bool,
    te_trailers: bool,
}

impl Default for RequestHead {
    fn default() -> Self {
        RequestHead {
            len: 0,
            method: Method::Get,
            method_range: 0..0,
            target: 0..0,
            target_form: TargetForm::Origin,
            version: Version::Http11,
            fields: Vec::new(),
            framing: Framing::None,
            host: None,
            connection: Connection::default(),
            upgrade: Upgrade::None,
            expect_continue: false,
            te_trailers: false,
        }
    }
}

impl RequestHead {
    /// An empty head, ready for [`RequestHead::parse`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the head at the start of `buf`: `Ok(Some(len))` when complete, `Ok(None)` for more.
    ///
    /// Offsets index `buf`; bytes after `len` (body, pipelined requests) are left alone. On any
    /// outcome but `Ok(Some(_))` the accessors describe nothing in particular.
    pub fn parse(&mut self, buf: &[u8], limits: &HeadLimits) -> Result<Option<usize>, HeadError> {
        self.clear();
        early_target_check(buf, limits.max_target)?;
        // Looking only at the first `max_head` bytes bounds the work a huge head can cost.
        let window = buf.get(..limits.max_head).unwrap_or(buf);
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS_CEILING];
        let n = limits.max_headers.min(MAX_HEADERS_CEILING);
        let mut req = httparse::Request::new(slots.get_mut(..n).unwrap_or_default());
        let status = req.parse(window);
        if req.path.is_some_and(|p| p.len() > limits.max_target) {
            return Err(HeadError::TargetTooLong);
        }
        let len = match status {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                check_crlf(window)?;
                return if buf.len() > limits.max_head {
                    Err(HeadError::HeadTooLarge)
                } else {
                    Ok(None)
                };
            }
            Err(e) => return Err(request_error(e, window, req.method.is_some())),
        };
        check_crlf(window.get(..len).unwrap_or_default())?;

        let method = req.method.unwrap_or_default().as_bytes();
        if method.len() > MAX_METHOD_LEN {
            return Err(HeadError::MethodTooLong);
        }
        if !is_token(method) {
            return Err(HeadError::RequestLine);
        }
        self.method = Method::from_bytes(method);
        self.method_range = span(buf, method).ok_or(HeadError::RequestLine)?;
        let target = req.path.unwrap_or_default().as_bytes();
        self.target = span(buf, target).ok_or(HeadError::Target)?;
        self.target_form = classify(target, self.method)?;
        self.version = req
            .version
            .and_then(Version::from_minor)
            .ok_or(HeadError::Version)?;
        collect(buf, req.headers, &mut self.fields)?;

        self.connection.read(buf, &self.fields)?;
        self.framing = FramingFields::read(buf, &self.fields, self.version)?.request()?;
        self.read_semantics(buf)?;
        self.len = len;
        Ok(Some(len))
    }

    /// Host, Expect, TE and Upgrade: the fields whose meaning the proxy acts on.
    fn read_semantics(&mut self, buf: &[u8]) -> Result<(), HeadError> {
        let mut upgrade = Upgrade::None;
        for f in &self.fields {
            if f.is(buf, "host") {
                if self.host.is_some() {
                    return Err(HeadError::MultipleHost);
                }
                if !is_host(f.value(buf)) {
                    return Err(HeadError::Host);
                }
                self.host = Some(f.value.clone());
            } else if f.is(buf, "expect") {
                for e in elements(buf, f.value.clone()) {
                    match buf.get(e).unwrap_or_default() {
                        b"" => {}
                        e if e.eq_ignore_ascii_case(b"100-continue") => {
                            // RFC 9110 §10.1.1: an HTTP/1.0 client cannot wait for 100.
                            self.expect_continue = self.version == Version::Http11;
                        }
                        _ => return Err(HeadError::Expectation),
                    }
                }
            } else if f.is(buf, "te") {
                self.te_trailers |= elements(buf, f.value.clone()).any(|e| {
                    buf.get(e)
                        .is_some_and(|e| e.eq_ignore_ascii_case(b"trailers"))
                });
            } else if f.is(buf, "upgrade") {
                upgrade = upgrade.max(Upgrade::offered(buf, f.value.clone()));
            }
        }
        if self.version == Version::Http11 && self.host.is_none() {
            return Err(HeadError::MissingHost);
        }
        // RFC 9110 §7.8: ignore Upgrade without the connection option, and from HTTP/1.0.
        if self.connection.upgrade() && self.version == Version::Http11 {
            self.upgrade = upgrade;
        }
        Ok(())
    }

    /// Forgets the previous request, keeping allocations.
    fn clear(&mut self) {
        let mut fields = std::mem::take(&mut self.fields);
        let mut connection = std::mem::take(&mut self.connection);
        fields.clear();
        connection.clear();
        *self = RequestHead {
            fields,
            connection,
            ..RequestHead::default()
        };
    }

    /// Octets of the head, request line to the final CRLF CRLF; the body starts here.
    pub fn head_len(&self) -> usize {
        self.len
    }
    /// The method; extension methods are `Other`.
    pub fn method(&self) -> Method {
        self.method
    }
    /// The method token's offsets, to forward extension methods as sent.
    pub fn method_range(&self) -> Range<usize> {
        self.method_range.clone()
    }
    /// The request-target's offsets.
    pub fn target(&self) -> Range<usize> {
        self.target.clone()
    }
    /// Which form the target takes.
    pub fn target_form(&self) -> TargetForm {
        self.target_form
    }
    /// HTTP/1.0 or HTTP/1.1.
    pub fn version(&self) -> Version {
        self.version
    }
    /// Every field line in order, repeated names kept separate.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }
    /// How the request body is delimited: never `CloseDelimited`.
    pub fn framing(&self) -> Framing {
        self.framing
    }
    /// The Host value's offsets; `None` only for HTTP/1.0 without Host.
    pub fn host(&self) -> Option<Range<usize>> {
        self.host.clone()
    }
    /// The Connection options.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }
    /// What an honoured Upgrade asks for (HTTP/1.1 with the `upgrade` option only).
    pub fn upgrade(&self) -> Upgrade {
        self.upgrade
    }
    /// `Expect: 100-continue` from an HTTP/1.1 client: it waits for 100 before the body.
    pub fn expect_continue(&self) -> bool {
        self.expect_continue
    }
    /// `TE: trailers`: the client accepts trailer fields.
    pub fn te_trailers(&self) -> bool {
        self.te_trailers
    }
    /// Whether the client connection stays open after the response (RFC 9112 §9.3).
    pub fn keep_alive(&self) -> bool {
        self.connection.persistent(self.version)
    }
}

/// Turns an httparse error into the rule it stands for.
fn request_error(e: httparse::Error, window: &[u8], method_seen: bool) -> HeadError {
    // The request line as far as it arrived, after any empty lines httparse skipped.
    let mut lines = window
        .split(|&b| b == b'\n')
        .skip_while(|l| l.is_empty() || *l == b"\r");
    let line = lines.next().unwrap_or_default();
    let complete = lines.next().is_some();
    let mut parts = line.split(|&b| b == b' ');
    match e {
        httparse::Error::Token if !method_seen => HeadError::RequestLine,
        httparse::Error::Token => {
            // A target stopped by a bad byte is the target's fault; a missing one is the line's.
            let target = parts.nth(1).unwrap_or_default();
            if target.is_empty() || (complete && parts.next().is_none()) {
                HeadError::RequestLine
            } else {
                HeadError::Target
            }
        }
        httparse::Error::Version => {
            // `GET /a b HTTP/1.1` fails in the version too; only `HTTP/...` is a version problem.
            let version = parts.nth(2).unwrap_or_default();
            let prefix = version.get(..5).unwrap_or(version);
            let http = b"HTTP/".get(..prefix.len());
            if !prefix.is_empty() && http.is_some_and(|p| prefix.eq_ignore_ascii_case(p)) {
                HeadError::Version
            } else {
                HeadError::RequestLine
            }
        }
        httparse::Error::HeaderName => diagnose(window, HeadError::FieldName),
        httparse::Error::HeaderValue => diagnose(window, HeadError::FieldValue),
        httparse::Error::NewLine => diagnose(window, HeadError::RequestLine),
        httparse::Error::TooManyHeaders => HeadError::TooManyFields,
        httparse::Error::Status => HeadError::RequestLine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(raw: &[u8], limits: &HeadLimits) -> Result<Option<RequestHead>, HeadError> {
        let mut head = RequestHead::new();
        Ok(head.parse(raw, limits)?.map(|_| head))
    }

    fn parse(raw: &[u8]) -> Result<RequestHead, HeadError> {
        parse_with(raw, &HeadLimits::default()).map(|h| h.expect("complete head"))
    }

    #[test]
    fn simple_get() {
        let raw = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
        let h = parse(raw).unwrap();
        assert_eq!(h.head_len(), raw.len());
        assert_eq!((h.method(), h.version()), (Method::Get, Version::Http11));
        assert_eq!(&raw[h.method_range()], b"GET");
        assert_eq!(&raw[h.target()], b"/index.html?q=1");
        assert_eq!(h.target_form(), TargetForm::Origin);
        assert_eq!(&raw[h.host().unwrap()], b"example.com");
        assert_eq!(h.fields().len(), 2);
        assert_eq!(h.fields()[1].name(raw), b"Accept");
        assert_eq!(h.fields()[1].value(raw), b"*/*");
        assert_eq!(h.framing(), Framing::None);
        assert!(h.keep_alive() && !h.expect_continue() && !h.te_trailers());
    }

    #[test]
    fn bodies_and_pipelining() {
        let raw = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: b\r\n\r\n";
        let first = parse(raw).unwrap();
        assert_eq!(first.framing(), Framing::Length(5));
        let next = first.head_len() + 5;
        assert_eq!(&raw[first.head_len()..next], b"hello");
        let second = parse(&raw[next..]).unwrap();
        assert_eq!(second.head_len(), raw.len() - next);
        let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n";
        assert_eq!(parse(chunked).unwrap().framing(), Framing::Chunked);
        assert_eq!(parse(chunked).unwrap().head_len(), chunked.len() - 3);
    }

    #[test]
    fn every_prefix_is_partial() -> Result<(), HeadError> {
        let raw = b"\r\nPUT /x HTTP/1.0\r\nContent-Length: 0\r\nX: y\r\n\r\n";
        for end in 0..raw.len() {
            assert!(parse_with(&raw[..end], &HeadLimits::default())?.is_none());
        }
        let h = parse(raw)?;
        assert_eq!((h.head_len(), h.version()), (raw.len(), Version::Http10));
        assert!(h.host().is_none(), "HTTP/1.0 needs no Host");
        assert!(!h.keep_alive(), "HTTP/1.0 closes by default");
        Ok(())
    }

    #[test]
    fn connection_semantics() {
        let raw = b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, X-Hop\r\nUpgrade: websocket\r\nExpect: 100-continue\r\nTE: trailers\r\n\r\n";
        let h = parse(raw).unwrap();
        assert_eq!(h.upgrade(), Upgrade::WebSocket);
        assert!(h.expect_continue() && h.te_trailers() && h.keep_alive());
        assert!(h.connection().lists(raw, b"x-hop"));
        let no_option = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(parse(no_option).unwrap().upgrade(), Upgrade::None);
        let h2c = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n";
        assert_eq!(parse(h2c).unwrap().upgrade(), Upgrade::Other);
        let close = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
        assert!(!parse(close).unwrap().keep_alive());
        let ka10 = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        assert!(parse(ka10).unwrap().keep_alive());
        let expect10 = b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
        assert!(!parse(expect10).unwrap().expect_continue());
    }

    #[test]
    fn target_forms_and_methods() {
        let h = parse(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(h.target_form(), TargetForm::Asterisk);
        let h = parse(b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n").unwrap();
        assert_eq!(h.target_form(), TargetForm::Authority);
        let h = parse(b"PROPFIND http://a/x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(h.target_form(), TargetForm::Absolute);
        assert_eq!(h.method(), Method::Other);
    }

    #[test]
    fn every_rejection_rule() {
        use HeadError::*;
        #[rustfmt::skip]
        let cases: &[(&str, &[u8], HeadError)] = &[
            ("cl with te", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", ContentLengthWithTransferEncoding),
            ("two identical cl", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", MultipleContentLength),
            ("cl list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", MultipleContentLength),
            ("cl sign", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", ContentLength),
            ("cl inner space", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 3\r\n\r\n", ContentLength),
            ("cl overflow", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", ContentLength),
            ("te gzip final", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", ChunkedNotLast),
            ("te chunked twice", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", ChunkedTwice),
            ("te empty", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", TransferEncoding),
            ("te unknown", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n", UnknownTransferCoding),
            ("te in http/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", TransferEncodingHttp10),
            ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", WhitespaceBeforeColon),
            ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", ObsFold),
            ("cr in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: b\rc\r\n\r\n", FieldValue),
            ("nul in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: b\0c\r\n\r\n", FieldValue),
            ("lf in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: b\nc\r\n\r\n", BareLf),
            ("bare lf ending", b"GET / HTTP/1.1\nHost: a\n\n", BareLf),
            ("name not a token", b"GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n", FieldName),
            ("double space", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", RequestLine),
            ("method not a token", b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", RequestLine),
            ("no version", b"GET /\r\nHost: a\r\n\r\n", RequestLine),
            ("space in target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", RequestLine),
            ("tab in target", b"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", Target),
            ("control in target", b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", Target),
            ("utf-8 in target", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", Target),
            ("http/1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", Version),
            ("http/2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", Version),
            ("lowercase version", b"GET / http/1.1\r\nHost: a\r\n\r\n", Version),
            ("double space before version", b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n", RequestLine),
            ("missing host", b"GET / HTTP/1.1\r\nX: a\r\n\r\n", MissingHost),
            ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", MultipleHost),
            ("two hosts in 1.0", b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", MultipleHost),
            ("bad host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Host),
            ("host with userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", Host),
            ("bad connection option", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: a b\r\n\r\n", ConnectionOption),
            ("unknown expectation", b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", Expectation),
        ];
        for (name, raw, want) in cases {
            assert_eq!(parse(raw).err(), Some(*want), "{name}");
        }
    }
}
