//! The server name a TLS client asks for (the SNI extension, RFC 6066 section 3), read from its
//! ClientHello (RFC 8446 4.1.2) without consuming it: the bytes are forwarded untouched once an
//! upstream is picked by `route`.
//!
//! The hello may come in several records; `record::Records` walks them in place. Only a name
//! that a record boundary cuts in two is copied, into the caller's 253-byte `scratch`, which is
//! why `server_name` takes one (clients that fragment on purpose, to defeat filtering, cut exactly
//! there). The whole hello is checked before a verdict, so `Found` and `Missing` mean the hello is
//! complete and well-formed, and a given input always gets the same answer however it arrived.

mod hello;
mod record;
mod route;

pub use route::route;

use record::{Records, Stop};

/// The ClientHello must be complete within this many bytes of the stream, record headers
/// included: real hellos are 0.5 to 2 KiB (post-quantum key shares included), and a peek
/// buffer this long always gets a verdict, never `Incomplete`.
pub const MAX_HELLO_BYTES: usize = 16 * 1024;
/// The longest DNS host name, and the size of the scratch buffer `server_name` takes.
pub const MAX_NAME_LEN: usize = 253;
/// The longest DNS label.
const MAX_LABEL_LEN: usize = 63;

/// What the first bytes of a connection say about the server name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sni<'a> {
    /// A valid start of a ClientHello: read more.
    Incomplete,
    /// A complete ClientHello naming this host (as sent; compare case-insensitively).
    Found(&'a str),
    /// A complete ClientHello without a server name.
    Missing,
    /// Not a TLS ClientHello, malformed, or not complete within `MAX_HELLO_BYTES`.
    NotTls,
}

/// Reads the server name from the ClientHello at the start of `buf`. `scratch` holds the name
/// only when records split it; otherwise `Found` borrows from `buf`.
pub fn server_name<'a>(buf: &'a [u8], scratch: &'a mut [u8; MAX_NAME_LEN]) -> Sni<'a> {
    let mut records = Records::new(buf, MAX_HELLO_BYTES);
    let (mut at, len) = match hello::walk(&mut records) {
        Ok(Some(name)) => name,
        Ok(None) => return Sni::Missing,
        Err(Stop::Incomplete) => return Sni::Incomplete,
        Err(Stop::NotTls) => return Sni::NotTls,
    };
    let name = match at.contiguous(len) {
        Some(name) => name,
        None => {
            let Some(out) = scratch.get_mut(..len) else {
                return Sni::NotTls;
            };
            if at.copy_to(out).is_err() {
                return Sni::NotTls;
            }
            out
        }
    };
    match std::str::from_utf8(name) {
        Ok(name) if host_name(name) => Sni::Found(name),
        _ => Sni::NotTls,
    }
}

/// A DNS host name as SNI carries it: ASCII letters, digits, `-` and `_` in non-empty labels of
/// at most 63 bytes, dot-separated, no trailing dot (RFC 6066), at most 253 bytes.
fn host_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::record::{wrap as records, RECORD_HEADER_LEN};
    use super::*;

    /// `openssl s_client -servername db.example.com` (OpenSSL 3.0.19), as captured.
    const OPENSSL_SNI: &[&str] = &[
    "160301013b01000137030314d2f914d508f6c4bfb7755a87dcfdfb193f7b62a0bd6fe54ef421ab1657722620c898",
    "4c0bde8481ca77e05ea12e68bca1aa52722445c33803b74d8f243fb53f7a003e130213031301c02cc030009fcca9",
    "cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f",
    "00ff010000b000000013001100000e64622e6578616d706c652e636f6d000b000403000102000a00160014001d00",
    "17001e0019001801000101010201030104002300000016000000170000000d002a00280403050306030807080808",
    "09080a080b080408050806040105010601030303010302040205020602002b0009080304030303020301002d0002",
    "0101003300260024001d00208ed14809863140ab5a1702009c248a0481bd37fd44124fabf506ec1f12628a2b",
    ];

    /// `openssl s_client -noservername` (OpenSSL 3.0.19), as captured.
    const OPENSSL_NO_SNI: &[&str] = &[
    "1603010124010001200303fbb215f527c8be83f5a15f4fab83227aac7c13b2f89125d282daaa2d34176c8c200219",
    "3e05d7219f8ec5a762eb51dd04268ffd2bddea8eddcc14182d7926f27e05003e130213031301c02cc030009fcca9",
    "cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f",
    "00ff01000099000b000403000102000a00160014001d0017001e0019001801000101010201030104002300000016",
    "000000170000000d002a0028040305030603080708080809080a080b080408050806040105010601030303010302",
    "040205020602002b0009080304030303020301002d00020101003300260024001d0020c99980949c53d901adeccf",
    "8e275df0a8bb88ae2524d732ec8da7db0bff6e1a79",
    ];

    fn unhex(lines: &[&str]) -> Vec<u8> {
        let hex = lines.concat();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The result with an owned name, so it outlives the scratch buffer.
    pub(super) fn sni(buf: &[u8]) -> Result<Option<String>, Sni<'static>> {
        match server_name(buf, &mut [0; MAX_NAME_LEN]) {
            Sni::Found(name) => Ok(Some(name.to_owned())),
            Sni::Missing => Ok(None),
            Sni::Incomplete => Err(Sni::Incomplete),
            Sni::NotTls => Err(Sni::NotTls),
        }
    }

    #[test]
    fn captured_hellos() {
        let with = unhex(OPENSSL_SNI);
        let mut scratch = [0; MAX_NAME_LEN];
        let found = server_name(&with, &mut scratch);
        assert_eq!(found, Sni::Found("db.example.com"));
        let Sni::Found(name) = found else {
            unreachable!()
        };
        assert!(
            with.as_ptr_range().contains(&name.as_ptr()),
            "borrowed from the buffer"
        );
        assert_eq!(sni(&unhex(OPENSSL_NO_SNI)), Ok(None));
    }

    #[test]
    fn every_prefix_is_incomplete_then_the_same_answer() {
        for (capture, want) in [
            (OPENSSL_SNI, Some("db.example.com")),
            (OPENSSL_NO_SNI, None),
        ] {
            let mut buf = unhex(capture);
            for cut in 0..buf.len() {
                assert_eq!(sni(&buf[..cut]), Err(Sni::Incomplete), "cut {cut}");
            }
            buf.extend_from_slice(b"\x14\x03\x03\x00\x01\x01more");
            assert_eq!(
                sni(&buf),
                Ok(want.map(str::to_owned)),
                "bytes after the hello are not read"
            );
        }
    }

    #[test]
    fn a_hello_cut_into_records_anywhere() {
        let hs = unhex(OPENSSL_SNI)[RECORD_HEADER_LEN..].to_vec();
        let want = Ok(Some("db.example.com".to_owned()));
        for cut in 1..hs.len() {
            let buf = records(&hs, &[cut]);
            assert_eq!(sni(&buf), want, "cut {cut}");
            assert_eq!(
                sni(&buf[..buf.len() - 1]),
                Err(Sni::Incomplete),
                "cut {cut}"
            );
        }
        let every_byte: Vec<usize> = (1..hs.len()).collect();
        assert_eq!(sni(&records(&hs, &every_byte)), want);
    }

    #[test]
    fn not_tls_as_soon_as_it_shows() {
        for input in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"G",
            b"\x16\x02",
            b"PROXY TCP4",
            b"\x16\x03\x01\x00\x00",
        ] {
            assert_eq!(sni(input), Err(Sni::NotTls), "{input:?}");
        }
        assert_eq!(
            sni(b"\x16\x03\x01\x00\x10\x02"),
            Err(Sni::NotTls),
            "a ServerHello"
        );
        assert_eq!(sni(b""), Err(Sni::Incomplete));
        assert_eq!(
            sni(b"\x16\x03\x01\x02\x00\x01\x00\x01"),
            Err(Sni::Incomplete)
        );
    }

    #[test]
    fn lengths_that_do_not_add_up() {
        let good = unhex(OPENSSL_SNI);
        let patch = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            b
        };
        // Handshake length beyond the limit: refused before the bytes come.
        assert_eq!(sni(&patch(6, &[0, 0x40, 0])[..9]), Err(Sni::NotTls));
        assert_eq!(sni(&patch(6, &[0xff, 0xff, 0xff])), Err(Sni::NotTls));
        // Session id longer than 32, odd or empty cipher suites, no compression method.
        assert_eq!(sni(&patch(43, &[33])), Err(Sni::NotTls));
        assert_eq!(sni(&patch(76, &[0, 0x3f])), Err(Sni::NotTls));
        assert_eq!(sni(&patch(76, &[0, 0])), Err(Sni::NotTls));
        // Extensions block one byte longer or shorter than the hello.
        let ext_len = u16::from_be_bytes([good[142], good[143]]);
        assert_eq!(
            sni(&patch(142, &(ext_len + 1).to_be_bytes())),
            Err(Sni::NotTls)
        );
        assert_eq!(
            sni(&patch(142, &(ext_len - 1).to_be_bytes())),
            Err(Sni::NotTls)
        );
        // Extension, server_name list and host name lengths past their containers.
        assert_eq!(sni(&patch(146, &[0xff, 0])), Err(Sni::NotTls));
        assert_eq!(sni(&patch(148, &[0, 0x20])), Err(Sni::NotTls));
        assert_eq!(sni(&patch(151, &[0, 0x20])), Err(Sni::NotTls));
        // A record shorter than the hello followed by garbage instead of the next record.
        let mut short = patch(3, &[0, 100]);
        short.truncate(105);
        short.extend_from_slice(b"GET /");
        assert_eq!(sni(&short), Err(Sni::NotTls));
    }

    #[test]
    fn a_full_peek_buffer_always_decides() {
        // A 3000-byte hello (a padding extension) in one-byte records: 18 KB on the wire.
        let mut hs = vec![1, 0, 0x0b, 0xb8, 3, 3];
        hs.extend_from_slice(&[7; 32]);
        hs.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0, 0x0b, 0x8d, 0, 21, 0x0b, 0x89]);
        hs.resize(3004, 0);
        let whole = records(&hs, &[]);
        assert_eq!(sni(&whole), Ok(None));
        let every_byte: Vec<usize> = (1..hs.len()).collect();
        let buf = records(&hs, &every_byte);
        assert!(buf.len() > MAX_HELLO_BYTES);
        assert_eq!(sni(&buf[..MAX_HELLO_BYTES / 2]), Err(Sni::Incomplete));
        assert_eq!(sni(&buf[..MAX_HELLO_BYTES]), Err(Sni::NotTls));
        assert_eq!(sni(&buf), Err(Sni::NotTls));
    }
}
