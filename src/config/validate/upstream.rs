//! `[[upstream]]` tables: endpoints, balancing, timeouts, health checks and the breaker.

use super::super::defaults as d;
use super::super::file::*;
use super::super::*;
use super::route::request_key;
use super::{Checker, Result};
use std::net::{SocketAddr, ToSocketAddrs};

impl Checker<'_> {
    pub(super) fn upstream(&self, i: usize, u: UpstreamFile) -> Result<Upstream> {
        let key = |k: &str| format!("upstream[{i}].{k}");
        if u.name.get_ref().is_empty() {
            return Err(self.at(&u.name, key("name"), "must not be empty"));
        }
        let balance = match &u.balance {
            None => Balance::RoundRobin,
            Some(b) => match b.get_ref().as_str() {
                "round_robin" => Balance::RoundRobin,
                "weighted_round_robin" => Balance::WeightedRoundRobin,
                "random" => Balance::Random,
                "least_request" => Balance::LeastRequest,
                "consistent_hash" => Balance::ConsistentHash,
                other => return Err(self.at(b, key("balance"), format!(
                    "unknown balance {other:?}: expected round_robin, weighted_round_robin, random, least_request or consistent_hash"
                ))),
            },
        };
        let hash_key = match &u.hash_key {
            None => request_key(d::HASH_KEY, true).expect("default hash key parses"),
            Some(h) => request_key(h.get_ref(), true).ok_or_else(|| {
                self.at(
                    h,
                    key("hash_key"),
                    format!(
                        "unknown key {:?}: expected client_ip, header:NAME, cookie:NAME or path",
                        h.get_ref()
                    ),
                )
            })?,
        };
        if u.endpoints.is_empty() {
            return Err(self.at(&u.name, key("endpoints"), "needs at least one endpoint"));
        }
        let mut endpoints = Vec::new();
        for (j, e) in u.endpoints.iter().enumerate() {
            let k = key(&format!("endpoints[{j}]"));
            let (addr, weight) = match e.get_ref() {
                EndpointFile::Addr(a) => (a, d::WEIGHT),
                EndpointFile::Table(t) => (&t.addr, t.weight.unwrap_or(d::WEIGHT)),
            };
            if weight == 0 {
                return Err(self.at(e, format!("{k}.weight"), "must be at least 1"));
            }
            let addr = resolve(addr).map_err(|m| self.at(e, k.clone(), m))?;
            endpoints.push(Endpoint { addr, weight });
        }
        let positive =
            |t: Option<units::DurationStr>, k: &str, default: Duration| -> Result<Duration> {
                let v = t.map_or(default, |t| t.0);
                if v.is_zero() {
                    return Err(self.at(&u.name, key(k), "must be greater than 0"));
                }
                Ok(v)
            };
        let health_check = match u.health_check {
            None => None,
            Some(h) => {
                if let Some(p) = &h.path {
                    if !p.starts_with('/') {
                        return Err(self.at(
                            &u.name,
                            key("health_check.path"),
                            "must start with '/'",
                        ));
                    }
                }
                let hc = HealthCheck {
                    path: h.path,
                    interval: positive(h.interval, "health_check.interval", d::HEALTH_INTERVAL)?,
                    timeout: positive(h.timeout, "health_check.timeout", d::HEALTH_TIMEOUT)?,
                    healthy: h.healthy.unwrap_or(d::HEALTHY).max(1),
                    unhealthy: h.unhealthy.unwrap_or(d::UNHEALTHY).max(1),
                };
                Some(hc)
            }
        };
        let circuit_breaker = match u.circuit_breaker {
            None => None,
            Some(b) => {
                let rate = b.get_ref().error_rate.unwrap_or(d::BREAKER_ERROR_RATE);
                if !(rate > 0.0 && rate <= 1.0) {
                    return Err(self.at(
                        &b,
                        key("circuit_breaker.error_rate"),
                        "must be in (0, 1]",
                    ));
                }
                let b = b.into_inner();
                Some(CircuitBreaker {
                    error_rate: rate,
                    min_requests: b.min_requests.unwrap_or(d::BREAKER_MIN_REQUESTS),
                    window: positive(b.window, "circuit_breaker.window", d::BREAKER_WINDOW)?,
                    open_for: positive(
                        b.open_for,
                        "circuit_breaker.open_for",
                        d::BREAKER_OPEN_FOR,
                    )?,
                    half_open_probes: b
                        .half_open_probes
                        .unwrap_or(d::BREAKER_HALF_OPEN_PROBES)
                        .max(1),
                })
            }
        };
        Ok(Upstream {
            balance,
            hash_key,
            endpoints,
            connect_timeout: positive(u.connect_timeout, "connect_timeout", d::CONNECT_TIMEOUT)?,
            response_timeout: positive(
                u.response_timeout,
                "response_timeout",
                d::RESPONSE_TIMEOUT,
            )?,
            idle_timeout: positive(u.idle_timeout, "idle_timeout", d::UPSTREAM_IDLE_TIMEOUT)?,
            max_idle_per_worker: u.max_idle_per_worker.unwrap_or(d::MAX_IDLE_PER_WORKER),
            max_fails: u.max_fails.unwrap_or(d::MAX_FAILS),
            fail_timeout: positive(u.fail_timeout, "fail_timeout", d::FAIL_TIMEOUT)?,
            tls: match u.tls {
                None => None,
                Some(t) => Some(self.upstream_tls(t.into_inner(), &key)?),
            },
            health_check,
            circuit_breaker,
            name: u.name.into_inner(),
        })
    }
}

/// An endpoint address: `IP:port`, or `name:port` resolved once at load (like nginx).
fn resolve(addr: &str) -> std::result::Result<SocketAddr, String> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    if !addr.contains(':') {
        return Err(format!("invalid address {addr:?}: expected host:port"));
    }
    match addr.to_socket_addrs() {
        Ok(mut it) => it
            .next()
            .ok_or_else(|| format!("{addr:?} resolves to no address")),
        Err(e) => Err(format!("cannot resolve {addr:?}: {e}")),
    }
}

impl Checker<'_> {
    /// `upstream.tls`: the SNI must be a DNS name; the CA file must hold usable certificates.
    fn upstream_tls(
        &self,
        t: UpstreamTlsFile,
        key: &dyn Fn(&str) -> String,
    ) -> Result<UpstreamTls> {
        if let Some(s) = &t.sni {
            if !super::valid_host_pattern(s.get_ref()) || s.get_ref().starts_with("*.") {
                return Err(self.at(
                    s,
                    key("tls.sni"),
                    format!("invalid server name {:?}", s.get_ref()),
                ));
            }
        }
        let ca = match &t.ca {
            None => None,
            Some(c) => {
                let path = self.resolve_path(c.get_ref());
                crate::tls::certs::roots(&path).map_err(|e| self.at(c, key("tls.ca"), e))?;
                Some(path)
            }
        };
        Ok(UpstreamTls {
            sni: t.sni.map(|s| s.into_inner().to_ascii_lowercase()),
            ca,
        })
    }
}
