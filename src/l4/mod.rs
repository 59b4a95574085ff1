//! L4 (TCP) forwarding. A `tcp` listener accepts a connection, picks an upstream (its own, or by
//! the TLS server name in the client's first bytes), optionally checks a PROXY protocol header
//! from a trusted load balancer in front, connects, optionally sends a PROXY header of its own,
//! then splices bytes both ways until either side closes.
//!
//! `forward` is the connection task; `pump` one direction of it; `splice` the pipes it moves
//! bytes through; `peek` and `accept` look at first bytes without consuming what is forwarded.
//! `proxy_protocol` and `sni` need no socket: byte-level parsers and encoders that read from and
//! write into caller buffers, allocate nothing, and treat "not enough bytes yet" as a value, so
//! the connection task decides when to read again and when to give up.

pub mod accept;
pub mod forward;
pub mod peek;
pub mod proxy_protocol;
pub mod pump;
pub mod sni;
pub mod splice;
