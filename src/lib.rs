//! coregate: a thread-per-core HTTP/1.1 and TCP edge gateway.
//!
//! Folders follow the data path: `runtime` (workers, listeners, signals) → `http` (client
//! connection, HTTP/1.1 wire format) → `route` → `proxy` (the exchange) → `upstream` (pools, balancing).

pub mod admin;
pub mod auth;
pub mod config;
pub mod demo;
pub mod doctor;
pub mod http;
pub mod l4;
pub mod log;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod route;
pub mod runtime;
pub mod tls;
pub mod upstream;
