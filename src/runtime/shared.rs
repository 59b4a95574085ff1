//! What the workers of one config version share. Read-only on the request path: the health
//! table's atomics are written by the prober thread, never by a request, and nothing here is
//! behind a lock.

use crate::auth::AuthChain;
use crate::config::Config;
use crate::policy::ratelimit::RateShared;
use crate::upstream::health::{self, HealthTable};
use std::sync::Arc;

pub struct Shared {
    /// Active health-check results, one prober for the process.
    pub health: Arc<HealthTable>,
    /// Each route's auth rules, compiled once (keys loaded, PEM parsed); empty chains pass.
    pub auth: Vec<AuthChain>,
    /// Per route with a rate limit: the workers' published demand, from which each takes its share.
    pub rate: Vec<Option<Arc<RateShared>>>,
    /// Certificates and upstream trust of this version (a reload re-reads the files).
    pub tls: crate::tls::TlsShared,
}

impl Shared {
    /// Builds the shared state and starts the health prober (when some upstream asks for one).
    pub fn start(config: &Arc<Config>, workers: usize) -> Result<Arc<Shared>, String> {
        let rate = config
            .routes
            .iter()
            .map(|r| r.rate_limit.as_ref().map(|_| RateShared::new(workers)))
            .collect();
        let auth = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| AuthChain::build(&r.auth).map_err(|e| format!("route[{i}].auth: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = crate::tls::TlsShared::start(config, workers)?;
        let health = HealthTable::new(config);
        health::start(config.clone(), health.clone(), tls.prober.clone())?;
        Ok(Arc::new(Shared {
            health,
            auth,
            rate,
            tls,
        }))
    }
}
