//! `tuning/coregate-tune`: runs the shell tests in `tuning/tests/run.sh`. Their first part needs
//! nothing; the second runs the tool as root inside a private network namespace
//! (`unshare --net`), so the host's sysctls are never touched. Without root or `unshare` that
//! part is skipped with a message — except in CI (`CI` set), where it must run.

use std::process::Command;

#[test]
fn coregate_tune_shell_tests() {
    let ci = std::env::var_os("CI").is_some();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let unshare = Command::new("unshare")
        .args(["--net", "true"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let mut cmd = Command::new("bash");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tuning/tests/run.sh"));
    if ci {
        cmd.arg("--require-netns");
    } else if !root || !unshare {
        eprintln!(
            "coregate-tune: the network-namespace tests are skipped ({}); run as root to include them",
            if !root { "not root" } else { "unshare --net failed" }
        );
    }
    let out = cmd.output().expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout.lines().last().unwrap_or("").to_string();
    eprintln!("coregate-tune shell tests: {summary}");
    assert!(
        out.status.success(),
        "tuning/tests/run.sh failed:\n{}\n{stderr}",
        stdout
            .lines()
            .filter(|l| !l.starts_with("ok "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        summary.ends_with(" 0 failed") && !summary.starts_with("0 passed"),
        "unexpected summary: {summary}"
    );
}
