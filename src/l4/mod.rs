//! L4 (TCP) forwarding. A `tcp` listener accepts a connection, picks an upstream (its own, or by
//! the TLS server name in the client's first bytes), optionally checks a PROXY protocol header
//! from a trusted load balancer in front, connects, optionally sends a PROXY header of its own,
//! then splices bytes both ways until either side closes.
//!
//! The modules here are the parts of that path that need no socket: byte-level parsers and
//! encoders that read from and write into caller buffers, allocate nothing, and treat "not enough
//! bytes yet" as a value, so the connection task decides when to read again and when to give up.

pub mod proxy_protocol;
pub mod sni;
