//! HTTP/1.1 listeners: the client side of the proxy.

mod conn;
pub mod h1;
pub mod status;

pub use conn::serve;
