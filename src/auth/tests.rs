//! Each method accepting and refusing, the chain's order, the cache, key parsing, redaction, and
//! that API key and IP checks do not allocate. RSA/EC keys are made per run by the openssl CLI.

use super::key::{parse_public_key_pem, PublicKey};
use super::*;
use crate::config::{BasicPassword, BasicUser, ClaimValue, JwtAlgorithm, JwtAuth, JwtKey};
use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

// ---- helpers --------------------------------------------------------------------------------

/// A header lookup over fixed pairs, case-insensitive like the real one.
fn lookup<'h>(pairs: &'h [(&'h str, &'h str)]) -> impl Fn(&str) -> Option<&'h [u8]> + 'h {
    move |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Checks one request from 127.0.0.1 with a fresh cache; `Err` carries status and reason.
fn decide(chain: &AuthChain, pairs: &[(&str, &str)]) -> Result<(), (u16, &'static str)> {
    decide_from(chain, "127.0.0.1", pairs)
}

fn decide_from(
    chain: &AuthChain,
    client: &str,
    pairs: &[(&str, &str)],
) -> Result<(), (u16, &'static str)> {
    chain
        .check(ip(client), &lookup(pairs), &mut AuthCache::new())
        .map_err(|d| (d.status, d.reason))
}

fn chain(rules: Vec<Auth>) -> AuthChain {
    AuthChain::build(&rules).unwrap()
}

fn nets(v: &[&str]) -> Vec<ipnet::IpNet> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

fn basic_header(user: &str, password: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const SECRET: &str = "0123456789abcdef0123456789abcdef-hs256";

fn jwt_rule(algorithm: JwtAlgorithm, key: JwtKey) -> JwtAuth {
    JwtAuth {
        algorithm,
        key,
        issuer: None,
        audience: None,
        required_claims: Vec::new(),
        leeway: DEFAULT_JWT_LEEWAY,
        require_exp: true,
        realm: "api".into(),
    }
}

fn hs_rule() -> JwtAuth {
    jwt_rule(
        JwtAlgorithm::HS256,
        JwtKey::Secret(SECRET.as_bytes().to_vec()),
    )
}

fn hs_token(claims: serde_json::Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
    )
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: serde_json::Value) -> String {
    encode(&Header::new(alg), &claims, key).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Decides a JWT rule alone for a bearer token.
fn jwt_decide(rule: JwtAuth, token: &str) -> Result<(), (u16, &'static str)> {
    let c = chain(vec![Auth::Jwt(Box::new(rule))]);
    let h = bearer(token);
    decide(&c, &[("authorization", &h)])
}

/// PEM keys made once per test run by the openssl CLI; never written to the repository.
struct Keys {
    rsa_private: String,
    rsa_public: String,
    rsa_pkcs1_public: String,
    rsa_cert: String,
    other_rsa_private: String,
    ec_private: String,
    ec_public: String,
    p384_public: String,
    ed25519_public: String,
    rsa1024_public: String,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .output()
                .expect("the openssl CLI is installed");
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        let pubout = |private: &str, public: &str| {
            openssl(&["pkey", "-in", &p(private), "-pubout", "-out", &p(public)])
        };
        let rsa = |bits: &str, out: &str| {
            let opt = format!("rsa_keygen_bits:{bits}");
            openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                &opt,
                "-out",
                &p(out),
            ])
        };
        rsa("2048", "rsa.key");
        pubout("rsa.key", "rsa.pub");
        openssl(&[
            "rsa",
            "-in",
            &p("rsa.key"),
            "-RSAPublicKey_out",
            "-out",
            &p("rsa1.pub"),
        ]);
        openssl(&[
            "req",
            "-x509",
            "-key",
            &p("rsa.key"),
            "-subj",
            "/CN=coregate-test",
            "-days",
            "1",
            "-out",
            &p("rsa.crt"),
        ]);
        rsa("2048", "other.key");
        rsa("1024", "small.key");
        pubout("small.key", "small.pub");
        let ec = |curve: &str, out: &str| {
            let opt = format!("ec_paramgen_curve:{curve}");
            openssl(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                &opt,
                "-out",
                &p(out),
            ])
        };
        ec("P-256", "ec.key");
        pubout("ec.key", "ec.pub");
        ec("P-384", "p384.key");
        pubout("p384.key", "p384.pub");
        openssl(&["genpkey", "-algorithm", "ED25519", "-out", &p("ed.key")]);
        pubout("ed.key", "ed.pub");
        let read = |n: &str| std::fs::read_to_string(p(n)).unwrap();
        Keys {
            rsa_private: read("rsa.key"),
            rsa_public: read("rsa.pub"),
            rsa_pkcs1_public: read("rsa1.pub"),
            rsa_cert: read("rsa.crt"),
            other_rsa_private: read("other.key"),
            ec_private: read("ec.key"),
            ec_public: read("ec.pub"),
            p384_public: read("p384.pub"),
            ed25519_public: read("ed.pub"),
            rsa1024_public: read("small.pub"),
        }
    })
}

fn rsa_key(pem: &str) -> JwtKey {
    match parse_public_key_pem(pem.as_bytes()).unwrap() {
        PublicKey::Rsa { der, .. } => JwtKey::Rsa(der),
        other => panic!("not RSA: {other:?}"),
    }
}

fn ec_key(pem: &str) -> JwtKey {
    match parse_public_key_pem(pem.as_bytes()).unwrap() {
        PublicKey::EcP256(point) => JwtKey::EcP256(point),
        other => panic!("not P-256: {other:?}"),
    }
}

fn rs_rule() -> JwtAuth {
    jwt_rule(JwtAlgorithm::RS256, rsa_key(&keys().rsa_public))
}

fn es_rule() -> JwtAuth {
    jwt_rule(JwtAlgorithm::ES256, ec_key(&keys().ec_public))
}

fn rs_token(private: &str, claims: serde_json::Value) -> String {
    let key = EncodingKey::from_rsa_pem(private.as_bytes()).unwrap();
    sign(Algorithm::RS256, &key, claims)
}

fn es_token(claims: serde_json::Value) -> String {
    let key = EncodingKey::from_ec_pem(keys().ec_private.as_bytes()).unwrap();
    sign(Algorithm::ES256, &key, claims)
}

// ---- ip --------------------------------------------------------------------------------------

#[test]
fn ip_allow_list_hit_passes_and_miss_is_403() {
    let c = chain(vec![Auth::Ip {
        allow: nets(&["10.0.0.0/8", "2001:db8::/32"]),
        deny: vec![],
    }]);
    assert_eq!(decide_from(&c, "10.1.2.3", &[]), Ok(()));
    assert_eq!(decide_from(&c, "2001:db8::7", &[]), Ok(()));
    assert_eq!(
        decide_from(&c, "192.168.1.1", &[]),
        Err((403, "client address not in allow list"))
    );
    let d = c
        .check(ip("192.168.1.1"), &lookup(&[]), &mut AuthCache::new())
        .unwrap_err();
    assert_eq!(d.www_authenticate, None, "403 carries no challenge");
}

#[test]
fn ip_deny_is_403_and_wins_over_allow() {
    let c = chain(vec![Auth::Ip {
        allow: nets(&["10.0.0.0/8"]),
        deny: nets(&["10.9.0.0/16"]),
    }]);
    assert_eq!(decide_from(&c, "10.1.0.1", &[]), Ok(()));
    assert_eq!(
        decide_from(&c, "10.9.3.4", &[]),
        Err((403, "client address denied"))
    );
    let deny_only = chain(vec![Auth::Ip {
        allow: vec![],
        deny: nets(&["203.0.113.7/32"]),
    }]);
    assert_eq!(decide_from(&deny_only, "203.0.113.8", &[]), Ok(()));
    assert_eq!(
        decide_from(&deny_only, "203.0.113.7", &[]),
        Err((403, "client address denied"))
    );
}

#[test]
fn ip_v4_mapped_v6_client_matches_v4_rules() {
    let c = chain(vec![Auth::Ip {
        allow: nets(&["10.0.0.0/8"]),
        deny: nets(&["10.0.0.66/32"]),
    }]);
    assert_eq!(decide_from(&c, "::ffff:10.1.1.1", &[]), Ok(()));
    assert_eq!(
        decide_from(&c, "::ffff:10.0.0.66", &[]),
        Err((403, "client address denied"))
    );
}

// ---- api key ---------------------------------------------------------------------------------

fn api_chain() -> AuthChain {
    chain(vec![Auth::ApiKey {
        header: "x-api-key".into(),
        keys: vec!["key-one".into(), "key-two-longer".into()],
    }])
}

#[test]
fn api_key_accepts_each_configured_key() {
    let c = api_chain();
    assert_eq!(decide(&c, &[("x-api-key", "key-one")]), Ok(()));
    assert_eq!(decide(&c, &[("X-Api-Key", " key-two-longer\t")]), Ok(()));
}

#[test]
fn api_key_refuses_missing_wrong_and_partial_keys_with_a_challenge() {
    let c = api_chain();
    assert_eq!(decide(&c, &[]), Err((401, "missing api key")));
    assert_eq!(
        decide(&c, &[("x-api-key", "  ")]),
        Err((401, "missing api key"))
    );
    for wrong in ["key-on", "key-one2", "KEY-ONE", "key-two"] {
        assert_eq!(
            decide(&c, &[("x-api-key", wrong)]),
            Err((401, "unknown api key")),
            "{wrong}"
        );
    }
    // Another header carrying a good key does not count.
    assert_eq!(
        decide(&c, &[("authorization", "key-one")]),
        Err((401, "missing api key"))
    );
    let d = c
        .check(ip("127.0.0.1"), &lookup(&[]), &mut AuthCache::new())
        .unwrap_err();
    assert_eq!(d.www_authenticate, Some("ApiKey header=\"x-api-key\""));
}

#[test]
fn api_key_custom_header() {
    let c = chain(vec![Auth::ApiKey {
        header: "X-Token".into(),
        keys: vec!["t".into()],
    }]);
    assert_eq!(decide(&c, &[("x-token", "t")]), Ok(()));
    assert_eq!(
        decide(&c, &[("x-api-key", "t")]),
        Err((401, "missing api key"))
    );
}

// ---- basic -----------------------------------------------------------------------------------

/// Lowest bcrypt cost, so tests stay fast.
const TEST_COST: u32 = 4;

fn basic_chain(realm: &str) -> AuthChain {
    chain(vec![Auth::Basic {
        users: vec![
            BasicUser {
                name: "alice".into(),
                password: BasicPassword::Bcrypt(
                    bcrypt::hash("s3cret:with:colons", TEST_COST).unwrap(),
                ),
            },
            BasicUser {
                name: "dev".into(),
                password: BasicPassword::Plain("plain-pw".into()),
            },
        ],
        realm: realm.into(),
    }])
}

#[test]
fn basic_accepts_bcrypt_and_plain_users() {
    let c = basic_chain("staff");
    let good = basic_header("alice", "s3cret:with:colons");
    assert_eq!(decide(&c, &[("authorization", &good)]), Ok(()));
    let lower = good.replacen("Basic", "bASIC", 1);
    assert_eq!(decide(&c, &[("authorization", &lower)]), Ok(()));
    let dev = basic_header("dev", "plain-pw");
    assert_eq!(decide(&c, &[("authorization", &dev)]), Ok(()));
    // Unpadded base64 is tolerated.
    let unpadded = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode("dev:plain-pw")
    );
    assert_eq!(decide(&c, &[("authorization", &unpadded)]), Ok(()));
}

#[test]
fn basic_refuses_wrong_password_and_unknown_user() {
    let c = basic_chain("staff");
    let cases = [
        (basic_header("alice", "s3cret"), "wrong basic password"),
        (basic_header("alice", ""), "wrong basic password"),
        (basic_header("dev", "plain-pw "), "wrong basic password"),
        (
            basic_header("mallory", "s3cret:with:colons"),
            "unknown basic user",
        ),
        (
            basic_header("Alice", "s3cret:with:colons"),
            "unknown basic user",
        ),
    ];
    for (h, reason) in cases {
        assert_eq!(
            decide(&c, &[("authorization", &h)]),
            Err((401, reason)),
            "{h}"
        );
    }
}

#[test]
fn basic_refuses_malformed_headers_with_the_realm_challenge() {
    let c = basic_chain("staff");
    let no_colon = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice")
    );
    let huge = format!("Basic {}", "QUFB".repeat(400));
    let cases: [(&str, &str); 6] = [
        ("Basic !!!not-base64!!!", "malformed basic credentials"),
        (&no_colon, "malformed basic credentials"),
        ("Basic", "not basic credentials"),
        ("Basicxyz", "not basic credentials"),
        ("Bearer abc.def.ghi", "not basic credentials"),
        (&huge, "basic credentials too long"),
    ];
    for (h, reason) in cases {
        assert_eq!(
            decide(&c, &[("authorization", h)]),
            Err((401, reason)),
            "{h}"
        );
    }
    let d = c
        .check(ip("127.0.0.1"), &lookup(&[]), &mut AuthCache::new())
        .unwrap_err();
    assert_eq!(
        (d.status, d.reason, d.www_authenticate),
        (
            401,
            "missing basic credentials",
            Some("Basic realm=\"staff\", charset=\"UTF-8\"")
        )
    );
}

#[test]
fn basic_credentials_length_limit() {
    let c = basic_chain("staff");
    let at_limit = basic_header("dev", &"x".repeat(basic::MAX_BASIC_CREDENTIALS - 4));
    assert_eq!(
        decide(&c, &[("authorization", &at_limit)]),
        Err((401, "wrong basic password"))
    );
    let over = basic_header("dev", &"x".repeat(basic::MAX_BASIC_CREDENTIALS));
    assert_eq!(
        decide(&c, &[("authorization", &over)]),
        Err((401, "basic credentials too long"))
    );
}

#[test]
fn basic_cache_remembers_verdicts_per_rule_and_expires() {
    let c = basic_chain("r");
    let good = basic_header("alice", "s3cret:with:colons");
    let bad = basic_header("alice", "nope");
    let mut cache = AuthCache::new();
    let run = |c: &AuthChain, h: &str, cache: &mut AuthCache| {
        c.check(ip("127.0.0.1"), &lookup(&[("authorization", h)]), cache)
            .map_err(|d| d.reason)
    };
    assert_eq!(run(&c, &good, &mut cache), Ok(()));
    assert_eq!((cache.hits(), cache.misses()), (0, 1));
    assert_eq!(run(&c, &good, &mut cache), Ok(()));
    assert_eq!((cache.hits(), cache.misses()), (1, 1));
    // A refusal is remembered too, and never turns into a pass.
    assert_eq!(run(&c, &bad, &mut cache), Err("wrong basic password"));
    assert_eq!(run(&c, &bad, &mut cache), Err("wrong basic password"));
    assert_eq!((cache.hits(), cache.misses()), (2, 2));
    // Another compiled rule (another route, or the next config version) has its own entries.
    let other = basic_chain("r");
    assert_eq!(run(&other, &good, &mut cache), Ok(()));
    assert_eq!((cache.hits(), cache.misses()), (2, 3));
    // Plain users never touch the cache.
    let dev = basic_header("dev", "plain-pw");
    assert_eq!(run(&c, &dev, &mut cache), Ok(()));
    assert_eq!((cache.hits(), cache.misses()), (2, 3));

    let mut expired = AuthCache::with_limits(8, Duration::ZERO);
    assert_eq!(run(&c, &good, &mut expired), Ok(()));
    assert_eq!(run(&c, &good, &mut expired), Ok(()));
    assert_eq!((expired.hits(), expired.misses()), (0, 2));
}

#[test]
fn basic_cache_debug_shows_no_key_material() {
    let text = format!("{:?}", AuthCache::new());
    assert!(text.starts_with("AuthCache { slots: 1024"), "{text}");
    assert!(!text.contains("key"), "{text}");
}

// ---- jwt, HS256 ------------------------------------------------------------------------------

#[test]
fn jwt_hs256_valid_token_passes() {
    let t = hs_token(json!({"sub": "u1", "exp": now() + 600}));
    assert_eq!(jwt_decide(hs_rule(), &t), Ok(()));
    let lower = format!("bearer {t}");
    let c = chain(vec![Auth::Jwt(Box::new(hs_rule()))]);
    assert_eq!(decide(&c, &[("authorization", &lower)]), Ok(()));
}

#[test]
fn jwt_expiry_and_not_before_with_leeway() {
    let exp = |e: i64| hs_token(json!({"exp": e}));
    assert_eq!(
        jwt_decide(hs_rule(), &exp(now() - 3600)),
        Err((401, "jwt expired"))
    );
    // Within the default 60 s leeway still passes.
    assert_eq!(jwt_decide(hs_rule(), &exp(now() - 10)), Ok(()));
    let mut strict = hs_rule();
    strict.leeway = Duration::ZERO;
    assert_eq!(
        jwt_decide(strict, &exp(now() - 10)),
        Err((401, "jwt expired"))
    );

    let nbf = |n: i64| hs_token(json!({"exp": now() + 3600, "nbf": n}));
    assert_eq!(
        jwt_decide(hs_rule(), &nbf(now() + 3600)),
        Err((401, "jwt not yet valid"))
    );
    assert_eq!(jwt_decide(hs_rule(), &nbf(now() + 10)), Ok(()));
    assert_eq!(jwt_decide(hs_rule(), &nbf(now() - 10)), Ok(()));
}

#[test]
fn jwt_exact_time_boundaries() {
    let rule = JwtRule::new(&{
        let mut r = hs_rule();
        r.leeway = Duration::ZERO;
        r
    })
    .unwrap();
    let t = bearer(&hs_token(json!({"exp": 1000, "nbf": 900})));
    assert_eq!(rule.verify_at(t.as_bytes(), 999.5), Ok(()));
    assert_eq!(
        rule.verify_at(t.as_bytes(), 1000.0),
        Err((401, "jwt expired"))
    );
    assert_eq!(rule.verify_at(t.as_bytes(), 900.0), Ok(()));
    assert_eq!(
        rule.verify_at(t.as_bytes(), 899.9),
        Err((401, "jwt not yet valid"))
    );
}

use super::jwt::JwtRule;

#[test]
fn jwt_exp_is_required_unless_configured_and_must_be_a_number() {
    let no_exp = hs_token(json!({"sub": "u"}));
    assert_eq!(jwt_decide(hs_rule(), &no_exp), Err((401, "jwt has no exp")));
    let mut lax = hs_rule();
    lax.require_exp = false;
    assert_eq!(jwt_decide(lax, &no_exp), Ok(()));
    let text_exp = hs_token(json!({"exp": "tomorrow"}));
    assert_eq!(
        jwt_decide(hs_rule(), &text_exp),
        Err((401, "jwt exp is not a number"))
    );
    let text_nbf = hs_token(json!({"exp": now() + 60, "nbf": "yesterday"}));
    assert_eq!(
        jwt_decide(hs_rule(), &text_nbf),
        Err((401, "jwt nbf is not a number"))
    );
    // A fractional NumericDate is a number (RFC 7519 §2).
    let frac = hs_token(json!({"exp": now() as f64 + 600.5}));
    assert_eq!(jwt_decide(hs_rule(), &frac), Ok(()));
}

#[test]
fn jwt_wrong_signature_and_malformed_tokens() {
    let other = EncodingKey::from_secret(b"another-secret-of-32-bytes-or-more!!");
    let forged = sign(Algorithm::HS256, &other, json!({"exp": now() + 600}));
    assert_eq!(
        jwt_decide(hs_rule(), &forged),
        Err((401, "jwt signature invalid"))
    );
    // Claims swapped under a valid signature.
    let good = hs_token(json!({"exp": now() + 600, "role": "user"}));
    let evil = hs_token(json!({"exp": now() + 600, "role": "admin"}));
    let parts: Vec<&str> = good.split('.').collect();
    let evil_payload = evil.split('.').nth(1).unwrap();
    let spliced = format!("{}.{}.{}", parts[0], evil_payload, parts[2]);
    assert_eq!(
        jwt_decide(hs_rule(), &spliced),
        Err((401, "jwt signature invalid"))
    );
    for bad in ["abc", "a.b", "a.b.c", "....", &good[..good.len() - 5]] {
        assert!(jwt_decide(hs_rule(), bad).is_err(), "{bad}");
    }
    let huge = "a".repeat(jwt::MAX_TOKEN_LEN + 1);
    assert_eq!(
        jwt_decide(hs_rule(), &huge),
        Err((401, "bearer token too long"))
    );
}

#[test]
fn jwt_alg_none_is_refused() {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64.encode(format!(r#"{{"exp":{}}}"#, now() + 600));
    let token = format!("{header}.{payload}.");
    assert_eq!(jwt_decide(hs_rule(), &token), Err((401, "malformed jwt")));
}

#[test]
fn jwt_missing_or_other_scheme_carries_bearer_challenges() {
    let c = chain(vec![Auth::Jwt(Box::new(hs_rule()))]);
    let d = c
        .check(ip("127.0.0.1"), &lookup(&[]), &mut AuthCache::new())
        .unwrap_err();
    assert_eq!(
        (d.status, d.reason, d.www_authenticate),
        (401, "missing bearer token", Some("Bearer realm=\"api\""))
    );
    let h = basic_header("a", "b");
    let d = c
        .check(
            ip("127.0.0.1"),
            &lookup(&[("authorization", &h)]),
            &mut AuthCache::new(),
        )
        .unwrap_err();
    assert_eq!(
        (d.status, d.reason, d.www_authenticate),
        (
            401,
            "not a bearer token",
            Some("Bearer realm=\"api\", error=\"invalid_token\"")
        )
    );
}

#[test]
fn jwt_issuer_and_audience() {
    let mut rule = hs_rule();
    rule.issuer = Some("https://idp.example".into());
    rule.audience = Some("api".into());
    let exp = now() + 600;
    let ok = [
        json!({"exp": exp, "iss": "https://idp.example", "aud": "api"}),
        json!({"exp": exp, "iss": "https://idp.example", "aud": ["web", "api"]}),
    ];
    for claims in ok {
        assert_eq!(
            jwt_decide(rule.clone(), &hs_token(claims.clone())),
            Ok(()),
            "{claims}"
        );
    }
    let bad = [
        (
            json!({"exp": exp, "iss": "https://evil.example", "aud": "api"}),
            "jwt issuer mismatch",
        ),
        (json!({"exp": exp, "aud": "api"}), "jwt issuer mismatch"),
        (
            json!({"exp": exp, "iss": "https://idp.example", "aud": "web"}),
            "jwt audience mismatch",
        ),
        (
            json!({"exp": exp, "iss": "https://idp.example", "aud": ["web"]}),
            "jwt audience mismatch",
        ),
        (
            json!({"exp": exp, "iss": "https://idp.example"}),
            "jwt audience mismatch",
        ),
    ];
    for (claims, reason) in bad {
        assert_eq!(
            jwt_decide(rule.clone(), &hs_token(claims.clone())),
            Err((401, reason)),
            "{claims}"
        );
    }
}

#[test]
fn jwt_required_claims_missing_or_wrong_is_403_insufficient_scope() {
    let mut rule = hs_rule();
    rule.required_claims = vec![
        ("role".into(), ClaimValue::Str("admin".into())),
        ("level".into(), ClaimValue::Int(3)),
        ("mfa".into(), ClaimValue::Bool(true)),
    ];
    let exp = now() + 600;
    let pass = [
        json!({"exp": exp, "role": "admin", "level": 3, "mfa": true}),
        json!({"exp": exp, "role": ["ops", "admin"], "level": [1, 3], "mfa": true}),
    ];
    for claims in pass {
        assert_eq!(
            jwt_decide(rule.clone(), &hs_token(claims.clone())),
            Ok(()),
            "{claims}"
        );
    }
    let fail = [
        json!({"exp": exp, "level": 3, "mfa": true}),
        json!({"exp": exp, "role": "user", "level": 3, "mfa": true}),
        json!({"exp": exp, "role": "admin", "level": "3", "mfa": true}),
        json!({"exp": exp, "role": "admin", "level": 3, "mfa": "true"}),
        json!({"exp": exp, "role": ["user"], "level": 3, "mfa": true}),
    ];
    for claims in fail {
        assert_eq!(
            jwt_decide(rule.clone(), &hs_token(claims.clone())),
            Err((403, "jwt lacks a required claim")),
            "{claims}"
        );
    }
    let c = chain(vec![Auth::Jwt(Box::new(rule))]);
    let h = bearer(&hs_token(json!({"exp": exp})));
    let d = c
        .check(
            ip("127.0.0.1"),
            &lookup(&[("authorization", &h)]),
            &mut AuthCache::new(),
        )
        .unwrap_err();
    assert_eq!(
        d.www_authenticate,
        Some("Bearer realm=\"api\", error=\"insufficient_scope\"")
    );
}

// ---- jwt, RS256 and ES256 --------------------------------------------------------------------

#[test]
fn jwt_rs256_valid_passes_and_other_keys_fail() {
    let k = keys();
    let claims = json!({"exp": now() + 600});
    assert_eq!(
        jwt_decide(rs_rule(), &rs_token(&k.rsa_private, claims.clone())),
        Ok(())
    );
    assert_eq!(
        jwt_decide(rs_rule(), &rs_token(&k.other_rsa_private, claims.clone())),
        Err((401, "jwt signature invalid"))
    );
    // The same key given as PKCS#1 or inside a certificate verifies the same token.
    let t = rs_token(&k.rsa_private, claims);
    for pem in [&k.rsa_pkcs1_public, &k.rsa_cert] {
        assert_eq!(
            jwt_decide(jwt_rule(JwtAlgorithm::RS256, rsa_key(pem)), &t),
            Ok(())
        );
    }
}

#[test]
fn jwt_hs256_token_never_passes_an_rs256_route() {
    let k = keys();
    let claims = json!({"exp": now() + 600});
    // The classic confusion: HMAC keyed with the public key's PEM (or DER) text.
    let pem_as_secret = EncodingKey::from_secret(k.rsa_public.as_bytes());
    let t = sign(Algorithm::HS256, &pem_as_secret, claims.clone());
    assert_eq!(
        jwt_decide(rs_rule(), &t),
        Err((401, "jwt algorithm not allowed"))
    );
    let JwtKey::Rsa(der) = rsa_key(&k.rsa_public) else {
        unreachable!()
    };
    let t = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&der),
        claims.clone(),
    );
    assert_eq!(
        jwt_decide(rs_rule(), &t),
        Err((401, "jwt algorithm not allowed"))
    );
    // Nor the other way round, nor across the asymmetric kinds.
    let rs = rs_token(&k.rsa_private, claims.clone());
    assert_eq!(
        jwt_decide(hs_rule(), &rs),
        Err((401, "jwt algorithm not allowed"))
    );
    assert_eq!(
        jwt_decide(es_rule(), &rs),
        Err((401, "jwt algorithm not allowed"))
    );
    assert_eq!(
        jwt_decide(rs_rule(), &es_token(claims)),
        Err((401, "jwt algorithm not allowed"))
    );
}

#[test]
fn jwt_es256_valid_passes_and_expired_fails() {
    assert_eq!(
        jwt_decide(es_rule(), &es_token(json!({"exp": now() + 600}))),
        Ok(())
    );
    assert_eq!(
        jwt_decide(es_rule(), &es_token(json!({"exp": now() - 600}))),
        Err((401, "jwt expired"))
    );
}

// ---- key parsing -----------------------------------------------------------------------------

#[test]
fn public_key_kinds_are_recognised() {
    let k = keys();
    let rsa = parse_public_key_pem(k.rsa_public.as_bytes()).unwrap();
    assert!(matches!(rsa, PublicKey::Rsa { bits: 2048, .. }), "{rsa:?}");
    assert_eq!(
        parse_public_key_pem(k.rsa_pkcs1_public.as_bytes()).unwrap(),
        rsa
    );
    assert_eq!(parse_public_key_pem(k.rsa_cert.as_bytes()).unwrap(), rsa);
    assert!(matches!(
        parse_public_key_pem(k.rsa1024_public.as_bytes()).unwrap(),
        PublicKey::Rsa { bits: 1024, .. }
    ));
    assert!(matches!(
        parse_public_key_pem(k.ec_public.as_bytes()).unwrap(),
        PublicKey::EcP256(p) if p.len() == 65
    ));
    assert_eq!(
        parse_public_key_pem(k.p384_public.as_bytes()).unwrap(),
        PublicKey::Unsupported("an EC P-384 key")
    );
    assert_eq!(
        parse_public_key_pem(k.ed25519_public.as_bytes()).unwrap(),
        PublicKey::Unsupported("an Ed25519 key")
    );
}

#[test]
fn private_keys_and_garbage_are_refused() {
    let k = keys();
    for private in [&k.rsa_private, &k.ec_private] {
        let e = parse_public_key_pem(private.as_bytes()).unwrap_err();
        assert!(e.contains("private key"), "{e}");
        assert!(!e.contains("MII"), "no key material in errors: {e}");
    }
    assert!(parse_public_key_pem(b"hello").is_err());
    let trailing = k.rsa_public.replace("\n-----END", "AAAA\n-----END");
    assert!(parse_public_key_pem(trailing.as_bytes()).is_err());
    let mut lines: Vec<&str> = k.rsa_public.lines().collect();
    lines.remove(3);
    let truncated = lines.join("\n");
    assert!(parse_public_key_pem(truncated.as_bytes()).is_err());
    let other = "-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n";
    assert!(parse_public_key_pem(other.as_bytes()).is_err());
}

// ---- the chain -------------------------------------------------------------------------------

#[test]
fn chain_checks_ip_first_then_every_credential() {
    let c = chain(vec![
        Auth::Jwt(Box::new(hs_rule())),
        Auth::ApiKey {
            header: "x-api-key".into(),
            keys: vec!["k".into()],
        },
        Auth::Ip {
            allow: nets(&["127.0.0.0/8"]),
            deny: vec![],
        },
    ]);
    let t = bearer(&hs_token(json!({"exp": now() + 600})));
    let both = [("x-api-key", "k"), ("authorization", t.as_str())];
    assert_eq!(decide(&c, &both), Ok(()));
    // Good credentials from a refused address: 403, before any credential is looked at.
    assert_eq!(
        decide_from(&c, "192.0.2.1", &both),
        Err((403, "client address not in allow list"))
    );
    assert_eq!(
        decide(&c, &[("authorization", t.as_str())]),
        Err((401, "missing api key"))
    );
    assert_eq!(
        decide(&c, &[("x-api-key", "k")]),
        Err((401, "missing bearer token"))
    );
}

#[test]
fn empty_chain_passes_and_duplicate_kinds_are_refused() {
    let c = chain(vec![]);
    assert!(c.is_empty());
    assert_eq!(decide(&c, &[]), Ok(()));
    let ipr = || Auth::Ip {
        allow: vec![],
        deny: nets(&["10.0.0.0/8"]),
    };
    assert!(AuthChain::build(&[ipr(), ipr()]).is_err());
}

#[test]
fn chain_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<AuthChain>();
}

// ---- no secret in Debug ----------------------------------------------------------------------

#[test]
fn config_debug_redacts_secrets() {
    let k = keys();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys.txt"), "file-key-SECRET1\n").unwrap();
    std::fs::write(dir.path().join("rs.pub"), &k.rsa_public).unwrap();
    let hash = bcrypt::hash("pw", TEST_COST).unwrap();
    let text = format!(
        r#"
[[listener]]
name = "web"
bind = "127.0.0.1:8080"

[[route]]
listener = "web"
path_prefix = "/a/"
upstream = "app"
auth = {{ api_key = {{ keys = ["inline-key-SECRET2"], keys_file = "keys.txt" }}, basic = {{ users = ["bob:plain-SECRET3", "carol:{hash}"] }} }}

[[route]]
listener = "web"
path_prefix = "/b/"
upstream = "app"
auth = {{ jwt = {{ secret = "hs-SECRET4-0123456789abcdef0123456789" }} }}

[[route]]
listener = "web"
path_prefix = "/c/"
upstream = "app"
auth = {{ jwt = {{ public_key = "rs.pub", required_claims = {{ role = "admin" }} }} }}

[[upstream]]
name = "app"
endpoints = ["127.0.0.1:9000"]
"#
    );
    let path = dir.path().join("coregate.toml");
    let config = crate::config::Config::parse(&text, path.to_str().unwrap()).unwrap();
    let debug = format!("{config:?} {config:#?}");
    for secret in ["SECRET", &hash, "$2", "MII"] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
    for shown in [
        "bob",
        "carol",
        "x-api-key",
        "<2 redacted>",
        "RS256",
        "admin",
    ] {
        assert!(debug.contains(shown), "{shown} missing: {debug}");
    }
}

// ---- no allocation on the API key and IP paths -----------------------------------------------

/// Counts this thread's allocations, so other tests running in parallel do not interfere.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Allocations this thread made while `f` ran (the whole test binary counts: see `Counting`).
pub(crate) fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn api_key_ip_and_cached_basic_checks_do_not_allocate() {
    let c = chain(vec![
        Auth::Ip {
            allow: nets(&["127.0.0.0/8"]),
            deny: nets(&["127.0.0.66/32"]),
        },
        Auth::ApiKey {
            header: "x-api-key".into(),
            keys: vec!["key-one".into(), "key-two".into()],
        },
        Auth::Basic {
            users: vec![BasicUser {
                name: "alice".into(),
                password: BasicPassword::Bcrypt(bcrypt::hash("pw", TEST_COST).unwrap()),
            }],
            realm: "r".into(),
        },
    ]);
    let auth = basic_header("alice", "pw");
    let good = [("x-api-key", "key-two"), ("authorization", auth.as_str())];
    let wrong = [("x-api-key", "key-three"), ("authorization", auth.as_str())];
    let (ok_ip, denied_ip) = (ip("127.0.0.1"), ip("127.0.0.66"));
    let mut cache = AuthCache::new();
    let (h_good, h_wrong) = (lookup(&good), lookup(&wrong));
    assert!(c.check(ok_ip, &h_good, &mut cache).is_ok()); // fills the cache
    let n = allocations_during(|| {
        assert!(c.check(ok_ip, &h_good, &mut cache).is_ok());
        assert!(c.check(ok_ip, &h_wrong, &mut cache).is_err());
        assert!(c.check(denied_ip, &h_good, &mut cache).is_err());
    });
    assert_eq!(n, 0, "allocations on the request path");
}
