//! Reading and checking what auth rules refer to, at config load: key files, htpasswd lines,
//! realms. Errors are short phrases for `config::validate`, which adds file:line:col and the key
//! path; they name users and line numbers, never a key, password or hash.

use crate::config::{BasicPassword, BasicUser};
use std::path::{Path, PathBuf};

/// Largest key, htpasswd or PEM file read: these are small, and a wrong path to a huge file
/// should fail fast instead of filling memory.
pub const MAX_AUTH_FILE: u64 = 4 * 1024 * 1024;

/// Resolves `path` against the config file's directory (so a config and its key files can move
/// together, whatever the working directory) and reads it as UTF-8.
pub fn read_file(config: &Path, path: &str) -> Result<(PathBuf, String), String> {
    let full = resolve(config, path);
    let shown = full.display();
    let meta = std::fs::metadata(&full).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("cannot read {shown}: not a regular file"));
    }
    if meta.len() > MAX_AUTH_FILE {
        return Err(format!(
            "{shown} is larger than {MAX_AUTH_FILE} bytes; not a key file"
        ));
    }
    let text = std::fs::read(&full).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let text = String::from_utf8(text).map_err(|_| format!("{shown} is not UTF-8 text"))?;
    Ok((full, text))
}

/// `path` relative to the config file's directory (absolute paths as they are).
pub fn resolve(config: &Path, path: &str) -> PathBuf {
    match config.parent() {
        Some(dir) if Path::new(path).is_relative() => dir.join(path),
        _ => PathBuf::from(path),
    }
}

/// The meaningful lines of a key or htpasswd file: 1-based number and text, with blank lines
/// and `#` comments skipped and surrounding whitespace (including `\r`) trimmed.
pub fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// An API key must be sendable as a header value and compare as written: visible ASCII
/// without spaces (a header parser strips surrounding whitespace, so it could never match).
pub fn check_api_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("an api key must not be empty");
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("an api key must be visible ASCII without spaces");
    }
    Ok(())
}

/// One `user:secret` entry. `secret` is a bcrypt hash (`$2a$`, `$2b$`, `$2x$`, `$2y$`); when
/// `allow_plain`, anything not looking like a hash is a plain password (inline config, dev).
/// Other htpasswd hashes (`$apr1$` MD5, `{SHA}`, crypt) are refused: they are weak or unsalted.
pub fn parse_basic_entry(line: &str, allow_plain: bool) -> Result<BasicUser, String> {
    let Some((name, secret)) = line.split_once(':') else {
        return Err("expected \"user:bcrypt-hash\" (htpasswd -B)".into());
    };
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err("empty or invalid user name".into());
    }
    let password = if secret.starts_with("$2") {
        bcrypt_parts(secret).map_err(|e| format!("user {name:?}: malformed bcrypt hash ({e})"))?;
        BasicPassword::Bcrypt(secret.to_string())
    } else if secret.starts_with('$') || secret.starts_with("{SHA}") {
        return Err(format!(
            "user {name:?}: not a bcrypt hash; only bcrypt is accepted (htpasswd -B)"
        ));
    } else if allow_plain && !secret.is_empty() {
        BasicPassword::Plain(secret.to_string())
    } else if secret.is_empty() {
        return Err(format!("user {name:?}: empty password"));
    } else {
        return Err(format!(
            "user {name:?}: not a bcrypt hash; only bcrypt is accepted (htpasswd -B)"
        ));
    };
    Ok(BasicUser {
        name: name.to_string(),
        password,
    })
}

/// Checks a bcrypt hash's shape and cost without running it.
fn bcrypt_parts(hash: &str) -> Result<(), String> {
    let parts: bcrypt::HashParts = hash.parse().map_err(|e: bcrypt::BcryptError| {
        // bcrypt's messages describe the format, never echo the hash.
        e.to_string()
    })?;
    let cost = parts.get_cost();
    if !(BCRYPT_MIN_COST..=BCRYPT_MAX_COST).contains(&cost) {
        return Err(format!(
            "cost {cost} outside {BCRYPT_MIN_COST}..={BCRYPT_MAX_COST}"
        ));
    }
    Ok(())
}

/// Lowest bcrypt cost the algorithm defines.
pub const BCRYPT_MIN_COST: u32 = 4;
/// Highest bcrypt cost accepted: each step doubles the time, and a check runs on a worker
/// thread, stalling its other connections; cost 12 is about 250 ms (htpasswd -B uses 5).
pub const BCRYPT_MAX_COST: u32 = 12;

/// A realm goes inside a quoted-string of `WWW-Authenticate`: no quotes, backslashes or
/// control characters, so it needs no escaping.
pub fn check_realm(realm: &str) -> Result<(), &'static str> {
    if realm.is_empty()
        || realm
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        return Err("a realm must be non-empty, without quotes, backslashes or control characters");
    }
    Ok(())
}
