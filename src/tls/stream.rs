//! The byte stream the HTTP path reads and writes: a plain TCP socket or TLS over one.
//!
//! An enum with a handful of concrete methods (read into a `Vec`'s spare room, write a range,
//! shut down, wait until readable, split) rather than monoio's generic `AsyncReadRent`: the TLS
//! side then needs no `unsafe` raw-buffer access, and the plain side compiles to exactly the
//! calls it made before. rustls is driven directly (not through monoio-rustls, whose stream
//! hides the session: no peer certificate, no buffered-plaintext check for the idle wait).
//!
//! Ciphertext moves through buffers borrowed from a per-thread pool only while bytes move, so an
//! idle keep-alive TLS connection holds no I/O buffer of ours.

use monoio::buf::IoBufMut;
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use rustls::Connection;
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

/// Ciphertext bytes read per syscall: two full TLS records, so bulk bodies take half the reads.
pub const IO_BUF: usize = 32 * 1024;
/// Spare I/O buffers kept per worker thread; more are freed.
pub const SPARE_BUFS: usize = 256;
/// A buffer that grew past this (a large write) is freed rather than kept.
const MAX_KEPT_BUF: usize = 4 * IO_BUF;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn take_buf() -> Vec<u8> {
    SPARE
        .with(|s| s.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(IO_BUF))
}

fn give_buf(mut b: Vec<u8>) {
    if b.capacity() < IO_BUF || b.capacity() > MAX_KEPT_BUF {
        return;
    }
    b.clear();
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARE_BUFS {
            s.push(b);
        }
    });
}

/// Ciphertext read from the socket that rustls has not taken yet: `buf[pos..]`.
#[derive(Default)]
pub struct Rx {
    buf: Vec<u8>,
    pos: usize,
}

impl Rx {
    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Gives the buffer back to the pool once everything in it was taken.
    fn release_if_empty(&mut self) {
        if self.is_empty() && self.buf.capacity() > 0 {
            give_buf(std::mem::take(&mut self.buf));
            self.pos = 0;
        }
    }

    /// Hands buffered ciphertext to rustls (as much as it takes); returns how much it took.
    fn feed(&mut self, conn: &mut Connection) -> io::Result<usize> {
        if self.is_empty() {
            return Ok(0);
        }
        let mut pending = &self.buf[self.pos..];
        let n = match conn.read_tls(&mut pending) {
            Ok(n) => n,
            // rustls refuses more while plaintext waits to be read: the caller reads it first.
            Err(e) if e.kind() == io::ErrorKind::Other => 0,
            Err(e) => return Err(e),
        };
        self.pos += n;
        self.release_if_empty();
        Ok(n)
    }

    /// Reads more ciphertext from `io`; 0 means the peer closed.
    async fn fill<R: AsyncReadRent>(&mut self, io: &mut R) -> io::Result<usize> {
        debug_assert!(self.is_empty());
        let buf = take_buf();
        let (res, buf) = io.read(buf).await;
        match res {
            Ok(n) if n > 0 => {
                self.buf = buf;
                self.pos = 0;
                Ok(n)
            }
            other => {
                give_buf(buf);
                other
            }
        }
    }
}

/// Access to the rustls session: owned by an unsplit stream, shared by the halves of a split
/// one (both on this thread; a borrow never spans an await).
trait Session {
    fn with<T>(&mut self, f: impl FnOnce(&mut Connection) -> T) -> T;
}

impl Session for Conn {
    fn with<T>(&mut self, f: impl FnOnce(&mut Connection) -> T) -> T {
        f(&mut self.inner)
    }
}

impl Session for Rc<RefCell<Conn>> {
    fn with<T>(&mut self, f: impl FnOnce(&mut Connection) -> T) -> T {
        f(&mut self.borrow_mut().inner)
    }
}

/// A rustls session that says goodbye: dropped while established and not yet closed, it sends
/// close_notify (like nginx's SSL_shutdown; strict clients report a truncation without it).
pub struct Conn {
    inner: Connection,
    /// The socket the session runs on; open for as long as this value lives (see `TlsStream`'s
    /// field order).
    fd: RawFd,
    /// close_notify already went out (a shutdown), or the halves of a split stream own it.
    closed: bool,
}

impl std::ops::Deref for Conn {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.inner
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.inner
    }
}

impl Drop for Conn {
    /// Best effort, never waiting: one non-blocking send of the alert.
    fn drop(&mut self) {
        if self.closed || self.inner.is_handshaking() {
            return;
        }
        self.inner.send_close_notify();
        let mut out = Vec::new();
        while self.inner.wants_write() {
            if self.inner.write_tls(&mut out).is_err() {
                return;
            }
        }
        // SAFETY: send(2) on the socket of this session, still open (`TlsStream` drops its
        // `Conn` before its `TcpStream`), reading `out.len()` initialized bytes of a live Vec;
        // MSG_DONTWAIT never blocks, MSG_NOSIGNAL turns a gone peer into EPIPE, not SIGPIPE.
        let _ = unsafe {
            libc::send(
                self.fd,
                out.as_ptr().cast(),
                out.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
    }
}

/// rustls took no bytes and produced nothing: give up rather than spin.
fn stuck() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "TLS buffer full without progress",
    )
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// What one synchronous look at the session found.
enum Step {
    /// Plaintext was copied (or 0: the peer sent close_notify).
    Done(usize),
    /// More ciphertext is buffered: go round again.
    Again,
    /// rustls needs bytes from the socket.
    Read,
}

/// Appends decrypted bytes to `out` (at most its spare capacity); 0 = end of stream.
async fn read_plain<S: Session, R: AsyncReadRent>(
    s: &mut S,
    io: &mut R,
    rx: &mut Rx,
    out: &mut Vec<u8>,
) -> io::Result<usize> {
    loop {
        let step = s.with(|c| -> io::Result<Step> {
            let fed = rx.feed(c)?;
            let state = c.process_new_packets().map_err(tls_error)?;
            let avail = state.plaintext_bytes_to_read();
            if avail > 0 {
                let len = out.len();
                let n = avail.min(out.capacity() - len);
                out.resize(len + n, 0);
                let got = c.reader().read(&mut out[len..])?;
                out.truncate(len + got);
                return Ok(Step::Done(got));
            }
            if state.peer_has_closed() {
                return Ok(Step::Done(0));
            }
            match (rx.is_empty(), fed) {
                (true, _) => Ok(Step::Read),
                (false, 0) => Err(stuck()),
                (false, _) => Ok(Step::Again),
            }
        })?;
        match step {
            Step::Done(n) => return Ok(n),
            Step::Again => {}
            Step::Read => {
                if rx.fill(io).await? == 0 {
                    // A close without close_notify: end of stream (HTTP framing catches a
                    // truncated message, as every HTTP/1.1 server treats it).
                    return Ok(0);
                }
            }
        }
    }
}

/// Writes whatever rustls has queued (records, alerts, tickets) to `io`.
async fn flush<S: Session, W: AsyncWriteRent>(s: &mut S, io: &mut W) -> io::Result<()> {
    loop {
        let tx = s.with(|c| -> io::Result<Option<Vec<u8>>> {
            if !c.wants_write() {
                return Ok(None);
            }
            let mut tx = take_buf();
            while c.wants_write() {
                c.write_tls(&mut tx)?;
            }
            Ok(Some(tx))
        })?;
        let Some(tx) = tx else { return Ok(()) };
        let (res, tx) = io.write_all(tx).await;
        give_buf(tx);
        res?;
    }
}

/// Encrypts `data` and writes it all; rustls's buffer limit makes large writes go in batches.
async fn write_plain<S: Session, W: AsyncWriteRent>(
    s: &mut S,
    io: &mut W,
    data: &[u8],
) -> io::Result<()> {
    let mut off = 0;
    loop {
        s.with(|c| -> io::Result<()> {
            while off < data.len() {
                let n = c.writer().write(&data[off..])?;
                if n == 0 {
                    break;
                }
                off += n;
            }
            Ok(())
        })?;
        flush(s, io).await?;
        if off >= data.len() {
            return Ok(());
        }
    }
}

/// TLS over a TCP socket, whole (not split).
pub struct TlsStream {
    // Declared before `tcp`, so it drops (and may send close_notify) while the socket is open.
    conn: Conn,
    tcp: TcpStream,
    rx: Rx,
    /// The verified client certificate's subject (mTLS), RFC 4514.
    client_subject: Option<Box<str>>,
}

impl TlsStream {
    pub fn new(tcp: TcpStream, conn: Connection) -> TlsStream {
        TlsStream {
            conn: Conn {
                inner: conn,
                fd: tcp.as_raw_fd(),
                closed: false,
            },
            tcp,
            rx: Rx::default(),
            client_subject: None,
        }
    }

    pub fn session(&self) -> &Connection {
        &self.conn.inner
    }

    pub fn client_subject(&self) -> Option<&str> {
        self.client_subject.as_deref()
    }

    pub fn set_client_subject(&mut self, s: Option<String>) {
        self.client_subject = s.map(String::into_boxed_str);
    }

    /// Runs the handshake to completion; a TLS error sends its alert before returning.
    pub async fn handshake(&mut self) -> io::Result<()> {
        loop {
            flush(&mut self.conn, &mut self.tcp).await?;
            if !self.conn.is_handshaking() {
                return Ok(());
            }
            if self.rx.is_empty() && self.rx.fill(&mut self.tcp).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed during the handshake",
                ));
            }
            let was_empty = self.rx.is_empty();
            let fed = self.rx.feed(&mut self.conn).and_then(|n| {
                self.conn.process_new_packets().map_err(tls_error)?;
                match n {
                    0 if !was_empty && self.conn.is_handshaking() => Err(stuck()),
                    _ => Ok(()),
                }
            });
            if let Err(e) = fed {
                let _ = flush(&mut self.conn, &mut self.tcp).await; // the alert, if any
                return Err(e);
            }
        }
    }
}

/// A client or upstream connection, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    /// Reads into `buf`'s spare capacity (after its length); 0 = end of stream.
    pub async fn read_into(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        match self {
            Stream::Plain(tcp) => {
                let len = buf.len();
                let (res, slice) = tcp.read(buf.slice_mut(len..)).await;
                (res, slice.into_inner())
            }
            Stream::Tls(t) => {
                let mut buf = buf;
                let res = read_plain(&mut t.conn, &mut t.tcp, &mut t.rx, &mut buf).await;
                if res.is_err() {
                    let _ = flush(&mut t.conn, &mut t.tcp).await; // the alert, if any
                }
                (res, buf)
            }
        }
    }

    /// Writes `buf[range]` completely.
    pub async fn write_range(
        &mut self,
        buf: Vec<u8>,
        range: Range<usize>,
    ) -> (io::Result<()>, Vec<u8>) {
        match self {
            Stream::Plain(tcp) => {
                let (res, slice) = tcp.write_all(monoio::buf::IoBuf::slice(buf, range)).await;
                (res.map(|_| ()), slice.into_inner())
            }
            Stream::Tls(t) => {
                let res = write_plain(&mut t.conn, &mut t.tcp, &buf[range]).await;
                (res, buf)
            }
        }
    }

    /// Ends our direction: close_notify over TLS, then a TCP half-close.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.shutdown().await,
            Stream::Tls(t) => {
                t.conn.closed = true;
                t.conn.send_close_notify();
                flush(&mut t.conn, &mut t.tcp).await?;
                t.tcp.shutdown().await
            }
        }
    }

    /// Waits until a read would not block: at once when TLS already holds decrypted or
    /// undecrypted bytes (the socket may have nothing more to say).
    pub async fn readable(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.readable(false).await,
            Stream::Tls(t) => {
                let buffered = !t.rx.is_empty()
                    || t.conn.process_new_packets().map_or(true, |s| {
                        s.plaintext_bytes_to_read() > 0 || s.peer_has_closed()
                    });
                if buffered {
                    return Ok(());
                }
                t.tcp.readable(false).await
            }
        }
    }

    /// Whether the connection arrived over TLS (X-Forwarded-Proto).
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// The verified client certificate's subject, when the client presented one.
    pub fn client_subject(&self) -> Option<&str> {
        match self {
            Stream::Tls(t) => t.client_subject.as_deref(),
            Stream::Plain(_) => None,
        }
    }

    /// Two halves for a tunnel; a TLS session is shared between them.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Plain(tcp) => {
                let (r, w) = tcp.into_split();
                (ReadHalf::Plain(r), WriteHalf::Plain(w))
            }
            Stream::Tls(t) => {
                let TlsStream {
                    mut conn, tcp, rx, ..
                } = *t;
                // The write half's shutdown sends close_notify; a drop must not (the socket may
                // already be closed by the other half).
                conn.closed = true;
                let (r, w) = tcp.into_split();
                let conn = Rc::new(RefCell::new(conn));
                (
                    ReadHalf::Tls {
                        tcp: r,
                        conn: conn.clone(),
                        rx,
                    },
                    WriteHalf::Tls { tcp: w, conn },
                )
            }
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Plain(tcp) => tcp.as_raw_fd(),
            Stream::Tls(t) => t.tcp.as_raw_fd(),
        }
    }
}

impl From<TcpStream> for Stream {
    fn from(tcp: TcpStream) -> Stream {
        Stream::Plain(tcp)
    }
}

/// The reading half of a split stream.
pub enum ReadHalf {
    Plain(OwnedReadHalf<TcpStream>),
    Tls {
        tcp: OwnedReadHalf<TcpStream>,
        conn: Rc<RefCell<Conn>>,
        rx: Rx,
    },
}

impl ReadHalf {
    /// Like `Stream::read_into`.
    pub async fn read_into(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        match self {
            ReadHalf::Plain(r) => {
                let len = buf.len();
                let (res, slice) = r.read(buf.slice_mut(len..)).await;
                (res, slice.into_inner())
            }
            ReadHalf::Tls { tcp, conn, rx } => {
                let mut buf = buf;
                let res = read_plain(conn, tcp, rx, &mut buf).await;
                (res, buf)
            }
        }
    }
}

/// The writing half of a split stream.
pub enum WriteHalf {
    Plain(OwnedWriteHalf<TcpStream>),
    Tls {
        tcp: OwnedWriteHalf<TcpStream>,
        conn: Rc<RefCell<Conn>>,
    },
}

impl WriteHalf {
    pub async fn write_all(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        match self {
            WriteHalf::Plain(w) => {
                let (res, buf) = w.write_all(buf).await;
                (res.map(|_| ()), buf)
            }
            WriteHalf::Tls { tcp, conn } => {
                let res = write_plain(conn, tcp, &buf).await;
                (res, buf)
            }
        }
    }

    /// close_notify over TLS, then a TCP half-close.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            WriteHalf::Plain(w) => w.shutdown().await,
            WriteHalf::Tls { tcp, conn } => {
                conn.borrow_mut().send_close_notify();
                flush(conn, tcp).await?;
                tcp.shutdown().await
            }
        }
    }
}
