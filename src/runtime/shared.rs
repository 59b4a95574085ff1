//! What the workers of one config version share. Read-only on the request path: the health
//! table's atomics are written by the prober thread, never by a request, and nothing here is
//! behind a lock.

use crate::config::Config;
use crate::upstream::health::{self, HealthTable};
use std::sync::Arc;

pub struct Shared {
    /// Active health-check results, one prober for the process.
    pub health: Arc<HealthTable>,
}

impl Shared {
    /// Builds the shared state and starts the health prober (when some upstream asks for one).
    pub fn start(config: &Arc<Config>) -> Result<Arc<Shared>, String> {
        let health = HealthTable::new(config);
        health::start(config.clone(), health.clone())?;
        Ok(Arc::new(Shared { health }))
    }
}
