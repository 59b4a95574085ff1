//! `coregate demo`: the embedded default config, so a newcomer sees it work with no file.

/// Where the demo gateway listens.
pub const DEMO_ADDR: &str = "127.0.0.1:8080";

/// The demo config, checked by the same parser as any file.
pub const DEMO_CONFIG: &str = r#"
[runtime]
workers = 2
shutdown_timeout = "5s"

[[listener]]
name = "web"
bind = "127.0.0.1:8080"

[[route]]
listener = "web"
upstream = "demo"

[[upstream]]
name = "demo"
endpoints = ["127.0.0.1:8081", "127.0.0.1:8082"]
"#;

/// What the demo prints for a newcomer to paste.
pub fn banner() -> String {
    format!(
        "coregate demo: gateway on http://{DEMO_ADDR}/ (2 workers). Try:\n\
         \x20 curl -i http://{DEMO_ADDR}/\n\
         \x20 curl -s -o /dev/null -w '%{{http_code}} %header{{x-coregate-worker}}\\n' http://{DEMO_ADDR}/ http://{DEMO_ADDR}/\n\
         \x20 curl -I http://{DEMO_ADDR}/hello\n\
         Stop with Ctrl-C.\n"
    )
}
