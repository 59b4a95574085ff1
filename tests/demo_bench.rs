//! `coregate demo --bench`: a 5-second load through the demo with the bundled generator.
//! (Its own file: it needs port 8080 like the demo test in lifecycle.rs, and test files run
//! one after another.)

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn demo_bench_runs_load_through_the_demo_and_stops() {
    let bench = std::path::Path::new(binary()).with_file_name("coregate-bench");
    if !bench.exists() {
        // `cargo test --workspace` builds it; a lone `cargo test -p coregate` may not have.
        assert!(
            std::env::var_os("CI").is_none(),
            "{} missing in CI",
            bench.display()
        );
        eprintln!("{} not built; skipping", bench.display());
        return;
    }
    let mut child = Command::new(binary())
        .args(["demo", "--bench"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = poll(Duration::from_secs(60), "demo --bench to finish", || {
        child.try_wait().unwrap()
    });
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("Requests/sec"), "{out}");
    assert!(out.contains("200:"), "{out}");
    assert!(
        out.contains("connect 0, timeout 0, reset 0, parse 0"),
        "{out}"
    );
}
