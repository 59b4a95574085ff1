//! `Debug` for the checked auth config, written by hand so `{:?}` of a `Config` shows which
//! rules exist but never a key, password, hash or HMAC secret.

use crate::config::{Auth, BasicPassword, BasicUser, JwtAuth, JwtKey};
use std::fmt;

/// Prints its text as is, without quotes: a placeholder where a secret would be.
struct Redacted<'a>(&'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::ApiKey { header, keys } => f
                .debug_struct("ApiKey")
                .field("header", header)
                .field("keys", &Redacted(&format!("<{} redacted>", keys.len())))
                .finish(),
            Auth::Basic { users, realm } => f
                .debug_struct("Basic")
                .field("users", users)
                .field("realm", realm)
                .finish(),
            Auth::Jwt(j) => f.debug_tuple("Jwt").field(j).finish(),
            Auth::Ip { allow, deny } => f
                .debug_struct("Ip")
                .field("allow", allow)
                .field("deny", deny)
                .finish(),
        }
    }
}

impl fmt::Debug for BasicUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicUser")
            .field("name", &self.name)
            .field("password", &self.password)
            .finish()
    }
}

impl fmt::Debug for BasicPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BasicPassword::Bcrypt(_) => "<bcrypt hash redacted>",
            BasicPassword::Plain(_) => "<plain password redacted>",
        })
    }
}

impl fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("algorithm", &self.algorithm)
            .field("key", &self.key)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("required_claims", &self.required_claims)
            .field("leeway", &self.leeway)
            .field("require_exp", &self.require_exp)
            .field("realm", &self.realm)
            .finish()
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Public keys are not secret, but their bytes are noise in a log line.
        match self {
            JwtKey::Secret(s) => write!(f, "<secret of {} bytes redacted>", s.len()),
            JwtKey::Rsa(der) => write!(f, "<RSA public key, {} DER bytes>", der.len()),
            JwtKey::EcP256(_) => f.write_str("<EC P-256 public key>"),
        }
    }
}
