//! After `101 Switching Protocols`: a two-way byte tunnel between client and upstream
//! (WebSocket and friends). Each direction ends with a half-close of the other side, so a
//! peer's FIN travels through; the tunnel ends when both directions have.

use super::buffered::Buffered;
use crate::runtime::buffers::BufferPool;
use crate::tls::stream::{ReadHalf, WriteHalf};
use std::rc::Rc;

/// Runs the tunnel until both directions are done; bytes already buffered go first.
pub async fn run(mut client: Buffered, mut upstream: Buffered, pool: Rc<BufferPool>) {
    // Bytes that arrived behind the heads belong to the new protocol.
    let n = client.buffered().len();
    if client.forward(n, &mut upstream.stream).await.is_err() {
        return;
    }
    let n = upstream.buffered().len();
    if upstream.forward(n, &mut client.stream).await.is_err() {
        return;
    }
    for b in [client.reclaim(), upstream.reclaim()].into_iter().flatten() {
        pool.give(b);
    }
    let (cr, cw) = client.stream.into_split();
    let (ur, uw) = upstream.stream.into_split();
    let up = monoio::spawn(pump(cr, uw, pool.clone()));
    pump(ur, cw, pool).await;
    up.await;
}

/// Copies one direction until EOF or error, then half-closes the writer.
async fn pump(mut from: ReadHalf, mut to: WriteHalf, pool: Rc<BufferPool>) {
    let mut buf = pool.take();
    loop {
        buf.clear();
        let (res, b) = from.read_into(buf).await;
        buf = b;
        match res {
            Ok(n) if n > 0 => {
                let (res, b) = to.write_all(buf).await;
                buf = b;
                if res.is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
    let _ = to.shutdown().await;
    pool.give(buf);
}
