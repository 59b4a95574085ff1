//! coregate-bench: the bundled load generator (built out in its own issue).
fn main() {
    eprintln!("coregate-bench: not built yet; see bench/README.md");
    std::process::exit(2);
}
