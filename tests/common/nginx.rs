//! Real nginx as a peer: started from a generated config on a free loopback port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Where Debian installs nginx.
pub const NGINX: &str = "/usr/sbin/nginx";

pub struct Nginx {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// `None` when nginx is not installed and we are not in CI (CI installs it: it must run there).
    pub fn start(server_block: &str) -> Option<Nginx> {
        if !std::path::Path::new(NGINX).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "nginx is missing in CI: .ci/run must install it"
            );
            eprintln!("nginx not installed; skipping (CI installs it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let prefix: PathBuf = dir.path().to_path_buf();
        let conf = format!(
            "worker_processes 1;\nerror_log {p}/error.log warn;\npid {p}/nginx.pid;\ndaemon off;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n access_log off;\n client_body_temp_path {p};\n proxy_temp_path {p};\n fastcgi_temp_path {p};\n uwsgi_temp_path {p};\n scgi_temp_path {p};\n\
             keepalive_requests 100000;\n server {{\n  listen 127.0.0.1:{port};\n{server_block}\n }}\n}}\n",
            p = prefix.display()
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        super::poll(super::WAIT, "nginx to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Some(Nginx {
            port,
            child,
            _dir: dir,
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master take its workers down with it; SIGKILL would orphan them.
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let child = &mut self.child;
        let start = std::time::Instant::now();
        while child.try_wait().ok().flatten().is_none() && start.elapsed() < super::WAIT {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
