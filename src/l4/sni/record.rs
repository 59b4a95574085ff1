//! Reading a handshake message that TLS records may have cut into fragments (RFC 8446 5.1),
//! in place: the cursor steps over each record header as it reaches it, nothing is copied.

/// A record header: content type, legacy version (2 bytes), length (2 bytes).
pub const RECORD_HEADER_LEN: usize = 5;
/// The largest record payload TLS allows (2^14).
pub const MAX_RECORD_LEN: usize = 1 << 14;
/// Content type of handshake records; anything else first means "not a TLS client".
const HANDSHAKE: u8 = 22;
/// Major byte of every record version since SSL 3.0.
const MAJOR: u8 = 3;
/// Record versions tolerated in the minor byte: TLS 1.0 (what most clients put there) to 1.3.
const MINORS: std::ops::RangeInclusive<u8> = 1..=4;

/// Why the cursor could not go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The bytes so far are fine; more are needed.
    Incomplete,
    /// Not a TLS handshake record, malformed, or past the limit.
    NotTls,
}

/// A cursor over the handshake bytes carried by the records at the start of `buf`.
#[derive(Debug, Clone, Copy)]
pub struct Records<'a> {
    buf: &'a [u8],
    /// Index in `buf` of the next handshake byte, or of the next record header when `left` is 0.
    pos: usize,
    /// Handshake bytes from `pos` to the end of the current record.
    left: usize,
    /// Handshake bytes consumed so far.
    taken: usize,
    /// Bytes of `buf` the cursor may need; needing one beyond is `NotTls`, not `Incomplete`.
    limit: usize,
}

impl<'a> Records<'a> {
    /// A cursor at the start of `buf`, which must hold a record header first.
    pub fn new(buf: &'a [u8], limit: usize) -> Self {
        Records {
            buf,
            pos: 0,
            left: 0,
            taken: 0,
            limit,
        }
    }

    /// Handshake bytes consumed so far.
    pub fn taken(&self) -> usize {
        self.taken
    }

    /// Fails unless `buf[..end]` is within the limit and has arrived.
    fn need(&self, end: usize) -> Result<(), Stop> {
        if end > self.limit {
            Err(Stop::NotTls)
        } else if end > self.buf.len() {
            Err(Stop::Incomplete)
        } else {
            Ok(())
        }
    }

    /// Steps over record headers until handshake bytes are at `pos`; checks each header byte as
    /// soon as it is there, so garbage is refused before the header is whole.
    fn fill(&mut self) -> Result<(), Stop> {
        while self.left == 0 {
            let header = self.buf.get(self.pos..).unwrap_or_default();
            let ok = header
                .iter()
                .take(RECORD_HEADER_LEN)
                .enumerate()
                .all(|(i, &b)| match i {
                    0 => b == HANDSHAKE,
                    1 => b == MAJOR,
                    2 => MINORS.contains(&b),
                    _ => true,
                });
            if !ok {
                return Err(Stop::NotTls);
            }
            self.need(self.pos + RECORD_HEADER_LEN)?;
            let Some(&[.., hi, lo]) = header.first_chunk::<RECORD_HEADER_LEN>() else {
                return Err(Stop::Incomplete);
            };
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            // Zero-length handshake fragments are forbidden (RFC 8446 5.1), as are oversized ones.
            if len == 0 || len > MAX_RECORD_LEN {
                return Err(Stop::NotTls);
            }
            self.pos += RECORD_HEADER_LEN;
            self.left = len;
        }
        Ok(())
    }

    /// The next handshake byte.
    pub fn u8(&mut self) -> Result<u8, Stop> {
        self.fill()?;
        self.need(self.pos + 1)?;
        let b = *self.buf.get(self.pos).ok_or(Stop::Incomplete)?;
        self.pos += 1;
        self.left -= 1;
        self.taken += 1;
        Ok(b)
    }

    /// The next three handshake bytes, big-endian.
    pub fn u24(&mut self) -> Result<usize, Stop> {
        let (a, b, c) = (self.u8()?, self.u8()?, self.u8()?);
        Ok(usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c))
    }

    /// Steps over `n` handshake bytes, across records as needed.
    pub fn skip(&mut self, mut n: usize) -> Result<(), Stop> {
        while n > 0 {
            self.fill()?;
            let step = n.min(self.left);
            self.need(self.pos + step)?;
            self.pos += step;
            self.left -= step;
            self.taken += step;
            n -= step;
        }
        Ok(())
    }

    /// The next `n` handshake bytes borrowed from `buf`, if they lie in one record and have
    /// arrived; `None` if a record boundary cuts them (use `copy_to` then).
    pub fn contiguous(&self, n: usize) -> Option<&'a [u8]> {
        let mut at = *self;
        at.fill().ok()?;
        let start = at.pos;
        (n <= at.left).then(|| self.buf.get(start..start + n))?
    }

    /// Copies the next `out.len()` handshake bytes into `out`, across records.
    pub fn copy_to(&mut self, out: &mut [u8]) -> Result<(), Stop> {
        for b in out {
            *b = self.u8()?;
        }
        Ok(())
    }
}

/// Handshake bytes cut into records at `cuts`, as a sender might (for tests).
#[cfg(test)]
pub fn wrap(handshake: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain([&handshake.len()]) {
        out.extend_from_slice(&[HANDSHAKE, MAJOR, 1]);
        out.extend_from_slice(&u16::try_from(to - from).unwrap().to_be_bytes());
        out.extend_from_slice(&handshake[from..to]);
        from = to;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_across_records() {
        let buf = b"\x16\x03\x01\x00\x02ab\x16\x03\x03\x00\x03cde";
        let mut r = Records::new(buf, 1000);
        assert_eq!((r.u8(), r.u8()), (Ok(b'a'), Ok(b'b')));
        assert_eq!(r.contiguous(3), Some(&b"cde"[..]));
        let mut r = Records::new(buf, 1000);
        assert_eq!(r.u8(), Ok(b'a'));
        assert_eq!(r.contiguous(2), None);
        let mut out = [0; 3];
        assert_eq!(r.copy_to(&mut out), Ok(()));
        assert_eq!(&out, b"bcd");
        assert_eq!(r.taken(), 4);
        assert_eq!(r.u8(), Ok(b'e'));
        assert_eq!(r.u8(), Err(Stop::Incomplete));
    }

    #[test]
    fn skip_and_limit() {
        let buf = b"\x16\x03\x01\x00\x04abcd\x16\x03\x01\x00\x04efgh";
        let mut r = Records::new(buf, 1000);
        assert_eq!(r.skip(6), Ok(()));
        assert_eq!(r.u8(), Ok(b'g'));
        let mut r = Records::new(buf, 12);
        assert_eq!(r.skip(4), Ok(()));
        assert_eq!(
            r.u8(),
            Err(Stop::NotTls),
            "the second header ends past the limit"
        );
        let mut r = Records::new(&buf[..10], 1000);
        assert_eq!(r.skip(5), Err(Stop::Incomplete));
    }

    #[test]
    fn refuses_bad_headers_early() {
        for bad in [
            &b"G"[..],
            b"\x17",
            b"\x16\x02",
            b"\x16\x03\x00",
            b"\x16\x03\x05",
        ] {
            assert_eq!(Records::new(bad, 1000).u8(), Err(Stop::NotTls), "{bad:?}");
        }
        for bad in [&b"\x16\x03\x01\x00\x00"[..], b"\x16\x03\x01\x40\x01"] {
            assert_eq!(Records::new(bad, 1000).u8(), Err(Stop::NotTls), "{bad:?}");
        }
        assert_eq!(
            Records::new(b"\x16\x03\x04\x40", 1000).u8(),
            Err(Stop::Incomplete)
        );
        assert_eq!(Records::new(b"", 1000).u8(), Err(Stop::Incomplete));
        let after_first = b"\x16\x03\x01\x00\x01a\x15";
        let mut r = Records::new(after_first, 1000);
        assert_eq!(r.u8(), Ok(b'a'));
        assert_eq!(
            r.u8(),
            Err(Stop::NotTls),
            "an alert record in the middle of a hello"
        );
    }
}
