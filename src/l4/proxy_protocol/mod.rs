//! The PROXY protocol (haproxy's `proxy-protocol.txt`): a header in front of the payload that
//! tells the receiver who the client really was.
//!
//! coregate sends one to an upstream (`encode_v1`, `encode_v2`, `encode_v2_local` for health
//! checks) and accepts one from a trusted load balancer in front (`parse`, `trusted`). Version 1
//! is a text line (`v1`), version 2 a binary block (`v2`); `parse` tells them apart by their first
//! byte and rejects anything else at once, so a client that is not a load balancer gets its
//! error after one read, not after a timeout.

mod v1;
mod v2;

pub use v1::{encode_v1, V1_MAX_LEN};
pub use v2::{encode_v2, encode_v2_local, V2_MAX_LEN, V2_SIGNATURE};

use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The longest header `parse` waits for: a buffer this long always gets a verdict, never
/// `Incomplete`.
pub const MAX_HEADER_LEN: usize = if V1_MAX_LEN > V2_MAX_LEN {
    V1_MAX_LEN
} else {
    V2_MAX_LEN
};

/// What the first bytes of a connection said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// So far a valid prefix of a header: read more.
    Incomplete,
    /// A whole header of `len` bytes (the payload starts right after it).
    Header {
        len: usize,
        /// (source, destination) as the sender saw them: the client, and the address it
        /// connected to. `None` for v2 LOCAL, v1 UNKNOWN and address families coregate does not
        /// forward (v2 UNSPEC, UDP, AF_UNIX): use the real connection's addresses then.
        addrs: Option<(SocketAddr, SocketAddr)>,
    },
}

/// Why a header was refused; the connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// The first bytes match neither signature: the peer does not speak PROXY protocol.
    NotProxy,
    /// v1: no CRLF within `V1_MAX_LEN` bytes; v2: a length beyond `V2_MAX_LEN`.
    TooLong,
    /// v1: a missing, doubled or extra space or field.
    Syntax,
    /// v1: a protocol other than TCP4, TCP6, UNKNOWN; v2: a family/protocol byte the spec lacks.
    BadFamily,
    /// An address that does not parse, or is not of the announced family.
    BadAddress,
    /// v1: a port that is not 0..=65535 in plain decimal (no sign, no leading zero).
    BadPort,
    /// v2: a version other than 2.
    BadVersion,
    /// v2: a command other than LOCAL and PROXY.
    BadCommand,
    /// v2: a length shorter than the family's addresses, or TLVs that do not fill it exactly.
    BadLength,
}

impl ProxyError {
    /// A short reason for logs.
    pub fn reason(self) -> &'static str {
        match self {
            ProxyError::NotProxy => "not a PROXY protocol header",
            ProxyError::TooLong => "PROXY header too long",
            ProxyError::Syntax => "malformed PROXY v1 line",
            ProxyError::BadFamily => "unknown PROXY protocol family",
            ProxyError::BadAddress => "bad address in PROXY header",
            ProxyError::BadPort => "bad port in PROXY header",
            ProxyError::BadVersion => "unsupported PROXY v2 version",
            ProxyError::BadCommand => "unknown PROXY v2 command",
            ProxyError::BadLength => "inconsistent PROXY v2 length",
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ProxyError {}

/// Reads a PROXY header (v1 or v2) at the start of `buf`. Every error is final: once a prefix
/// errs, so does every longer input; a prefix of a valid header is `Incomplete`.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    match buf.first() {
        None => Ok(Parsed::Incomplete),
        Some(b'\r') => v2::parse(buf),
        Some(b'P') => v1::parse(buf),
        Some(_) => Err(ProxyError::NotProxy),
    }
}

/// Whether `peer` may send a PROXY header: it lies in one of `nets` (an IPv4-mapped IPv6 peer,
/// as a dual-stack listener reports IPv4 clients, matches IPv4 networks too).
pub fn trusted(peer: IpAddr, nets: &[IpNet]) -> bool {
    let canonical = peer.to_canonical();
    nets.iter()
        .any(|net| net.contains(&canonical) || net.contains(&peer))
}

/// True when `prefix` (possibly shorter) agrees with the start of `expected`.
fn agrees(prefix: &[u8], expected: &[u8]) -> bool {
    prefix.iter().zip(expected).all(|(a, b)| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Every proper prefix is `Incomplete` (or, for an invalid input, the same error).
    pub(super) fn check_prefixes(input: &[u8]) {
        let whole = parse(input);
        for cut in 0..input.len() {
            let part = parse(&input[..cut]);
            match whole {
                Ok(Parsed::Header { len, .. }) if cut >= len => assert_eq!(part, whole),
                Ok(_) => assert_eq!(part, Ok(Parsed::Incomplete), "cut {cut}"),
                Err(e) => assert!(
                    part == Ok(Parsed::Incomplete) || part == Err(e),
                    "cut {cut}"
                ),
            }
        }
    }

    #[test]
    fn round_trips_with_payload_and_every_split() {
        let pairs = [
            (sa("192.168.0.1:56324"), sa("192.168.0.11:443")),
            (sa("[2001:db8::1]:1"), sa("[::1]:65535")),
            (sa("0.0.0.0:0"), sa("255.255.255.255:65535")),
            (sa("[::ffff:10.0.0.1]:5"), sa("[::ffff:10.0.0.2]:6")),
        ];
        for (src, dst) in pairs {
            let want = Some((
                SocketAddr::new(src.ip().to_canonical(), src.port()),
                SocketAddr::new(dst.ip().to_canonical(), dst.port()),
            ));
            for encode in [encode_v1, encode_v2] {
                let mut out = Vec::new();
                encode(&mut out, src, dst);
                let len = out.len();
                out.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
                assert_eq!(parse(&out), Ok(Parsed::Header { len, addrs: want }));
                check_prefixes(&out);
            }
        }
    }

    #[test]
    fn mixed_families_go_out_as_ipv6() {
        let (src, dst) = (sa("10.0.0.1:80"), sa("[2001:db8::2]:443"));
        let mapped = SocketAddr::new(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().into(), 80);
        let mut out = Vec::new();
        encode_v1(&mut out, src, dst);
        assert_eq!(out, b"PROXY TCP6 ::ffff:a00:1 2001:db8::2 80 443\r\n");
        let want = Ok(Parsed::Header {
            len: out.len(),
            addrs: Some((mapped, dst)),
        });
        assert_eq!(parse(&out), want);
        out.clear();
        encode_v2(&mut out, src, dst);
        assert_eq!(&out[12..16], &[0x21, 0x21, 0, 36]);
        assert_eq!(
            parse(&out),
            Ok(Parsed::Header {
                len: 52,
                addrs: Some((mapped, dst))
            })
        );
    }

    #[test]
    fn other_protocols_are_refused_at_the_first_byte() {
        for input in [
            &b"G"[..],
            b"GET / HTTP/1.1\r\n",
            b"\x16\x03\x01",
            b"\0",
            b" PROXY",
        ] {
            assert_eq!(parse(input), Err(ProxyError::NotProxy), "{input:?}");
        }
        assert_eq!(parse(b"PRI * HTTP/2.0"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"\r\n\r\n\0\r\nQUIX"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"\r\n\r\n"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b""), Ok(Parsed::Incomplete));
    }

    #[test]
    fn a_long_buffer_always_decides() {
        let v1 = [&b"PROXY UNKNOWN "[..], &[b'x'; MAX_HEADER_LEN]].concat();
        assert_eq!(parse(&v1), Err(ProxyError::TooLong));
        let mut v2 = V2_SIGNATURE.to_vec();
        let body = u16::try_from(MAX_HEADER_LEN - 16).unwrap();
        v2.extend_from_slice(&[0x21, 0x00]);
        v2.extend_from_slice(&body.to_be_bytes());
        v2.resize(MAX_HEADER_LEN, 0);
        assert_eq!(
            parse(&v2),
            Ok(Parsed::Header {
                len: MAX_HEADER_LEN,
                addrs: None
            })
        );
    }

    #[test]
    fn trusted_networks() {
        let nets: Vec<IpNet> = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        assert!(trusted(v4(10, 1, 2, 3), &nets));
        assert!(trusted(v4(192, 0, 2, 7), &nets));
        assert!(!trusted(v4(192, 0, 2, 8), &nets));
        assert!(!trusted(v4(11, 0, 0, 1), &nets));
        assert!(trusted(
            IpAddr::V6(Ipv4Addr::new(10, 9, 9, 9).to_ipv6_mapped()),
            &nets
        ));
        assert!(!trusted(
            IpAddr::V6(Ipv4Addr::new(11, 9, 9, 9).to_ipv6_mapped()),
            &nets
        ));
        assert!(trusted("2001:db8::5".parse().unwrap(), &nets));
        assert!(!trusted("2001:db9::5".parse().unwrap(), &nets));
        assert!(!trusted(IpAddr::V6(Ipv6Addr::LOCALHOST), &nets));
        assert!(!trusted(v4(10, 0, 0, 1), &[]));
        let mapped_net: Vec<IpNet> = vec!["::ffff:10.0.0.0/104".parse().unwrap()];
        assert!(trusted(
            IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
            &mapped_net
        ));
    }

    #[test]
    fn errors_have_reasons() {
        assert_eq!(ProxyError::TooLong.to_string(), "PROXY header too long");
    }
}
