//! Policies a route applies before proxying: each one looks at a request that has been parsed
//! and routed and either lets it through or answers it itself (a 429 from the rate limiter, for
//! instance), using only state owned by the worker that handles the request.

pub mod ratelimit;
