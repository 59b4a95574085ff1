//! `coregate check` on `route.auth`: good files pass (key files resolved from the config's
//! directory); each bad key, file or combination names file:line:column and the key path, and
//! no message repeats a secret.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What every config here shares; `{auth}` is the route's auth table.
const BASE: &str = r#"[[listener]]
name = "web"
bind = "127.0.0.1:8080"

[[upstream]]
name = "app"
endpoints = ["127.0.0.1:9000"]

[[route]]
listener = "web"
upstream = "app"
"#;

const SECRET: &str = "hs256-secret-0123456789abcdef-0123456789";

/// A config directory holding `coregate.toml` and whatever key files a test writes beside it.
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> &Self {
        let p = self.path(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    /// Writes one openssl-made public key (RSA `bits`, or an EC `curve`), and the private one.
    fn key(&self, name: &str, algorithm: &str, opt: &str) -> &Self {
        let private = self.path(&format!("{name}.key"));
        let public = self.path(name);
        openssl(&[
            "genpkey",
            "-algorithm",
            algorithm,
            "-pkeyopt",
            opt,
            "-out",
            private.to_str().unwrap(),
        ]);
        openssl(&[
            "pkey",
            "-in",
            private.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ]);
        self
    }

    /// Runs `coregate check` on BASE + `route_tail` (lines that end the route table, then more).
    fn check(&self, route_tail: &str) -> (i32, String, String) {
        let text = format!("{BASE}{route_tail}\n");
        let path = self.path("coregate.toml");
        std::fs::write(&path, &text).unwrap();
        let (code, _, err) = run_cli(&["check", "--config", path.to_str().unwrap()]);
        (code, err, text)
    }

    /// Asserts a rejection at the line and column where `at` starts, naming `key` and `words`.
    fn rejected(&self, route_tail: &str, at: &str, key: &str, words: &str) -> String {
        let (code, err, text) = self.check(route_tail);
        assert_eq!(code, 1, "expected rejection, stderr: {err}");
        let (line, col) = position(&text, at);
        let prefix = format!(
            "{}:{line}:{col}: {key}: ",
            self.path("coregate.toml").display()
        );
        assert!(err.contains(&prefix), "expected {prefix:?} in: {err}");
        assert!(err.contains(words), "no {words:?} in: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
        err
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI is installed");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// 1-based line and column of the first occurrence of `needle`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in config"));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count()
        + 1;
    (line, col)
}

fn bcrypt_line(user: &str, password: &str) -> String {
    format!("{user}:{}", bcrypt::hash(password, 4).unwrap())
}

// ---- files that pass -------------------------------------------------------------------------

#[test]
fn every_method_with_files_beside_the_config_passes() {
    let d = Dir::new();
    d.write(
        "keys/api.txt",
        "# rotated monthly\nkey-one\n\n  key-two  \r\n",
    )
    .write(
        "users.htpasswd",
        &format!(
            "# staff\n{}\n{}\n",
            bcrypt_line("alice", "a"),
            bcrypt_line("bob", "b")
        ),
    )
    .write("jwt.secret", &format!("{SECRET}\n"))
    .key("rs.pub", "RSA", "rsa_keygen_bits:2048")
    .key("es.pub", "EC", "ec_paramgen_curve:P-256");
    let tail = format!(
        r#"path_prefix = "/a/"
auth = {{ ip = {{ allow = ["10.0.0.0/8", "::1"], deny = ["10.9.0.0/16"] }}, api_key = {{ header = "X-Key", keys = ["inline-key"], keys_file = "keys/api.txt" }} }}

[[route]]
listener = "web"
upstream = "app"
path_prefix = "/b/"
auth = {{ basic = {{ htpasswd = "users.htpasswd", users = ["dev:devpass", "{carol}"], realm = "staff only" }} }}

[[route]]
listener = "web"
upstream = "app"
path_prefix = "/c/"
[route.auth.jwt]
secret_file = "jwt.secret"
issuer = "https://idp.example"
audience = "api"
leeway = "30s"
require_exp = false
realm = "api"
required_claims = {{ role = "admin", level = 3, mfa = true }}

[[route]]
listener = "web"
upstream = "app"
path_prefix = "/d/"
auth = {{ jwt = {{ public_key = "rs.pub" }} }}

[[route]]
listener = "web"
upstream = "app"
path_prefix = "/e/"
auth = {{ jwt = {{ algorithm = "ES256", public_key = "{es}" }} }}

[[route]]
listener = "web"
upstream = "app"
path_prefix = "/f/"
auth = {{ jwt = {{ algorithm = "HS256", secret = "{SECRET}" }} }}"#,
        carol = bcrypt_line("carol", "c"),
        es = d.path("es.pub").display(),
    );
    let (code, err, _) = d.check(&tail);
    assert_eq!(code, 0, "stderr: {err}");
}

#[test]
fn inline_pem_public_key_passes() {
    let d = Dir::new();
    d.key("rs.pub", "RSA", "rsa_keygen_bits:2048");
    let pem = std::fs::read_to_string(d.path("rs.pub")).unwrap();
    let (code, err, _) = d.check(&format!(
        "[route.auth.jwt]\npublic_key = \"\"\"\n{pem}\"\"\"\nalgorithm = \"RS256\""
    ));
    assert_eq!(code, 0, "stderr: {err}");
}

// ---- api_key ---------------------------------------------------------------------------------

#[test]
fn api_key_file_missing_empty_or_bad() {
    let d = Dir::new();
    let err = d.rejected(
        r#"auth = { api_key = { keys_file = "nope/keys.txt" } }"#,
        "\"nope/keys.txt\"",
        "route[0].auth.api_key.keys_file",
        "cannot read",
    );
    assert!(
        err.contains(&d.path("nope/keys.txt").display().to_string()),
        "{err}"
    );

    d.write("empty.txt", "# nothing yet\n\n");
    d.rejected(
        r#"auth = { api_key = { keys_file = "empty.txt" } }"#,
        "\"empty.txt\"",
        "route[0].auth.api_key.keys_file",
        "holds no keys",
    );

    d.write("bad.txt", "good-key\nbad key with spaces\n");
    let err = d.rejected(
        r#"auth = { api_key = { keys_file = "bad.txt" } }"#,
        "\"bad.txt\"",
        "route[0].auth.api_key.keys_file",
        "line 2: an api key must be visible ASCII without spaces",
    );
    assert!(!err.contains("bad key with"), "no key echoed: {err}");
}

#[test]
fn api_key_inline_problems() {
    let d = Dir::new();
    d.rejected(
        r#"auth = { api_key = { keys = [] } }"#,
        "{ keys = []",
        "route[0].auth.api_key.keys",
        "needs at least one key",
    );
    d.rejected(
        r#"auth = { api_key = { keys = ["ok", " padded"] } }"#,
        "\" padded\"",
        "route[0].auth.api_key.keys[1]",
        "visible ASCII",
    );
    d.rejected(
        r#"auth = { api_key = { header = "x key", keys = ["k"] } }"#,
        "\"x key\"",
        "route[0].auth.api_key.header",
        "invalid header name",
    );
    d.rejected(
        r#"auth = { api_key = { kyes = ["k"] } }"#,
        "kyes",
        "route[0].auth.api_key.kyes",
        "unknown field",
    );
}

// ---- basic -----------------------------------------------------------------------------------

#[test]
fn htpasswd_line_that_is_not_bcrypt() {
    let d = Dir::new();
    d.write(
        "users",
        &format!(
            "{}\n# apache MD5 below\nbob:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n",
            bcrypt_line("alice", "a")
        ),
    );
    let err = d.rejected(
        r#"auth = { basic = { htpasswd = "users" } }"#,
        "\"users\"",
        "route[0].auth.basic.htpasswd",
        "line 3: user \"bob\": not a bcrypt hash; only bcrypt is accepted (htpasswd -B)",
    );
    assert!(!err.contains("HqJZ"), "no hash echoed: {err}");

    d.write("plain", "carol:carolpass\n");
    d.rejected(
        r#"auth = { basic = { htpasswd = "plain" } }"#,
        "\"plain\"",
        "route[0].auth.basic.htpasswd",
        "line 1: user \"carol\": not a bcrypt hash",
    );

    d.write("broken", "dave:$2y$05$tooshort\n");
    d.rejected(
        r#"auth = { basic = { htpasswd = "broken" } }"#,
        "\"broken\"",
        "route[0].auth.basic.htpasswd",
        "line 1: user \"dave\": malformed bcrypt hash",
    );

    d.write(
        "dup",
        &format!("{}\n{}\n", bcrypt_line("eve", "1"), bcrypt_line("eve", "2")),
    );
    d.rejected(
        r#"auth = { basic = { htpasswd = "dup" } }"#,
        "\"dup\"",
        "route[0].auth.basic.htpasswd",
        "line 2: user \"eve\" appears twice",
    );

    d.rejected(
        r#"auth = { basic = { htpasswd = "/nonexistent/htpasswd" } }"#,
        "\"/nonexistent/htpasswd\"",
        "route[0].auth.basic.htpasswd",
        "cannot read /nonexistent/htpasswd",
    );
}

#[test]
fn basic_inline_users() {
    let d = Dir::new();
    let err = d.rejected(
        r#"auth = { basic = { users = ["ok:pw", "sha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="] } }"#,
        "\"sha:",
        "route[0].auth.basic.users[1]",
        "user \"sha\": not a bcrypt hash",
    );
    assert!(!err.contains("W6ph"), "{err}");
    d.rejected(
        r#"auth = { basic = { users = ["nocolon"] } }"#,
        "\"nocolon\"",
        "route[0].auth.basic.users[0]",
        "expected \"user:bcrypt-hash\"",
    );
    d.rejected(
        r#"auth = { basic = { users = ["a:x", "a:y"] } }"#,
        "\"a:y\"",
        "route[0].auth.basic.users[1]",
        "appears twice",
    );
    d.rejected(
        r#"auth = { basic = { users = [] } }"#,
        "{ users = []",
        "route[0].auth.basic.users",
        "needs at least one user",
    );
    d.rejected(
        r#"auth = { basic = { users = ["a:b"], realm = "say \"hi\"" } }"#,
        "\"say",
        "route[0].auth.basic.realm",
        "without quotes",
    );
    let slow = format!("slow:{}", "$2b$31$".to_string() + &".".repeat(53));
    d.rejected(
        &format!(r#"auth = {{ basic = {{ users = ["{slow}"] }} }}"#),
        "\"slow:",
        "route[0].auth.basic.users[0]",
        "cost 31 outside 4..=12",
    );
}

// ---- ip --------------------------------------------------------------------------------------

#[test]
fn ip_bad_cidr_and_empty_lists() {
    let d = Dir::new();
    d.rejected(
        r#"auth = { ip = { allow = ["10.0.0.0/8", "10.0.0.0/33"] } }"#,
        "\"10.0.0.0/33\"",
        "route[0].auth.ip.allow[1]",
        "invalid network \"10.0.0.0/33\"",
    );
    d.rejected(
        r#"auth = { ip = { deny = ["not-an-ip"] } }"#,
        "\"not-an-ip\"",
        "route[0].auth.ip.deny[0]",
        "invalid network",
    );
    d.rejected(
        r#"auth = { ip = { allow = [] } }"#,
        "{ allow = []",
        "route[0].auth.ip",
        "needs `allow` or `deny`",
    );
}

// ---- jwt -------------------------------------------------------------------------------------

#[test]
fn jwt_key_source_and_algorithm_must_agree() {
    let d = Dir::new();
    d.key("rs.pub", "RSA", "rsa_keygen_bits:2048")
        .key("es.pub", "EC", "ec_paramgen_curve:P-256")
        .key("p384.pub", "EC", "ec_paramgen_curve:P-384")
        .key("small.pub", "RSA", "rsa_keygen_bits:1024");
    d.rejected(
        r#"auth = { jwt = { issuer = "x" } }"#,
        "{ issuer",
        "route[0].auth.jwt",
        "give exactly one of `secret` or `secret_file` (HS256) or `public_key`",
    );
    d.rejected(
        &format!(r#"auth = {{ jwt = {{ secret = "{SECRET}", public_key = "rs.pub" }} }}"#),
        "{ secret",
        "route[0].auth.jwt",
        "exactly one",
    );
    d.rejected(
        r#"auth = { jwt = { algorithm = "HS256", public_key = "rs.pub" } }"#,
        "\"HS256\"",
        "route[0].auth.jwt.algorithm",
        "HS256 needs `secret` or `secret_file`",
    );
    d.rejected(
        &format!(r#"auth = {{ jwt = {{ algorithm = "RS256", secret = "{SECRET}" }} }}"#),
        "\"RS256\"",
        "route[0].auth.jwt.algorithm",
        "RS256 verifies with `public_key`",
    );
    d.rejected(
        r#"auth = { jwt = { algorithm = "HS512", secret = "x" } }"#,
        "\"HS512\"",
        "route[0].auth.jwt.algorithm",
        "expected HS256, RS256 or ES256",
    );
    d.rejected(
        r#"auth = { jwt = { algorithm = "RS256", public_key = "es.pub" } }"#,
        "\"es.pub\"",
        "route[0].auth.jwt.public_key",
        "holds an EC P-256 key; RS256 needs an RSA key",
    );
    d.rejected(
        r#"auth = { jwt = { algorithm = "ES256", public_key = "rs.pub" } }"#,
        "\"rs.pub\"",
        "route[0].auth.jwt.public_key",
        "holds an RSA 2048-bit key; ES256 needs an EC P-256 key",
    );
    d.rejected(
        r#"auth = { jwt = { public_key = "p384.pub" } }"#,
        "\"p384.pub\"",
        "route[0].auth.jwt.public_key",
        "holds an EC P-384 key",
    );
    d.rejected(
        r#"auth = { jwt = { public_key = "small.pub" } }"#,
        "\"small.pub\"",
        "route[0].auth.jwt.public_key",
        "an RSA 1024-bit key; RS256 needs 2048 to 8192 bits",
    );
}

#[test]
fn jwt_key_files_missing_unparsable_or_private() {
    let d = Dir::new();
    d.key("rs.pub", "RSA", "rsa_keygen_bits:2048");
    d.rejected(
        r#"auth = { jwt = { public_key = "keys/missing.pem" } }"#,
        "\"keys/missing.pem\"",
        "route[0].auth.jwt.public_key",
        "cannot read",
    );
    d.write("junk.pem", "this is not a key\n");
    d.rejected(
        r#"auth = { jwt = { public_key = "junk.pem" } }"#,
        "\"junk.pem\"",
        "route[0].auth.jwt.public_key",
        "not valid PEM",
    );
    let err = d.rejected(
        r#"auth = { jwt = { public_key = "rs.pub.key" } }"#,
        "\"rs.pub.key\"",
        "route[0].auth.jwt.public_key",
        "holds a private key; give the public key (openssl pkey -pubout)",
    );
    assert!(!err.contains("MII"), "{err}");
    d.rejected(
        r#"auth = { jwt = { secret_file = "nope.secret" } }"#,
        "\"nope.secret\"",
        "route[0].auth.jwt.secret_file",
        "cannot read",
    );
}

#[test]
fn jwt_short_secret_is_refused_without_echoing_it() {
    let d = Dir::new();
    let err = d.rejected(
        r#"auth = { jwt = { secret = "hunter2-too-short" } }"#,
        "\"hunter2",
        "route[0].auth.jwt.secret",
        "at least 32 bytes (RFC 7518 §3.2); this one has 17",
    );
    assert!(!err.contains("hunter2"), "{err}");
    d.write("short.secret", "hunter2\n");
    let err = d.rejected(
        r#"auth = { jwt = { secret_file = "short.secret" } }"#,
        "\"short.secret\"",
        "route[0].auth.jwt.secret_file",
        "this one has 7",
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn jwt_claims_leeway_and_text_fields() {
    let d = Dir::new();
    d.rejected(
        &format!(
            r#"auth = {{ jwt = {{ secret = "{SECRET}", required_claims = {{ role = ["admin"] }} }} }}"#
        ),
        "[\"admin\"]",
        "route[0].auth.jwt.required_claims.role",
        "expected a string, integer or boolean",
    );
    d.rejected(
        &format!(r#"auth = {{ jwt = {{ secret = "{SECRET}", leeway = "5" }} }}"#),
        "\"5\"",
        "route[0].auth.jwt.leeway",
        "invalid duration",
    );
    d.rejected(
        &format!(r#"auth = {{ jwt = {{ secret = "{SECRET}", issuer = "" }} }}"#),
        "\"\"",
        "route[0].auth.jwt.issuer",
        "must not be empty",
    );
}

// ---- combinations ----------------------------------------------------------------------------

#[test]
fn conflicting_and_empty_auth_tables() {
    let d = Dir::new();
    d.rejected(
        &format!(r#"auth = {{ basic = {{ users = ["a:b"] }}, jwt = {{ secret = "{SECRET}" }} }}"#),
        "{ basic",
        "route[0].auth",
        "basic and jwt both read the Authorization header",
    );
    d.rejected(
        r#"auth = { api_key = { header = "Authorization", keys = ["k"] }, basic = { users = ["a:b"] } }"#,
        "\"Authorization\"",
        "route[0].auth.api_key.header",
        "give the api key another header",
    );
    d.rejected(
        "auth = {}",
        "{}",
        "route[0].auth",
        "expected one of api_key, basic, jwt, ip",
    );
}

#[test]
fn no_error_repeats_a_secret() {
    let d = Dir::new();
    // The TOML itself is broken right after a secret: the parser's message must not quote it.
    let (code, err, _) = d.check(r#"auth = { api_key = { keys = ["topsecret-key" "second"] } }"#);
    assert_eq!(code, 1);
    assert!(!err.contains("topsecret"), "{err}");
    let (code, err, _) = d.check(
        r#"auth = { basic = { users = ["u:$2y$05$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY"] } }"#,
    );
    assert_eq!(code, 1);
    assert!(!err.contains("abcdefghij"), "{err}");
}

#[test]
fn relative_paths_follow_the_config_not_the_working_directory() {
    let d = Dir::new();
    d.write("k.txt", "from-config-dir\n");
    let (code, err, _) = d.check(r#"auth = { api_key = { keys_file = "k.txt" } }"#);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(!Path::new("k.txt").exists(), "the test's cwd has no k.txt");
}
