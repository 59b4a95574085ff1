//! TLS termination and upstream TLS, end to end: the real binary, real sockets, openssl and curl
//! as peers. Every certificate is made here, in a temporary directory, by the openssl CLI.

mod common;
use common::upstream::{response, Action, Upstream};
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Certificates

/// A throwaway CA and the certificates it signs.
struct Pki {
    dir: tempfile::TempDir,
}

#[derive(Clone, Copy)]
enum KeyType {
    Ec,
    Rsa,
    Ed25519,
}

fn openssl(args: &[&str], cwd: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn key_args(kind: KeyType) -> &'static [&'static str] {
    match kind {
        KeyType::Ec => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        KeyType::Rsa => &["-newkey", "rsa:2048"],
        KeyType::Ed25519 => &["-newkey", "ed25519"],
    }
}

impl Pki {
    fn new() -> Pki {
        Pki::named("ca")
    }

    /// A CA whose files are `{stem}.pem` / `{stem}.key`.
    fn named(stem: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki { dir };
        pki.make_ca(stem);
        pki
    }

    fn make_ca(&self, stem: &str) {
        let (pem, key) = (format!("{stem}.pem"), format!("{stem}.key"));
        let mut args = vec!["req", "-x509", "-nodes", "-days", "3"];
        args.extend_from_slice(key_args(KeyType::Ec));
        args.extend_from_slice(&[
            "-keyout",
            &key,
            "-out",
            &pem,
            "-subj",
            "/CN=coregate test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&args, self.dir.path());
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// A certificate signed by the CA: `subject` like "/CN=a.test", `dns` the SAN DNS names.
    fn leaf(&self, stem: &str, subject: &str, dns: &[&str], kind: KeyType) -> (PathBuf, PathBuf) {
        self.leaf_by("ca", stem, subject, dns, kind)
    }

    fn leaf_by(
        &self,
        ca: &str,
        stem: &str,
        subject: &str,
        dns: &[&str],
        kind: KeyType,
    ) -> (PathBuf, PathBuf) {
        let (key, csr, pem, ext) = (
            format!("{stem}.key"),
            format!("{stem}.csr"),
            format!("{stem}.pem"),
            format!("{stem}.ext"),
        );
        let mut args = vec!["req", "-new", "-nodes"];
        args.extend_from_slice(key_args(kind));
        args.extend_from_slice(&["-keyout", &key, "-out", &csr, "-subj", subject]);
        openssl(&args, self.dir.path());
        let mut text =
            "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n".to_string();
        if !dns.is_empty() {
            let sans: Vec<String> = dns.iter().map(|d| format!("DNS:{d}")).collect();
            text.push_str(&format!("subjectAltName={}\n", sans.join(",")));
        }
        std::fs::write(self.path(&ext), text).unwrap();
        let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &ext,
            ],
            self.dir.path(),
        );
        (self.path(&pem), self.path(&key))
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Peers

/// Output (stdout + stderr) of a command run with `input` on stdin, killed after `WAIT`.
fn run_with_input(cmd: &mut Command, input: &[u8]) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("peer program");
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input);
    drop(stdin);
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > WAIT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `openssl s_client` to the gateway, sending one `connection: close` request.
fn s_client(port: u16, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-ign_eof")
        .args(args);
    run_with_input(
        &mut cmd,
        b"GET /via-s_client HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
}

/// The served certificate's subject as s_client prints it, spaces removed ("CN=a.test,O=x").
fn subject(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .unwrap_or_else(|| panic!("no subject in:\n{out}"))
        .replace(' ', "")
}

/// curl over https to `name` (resolved to 127.0.0.1:port); returns (exit code, output).
fn curl(port: u16, name: &str, ca: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", p(ca), "--resolve"])
        .arg(format!("{name}:{port}:127.0.0.1"))
        .args(["-w", "\nstatus=%{http_code}"])
        .args(extra)
        .arg(format!("https://{name}:{port}/curl"))
        .output()
        .expect("curl");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A rustls client connection (blocking), trusting `ca`, for keep-alive and raw checks.
type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls_connect(port: u16, name: &str, ca: &Path) -> TlsClient {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for c in
        <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(
            &pem,
        )
    {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn = rustls::ClientConnection::new(
        Arc::new(config),
        rustls::pki_types::ServerName::try_from(name.to_string()).unwrap(),
    )
    .unwrap();
    let tcp = TcpStream::connect(addr(port)).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Reads one response with a content-length body from any stream; (status, head, body).
fn read_http<S: Read>(s: &mut S) -> (u16, String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("response head");
        assert!(n > 0, "closed before the response head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    (status, head, body)
}

fn get<S: Read + Write>(s: &mut S, path: &str) -> (u16, String, Vec<u8>) {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    s.flush().unwrap();
    read_http(s)
}

// ---------------------------------------------------------------------------------------------
// Configs

fn tls_config(port: u16, up: SocketAddr, workers: usize, tls: &str) -> String {
    format!(
        r#"
[runtime]
workers = {workers}
shutdown_timeout = "5s"

[[listener]]
name = "web"
bind = "127.0.0.1:{port}"
{tls}

[[route]]
listener = "web"
upstream = "app"

[[upstream]]
name = "app"
endpoints = ["{up}"]
"#
    )
}

fn cert_table(cert: &Path, key: &Path) -> String {
    format!(
        "[[listener.tls.certs]]\ncert = \"{}\"\nkey = \"{}\"\n",
        p(cert),
        p(key)
    )
}

fn debug_gateway(config: &str) -> Gateway {
    Gateway::start_with(config, &[("RUST_LOG", "coregate=debug")], &[])
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn sni_chooses_the_certificate_and_clients_without_sni_get_the_first() {
    let pki = Pki::new();
    let (a, ak) = pki.leaf(
        "a",
        "/CN=a.test/O=coregate",
        &["a.test", "*.a.test"],
        KeyType::Ec,
    );
    let (b, bk) = pki.leaf("b", "/CN=b.test/O=coregate", &["b.test"], KeyType::Rsa);
    let (c, ck) = pki.leaf("c", "/CN=c.test", &["c.test"], KeyType::Ed25519);
    let up = Upstream::ok("ok");
    let port = free_port();
    let tls = format!(
        "{}{}{}",
        cert_table(&a, &ak),
        cert_table(&b, &bk),
        cert_table(&c, &ck)
    );
    let _g = Gateway::start(&tls_config(port, up.addr, 1, &tls));

    for (name, want) in [
        ("a.test", "CN=a.test,O=coregate"),
        ("b.test", "CN=b.test,O=coregate"),
        ("www.a.test", "CN=a.test,O=coregate"),
        ("B.TEST", "CN=b.test,O=coregate"),
        ("c.test", "CN=c.test"),
        ("x.y.a.test", "CN=a.test,O=coregate"), // not covered: the default
        ("unknown.test", "CN=a.test,O=coregate"),
    ] {
        let (ok, out) = s_client(port, &["-servername", name]);
        assert!(ok, "{name}: {out}");
        assert_eq!(subject(&out), want, "{name}");
        assert!(out.contains("HTTP/1.1 200"), "{name}: {out}");
    }
    let (ok, out) = s_client(port, &["-noservername"]);
    assert!(ok, "{out}");
    assert_eq!(subject(&out), "CN=a.test,O=coregate");

    // curl verifies the chain and the name for each certificate (ECDSA, RSA, Ed25519).
    for name in ["a.test", "b.test", "c.test", "deep.a.test"] {
        let (code, out) = curl(port, name, &pki.ca(), &[]);
        assert_eq!(code, 0, "{name}: {out}");
        assert!(out.ends_with("status=200"), "{name}: {out}");
    }
    // ... and the upstream learns the request came over TLS.
    let seen = up.received();
    assert!(!seen.is_empty());
    for r in &seen {
        assert_eq!(r.header("x-forwarded-proto").as_deref(), Some("https"));
    }
}

#[test]
fn strict_sni_refuses_missing_and_unknown_names() {
    let pki = Pki::new();
    let (a, ak) = pki.leaf("a", "/CN=a.test", &["a.test"], KeyType::Ec);
    let up = Upstream::ok("ok");
    let port = free_port();
    let tls = format!("[listener.tls]\nstrict_sni = true\n{}", cert_table(&a, &ak));
    let mut g = debug_gateway(&tls_config(port, up.addr, 1, &tls));
    let (ok, out) = s_client(port, &["-servername", "a.test"]);
    assert!(ok && out.contains("HTTP/1.1 200"), "{out}");
    for args in [&["-noservername"][..], &["-servername", "other.test"][..]] {
        let (ok, out) = s_client(port, args);
        assert!(!ok, "{args:?} was served:\n{out}");
        assert!(!out.contains("HTTP/1.1 200"), "{out}");
    }
    g.wait_log("TLS handshake failed");
}

#[test]
fn tls_1_1_and_older_are_refused_and_min_version_1_3_refuses_1_2() {
    let pki = Pki::new();
    let (a, ak) = pki.leaf("a", "/CN=a.test", &["a.test"], KeyType::Ec);
    let up = Upstream::ok("ok");
    let port = free_port();
    let mut g = debug_gateway(&tls_config(port, up.addr, 1, &cert_table(&a, &ak)));
    // SECLEVEL=0 so the local OpenSSL does offer TLS 1.1: the refusal must be the gateway's.
    let (ok, out) = s_client(
        port,
        &[
            "-servername",
            "a.test",
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ],
    );
    assert!(!ok, "TLS 1.1 was accepted:\n{out}");
    assert!(out.contains("alert"), "{out}");
    g.wait_log("TLS handshake failed");
    let (ok, out) = s_client(port, &["-servername", "a.test", "-tls1_2"]);
    assert!(
        ok && out.contains("TLSv1.2") && out.contains("HTTP/1.1 200"),
        "{out}"
    );
    let (ok, out) = s_client(port, &["-servername", "a.test", "-tls1_3"]);
    assert!(
        ok && out.contains("TLSv1.3") && out.contains("HTTP/1.1 200"),
        "{out}"
    );
    drop(g);

    let port = free_port();
    let tls = format!(
        "[listener.tls]\nmin_version = \"1.3\"\n{}",
        cert_table(&a, &ak)
    );
    let _g = Gateway::start(&tls_config(port, up.addr, 1, &tls));
    let (ok, out) = s_client(port, &["-servername", "a.test", "-tls1_2"]);
    assert!(!ok && !out.contains("HTTP/1.1 200"), "{out}");
    let (ok, out) = s_client(port, &["-servername", "a.test", "-tls1_3"]);
    assert!(ok && out.contains("HTTP/1.1 200"), "{out}");
}

#[test]
fn alpn_negotiates_http_1_1_and_refuses_h2_only_clients_with_an_alert() {
    let pki = Pki::new();
    let (a, ak) = pki.leaf("a", "/CN=a.test", &["a.test"], KeyType::Ec);
    let up = Upstream::ok("ok");
    let port = free_port();
    let mut g = debug_gateway(&tls_config(port, up.addr, 1, &cert_table(&a, &ak)));
    let (ok, out) = s_client(port, &["-servername", "a.test", "-alpn", "h2,http/1.1"]);
    assert!(ok, "{out}");
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    assert!(out.contains("HTTP/1.1 200"), "{out}");
    // No ALPN at all is fine (HTTP/1.1 is assumed).
    let (ok, out) = s_client(port, &["-servername", "a.test"]);
    assert!(
        ok && out.contains("No ALPN negotiated") && out.contains("HTTP/1.1 200"),
        "{out}"
    );
    // Only h2: a clean refusal, the no_application_protocol alert (RFC 7301 §3.2), not a
    // handshake that then answers an HTTP/2 preface with HTTP/1.1 garbage.
    let (ok, out) = s_client(port, &["-servername", "a.test", "-alpn", "h2"]);
    assert!(!ok, "{out}");
    assert!(out.contains("no application protocol"), "{out}");
    g.wait_log("TLS handshake failed");
    // curl asking for h2 falls back to http/1.1.
    let (code, out) = curl(port, "a.test", &pki.ca(), &["--http2"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("status=200"), "{out}");
}

/// Workers whose log says they completed a resumed handshake.
fn resumed_workers(log: &str) -> std::collections::BTreeSet<String> {
    log.lines()
        .filter(|l| l.contains("TLS handshake done") && l.contains("resumed=true"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("worker=").map(str::to_string))
        })
        .collect()
}

#[test]
fn sessions_resume_on_every_worker_tls13_and_tls12() {
    let pki = Pki::new();
    let (a, ak) = pki.leaf("a", "/CN=a.test", &["a.test"], KeyType::Ec);
    let up = Upstream::ok("ok");
    let port = free_port();
    let g = debug_gateway(&tls_config(port, up.addr, 2, &cert_table(&a, &ak)));
    for version in ["-tls1_3", "-tls1_2"] {
        let sess = pki.path(&format!("session{version}.pem"));
        let (ok, out) = s_client(
            port,
            &["-servername", "a.test", version, "-sess_out", p(&sess)],
        );
        assert!(ok && out.contains("New,"), "{out}");
        let before = g.log_text().lines().count();
        let mut reused = 0;
        for _ in 0..60 {
            let (ok, out) = s_client(
                port,
                &["-servername", "a.test", version, "-sess_in", p(&sess)],
            );
            assert!(ok, "{out}");
            assert!(out.contains("Reused,"), "not resumed ({version}):\n{out}");
            assert!(out.contains("HTTP/1.1 200"), "{out}");
            reused += 1;
            let log = g.log_text();
            let recent: Vec<&str> = log.lines().skip(before).collect();
            if resumed_workers(&recent.join("\n")).len() == 2 {
                break;
            }
        }
        let log = g.log_text();
        let recent: Vec<&str> = log.lines().skip(before).collect();
        let workers = resumed_workers(&recent.join("\n"));
        assert_eq!(
            workers.len(),
            2,
            "{version}: {reused} resumptions all landed on {workers:?}"
        );
        println!("{version}: resumed on both workers within {reused} reconnects");
    }
}

#[test]
fn mtls_required_passes_the_verified_subject_and_strips_forgeries() {
    let pki = Pki::new();
    let (a, ak) = pki.leaf("a", "/CN=a.test", &["a.test"], KeyType::Ec);
    let (c, ck) = pki.leaf(
        "client",
        "/CN=client one/O=Coregate, Inc.",
        &[],
        KeyType::Ec,
    );
    // A certificate from another CA must not pass.
    let other = Pki::named("ca");
    let (x, xk) = other.leaf("intruder", "/CN=intruder", &[], KeyType::Ec);
    let up = Upstream::ok("ok");
    let port = free_port();
    let tls = format!(
        "[listener.tls]\nclient_ca = \"{}\"\nclient_subject_header = \"X-Client-DN\"\n{}",
        p(&pki.ca()),
        cert_table(&a, &ak)
    );
    let mut g = debug_gateway(&tls_config(port, up.addr, 1, &tls));
    let forged = ["-H", "x-client-dn: CN=admin"];
    let mut args = vec!["--cert", p(&c), "--key", p(&ck)];
    args.extend_from_slice(&forged);
    let (code, out) = curl(port, "a.test", &pki.ca(), &args);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("status=200"), "{out}");
    let got = up.wait_requests(1).remove(0);
    assert_eq!(
        got.headers("x-client-dn"),
        vec!["O=Coregate\\, Inc.,CN=client one".to_string()]
    );
    // Without a certificate, or with one from another CA: no handshake, nothing upstream.
    let (code, out) = curl(port, "a.test", &pki.ca(), &forged);
    assert_ne!(code, 0, "served without a client certificate: {out}");
    let (code, out) = curl(
        port,
        "a.test",
        &pki.ca(),
        &["--cert", p(&x), "--key", p(&xk)],
    );
    assert_ne!(
        code, 0,
        "served with an untrusted client certificate: {out}"
    );
    let (ok, out) = s_client(port, &["-servername", "a.test"]);
    assert!(!ok && !out.contains("HTTP/1.1 200"), "{out}");
    let (ok, out) = s_client(
        port,
        &["-servername", "a.test", "-cert", p(&c), "-key", p(&ck)],
    );
    assert!(ok && out.contains("HTTP/1.1 200"), "{out}");
    g.wait_log("TLS handshake failed");
    assert_eq!(up.received().len(), 2);
}

#[test]
fn mtls_optional_lets_anonymous_clients_in_without_the_header() {
    let pki = Pki::new();
    let (a, ak) = pki.leaf("a", "/CN=a.test", &["a.test"], KeyType::Ec);
    let (c, ck) = pki.leaf("client", "/CN=client two", &[], KeyType::Rsa);
    let up = Upstream::ok("ok");
    let port = free_port();
    let tls = format!(
        "[listener.tls]\nclient_ca = \"{}\"\nclient_auth = \"optional\"\n{}",
        p(&pki.ca()),
        cert_table(&a, &ak)
    );
    let _g = Gateway::start(&tls_config(port, up.addr, 1, &tls));
    let (code, out) = curl(
        port,
        "a.test",
        &pki.ca(),
        &["-H", "X-Client-Subject: CN=admin"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("status=200"), "{out}");
    let (code, out) = curl(
        port,
        "a.test",
        &pki.ca(),
        &["--cert", p(&c), "--key", p(&ck)],
    );
    assert_eq!(code, 0, "{out}");
    let got = up.wait_requests(2);
    assert!(
        got[0].headers("x-client-subject").is_empty(),
        "forged header passed"
    );
    assert_eq!(
        got[1].header("x-client-subject").as_deref(),
        Some("CN=client two")
    );
}

/// A raw TLS record header announcing a ClientHello of 512 bytes, then a few of them.
const TRUNCATED_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0xaa, 0xbb,
];

#[test]
fn garbage_truncated_and_stalled_handshakes_close_only_themselves() {
    let pki = Pki::new();
    let (a, ak) = pki.leaf("a", "/CN=a.test", &["a.test"], KeyType::Ec);
    let up = Upstream::ok("ok");
    let port = free_port();
    let tls = format!(
        "[listener.tls]\nhandshake_timeout = \"700ms\"\n{}",
        cert_table(&a, &ak)
    );
    let mut g = debug_gateway(&tls_config(port, up.addr, 1, &tls));

    // A keep-alive TLS client that stays open through all of it.
    let mut keep = tls_connect(port, "a.test", &pki.ca());
    assert_eq!(get(&mut keep, "/before").0, 200);

    // Plain HTTP and random bytes on the TLS port: an alert (or nothing), then a close.
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        &[0u8; 64][..],
        &[0x16, 0x03, 0x03, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff][..],
    ] {
        let mut s = connect(addr(port));
        s.write_all(junk).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(
            got.is_empty() || got[0] == 0x15,
            "answer to junk is not a TLS alert: {got:?}"
        );
        assert!(!String::from_utf8_lossy(&got).contains("HTTP/1.1"));
    }

    // A truncated ClientHello, then the client goes away.
    let mut s = connect(addr(port));
    s.write_all(TRUNCATED_HELLO).unwrap();
    drop(s);

    // A truncated ClientHello that just sits there: closed by the handshake timeout.
    let mut stalled = connect(addr(port));
    stalled.write_all(TRUNCATED_HELLO).unwrap();
    let t = Instant::now();
    // Meanwhile good handshakes work.
    let (code, out) = curl(port, "a.test", &pki.ca(), &[]);
    assert_eq!(code, 0, "{out}");
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
        "stalled handshake closed after {waited:?}"
    );
    g.wait_log("reason=handshake timeout");

    assert_eq!(
        get(&mut keep, "/after").0,
        200,
        "the open connection was hurt"
    );
    let (ok, out) = s_client(port, &["-servername", "a.test"]);
    assert!(ok && out.contains("HTTP/1.1 200"), "{out}");
    let failed = g
        .log_text()
        .lines()
        .filter(|l| l.contains("TLS handshake failed"))
        .count();
    assert!(failed >= 5, "{failed} failures logged:\n{}", g.log_text());
}

#[test]
fn keep_alive_pipelining_and_large_bodies_over_tls() {
    let pki = Pki::new();
    let (a, ak) = pki.leaf("a", "/CN=a.test", &["a.test"], KeyType::Ec);
    let big = "x".repeat(300_000);
    let big2 = big.clone();
    let up = Upstream::start(move |r| {
        if r.request_line().starts_with("POST") {
            Action::Send(response(200, &format!("got {}", r.body.len())))
        } else {
            Action::Send(response(200, &big2))
        }
    });
    let port = free_port();
    let _g = Gateway::start(&tls_config(port, up.addr, 1, &cert_table(&a, &ak)));
    let mut s = tls_connect(port, "a.test", &pki.ca());
    for i in 0..3 {
        let (status, _, body) = get(&mut s, &format!("/big{i}"));
        assert_eq!(status, 200);
        assert_eq!(body.len(), big.len());
    }
    // Two pipelined requests in one write, then an upload of 1 MiB.
    s.write_all(b"GET /p1 HTTP/1.1\r\nHost: t\r\n\r\nGET /p2 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_http(&mut s).2.len(), big.len());
    assert_eq!(read_http(&mut s).2.len(), big.len());
    let body = vec![b'u'; 1 << 20];
    s.write_all(
        format!(
            "POST /up HTTP/1.1\r\nHost: t\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let (status, _, got) = read_http(&mut s);
    assert_eq!(status, 200);
    assert_eq!(got, format!("got {}", 1 << 20).as_bytes());
    assert_eq!(up.accepted(), 1, "upstream connection not reused");
}

#[test]
fn websocket_upgrade_tunnels_over_tls() {
    let pki = Pki::new();
    let (a, ak) = pki.leaf("a", "/CN=a.test", &["a.test"], KeyType::Ec);
    let up = Upstream::start(|_| {
        Action::Takeover(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                .to_vec(),
            Box::new(|mut s: TcpStream| {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            }),
        )
    });
    let port = free_port();
    let _g = Gateway::start(&tls_config(port, up.addr, 1, &cert_table(&a, &ak)));
    let mut s = tls_connect(port, "a.test", &pki.ca());
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )
    .unwrap();
    let (status, _, _) = read_http(&mut s);
    assert_eq!(status, 101);
    for msg in [&b"hello"[..], &vec![7u8; 100_000][..]] {
        s.write_all(msg).unwrap();
        s.flush().unwrap();
        let mut echo = vec![0; msg.len()];
        s.read_exact(&mut echo).unwrap();
        assert_eq!(echo, msg);
    }
    // Our close_notify half-closes the tunnel; the upstream's EOF comes back as TLS EOF.
    s.conn.send_close_notify();
    s.flush().unwrap();
    let mut rest = Vec::new();
    let r = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{r:?}");
}

/// A small keep-alive HTTPS upstream on rustls: answers with the SNI it saw and its connection
/// number, records each request head.
struct TlsUpstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl TlsUpstream {
    fn start(cert: &Path, key: &Path) -> TlsUpstream {
        use rustls::pki_types::pem::PemObject;
        let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (acc, hs) = (accepted.clone(), heads.clone());
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { return };
                let n = acc.fetch_add(1, Ordering::SeqCst);
                let (config, hs) = (config.clone(), hs.clone());
                std::thread::spawn(move || {
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut s = rustls::StreamOwned::new(conn, tcp);
                    loop {
                        let mut head = Vec::new();
                        let mut b = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") {
                            match s.read(&mut b) {
                                Ok(1) => head.push(b[0]),
                                _ => return,
                            }
                        }
                        let sni = s.conn.server_name().unwrap_or("-").to_string();
                        hs.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&head).to_string());
                        let body = format!("sni={sni} conn={n}");
                        if s.write_all(&response(200, &body)).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        TlsUpstream {
            addr,
            accepted,
            heads,
        }
    }
}

fn secure_config(port: u16, up: SocketAddr, tls: &str) -> String {
    format!(
        r#"
[runtime]
workers = 1

[[listener]]
name = "web"
bind = "127.0.0.1:{port}"

[[route]]
listener = "web"
upstream = "secure"

[[upstream]]
name = "secure"
endpoints = ["{up}"]
{tls}
"#
    )
}

#[test]
fn https_upstream_with_a_private_ca_sni_and_pooling() {
    let pki = Pki::new();
    let (u, uk) = pki.leaf("up", "/CN=up.internal", &["up.internal"], KeyType::Ec);
    let up = TlsUpstream::start(&u, &uk);
    let port = free_port();
    let good = format!(
        "tls = {{ sni = \"up.internal\", ca = \"{}\" }}",
        p(&pki.ca())
    );
    let _g = Gateway::start(&secure_config(port, up.addr, &good));
    let mut s = connect(addr(port));
    for _ in 0..3 {
        s.write_all(b"GET /x HTTP/1.1\r\nHost: site\r\n\r\n")
            .unwrap();
        let r = read_response(&mut s).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"sni=up.internal conn=0");
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1, "not pooled");
    let heads = up.heads.lock().unwrap().clone();
    assert!(heads[0]
        .to_ascii_lowercase()
        .contains("x-forwarded-proto: http\r\n"));

    // The wrong name, or an unknown CA: no request reaches it, the client gets 502.
    let other = Pki::new();
    for tls in [
        format!(
            "tls = {{ sni = \"wrong.internal\", ca = \"{}\" }}",
            p(&pki.ca())
        ),
        format!(
            "tls = {{ sni = \"up.internal\", ca = \"{}\" }}",
            p(&other.ca())
        ),
        "tls = { sni = \"up.internal\" }".to_string(), // the system roots do not know our CA
    ] {
        let port = free_port();
        let mut g = Gateway::start(&secure_config(port, up.addr, &tls));
        let r = roundtrip(addr(port), b"GET /x HTTP/1.1\r\nHost: site\r\n\r\n");
        assert_eq!(r.status, 502, "{tls}");
        g.wait_log("upstream TLS handshake failed");
    }
    assert_eq!(up.heads.lock().unwrap().len(), 3);
}

/// A child process killed with the test, pass or fail.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn https_upstream_openssl_s_server_with_a_private_ca() {
    let pki = Pki::new();
    let (u, uk) = pki.leaf(
        "up",
        "/CN=s-server.internal",
        &["s-server.internal"],
        KeyType::Rsa,
    );
    let up_port = free_port();
    let server = Command::new("openssl")
        .args(["s_server", "-www", "-accept"])
        .arg(up_port.to_string())
        .args(["-cert", p(&u), "-key", p(&uk)])
        .stdin(Stdio::piped()) // s_server ends on EOF from its stdin
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let _server = KillOnDrop(server);
    poll(WAIT, "s_server listening", || {
        TcpStream::connect(addr(up_port)).ok()
    });
    let port = free_port();
    let config = format!(
        r#"
[runtime]
workers = 1

[[listener]]
name = "web"
bind = "127.0.0.1:{port}"

[[route]]
listener = "web"
upstream = "s"

[[upstream]]
name = "s"
endpoints = ["127.0.0.1:{up_port}"]
tls = {{ sni = "s-server.internal", ca = "{}" }}
"#,
        p(&pki.ca())
    );
    let _g = Gateway::start(&config);
    // s_server -www answers HTTP/1.0 without a length: re-chunked for us, so ask for a close.
    let r = roundtrip(
        addr(port),
        b"GET / HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.contains("s_server"), "{body}");
    assert!(body.contains("TLSv1.3"), "{body}");
}

#[test]
fn sighup_swaps_certificates_for_new_handshakes_and_keeps_open_connections() {
    let pki = Pki::new();
    let (one, one_k) = pki.leaf("one", "/CN=one", &["a.test"], KeyType::Ec);
    let (two, two_k) = pki.leaf("two", "/CN=two", &["a.test"], KeyType::Rsa);
    let live_cert = pki.path("live.pem");
    let live_key = pki.path("live.key");
    std::fs::copy(&one, &live_cert).unwrap();
    std::fs::copy(&one_k, &live_key).unwrap();
    let up = Upstream::ok("ok");
    let port = free_port();
    let mut g = Gateway::start(&tls_config(
        port,
        up.addr,
        2,
        &cert_table(&live_cert, &live_key),
    ));
    let mut keep = tls_connect(port, "a.test", &pki.ca());
    assert_eq!(get(&mut keep, "/1").0, 200);
    assert_eq!(
        subject(&s_client(port, &["-servername", "a.test"]).1),
        "CN=one"
    );

    std::fs::copy(&two, &live_cert).unwrap();
    std::fs::copy(&two_k, &live_key).unwrap();
    g.signal(libc::SIGHUP);
    g.wait_log("config reloaded");
    for _ in 0..4 {
        // whichever worker takes it
        let (ok, out) = s_client(port, &["-servername", "a.test"]);
        assert!(ok, "{out}");
        assert_eq!(subject(&out), "CN=two");
    }
    assert_eq!(
        get(&mut keep, "/2").0,
        200,
        "open connection dropped by the reload"
    );

    // A broken certificate file: the old one keeps serving, and the log says why.
    std::fs::write(&live_cert, b"-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    g.signal(libc::SIGHUP);
    g.wait_log("listener[0].tls.certs[0].cert");
    // A key that does not match: refused too.
    std::fs::copy(&one, &live_cert).unwrap();
    g.signal(libc::SIGHUP);
    g.wait_log("does not match the certificate");
    let log = g.log_text();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("reload refused; the running config is unchanged"))
        .collect();
    assert_eq!(refusals.len(), 2, "{log}");
    assert!(refusals[0].contains("live.pem"), "{log}");
    let (ok, out) = s_client(port, &["-servername", "a.test"]);
    assert!(ok && out.contains("HTTP/1.1 200"), "{out}");
    assert_eq!(subject(&out), "CN=two");
    assert_eq!(get(&mut keep, "/3").0, 200);
}

#[test]
fn one_worker_tls_listener_serves_keep_alive_curl() {
    let pki = Pki::new();
    let (a, ak) = pki.leaf("a", "/CN=a.test", &["a.test"], KeyType::Rsa);
    let up = Upstream::ok("ok");
    let port = free_port();
    let _g = Gateway::start(&tls_config(port, up.addr, 1, &cert_table(&a, &ak)));
    // Two URLs in one curl run share one connection.
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            p(&pki.ca()),
            "--resolve",
        ])
        .arg(format!("a.test:{port}:127.0.0.1"))
        .args(["-w", "%{http_code} %{num_connects}\n"])
        .arg(format!("https://a.test:{port}/1"))
        .arg(format!("https://a.test:{port}/2"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok200 1\nok200 0\n"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// coregate check

fn check_tls(tls: &str) -> (i32, String) {
    let config = tls_config(8443, "127.0.0.1:9".parse().unwrap(), 1, tls);
    let (code, err, _, _dir) = check(&config);
    (code, err)
}

#[test]
fn check_validates_certificate_and_key_files() {
    let pki = Pki::new();
    let (a, ak) = pki.leaf("a", "/CN=a.test", &["a.test"], KeyType::Ec);
    let (b, bk) = pki.leaf("b", "/CN=b.test", &["b.test"], KeyType::Rsa);
    let (code, err) = check_tls(&format!(
        "tls = {{ cert = \"{}\", key = \"{}\" }}",
        p(&a),
        p(&ak)
    ));
    assert_eq!(code, 0, "{err}");

    let missing = pki.path("missing.pem");
    let garbage = pki.path("garbage.pem");
    std::fs::write(&garbage, "hello\n").unwrap();
    let cases = [
        (
            format!(
                "tls = {{ cert = \"{}\", key = \"{}\" }}",
                p(&missing),
                p(&ak)
            ),
            ":9:", // line of [[listener]]'s tls = ...
            "listener[0].tls.cert: cannot read",
        ),
        (
            format!(
                "tls = {{ cert = \"{}\", key = \"{}\" }}",
                p(&garbage),
                p(&ak)
            ),
            ":9:",
            "listener[0].tls.cert: ",
        ),
        (
            format!("tls = {{ cert = \"{}\", key = \"{}\" }}", p(&a), p(&bk)),
            ":9:",
            "listener[0].tls.key: the private key in",
        ),
        (
            format!("tls = {{ cert = \"{}\", key = \"{}\" }}", p(&a), p(&a)),
            ":9:",
            "listener[0].tls.key: ",
        ),
        (
            format!(
                "{}[[listener.tls.certs]]\ncert = \"{}\"\nkey = \"{}\"\n",
                cert_table(&a, &ak),
                p(&b),
                p(&ak)
            ),
            ":14:",
            "listener[0].tls.certs[1].key: the private key in",
        ),
        (
            format!("tls = {{ cert = \"{}\" }}", p(&a)),
            ":9:",
            "listener[0].tls: `cert` and `key` go together",
        ),
        (
            format!("[listener.tls]\nalpn = [\"h2\"]\n{}", cert_table(&a, &ak)),
            ":10:",
            "listener[0].tls.alpn: unsupported protocol \"h2\"",
        ),
        (
            format!(
                "[listener.tls]\nmin_version = \"1.1\"\n{}",
                cert_table(&a, &ak)
            ),
            ":10:",
            "listener[0].tls.min_version: unknown version",
        ),
        (
            format!(
                "[listener.tls]\nclient_auth = \"optional\"\n{}",
                cert_table(&a, &ak)
            ),
            ":10:",
            "listener[0].tls.client_auth: needs `client_ca`",
        ),
        (
            format!(
                "[listener.tls]\nclient_ca = \"{}\"\n{}",
                p(&garbage),
                cert_table(&a, &ak)
            ),
            ":10:",
            "listener[0].tls.client_ca: ",
        ),
        (
            format!(
                "[listener.tls]\nhandshake_timeout = \"0s\"\n{}",
                cert_table(&a, &ak)
            ),
            ":10:",
            "listener[0].tls.handshake_timeout: must be longer than 0s",
        ),
    ];
    for (tls, line, want) in cases {
        let (code, err) = check_tls(&tls);
        assert_eq!(code, 1, "{tls}: {err}");
        assert!(err.contains(want), "{tls}:\nwant {want:?} in\n{err}");
        assert!(err.contains(line), "{tls}:\nwant line {line} in\n{err}");
        assert!(!err.contains("BEGIN"), "a key or certificate leaked: {err}");
    }
}

#[test]
fn check_resolves_relative_paths_from_the_config_directory() {
    let pki = Pki::new();
    pki.leaf("a", "/CN=a.test", &["a.test"], KeyType::Ec);
    let config = tls_config(
        8443,
        "127.0.0.1:9".parse().unwrap(),
        1,
        "tls = { cert = \"a.pem\", key = \"a.key\" }",
    );
    let path = pki.path("gw.toml");
    std::fs::write(&path, config).unwrap();
    let (code, _, err) = run_cli(&["check", "--config", p(&path)]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn check_validates_upstream_tls() {
    let pki = Pki::new();
    let garbage = pki.path("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let base = "[[listener]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\n[[route]]\nlistener = \"web\"\nupstream = \"app\"\n[[upstream]]\nname = \"app\"\nendpoints = [\"127.0.0.1:9\"]\n";
    let ok = format!(
        "{base}tls = {{ sni = \"api.internal\", ca = \"{}\" }}\n",
        p(&pki.ca())
    );
    let (code, err, _, _d) = check(&ok);
    assert_eq!(code, 0, "{err}");
    for (tls, want) in [
        (
            format!("tls = {{ ca = \"{}\" }}", p(&pki.path("nope.pem"))),
            "upstream[0].tls.ca: cannot read",
        ),
        (
            format!("tls = {{ ca = \"{}\" }}", p(&garbage)),
            "upstream[0].tls.ca: ",
        ),
        (
            "tls = { sni = \"bad name!\" }".to_string(),
            "upstream[0].tls.sni: invalid server name",
        ),
    ] {
        let (code, err, _, _d) = check(&format!("{base}{tls}\n"));
        assert_eq!(code, 1, "{tls}: {err}");
        assert!(err.contains(want), "{tls}: want {want:?} in {err}");
        assert!(err.contains(":10:"), "{tls}: {err}");
    }
}

#[test]
fn an_ecdsa_and_an_rsa_certificate_for_the_same_name_go_by_what_the_client_verifies() {
    let pki = Pki::new();
    let (e, ek) = pki.leaf("e", "/CN=dual ecdsa", &["dual.test"], KeyType::Ec);
    let (r, rk) = pki.leaf("r", "/CN=dual rsa", &["dual.test"], KeyType::Rsa);
    let up = Upstream::ok("ok");
    let port = free_port();
    let tls = format!("{}{}", cert_table(&e, &ek), cert_table(&r, &rk));
    let _g = Gateway::start(&tls_config(port, up.addr, 1, &tls));
    let (ok, out) = s_client(port, &["-servername", "dual.test"]);
    assert!(ok, "{out}");
    assert_eq!(subject(&out), "CN=dualecdsa");
    for v in ["-tls1_3", "-tls1_2"] {
        let (ok, out) = s_client(
            port,
            &[
                "-servername",
                "dual.test",
                v,
                "-sigalgs",
                "rsa_pss_rsae_sha256:RSA+SHA256",
            ],
        );
        assert!(ok, "{out}");
        assert_eq!(subject(&out), "CN=dualrsa", "{v}");
    }
    // Clients without SNI get the default's twin too.
    let (ok, out) = s_client(port, &["-noservername", "-sigalgs", "rsa_pss_rsae_sha256"]);
    assert!(ok, "{out}");
    assert_eq!(subject(&out), "CN=dualrsa");
}

#[test]
fn health_checks_of_an_https_upstream_handshake_and_verify() {
    let pki = Pki::new();
    let (u, uk) = pki.leaf("up", "/CN=up.internal", &["up.internal"], KeyType::Ec);
    let up = TlsUpstream::start(&u, &uk);
    let check = "[upstream.health_check]\npath = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"1s\"\nunhealthy = 2";
    let good = format!(
        "tls = {{ sni = \"up.internal\", ca = \"{}\" }}\n{check}",
        p(&pki.ca())
    );
    let port = free_port();
    let g = Gateway::start(&secure_config(port, up.addr, &good));
    poll(WAIT, "three probes at the upstream", || {
        let heads = up.heads.lock().unwrap().clone();
        (heads
            .iter()
            .filter(|h| h.starts_with("GET /healthz"))
            .count()
            >= 3)
            .then_some(())
    });
    assert!(!g.log_text().contains("endpoint down"), "{}", g.log_text());
    let r = roundtrip(addr(port), b"GET /x HTTP/1.1\r\nHost: site\r\n\r\n");
    assert_eq!(r.status, 200);
    drop(g);

    // A CA that did not sign the upstream's certificate: the probes fail and say why.
    let other = Pki::new();
    let bad = format!(
        "tls = {{ sni = \"up.internal\", ca = \"{}\" }}\n{check}",
        p(&other.ca())
    );
    let port = free_port();
    let mut g = Gateway::start(&secure_config(port, up.addr, &bad));
    g.wait_log("endpoint down: health check failed");
    assert!(g.log_text().contains("TLS: "), "{}", g.log_text());
}
