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

#[test]
fn readme_lists_every_metric_with_its_type_and_labels() {
    use coregate::metrics::names::{Kind, ALL};
    let readme = include_str!("../README.md");
    let start = readme
        .find("<!-- metrics:begin -->")
        .expect("metrics:begin");
    let end = readme.find("<!-- metrics:end -->").expect("metrics:end");
    let rows: Vec<&str> = readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| `coregate_"))
        .collect();
    assert_eq!(rows.len(), ALL.len(), "one README row per metric");
    for f in ALL {
        let name = format!("| `{}` |", f.exposed());
        let row = rows
            .iter()
            .find(|r| r.starts_with(&name))
            .unwrap_or_else(|| panic!("README lacks {name}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        assert_eq!(cells[2], kind, "{row}");
        assert_eq!(cells[3], f.labels.join(", "), "{row}");
    }
    // The contract's names.
    assert!(readme.contains("| `coregate_requests_total` | counter | listener, route, code |"));
    assert!(readme.contains("| `coregate_connections_active` | gauge | listener |"));
}
