//! `auth.jwt`: a bearer JWT (RFC 7519) in `Authorization`, signed HS256, RS256 or ES256.
//!
//! jsonwebtoken checks the header's `alg` against the one configured algorithm and verifies the
//! signature (ring); the claims (`exp`, `nbf`, `iss`, `aud`, required claims) are checked here,
//! so their rules are ours: a present `exp`/`nbf` that is not a number is refused, not skipped.

use super::{credentials, Denied, AUTHORIZATION};
use crate::config::{ClaimValue, JwtAlgorithm, JwtAuth, JwtKey};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest token looked at; real ones are well under 2 KiB, and decoding costs allocations.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

pub(super) struct JwtRule {
    key: DecodingKey,
    validation: Validation,
    issuer: Option<Box<str>>,
    audience: Option<Box<str>>,
    required_claims: Box<[(Box<str>, ClaimValue)]>,
    leeway: f64,
    require_exp: bool,
    /// `Bearer realm="…"`: no token at all (RFC 6750 §3: no error code then).
    challenge_missing: Box<str>,
    /// `…, error="invalid_token"`: malformed, badly signed, expired, wrong issuer…
    challenge_invalid: Box<str>,
    /// `…, error="insufficient_scope"`: a good token without a required claim (403).
    challenge_scope: Box<str>,
}

/// How a token failed: 401 for a bad token, 403 for a good one lacking a required claim.
enum Fail {
    Invalid(&'static str),
    Scope(&'static str),
}

impl JwtRule {
    pub(super) fn new(j: &JwtAuth) -> Result<JwtRule, String> {
        let (alg, key) = match (j.algorithm, &j.key) {
            (JwtAlgorithm::HS256, JwtKey::Secret(s)) => {
                (Algorithm::HS256, DecodingKey::from_secret(s))
            }
            (JwtAlgorithm::RS256, JwtKey::Rsa(der)) => {
                (Algorithm::RS256, DecodingKey::from_rsa_der(der))
            }
            (JwtAlgorithm::ES256, JwtKey::EcP256(point)) => {
                (Algorithm::ES256, DecodingKey::from_ec_der(point))
            }
            (alg, _) => return Err(format!("jwt {alg:?} does not match its key type")),
        };
        // Only signature and `alg` are left to the library; claims are checked in `claims`.
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        let realm = &j.realm;
        Ok(JwtRule {
            key,
            validation,
            issuer: j.issuer.as_deref().map(Into::into),
            audience: j.audience.as_deref().map(Into::into),
            required_claims: j
                .required_claims
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.clone()))
                .collect(),
            leeway: j.leeway.as_secs_f64(),
            require_exp: j.require_exp,
            challenge_missing: format!("Bearer realm=\"{realm}\"").into(),
            challenge_invalid: format!("Bearer realm=\"{realm}\", error=\"invalid_token\"").into(),
            challenge_scope: format!("Bearer realm=\"{realm}\", error=\"insufficient_scope\"")
                .into(),
        })
    }

    pub(super) fn check<'a, 'h>(
        &'a self,
        header: &dyn Fn(&str) -> Option<&'h [u8]>,
    ) -> Result<(), Denied<'a>> {
        let Some(value) = header(AUTHORIZATION) else {
            return Err(Denied {
                status: 401,
                www_authenticate: Some(&self.challenge_missing),
                reason: "missing bearer token",
            });
        };
        self.verify(value, unix_now()).map_err(|f| match f {
            Fail::Invalid(reason) => Denied {
                status: 401,
                www_authenticate: Some(&self.challenge_invalid),
                reason,
            },
            Fail::Scope(reason) => Denied {
                status: 403,
                www_authenticate: Some(&self.challenge_scope),
                reason,
            },
        })
    }

    /// The whole decision for an `Authorization` value at time `now` (seconds since the epoch).
    fn verify(&self, value: &[u8], now: f64) -> Result<(), Fail> {
        let token = credentials(value, "Bearer").ok_or(Fail::Invalid("not a bearer token"))?;
        if token.len() > MAX_TOKEN_LEN {
            return Err(Fail::Invalid("bearer token too long"));
        }
        let token = std::str::from_utf8(token).map_err(|_| Fail::Invalid("malformed jwt"))?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|e| {
            Fail::Invalid(match e.kind() {
                ErrorKind::InvalidAlgorithm => "jwt algorithm not allowed",
                ErrorKind::InvalidSignature => "jwt signature invalid",
                _ => "malformed jwt",
            })
        })?;
        self.claims(&data.claims, now)
    }

    fn claims(&self, c: &Map<String, Value>, now: f64) -> Result<(), Fail> {
        match c.get("exp") {
            None if self.require_exp => return Err(Fail::Invalid("jwt has no exp")),
            None => {}
            Some(v) => {
                let exp = v.as_f64().ok_or(Fail::Invalid("jwt exp is not a number"))?;
                // RFC 7519 §4.1.4: the current time must be before `exp`.
                if now >= exp + self.leeway {
                    return Err(Fail::Invalid("jwt expired"));
                }
            }
        }
        if let Some(v) = c.get("nbf") {
            let nbf = v.as_f64().ok_or(Fail::Invalid("jwt nbf is not a number"))?;
            // RFC 7519 §4.1.5: the current time must be at or after `nbf`.
            if now + self.leeway < nbf {
                return Err(Fail::Invalid("jwt not yet valid"));
            }
        }
        if let Some(iss) = &self.issuer {
            if c.get("iss").and_then(Value::as_str) != Some(&**iss) {
                return Err(Fail::Invalid("jwt issuer mismatch"));
            }
        }
        if let Some(aud) = &self.audience {
            // RFC 7519 §4.1.3: one string, or an array of strings.
            let ok = match c.get("aud") {
                Some(Value::String(s)) => s == &**aud,
                Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(&**aud)),
                _ => false,
            };
            if !ok {
                return Err(Fail::Invalid("jwt audience mismatch"));
            }
        }
        for (name, want) in self.required_claims.iter() {
            if !c.get(&**name).is_some_and(|v| claim_matches(v, want)) {
                return Err(Fail::Scope("jwt lacks a required claim"));
            }
        }
        Ok(())
    }
}

/// A claim satisfies a required value when equal to it, or when it is an array holding it
/// (`"roles": ["admin", "ops"]` satisfies `required_claims = { roles = "admin" }`).
fn claim_matches(v: &Value, want: &ClaimValue) -> bool {
    let scalar = |v: &Value| match want {
        ClaimValue::Str(s) => v.as_str() == Some(s.as_str()),
        ClaimValue::Int(i) => v.as_i64() == Some(*i),
        ClaimValue::Bool(b) => v.as_bool() == Some(*b),
    };
    match v {
        Value::Array(items) => items.iter().any(scalar),
        other => scalar(other),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
impl JwtRule {
    /// `verify` at a chosen time, answering with the log reason (tests).
    pub(super) fn verify_at(&self, value: &[u8], now: f64) -> Result<(), (u16, &'static str)> {
        self.verify(value, now).map_err(|f| match f {
            Fail::Invalid(r) => (401, r),
            Fail::Scope(r) => (403, r),
        })
    }
}
