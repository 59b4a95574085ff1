//! The README's config reference must be a valid config whose values are exactly the defaults.

use coregate::config::Config;

const MINIMAL: &str = r#"
[[listener]]
name = "web"
bind = "127.0.0.1:8080"

[[route]]
listener = "web"
upstream = "app"

[[upstream]]
name = "app"
endpoints = ["127.0.0.1:9001", "127.0.0.1:9002"]
[upstream.health_check]
[upstream.circuit_breaker]
"#;

fn reference_block() -> String {
    let readme = include_str!("../README.md");
    let start = readme
        .find("<!-- reference:begin -->")
        .expect("reference:begin marker");
    let end = readme
        .find("<!-- reference:end -->")
        .expect("reference:end marker");
    let block = &readme[start..end];
    let body = block.split("```toml").nth(1).expect("toml fence");
    body.split("```").next().unwrap().to_string()
}

#[test]
fn readme_reference_is_valid_and_equals_the_defaults() {
    let written = Config::parse(&reference_block(), "README.md").unwrap_or_else(|e| panic!("{e}"));
    let defaults = Config::parse(MINIMAL, "README.md").unwrap();
    assert_eq!(format!("{written:#?}"), format!("{defaults:#?}"));
}

#[test]
fn readme_opens_with_the_two_commands() {
    let readme = include_str!("../README.md");
    let first_block = readme
        .split("```sh")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    assert!(first_block.contains("cargo run --release -- demo"));
    assert!(first_block.contains("cargo test --workspace"));
}
