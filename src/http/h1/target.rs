//! Request-target forms (RFC 9112 §3.2) and the authority syntax shared with Host (RFC 3986 §3.2).

use super::{HeadError, Method};
use std::net::Ipv6Addr;

/// Which of the four request-target forms a request used; the proxy routes on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetForm {
    /// `/path?query`: the usual form; the authority is in Host.
    Origin,
    /// `http://host/path`: the target's authority wins over Host (RFC 9112 §3.2.2).
    Absolute,
    /// `host:port`: CONNECT only.
    Authority,
    /// `*`: OPTIONS only.
    Asterisk,
}

/// Checks the target's bytes and form against the method; only `http`/`https` absolute URIs.
pub(super) fn classify(target: &[u8], method: Method) -> Result<TargetForm, HeadError> {
    // Visible ASCII only: no whitespace, controls or raw UTF-8, and no fragment (`#`).
    let visible = |b: &u8| (b'!'..=b'~').contains(b) && *b != b'#';
    if target.is_empty() || !target.iter().all(visible) {
        return Err(HeadError::Target);
    }
    let form = if method == Method::Connect {
        authority(target)
            .filter(|a| !a.host_empty && a.has_port)
            .map(|_| TargetForm::Authority)
    } else if target.first() == Some(&b'/') {
        Some(TargetForm::Origin)
    } else if target == b"*" {
        (method == Method::Options).then_some(TargetForm::Asterisk)
    } else {
        absolute_http(target).then_some(TargetForm::Absolute)
    };
    form.ok_or(HeadError::Target)
}

/// A Host field value: `uri-host [ ":" port ]`, where an empty host is legal (RFC 9112 §3.2).
pub(super) fn is_host(value: &[u8]) -> bool {
    authority(value).is_some()
}

/// `http://authority/...` or `https://...` with a non-empty host and no userinfo (RFC 9110 §4.2).
fn absolute_http(target: &[u8]) -> bool {
    let rest = match target.iter().position(|&b| b == b':') {
        Some(colon) => {
            let scheme = target.get(..colon).unwrap_or_default();
            let http =
                scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https");
            match target.get(colon + 1..) {
                Some(rest) if http => rest,
                _ => return false,
            }
        }
        None => return false,
    };
    let Some(rest) = rest.strip_prefix(b"//") else {
        return false;
    };
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    authority(rest.get(..end).unwrap_or_default()).is_some_and(|a| !a.host_empty)
}

/// What a syntactically valid `uri-host [ ":" port ]` contained.
struct Authority {
    host_empty: bool,
    has_port: bool,
}

/// Parses `uri-host [ ":" port ]`; userinfo, IPvFuture, zone IDs and `host:` are refused.
fn authority(value: &[u8]) -> Option<Authority> {
    let (host_ok, host_len, rest) = if value.first() == Some(&b'[') {
        let close = value.iter().position(|&b| b == b']')?;
        let inner = value.get(1..close)?;
        let ok = std::str::from_utf8(inner).is_ok_and(|s| s.parse::<Ipv6Addr>().is_ok());
        (ok, close + 1, value.get(close + 1..)?)
    } else {
        let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
        let host = value.get(..end)?;
        (is_reg_name(host), end, value.get(end..)?)
    };
    if !host_ok {
        return None;
    }
    let has_port = match rest.split_first() {
        None => false,
        Some((b':', port)) if is_port(port) => true,
        Some(_) => return None,
    };
    Some(Authority {
        host_empty: host_len == 0,
        has_port,
    })
}

/// `port = 1*5DIGIT` up to 65535; RFC 3986 allows an empty port, we do not.
fn is_port(port: &[u8]) -> bool {
    !port.is_empty()
        && port.len() <= 5
        && port.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(port).is_ok_and(|p| p.parse::<u16>().is_ok())
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`; IPv4 literals are reg-names too.
fn is_reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = host.get(i) {
        if b == b'%' {
            let hex = |j: usize| host.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values() {
        let good = [
            &b"example.com"[..],
            b"example.com:8080",
            b"127.0.0.1:80",
            b"[::1]",
            b"[2001:db8::1]:443",
            b"my_host.local",
            b"xn--caf-dma.example",
            b"ex%41mple",
            b"",
        ];
        for v in good {
            assert!(is_host(v), "{:?}", String::from_utf8_lossy(v));
        }
        let bad = [
            &b"exa mple.com"[..],
            b"example.com:",
            b"example.com:65536",
            b"example.com:80:80",
            b"example.com:-1",
            b"user@example.com",
            b"[::1",
            b"[::g]",
            b"[fe80::1%25eth0]",
            b"[v1.x]",
            b"::1",
            b"ex%4",
            b"example.com/",
            b"caf\xc3\xa9",
        ];
        for v in bad {
            assert!(!is_host(v), "{:?}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn target_forms() {
        use Method::*;
        let cases: [(&[u8], Method, Result<TargetForm, HeadError>); 14] = [
            (b"/", Get, Ok(TargetForm::Origin)),
            (b"/a?b=c&d", Post, Ok(TargetForm::Origin)),
            (b"http://example.com/x", Get, Ok(TargetForm::Absolute)),
            (b"HTTPS://example.com:8443?q", Get, Ok(TargetForm::Absolute)),
            (b"example.com:443", Connect, Ok(TargetForm::Authority)),
            (b"*", Options, Ok(TargetForm::Asterisk)),
            (b"*", Get, Err(HeadError::Target)),
            (b"example.com", Connect, Err(HeadError::Target)),
            (b"/x", Connect, Err(HeadError::Target)),
            (b"example.com:443", Get, Err(HeadError::Target)),
            (b"ftp://example.com/", Get, Err(HeadError::Target)),
            (b"http://user@example.com/", Get, Err(HeadError::Target)),
            (b"http:///x", Get, Err(HeadError::Target)),
            (b"/a#frag", Get, Err(HeadError::Target)),
        ];
        for (target, method, want) in cases {
            assert_eq!(
                classify(target, method),
                want,
                "{:?}",
                String::from_utf8_lossy(target)
            );
        }
        for bad in [&b"/a\x01"[..], b"/caf\xc3\xa9", b"/a\x7f", b""] {
            assert_eq!(classify(bad, Get), Err(HeadError::Target));
        }
    }
}
