//! The admin listener's HTTP/1.1: one request per connection (`connection: close`), read under a
//! size and time bound with the gateway's own strict parser, answered whole.

use crate::http::h1::{Framing, HeadLimits, Method, RequestHead};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::time::Duration;

/// Largest admin request head.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest admin request body (read and ignored: no endpoint takes one).
pub const MAX_BODY: u64 = 64 * 1024;
/// The whole request must arrive within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A request as the admin handlers see it.
pub struct Request {
    pub method: Method,
    /// The path, query dropped.
    pub path: String,
    /// `Authorization`, if present.
    pub authorization: Option<Vec<u8>>,
    /// `Accept`, if present.
    pub accept: String,
}

/// A complete response.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Extra `name: value` lines.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Response {
        let mut body = body.into();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The bytes on the wire (no body for HEAD).
    pub fn bytes(&self, head_only: bool) -> Vec<u8> {
        let reason = crate::http::status::reason(self.status);
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// Reads one request; `Err` is the response to send instead (or `None`: just close).
pub async fn read(stream: &mut TcpStream) -> Result<Request, Option<Response>> {
    match monoio::time::timeout(REQUEST_TIMEOUT, read_inner(stream)).await {
        Ok(r) => r,
        Err(_) => Err(Some(Response::text(408, "request timeout"))),
    }
}

async fn read_inner(stream: &mut TcpStream) -> Result<Request, Option<Response>> {
    let limits = HeadLimits {
        max_head: MAX_HEAD,
        max_target: MAX_HEAD,
        max_headers: 64,
    };
    let mut head = RequestHead::new();
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let len = loop {
        match head.parse(&buf, &limits) {
            Ok(Some(len)) => break len,
            Ok(None) if buf.len() >= MAX_HEAD => {
                return Err(Some(Response::text(431, "request head too large")))
            }
            Ok(None) => {}
            Err(e) => return Err(Some(Response::text(e.status(), e.reason()))),
        }
        if fill(stream, &mut buf, MAX_HEAD).await == 0 {
            return Err(None);
        }
    };
    // No endpoint takes a body; one that is sent is read (bounded) so closing does not reset.
    match head.framing() {
        Framing::None => {}
        Framing::Length(n) if n <= MAX_BODY => {
            let want = len + n as usize;
            while buf.len() < want {
                if fill(stream, &mut buf, want).await == 0 {
                    return Err(None);
                }
            }
        }
        Framing::Length(_) => return Err(Some(Response::text(413, "request body too large"))),
        Framing::Chunked | Framing::CloseDelimited => {
            return Err(Some(Response::text(411, "a body needs a content-length")))
        }
    }
    let field = |name: &str| {
        head.fields()
            .iter()
            .find(|f| f.is(&buf, name))
            .map(|f| f.value(&buf).to_vec())
    };
    let target = String::from_utf8_lossy(&buf[head.target()]).into_owned();
    let path = target.split('?').next().unwrap_or("").to_string();
    Ok(Request {
        method: head.method(),
        path,
        authorization: field("authorization"),
        accept: field("accept")
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default(),
    })
}

/// Reads more into `buf` (at most up to `limit` bytes in all); 0 at EOF or error.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, limit: usize) -> usize {
    let room = limit.saturating_sub(buf.len()).clamp(1, 8192);
    let (r, chunk) = stream.read(Vec::with_capacity(room)).await;
    match r {
        Ok(n) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            n
        }
        _ => 0,
    }
}

/// Writes the response and closes.
pub async fn write(stream: &mut TcpStream, resp: &Response, head_only: bool) {
    let (_, _) = stream.write_all(resp.bytes(head_only)).await;
    let _ = monoio::io::AsyncWriteRent::shutdown(stream).await;
}
