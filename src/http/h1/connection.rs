//! Connection options (RFC 9110 §7.6.1), persistence (RFC 9112 §9.3) and Upgrade (RFC 9110 §7.8).

use super::fields::{elements, is_token, Field};
use super::{HeadError, Version};
use std::ops::Range;

/// What the `Connection` fields of one message said; its `Vec` is reused across messages.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Connection {
    close: bool,
    keep_alive: bool,
    upgrade: bool,
    tokens: Vec<Range<usize>>,
}

impl Connection {
    /// The `close` option: this is the last message on the connection.
    pub fn close(&self) -> bool {
        self.close
    }

    /// The `keep-alive` option, which only means something to HTTP/1.0 (RFC 9112 §9.3).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// The `upgrade` option, without which an Upgrade field must be ignored (RFC 9110 §7.8).
    pub fn upgrade(&self) -> bool {
        self.upgrade
    }

    /// Every option as offsets into the head, in order, so the proxy can strip the fields named.
    pub fn tokens(&self) -> &[Range<usize>] {
        &self.tokens
    }

    /// Whether the field `name` is listed, i.e. hop-by-hop and not to be forwarded.
    pub fn lists(&self, buf: &[u8], name: &[u8]) -> bool {
        self.tokens.iter().any(|t| {
            buf.get(t.clone())
                .is_some_and(|t| t.eq_ignore_ascii_case(name))
        })
    }

    /// Whether the connection stays open after this message (RFC 9112 §9.3, first two rules).
    pub(super) fn persistent(&self, version: Version) -> bool {
        !self.close && (version == Version::Http11 || self.keep_alive)
    }

    /// Forgets the previous message, keeping the allocation.
    pub(super) fn clear(&mut self) {
        self.close = false;
        self.keep_alive = false;
        self.upgrade = false;
        self.tokens.clear();
    }

    /// Reads every `Connection` field; an option that is not a token is refused.
    pub(super) fn read(&mut self, buf: &[u8], fields: &[Field]) -> Result<(), HeadError> {
        for f in fields.iter().filter(|f| f.is(buf, "connection")) {
            for option in elements(buf, f.value.clone()) {
                let bytes = buf.get(option.clone()).unwrap_or_default();
                if bytes.is_empty() {
                    continue; // RFC 9110 §5.6.1: empty list elements are ignored
                }
                if !is_token(bytes) {
                    return Err(HeadError::ConnectionOption);
                }
                self.close |= bytes.eq_ignore_ascii_case(b"close");
                self.keep_alive |= bytes.eq_ignore_ascii_case(b"keep-alive");
                self.upgrade |= bytes.eq_ignore_ascii_case(b"upgrade");
                self.tokens.push(option);
            }
        }
        Ok(())
    }
}

/// What the Upgrade field asked for, counted only with the `upgrade` connection option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Upgrade {
    /// No usable upgrade request.
    None,
    /// Some protocol other than WebSocket.
    Other,
    /// `websocket` is among the protocols offered (RFC 6455).
    WebSocket,
}

impl Upgrade {
    /// The best offer in one Upgrade value: WebSocket over anything, anything over nothing.
    pub(super) fn offered(buf: &[u8], value: Range<usize>) -> Upgrade {
        let mut best = Upgrade::None;
        for e in elements(buf, value) {
            let protocol = buf.get(e).unwrap_or_default();
            let name = protocol.split(|&b| b == b'/').next().unwrap_or_default();
            let offer = match protocol {
                b"" => Upgrade::None,
                _ if name.eq_ignore_ascii_case(b"websocket") => Upgrade::WebSocket,
                _ => Upgrade::Other,
            };
            best = best.max(offer);
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(buf: &[u8], fields: &[Field]) -> Result<Connection, HeadError> {
        let mut c = Connection::default();
        c.read(buf, fields).map(|()| c)
    }

    fn field(buf: &[u8]) -> Field {
        let colon = buf.iter().position(|&b| b == b':').unwrap();
        Field {
            name: 0..colon,
            value: colon + 2..buf.len(),
        }
    }

    #[test]
    fn options_are_recorded() {
        let buf = b"Connection: Keep-Alive, , X-Trace ,Upgrade";
        let c = read(buf, &[field(buf)]).unwrap();
        assert!(c.keep_alive() && c.upgrade() && !c.close());
        let names: Vec<_> = c.tokens().iter().map(|r| &buf[r.clone()]).collect();
        assert_eq!(names, [&b"Keep-Alive"[..], b"X-Trace", b"Upgrade"]);
        assert!(c.lists(buf, b"x-trace"));
        assert!(!c.lists(buf, b"x-other"));
    }

    #[test]
    fn non_token_option_is_refused() {
        let buf = b"Connection: close, a b";
        assert_eq!(read(buf, &[field(buf)]), Err(HeadError::ConnectionOption));
        let buf = b"Connection: \"close\"";
        assert_eq!(read(buf, &[field(buf)]), Err(HeadError::ConnectionOption));
    }

    #[test]
    fn persistence_rules() {
        let close = b"Connection: close";
        let ka = b"Connection: keep-alive";
        let none = Connection::default();
        assert!(none.persistent(Version::Http11));
        assert!(!none.persistent(Version::Http10));
        let c = read(close, &[field(close)]).unwrap();
        assert!(!c.persistent(Version::Http11));
        let k = read(ka, &[field(ka)]).unwrap();
        assert!(k.persistent(Version::Http10));
        let mut both = read(ka, &[field(ka)]).unwrap();
        both.read(close, &[field(close)]).unwrap();
        assert!(
            !both.persistent(Version::Http10),
            "close wins over keep-alive"
        );
    }
}
