//! Message body length (RFC 9112 §6): Content-Length, Transfer-Encoding, and who decides.

use super::fields::{elements, is_token, Field};
use super::{HeadError, Method, Version};

/// How the body after a head is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: the next message (or, after 101 / a 2xx to CONNECT, the tunnel) starts right away.
    None,
    /// Exactly this many octets.
    Length(u64),
    /// Chunked coding, read with [`super::ChunkedDecoder`].
    Chunked,
    /// Until the peer closes; responses only, and the connection cannot be reused.
    CloseDelimited,
}

impl Framing {
    /// Whether any body octets may follow the head.
    pub fn has_body(self) -> bool {
        !matches!(self, Framing::None | Framing::Length(0))
    }
}

/// Transfer-codings we know by name (RFC 9112 §7 registry); `chunked` is the only one we decode.
const KNOWN_CODINGS: [&str; 6] = [
    "chunked",
    "gzip",
    "x-gzip",
    "deflate",
    "compress",
    "x-compress",
];

/// Summary of every Transfer-Encoding field of a message, read as one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Codings {
    chunked: bool,
    chunked_last: bool,
    unknown: bool,
}

/// What Content-Length and Transfer-Encoding said, syntax checked, before message rules apply.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct FramingFields {
    content_length: Option<u64>,
    transfer_encoding: Option<Codings>,
}

impl FramingFields {
    /// Reads both fields under the rules shared by requests and responses.
    pub(super) fn read(buf: &[u8], fields: &[Field], version: Version) -> Result<Self, HeadError> {
        let mut out = FramingFields::default();
        for f in fields {
            if f.is(buf, "content-length") {
                if out.content_length.is_some() {
                    return Err(HeadError::MultipleContentLength);
                }
                out.content_length = Some(parse_content_length(f.value(buf))?);
            } else if f.is(buf, "transfer-encoding") {
                let codings = out.transfer_encoding.get_or_insert(Codings {
                    chunked: false,
                    chunked_last: false,
                    unknown: false,
                });
                for element in elements(buf, f.value.clone()) {
                    let coding = buf.get(element).unwrap_or_default();
                    // Empty elements and parameters are refused: peers disagree on them.
                    if !is_token(coding) {
                        return Err(HeadError::TransferEncoding);
                    }
                    let chunked = coding.eq_ignore_ascii_case(b"chunked");
                    if chunked && codings.chunked {
                        return Err(HeadError::ChunkedTwice);
                    }
                    codings.chunked |= chunked;
                    codings.chunked_last = chunked;
                    codings.unknown |= !KNOWN_CODINGS
                        .iter()
                        .any(|k| coding.eq_ignore_ascii_case(k.as_bytes()));
                }
            }
        }
        if out.transfer_encoding.is_some() {
            if out.content_length.is_some() {
                return Err(HeadError::ContentLengthWithTransferEncoding);
            }
            if version == Version::Http10 {
                return Err(HeadError::TransferEncodingHttp10);
            }
        }
        Ok(out)
    }

    /// Request body length (RFC 9112 §6.3 rules 4–7): a request is never close-delimited.
    pub(super) fn request(self) -> Result<Framing, HeadError> {
        match (self.transfer_encoding, self.content_length) {
            (Some(c), _) if c.unknown => Err(HeadError::UnknownTransferCoding),
            (Some(c), _) if !c.chunked_last => Err(HeadError::ChunkedNotLast),
            (Some(_), _) => Ok(Framing::Chunked),
            (None, Some(n)) => Ok(Framing::Length(n)),
            (None, None) => Ok(Framing::None),
        }
    }

    /// Response body length (RFC 9112 §6.3 rules 1–2, 4–5, 8), given what was asked.
    pub(super) fn response(self, status: u16, request_method: Method) -> Framing {
        let bodiless = matches!(status, 100..=199 | 204 | 304);
        let tunnel = request_method == Method::Connect && (200..=299).contains(&status);
        if request_method == Method::Head || bodiless || tunnel {
            return Framing::None;
        }
        match (self.transfer_encoding, self.content_length) {
            (Some(c), _) if c.chunked_last => Framing::Chunked,
            (Some(_), _) => Framing::CloseDelimited,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::CloseDelimited,
        }
    }
}

/// `Content-Length = 1*DIGIT`: no sign, no inner space, no list, no overflow.
pub(super) fn parse_content_length(value: &[u8]) -> Result<u64, HeadError> {
    if value.contains(&b',') {
        return Err(HeadError::MultipleContentLength);
    }
    if value.is_empty() {
        return Err(HeadError::ContentLength);
    }
    value.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(HeadError::ContentLength);
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(HeadError::ContentLength)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds one buffer of `name: value` lines and the matching fields.
    fn fields(lines: &[(&str, &str)]) -> (Vec<u8>, Vec<Field>) {
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        for (name, value) in lines {
            let start = buf.len();
            buf.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            let v = start + name.len() + 2;
            out.push(Field {
                name: start..start + name.len(),
                value: v..v + value.len(),
            });
        }
        (buf, out)
    }

    fn read(lines: &[(&str, &str)], version: Version) -> Result<FramingFields, HeadError> {
        let (buf, f) = fields(lines);
        FramingFields::read(&buf, &f, version)
    }

    fn request(lines: &[(&str, &str)]) -> Result<Framing, HeadError> {
        read(lines, Version::Http11).and_then(FramingFields::request)
    }

    #[test]
    fn content_length_values() {
        assert_eq!(parse_content_length(b"0"), Ok(0));
        assert_eq!(parse_content_length(b"007"), Ok(7));
        assert_eq!(parse_content_length(b"18446744073709551615"), Ok(u64::MAX));
        for bad in [
            &b""[..],
            b"+1",
            b"-1",
            b"1 2",
            b"0x10",
            b"1.0",
            b"18446744073709551616",
        ] {
            assert_eq!(
                parse_content_length(bad),
                Err(HeadError::ContentLength),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_content_length(b"5, 5"),
            Err(HeadError::MultipleContentLength)
        );
    }

    #[test]
    fn request_framing_rules() {
        use HeadError::*;
        let te = "transfer-encoding";
        type Case<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            Result<Framing, HeadError>,
        );
        let cases: [Case; 13] = [
            ("no body", &[], Ok(Framing::None)),
            (
                "length",
                &[("Content-Length", "12")],
                Ok(Framing::Length(12)),
            ),
            ("chunked", &[(te, "Chunked")], Ok(Framing::Chunked)),
            (
                "gzip then chunked",
                &[(te, "gzip, chunked")],
                Ok(Framing::Chunked),
            ),
            (
                "split over fields",
                &[(te, "gzip"), (te, "chunked")],
                Ok(Framing::Chunked),
            ),
            (
                "cl and te",
                &[(te, "chunked"), ("content-length", "3")],
                Err(ContentLengthWithTransferEncoding),
            ),
            (
                "two cl, same value",
                &[("content-length", "3"), ("content-length", "3")],
                Err(MultipleContentLength),
            ),
            ("gzip alone", &[(te, "gzip")], Err(ChunkedNotLast)),
            (
                "chunked then gzip",
                &[(te, "chunked, gzip")],
                Err(ChunkedNotLast),
            ),
            (
                "chunked twice",
                &[(te, "chunked"), (te, "chunked")],
                Err(ChunkedTwice),
            ),
            ("empty te", &[(te, "")], Err(TransferEncoding)),
            (
                "empty element",
                &[(te, "gzip,,chunked")],
                Err(TransferEncoding),
            ),
            (
                "unknown coding",
                &[(te, "br, chunked")],
                Err(UnknownTransferCoding),
            ),
        ];
        for (name, lines, want) in cases {
            assert_eq!(request(lines), want, "{name}");
        }
        assert_eq!(request(&[(te, "chunked;x=1")]), Err(TransferEncoding));
    }

    #[test]
    fn transfer_encoding_in_http10_is_refused() {
        let got = read(&[("Transfer-Encoding", "chunked")], Version::Http10);
        assert_eq!(got, Err(HeadError::TransferEncodingHttp10));
    }

    #[test]
    fn response_framing_rules() {
        let ok = |lines: &[(&str, &str)]| read(lines, Version::Http11).unwrap();
        let cl = ok(&[("Content-Length", "5")]);
        let chunked = ok(&[("Transfer-Encoding", "chunked")]);
        let gzip = ok(&[("Transfer-Encoding", "gzip")]);
        let none = ok(&[]);
        assert_eq!(cl.response(200, Method::Get), Framing::Length(5));
        assert_eq!(cl.response(200, Method::Head), Framing::None);
        for status in [100, 101, 103, 204, 304] {
            assert_eq!(
                chunked.response(status, Method::Get),
                Framing::None,
                "{status}"
            );
        }
        assert_eq!(cl.response(200, Method::Connect), Framing::None);
        assert_eq!(cl.response(407, Method::Connect), Framing::Length(5));
        assert_eq!(chunked.response(200, Method::Get), Framing::Chunked);
        assert_eq!(gzip.response(200, Method::Get), Framing::CloseDelimited);
        assert_eq!(none.response(200, Method::Get), Framing::CloseDelimited);
        assert!(!Framing::Length(0).has_body() && Framing::CloseDelimited.has_body());
    }
}
