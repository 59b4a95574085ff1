//! The reverse proxy: one request from a client connection to an upstream and back.

mod attempt;
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

pub use exchange::{exchange, Answer, Failure, Outcome};
pub use tunnel::run as tunnel_run;

/// One route's policy state on one worker.
pub struct RouteState {
    /// Retries and hedges allowed over the recent window.
    pub budget: retry::Budget,
    /// This worker's slice of the route's rate limit.
    pub limiter: Option<crate::policy::ratelimit::Limiter>,
}

impl RouteState {
    pub fn build(
        config: &crate::config::Config,
        shared: &crate::runtime::shared::Shared,
        worker: usize,
    ) -> Vec<RouteState> {
        let now = std::time::Instant::now();
        config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| RouteState {
                limiter: r
                    .rate_limit
                    .as_ref()
                    .zip(shared.rate[i].as_ref())
                    .map(|(cfg, rs)| {
                        crate::policy::ratelimit::Limiter::new(cfg, rs.clone(), worker, now)
                    }),
                budget: retry::Budget::new(
                    r.retry
                        .as_ref()
                        .map_or(crate::config::defaults::RETRY_BUDGET, |t| t.budget),
                    now,
                ),
            })
            .collect()
    }
}
