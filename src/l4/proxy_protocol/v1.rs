//! PROXY protocol version 1, the text line (spec section 2.1):
//! `PROXY TCP4 <src ip> <dst ip> <src port> <dst port>\r\n`, or `PROXY UNKNOWN ...\r\n`.
//!
//! The parser checks the line as it arrives, so a wrong byte is an error as soon as it is seen;
//! a field still being received is only checked for what it could still become.

use super::{agrees, Parsed, ProxyError};
use std::io::Write;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The longest line a receiver must accept, CRLF included (the spec's `UNKNOWN` worst case).
pub const V1_MAX_LEN: usize = 107;
/// The first word and its space: every v1 line starts with these bytes.
const PREFIX: &[u8] = b"PROXY ";
/// The longest IPv4 address text, `255.255.255.255`.
const MAX_V4_TEXT: usize = 15;
/// The longest IPv6 address text, with a dotted IPv4 tail (`INET6_ADDRSTRLEN` - 1).
const MAX_V6_TEXT: usize = 45;
/// The longest port text, `65535`.
const MAX_PORT_TEXT: usize = 5;
/// Fields after the protocol word: source and destination address, then their ports.
const FIELDS: usize = 4;

/// Appends the v1 line for a connection from `src` to `dst`. Two IPv4 (or IPv4-mapped)
/// addresses give `TCP4`; otherwise both go out as IPv6 (`TCP6`), IPv4 ones mapped.
pub fn encode_v1(out: &mut Vec<u8>, src: SocketAddr, dst: SocketAddr) {
    let (sip, dip) = (src.ip().to_canonical(), dst.ip().to_canonical());
    // Writing into a Vec cannot fail; the results below are Ok by construction.
    if let (IpAddr::V4(s), IpAddr::V4(d)) = (sip, dip) {
        let _ = write!(out, "PROXY TCP4 {s} {d} ");
    } else {
        out.extend_from_slice(b"PROXY TCP6 ");
        write_v6(out, sip);
        out.push(b' ');
        write_v6(out, dip);
        out.push(b' ');
    }
    let _ = write!(out, "{} {}\r\n", src.port(), dst.port());
}

/// Writes an address as IPv6 in hexadecimal groups only: Rust prints IPv4-mapped addresses
/// with a dotted tail, which the spec's "sets of 4 hexadecimal digits" does not foresee.
fn write_v6(out: &mut Vec<u8>, ip: IpAddr) {
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let _ = match v6.to_ipv4_mapped() {
        Some(v4) => {
            let [a, b, c, d] = v4.octets();
            let (hi, lo) = (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
            write!(out, "::ffff:{hi:x}:{lo:x}")
        }
        None => write!(out, "{v6}"),
    };
}

/// Parses a v1 line at the start of `buf` (which starts with `P`).
pub(super) fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let window = buf.get(..V1_MAX_LEN).unwrap_or(buf);
    if let Some(end) = window.windows(2).position(|w| w == b"\r\n") {
        let addrs = line(window.get(..end).unwrap_or_default(), true)?;
        return Ok(Parsed::Header {
            len: end + 2,
            addrs,
        });
    }
    // A CR at the very end may be the start of the CRLF still to come.
    line(window.strip_suffix(b"\r").unwrap_or(window), false)?;
    if window.len() < V1_MAX_LEN {
        Ok(Parsed::Incomplete)
    } else {
        Err(ProxyError::TooLong)
    }
}

/// Checks a line without its CRLF; `done` says whether the CRLF was seen. A line still arriving
/// is an error only if no continuation could make it valid.
fn line(text: &[u8], done: bool) -> Result<Option<(SocketAddr, SocketAddr)>, ProxyError> {
    if !agrees(text, PREFIX) {
        return Err(ProxyError::NotProxy);
    }
    let Some(rest) = text.get(PREFIX.len()..) else {
        return if done {
            Err(ProxyError::Syntax)
        } else {
            Ok(None)
        };
    };
    let (word, fields) = match rest.iter().position(|&b| b == b' ') {
        Some(at) => (rest.get(..at).unwrap_or_default(), rest.get(at + 1..)),
        None => (rest, None),
    };
    let word_done = done || fields.is_some();
    let v6 = match word {
        b"UNKNOWN" => return Ok(None), // The spec says to ignore the rest of the line.
        b"TCP4" => false,
        b"TCP6" => true,
        _ if !word_done
            && [&b"TCP4"[..], b"TCP6", b"UNKNOWN"]
                .iter()
                .any(|w| w.starts_with(word)) =>
        {
            return Ok(None)
        }
        _ => return Err(ProxyError::BadFamily),
    };
    let Some(fields) = fields else {
        return if done {
            Err(ProxyError::Syntax)
        } else {
            Ok(None)
        };
    };
    let (mut ips, mut ports) = ([None; 2], [None; 2]);
    let count = fields.split(|&b| b == b' ').count();
    for (i, field) in fields.split(|&b| b == b' ').enumerate() {
        let field_done = done || i + 1 < count;
        if i >= FIELDS || (field.is_empty() && field_done) {
            return Err(ProxyError::Syntax);
        }
        if let Some(ip) = ips.get_mut(i) {
            *ip = address(field, v6, field_done)?;
        } else if let Some(p) = ports.get_mut(i - ips.len()) {
            *p = port(field, field_done)?;
        }
    }
    if !done {
        return Ok(None);
    }
    match (ips, ports) {
        ([Some(s), Some(d)], [Some(sp), Some(dp)]) => {
            Ok(Some((SocketAddr::new(s, sp), SocketAddr::new(d, dp))))
        }
        _ => Err(ProxyError::Syntax),
    }
}

/// One address of the announced family; `None` while it may still be growing.
fn address(text: &[u8], v6: bool, done: bool) -> Result<Option<IpAddr>, ProxyError> {
    let (max, allowed): (usize, fn(&u8) -> bool) = if v6 {
        (MAX_V6_TEXT, |b| {
            b.is_ascii_hexdigit() || *b == b':' || *b == b'.'
        })
    } else {
        (MAX_V4_TEXT, |b| b.is_ascii_digit() || *b == b'.')
    };
    if text.len() > max || !text.iter().all(allowed) {
        return Err(ProxyError::BadAddress);
    }
    if !done {
        return Ok(None);
    }
    let text = std::str::from_utf8(text).map_err(|_| ProxyError::BadAddress)?;
    // std's parsers refuse IPv4 octets with leading zeros, as the spec asks.
    let ip = if v6 {
        text.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        text.parse().map(IpAddr::V4)
    };
    ip.map(Some).map_err(|_| ProxyError::BadAddress)
}

/// One port: plain decimal 0..=65535 without a leading zero; `None` while it may still grow.
fn port(text: &[u8], done: bool) -> Result<Option<u16>, ProxyError> {
    let leading_zero = text.len() > 1 && text.first() == Some(&b'0');
    if text.len() > MAX_PORT_TEXT || leading_zero || !text.iter().all(u8::is_ascii_digit) {
        return Err(ProxyError::BadPort);
    }
    let value = text.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    let value = u16::try_from(value).map_err(|_| ProxyError::BadPort)?;
    Ok(done.then_some(value))
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::super::tests::check_prefixes;
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn encodes_the_spec_example() {
        let mut out = Vec::new();
        encode_v1(&mut out, sa("192.168.0.1:56324"), sa("192.168.0.11:443"));
        assert_eq!(out, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
        out.clear();
        encode_v1(
            &mut out,
            sa("[2001:db8::1]:56324"),
            sa("[2001:db8:0:1::b]:443"),
        );
        assert_eq!(out, b"PROXY TCP6 2001:db8::1 2001:db8:0:1::b 56324 443\r\n");
    }

    #[test]
    fn parses_valid_lines() {
        let ok = |line: &[u8], addrs: Option<(&str, &str)>| {
            let addrs = addrs.map(|(s, d)| (sa(s), sa(d)));
            let want = Ok(Parsed::Header {
                len: line.len(),
                addrs,
            });
            assert_eq!(parse(line), want, "{}", String::from_utf8_lossy(line));
            check_prefixes(line);
        };
        let example = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
        ok(example, Some(("192.168.0.1:56324", "192.168.0.11:443")));
        ok(
            b"PROXY TCP4 0.0.0.0 1.2.3.4 0 65535\r\n",
            Some(("0.0.0.0:0", "1.2.3.4:65535")),
        );
        ok(
            b"PROXY TCP6 ::1 FFFF::1 1 2\r\n",
            Some(("[::1]:1", "[ffff::1]:2")),
        );
        ok(
            b"PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n",
            Some(("[::ffff:1.2.3.4]:1", "[::1]:2")),
        );
        let longest = [
            &b"PROXY TCP6 "[..],
            b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ",
            b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
        ]
        .concat();
        assert_eq!(longest.len(), 104);
        let f = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
        ok(&longest, Some((f, f)));
        ok(b"PROXY UNKNOWN\r\n", None);
        ok(b"PROXY UNKNOWN ffff:f...f:ffff whatever \t here\r\n", None);
        let unknown = [&b"PROXY UNKNOWN "[..], &[b'x'; 91], b"\r\n"].concat();
        assert_eq!(unknown.len(), V1_MAX_LEN);
        ok(&unknown, None);
    }

    #[test]
    fn payload_after_the_line_is_not_read() {
        let input = b"PROXY UNKNOWN\r\n\x16\x03\x01garbage";
        assert_eq!(
            parse(input),
            Ok(Parsed::Header {
                len: 15,
                addrs: None
            })
        );
    }

    #[test]
    fn rejects() {
        use ProxyError::*;
        let too_long = [&b"PROXY UNKNOWN "[..], &[b'x'; 92], b"\r\n"].concat();
        let table: &[(&[u8], ProxyError)] = &[
            (b"PROXX TCP4", NotProxy),
            (b"PROXY\r\n", Syntax),
            (b"PROXY  TCP4", BadFamily),
            (b"PROXY TCP5 ", BadFamily),
            (b"PROXY tcp4 ", BadFamily),
            (b"PROXY UNKNOWNX", BadFamily),
            (b"PROXY TCP4\r\n", Syntax),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", Syntax),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3", Syntax),
            (b"PROXY TCP4 1.2.3.4  5.6.7.8", Syntax),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", Syntax),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", BadPort),
            (b"PROXY TCP4 ::1 ::1 1 2\r\n", BadAddress),
            (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", BadAddress),
            (b"PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n", BadAddress),
            (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", BadAddress),
            (b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", BadAddress),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", BadPort),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", BadPort),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", BadPort),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", BadPort),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2x\r\n", BadPort),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 100000", BadPort),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 70000", BadPort),
            (b"PROXY TCP4 1234567890123456", BadAddress),
            (b"PROXY TCP6 ::g", BadAddress),
            (&too_long, TooLong),
        ];
        for (input, err) in table {
            let got = parse(input);
            assert_eq!(got, Err(*err), "{}", String::from_utf8_lossy(input));
            check_prefixes(input);
        }
    }

    #[test]
    fn the_first_wrong_byte_is_enough() {
        assert_eq!(parse(b"PROXY TCP4 1.2.3.a"), Err(ProxyError::BadAddress));
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 0"),
            Ok(Parsed::Incomplete)
        );
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 00"),
            Err(ProxyError::BadPort)
        );
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"),
            Ok(Parsed::Incomplete)
        );
        assert_eq!(parse(b"PROXY T"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"PROXY X"), Err(ProxyError::BadFamily));
        assert_eq!(parse(b"PROXY UNKNOWN junk"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"PRO"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"POST / HTTP/1.1"), Err(ProxyError::NotProxy));
    }
}
