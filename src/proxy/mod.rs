//! The reverse proxy: one request from a client connection to an upstream and back.

pub mod body;
pub mod buffered;
pub mod error;
mod exchange;
pub mod headers;
pub mod keys;
mod leg;
mod respond;
pub mod retry;
mod tunnel;

pub use exchange::{exchange, Failure, Outcome};
pub use tunnel::run as tunnel_run;
