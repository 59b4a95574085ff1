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
}

impl RouteState {
    pub fn build(config: &crate::config::Config) -> Vec<RouteState> {
        let now = std::time::Instant::now();
        config
            .routes
            .iter()
            .map(|r| RouteState {
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
