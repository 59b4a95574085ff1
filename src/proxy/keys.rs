//! What a request is keyed by, for `consistent_hash` balancing and keyed rate limits: the client
//! address, a header's value, a cookie's value, or the path. Borrowed from the request buffer;
//! nothing is copied.

use crate::config::RequestKey;
use crate::http::h1::RequestHead;
use std::net::IpAddr;

/// Room for an IPv6 address's 16 octets.
pub type IpScratch = [u8; 16];

/// The bytes of `key` in this request; `None` when the header or cookie is absent (callers then
/// fall back: a shared bucket, or the client address for hashing).
pub fn request_key<'a>(
    key: &RequestKey,
    buf: &'a [u8],
    head: &RequestHead,
    path: &'a [u8],
    client: IpAddr,
    scratch: &'a mut IpScratch,
) -> Option<&'a [u8]> {
    match key {
        RequestKey::Global => None,
        RequestKey::ClientIp => Some(ip_bytes(client, scratch)),
        RequestKey::Path => Some(path.split(|&b| b == b'?').next().unwrap_or(path)),
        RequestKey::Header(name) => head
            .fields()
            .iter()
            .find(|f| f.is(buf, name))
            .map(|f| f.value(buf)),
        RequestKey::Cookie(name) => head
            .fields()
            .iter()
            .filter(|f| f.is(buf, "cookie"))
            .find_map(|f| cookie(f.value(buf), name.as_bytes())),
    }
}

/// The client address as octets (IPv4-mapped IPv6 reduced to IPv4, so both forms key alike).
pub fn ip_bytes(ip: IpAddr, scratch: &mut IpScratch) -> &[u8] {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            scratch[..4].copy_from_slice(&v4.octets());
            &scratch[..4]
        }
        IpAddr::V6(v6) => {
            *scratch = v6.octets();
            &scratch[..]
        }
    }
}

/// The value of cookie `name` in a `Cookie` field value (`a=1; b=2`).
fn cookie<'a>(value: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    value.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        (pair[..eq] == *name).then(|| &pair[eq + 1..])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cookies_and_canonical_ips() {
        assert_eq!(cookie(b"a=1; sid=xyz; b=2", b"sid"), Some(&b"xyz"[..]));
        assert_eq!(cookie(b"a=1;sid=", b"sid"), Some(&b""[..]));
        assert_eq!(cookie(b"asid=1", b"sid"), None);
        let mut s = [0u8; 16];
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(ip_bytes(mapped, &mut s), &[10, 1, 2, 3]);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_bytes(v6, &mut s).len(), 16);
    }
}
