//! The few X.509 fields coregate reads itself: the subject (for the client-certificate header
//! and logs), the SAN DNS names (which SNI names a certificate serves) and the expiry date.
//!
//! Signatures, chains and validity are checked by rustls/webpki; this only reads DER that rustls
//! has accepted (or that `check` reports as unreadable), so a small strict reader suffices.

use std::fmt::Write;

/// A certificate's fields of interest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject as an RFC 4514 string ("CN=a,O=b"), most specific attribute first.
    pub subject: String,
    /// Lower-cased DNS names of the subjectAltName extension (wildcards kept as "*.x").
    pub dns_names: Vec<String>,
    /// The subject's common name, if any (used only when a certificate has no SAN DNS names).
    pub common_name: Option<String>,
    /// notAfter, in seconds since the Unix epoch.
    pub not_after: Option<i64>,
}

/// One DER element: tag, contents, and the bytes after it.
fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Expects an element with `tag`; returns its contents and what follows.
fn expect(data: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, content, rest) = tlv(data)?;
    (t == tag).then_some((content, rest))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];

/// Reads the subject, SAN DNS names and notAfter of a DER certificate.
pub fn parse(der: &[u8]) -> Option<CertInfo> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2; // [0] version
    }
    rest = tlv(rest)?.2; // serialNumber
    rest = expect(rest, SEQUENCE)?.1; // signature algorithm
    rest = expect(rest, SEQUENCE)?.1; // issuer
    let (validity, after) = expect(rest, SEQUENCE)?;
    let (subject, after) = expect(after, SEQUENCE)?;
    rest = expect(after, SEQUENCE)?.1; // subjectPublicKeyInfo
    let not_after = {
        let (_, _, v) = tlv(validity)?;
        let (tag, t, _) = tlv(v)?;
        time(tag, t)
    };
    let mut dns_names = Vec::new();
    while let Some((tag, content, next)) = tlv(rest) {
        rest = next;
        if tag != 0xa3 {
            continue; // issuerUniqueID, subjectUniqueID
        }
        let (mut exts, _) = expect(content, SEQUENCE)?;
        while let Some((ext, next)) = expect(exts, SEQUENCE) {
            exts = next;
            let (oid, mut body) = expect(ext, OID)?;
            if oid != SAN_OID {
                continue;
            }
            if body.first() == Some(&0x01) {
                body = tlv(body)?.2; // critical
            }
            let (value, _) = expect(body, OCTET_STRING)?;
            let (mut names, _) = expect(value, SEQUENCE)?;
            while let Some((tag, name, next)) = tlv(names) {
                names = next;
                if tag == 0x82 {
                    if let Ok(s) = std::str::from_utf8(name) {
                        dns_names.push(s.to_ascii_lowercase());
                    }
                }
            }
        }
    }
    let (subject, common_name) = name(subject)?;
    Some(CertInfo {
        subject,
        dns_names,
        common_name,
        not_after,
    })
}

/// An RFC 4514 string of a Name (RDNs in reverse order) and its first common name.
fn name(mut rdns: &[u8]) -> Option<(String, Option<String>)> {
    let mut parts: Vec<String> = Vec::new();
    let mut cn = None;
    while !rdns.is_empty() {
        let (mut set, next) = expect(rdns, SET)?;
        rdns = next;
        let mut rdn = String::new();
        while !set.is_empty() {
            let (atv, next) = expect(set, SEQUENCE)?;
            set = next;
            let (oid, value) = expect(atv, OID)?;
            let (tag, raw, _) = tlv(value)?;
            if !rdn.is_empty() {
                rdn.push('+');
            }
            let text = string_value(tag, raw);
            match (attribute_name(oid), &text) {
                (Some(short), Some(text)) => {
                    rdn.push_str(short);
                    rdn.push('=');
                    escape_into(&mut rdn, text);
                    if short == "CN" && cn.is_none() {
                        cn = Some(text.clone());
                    }
                }
                _ => {
                    dotted(&mut rdn, oid);
                    rdn.push_str("=#");
                    for b in value {
                        let _ = write!(rdn, "{b:02x}");
                    }
                }
            }
        }
        parts.push(rdn);
    }
    parts.reverse();
    Some((parts.join(","), cn))
}

/// The text of a directory string, or `None` for a type we do not decode.
fn string_value(tag: u8, raw: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String, TeletexString (treated as Latin-1 is rarer
        // than UTF-8 in practice), VisibleString.
        0x0c | 0x13 | 0x16 | 0x1a => String::from_utf8(raw.to_vec()).ok(),
        0x14 => Some(raw.iter().map(|&b| char::from(b)).collect()),
        0x1e => {
            // BMPString: UTF-16BE.
            let units: Vec<u16> = raw
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// RFC 4514 short names of the usual attributes.
fn attribute_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x05] => "serialNumber",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "STREET",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        _ => return None,
    })
}

/// Writes an OID in dotted form.
fn dotted(out: &mut String, oid: &[u8]) {
    let mut arcs = Vec::new();
    let mut v: u64 = 0;
    for &b in oid {
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(v);
            v = 0;
        }
    }
    if let Some(&first) = arcs.first() {
        let (a, b) = match first {
            0..=39 => (0, first),
            40..=79 => (1, first - 40),
            _ => (2, first - 80),
        };
        let _ = write!(out, "{a}.{b}");
        for arc in &arcs[1..] {
            let _ = write!(out, ".{arc}");
        }
    }
}

/// RFC 4514 escaping; bytes outside printable ASCII become `\XX` so the result is always a
/// valid HTTP field value.
fn escape_into(out: &mut String, value: &str) {
    let last = value.len().saturating_sub(1);
    for (i, b) in value.bytes().enumerate() {
        let special = matches!(b, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';')
            || (i == 0 && (b == b'#' || b == b' '))
            || (i == last && b == b' ');
        if special {
            out.push('\\');
            out.push(char::from(b));
        } else if (0x20..0x7f).contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\{b:02X}");
        }
    }
}

/// UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) as Unix seconds.
fn time(tag: u8, t: &[u8]) -> Option<i64> {
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    };
    let (year, rest) = match tag {
        0x17 if t.len() >= 12 => {
            let yy = digits(&t[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &t[2..])
        }
        0x18 if t.len() >= 14 => (digits(&t[..4])?, &t[4..]),
        _ => return None,
    };
    let (month, day) = (digits(&rest[..2])?, digits(&rest[2..4])?);
    let (h, m, s) = (
        digits(&rest[4..6])?,
        digits(&rest[6..8])?,
        digits(&rest[8..10])?,
    );
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time(0x18, b"20380119031408Z"), Some(2_147_483_648));
    }

    #[test]
    fn escapes_like_rfc4514() {
        let mut s = String::new();
        escape_into(&mut s, " a,b+c\u{e9} ");
        assert_eq!(s, "\\ a\\,b\\+c\\C3\\A9\\ ");
    }

    #[test]
    fn dotted_oids() {
        let mut s = String::new();
        dotted(&mut s, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]);
        assert_eq!(s, "1.2.840.113549");
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(&[0x30, 0x82, 0xff]), None);
        assert_eq!(parse(&[0x30, 0x03, 0x02, 0x01, 0x00]), None);
    }
}
