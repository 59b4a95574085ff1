//! Request ids: the `X-Request-Id` a client sent, when it looks like an id, else one we make.
//!
//! A generated id is 32 lower-case hex digits, `PPPPPPPPPPPPPPPPWWWWCCCCCCCCCCCC`: a random
//! 64-bit prefix drawn once per process, the worker's index (16 bits) and that worker's request
//! counter (48 bits). Unique across workers and restarts without any shared state, and made
//! on the stack: no allocation, no lock, no syscall per request. 32 hex digits is also the shape
//! of a W3C trace id, so tracing systems take it as is.

use std::cell::Cell;

/// The request field.
pub const HEADER: &str = "x-request-id";
/// Longest client id kept; longer ones are replaced.
pub const MAX_LEN: usize = 128;
/// Length of a generated id.
pub const GENERATED_LEN: usize = 32;

/// An id held on the stack: a kept client id or a generated one; empty until decided.
#[derive(Clone, Copy)]
pub struct RequestId {
    bytes: [u8; MAX_LEN],
    len: u8,
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId {
            bytes: [0; MAX_LEN],
            len: 0,
        }
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RequestId {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Always ASCII (checked on the way in).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The client's id if it is acceptable (see `acceptable`).
    pub fn from_client(value: &[u8]) -> Option<RequestId> {
        if !acceptable(value) {
            return None;
        }
        let mut id = RequestId::default();
        id.bytes[..value.len()].copy_from_slice(value);
        id.len = value.len() as u8;
        Some(id)
    }
}

/// A client id is kept when it is 1 to `MAX_LEN` bytes of letters, digits and `-_.:;=+/@~`:
/// enough for UUIDs, trace ids, base64 and AWS-style `Root=1-...;Parent=...` values, and
/// nothing that needs escaping in a header, a log line or a shell.
pub fn acceptable(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LEN
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.:;=+/@~".contains(&b))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex(out: &mut [u8], mut v: u64) {
    for slot in out.iter_mut().rev() {
        *slot = HEX[(v & 0xf) as usize];
        v >>= 4;
    }
}

/// One worker's id source.
pub struct Generator {
    /// Process prefix and worker index, already in hex.
    prefix: [u8; 20],
    counter: Cell<u64>,
}

impl Generator {
    pub fn new(process: u64, worker: usize) -> Generator {
        let mut prefix = [0u8; 20];
        hex(&mut prefix[..16], process);
        hex(&mut prefix[16..], worker as u64 & 0xffff);
        Generator {
            prefix,
            counter: Cell::new(0),
        }
    }

    /// The next id of this worker.
    pub fn next(&self) -> RequestId {
        let n = (self.counter.get() + 1) & ((1 << 48) - 1);
        self.counter.set(n);
        let mut id = RequestId::default();
        id.bytes[..20].copy_from_slice(&self.prefix);
        hex(&mut id.bytes[20..GENERATED_LEN], n);
        id.len = GENERATED_LEN as u8;
        id
    }
}

/// The random per-process prefix (from the OS's random source; time and pid if that fails).
pub fn process_prefix() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut b).is_ok() {
        return u64::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_fixed_width_hex_and_distinct() {
        let g = Generator::new(0x0123_4567_89ab_cdef, 3);
        let a = g.next();
        let b = g.next();
        assert_eq!(a.as_str(), "0123456789abcdef0003000000000001");
        assert_eq!(b.as_str(), "0123456789abcdef0003000000000002");
        assert_eq!(a.as_bytes().len(), GENERATED_LEN);
        assert!(acceptable(a.as_bytes()));
        let other = Generator::new(0x0123_4567_89ab_cdef, 4).next();
        assert_ne!(other.as_str(), a.as_str());
    }

    #[test]
    fn client_ids_are_checked() {
        for ok in [
            &b"abc"[..],
            b"123e4567-e89b-12d3-a456-426614174000",
            b"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            b"aGVsbG8+/w==",
        ] {
            let id = RequestId::from_client(ok).expect("kept");
            assert_eq!(id.as_bytes(), ok);
        }
        let long = [b'a'; MAX_LEN + 1];
        for bad in [
            &b""[..],
            b"has space",
            b"quote\"",
            b"back\\slash",
            b"comma,list",
            b"ctl\x01",
            b"\xc3\xa9",
            &long[..],
        ] {
            assert!(RequestId::from_client(bad).is_none(), "{bad:?}");
        }
        assert!(RequestId::from_client(&long[..MAX_LEN]).is_some());
    }
}
