//! `coregate doctor`: a table of OK/WARN/FAIL checks with fixes; exit 1 only on a FAIL.

mod common;
use common::*;

#[test]
fn doctor_reports_every_check_and_exits_by_the_worst() {
    let (code, out, err) = run_cli(&["doctor"]);
    for name in [
        "io_uring",
        "open files",
        "accept queue",
        "ephemeral ports",
        "cpus",
    ] {
        assert!(out.contains(name), "no {name} row:\n{out}\n{err}");
    }
    let failed = out
        .lines()
        .any(|l| l.split_whitespace().any(|w| w == "FAIL"));
    assert_eq!(code, i32::from(failed), "{out}");
    for line in out
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" FAIL "))
    {
        assert!(!line.trim().is_empty());
    }
    // A config that asks for far more connections than the descriptor limit allows is a FAIL.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.toml");
    std::fs::write(
        &path,
        "[runtime]\nworkers = 1\nmax_connections_per_worker = 100000000\n[[listener]]\nname = \"w\"\nbind = \"127.0.0.1:1\"\n[[route]]\nlistener = \"w\"\nupstream = \"u\"\n[[upstream]]\nname = \"u\"\nendpoints = [\"127.0.0.1:2\"]\n",
    )
    .unwrap();
    let (code, out, _) = run_cli(&["doctor", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("open files") && out.contains("FAIL") && out.contains("fix:"),
        "{out}"
    );
}
