//! The one place that turns a status coregate answers by itself into response bytes.

use crate::proxy::error::{Kind, ProxyError, Side, Step};

/// The status for an exchange that failed before the client got a response head; `None` when
/// nobody is left to answer (the client itself went away).
pub fn for_error(e: &ProxyError) -> Option<u16> {
    match (e.side, e.kind) {
        (_, Kind::NoRoute) => Some(404),
        (Side::Client, Kind::Malformed(h)) => Some(h.status()),
        (Side::Client, Kind::BadChunk) => Some(400),
        (Side::Client, Kind::BodyTooLarge) => Some(413),
        (Side::Client, Kind::Timeout) => Some(408),
        (Side::Client, _) => None,
        (Side::Upstream, Kind::Timeout) => Some(504),
        (Side::Upstream, Kind::Unavailable) => Some(503),
        (Side::Upstream, _) => Some(502),
        (Side::Internal, _) => Some(500),
    }
    .filter(|_| !(e.side == Side::Client && e.step == Step::WriteResponse))
}

/// A short text body for each status coregate may answer with.
pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// Length of the body `write_error` (and `write_local` without a body) sends.
pub fn error_body_len(code: u16) -> u64 {
    reason(code).len() as u64 + 5
}

/// Appends a complete error response that closes the connection: `<code> <reason>\n` as body,
/// and the request's id (when it has one).
pub fn write_error(out: &mut Vec<u8>, code: u16, request_id: &[u8]) {
    use std::io::Write;
    let reason = reason(code);
    let _ = write!(
        out,
        "HTTP/1.1 {code} {reason}\r\ncontent-type: text/plain\r\n"
    );
    if !request_id.is_empty() {
        out.extend_from_slice(crate::log::request_id::HEADER.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(request_id);
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(
        out,
        "content-length: {}\r\nconnection: close\r\n\r\n{code} {reason}\n",
        error_body_len(code)
    );
}

/// A response coregate answers by policy (401, 403, 429, 503, a route's fallback) rather than
/// because framing failed: extra header fields, an optional body instead of the status text, and
/// keep-alive unless `close`.
pub struct Local<'a> {
    pub status: u16,
    /// Complete `name: value` pairs, already validated (config or our own values).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body; `None` = `<code> <reason>\n`.
    pub body: Option<&'a str>,
    pub close: bool,
}

/// Appends `local` as a complete response.
pub fn write_local(out: &mut Vec<u8>, local: &Local<'_>) {
    use std::io::Write;
    let code = local.status;
    let reason = reason(code);
    let _ = write!(
        out,
        "HTTP/1.1 {code} {reason}\r\ncontent-type: text/plain\r\n"
    );
    for (name, value) in local.headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if local.close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    match local.body {
        Some(body) => {
            let _ = write!(out, "content-length: {}\r\n\r\n{body}", body.len());
        }
        None => {
            let _ = write!(
                out,
                "content-length: {}\r\n\r\n{code} {reason}\n",
                reason.len() + 5
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn local_response_is_framed() {
        let mut out = Vec::new();
        super::write_local(
            &mut out,
            &super::Local {
                status: 429,
                headers: &[("retry-after", "2")],
                body: None,
                close: false,
            },
        );
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
        assert!(head.contains("\r\nretry-after: 2\r\n"));
        assert!(!head.contains("connection: close"));
        assert_eq!(body, "429 Too Many Requests\n");
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }

    #[test]
    fn error_response_is_framed() {
        let mut out = Vec::new();
        super::write_error(&mut out, 431, b"abc");
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("\r\nx-request-id: abc\r\n"));
        assert_eq!(body.len() as u64, super::error_body_len(431));
    }
}
