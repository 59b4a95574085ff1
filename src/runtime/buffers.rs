//! The worker's buffer pool: connections borrow a buffer while data moves and give it back when
//! idle, so idle connections hold no buffer and the steady state allocates nothing.

use std::cell::RefCell;

/// Size of a pooled buffer: a typical request head and a comfortable body chunk.
pub const BUFFER_SIZE: usize = 16 * 1024;
/// Buffers kept for reuse per worker; beyond it returned buffers are freed.
pub const MAX_POOLED_BUFFERS: usize = 1024;

#[derive(Default)]
pub struct BufferPool {
    free: RefCell<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// An empty buffer with at least `BUFFER_SIZE` capacity.
    pub fn take(&self) -> Vec<u8> {
        self.free
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUFFER_SIZE))
    }

    /// Returns a buffer; grown or shrunk ones are dropped so the pool stays uniform.
    pub fn give(&self, mut buf: Vec<u8>) {
        let mut free = self.free.borrow_mut();
        if buf.capacity() == BUFFER_SIZE && free.len() < MAX_POOLED_BUFFERS {
            buf.clear();
            free.push(buf);
        }
    }

    pub fn pooled(&self) -> usize {
        self.free.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_uniform_buffers_only() {
        let p = BufferPool::default();
        let mut a = p.take();
        a.extend_from_slice(b"abc");
        let ptr = a.as_ptr();
        p.give(a);
        let b = p.take();
        assert!(b.is_empty());
        assert_eq!(b.as_ptr(), ptr);
        let mut big = Vec::with_capacity(BUFFER_SIZE);
        big.resize(BUFFER_SIZE + 1, 0);
        p.give(big);
        assert_eq!(p.pooled(), 0);
    }
}
