//! SNI → certificate: exact names, then `*.suffix` wildcards (one label, RFC 6125), both from
//! the certificates' own SAN lists; then the default (the first certificate) unless `strict_sni`.
//!
//! Immutable once built: a reload builds a new one and swaps the whole server config.

use super::certs::Loaded;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug)]
pub struct Resolver {
    certs: Vec<Arc<CertifiedKey>>,
    /// Exact name → certificates serving it, in config order.
    exact: HashMap<String, Vec<usize>>,
    /// "example.com" (from "*.example.com") → certificates.
    wildcard: HashMap<String, Vec<usize>>,
    /// The first certificate, plus later ones with the same names (an RSA twin of an ECDSA
    /// default, say), for clients without SNI.
    default: Vec<usize>,
    /// No SNI, or a name no certificate covers: refuse the handshake instead of the default.
    strict: bool,
}

impl Resolver {
    pub fn new(loaded: &[Loaded], strict: bool) -> Resolver {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut wildcard: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, l) in loaded.iter().enumerate() {
            for name in l.names() {
                let (map, key) = match name.strip_prefix("*.") {
                    Some(suffix) => (&mut wildcard, suffix.to_string()),
                    None => (&mut exact, name),
                };
                let list = map.entry(key).or_default();
                if !list.contains(&i) {
                    list.push(i);
                }
            }
        }
        let first = loaded.first().map(Loaded::names).unwrap_or_default();
        let default = (0..loaded.len())
            .filter(|&i| i == 0 || loaded[i].names() == first)
            .collect();
        Resolver {
            certs: loaded.iter().map(|l| l.key.clone()).collect(),
            exact,
            wildcard,
            default,
            strict,
        }
    }

    /// The candidates for a server name (lower-case), or `None` when no certificate names it.
    fn by_name(&self, name: &str) -> Option<&[usize]> {
        if let Some(v) = self.exact.get(name) {
            return Some(v);
        }
        let (_, suffix) = name.split_once('.')?;
        self.wildcard.get(suffix).map(Vec::as_slice)
    }

    /// The certificate for a handshake: the first candidate whose key can sign with a scheme the
    /// client offers (so an RSA-only client gets the RSA twin), else the first candidate.
    pub fn pick(
        &self,
        server_name: Option<&str>,
        schemes: &[rustls::SignatureScheme],
    ) -> Option<&Arc<CertifiedKey>> {
        let lowered;
        let candidates = match server_name {
            Some(n) => {
                let n = if n.bytes().any(|b| b.is_ascii_uppercase()) {
                    lowered = n.to_ascii_lowercase();
                    lowered.as_str()
                } else {
                    n
                };
                match self.by_name(n.trim_end_matches('.')) {
                    Some(c) => c,
                    None if self.strict => return None,
                    None => &self.default,
                }
            }
            None if self.strict => return None,
            None => &self.default,
        };
        let first = candidates.first()?;
        let chosen = candidates
            .iter()
            .find(|&&i| self.certs[i].key.choose_scheme(schemes).is_some())
            .unwrap_or(first);
        self.certs.get(*chosen)
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name(), hello.signature_schemes())
            .cloned()
    }
}
