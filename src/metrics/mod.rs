//! Metrics: per-worker shards ([`shard`]), copied out on request and merged by the admin thread
//! ([`snapshot`]), written in the Prometheus formats ([`encode`]); every name in [`names`].
//!
//! Nothing on the request path is shared between threads: a worker's shard is plain integers
//! behind a `RefCell` that only its own thread touches. A scrape costs each worker one copy of
//! its counters, made between two of its tasks.

pub mod encode;
pub mod names;
pub mod shard;
pub mod snapshot;

pub use shard::{Handshake, Recorder, Shard, Slots};
pub use snapshot::{Merged, Snapshot};
