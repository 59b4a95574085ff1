//! Field lines (RFC 9110 §5, RFC 9112 §5): names, values, lists, and the offsets that hold them.

use super::HeadError;
use std::ops::Range;

/// One field line as offsets into the buffer it was parsed from; repeated fields stay separate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field name, case as received.
    pub name: Range<usize>,
    /// The value without surrounding whitespace.
    pub value: Range<usize>,
}

impl Field {
    /// The name's bytes; empty if `buf` is not the buffer this field came from.
    pub fn name<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.name.clone()).unwrap_or_default()
    }

    /// The value's bytes; empty if `buf` is not the buffer this field came from.
    pub fn value<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.value.clone()).unwrap_or_default()
    }

    /// Whether this field is `name`, compared case-insensitively as RFC 9110 §5.1 requires.
    pub fn is(&self, buf: &[u8], name: &str) -> bool {
        self.name(buf).eq_ignore_ascii_case(name.as_bytes())
    }
}

/// `tchar` of RFC 9110 §5.6.2: the only bytes allowed in names, methods, codings and options.
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `token = 1*tchar`.
pub(super) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// `field-content` bytes: HTAB, SP, VCHAR and obs-text; every other control byte is refused.
pub(super) fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// Where `part` sits inside `buf`, for turning httparse's borrowed slices into offsets.
pub(super) fn span(buf: &[u8], part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(buf.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= buf.len()).then_some(start..end)
}

/// Strips optional whitespace (SP/HTAB) from both ends of `range` within `buf`.
pub(super) fn trim_ows(buf: &[u8], mut range: Range<usize>) -> Range<usize> {
    let ows = |i: usize| matches!(buf.get(i), Some(b' ' | b'\t'));
    while range.start < range.end && ows(range.start) {
        range.start += 1;
    }
    while range.end > range.start && ows(range.end - 1) {
        range.end -= 1;
    }
    range
}

/// The elements of a comma-separated list value (RFC 9110 §5.6.1), trimmed, empty ones included.
pub(super) fn elements(buf: &[u8], value: Range<usize>) -> Elements<'_> {
    Elements {
        buf,
        pos: value.start,
        end: value.end,
        done: false,
    }
}

/// Iterator behind [`elements`]; yields ranges so callers can keep offsets.
pub(super) struct Elements<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    done: bool,
}

impl Iterator for Elements<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        if self.done {
            return None;
        }
        let rest = self.buf.get(self.pos..self.end).unwrap_or_default();
        let stop = match rest.iter().position(|&b| b == b',') {
            Some(i) => self.pos + i,
            None => {
                self.done = true;
                self.end
            }
        };
        let element = trim_ows(self.buf, self.pos..stop);
        self.pos = stop + 1;
        Some(element)
    }
}

/// Checks one field line without its line ending and returns it as offsets into `line`.
///
/// Used for trailers and to name the rule behind an httparse error, so both share one grammar.
pub(super) fn parse_line(line: &[u8]) -> Result<Field, HeadError> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(HeadError::ObsFold);
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HeadError::FieldName)?;
    let name = line.get(..colon).unwrap_or_default();
    if matches!(name.last(), Some(b' ' | b'\t')) {
        return Err(HeadError::WhitespaceBeforeColon);
    }
    if !is_token(name) {
        return Err(HeadError::FieldName);
    }
    let value = trim_ows(line, colon + 1..line.len());
    let bytes = line.get(value.clone()).unwrap_or_default();
    if !bytes.iter().all(|&b| is_value_byte(b)) {
        return Err(HeadError::FieldValue);
    }
    Ok(Field {
        name: 0..colon,
        value,
    })
}

/// Refuses a line ending that is a lone LF; httparse accepts it, a peer may not.
pub(super) fn check_crlf(head: &[u8]) -> Result<(), HeadError> {
    let mut prev = 0u8;
    for &b in head {
        if b == b'\n' && prev != b'\r' {
            return Err(HeadError::BareLf);
        }
        prev = b;
    }
    Ok(())
}

/// Names the rule behind an httparse field error by re-reading the field lines after line one.
pub(super) fn diagnose(head: &[u8], fallback: HeadError) -> HeadError {
    let mut lines = head
        .split(|&b| b == b'\n')
        .skip_while(|l| l.is_empty() || *l == b"\r");
    lines.next(); // the start line, already accepted by httparse
    let mut lines = lines.peekable();
    while let Some(line) = lines.next() {
        let ended = lines.peek().is_some(); // split leaves the final, unterminated piece last
        let stripped = line.strip_suffix(b"\r");
        if ended && stripped.is_none() {
            return HeadError::BareLf;
        }
        let line = stripped.unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if let Err(e) = parse_line(line) {
            return e;
        }
    }
    fallback
}

/// Records httparse's fields as offsets into `buf`, checking names and values ourselves too.
pub(super) fn collect(
    buf: &[u8],
    parsed: &[httparse::Header<'_>],
    out: &mut Vec<Field>,
) -> Result<(), HeadError> {
    for h in parsed {
        let name = span(buf, h.name.as_bytes()).ok_or(HeadError::FieldName)?;
        let value = span(buf, h.value).ok_or(HeadError::FieldValue)?;
        if !is_token(h.name.as_bytes()) {
            return Err(HeadError::FieldName);
        }
        if !h.value.iter().all(|&b| is_value_byte(b)) {
            return Err(HeadError::FieldValue);
        }
        out.push(Field { name, value });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token(b"Content-Length"));
        assert!(is_token(b"x!#$%&'*+-.^_`|~9"));
        for bad in [&b""[..], b"a b", b"a:b", b"a\"b", b"a(b", b"\xff", b"a\0"] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn list_elements_are_trimmed_and_keep_empties() {
        let buf = b"x: a , b,,\tc ";
        let got: Vec<_> = elements(buf, 3..buf.len()).map(|r| &buf[r]).collect();
        assert_eq!(got, [&b"a"[..], b"b", b"", b"c"]);
        let empty: Vec<_> = elements(buf, 3..3).collect();
        assert_eq!(empty, vec![3..3]);
    }

    #[test]
    fn field_lines() {
        let f = parse_line(b"Name: \t value  ").unwrap();
        assert_eq!((f.name, f.value), (0..4, 8..13));
        let f = parse_line(b"Empty:").unwrap();
        assert_eq!(f.value.len(), 0);
        let cases: [(&[u8], HeadError); 7] = [
            (b" folded: x", HeadError::ObsFold),
            (b"\tfolded: x", HeadError::ObsFold),
            (b"Name : x", HeadError::WhitespaceBeforeColon),
            (b"no colon", HeadError::FieldName),
            (b": empty name", HeadError::FieldName),
            (b"Na\"me: x", HeadError::FieldName),
            (b"Name: a\0b", HeadError::FieldValue),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line), Err(want), "{line:?}");
        }
        assert_eq!(parse_line(b"Name: a\rb"), Err(HeadError::FieldValue));
        assert_eq!(parse_line(b"Name: a\x7fb"), Err(HeadError::FieldValue));
        assert!(
            parse_line(b"Name: caf\xc3\xa9").is_ok(),
            "obs-text is allowed"
        );
    }

    #[test]
    fn bare_lf_is_refused() {
        assert_eq!(check_crlf(b"a\r\nb\r\n\r\n"), Ok(()));
        assert_eq!(check_crlf(b"a\nb"), Err(HeadError::BareLf));
        assert_eq!(check_crlf(b"\n"), Err(HeadError::BareLf));
    }

    #[test]
    fn diagnose_names_the_rule() {
        let d = |h: &[u8]| diagnose(h, HeadError::RequestLine);
        assert_eq!(
            d(b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n"),
            HeadError::ObsFold
        );
        assert_eq!(
            d(b"GET / HTTP/1.1\r\nA : b\r\n"),
            HeadError::WhitespaceBeforeColon
        );
        assert_eq!(
            d(b"\r\nGET / HTTP/1.1\r\nA: \x01\r\n"),
            HeadError::FieldValue
        );
        assert_eq!(d(b"GET / HTTP/1.1\r\n\r\nA : b"), HeadError::RequestLine);
        assert_eq!(d(b"GET / HTTP/1.1\r\nA: b\nc\r\n"), HeadError::BareLf);
    }

    #[test]
    fn span_rejects_foreign_slices() {
        let buf = b"hello";
        assert_eq!(span(buf, &buf[1..3]), Some(1..3));
        assert_eq!(span(buf, b"elsewhere"), None);
    }
}
