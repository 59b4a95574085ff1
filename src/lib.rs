//! coregate: a thread-per-core HTTP/1.1 and TCP edge gateway.
//!
//! Folders follow the data path: `runtime` (workers, listeners, signals) → `http` (per connection).

pub mod config;
pub mod demo;
pub mod http;
pub mod log;
pub mod runtime;
