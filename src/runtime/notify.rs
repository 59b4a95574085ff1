//! A worker-local notification: tasks wait for the next `notify_all`, with no lock and no channel.
//!
//! Waiters live in a slab so a dropped waiter frees its slot; nothing grows with request count.

use slab::Slab;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Wakes every task waiting at the moment `notify_all` is called.
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    waiters: RefCell<Slab<Waker>>,
}

impl Notify {
    /// Wakes all current waiters.
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        for waker in self.waiters.borrow_mut().drain() {
            waker.wake();
        }
    }

    /// Resolves at the next `notify_all` after this call.
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            generation: self.generation.get(),
            slot: None,
        }
    }
}

/// The future returned by [`Notify::notified`].
pub struct Notified<'a> {
    notify: &'a Notify,
    generation: u64,
    slot: Option<usize>,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.generation {
            self.slot = None; // notify_all drained the slab
            return Poll::Ready(());
        }
        let mut waiters = self.notify.waiters.borrow_mut();
        match self.slot {
            Some(i) => waiters[i].clone_from(cx.waker()),
            None => {
                let i = waiters.insert(cx.waker().clone());
                drop(waiters);
                self.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            if self.notify.generation.get() == self.generation {
                self.notify.waiters.borrow_mut().try_remove(i);
            }
        }
    }
}

/// A one-way latch: once set, every present and future waiter proceeds.
#[derive(Default)]
pub struct Latch {
    set: Cell<bool>,
    notify: Notify,
}

impl Latch {
    pub fn set(&self) {
        if !self.set.replace(true) {
            self.notify.notify_all();
        }
    }

    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Resolves once the latch is set.
    pub async fn wait(&self) {
        while !self.set.get() {
            self.notify.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn latch_wakes_waiters_and_frees_slots() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let latch = Rc::new(Latch::default());
            let l2 = latch.clone();
            let waiter = monoio::spawn(async move {
                l2.wait().await;
                7
            });
            for _ in 0..100 {
                if latch.notify.waiters.borrow().len() == 1 {
                    break;
                }
                monoio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            assert_eq!(latch.notify.waiters.borrow().len(), 1);
            latch.set();
            assert_eq!(waiter.await, 7);
            assert!(latch.notify.waiters.borrow().is_empty());
            latch.wait().await; // already set: returns at once
        });
    }

    #[test]
    fn dropped_waiter_releases_its_slot() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        rt.block_on(async {
            let n = Notify::default();
            for _ in 0..1000 {
                let mut f = Box::pin(n.notified());
                let waker = std::task::Waker::noop();
                assert!(f
                    .as_mut()
                    .poll(&mut Context::from_waker(waker))
                    .is_pending());
            }
            assert!(n.waiters.borrow().is_empty());
        });
    }
}
