//! Size limits on heads (RFC 9112 §3, RFC 6585 §5): enforced while bytes are still arriving.

use super::{HeadError, MAX_METHOD_LEN};

/// Size limits applied while a head is still arriving, so a slow or hostile peer is cut off early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Start line plus fields plus the final CRLF; beyond it 431.
    pub max_head: usize,
    /// Request-target octets; beyond it 414 (unused for responses).
    pub max_target: usize,
    /// Field lines; beyond it 431 (capped at [`MAX_HEADERS_CEILING`](super::MAX_HEADERS_CEILING)).
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        use crate::config::defaults as d;
        HeadLimits {
            max_head: usize::try_from(d::MAX_REQUEST_HEAD).unwrap_or(usize::MAX),
            max_target: usize::try_from(d::MAX_REQUEST_TARGET).unwrap_or(usize::MAX),
            max_headers: d::MAX_HEADERS,
        }
    }
}

/// Request-line octets besides the target: method, two SP, `HTTP/1.1` and CR.
const REQUEST_LINE_OVERHEAD: usize = MAX_METHOD_LEN + "  HTTP/1.1\r".len();

/// 414 before the request line is complete: no LF within the longest line the limit allows.
pub(super) fn early_target_check(buf: &[u8], max_target: usize) -> Result<(), HeadError> {
    // httparse skips empty lines before the request line (RFC 9112 §2.2); so do we here.
    let mut start = 0;
    while buf.get(start..start + 2) == Some(b"\r\n") {
        start += 2;
    }
    let line = buf.get(start..).unwrap_or_default();
    let bound = max_target.saturating_add(REQUEST_LINE_OVERHEAD);
    let probe = line.get(..bound.saturating_add(1)).unwrap_or(line);
    if probe.contains(&b'\n') || probe.len() <= bound {
        Ok(())
    } else {
        Err(HeadError::TargetTooLong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::h1::{RequestHead, MAX_HEADERS_CEILING};

    fn parse(raw: &[u8], limits: &HeadLimits) -> Result<Option<RequestHead>, HeadError> {
        let mut head = RequestHead::new();
        Ok(head.parse(raw, limits)?.map(|_| head))
    }

    const SMALL: HeadLimits = HeadLimits {
        max_head: 200,
        max_target: 50,
        max_headers: 3,
    };

    #[test]
    fn default_limits_come_from_config() {
        let l = HeadLimits::default();
        assert_eq!(l.max_head, 64 * 1024);
        assert_eq!(l.max_target, 16 * 1024);
        assert!(l.max_headers <= MAX_HEADERS_CEILING);
    }

    #[test]
    fn an_8000_octet_target_passes() {
        let raw = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(7999));
        let limits = HeadLimits {
            max_target: 16384,
            ..HeadLimits::default()
        };
        let head = parse(raw.as_bytes(), &limits).unwrap().unwrap();
        assert_eq!(head.target().len(), 8000);
    }

    #[test]
    fn long_target_is_414_even_before_the_line_ends() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(50));
        assert_eq!(
            parse(long.as_bytes(), &SMALL).err(),
            Some(HeadError::TargetTooLong)
        );
        let partial = format!("\r\nGET /{}", "a".repeat(50 + REQUEST_LINE_OVERHEAD));
        assert_eq!(
            parse(partial.as_bytes(), &SMALL).err(),
            Some(HeadError::TargetTooLong)
        );
        let short = &partial.as_bytes()[..60];
        assert!(
            parse(short, &SMALL).unwrap().is_none(),
            "may still end in time"
        );
    }

    #[test]
    fn big_head_is_431() {
        let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n", "a".repeat(200));
        assert_eq!(
            parse(big.as_bytes(), &SMALL).err(),
            Some(HeadError::HeadTooLarge)
        );
        let complete = format!("{big}\r\n");
        assert_eq!(
            parse(complete.as_bytes(), &SMALL).err(),
            Some(HeadError::HeadTooLarge)
        );
        let fits = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "a".repeat(168)
        );
        assert_eq!(fits.len(), SMALL.max_head);
        assert!(
            parse(fits.as_bytes(), &SMALL).unwrap().is_some(),
            "the limit itself passes"
        );
    }

    #[test]
    fn too_many_fields_is_431() {
        let many = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(parse(many, &SMALL).err(), Some(HeadError::TooManyFields));
        let three = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
        assert!(parse(three, &SMALL).unwrap().is_some());
    }

    #[test]
    fn long_method_is_501() {
        let method = "M".repeat(MAX_METHOD_LEN + 1);
        let raw = format!("{method} / HTTP/1.1\r\nHost: a\r\n\r\n");
        let got = parse(raw.as_bytes(), &HeadLimits::default()).err();
        assert_eq!(got.map(HeadError::status), Some(501));
    }
}
