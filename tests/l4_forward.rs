//! The L4 (`protocol = "tcp"`) forwarder end to end, real binary and real sockets on loopback:
//! bulk integrity both ways at once (splice and copy paths, io_uring and epoll, one connection
//! and many), half-close, reset propagation, endpoint failover, PROXY protocol sent and accepted,
//! SNI routing with real openssl, a thousand idle connections without extra threads, the idle
//! timeout, per-listener max_connections; and around those: gateway memory, sockets and CPU
//! stay bounded, connect timeouts, graceful stop, stalled or split headers, haproxy as a peer
//! on both sides of the PROXY protocol, failures mid-stream.
//!
//! Every wait polls with a deadline or reads with a timeout; sleeps only pace a sender.

mod common;
use common::upstream::Upstream;
use common::*;
use sha2::{Digest, Sha256};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Raw upstreams

type Handler = dyn Fn(TcpStream, usize) + Send + Sync;

/// A raw TCP upstream: each accepted connection goes to `handler` with its accept index, on a
/// thread of its own (or on the accept thread, for handlers that only stash the socket).
struct Raw {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Raw {
    fn start(handler: impl Fn(TcpStream, usize) + Send + Sync + 'static) -> Raw {
        Self::spawn(Arc::new(handler), true)
    }

    /// The handler runs on the accept thread: it must return at once.
    fn start_inline(handler: impl Fn(TcpStream, usize) + Send + Sync + 'static) -> Raw {
        Self::spawn(Arc::new(handler), false)
    }

    fn spawn(handler: Arc<Handler>, threaded: bool) -> Raw {
        let listener = listen_loopback();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, f, s) = (accepted.clone(), finished.clone(), stop.clone());
        std::thread::spawn(move || loop {
            let conn = listener.accept();
            if s.load(Ordering::SeqCst) {
                break;
            }
            let Ok((conn, _)) = conn else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let index = a.fetch_add(1, Ordering::SeqCst);
            if threaded {
                let (h, f) = (handler.clone(), f.clone());
                std::thread::spawn(move || {
                    h(conn, index);
                    f.fetch_add(1, Ordering::SeqCst);
                });
            } else {
                handler(conn, index);
                f.fetch_add(1, Ordering::SeqCst);
            }
        });
        Raw {
            addr,
            accepted,
            finished,
            stop,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Handlers that have returned.
    fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)); // wake accept
    }
}

/// A loopback listener with a deep backlog (std's is 128), for connection storms.
fn listen_loopback() -> TcpListener {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    s.listen(2048).unwrap();
    s.into()
}

/// An upstream that keeps, per connection, every byte received until EOF, then closes.
struct Recorder {
    raw: Raw,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let raw = Raw::start(move |mut s, _| {
            s.set_read_timeout(Some(WAIT)).unwrap();
            let mut all = Vec::new();
            let _ = s.read_to_end(&mut all);
            g.lock().unwrap().push(all);
        });
        Recorder { raw, got }
    }

    fn addr(&self) -> SocketAddr {
        self.raw.addr
    }

    /// Waits (bounded) for `n` connections to have ended, and returns what each sent.
    fn wait(&self, n: usize) -> Vec<Vec<u8>> {
        poll(WAIT, "connections recorded at the upstream", || {
            let g = self.got.lock().unwrap();
            (g.len() >= n).then(|| g.clone())
        })
    }
}

/// Echoes until EOF, then closes.
fn echo(mut s: TcpStream) {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 16384];
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
}

// ---------------------------------------------------------------------------------------------
// Configs and small helpers

/// A config with one tcp listener `l4` on `port` (more of its keys in `listener`) and the given
/// upstreams.
fn tcp_config(
    port: u16,
    workers: usize,
    runtime: &str,
    listener: &str,
    upstreams: &[(&str, &[SocketAddr])],
) -> String {
    let mut c = format!(
        "[runtime]\nworkers = {workers}\nshutdown_timeout = \"2s\"\n{runtime}\n\n\
         [[listener]]\nname = \"l4\"\nbind = \"127.0.0.1:{port}\"\nprotocol = \"tcp\"\n{listener}\n"
    );
    for (name, eps) in upstreams {
        let eps: Vec<String> = eps.iter().map(|a| format!("\"{a}\"")).collect();
        c.push_str(&format!(
            "\n[[upstream]]\nname = \"{name}\"\nendpoints = [{}]\nconnect_timeout = \"2s\"\n",
            eps.join(", ")
        ));
    }
    c
}

/// One listener `l4` forwarding to the single upstream `back` at `up`.
fn simple(port: u16, listener: &str, up: SocketAddr) -> String {
    tcp_config(
        port,
        1,
        "",
        &format!("upstream = \"back\"\n{listener}"),
        &[("back", &[up])],
    )
}

/// An address nothing listens on (the probe socket is gone).
fn dead_addr() -> SocketAddr {
    addr(free_port())
}

/// Does one line of the log contain every needle?
fn log_line_has(g: &Gateway, needles: &[&str]) -> bool {
    g.log_text()
        .lines()
        .any(|l| needles.iter().all(|n| l.contains(n)))
}

/// Reads until EOF or an error; `Ok(bytes)` on a clean EOF, the error otherwise.
fn read_to_end_or_err(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    Ok(all)
}

/// Closes with SO_LINGER 0: an RST instead of a FIN.
fn reset(s: TcpStream) {
    common::upstream::reset(s)
}

/// Kibibytes of resident memory of a process.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system, clock ticks) a process has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised name; utime and stime are the 14th and 15th overall.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// CPU time (clock ticks, 10 ms each) a process uses during `window`.
fn cpu_over(pid: u32, window: Duration) -> u64 {
    let before = cpu_ticks(pid);
    std::thread::sleep(window);
    cpu_ticks(pid) - before
}

/// Waits up to `limit` for `s` to be reset by its peer (POLLHUP or POLLERR, not merely the
/// POLLIN of an EOF), without reading or writing.
fn reset_within(s: &TcpStream, limit: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let start = Instant::now();
    while start.elapsed() < limit {
        let mut p = libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll reads and writes one pollfd through a valid pointer; the fd is open.
        let n = unsafe { libc::poll(&mut p, 1, 50) };
        if n > 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return true;
        }
        if n > 0 {
            // Readable only (a FIN already seen): poll returns at once; pace the loop.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    false
}

/// Polls `f` every 10 ms for up to `limit`; whether it became true.
fn poll_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Length of the accept queue of the loopback listener on `port` (rx_queue of its LISTEN row).
fn accept_queue(port: u16) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let local = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
        if local != port || *f.get(3)? != "0A" {
            return None;
        }
        u64::from_str_radix(f.get(4)?.split(':').nth(1)?, 16).ok()
    })
}

/// Sockets the process has open (its descriptors that are sockets).
fn socket_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|t| t.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0)
}

/// Waits until the gateway has no more sockets open than `baseline`: none leaked.
fn no_socket_leak(g: &Gateway, baseline: usize, what: &str) {
    let pid = g.child.id();
    let ok = poll_until(WAIT, || socket_fds(pid) <= baseline);
    assert!(
        ok,
        "{what}: the gateway still has {} sockets open, {baseline} before",
        socket_fds(pid)
    );
}

fn task_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

/// Raises this process's RLIMIT_NOFILE soft limit to at least `want` (the hard limit at most);
/// the gateway inherits it.
fn raise_nofile(want: u64) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into a valid pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0);
    if rl.rlim_cur >= want as libc::rlim_t {
        return;
    }
    rl.rlim_cur = (want as libc::rlim_t).min(rl.rlim_max);
    // SAFETY: setrlimit reads one rlimit from a valid pointer.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) }, 0);
}

// ---------------------------------------------------------------------------------------------
// Bulk: random streams both ways at once, hashed at both ends

/// Chunks are 1..=MAX_CHUNK bytes.
const MAX_CHUNK: u64 = 256 * 1024;
/// Bulk sockets wait this long for a byte before the test fails.
const BULK_WAIT: Duration = Duration::from_secs(60);

/// 8 MiB from /dev/urandom; streams are chunks of it at random offsets.
fn random_pool() -> &'static [u8] {
    static POOL: OnceLock<Vec<u8>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut b = vec![0u8; 8 << 20];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut b)
            .unwrap();
        b
    })
}

/// xorshift64*: picks chunk lengths and offsets.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

type Sha = [u8; 32];

/// Sends `total` random bytes (chunks of random length at random offsets of the pool, chosen by
/// `seed`), half-closes, and returns the SHA-256 of what was sent.
fn send_random(mut s: TcpStream, seed: u64, total: u64) -> Result<Sha, String> {
    let pool = random_pool();
    let mut rng = Rng::new(seed);
    let mut h = Sha256::new();
    let mut left = total;
    while left > 0 {
        let len = (rng.next() % MAX_CHUNK + 1).min(left) as usize;
        let off = (rng.next() % (pool.len() - len + 1) as u64) as usize;
        let chunk = &pool[off..off + len];
        s.write_all(chunk)
            .map_err(|e| format!("send failed after {} bytes: {e}", total - left))?;
        h.update(chunk);
        left -= len as u64;
    }
    s.shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    Ok(h.finalize().into())
}

/// Reads to EOF; returns how many bytes and their SHA-256.
fn recv_hashed(mut s: TcpStream) -> Result<(u64, Sha), String> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut h = Sha256::new();
    let mut n: u64 = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok((n, h.finalize().into())),
            Ok(k) => {
                h.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("receive failed after {n} bytes: {e}")),
        }
    }
}

/// One end's view of one connection.
#[derive(Debug)]
struct Side {
    sent: Result<Sha, String>,
    got: Result<(u64, Sha), String>,
}

/// Both directions of one socket at once: a sender thread on a clone, the receiver here.
fn both_ways(s: TcpStream, seed: u64, size: u64) -> Side {
    s.set_read_timeout(Some(BULK_WAIT)).unwrap();
    s.set_write_timeout(Some(BULK_WAIT)).unwrap();
    let w = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || send_random(w, seed, size));
    let got = recv_hashed(s);
    let sent = sender.join().unwrap();
    Side { sent, got }
}

const CLIENT_SEED: u64 = 1_000;
const UPSTREAM_SEED: u64 = 2_000_000;

/// Pushes `size` random bytes each way through `conns` connections at once (upstream and client
/// send concurrently); checks every stream arrived whole by SHA-256. Returns the gateway (for its
/// log) and the elapsed time.
fn bulk(
    runtime: &str,
    listener: &str,
    workers: usize,
    conns: usize,
    size: u64,
) -> (Gateway, Duration) {
    random_pool();
    let ups = Arc::new(Mutex::new(Vec::new()));
    let u = ups.clone();
    let up = Raw::start(move |s, i| {
        let side = both_ways(s, UPSTREAM_SEED + i as u64, size);
        u.lock().unwrap().push(side);
    });
    let port = free_port();
    let g = Gateway::start(&tcp_config(
        port,
        workers,
        runtime,
        &format!("upstream = \"back\"\n{listener}"),
        &[("back", &[up.addr])],
    ));
    let pid = g.child.id();
    let baseline = rss_kib(pid);
    let sockets = socket_fds(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::SeqCst) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let start = Instant::now();
    let streams: Vec<TcpStream> = (0..conns).map(|_| connect(addr(port))).collect();
    let clients: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| std::thread::spawn(move || both_ways(s, CLIENT_SEED + i as u64, size)))
        .collect();
    let clients: Vec<Side> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    let ups: Vec<Side> = poll(BULK_WAIT, "the upstream ends of the streams", || {
        let mut v = ups.lock().unwrap();
        (v.len() == conns).then(|| std::mem::take(&mut *v))
    });
    let elapsed = start.elapsed();
    stop.store(true, Ordering::SeqCst);
    let peak = sampler.join().unwrap();
    no_socket_leak(&g, sockets, "after the streams");
    // Pooled pipes and buffers: the gateway's memory must not follow the bytes moved.
    assert!(
        peak < baseline + 32 * 1024,
        "gateway RSS grew from {baseline} KiB to {peak} KiB"
    );
    let collect = |sides: &[Side], who: &str| -> (Vec<Sha>, Vec<Sha>) {
        let mut sent = Vec::new();
        let mut got = Vec::new();
        for (i, s) in sides.iter().enumerate() {
            let (n, h) = s
                .got
                .as_ref()
                .unwrap_or_else(|e| panic!("{who} {i}: {e}\n{}", g.log_text()));
            assert_eq!(*n, size, "{who} {i} received {n} of {size} bytes");
            got.push(*h);
            sent.push(
                *s.sent
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{who} {i}: {e}\n{}", g.log_text())),
            );
        }
        sent.sort();
        got.sort();
        (sent, got)
    };
    let (client_sent, client_got) = collect(&clients, "client");
    let (up_sent, up_got) = collect(&ups, "upstream");
    assert_eq!(
        client_sent, up_got,
        "what the upstream received is not what the clients sent"
    );
    assert_eq!(
        up_sent, client_got,
        "what the clients received is not what the upstream sent"
    );
    let mib = (2 * size * conns as u64) as f64 / (1 << 20) as f64;
    eprintln!(
        "{conns} x {} MiB each way: {elapsed:.2?} ({:.0} MiB/s through the gateway)",
        size >> 20,
        mib / elapsed.as_secs_f64()
    );
    (g, elapsed)
}

#[test]
fn one_gib_each_way_at_once_arrives_intact() {
    let (g, elapsed) = bulk("", "", 2, 1, 1 << 30);
    assert!(
        log_line_has(
            &g,
            &[
                "tcp listener forwarding path",
                "listener=l4",
                "path=\"splice\""
            ]
        ),
        "{}",
        g.log_text()
    );
    assert!(elapsed < Duration::from_secs(120), "took {elapsed:?}");
}

#[test]
fn many_connections_at_once_each_arrive_intact() {
    bulk("", "", 2, 32, 16 << 20);
}

#[test]
fn copy_path_arrives_intact() {
    let (g, _) = bulk("", "splice = false", 2, 1, 1 << 30);
    assert!(
        log_line_has(
            &g,
            &[
                "tcp listener forwarding path",
                "listener=l4",
                "path=\"copy\"",
                "splice = false"
            ]
        ),
        "{}",
        g.log_text()
    );
}

#[test]
fn epoll_driver_arrives_intact() {
    let (g, _) = bulk("driver = \"epoll\"", "", 2, 1, 1 << 30);
    assert!(
        log_line_has(&g, &["worker started", "epoll"]),
        "{}",
        g.log_text()
    );
    assert!(
        log_line_has(&g, &["tcp listener forwarding path", "path=\"splice\""]),
        "{}",
        g.log_text()
    );
}

// ---------------------------------------------------------------------------------------------
// Half-close and resets, on each forwarding path

/// The ways a connection can be forwarded: (name, `[runtime]` keys, listener keys).
const MODES: [(&str, &str, &str); 3] = [
    ("io_uring + splice", "", ""),
    ("io_uring + copy", "", "splice = false"),
    ("epoll + splice", "driver = \"epoll\"", ""),
];

/// Runs `check` once per forwarding mode against a fresh one-worker gateway in front of a raw
/// upstream running `handler`.
fn in_each_mode(
    handler: impl Fn(TcpStream, usize) + Send + Sync + Clone + 'static,
    check: impl Fn(&str, u16, &Raw, &Gateway),
) {
    for (mode, runtime, listener) in MODES {
        let up = Raw::start(handler.clone());
        let port = free_port();
        let g = Gateway::start(&tcp_config(
            port,
            1,
            runtime,
            &format!("upstream = \"back\"\n{listener}"),
            &[("back", &[up.addr])],
        ));
        let sockets = socket_fds(g.child.id());
        check(mode, port, &up, &g);
        drop(up); // its handlers' sockets close as they return
        no_socket_leak(&g, sockets, mode);
    }
}

/// A slot a handler fills and the test waits on.
type Slot<T> = Arc<Mutex<Option<T>>>;

fn wait_slot<T: Clone>(slot: &Slot<T>, what: &str) -> T {
    poll(WAIT, what, || slot.lock().unwrap().clone())
}

#[test]
fn client_half_close_reaches_the_upstream_which_can_still_answer() {
    const REPLY: usize = 1 << 20;
    for (mode, runtime, listener) in MODES {
        let seen: Slot<Result<Vec<u8>, String>> = Arc::default();
        let s2 = seen.clone();
        let up = Raw::start(move |mut s, _| {
            s.set_read_timeout(Some(WAIT)).unwrap();
            let r = read_to_end_or_err(&mut s).map_err(|e| e.to_string());
            let ok = r.is_ok();
            *s2.lock().unwrap() = Some(r);
            if ok {
                // Only after EOF: a whole MiB back, then close.
                let _ = s.write_all(&vec![b'r'; REPLY]);
            }
        });
        let port = free_port();
        let _g = Gateway::start(&tcp_config(
            port,
            1,
            runtime,
            &format!("upstream = \"back\"\n{listener}"),
            &[("back", &[up.addr])],
        ));
        let mut c = connect(addr(port));
        c.write_all(b"request, then EOF").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let got = wait_slot(&seen, "the upstream to read EOF");
        assert_eq!(got.unwrap(), b"request, then EOF", "{mode}");
        let reply = read_to_end_or_err(&mut c).unwrap();
        assert_eq!(reply.len(), REPLY, "{mode}");
        assert!(reply.iter().all(|&b| b == b'r'), "{mode}");
    }
}

#[test]
fn upstream_half_close_reaches_the_client_which_can_still_send() {
    const UPLOAD: usize = 1 << 20;
    for (mode, runtime, listener) in MODES {
        let seen: Slot<Result<Vec<u8>, String>> = Arc::default();
        let s2 = seen.clone();
        let up = Raw::start(move |mut s, _| {
            s.set_read_timeout(Some(WAIT)).unwrap();
            s.write_all(b"banner, then EOF").unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let r = read_to_end_or_err(&mut s).map_err(|e| e.to_string());
            *s2.lock().unwrap() = Some(r);
        });
        let port = free_port();
        let _g = Gateway::start(&tcp_config(
            port,
            1,
            runtime,
            &format!("upstream = \"back\"\n{listener}"),
            &[("back", &[up.addr])],
        ));
        let mut c = connect(addr(port));
        // The client sees the banner and then EOF while its own direction is still open.
        assert_eq!(
            read_to_end_or_err(&mut c).unwrap(),
            b"banner, then EOF",
            "{mode}"
        );
        assert!(
            seen.lock().unwrap().is_none(),
            "{mode}: upstream saw EOF too early"
        );
        let payload: Vec<u8> = (0..UPLOAD).map(|i| (i % 251) as u8).collect();
        c.write_all(&payload).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let got = wait_slot(&seen, "the upstream to read EOF");
        assert!(
            got.unwrap() == payload,
            "{mode}: the upload after the upstream's EOF was not forwarded whole"
        );
    }
}

#[test]
fn upstream_reset_reaches_the_client_as_a_reset() {
    let handler = |mut s: TcpStream, _| {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut b = [0u8; 1];
        if s.read_exact(&mut b).is_ok() {
            reset(s);
        }
    };
    in_each_mode(handler, |mode, port, _, _| {
        let mut c = connect(addr(port));
        c.write_all(b"x").unwrap();
        match read_to_end_or_err(&mut c) {
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{mode}: {e}"),
            Ok(b) => panic!(
                "{mode}: clean EOF (after {} bytes) instead of a reset",
                b.len()
            ),
        }
    });
}

#[test]
fn client_reset_reaches_the_upstream_as_a_reset() {
    for (mode, runtime, listener) in MODES {
        let seen: Slot<Result<usize, ErrorKind>> = Arc::default();
        let s2 = seen.clone();
        let up = Raw::start(move |mut s, _| {
            s.set_read_timeout(Some(WAIT)).unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            s.write_all(b"y").unwrap();
            let r = read_to_end_or_err(&mut s).map(|b| b.len());
            *s2.lock().unwrap() = Some(r.map_err(|e| e.kind()));
        });
        let port = free_port();
        let _g = Gateway::start(&tcp_config(
            port,
            1,
            runtime,
            &format!("upstream = \"back\"\n{listener}"),
            &[("back", &[up.addr])],
        ));
        let mut c = connect(addr(port));
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap(); // the upstream holds the connection
        reset(c);
        match wait_slot(&seen, "the upstream's read to end") {
            Err(kind) => assert_eq!(kind, ErrorKind::ConnectionReset, "{mode}"),
            Ok(n) => panic!("{mode}: clean EOF (after {n} bytes) instead of a reset"),
        }
    }
}

// Fails at 7ab85b2: once a direction has ended, `relay` (src/l4/forward.rs) no longer watches
// the socket it came from, so a reset there goes unnoticed until bytes are written to it (or
// `idle_timeout`, 600 s by default, passes).
#[test]
fn upstream_reset_after_its_half_close_still_reaches_the_client() {
    // The upstream says all it has (FIN), then resets while the client is quiet: the client must
    // not be left holding a connection whose other end is gone.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Mutex::new(rx);
    let up = Raw::start(move |mut s, _| {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        s.write_all(b"bye").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let _ = rx.lock().unwrap().recv_timeout(WAIT); // the client has the EOF
        reset(s);
    });
    let port = free_port();
    let g = Gateway::start(&simple(port, "", up.addr));
    let mut c = connect(addr(port));
    c.write_all(b"x").unwrap();
    assert_eq!(read_to_end_or_err(&mut c).unwrap(), b"bye");
    tx.send(()).unwrap();
    poll(WAIT, "the upstream to reset", || {
        (up.finished() == 1).then_some(())
    });
    // The client sends nothing: the gateway alone must notice and pass the reset on.
    assert!(
        reset_within(&c, Duration::from_secs(5)),
        "the client was not told of the upstream's reset within 5 s:\n{}",
        g.log_text()
    );
}

// Fails at 7ab85b2, the mirror of the test above.
#[test]
fn client_reset_after_its_half_close_still_reaches_the_upstream() {
    // The client sends its request and half-closes, then resets while the upstream is still
    // thinking: the upstream must learn it without having to write first.
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = Mutex::new(tx);
    let up = Raw::start(move |mut s, _| {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut req = Vec::new();
        let _ = s.read_to_end(&mut req); // up to the half-close
        tx.lock().unwrap().send(s).unwrap();
    });
    let port = free_port();
    let g = Gateway::start(&simple(port, "", up.addr));
    let mut c = connect(addr(port));
    c.write_all(b"request").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let upstream_side = rx.recv_timeout(WAIT).expect("the request at the upstream");
    reset(c);
    assert!(
        reset_within(&upstream_side, Duration::from_secs(5)),
        "the upstream was not told of the client's reset within 5 s:\n{}",
        g.log_text()
    );
}

// ---------------------------------------------------------------------------------------------
// Connect failures

#[test]
fn a_refusing_endpoint_fails_over_to_the_next() {
    let up = Raw::start(|s, _| echo(s));
    let port = free_port();
    let g = Gateway::start(&tcp_config(
        port,
        1,
        "",
        "upstream = \"back\"",
        &[("back", &[dead_addr(), up.addr])],
    ));
    // Round robin starts on either endpoint; over four connections both come first.
    for i in 0..4u8 {
        let mut c = connect(addr(port));
        c.write_all(&[b'a' + i; 3]).unwrap();
        let mut b = [0u8; 3];
        c.read_exact(&mut b).unwrap();
        assert_eq!(b, [b'a' + i; 3]);
    }
    assert_eq!(up.accepted(), 4);
    assert!(log_line_has(&g, &["connect failed"]), "{}", g.log_text());
}

#[test]
fn all_endpoints_refusing_closes_the_client_promptly() {
    let port = free_port();
    let mut g = Gateway::start(&tcp_config(
        port,
        1,
        "",
        "upstream = \"back\"",
        &[("back", &[dead_addr(), dead_addr(), dead_addr()])],
    ));
    let mut c = connect(addr(port));
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let _ = c.write_all(b"anyone?");
    assert!(closed_by_peer(&mut c), "the client was not closed");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "refusals are immediate, yet closing took {took:?}"
    );
    g.wait_log("no endpoint accepted; client closed");
    assert_eq!(
        g.log_text().matches("connect failed").count(),
        3,
        "{}",
        g.log_text()
    );
}

// ---------------------------------------------------------------------------------------------
// PROXY protocol sent to the upstream

const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// A v2 PROXY header for TCP over IPv4, built by hand from the spec.
fn v2_header(src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    let mut h = V2_SIG.to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]);
    h.extend_from_slice(&src.ip().octets());
    h.extend_from_slice(&dst.ip().octets());
    h.extend_from_slice(&src.port().to_be_bytes());
    h.extend_from_slice(&dst.port().to_be_bytes());
    h
}

/// Sends `payload` on a new connection, half-closes, waits for the close; returns what the
/// recorder received and the client's own port.
fn send_through(port: u16, rec: &Recorder, payload: &[u8]) -> (Vec<u8>, u16) {
    let mut c = connect(addr(port));
    let client_port = c.local_addr().unwrap().port();
    c.write_all(payload).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let _ = read_to_end_or_err(&mut c);
    (rec.wait(1).remove(0), client_port)
}

#[test]
fn proxy_protocol_v1_header_comes_first() {
    let rec = Recorder::start();
    let port = free_port();
    let _g = Gateway::start(&simple(port, "proxy_protocol = \"v1\"", rec.addr()));
    let (got, cport) = send_through(port, &rec, b"payload\r\n");
    let want = format!("PROXY TCP4 127.0.0.1 127.0.0.1 {cport} {port}\r\npayload\r\n");
    assert_eq!(String::from_utf8_lossy(&got), want);
}

#[test]
fn proxy_protocol_v2_header_comes_first() {
    let rec = Recorder::start();
    let port = free_port();
    let _g = Gateway::start(&simple(port, "proxy_protocol = \"v2\"", rec.addr()));
    let (got, cport) = send_through(port, &rec, b"\x00binary payload\xff");
    assert!(got.len() >= 28, "{got:?}");
    // The 16-byte prefix: signature, version 2 + PROXY, TCP over IPv4, 12 address bytes.
    let mut prefix = V2_SIG.to_vec();
    prefix.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]);
    assert_eq!(got[..16], prefix[..]);
    let mut addrs = vec![127, 0, 0, 1, 127, 0, 0, 1];
    addrs.extend_from_slice(&cport.to_be_bytes());
    addrs.extend_from_slice(&port.to_be_bytes());
    assert_eq!(got[16..28], addrs[..]);
    assert_eq!(&got[28..], b"\x00binary payload\xff");
}

// ---------------------------------------------------------------------------------------------
// PROXY protocol accepted from a trusted balancer

const TRUST_LOOPBACK: &str = "accept_proxy_protocol = { trusted = [\"127.0.0.0/8\"] }";

#[test]
fn accepted_v1_header_names_the_client_in_the_header_sent_on() {
    let rec = Recorder::start();
    let port = free_port();
    let _g = Gateway::start(&simple(
        port,
        &format!("proxy_protocol = \"v1\"\n{TRUST_LOOPBACK}"),
        rec.addr(),
    ));
    let (got, _) = send_through(
        port,
        &rec,
        b"PROXY TCP4 192.0.2.7 198.51.100.9 5555 443\r\nhello behind a balancer",
    );
    assert_eq!(
        String::from_utf8_lossy(&got),
        "PROXY TCP4 192.0.2.7 198.51.100.9 5555 443\r\nhello behind a balancer"
    );
}

#[test]
fn accepted_header_with_a_large_payload_in_the_same_write() {
    let mut inbound = b"PROXY TCP4 192.0.2.7 198.51.100.9 5555 443\r\n".to_vec();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    inbound.extend_from_slice(&payload);
    let (got, _, _) = through_fresh("", TRUST_LOOPBACK, &inbound);
    assert!(
        got == payload,
        "{} bytes arrived, not the 200,000 behind the header",
        got.len()
    );
}

#[test]
fn accepted_header_then_a_server_first_protocol() {
    // Behind a balancer, an SMTP-like upstream speaks first: the header alone must do.
    let up = Raw::start(|mut s, _| {
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(b"220 hello\r\n").unwrap();
        echo(s);
    });
    let port = free_port();
    let _g = Gateway::start(&simple(port, TRUST_LOOPBACK, up.addr));
    let mut c = connect(addr(port));
    c.write_all(b"PROXY TCP4 192.0.2.7 198.51.100.9 5555 25\r\n")
        .unwrap();
    let mut banner = [0u8; 11];
    c.read_exact(&mut banner).unwrap();
    assert_eq!(&banner, b"220 hello\r\n");
    c.write_all(b"EHLO x\r\n").unwrap();
    let mut back = [0u8; 8];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"EHLO x\r\n");
}

#[test]
fn accepted_v2_header_names_the_client_in_the_header_sent_on() {
    let rec = Recorder::start();
    let port = free_port();
    let _g = Gateway::start(&simple(
        port,
        &format!("proxy_protocol = \"v2\"\n{TRUST_LOOPBACK}"),
        rec.addr(),
    ));
    let src: SocketAddrV4 = "192.0.2.7:5555".parse().unwrap();
    let dst: SocketAddrV4 = "198.51.100.9:443".parse().unwrap();
    let mut inbound = v2_header(src, dst);
    inbound.extend_from_slice(b"hello behind a balancer");
    let (got, _) = send_through(port, &rec, &inbound);
    assert_eq!(got, inbound, "v2 in, v2 out: the same header and payload");
}

#[test]
fn accepted_header_then_v1_out_with_a_v2_header_in() {
    let rec = Recorder::start();
    let port = free_port();
    let _g = Gateway::start(&simple(
        port,
        &format!("proxy_protocol = \"v1\"\n{TRUST_LOOPBACK}"),
        rec.addr(),
    ));
    let mut inbound = v2_header(
        "192.0.2.7:5555".parse().unwrap(),
        "198.51.100.9:443".parse().unwrap(),
    );
    inbound.extend_from_slice(b"payload");
    let (got, _) = send_through(port, &rec, &inbound);
    assert_eq!(
        String::from_utf8_lossy(&got),
        "PROXY TCP4 192.0.2.7 198.51.100.9 5555 443\r\npayload"
    );
}

#[test]
fn untrusted_peer_with_a_header_is_closed_and_nothing_reaches_the_upstream() {
    let rec = Recorder::start();
    let port = free_port();
    let mut g = Gateway::start(&simple(
        port,
        "proxy_protocol = \"v1\"\naccept_proxy_protocol = { trusted = [\"10.0.0.0/8\"] }",
        rec.addr(),
    ));
    let mut c = connect(addr(port));
    c.write_all(b"PROXY TCP4 192.0.2.7 198.51.100.9 5555 443\r\npayload")
        .unwrap();
    assert!(closed_by_peer(&mut c), "an untrusted peer was not closed");
    g.wait_log("connection closed");
    assert!(
        log_line_has(&g, &["connection closed", "not in `trusted`"]),
        "{}",
        g.log_text()
    );
    assert_eq!(rec.raw.accepted(), 0);
}

#[test]
fn trusted_peer_without_a_header_is_closed() {
    let rec = Recorder::start();
    let port = free_port();
    let mut g = Gateway::start(&simple(port, TRUST_LOOPBACK, rec.addr()));
    let mut c = connect(addr(port));
    c.write_all(b"hello, no header here\r\n").unwrap();
    assert!(
        closed_by_peer(&mut c),
        "a header-less connection was not closed"
    );
    g.wait_log("connection closed");
    assert!(
        log_line_has(&g, &["connection closed", "not a PROXY protocol header"]),
        "{}",
        g.log_text()
    );
    assert_eq!(rec.raw.accepted(), 0);
}

#[test]
fn http_listener_takes_the_client_from_an_accepted_header() {
    let up = Upstream::ok("ok");
    let port = free_port();
    let _g = Gateway::start(&format!(
        r#"
[runtime]
workers = 1
[[listener]]
name = "web"
bind = "127.0.0.1:{port}"
{TRUST_LOOPBACK}
[[route]]
listener = "web"
upstream = "app"
[[upstream]]
name = "app"
endpoints = ["{}"]
"#,
        up.addr
    ));
    let r = roundtrip(
        addr(port),
        format!("PROXY TCP4 192.0.2.7 127.0.0.1 5555 {port}\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(r.status, 200);
    let got = up.wait_requests(1).remove(0);
    let xff = got.header("x-forwarded-for").unwrap_or_default();
    assert!(xff.ends_with("192.0.2.7"), "x-forwarded-for: {xff}");
    assert_eq!(got.header("x-real-ip").as_deref(), Some("192.0.2.7"));
}

// ---------------------------------------------------------------------------------------------
// SNI routing

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Is openssl there? Missing is fine outside CI.
fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "openssl is missing in CI");
        eprintln!("openssl not installed; skipping");
    }
    ok
}

/// A self-signed EC certificate for `cn` in `dir`: (cert, key) paths.
fn make_cert(dir: &std::path::Path, cn: &str) -> (String, String) {
    let cert = dir.join(format!("{cn}.pem"));
    let key = dir.join(format!("{cn}.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (path_str(&cert).into(), path_str(&key).into())
}

/// `openssl s_server -www` with the certificate for `cn`, listening once this returns.
fn s_server(dir: &std::path::Path, cn: &str) -> (Proc, SocketAddr) {
    let (cert, key) = make_cert(dir, cn);
    let port = free_port();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-cert", &cert, "-key", &key])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let p = Proc(child);
    poll(WAIT, "s_server to listen", || {
        (listening_sockets(port) > 0).then_some(())
    });
    (p, addr(port))
}

/// Runs `openssl s_client` against `port` (bounded) and returns its stdout.
fn s_client(port: u16, servername: Option<&str>, extra: &[&str]) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"));
    match servername {
        Some(n) => cmd.args(["-servername", n]),
        None => cmd.arg("-noservername"),
    };
    let mut child = cmd
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let done = poll_until(WAIT, || child.try_wait().unwrap().is_some());
    if !done {
        let _ = child.kill();
    }
    let _ = child.wait();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// The served certificate's subject, as s_client prints it (`CN = a.test`).
fn served_subject(out: &str) -> Option<&str> {
    out.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .map(str::trim)
}

#[test]
fn sni_routes_to_the_upstream_named_by_the_client_hello() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_a, a) = s_server(dir.path(), "a.test");
    let (_b, b) = s_server(dir.path(), "b.test");
    let (_d, d) = s_server(dir.path(), "default.test");
    let port = free_port();
    let _g = Gateway::start(&tcp_config(
        port,
        1,
        "",
        r#"sni_routes = { "a.test" = "up_a", "b.test" = "up_b", "*.w.test" = "up_b", "*" = "up_default" }"#,
        &[("up_a", &[a]), ("up_b", &[b]), ("up_default", &[d])],
    ));
    for (name, want) in [
        (Some("a.test"), "CN = a.test"),
        (Some("b.test"), "CN = b.test"),
        (Some("B.TEST"), "CN = b.test"),
        (Some("x.w.test"), "CN = b.test"),
        (Some("c.test"), "CN = default.test"),
        (None, "CN = default.test"),
    ] {
        let out = s_client(port, name, &[]);
        assert_eq!(
            served_subject(&out),
            Some(want),
            "servername {name:?}:\n{out}"
        );
    }
    // TLS 1.2 too (its ClientHello differs).
    let out = s_client(port, Some("a.test"), &["-tls1_2"]);
    assert_eq!(served_subject(&out), Some("CN = a.test"), "{out}");
}

/// A real ClientHello for `servername`, as openssl s_client sends it: the first TLS record.
fn capture_client_hello(servername: &str) -> Vec<u8> {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let child = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", servername])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _p = Proc(child);
    let (mut s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut head = [0u8; 5];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head[0], 0x16, "not a TLS handshake record");
    let len = u16::from_be_bytes([head[3], head[4]]) as usize;
    let mut hello = head.to_vec();
    hello.resize(5 + len, 0);
    s.read_exact(&mut hello[5..]).unwrap();
    assert_eq!(hello[5], 1, "not a ClientHello");
    hello
}

/// Three recorders behind `a.test`, `b.test` and (optionally) `*`.
fn sni_gateway(runtime: &str, with_default: bool) -> (Gateway, u16, [Recorder; 3]) {
    let recs = [Recorder::start(), Recorder::start(), Recorder::start()];
    let port = free_port();
    let routes = if with_default {
        r#"sni_routes = { "a.test" = "up_a", "b.test" = "up_b", "*" = "up_default" }"#
    } else {
        r#"sni_routes = { "a.test" = "up_a", "b.test" = "up_b" }"#
    };
    let g = Gateway::start(&tcp_config(
        port,
        1,
        runtime,
        routes,
        &[
            ("up_a", &[recs[0].addr()]),
            ("up_b", &[recs[1].addr()]),
            ("up_default", &[recs[2].addr()]),
        ],
    ));
    (g, port, recs)
}

fn split_hello_routes(runtime: &str) {
    if !have_openssl() {
        return;
    }
    let hello = capture_client_hello("b.test");
    let (_g, port, recs) = sni_gateway(runtime, true);
    let mut c = connect(addr(port));
    c.set_nodelay(true).unwrap();
    // Inside the record header, inside the hello, the rest: each its own segment.
    let cuts = [0, 3, 60, hello.len()];
    for w in cuts.windows(2) {
        c.write_all(&hello[w[0]..w[1]]).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    c.shutdown(Shutdown::Write).unwrap();
    let _ = read_to_end_or_err(&mut c);
    let got = recs[1].wait(1).remove(0);
    assert!(
        got == hello,
        "b.test's upstream did not get the ClientHello untouched"
    );
    assert_eq!((recs[0].raw.accepted(), recs[2].raw.accepted()), (0, 0));
}

#[test]
fn a_client_hello_split_over_several_writes_still_routes() {
    split_hello_routes("");
}

#[test]
fn a_client_hello_split_over_several_writes_still_routes_on_epoll() {
    split_hello_routes("driver = \"epoll\"");
}

#[test]
fn garbage_goes_to_the_default_route() {
    let (_g, port, recs) = sni_gateway("", true);
    let (got, _) = send_through(port, &recs[2], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(got, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((recs[0].raw.accepted(), recs[1].raw.accepted()), (0, 0));
}

#[test]
fn garbage_without_a_default_route_is_closed() {
    let (_g, port, recs) = sni_gateway("", false);
    let mut c = connect(addr(port));
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(
        closed_by_peer(&mut c),
        "garbage with nowhere to go was not closed"
    );
    assert!(recs.iter().all(|r| r.raw.accepted() == 0));
}

// ---------------------------------------------------------------------------------------------
// Threads, idle timeout, max_connections

#[test]
fn a_thousand_idle_connections_add_no_threads() {
    const CONNS: usize = 1000;
    raise_nofile(4 * CONNS as u64 + 256);
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    let up = Raw::start_inline(move |s, _| h.lock().unwrap().push(s));
    let port = free_port();
    let g = Gateway::start(&tcp_config(
        port,
        2,
        "driver = \"io_uring\"",
        "upstream = \"back\"",
        &[("back", &[up.addr])],
    ));
    let pid = g.child.id();
    let before = task_count(pid);
    let clients: Vec<TcpStream> = (0..CONNS).map(|_| connect(addr(port))).collect();
    poll(
        Duration::from_secs(30),
        "the upstream to accept them all",
        || (up.accepted() == CONNS).then_some(()),
    );
    // One byte through a few, to be sure they are forwarded end to end.
    let probes = [0, CONNS / 3, CONNS / 2, CONNS - 1];
    for &i in &probes {
        (&clients[i]).write_all(b"!").unwrap();
    }
    let mut seen = 0;
    poll(WAIT, "the probe bytes at the upstream", || {
        for s in held.lock().unwrap().iter_mut() {
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 8];
            if let Ok(n) = s.read(&mut b) {
                seen += n;
            }
        }
        (seen == probes.len()).then_some(())
    });
    let after = task_count(pid);
    let cpu = cpu_over(pid, Duration::from_secs(1));
    eprintln!(
        "gateway threads: {before} before, {after} with {CONNS} idle connections; \
         {cpu} CPU ticks in 1 s idle"
    );
    assert!(
        cpu <= 10,
        "{CONNS} idle connections burn CPU: {cpu} ticks in 1 s"
    );
    assert!(
        after <= before + 4,
        "threads grew from {before} to {after} with {CONNS} idle connections"
    );
    drop(clients);
}

#[test]
fn idle_connections_close_after_idle_timeout_busy_ones_stay() {
    let up = Raw::start(|s, _| echo(s));
    let port = free_port();
    let _g = Gateway::start(&simple(port, "idle_timeout = \"1s\"", up.addr));
    let mut idle = connect(addr(port));
    let mut busy = connect(addr(port));
    let mut b = [0u8; 1];
    for s in [&mut idle, &mut busy] {
        s.write_all(b"x").unwrap();
        s.read_exact(&mut b).unwrap();
    }
    let quiet_since = Instant::now();
    let keeper = std::thread::spawn(move || {
        // A byte every 300 ms for 3 s, each echoed: never 1 s without traffic.
        for i in 0..10u8 {
            std::thread::sleep(Duration::from_millis(300));
            busy.write_all(&[i]).unwrap();
            let mut b = [0u8; 1];
            busy.read_exact(&mut b)
                .unwrap_or_else(|e| panic!("busy connection lost at {i}: {e}"));
            assert_eq!(b[0], i);
        }
        busy
    });
    idle.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let r = read_to_end_or_err(&mut idle);
    let after = quiet_since.elapsed();
    assert!(matches!(r, Ok(ref v) if v.is_empty()), "{r:?}");
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(4),
        "the idle connection closed after {after:?}"
    );
    // The upstream side of it is closed too.
    poll(WAIT, "the idle connection's upstream to see EOF", || {
        (up.finished() >= 1).then_some(())
    });
    let mut busy = keeper.join().unwrap();
    busy.write_all(b"still here").unwrap();
    let mut back = [0u8; 10];
    busy.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still here");
}

#[test]
fn max_connections_pauses_accepting_until_one_closes() {
    let up = Raw::start(|s, _| echo(s));
    let port = free_port();
    let mut g = Gateway::start(&simple(port, "max_connections = 2", up.addr));
    let mut open: Vec<TcpStream> = (0..2)
        .map(|i| {
            let mut c = connect(addr(port));
            c.write_all(&[i]).unwrap();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).unwrap();
            c
        })
        .collect();
    g.wait_log("listener at max_connections on this worker; accepting paused until one closes");
    let mut third = connect(addr(port)); // the kernel completes the handshake
    third.write_all(b"third").unwrap();
    // It waits in the accept queue, unaccepted, and nothing reaches the upstream.
    poll(WAIT, "the third connection in the accept queue", || {
        accept_queue(port).is_some_and(|q| q == 1).then_some(())
    });
    assert_eq!(up.accepted(), 2);
    third
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 5];
    let e = third.read(&mut b).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e}"
    );
    assert_eq!(up.accepted(), 2);
    // One closes: the third is taken and forwarded.
    open.remove(0).shutdown(Shutdown::Both).unwrap();
    g.wait_log("accepting again");
    third.set_read_timeout(Some(WAIT)).unwrap();
    third.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"third");
    assert_eq!(up.accepted(), 3);
}

#[test]
fn half_closed_connections_cost_no_cpu() {
    const CONNS: usize = 20;
    for (mode, runtime, listener) in MODES {
        // Each client announces its index first, so both ends of connection i are known.
        let held: Arc<Mutex<Vec<Option<TcpStream>>>> =
            Arc::new(Mutex::new((0..CONNS).map(|_| None).collect()));
        let h = held.clone();
        let up = Raw::start(move |mut s, _| {
            s.set_read_timeout(Some(WAIT)).unwrap();
            let mut i = [0u8; 1];
            if s.read_exact(&mut i).is_ok() {
                h.lock().unwrap()[i[0] as usize] = Some(s);
            }
        });
        let port = free_port();
        let g = Gateway::start(&tcp_config(
            port,
            1,
            runtime,
            &format!("upstream = \"back\"\n{listener}"),
            &[("back", &[up.addr])],
        ));
        let mut clients: Vec<TcpStream> = (0..CONNS)
            .map(|i| {
                let c = connect(addr(port));
                (&c).write_all(&[i as u8]).unwrap();
                c
            })
            .collect();
        poll(WAIT, "every connection at the upstream", || {
            held.lock()
                .unwrap()
                .iter()
                .all(Option::is_some)
                .then_some(())
        });
        let mut ups: Vec<TcpStream> = std::mem::take(&mut *held.lock().unwrap())
            .into_iter()
            .map(Option::unwrap)
            .collect();
        // The first half half-closed by the client, the second half by the upstream.
        for i in 0..CONNS {
            if i < CONNS / 2 {
                clients[i].shutdown(Shutdown::Write).unwrap();
            } else {
                ups[i].shutdown(Shutdown::Write).unwrap();
            }
        }
        let mut eof = [false; CONNS];
        poll(WAIT, "every half-close to arrive", || {
            for i in 0..CONNS {
                let s = if i < CONNS / 2 {
                    &mut ups[i]
                } else {
                    &mut clients[i]
                };
                s.set_nonblocking(true).unwrap();
                let mut b = [0u8; 1];
                if let Ok(0) = s.read(&mut b) {
                    eof[i] = true;
                }
            }
            eof.iter().all(|&e| e).then_some(())
        });
        let cpu = cpu_over(g.child.id(), Duration::from_secs(1));
        assert!(
            cpu <= 10,
            "{mode}: {CONNS} half-closed connections burn CPU: {cpu} ticks in 1 s"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Connect timeouts

/// An address where SYNs go unanswered: a listener whose accept queue is full, kept with the
/// connection that fills it.
fn blackhole() -> (TcpListener, TcpStream, SocketAddr) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    s.listen(0).unwrap();
    let l: TcpListener = s.into();
    let a = l.local_addr().unwrap();
    let filler = TcpStream::connect(a).unwrap();
    let probe = TcpStream::connect_timeout(&a, Duration::from_millis(300));
    assert!(probe.is_err(), "the accept queue is not full");
    (l, filler, a)
}

fn with_connect_timeout(config: String, t: &str) -> String {
    config.replace(
        "connect_timeout = \"2s\"",
        &format!("connect_timeout = \"{t}\""),
    )
}

#[test]
fn a_silent_endpoint_times_out_and_fails_over() {
    let (_l, _f, hole) = blackhole();
    let up = Raw::start(|s, _| echo(s));
    let port = free_port();
    let g = Gateway::start(&with_connect_timeout(
        tcp_config(
            port,
            1,
            "",
            "upstream = \"back\"",
            &[("back", &[hole, up.addr])],
        ),
        "300ms",
    ));
    // Round robin: one of the two connections tries the silent endpoint first.
    for i in 0..2u8 {
        let start = Instant::now();
        let mut c = connect(addr(port));
        c.write_all(&[i]).unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        assert_eq!(b[0], i);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }
    assert!(
        log_line_has(&g, &["connect failed", &hole.to_string()]),
        "{}",
        g.log_text()
    );
}

#[test]
fn all_endpoints_silent_close_the_client_after_their_timeouts() {
    let (_l1, _f1, h1) = blackhole();
    let (_l2, _f2, h2) = blackhole();
    let port = free_port();
    let mut g = Gateway::start(&with_connect_timeout(
        tcp_config(port, 1, "", "upstream = \"back\"", &[("back", &[h1, h2])]),
        "300ms",
    ));
    let mut c = connect(addr(port));
    let start = Instant::now();
    assert!(closed_by_peer(&mut c), "the client was not closed");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "two 300 ms connect timeouts, yet closing took {took:?}"
    );
    g.wait_log("no endpoint accepted; client closed");
}

// ---------------------------------------------------------------------------------------------
// Graceful stop

#[test]
fn graceful_stop_lets_open_connections_finish_then_exits() {
    let up = Raw::start(|s, _| echo(s));
    let port = free_port();
    let mut g = Gateway::start(
        &tcp_config(port, 1, "", "upstream = \"back\"", &[("back", &[up.addr])])
            .replace("shutdown_timeout = \"2s\"", "shutdown_timeout = \"10s\""),
    );
    let mut c = connect(addr(port));
    let mut b = [0u8; 5];
    c.write_all(b"hello").unwrap();
    c.read_exact(&mut b).unwrap();
    g.signal(libc::SIGTERM);
    g.wait_log("listeners closed; waiting for open connections");
    poll(WAIT, "the listener to close", || {
        TcpStream::connect(addr(port)).is_err().then_some(())
    });
    // The open connection still forwards while the gateway drains.
    c.write_all(b"again").unwrap();
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"again");
    // Once it closes, the gateway is done: no waiting out shutdown_timeout.
    c.shutdown(Shutdown::Write).unwrap();
    assert!(closed_by_peer(&mut c));
    let start = Instant::now();
    let status = g.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status}\n{}", g.log_text());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn graceful_stop_closes_what_is_left_after_shutdown_timeout() {
    let up = Raw::start(|s, _| echo(s));
    let port = free_port();
    let mut g = Gateway::start(&tcp_config(
        port,
        1,
        "",
        "upstream = \"back\"",
        &[("back", &[up.addr])],
    ));
    let mut c = connect(addr(port));
    let mut b = [0u8; 1];
    c.write_all(b"x").unwrap();
    c.read_exact(&mut b).unwrap();
    let start = Instant::now();
    g.signal(libc::SIGTERM);
    assert!(closed_by_peer(&mut c), "still open after shutdown_timeout");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "shutdown_timeout is 2 s, the connection was closed after {took:?}"
    );
    g.wait_exit(WAIT);
    assert!(
        log_line_has(&g, &["shutdown_timeout passed"]),
        "{}",
        g.log_text()
    );
    poll(WAIT, "the upstream side to close", || {
        (up.finished() == 1).then_some(())
    });
}

// ---------------------------------------------------------------------------------------------
// More PROXY protocol: IPv6, UNKNOWN, split headers, a stalled header

/// One connection through a fresh gateway whose listener has `listener` keys: what the
/// upstream received, the client's port and the listener's.
fn through_fresh(runtime: &str, listener: &str, payload: &[u8]) -> (Vec<u8>, u16, u16) {
    let rec = Recorder::start();
    let port = free_port();
    let _g = Gateway::start(&tcp_config(
        port,
        1,
        runtime,
        &format!("upstream = \"back\"\n{listener}"),
        &[("back", &[rec.addr()])],
    ));
    let (got, cport) = send_through(port, &rec, payload);
    (got, cport, port)
}

#[test]
fn accepted_tcp6_and_unknown_headers() {
    let v1 = format!("proxy_protocol = \"v1\"\n{TRUST_LOOPBACK}");
    let v2 = format!("proxy_protocol = \"v2\"\n{TRUST_LOOPBACK}");
    let (got, _, _) = through_fresh(
        "",
        &v1,
        b"PROXY TCP6 2001:db8::7 2001:db8::1 5555 443\r\npayload",
    );
    assert_eq!(
        String::from_utf8_lossy(&got),
        "PROXY TCP6 2001:db8::7 2001:db8::1 5555 443\r\npayload"
    );
    let (got, _, _) = through_fresh(
        "",
        &v2,
        b"PROXY TCP6 2001:db8::7 2001:db8::1 5555 443\r\npayload",
    );
    let mut want = V2_SIG.to_vec();
    want.extend_from_slice(&[0x21, 0x21, 0x00, 36]);
    want.extend_from_slice(
        &"2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    want.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    want.extend_from_slice(&5555u16.to_be_bytes());
    want.extend_from_slice(&443u16.to_be_bytes());
    want.extend_from_slice(b"payload");
    assert_eq!(got, want);
    // UNKNOWN (and v2 LOCAL): the balancer's own connection; ours are the addresses then.
    let (got, cport, port) = through_fresh("", &v1, b"PROXY UNKNOWN\r\npayload");
    assert_eq!(
        String::from_utf8_lossy(&got),
        format!("PROXY TCP4 127.0.0.1 127.0.0.1 {cport} {port}\r\npayload")
    );
    let mut local = V2_SIG.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    local.extend_from_slice(b"payload");
    let (got, cport, port) = through_fresh("", &v1, &local);
    assert_eq!(
        String::from_utf8_lossy(&got),
        format!("PROXY TCP4 127.0.0.1 127.0.0.1 {cport} {port}\r\npayload")
    );
}

/// Writes `parts` as separate segments, a pause between each, then half-closes.
fn send_in_parts(c: &mut TcpStream, parts: &[&[u8]]) {
    c.set_nodelay(true).unwrap();
    for p in parts {
        c.write_all(p).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    c.shutdown(Shutdown::Write).unwrap();
}

fn split_proxy_headers(runtime: &str) {
    let rec = Recorder::start();
    let port = free_port();
    let _g = Gateway::start(&tcp_config(
        port,
        1,
        runtime,
        &format!("upstream = \"back\"\nproxy_protocol = \"v1\"\n{TRUST_LOOPBACK}"),
        &[("back", &[rec.addr()])],
    ));
    let mut c = connect(addr(port));
    send_in_parts(
        &mut c,
        &[
            b"PROX",
            b"Y TCP4 192.0",
            b".2.7 198.51.100.9 5555 443\r",
            b"\npayload",
        ],
    );
    let _ = read_to_end_or_err(&mut c);
    let mut v2 = v2_header(
        "192.0.2.8:6666".parse().unwrap(),
        "198.51.100.9:443".parse().unwrap(),
    );
    v2.extend_from_slice(b"payload");
    let mut c = connect(addr(port));
    send_in_parts(&mut c, &[&v2[..5], &v2[5..14], &v2[14..20], &v2[20..]]);
    let _ = read_to_end_or_err(&mut c);
    let got = rec.wait(2);
    let got: Vec<String> = got
        .iter()
        .map(|g| String::from_utf8_lossy(g).into())
        .collect();
    assert!(
        got.contains(&"PROXY TCP4 192.0.2.7 198.51.100.9 5555 443\r\npayload".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(&"PROXY TCP4 192.0.2.8 198.51.100.9 6666 443\r\npayload".to_string()),
        "{got:?}"
    );
}

#[test]
fn proxy_headers_split_over_several_writes_are_read_whole() {
    split_proxy_headers("");
}

#[test]
fn proxy_headers_split_over_several_writes_are_read_whole_on_epoll() {
    split_proxy_headers("driver = \"epoll\"");
}

const SHORT_HEADER_TIMEOUT: &str = "[limits]\nclient_header_timeout = \"500ms\"";

#[test]
fn a_stalled_proxy_header_is_closed_after_the_header_timeout() {
    let rec = Recorder::start();
    let port = free_port();
    let mut g = Gateway::start(&tcp_config(
        port,
        1,
        SHORT_HEADER_TIMEOUT,
        &format!("upstream = \"back\"\n{TRUST_LOOPBACK}"),
        &[("back", &[rec.addr()])],
    ));
    let mut c = connect(addr(port));
    c.write_all(b"PROXY TCP4 192.0").unwrap();
    let start = Instant::now();
    assert!(closed_by_peer(&mut c));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    g.wait_log("no PROXY header within the timeout");
    assert_eq!(rec.raw.accepted(), 0);
}

#[test]
fn a_stalled_client_hello_is_closed_after_the_header_timeout() {
    let recs = [Recorder::start(), Recorder::start()];
    let port = free_port();
    let _g = Gateway::start(&tcp_config(
        port,
        1,
        SHORT_HEADER_TIMEOUT,
        r#"sni_routes = { "a.test" = "up_a", "*" = "up_default" }"#,
        &[
            ("up_a", &[recs[0].addr()]),
            ("up_default", &[recs[1].addr()]),
        ],
    ));
    let mut c = connect(addr(port));
    // A TLS handshake record header and the start of a ClientHello, then nothing.
    c.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
        .unwrap();
    let start = Instant::now();
    assert!(closed_by_peer(&mut c));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(recs.iter().all(|r| r.raw.accepted() == 0));
}

// ---------------------------------------------------------------------------------------------
// More SNI: a hello in several records, and behind a PROXY header

/// Re-frames a one-record ClientHello as several records, cut at `cuts` (offsets into the
/// handshake message).
fn rerecord(hello: &[u8], cuts: &[usize]) -> Vec<u8> {
    let hs = &hello[5..];
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(hs.len());
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let part = &hs[w[0]..w[1]];
        out.extend_from_slice(&hello[..3]);
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[test]
fn a_client_hello_in_several_records_cut_inside_the_name_routes() {
    if !have_openssl() {
        return;
    }
    let hello = capture_client_hello("b.test");
    let name_at = hello
        .windows(6)
        .position(|w| w == b"b.test")
        .expect("the name in the hello")
        - 5;
    let framed = rerecord(&hello, &[20, name_at + 3]);
    let (_g, port, recs) = sni_gateway("", true);
    let mut c = connect(addr(port));
    send_in_parts(&mut c, &[&framed[..name_at], &framed[name_at..]]);
    let _ = read_to_end_or_err(&mut c);
    let got = recs[1].wait(1).remove(0);
    assert!(
        got == framed,
        "b.test's upstream did not get the records untouched"
    );
    assert_eq!((recs[0].raw.accepted(), recs[2].raw.accepted()), (0, 0));
}

#[test]
fn sni_routing_behind_an_accepted_proxy_header() {
    if !have_openssl() {
        return;
    }
    let hello = capture_client_hello("b.test");
    let recs = [Recorder::start(), Recorder::start()];
    let port = free_port();
    let _g = Gateway::start(&tcp_config(
        port,
        1,
        "",
        &format!(
            "sni_routes = {{ \"b.test\" = \"up_b\", \"*\" = \"up_default\" }}\n\
             proxy_protocol = \"v1\"\n{TRUST_LOOPBACK}"
        ),
        &[
            ("up_b", &[recs[0].addr()]),
            ("up_default", &[recs[1].addr()]),
        ],
    ));
    let header = b"PROXY TCP4 192.0.2.7 198.51.100.9 5555 443\r\n";
    let mut c = connect(addr(port));
    send_in_parts(&mut c, &[&header[..], &hello[..40], &hello[40..]]);
    let _ = read_to_end_or_err(&mut c);
    let got = recs[0].wait(1).remove(0);
    let mut want = header.to_vec();
    want.extend_from_slice(&hello);
    assert!(
        got == want,
        "b.test's upstream got {} bytes, not header + hello",
        got.len()
    );
    assert_eq!(recs[1].raw.accepted(), 0);
}

// ---------------------------------------------------------------------------------------------
// haproxy on either side of the PROXY protocol

const HAPROXY: &str = "/usr/sbin/haproxy";

/// haproxy in the foreground with `body` after minimal globals; `None` when not installed
/// outside CI. Returns once `port` listens.
fn haproxy(dir: &std::path::Path, body: &str, port: u16) -> Option<Proc> {
    if !std::path::Path::new(HAPROXY).exists() {
        assert!(std::env::var_os("CI").is_none(), "haproxy is missing in CI");
        eprintln!("haproxy not installed; skipping");
        return None;
    }
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 100\ndefaults\n  timeout connect 2s\n  timeout client 10s\n  \
             timeout server 10s\n{body}\n"
        ),
    )
    .unwrap();
    let child = Command::new(HAPROXY)
        .args(["-db", "-f"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let p = Proc(child);
    poll(WAIT, "haproxy to listen", || {
        (listening_sockets(port) > 0).then_some(())
    });
    Some(p)
}

#[test]
fn haproxy_parses_the_headers_we_send() {
    // client --PROXY v1 (192.0.2.7)--> coregate --PROXY vN--> haproxy accept-proxy (http,
    // forwardfor) --> upstream: the upstream sees 192.0.2.7 as the client.
    for version in ["v1", "v2"] {
        let up = Upstream::ok("through haproxy");
        let dir = tempfile::tempdir().unwrap();
        let hport = free_port();
        let Some(_h) = haproxy(
            dir.path(),
            &format!(
                "frontend fe\n  mode http\n  bind 127.0.0.1:{hport} accept-proxy\n  \
                 option forwardfor\n  default_backend be\nbackend be\n  mode http\n  \
                 server s1 {}\n",
                up.addr
            ),
            hport,
        ) else {
            return;
        };
        let port = free_port();
        let _g = Gateway::start(&tcp_config(
            port,
            1,
            "",
            &format!("upstream = \"back\"\nproxy_protocol = \"{version}\"\n{TRUST_LOOPBACK}"),
            &[("back", &[addr(hport)])],
        ));
        let r = roundtrip(
            addr(port),
            b"PROXY TCP4 192.0.2.7 198.51.100.9 5555 443\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"through haproxy"[..]),
            "{version}"
        );
        let got = up.wait_requests(1).remove(0);
        assert_eq!(
            got.header("x-forwarded-for").as_deref(),
            Some("192.0.2.7"),
            "{version}: {}",
            got.head
        );
    }
}

#[test]
fn headers_haproxy_sends_are_accepted() {
    // client --> haproxy (tcp, send-proxy / send-proxy-v2) --> coregate accept_proxy_protocol,
    // proxy_protocol v1 --> recorder: the header names the client's real port.
    for send in ["send-proxy", "send-proxy-v2"] {
        let rec = Recorder::start();
        let port = free_port();
        let _g = Gateway::start(&simple(
            port,
            &format!("proxy_protocol = \"v1\"\n{TRUST_LOOPBACK}"),
            rec.addr(),
        ));
        let dir = tempfile::tempdir().unwrap();
        let hport = free_port();
        let Some(_h) = haproxy(
            dir.path(),
            &format!(
                "listen l4\n  mode tcp\n  bind 127.0.0.1:{hport}\n  \
                 server gw 127.0.0.1:{port} {send}\n"
            ),
            hport,
        ) else {
            return;
        };
        let (got, cport) = send_through(hport, &rec, b"payload");
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("PROXY TCP4 127.0.0.1 127.0.0.1 {cport} {hport}\r\npayload"),
            "{send}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Failures mid-stream

/// The first connection runs `first`; later ones echo (to check the gateway is still well).
fn first_then_echo(
    first: impl Fn(TcpStream) + Send + Sync + Clone + 'static,
) -> impl Fn(TcpStream, usize) + Send + Sync + Clone + 'static {
    move |s, i| if i == 0 { first(s) } else { echo(s) }
}

fn still_forwards(port: u16, mode: &str) {
    let mut c = connect(addr(port));
    c.write_all(b"still alive?").unwrap();
    let mut b = [0u8; 12];
    c.read_exact(&mut b)
        .unwrap_or_else(|e| panic!("{mode}: the gateway no longer forwards: {e}"));
    assert_eq!(&b, b"still alive?");
}

#[test]
fn upstream_reset_mid_upload_fails_the_client() {
    let first = |mut s: TcpStream| {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        if s.read_exact(&mut buf).is_ok() {
            reset(s);
        }
    };
    in_each_mode(first_then_echo(first), |mode, port, _, g| {
        let c = connect(addr(port));
        let mut w = c.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let chunk = vec![7u8; 256 * 1024];
            for _ in 0..256 {
                w.write_all(&chunk)?;
            }
            Ok::<_, std::io::Error>(())
        });
        let mut r = c;
        let read = read_to_end_or_err(&mut r);
        let wrote = writer.join().unwrap();
        assert!(
            wrote.is_err(),
            "{mode}: 64 MiB sent although the upstream died after 1 MiB\n{}",
            g.log_text()
        );
        // The socket reports the reset once: to whichever of the two threads asks first.
        let reset_seen = [wrote.as_ref().err(), read.as_ref().err()]
            .into_iter()
            .flatten()
            .any(|e| e.kind() == ErrorKind::ConnectionReset);
        assert!(
            reset_seen,
            "{mode}: no reset at the client: write {wrote:?}, read {read:?}"
        );
        still_forwards(port, mode);
    });
}

#[test]
fn client_gone_mid_download_fails_the_upstream() {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = Arc::new(Mutex::new(tx));
    let first = move |mut s: TcpStream| {
        s.set_write_timeout(Some(WAIT)).unwrap();
        let chunk = vec![9u8; 256 * 1024];
        let r = (0..1024).try_for_each(|_| s.write_all(&chunk));
        tx.lock().unwrap().send(r.map_err(|e| e.kind())).unwrap();
    };
    in_each_mode(first_then_echo(first), |mode, port, _, _| {
        let mut c = connect(addr(port));
        let mut buf = vec![0u8; 1 << 20];
        c.read_exact(&mut buf).unwrap();
        drop(c); // unread bytes: the close is a reset
        let r = rx.recv_timeout(WAIT).expect("the upstream's writes to end");
        assert!(
            matches!(r, Err(ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)),
            "{mode}: the upstream wrote 256 MiB to a client that left: {r:?}"
        );
        still_forwards(port, mode);
    });
}
