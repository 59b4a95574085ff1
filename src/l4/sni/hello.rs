//! Walking a ClientHello (RFC 8446 4.1.2) to its server_name extension (RFC 6066 section 3).
//!
//! Every length is checked against its container before its bytes are awaited, so an overlong
//! field is refused at once; the whole hello is walked, so the answer never depends on how much
//! of it has arrived beyond its end.

use super::record::{Records, Stop, RECORD_HEADER_LEN};
use super::{MAX_HELLO_BYTES, MAX_NAME_LEN};

/// Handshake type of a ClientHello.
const CLIENT_HELLO: u8 = 1;
/// A handshake message header: type and 3-byte length.
const HANDSHAKE_HEADER_LEN: usize = 4;
/// legacy_version (2 bytes) and random (32 bytes), skipped.
const VERSION_AND_RANDOM: usize = 34;
/// The longest legacy_session_id.
const MAX_SESSION_ID: usize = 32;
/// Extension type server_name.
const SERVER_NAME: u16 = 0;
/// Name type host_name inside server_name.
const HOST_NAME: u8 = 0;

/// Where a host name starts in the hello, and its length.
pub(super) type NameAt<'a> = (Records<'a>, usize);

/// Walks a whole ClientHello; returns where its host name starts and its length, if it has one.
pub(super) fn walk<'a>(r: &mut Records<'a>) -> Result<Option<NameAt<'a>>, Stop> {
    if r.u8()? != CLIENT_HELLO {
        return Err(Stop::NotTls);
    }
    let len = r.u24()?;
    if RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + len > MAX_HELLO_BYTES {
        return Err(Stop::NotTls);
    }
    let end = r.taken() + len;
    skip(r, VERSION_AND_RANDOM, end)?;
    let session_id = usize::from(byte(r, end)?);
    if session_id > MAX_SESSION_ID {
        return Err(Stop::NotTls);
    }
    skip(r, session_id, end)?;
    let suites = usize::from(u16(r, end)?);
    if suites == 0 || suites % 2 != 0 {
        return Err(Stop::NotTls);
    }
    skip(r, suites, end)?;
    let compression = usize::from(byte(r, end)?);
    if compression == 0 {
        return Err(Stop::NotTls);
    }
    skip(r, compression, end)?;
    if r.taken() == end {
        return Ok(None); // No extensions at all (TLS 1.2 allows it).
    }
    let extensions = usize::from(u16(r, end)?);
    if r.taken() + extensions != end {
        return Err(Stop::NotTls);
    }
    let mut name = None;
    let mut seen = false;
    while r.taken() < end {
        let kind = u16(r, end)?;
        let len = usize::from(u16(r, end)?);
        let ext_end = r.taken() + len;
        if ext_end > end {
            return Err(Stop::NotTls);
        }
        if kind != SERVER_NAME {
            r.skip(len)?;
            continue;
        }
        if seen {
            return Err(Stop::NotTls); // RFC 8446 4.2: one extension of each type.
        }
        seen = true;
        name = server_name_list(r, ext_end)?;
    }
    Ok(name)
}

/// The server_name extension body: a list of (type, name) that must fill it exactly, with at most
/// one host_name (RFC 6066 section 3).
fn server_name_list<'a>(r: &mut Records<'a>, end: usize) -> Result<Option<NameAt<'a>>, Stop> {
    let list = usize::from(u16(r, end)?);
    if list == 0 || r.taken() + list != end {
        return Err(Stop::NotTls);
    }
    let mut name = None;
    while r.taken() < end {
        let kind = byte(r, end)?;
        let len = usize::from(u16(r, end)?);
        if kind == HOST_NAME {
            if name.is_some() || len == 0 || len > MAX_NAME_LEN {
                return Err(Stop::NotTls);
            }
            name = Some((*r, len));
        }
        skip(r, len, end)?;
    }
    Ok(name)
}

/// One byte that must lie before `end`.
fn byte(r: &mut Records<'_>, end: usize) -> Result<u8, Stop> {
    if r.taken() >= end {
        return Err(Stop::NotTls);
    }
    r.u8()
}

/// Two bytes that must lie before `end`.
fn u16(r: &mut Records<'_>, end: usize) -> Result<u16, Stop> {
    Ok(u16::from_be_bytes([byte(r, end)?, byte(r, end)?]))
}

/// Skips `n` bytes that must lie before `end`: a length reaching past its container is refused
/// before its bytes are awaited.
fn skip(r: &mut Records<'_>, n: usize, end: usize) -> Result<(), Stop> {
    if r.taken() + n > end {
        return Err(Stop::NotTls);
    }
    r.skip(n)
}

#[cfg(test)]
mod tests {
    use super::super::record::wrap;
    use super::super::tests::sni;
    use super::super::Sni;
    use super::*;

    /// A minimal ClientHello carrying `extensions` (None: no extensions block at all).
    fn hello(extensions: Option<&[u8]>) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        if let Some(ext) = extensions {
            body.extend_from_slice(&u16::try_from(ext.len()).unwrap().to_be_bytes());
            body.extend_from_slice(ext);
        }
        let mut hs = vec![CLIENT_HELLO, 0];
        hs.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        hs.extend_from_slice(&body);
        wrap(&hs, &[])
    }

    /// A server_name extension with the given (type, name) entries.
    fn sni_ext(entries: &[(u8, &[u8])]) -> Vec<u8> {
        let mut list = Vec::new();
        for (kind, name) in entries {
            list.push(*kind);
            list.extend_from_slice(&u16::try_from(name.len()).unwrap().to_be_bytes());
            list.extend_from_slice(name);
        }
        let mut ext = vec![0, 0];
        ext.extend_from_slice(&u16::try_from(list.len() + 2).unwrap().to_be_bytes());
        ext.extend_from_slice(&u16::try_from(list.len()).unwrap().to_be_bytes());
        ext.extend_from_slice(&list);
        ext
    }

    #[test]
    fn synthetic_hellos() {
        let name = |n: &[u8]| hello(Some(&sni_ext(&[(HOST_NAME, n)])));
        assert_eq!(
            sni(&name(b"Db-1.EXAMPLE.com")),
            Ok(Some("Db-1.EXAMPLE.com".into()))
        );
        assert_eq!(sni(&name(b"_acme.x")), Ok(Some("_acme.x".into())));
        assert_eq!(sni(&name(b"localhost")), Ok(Some("localhost".into())));
        let longest = [
            &[b'a'; 63][..],
            b".",
            &[b'b'; 63],
            b".",
            &[b'c'; 63],
            b".",
            &[b'd'; 61],
        ]
        .concat();
        assert_eq!(longest.len(), MAX_NAME_LEN);
        assert_eq!(
            sni(&name(&longest)),
            Ok(Some(String::from_utf8(longest).unwrap()))
        );
        assert_eq!(sni(&hello(None)), Ok(None));
        assert_eq!(sni(&hello(Some(&[]))), Ok(None));
        assert_eq!(sni(&hello(Some(b"\x00\x17\x00\x00"))), Ok(None));
        // Other name types are skipped.
        let other = sni_ext(&[(1, b"opaque"), (HOST_NAME, b"a.b")]);
        assert_eq!(sni(&hello(Some(&other))), Ok(Some("a.b".into())));
        assert_eq!(sni(&hello(Some(&sni_ext(&[(1, b"x")])))), Ok(None));
    }

    #[test]
    fn bad_names_and_lists() {
        let too_long = [
            &[b'a'; 63][..],
            b".",
            &[b'b'; 63],
            b".",
            &[b'c'; 63],
            b".",
            &[b'd'; 62],
        ]
        .concat();
        let long_label = [b'a'; 64];
        let names: &[&[u8]] = &[
            b"",
            b"a..b",
            b".a",
            b"a.",
            b"a b",
            b"a/b",
            b"a:443",
            "é.fr".as_bytes(),
            b"a\0",
            &long_label,
            &too_long,
        ];
        for name in names {
            let buf = hello(Some(&sni_ext(&[(HOST_NAME, name)])));
            assert_eq!(
                sni(&buf),
                Err(Sni::NotTls),
                "{}",
                String::from_utf8_lossy(name)
            );
        }
        let two = sni_ext(&[(HOST_NAME, b"a.b"), (HOST_NAME, b"c.d")]);
        assert_eq!(sni(&hello(Some(&two))), Err(Sni::NotTls));
        let twice = [
            sni_ext(&[(HOST_NAME, b"a.b")]),
            sni_ext(&[(HOST_NAME, b"a.b")]),
        ]
        .concat();
        assert_eq!(sni(&hello(Some(&twice))), Err(Sni::NotTls));
        assert_eq!(
            sni(&hello(Some(b"\x00\x00\x00\x00"))),
            Err(Sni::NotTls),
            "empty list"
        );
        assert_eq!(
            sni(&hello(Some(b"\x00\x00\x00\x02\x00\x01"))),
            Err(Sni::NotTls)
        );
    }
}
