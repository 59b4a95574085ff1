//! HTTP/1.1 listeners.
//!
//! Until the reverse proxy lands (issue 3), an HTTP listener answers every request itself with a
//! fixed page naming the worker that served it; limits, timeouts and drain are already real.

mod fixed_page;
pub mod h1;
pub mod status;

pub use fixed_page::serve;
