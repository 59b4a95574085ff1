//! Arbitrary bytes as the start of a connection from a load balancer: `parse` never panics, a
//! header lies inside the input, every prefix is `Incomplete` or the same verdict, a buffer of
//! `MAX_HEADER_LEN` bytes always decides, and the addresses found encode and parse back.

#![no_main]

use coregate::l4::proxy_protocol::{encode_v1, encode_v2, parse, Parsed, MAX_HEADER_LEN};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, SocketAddr};

/// Prefixes shorter than this are all tried; longer ones every `STRIDE` bytes.
const ALL_PREFIXES: usize = 128;
/// Step between the longer prefixes tried.
const STRIDE: usize = 7;

fuzz_target!(|data: &[u8]| {
    let whole = parse(data);
    match whole {
        Ok(Parsed::Header { len, addrs }) => {
            assert!(len > 0 && len <= data.len() && len <= MAX_HEADER_LEN);
            assert_eq!(parse(&data[..len]), whole, "the header alone");
            assert_eq!(
                parse(&data[..len - 1]),
                Ok(Parsed::Incomplete),
                "one byte short"
            );
            if let Some((src, dst)) = addrs {
                round_trip(src, dst);
            }
        }
        Ok(Parsed::Incomplete) => assert!(data.len() < MAX_HEADER_LEN),
        Err(_) => {}
    }
    let cuts = (0..data.len().min(ALL_PREFIXES)).chain((ALL_PREFIXES..data.len()).step_by(STRIDE));
    for cut in cuts {
        let part = parse(&data[..cut]);
        assert!(
            part == Ok(Parsed::Incomplete) || part == whole,
            "prefix {cut}: {part:?} vs {whole:?}"
        );
    }
});

/// What an encoder sends for `src`/`dst` must parse back: IPv4 when both are, else IPv6.
fn round_trip(src: SocketAddr, dst: SocketAddr) {
    let both_v4 = src.ip().to_canonical().is_ipv4() && dst.ip().to_canonical().is_ipv4();
    let as_sent = |a: SocketAddr| {
        let ip = match a.ip().to_canonical() {
            IpAddr::V4(v4) if !both_v4 => IpAddr::V6(v4.to_ipv6_mapped()),
            ip => ip,
        };
        SocketAddr::new(ip, a.port())
    };
    for encode in [encode_v1, encode_v2] {
        let mut out = Vec::new();
        encode(&mut out, src, dst);
        let want = Parsed::Header {
            len: out.len(),
            addrs: Some((as_sent(src), as_sent(dst))),
        };
        assert_eq!(parse(&out), Ok(want));
    }
}
