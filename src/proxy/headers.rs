//! Writing the heads a proxy sends: the upstream request and the client response.
//!
//! Heads are re-written field by field from the parsed offsets (never passed through raw), so
//! hop-by-hop fields are dropped, framing is ours, and no byte the next hop could frame
//! differently is forwarded. Output goes into a reused buffer: no allocation per request.

use crate::config::HeaderRules;
use crate::http::h1::{Connection, Field, TargetForm};
use std::io::Write;
use std::net::IpAddr;

/// Our `Via` pseudonym (RFC 9110 §7.6.3).
pub const VIA: &str = "1.1 coregate";

/// Hop-by-hop fields (RFC 9110 §7.6.1), dropped both ways, and the framing we always redo.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "content-length",
];

/// Request fields we answer (Expect) or set ourselves (the forwarding fields, the request id:
/// the client's own id is written back when it was acceptable, replaced when not).
const REGENERATED: [&str; 6] = [
    "expect",
    "x-real-ip",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    crate::log::request_id::HEADER,
];

fn one_of(name: &[u8], names: &[&str]) -> bool {
    names
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

/// Request fields not forwarded as received.
fn dropped(name: &[u8]) -> bool {
    one_of(name, &HOP_BY_HOP) || one_of(name, &REGENERATED)
}

fn in_rules(rules: &HeaderRules, name: &[u8]) -> bool {
    rules
        .remove
        .iter()
        .chain(rules.set.iter().map(|(k, _)| k))
        .any(|r| name.eq_ignore_ascii_case(r.as_bytes()))
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn write_set(out: &mut Vec<u8>, rules: &HeaderRules) {
    for (k, v) in &rules.set {
        write_field(out, k.as_bytes(), v.as_bytes());
    }
}

/// How the body of a message we write is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFraming {
    /// No framing field.
    None,
    Length(u64),
    Chunked,
    /// Ends when we close (HTTP/1.0 clients only).
    Close,
}

impl OutFraming {
    fn write(self, out: &mut Vec<u8>) {
        match self {
            OutFraming::Length(n) => {
                let _ = write!(out, "content-length: {n}\r\n");
            }
            OutFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            OutFraming::None | OutFraming::Close => {}
        }
    }
}

/// Everything about the request that the upstream head needs besides its fields.
pub struct RequestLine<'a> {
    pub method: &'a [u8],
    /// Prepended to `path` (a '/' after prefix stripping).
    pub path_lead: &'a [u8],
    pub path: &'a [u8],
    /// The authority that names the site: Host, or the absolute-form target's authority.
    pub authority: &'a [u8],
    /// The authority came from an absolute-form target: replace Host with it.
    pub absolute: bool,
    pub client: IpAddr,
    pub proto: &'static str,
    /// mTLS: (header name, verified client subject); the name is dropped from the request and
    /// set only from the certificate.
    pub subject_header: Option<(&'a str, Option<&'a str>)>,
    /// `Some(protocols)` to forward `Upgrade: protocols` and `Connection: upgrade`.
    pub upgrade: Option<&'a [u8]>,
    pub te_trailers: bool,
    pub framing: OutFraming,
    /// `X-Request-Id` to send (empty = none); a route rule naming the field wins.
    pub request_id: &'a [u8],
}

/// Writes the request head for the upstream.
pub fn write_request_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    fields: &[Field],
    conn: &Connection,
    line: &RequestLine<'_>,
    rules: &HeaderRules,
) {
    out.extend_from_slice(line.method);
    out.push(b' ');
    out.extend_from_slice(line.path_lead);
    out.extend_from_slice(line.path);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if line.absolute {
        write_field(out, b"host", line.authority);
    }
    let mut xff: Option<&[u8]> = None;
    let mut xff_more = false;
    let mut via_seen = false;
    for f in fields {
        let name = f.name(buf);
        if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            // Keep earlier hops, in order; a client may forge them, so the upstream should
            // trust only the last entries (ours) unless the previous hop is a trusted proxy.
            if xff.is_some() {
                xff_more = true;
            }
            xff.get_or_insert(f.value(buf));
        }
        if dropped(name)
            || line
                .subject_header
                .is_some_and(|(h, _)| name.eq_ignore_ascii_case(h.as_bytes()))
            || conn.lists(buf, name)
            || in_rules(rules, name)
            || (line.absolute && name.eq_ignore_ascii_case(b"host"))
        {
            continue;
        }
        if name.eq_ignore_ascii_case(b"via") {
            via_seen = true;
            continue;
        }
        write_field(out, name, f.value(buf));
    }
    // X-Forwarded-For: every earlier value, then the client.
    out.extend_from_slice(b"x-forwarded-for: ");
    if xff_more {
        for f in fields.iter().filter(|f| f.is(buf, "x-forwarded-for")) {
            out.extend_from_slice(f.value(buf));
            out.extend_from_slice(b", ");
        }
    } else if let Some(v) = xff.filter(|v| !v.is_empty()) {
        out.extend_from_slice(v);
        out.extend_from_slice(b", ");
    }
    let _ = write!(out, "{}\r\nx-real-ip: {}\r\n", line.client, line.client);
    let _ = write!(out, "x-forwarded-proto: {}\r\n", line.proto);
    if let Some((name, Some(subject))) = line.subject_header {
        write_field(out, name.as_bytes(), subject.as_bytes());
    }
    if !line.authority.is_empty() {
        write_field(out, b"x-forwarded-host", line.authority);
    }
    out.extend_from_slice(b"via: ");
    if via_seen {
        for f in fields.iter().filter(|f| f.is(buf, "via")) {
            out.extend_from_slice(f.value(buf));
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(VIA.as_bytes());
    out.extend_from_slice(b"\r\n");
    write_request_id(out, line.request_id, rules);
    if line.te_trailers {
        out.extend_from_slice(b"te: trailers\r\n");
    }
    if let Some(protocols) = line.upgrade {
        out.extend_from_slice(b"connection: upgrade\r\n");
        write_field(out, b"upgrade", protocols);
    }
    line.framing.write(out);
    write_set(out, rules);
    out.extend_from_slice(b"\r\n");
}

/// The parts of the response status line and framing decided by the exchange.
pub struct StatusLine<'a> {
    pub status: u16,
    pub reason: &'a [u8],
    pub framing: OutFraming,
    /// Copy the upstream's Content-Length as is (HEAD and 304 responses describe a body not sent).
    pub keep_length: bool,
    /// Forward `Upgrade` and `Connection: upgrade` (a 101 response).
    pub upgrade: bool,
    pub close: bool,
    /// `X-Request-Id` to add unless the upstream sent one or a route rule names it (empty = none).
    pub request_id: &'a [u8],
}

/// Writes `x-request-id: id` unless `id` is empty or the route's rules set or remove the field.
fn write_request_id(out: &mut Vec<u8>, id: &[u8], rules: &HeaderRules) {
    let name = crate::log::request_id::HEADER.as_bytes();
    if !id.is_empty() && !in_rules(rules, name) {
        write_field(out, name, id);
    }
}

/// Writes the response head for the client.
pub fn write_response_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    fields: &[Field],
    conn: &Connection,
    line: &StatusLine<'_>,
    rules: &HeaderRules,
) {
    let _ = write!(out, "HTTP/1.1 {} ", line.status);
    out.extend_from_slice(line.reason);
    out.extend_from_slice(b"\r\n");
    let mut id_sent = false;
    for f in fields {
        let name = f.name(buf);
        let keep = (line.keep_length && name.eq_ignore_ascii_case(b"content-length"))
            || (line.upgrade && name.eq_ignore_ascii_case(b"upgrade"))
            || (!dropped_response(name) && !conn.lists(buf, name) && !in_rules(rules, name));
        if keep {
            id_sent |= name.eq_ignore_ascii_case(crate::log::request_id::HEADER.as_bytes());
            write_field(out, name, f.value(buf));
        }
    }
    if !id_sent {
        write_request_id(out, line.request_id, rules);
    }
    if line.upgrade {
        out.extend_from_slice(b"connection: upgrade\r\n");
    } else if line.close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    line.framing.write(out);
    write_set(out, rules);
    out.extend_from_slice(b"\r\n");
}

/// Response fields not forwarded as received.
fn dropped_response(name: &[u8]) -> bool {
    one_of(name, &HOP_BY_HOP)
}

/// Splits an absolute-form target `http://authority/path?q` into (authority, origin-form path).
pub fn split_absolute(target: &[u8]) -> (&[u8], &[u8]) {
    let after_scheme = match target.windows(3).position(|w| w == b"://") {
        Some(i) => &target[i + 3..],
        None => return (b"", target),
    };
    let end = after_scheme
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(after_scheme.len());
    let (authority, rest) = after_scheme.split_at(end);
    // Drop userinfo, which has no place in Host.
    let authority = match authority.iter().rposition(|&b| b == b'@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    (authority, rest)
}

/// The request's path for routing and forwarding, and its authority.
pub fn target_parts<'a>(
    form: TargetForm,
    target: &'a [u8],
    host: &'a [u8],
) -> (&'a [u8], &'a [u8]) {
    match form {
        TargetForm::Absolute => split_absolute(target),
        _ => (host, target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_targets_split() {
        assert_eq!(
            split_absolute(b"http://a.example:8080/x?y"),
            (&b"a.example:8080"[..], &b"/x?y"[..])
        );
        assert_eq!(
            split_absolute(b"http://u:p@a.example"),
            (&b"a.example"[..], &b""[..])
        );
        assert_eq!(split_absolute(b"http://a?q=1"), (&b"a"[..], &b"?q=1"[..]));
    }
}
