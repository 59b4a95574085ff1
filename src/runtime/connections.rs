//! Per-worker connection accounting: the per-worker cap that pauses accepting, and the drain wait.

use super::notify::Notify;
use std::cell::Cell;
use std::rc::Rc;

/// Counts a worker's open connections, per listener and in total.
pub struct Connections {
    max: usize,
    total: Cell<usize>,
    per_listener: Box<[Cell<usize>]>,
    /// Fired whenever a connection closes.
    closed: Notify,
}

impl Connections {
    pub fn new(max: usize, listeners: usize) -> Rc<Self> {
        Rc::new(Connections {
            max,
            total: Cell::new(0),
            per_listener: (0..listeners).map(|_| Cell::new(0)).collect(),
            closed: Notify::default(),
        })
    }

    pub fn total(&self) -> usize {
        self.total.get()
    }

    /// Open connections accepted on one listener (the `coregate_connections_active` gauge).
    pub fn on_listener(&self, listener: usize) -> usize {
        self.per_listener[listener].get()
    }

    /// Waits while the worker is at its cap: accepting pauses, the kernel backlog holds newcomers.
    pub async fn wait_for_room(&self) {
        while self.total.get() >= self.max {
            self.closed.notified().await;
        }
    }

    /// Waits while `listener` holds `max` or more connections.
    pub async fn wait_for_room_on(&self, listener: usize, max: usize) {
        while self.per_listener[listener].get() >= max {
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
        let c = &self.per_listener[listener];
        c.set(c.get() + 1);
        ConnectionGuard {
            conns: self.clone(),
            listener,
        }
    }
}

/// Held by a connection task for its whole life.
pub struct ConnectionGuard {
    conns: Rc<Connections>,
    listener: usize,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let c = &self.conns;
        c.total.set(c.total.get() - 1);
        let l = &c.per_listener[self.listener];
        l.set(l.get() - 1);
        c.closed.notify_all();
    }
}
