//! Request methods (RFC 9110 §9): the few the proxy must recognise, and retry safety.

/// Longest method accepted (the longest registered one has 17 octets); it bounds the early 414.
pub const MAX_METHOD_LEN: usize = 32;

/// Request methods of RFC 9110 §9 plus PATCH; methods are case-sensitive, so `get` is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH` (RFC 5789)
    Patch,
    /// An extension method; its bytes are at [`RequestHead::method_range`].
    Other,
}

impl Method {
    /// Maps a method token, exactly as sent, to its variant.
    pub fn from_bytes(method: &[u8]) -> Method {
        match method {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"CONNECT" => Method::Connect,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }

    /// RFC 9110 §9.2.2: repeating the request has the same effect, so a retry is safe.
    pub fn is_idempotent(self) -> bool {
        use Method::*;
        matches!(self, Get | Head | Put | Delete | Options | Trace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_case_sensitive() {
        assert_eq!(Method::from_bytes(b"GET"), Method::Get);
        assert_eq!(Method::from_bytes(b"get"), Method::Other);
        assert_eq!(Method::from_bytes(b"PROPFIND"), Method::Other);
        assert_eq!(Method::from_bytes(b"CONNECT"), Method::Connect);
    }

    #[test]
    fn idempotent_methods() {
        use Method::*;
        for m in [Get, Head, Put, Delete, Options, Trace] {
            assert!(m.is_idempotent(), "{m:?}");
        }
        for m in [Post, Patch, Connect, Other] {
            assert!(!m.is_idempotent(), "{m:?}");
        }
    }
}
