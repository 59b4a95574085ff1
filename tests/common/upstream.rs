//! A scriptable upstream for proxy tests: records the raw bytes of each request it receives and
//! answers as the test says (respond, close, reset, stall, send bad framing).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Head bytes, request line to the blank line included.
    pub head: String,
    /// The raw body bytes as framed on the wire (chunk framing included).
    pub raw_body: Vec<u8>,
    /// The body with chunked framing removed.
    pub body: Vec<u8>,
    /// Index of the connection (in accept order) it came on.
    pub conn: usize,
}

impl Received {
    pub fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }

    /// Values of a header, in order (case-insensitive name).
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }
}

/// What the upstream does with a request.
pub enum Action {
    /// Write these bytes and keep the connection for the next request.
    Send(Vec<u8>),
    /// Write these bytes, then close.
    SendClose(Vec<u8>),
    /// Write these bytes, then reset (RST) the connection.
    SendReset(Vec<u8>),
    /// Close without answering.
    Close,
    /// Write the first bytes, wait, write the rest.
    SendSlow(Vec<u8>, Duration, Vec<u8>),
    /// Say nothing for this long, then close.
    Stall(Duration),
    /// Hand the socket to the test (WebSocket echo and the like), after sending these bytes.
    Takeover(Vec<u8>, Box<dyn FnOnce(TcpStream) + Send>),
}

type Handler = dyn Fn(&Received) -> Action + Send + Sync;

/// A running scripted upstream; stops accepting when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    pub fn start(handler: impl Fn(&Received) -> Action + Send + Sync + 'static) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (a, r, s, c) = (
            accepted.clone(),
            received.clone(),
            stop.clone(),
            closed.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let index = a.fetch_add(1, Ordering::SeqCst);
                let (r, h, c) = (r.clone(), handler.clone(), c.clone());
                std::thread::spawn(move || {
                    serve(conn, index, r, h);
                    c.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Upstream {
            addr,
            accepted,
            closed,
            received,
            stop,
        }
    }

    /// Answers every request with 200 and `body`.
    pub fn ok(body: &'static str) -> Upstream {
        Upstream::start(move |_| Action::Send(response(200, body)))
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections the upstream has closed (its socket dropped).
    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (bounded) until `n` requests have arrived.
    pub fn wait_requests(&self, n: usize) -> Vec<Received> {
        super::poll(super::WAIT, "requests at the upstream", || {
            let r = self.received();
            (r.len() >= n).then_some(r)
        })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
    }
}

/// A one-worker gateway routing everything to `up`, and its port.
pub fn gateway_to(up: &Upstream) -> (super::Gateway, u16) {
    let port = super::free_port();
    (
        super::Gateway::start(&super::basic_config(port, up.addr, 1, "")),
        port,
    )
}

/// A 200-style response with content-length.
pub fn response(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn serve(mut s: TcpStream, conn: usize, log: Arc<Mutex<Vec<Received>>>, handler: Arc<Handler>) {
    s.set_read_timeout(Some(super::WAIT)).unwrap();
    let mut buf = Vec::new();
    loop {
        let Some(req) = read_request(&mut s, &mut buf, conn) else {
            return;
        };
        log.lock().unwrap().push(req.clone());
        let result = match handler(&req) {
            Action::Send(b) => s.write_all(&b),
            Action::SendClose(b) => {
                let _ = s.write_all(&b);
                return;
            }
            Action::SendReset(b) => {
                let _ = s.write_all(&b);
                let _ = s.flush();
                reset(s);
                return;
            }
            Action::Close => return,
            Action::SendSlow(a, wait, b) => {
                let _ = s.write_all(&a);
                std::thread::sleep(wait);
                s.write_all(&b)
            }
            Action::Stall(d) => {
                std::thread::sleep(d);
                return;
            }
            Action::Takeover(b, f) => {
                let _ = s.write_all(&b);
                f(s);
                return;
            }
        };
        if result.is_err() {
            return;
        }
    }
}

/// Closes with SO_LINGER 0, which sends RST.
pub fn reset(s: TcpStream) {
    let sock = socket2::SockRef::from(&s);
    let _ = sock.set_linger(Some(Duration::ZERO));
    drop(s);
}

fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>, conn: usize) -> Option<Received> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if !fill(s, buf) {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    buf.drain(..head_end);
    let lower = head.to_ascii_lowercase();
    let chunked = lower.contains("\r\ntransfer-encoding: chunked");
    let length = lower
        .split("\r\n")
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>().unwrap());
    let mut raw_body = Vec::new();
    let mut body = Vec::new();
    if chunked {
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                if !fill(s, buf) {
                    return None;
                }
            };
            let line = String::from_utf8_lossy(&buf[..line_end]).to_string();
            let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).ok()?;
            raw_body.extend_from_slice(&buf[..line_end + 2]);
            buf.drain(..line_end + 2);
            if size == 0 {
                // trailers until an empty line
                loop {
                    let end = loop {
                        if let Some(i) = find(buf, b"\r\n") {
                            break i;
                        }
                        if !fill(s, buf) {
                            return None;
                        }
                    };
                    raw_body.extend_from_slice(&buf[..end + 2]);
                    buf.drain(..end + 2);
                    if end == 0 {
                        break;
                    }
                }
                break;
            }
            while buf.len() < size + 2 {
                if !fill(s, buf) {
                    return None;
                }
            }
            body.extend_from_slice(&buf[..size]);
            raw_body.extend_from_slice(&buf[..size + 2]);
            buf.drain(..size + 2);
        }
    } else if let Some(n) = length {
        while buf.len() < n {
            if !fill(s, buf) {
                return None;
            }
        }
        body.extend_from_slice(&buf[..n]);
        raw_body = body.clone();
        buf.drain(..n);
    }
    Some(Received {
        head,
        raw_body,
        body,
        conn,
    })
}

fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16384];
    match s.read(&mut chunk) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
