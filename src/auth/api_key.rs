//! `auth.api_key`: a header carrying one of the configured keys.

use super::{sha256, trim_ows, Denied};
use subtle::{Choice, ConstantTimeEq};

/// Keys are kept as SHA-256 digests: comparing fixed-length digests in constant time leaks
/// neither a key's bytes nor its length, and the plaintext is not kept in the chain.
pub(super) struct ApiKeyRule {
    header: Box<str>,
    digests: Box<[[u8; 32]]>,
    challenge: Box<str>,
}

impl ApiKeyRule {
    pub(super) fn new(header: &str, keys: &[String]) -> Result<ApiKeyRule, String> {
        if keys.is_empty() {
            return Err("api_key needs at least one key".into());
        }
        let header = header.to_ascii_lowercase();
        Ok(ApiKeyRule {
            digests: keys.iter().map(|k| sha256(k.as_bytes())).collect(),
            // No registered scheme exists for API keys; this names the header a client must
            // send, and satisfies RFC 9110's "a 401 carries a challenge".
            challenge: format!("ApiKey header=\"{header}\"").into(),
            header: header.into(),
        })
    }

    /// One digest of the presented value, then every stored digest compared without an early
    /// exit: the time depends on the number of keys only. No allocation.
    pub(super) fn check<'a, 'h>(
        &'a self,
        header: &dyn Fn(&str) -> Option<&'h [u8]>,
    ) -> Result<(), Denied<'a>> {
        let deny = |reason| Denied {
            status: 401,
            www_authenticate: Some(&*self.challenge),
            reason,
        };
        let presented = header(&self.header).map(trim_ows).unwrap_or_default();
        if presented.is_empty() {
            return Err(deny("missing api key"));
        }
        let digest = sha256(presented);
        let mut found = Choice::from(0);
        for d in self.digests.iter() {
            found |= d.ct_eq(&digest);
        }
        if bool::from(found) {
            Ok(())
        } else {
            Err(deny("unknown api key"))
        }
    }
}
