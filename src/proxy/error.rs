//! What went wrong in an exchange: which side failed, what we were doing, and whether the
//! request may go to another endpoint. `http::status` turns these into responses.

use crate::http::h1::HeadError;
use std::fmt;

/// Who broke the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
    Internal,
}

/// The step that failed, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    ReadRequestHead,
    ReadRequestBody,
    Connect,
    WriteRequest,
    ReadResponseHead,
    ReadResponseBody,
    WriteResponse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The peer's bytes broke HTTP framing or a limit.
    Malformed(HeadError),
    /// The chunked body is invalid.
    BadChunk,
    /// The body is larger than the route allows.
    BodyTooLarge,
    /// Connection refused by the upstream.
    Refused,
    /// Connection reset or closed before the message ended.
    Closed,
    /// Another I/O error.
    Io,
    /// A deadline passed.
    Timeout,
    /// No route for the request.
    NoRoute,
    /// No endpoint may be tried: all down or ejected, the circuit is open, or the retry budget
    /// is spent.
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyError {
    pub side: Side,
    pub step: Step,
    pub kind: Kind,
}

impl ProxyError {
    pub fn client(step: Step, kind: Kind) -> Self {
        ProxyError {
            side: Side::Client,
            step,
            kind,
        }
    }

    pub fn upstream(step: Step, kind: Kind) -> Self {
        ProxyError {
            side: Side::Upstream,
            step,
            kind,
        }
    }

    /// An upstream I/O error, classified.
    pub fn upstream_io(step: Step, e: &std::io::Error) -> Self {
        Self::upstream(step, io_kind(e))
    }

    /// A client I/O error, classified.
    pub fn client_io(step: Step, e: &std::io::Error) -> Self {
        Self::client(step, io_kind(e))
    }

    /// May the request go to another endpoint? Only when nothing can have reached an upstream.
    pub fn nothing_sent(&self) -> bool {
        self.side == Side::Upstream && self.step == Step::Connect
    }
}

fn io_kind(e: &std::io::Error) -> Kind {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => Kind::Refused,
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
            Kind::Closed
        }
        TimedOut => Kind::Timeout,
        _ => Kind::Io,
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            Side::Client => "client",
            Side::Upstream => "upstream",
            Side::Internal => "internal",
        };
        write!(f, "{side} failed while {:?}: ", self.step)?;
        match self.kind {
            Kind::Malformed(h) => write!(f, "{h}"),
            k => write!(f, "{k:?}"),
        }
    }
}
