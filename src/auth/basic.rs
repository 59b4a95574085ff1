//! `auth.basic`: HTTP Basic (RFC 7617) against bcrypt hashes, or inline plain passwords in dev.

use super::{credentials, sha256, AuthCache, Denied, AUTHORIZATION};
use crate::config::{BasicPassword, BasicUser};
use base64::engine::{general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use subtle::ConstantTimeEq;

/// Longest `user:password` accepted, decoded (about; see `DECODE_BUFFER`).
pub const MAX_BASIC_CREDENTIALS: usize = 1024;
/// Longest base64 text accepted: what `MAX_BASIC_CREDENTIALS` bytes encode to.
const MAX_BASIC_ENCODED: usize = MAX_BASIC_CREDENTIALS.div_ceil(3) * 4;
/// The stack buffer credentials decode into: base64 wants room for its upper estimate.
const DECODE_BUFFER: usize = MAX_BASIC_ENCODED / 4 * 3;

/// Standard base64 that tolerates missing padding, as some clients send it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Gives every compiled Basic rule its own id, so a cached verdict for one route's (or one
/// config version's) users never answers for another's.
static NEXT_RULE_ID: AtomicU64 = AtomicU64::new(1);

pub(super) struct BasicRule {
    id: u64,
    users: HashMap<Box<[u8]>, Password>,
    challenge: Box<str>,
}

enum Password {
    Bcrypt(Box<str>),
    /// SHA-256 of an inline plain password, compared in constant time.
    Plain([u8; 32]),
}

impl BasicRule {
    pub(super) fn new(users: &[BasicUser], realm: &str) -> Result<BasicRule, String> {
        if users.is_empty() {
            return Err("basic needs at least one user".into());
        }
        let mut map = HashMap::with_capacity(users.len());
        for u in users {
            let p = match &u.password {
                BasicPassword::Bcrypt(h) => Password::Bcrypt(h.as_str().into()),
                BasicPassword::Plain(p) => Password::Plain(sha256(p.as_bytes())),
            };
            if map.insert(u.name.as_bytes().into(), p).is_some() {
                return Err(format!("basic user {:?} appears twice", u.name));
            }
        }
        Ok(BasicRule {
            id: NEXT_RULE_ID.fetch_add(1, Ordering::Relaxed),
            users: map,
            challenge: format!("Basic realm=\"{realm}\", charset=\"UTF-8\"").into(),
        })
    }

    /// Decodes the credentials on the stack; a bcrypt hash is checked once per cache lifetime.
    ///
    /// An unknown user is refused at once without a dummy bcrypt run (as nginx does): user
    /// names are not secrets, and a dummy run would hand out free CPU burns to anyone.
    pub(super) fn check<'a, 'h>(
        &'a self,
        header: &dyn Fn(&str) -> Option<&'h [u8]>,
        cache: &mut AuthCache,
    ) -> Result<(), Denied<'a>> {
        let deny = |reason| Denied {
            status: 401,
            www_authenticate: Some(&*self.challenge),
            reason,
        };
        let Some(value) = header(AUTHORIZATION) else {
            return Err(deny("missing basic credentials"));
        };
        let Some(encoded) = credentials(value, "Basic") else {
            return Err(deny("not basic credentials"));
        };
        if encoded.len() > MAX_BASIC_ENCODED {
            return Err(deny("basic credentials too long"));
        }
        let mut buf = [0u8; DECODE_BUFFER];
        let Ok(n) = BASE64.decode_slice(encoded, &mut buf) else {
            return Err(deny("malformed basic credentials"));
        };
        let decoded = &buf[..n];
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return Err(deny("malformed basic credentials"));
        };
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let Some(stored) = self.users.get(user) else {
            return Err(deny("unknown basic user"));
        };
        let ok = match stored {
            Password::Plain(digest) => bool::from(digest.ct_eq(&sha256(password))),
            Password::Bcrypt(hash) => {
                let now = Instant::now();
                let tag = cache.tag(self.id, user, password);
                match cache.get(&tag, now) {
                    Some(ok) => ok,
                    None => {
                        // The hash was checked at config load, so an error here cannot happen;
                        // treat it as a wrong password rather than let anyone in. Like htpasswd,
                        // bcrypt reads the first 72 bytes of a password.
                        let ok = bcrypt::verify(password, hash).unwrap_or(false);
                        cache.put(tag, ok, now);
                        ok
                    }
                }
            }
        };
        if ok {
            Ok(())
        } else {
            Err(deny("wrong basic password"))
        }
    }
}
