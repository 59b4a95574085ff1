//! Arbitrary bytes as the first bytes of a TLS connection: `server_name` never panics, a name
//! found lies in the input (or the scratch buffer) and is a valid host name, every prefix is
//! `Incomplete` or the same verdict, and `MAX_HELLO_BYTES` bytes always decide.
//!
//! An input starting with a ClientHello's handshake type (1) is also wrapped into TLS records,
//! whole and cut at several points: the verdict must not depend on where records end.

#![no_main]

use coregate::l4::sni::{server_name, Sni, MAX_HELLO_BYTES, MAX_NAME_LEN};
use libfuzzer_sys::fuzz_target;

/// Prefixes (and record cuts) below this are all tried; beyond, every `STRIDE` bytes.
const ALL_CUTS: usize = 256;
/// Step between the later prefixes and cuts tried.
const STRIDE: usize = 13;
/// Wrapped handshakes up to this long are also tried in one-byte records.
const ONE_BYTE_RECORDS: usize = 512;
/// Handshake type of a ClientHello.
const CLIENT_HELLO: u8 = 1;

/// A verdict that outlives the buffers.
#[derive(Debug, PartialEq)]
enum Verdict {
    Incomplete,
    Found(String),
    Missing,
    NotTls,
}

/// Runs `server_name` and checks where a found name lives.
fn verdict(buf: &[u8]) -> Verdict {
    let mut scratch = [0; MAX_NAME_LEN];
    let scratch_range = scratch.as_ptr_range();
    match server_name(buf, &mut scratch) {
        Sni::Incomplete => {
            assert!(buf.len() < MAX_HELLO_BYTES);
            Verdict::Incomplete
        }
        Sni::Found(name) => {
            let range = name.as_bytes().as_ptr_range();
            let inside =
                |r: &std::ops::Range<*const u8>| r.start <= range.start && range.end <= r.end;
            assert!(inside(&buf.as_ptr_range()) || inside(&scratch_range));
            assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN);
            assert!(name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)));
            assert!(!name.starts_with('.') && !name.ends_with('.') && !name.contains(".."));
            Verdict::Found(name.to_owned())
        }
        Sni::Missing => Verdict::Missing,
        Sni::NotTls => Verdict::NotTls,
    }
}

fn cuts(len: usize) -> impl Iterator<Item = usize> {
    (0..len.min(ALL_CUTS)).chain((ALL_CUTS..len).step_by(STRIDE))
}

/// Handshake bytes cut into records at `cuts`.
fn wrap(handshake: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain([&handshake.len()]) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&u16::try_from(to - from).unwrap().to_be_bytes());
        out.extend_from_slice(&handshake[from..to]);
        from = to;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let whole = verdict(data);
    for cut in cuts(data.len()) {
        let part = verdict(&data[..cut]);
        assert!(
            part == Verdict::Incomplete || part == whole,
            "prefix {cut}: {part:?} vs {whole:?}"
        );
    }
    // Wrapped: room for two record headers below the limit, so cuts cannot cross it.
    if data.first() != Some(&CLIENT_HELLO) || data.len() + 10 > MAX_HELLO_BYTES {
        return;
    }
    let one = verdict(&wrap(data, &[]));
    for cut in cuts(data.len()).skip(1) {
        assert_eq!(verdict(&wrap(data, &[cut])), one, "records cut at {cut}");
    }
    if data.len() <= ONE_BYTE_RECORDS && data.len() * 6 <= MAX_HELLO_BYTES {
        let every: Vec<usize> = (1..data.len()).collect();
        assert_eq!(verdict(&wrap(data, &every)), one, "one-byte records");
    }
});
