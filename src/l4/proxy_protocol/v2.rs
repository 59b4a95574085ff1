//! PROXY protocol version 2, the binary block (spec section 2.2): a 12-byte signature, a
//! version/command byte, a family/protocol byte, a 2-byte length, then that many bytes of
//! addresses and TLVs.
//!
//! Each fixed byte is checked as soon as it arrives; the length is checked against the limit and
//! the family before waiting for the block. TCP over IPv4/IPv6 gives addresses. The other valid
//! combinations (UNSPEC, UDP, AF_UNIX) are accepted without addresses, the spec's "fall back to
//! UNSPEC": coregate forwards TCP only and then uses the connection's own addresses.

use super::{agrees, Parsed, ProxyError};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12 bytes every v2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The largest whole header accepted: the spec's 216-byte AF_UNIX block plus room for the TLVs
/// load balancers add (AWS, GCP and Azure endpoint IDs, haproxy's SSL block), while bounding what
/// a listener holds before the first payload byte.
pub const V2_MAX_LEN: usize = 1024;
/// Signature, version/command, family/protocol and length: the part before the address block.
const FIXED_LEN: usize = 16;
/// Version 2 in the high nibble of byte 13, the only version there is.
const VERSION_2: u8 = 0x20;
/// Command LOCAL (low nibble of byte 13): a health check by the proxy itself, no client.
const LOCAL: u8 = 0x0;
/// Command PROXY (low nibble of byte 13): a relayed client connection.
const PROXY: u8 = 0x1;
/// Family/protocol byte: unknown or unspecified.
const UNSPEC: u8 = 0x00;
/// Family/protocol byte: TCP over IPv4.
const TCP4: u8 = 0x11;
/// Family/protocol byte: UDP over IPv4.
const UDP4: u8 = 0x12;
/// Family/protocol byte: TCP over IPv6.
const TCP6: u8 = 0x21;
/// Family/protocol byte: UDP over IPv6.
const UDP6: u8 = 0x22;
/// Family/protocol byte: AF_UNIX stream.
const UNIX_STREAM: u8 = 0x31;
/// Family/protocol byte: AF_UNIX datagram.
const UNIX_DGRAM: u8 = 0x32;
/// Address block for IPv4: two 4-byte addresses, two 2-byte ports.
const INET_LEN: u16 = 12;
/// Address block for IPv6: two 16-byte addresses, two 2-byte ports.
const INET6_LEN: u16 = 36;
/// Address block for AF_UNIX: two 108-byte paths.
const UNIX_LEN: u16 = 216;
/// A TLV's type byte and 2-byte length.
const TLV_HEADER: usize = 3;

/// Appends a v2 PROXY header for a TCP connection from `src` to `dst`. Two IPv4 (or IPv4-mapped)
/// addresses give TCP over IPv4; otherwise both go out as IPv6, IPv4 ones mapped.
pub fn encode_v2(out: &mut Vec<u8>, src: SocketAddr, dst: SocketAddr) {
    out.extend_from_slice(&V2_SIGNATURE);
    match (src.ip().to_canonical(), dst.ip().to_canonical()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&[VERSION_2 | PROXY, TCP4]);
            out.extend_from_slice(&INET_LEN.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            out.extend_from_slice(&[VERSION_2 | PROXY, TCP6]);
            out.extend_from_slice(&INET6_LEN.to_be_bytes());
            out.extend_from_slice(&as_v6(s).octets());
            out.extend_from_slice(&as_v6(d).octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
}

/// Appends a v2 LOCAL header (no addresses): for health checks, where coregate itself is the
/// client and the upstream should use the connection's own addresses.
pub fn encode_v2_local(out: &mut Vec<u8>) {
    out.extend_from_slice(&V2_SIGNATURE);
    out.extend_from_slice(&[VERSION_2 | LOCAL, UNSPEC, 0, 0]);
}

/// An address as IPv6, IPv4 ones mapped.
fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Parses a v2 header at the start of `buf` (which starts with CR).
pub(super) fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if !agrees(buf, &V2_SIGNATURE) {
        return Err(ProxyError::NotProxy);
    }
    let Some(&ver_cmd) = buf.get(V2_SIGNATURE.len()) else {
        return Ok(Parsed::Incomplete);
    };
    if ver_cmd & 0xF0 != VERSION_2 {
        return Err(ProxyError::BadVersion);
    }
    let local = match ver_cmd & 0x0F {
        LOCAL => true,
        PROXY => false,
        _ => return Err(ProxyError::BadCommand),
    };
    let Some(&family) = buf.get(V2_SIGNATURE.len() + 1) else {
        return Ok(Parsed::Incomplete);
    };
    // LOCAL: the spec says to ignore the family and skip the block whatever it holds.
    let addr_len = match (local, family) {
        (true, _) | (false, UNSPEC) => 0,
        (false, TCP4 | UDP4) => INET_LEN,
        (false, TCP6 | UDP6) => INET6_LEN,
        (false, UNIX_STREAM | UNIX_DGRAM) => UNIX_LEN,
        (false, _) => return Err(ProxyError::BadFamily),
    };
    let Some(&[hi, lo]) = buf.get(V2_SIGNATURE.len() + 2..FIXED_LEN) else {
        return Ok(Parsed::Incomplete);
    };
    let block_len = u16::from_be_bytes([hi, lo]);
    let len = FIXED_LEN + usize::from(block_len);
    if len > V2_MAX_LEN {
        return Err(ProxyError::TooLong);
    }
    if block_len < addr_len {
        return Err(ProxyError::BadLength);
    }
    let Some(block) = buf.get(FIXED_LEN..len) else {
        return Ok(Parsed::Incomplete);
    };
    if local || family == UNSPEC {
        return Ok(Parsed::Header { len, addrs: None });
    }
    let (addrs, tlvs) = block
        .split_at_checked(usize::from(addr_len))
        .ok_or(ProxyError::BadLength)?;
    check_tlvs(tlvs)?;
    let addrs = match family {
        TCP4 => Some(inet(addrs).ok_or(ProxyError::BadLength)?),
        TCP6 => Some(inet6(addrs).ok_or(ProxyError::BadLength)?),
        _ => None,
    };
    Ok(Parsed::Header { len, addrs })
}

/// The IPv4 block: source, destination, source port, destination port.
fn inet(block: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let (s, rest) = block.split_first_chunk::<4>()?;
    let (d, rest) = rest.split_first_chunk::<4>()?;
    let (sp, rest) = rest.split_first_chunk::<2>()?;
    let (dp, _) = rest.split_first_chunk::<2>()?;
    let at = |ip: &[u8; 4], port: &[u8; 2]| {
        SocketAddr::new(Ipv4Addr::from(*ip).into(), u16::from_be_bytes(*port))
    };
    Some((at(s, sp), at(d, dp)))
}

/// The IPv6 block: source, destination, source port, destination port.
fn inet6(block: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let (s, rest) = block.split_first_chunk::<16>()?;
    let (d, rest) = rest.split_first_chunk::<16>()?;
    let (sp, rest) = rest.split_first_chunk::<2>()?;
    let (dp, _) = rest.split_first_chunk::<2>()?;
    let at = |ip: &[u8; 16], port: &[u8; 2]| {
        SocketAddr::new(Ipv6Addr::from(*ip).into(), u16::from_be_bytes(*port))
    };
    Some((at(s, sp), at(d, dp)))
}

/// TLVs are skipped, but they must tile what follows the addresses exactly (as haproxy checks).
fn check_tlvs(mut tlvs: &[u8]) -> Result<(), ProxyError> {
    while !tlvs.is_empty() {
        let Some((&[_kind, hi, lo], rest)) = tlvs.split_first_chunk::<TLV_HEADER>() else {
            return Err(ProxyError::BadLength);
        };
        let value_len = usize::from(u16::from_be_bytes([hi, lo]));
        tlvs = rest.get(value_len..).ok_or(ProxyError::BadLength)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::super::tests::check_prefixes;
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A header assembled by hand from the spec's layout.
    fn header(ver_cmd: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut h = b"\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A".to_vec();
        h.push(ver_cmd);
        h.push(family);
        h.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
        h.extend_from_slice(block);
        h
    }

    /// 192.168.0.1:56324 → 192.168.0.11:443, the spec's v1 example, as a v2 IPv4 block.
    const INET_BLOCK: [u8; 12] = [192, 168, 0, 1, 192, 168, 0, 11, 0xDC, 0x04, 0x01, 0xBB];

    #[test]
    fn encodes_byte_exact() {
        let mut out = Vec::new();
        encode_v2(&mut out, sa("192.168.0.1:56324"), sa("192.168.0.11:443"));
        assert_eq!(out, header(0x21, 0x11, &INET_BLOCK));

        out.clear();
        encode_v2(&mut out, sa("[2001:db8::1]:56324"), sa("[::1]:443"));
        let mut block = vec![0x20, 0x01, 0x0d, 0xb8];
        block.extend_from_slice(&[0; 11]);
        block.push(1);
        block.extend_from_slice(&[0; 15]);
        block.push(1);
        block.extend_from_slice(&[0xDC, 0x04, 0x01, 0xBB]);
        assert_eq!(out, header(0x21, 0x21, &block));

        out.clear();
        encode_v2_local(&mut out);
        assert_eq!(out, header(0x20, 0x00, &[]));
        assert_eq!(
            parse(&out),
            Ok(Parsed::Header {
                len: 16,
                addrs: None
            })
        );
    }

    #[test]
    fn parses_families_and_tlvs() {
        let want = Some((sa("192.168.0.1:56324"), sa("192.168.0.11:443")));
        let plain = header(0x21, 0x11, &INET_BLOCK);
        assert_eq!(
            parse(&plain),
            Ok(Parsed::Header {
                len: 28,
                addrs: want
            })
        );
        // ALPN "h2", a NOOP of zero bytes, and an AWS-style custom TLV.
        let tlvs = [
            &INET_BLOCK[..],
            b"\x01\x00\x02h2",
            b"\x04\x00\x00",
            b"\xEA\x00\x03abc",
        ]
        .concat();
        let with_tlvs = header(0x21, 0x11, &tlvs);
        let len = with_tlvs.len();
        assert_eq!(parse(&with_tlvs), Ok(Parsed::Header { len, addrs: want }));
        // The fall-back families: accepted, without addresses.
        for (family, n) in [(0x12, 12), (0x22, 36), (0x31, 216), (0x32, 216), (0x00, 5)] {
            let h = header(0x21, family, &vec![7; n]);
            let len = h.len();
            assert_eq!(
                parse(&h),
                Ok(Parsed::Header { len, addrs: None }),
                "{family:#x}"
            );
        }
        // LOCAL ignores the family and skips whatever the block holds.
        let local = header(0x20, 0x11, &[1, 2, 3]);
        assert_eq!(
            parse(&local),
            Ok(Parsed::Header {
                len: 19,
                addrs: None
            })
        );
        let local = header(0x20, 0x99, &[]);
        assert_eq!(
            parse(&local),
            Ok(Parsed::Header {
                len: 16,
                addrs: None
            })
        );
    }

    #[test]
    fn rejects() {
        use ProxyError::*;
        let mut huge = header(0x21, 0x11, &INET_BLOCK);
        huge[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        let table: Vec<(Vec<u8>, ProxyError)> = vec![
            (b"\r\n\r\n\0\r\nQUIT\r".to_vec(), NotProxy),
            (b"\r\n\r\n\x01".to_vec(), NotProxy),
            (header(0x11, 0x11, &INET_BLOCK), BadVersion),
            (header(0x31, 0x11, &INET_BLOCK), BadVersion),
            (header(0x22, 0x11, &INET_BLOCK), BadCommand),
            (header(0x21, 0x13, &INET_BLOCK), BadFamily),
            (header(0x21, 0x41, &INET_BLOCK), BadFamily),
            (header(0x21, 0x01, &[]), BadFamily),
            (header(0x21, 0x11, &INET_BLOCK[..11]), BadLength),
            (header(0x21, 0x21, &INET_BLOCK), BadLength),
            (header(0x21, 0x31, &[0; 215]), BadLength),
            (
                header(0x21, 0x11, &[&INET_BLOCK[..], &[1, 0]].concat()),
                BadLength,
            ),
            (
                header(0x21, 0x11, &[&INET_BLOCK[..], &[1, 0, 3, 0, 0]].concat()),
                BadLength,
            ),
            (header(0x21, 0x11, &[0; V2_MAX_LEN - 15]), TooLong),
            (huge[..16].to_vec(), TooLong),
        ];
        for (input, err) in table {
            assert_eq!(parse(&input), Err(err), "{input:02x?}");
            check_prefixes(&input);
        }
    }

    #[test]
    fn decides_as_soon_as_the_bytes_allow() {
        let valid = header(0x21, 0x11, &INET_BLOCK);
        assert_eq!(parse(&valid[..27]), Ok(Parsed::Incomplete));
        assert_eq!(
            parse(&header(0x11, 0x11, &[])[..13]),
            Err(ProxyError::BadVersion)
        );
        assert_eq!(
            parse(&header(0x21, 0x77, &[])[..14]),
            Err(ProxyError::BadFamily)
        );
        // The length alone tells the addresses cannot fit: no need to wait for them.
        assert_eq!(
            parse(&header(0x21, 0x21, &[0; 20])[..16]),
            Err(ProxyError::BadLength)
        );
        let mut big = header(0x21, 0x11, &[0; 12]);
        big[14..16].copy_from_slice(&2000u16.to_be_bytes());
        assert_eq!(parse(&big), Err(ProxyError::TooLong));
        // Truncated addresses: waiting, not guessing.
        assert_eq!(parse(&valid[..20]), Ok(Parsed::Incomplete));
    }
}
