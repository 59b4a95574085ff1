//! Chunk extensions (RFC 9112 §7.1.1): parsed strictly one byte at a time, then ignored.
//!
//! `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`, with names
//! tokens and values tokens or quoted-strings. BWS is allowed exactly where the grammar puts it,
//! so `1 ;a=b` passes but `1 \r\n` and `1;a \r\n` (whitespace before CRLF) do not.

use super::fields::is_tchar;

/// Where the parser is on the rest of a chunk-size line, after the size digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ext {
    /// Right after the size: CR, `;`, or BWS before `;`.
    Start,
    /// Whitespace seen; only more of it or `;` may follow.
    BeforeSemi,
    /// After `;`: BWS, then a name.
    NameStart,
    /// Inside a name.
    Name,
    /// BWS after a name: `=` or `;` must follow.
    AfterName,
    /// After `=`: BWS, then a token or a quoted-string.
    ValueStart,
    /// Inside a token value.
    Token,
    /// Inside a quoted-string.
    Quoted,
    /// After a backslash inside a quoted-string.
    QuotedPair,
    /// Right after a closing quote.
    AfterQuoted,
}

/// What one byte did to the extension parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Keep reading the line in this state.
    Next(Ext),
    /// The byte was the CR ending the chunk-size line.
    LineEnd,
    /// The byte breaks the grammar.
    Invalid,
}

/// `qdtext` of RFC 9110 §5.6.4: HTAB, SP, VCHAR except `"` and `\`, obs-text.
fn is_qdtext(b: u8) -> bool {
    b == b'\t'
        || b == b' '
        || b == 0x21
        || (0x23..=0x5b).contains(&b)
        || (0x5d..=0x7e).contains(&b)
        || b >= 0x80
}

/// Advances the extension parser by one byte.
pub(super) fn step(state: Ext, b: u8) -> Step {
    use Ext::*;
    let ws = b == b' ' || b == b'\t';
    let next = match (state, b) {
        (Start | Name | Token | AfterQuoted, b'\r') => return Step::LineEnd,
        (Start | BeforeSemi | Name | AfterName | Token | AfterQuoted, b';') => NameStart,
        (Start | BeforeSemi | Token | AfterQuoted, _) if ws => BeforeSemi,
        (NameStart, _) if ws => NameStart,
        (NameStart | Name, _) if is_tchar(b) => Name,
        (Name | AfterName, _) if ws => AfterName,
        (Name | AfterName, b'=') => ValueStart,
        (ValueStart, _) if ws => ValueStart,
        (ValueStart, b'"') => Quoted,
        (ValueStart | Token, _) if is_tchar(b) => Token,
        (Quoted, b'"') => AfterQuoted,
        (Quoted, b'\\') => QuotedPair,
        (Quoted, _) if is_qdtext(b) => Quoted,
        (QuotedPair, _) if b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80 => {
            Quoted
        }
        _ => return Step::Invalid,
    };
    Step::Next(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a whole line (after the size digits) and says whether it ends cleanly at CR.
    fn accepts(line: &[u8]) -> bool {
        let mut state = Ext::Start;
        for (i, &b) in line.iter().enumerate() {
            match step(state, b) {
                Step::Next(s) => state = s,
                Step::LineEnd => return i == line.len() - 1,
                Step::Invalid => return false,
            }
        }
        false
    }

    #[test]
    fn valid_extensions() {
        for line in [
            &b"\r"[..],
            b";a\r",
            b";a=b\r",
            b"; a = b ;c\r",
            b" ;name=\"quoted ; \\\" value\"\r",
            b";a=b;c=\"d\";e\r",
            b"\t;x=\"caf\xc3\xa9\"\r",
        ] {
            assert!(accepts(line), "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn invalid_extensions() {
        for line in [
            &b" \r"[..],
            b";\r",
            b";a \r",
            b";a=\r",
            b";a=b \r",
            b";a=\"open\r",
            b";a=\"x\"y\r",
            b";a=b=c\r",
            b";a\x00\r",
            b";a=\"\x01\"\r",
            b"x\r",
            b";a\n",
            b";(a)\r",
        ] {
            assert!(!accepts(line), "{:?}", String::from_utf8_lossy(line));
        }
    }
}
