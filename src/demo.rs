//! `coregate demo`: the embedded default config, plus two tiny upstreams it runs itself, so a
//! newcomer sees routing and round robin work with no file and nothing else installed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

/// Where the demo gateway listens.
pub const DEMO_ADDR: &str = "127.0.0.1:8080";
/// The demo's admin listener: status page, metrics, health.
pub const DEMO_ADMIN: &str = "127.0.0.1:9901";
/// The demo upstreams: (name, address).
pub const DEMO_UPSTREAMS: [(&str, &str); 2] =
    [("demo-a", "127.0.0.1:8081"), ("demo-b", "127.0.0.1:8082")];

/// The demo config, checked by the same parser as any file.
/// What `Config::source` says for the embedded demo config (it has no file to reload).
pub const DEMO_SOURCE: &str = "<demo>";

pub const DEMO_CONFIG: &str = r#"
[runtime]
workers = 2
shutdown_timeout = "5s"

[admin]
listen = "127.0.0.1:9901"

[[listener]]
name = "web"
bind = "127.0.0.1:8080"

[[route]]
listener = "web"
upstream = "demo"

[[route]]
listener = "web"
path_prefix = "/b/"
strip_prefix = true
upstream = "demo-b"
response_headers = { set = { "x-demo-route" = "strip /b/" } }

[[upstream]]
name = "demo"
endpoints = ["127.0.0.1:8081", "127.0.0.1:8082"]

[[upstream]]
name = "demo-b"
endpoints = ["127.0.0.1:8082"]
"#;

/// What the demo prints for a newcomer to paste.
pub fn banner() -> String {
    format!(
        "coregate demo: gateway on http://{DEMO_ADDR}/ (2 workers) in front of demo-a on 127.0.0.1:8081 and demo-b on 127.0.0.1:8082. Try:\n\
         \x20 curl -s http://{DEMO_ADDR}/ http://{DEMO_ADDR}/ http://{DEMO_ADDR}/     # round robin: a, b, a...\n\
         \x20 curl -i http://{DEMO_ADDR}/b/hello                                      # prefix route, stripped to /hello\n\
         \x20 curl -s -H 'X-Forwarded-For: 203.0.113.9' http://{DEMO_ADDR}/headers   # what the upstream received\n\
         Status page: http://{DEMO_ADMIN}/   (metrics: curl -s http://{DEMO_ADMIN}/metrics)\n\
         Stop with Ctrl-C.\n"
    )
}

/// Starts the demo upstreams on their own threads (they are not part of the gateway).
pub fn start_upstreams() -> Result<(), String> {
    for (name, addr) in DEMO_UPSTREAMS {
        let listener = TcpListener::bind(addr)
            .map_err(|e| format!("demo upstream {name}: cannot bind {addr}: {e}"))?;
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    std::thread::spawn(move || answer(conn, name));
                }
            })
            .map_err(|e| format!("demo upstream {name}: {e}"))?;
    }
    Ok(())
}

/// Answers each request with the upstream's name; `/headers` echoes the request head.
fn answer(mut conn: TcpStream, name: &str) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let path = head.split(' ').nth(1).unwrap_or("/");
        let body = if path == "/headers" {
            head.clone()
        } else {
            format!("hello from {name} ({path})\n")
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nx-demo-upstream: {name}\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// How long `coregate demo --bench` loads the demo.
pub const DEMO_BENCH_DURATION: &str = "5s";

/// For `demo --bench`: once the gateway listens, runs the `coregate-bench` installed beside this
/// binary against it for [`DEMO_BENCH_DURATION`], then stops the gateway with SIGTERM.
pub fn start_bench() -> Result<std::thread::JoinHandle<Result<(), String>>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let bench = exe.with_file_name("coregate-bench");
    if !bench.exists() {
        return Err(format!(
            "{} not found: build it with `cargo build --release` (it ships beside coregate)",
            bench.display()
        ));
    }
    std::thread::Builder::new()
        .name("demo-bench".into())
        .spawn(move || {
            let result = run_bench(&bench);
            // Stop the gateway whatever happened; the runtime drains on SIGTERM.
            let _ = signal_hook::low_level::raise(signal_hook::consts::SIGTERM);
            result
        })
        .map_err(|e| format!("cannot start the demo bench: {e}"))
}

fn run_bench(bench: &std::path::Path) -> Result<(), String> {
    let start = std::time::Instant::now();
    while TcpStream::connect(DEMO_ADDR).is_err() {
        if start.elapsed() > std::time::Duration::from_secs(10) {
            return Err(format!("the demo gateway did not listen on {DEMO_ADDR}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    println!(
        "coregate demo --bench: {DEMO_BENCH_DURATION} of load through http://{DEMO_ADDR}/ ..."
    );
    let status = std::process::Command::new(bench)
        .args([
            "-c",
            "32",
            "-d",
            DEMO_BENCH_DURATION,
            &format!("http://{DEMO_ADDR}/"),
        ])
        .status()
        .map_err(|e| format!("cannot run {}: {e}", bench.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("coregate-bench failed ({status})"))
    }
}
