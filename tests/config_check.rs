//! `coregate check`: bad files name file:line:column and the key path; good files pass.

mod common;
use common::*;

const VALID: &str = r#"
[runtime]
workers = 2
driver = "auto"
shutdown_timeout = "10s"

[admin]
listen = "127.0.0.1:9901"

[limits]
max_request_head = "64KiB"
max_request_target = 16384
client_header_timeout = "10s"

[log]
level = "info"
access_format = "json"

[[listener]]
name = "web"
bind = "0.0.0.0:8080"

[[listener]]
name = "db"
bind = "[::1]:5433"
protocol = "tcp"
upstream = "db"
proxy_protocol = "v2"

[[route]]
listener = "web"
host = "*.example.com"
path_prefix = "/api/"
upstream = "api"
timeout = "30s"
request_headers = { set = { "x-a" = "1" }, remove = ["x-b"] }
max_body = "10MiB"
rate_limit = { rps = 100, burst = 200, key = "client_ip" }
retry = { attempts = 2, budget = 0.1 }
hedge = { after = "p99" }
fallback = { status = 503, body = "try later" }
auth = { api_key = { header = "x-api-key", keys = ["k1"] } }

[[upstream]]
name = "api"
balance = "consistent_hash"
hash_key = "header:x-user"
endpoints = ["127.0.0.1:9001", { addr = "127.0.0.1:9002", weight = 3 }]
connect_timeout = "2s"

[upstream.health_check]
path = "/healthz"
interval = "2s"

[upstream.circuit_breaker]
error_rate = 0.5
window = "10s"

[[upstream]]
name = "db"
endpoints = ["127.0.0.1:5432"]
"#;

#[test]
fn a_valid_file_passes() {
    let (code, err, _p, _d) = check(VALID);
    assert_eq!(code, 0, "stderr: {err}");
}

/// Asserts exit 1 and that the message starts with `file:line:col: key`.
fn assert_rejected(config: &str, line: usize, key: &str, words: &str) {
    let (code, err, path, _d) = check(config);
    assert_eq!(code, 1, "expected rejection, stderr: {err}");
    let prefix = format!("{}:{line}:", path.display());
    assert!(err.contains(&prefix), "no {prefix} in: {err}");
    assert!(
        err.contains(&format!(": {key}: ")),
        "no key path {key} in: {err}"
    );
    assert!(err.contains(words), "no {words:?} in: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
}

#[test]
fn toml_syntax_error_names_line() {
    let (code, err, path, _d) = check("[runtime]\nworkers = 2\n[[listener]\nname = \"x\"\n");
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{}:3:", path.display())), "{err}");
}

#[test]
fn unknown_key_names_line_and_path() {
    let cfg = VALID.replace(
        "connect_timeout = \"2s\"",
        "connect_timeout = \"2s\"\nconect_timeout = \"3s\"",
    );
    let line = cfg
        .lines()
        .position(|l| l.starts_with("conect_timeout"))
        .unwrap()
        + 1;
    assert_rejected(&cfg, line, "upstream[0].conect_timeout", "unknown field");
}

#[test]
fn unknown_key_inside_an_endpoint_table() {
    let cfg = VALID.replace("weight = 3 }", "weight = 3, wieght = 1 }");
    let line = cfg.lines().position(|l| l.contains("wieght")).unwrap() + 1;
    assert_rejected(
        &cfg,
        line,
        "upstream[0].endpoints[1].wieght",
        "unknown field",
    );
}

#[test]
fn route_naming_a_missing_upstream() {
    let cfg = VALID.replace("upstream = \"api\"", "upstream = \"apii\"");
    let line = cfg.lines().position(|l| l.contains("\"apii\"")).unwrap() + 1;
    assert_rejected(
        &cfg,
        line,
        "route[0].upstream",
        "no upstream named \"apii\"",
    );
}

#[test]
fn bad_duration() {
    let cfg = VALID.replace("timeout = \"30s\"", "timeout = \"30 parsecs\"");
    let line = cfg.lines().position(|l| l.contains("parsecs")).unwrap() + 1;
    assert_rejected(&cfg, line, "route[0].timeout", "invalid duration");
}

#[test]
fn bare_number_duration_is_refused() {
    let cfg = VALID.replace("shutdown_timeout = \"10s\"", "shutdown_timeout = \"10\"");
    assert_rejected(&cfg, 5, "runtime.shutdown_timeout", "unit");
}

#[test]
fn bad_endpoint_address_and_weight() {
    let cfg = VALID.replace("\"127.0.0.1:9001\"", "\"127.0.0.1\"");
    let line = cfg
        .lines()
        .position(|l| l.contains("\"127.0.0.1\""))
        .unwrap()
        + 1;
    assert_rejected(&cfg, line, "upstream[0].endpoints[0]", "host:port");
    let cfg = VALID.replace("weight = 3", "weight = 0");
    let line = cfg.lines().position(|l| l.contains("weight = 0")).unwrap() + 1;
    assert_rejected(&cfg, line, "upstream[0].endpoints[1].weight", "at least 1");
}

#[test]
fn bad_enum_values() {
    assert_rejected(
        &VALID.replace("driver = \"auto\"", "driver = \"kqueue\""),
        4,
        "runtime.driver",
        "io_uring",
    );
    let cfg = VALID.replace("\"consistent_hash\"", "\"fastest\"");
    let line = cfg.lines().position(|l| l.contains("fastest")).unwrap() + 1;
    assert_rejected(&cfg, line, "upstream[0].balance", "round_robin");
}

#[test]
fn duplicate_names_and_bind_addresses() {
    let cfg = VALID.replace("name = \"db\"\nbind", "name = \"web\"\nbind");
    let (code, err, _p, _d) = check(&cfg);
    assert_eq!(code, 1);
    assert!(
        err.contains("listener[1].name") && err.contains("used twice"),
        "{err}"
    );
    let cfg = VALID.replace("[::1]:5433", "0.0.0.0:8080");
    let (code, err, _p, _d) = check(&cfg);
    assert_eq!(code, 1);
    assert!(err.contains("listener[1].bind"), "{err}");
}

#[test]
fn bad_bind_address() {
    let cfg = VALID.replace("0.0.0.0:8080", "localhost");
    let line = cfg
        .lines()
        .position(|l| l.contains("\"localhost\""))
        .unwrap()
        + 1;
    assert_rejected(&cfg, line, "listener[0].bind", "invalid address");
}

#[test]
fn missing_file_is_a_clear_error() {
    let (code, _, err) = run_cli(&["check", "--config", "/nonexistent/coregate.toml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/nonexistent/coregate.toml") && err.contains("cannot read"),
        "{err}"
    );
}

#[test]
fn tcp_listener_keys_are_checked() {
    let with = |extra: &str| VALID.replace("proxy_protocol = \"v2\"", extra);
    let (code, err, _p, _d) = check(&with(
        "proxy_protocol = \"v1\"\nidle_timeout = \"5m\"\nsplice = false\nmax_connections = 10",
    ));
    assert_eq!(code, 0, "stderr: {err}");
    let cfg = with("idle_timeout = \"0s\"");
    let line = cfg.lines().position(|l| l.contains("\"0s\"")).unwrap() + 1;
    assert_rejected(&cfg, line, "listener[1].idle_timeout", "longer than 0s");
    let cfg = with("max_connections = 0");
    let line = cfg.lines().position(|l| l.contains("= 0")).unwrap() + 1;
    assert_rejected(&cfg, line, "listener[1].max_connections", "at least 1");
    let cfg = with("proxy_protocol = \"v3\"");
    let line = cfg.lines().position(|l| l.contains("v3")).unwrap() + 1;
    assert_rejected(&cfg, line, "listener[1].proxy_protocol", "off, v1 or v2");
    // Forwarding keys make no sense on an http listener.
    let cfg = VALID.replace(
        "bind = \"0.0.0.0:8080\"",
        "bind = \"0.0.0.0:8080\"\nsplice = false",
    );
    let line = cfg.lines().position(|l| l.contains("splice")).unwrap() + 1;
    assert_rejected(
        &cfg,
        line,
        "listener[0].splice",
        "only for protocol = \"tcp\"",
    );
}
