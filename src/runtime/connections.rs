//! Per-worker connection accounting: the per-worker cap that pauses accepting, per-listener
//! counts (and their caps), and the drain wait.
//!
//! A listener's counter is a shared cell that the connection's guard holds, so a reload that
//! renumbers listeners only re-maps counters; connections opened under the old config still
//! count against (and release) the right listener.

use super::notify::Notify;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Counts a worker's open connections, per listener and in total.
pub struct Connections {
    max: usize,
    total: Cell<usize>,
    /// Indexed by the current config's listener index.
    per_listener: RefCell<Vec<Rc<Cell<usize>>>>,
    /// Fired whenever a connection closes.
    closed: Notify,
}

impl Connections {
    pub fn new(max: usize, listeners: usize) -> Rc<Self> {
        Rc::new(Connections {
            max,
            total: Cell::new(0),
            per_listener: RefCell::new((0..listeners).map(|_| Rc::default()).collect()),
            closed: Notify::default(),
        })
    }

    pub fn total(&self) -> usize {
        self.total.get()
    }

    /// Open connections accepted on one listener (the `coregate_connections_active` gauge).
    pub fn on_listener(&self, listener: usize) -> usize {
        self.per_listener
            .borrow()
            .get(listener)
            .map_or(0, |c| c.get())
    }

    /// After a reload: `kept[new] = Some(old)` carries a listener's count over; new ones start at 0.
    pub fn remap(&self, kept: &[Option<usize>]) {
        let mut per = self.per_listener.borrow_mut();
        let next = kept
            .iter()
            .map(|k| k.and_then(|old| per.get(old).cloned()).unwrap_or_default())
            .collect();
        *per = next;
    }

    /// Waits while the worker is at its cap: accepting pauses, the kernel backlog holds newcomers.
    pub async fn wait_for_room(&self) {
        while self.total.get() >= self.max {
            self.closed.notified().await;
        }
    }

    /// Waits while `listener` holds `max` or more connections.
    pub async fn wait_for_room_on(&self, listener: usize, max: usize) {
        while self.on_listener(listener) >= max {
            self.closed.notified().await;
        }
    }

    /// Waits until every connection has closed.
    pub async fn wait_idle(&self) {
        while self.total.get() > 0 {
            self.closed.notified().await;
        }
    }

    /// Registers an accepted connection; the guard unregisters it when dropped.
    pub fn open(self: &Rc<Self>, listener: usize) -> ConnectionGuard {
        self.total.set(self.total.get() + 1);
        let counter = self.per_listener.borrow()[listener].clone();
        counter.set(counter.get() + 1);
        ConnectionGuard {
            conns: self.clone(),
            counter,
        }
    }
}

/// Held by a connection task for its whole life.
pub struct ConnectionGuard {
    conns: Rc<Connections>,
    counter: Rc<Cell<usize>>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let c = &self.conns;
        c.total.set(c.total.get() - 1);
        self.counter.set(self.counter.get() - 1);
        c.closed.notify_all();
    }
}
