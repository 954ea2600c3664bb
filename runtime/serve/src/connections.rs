//! The cap on client connections, shared by every worker, and who gives
//! way at it.
//!
//! A worker takes a [`Place`] for each connection it accepts. At the cap,
//! the client just accepted waits, the worker accepts no other (the
//! kernel's backlog holds them), and work in flight goes on. To make room,
//! the worker asks the oldest idle connection, one with no request in
//! flight, to close; if there is none, the new client waits until a
//! connection closes on its own. A flood of idle connections
//! thus cannot keep clients with requests to make out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Every open client connection of a server.
pub(crate) struct Connections {
    room: Arc<Semaphore>,
    max: usize,
    /// Told when a connection's last request in flight is done.
    idle: Arc<Notify>,
    /// Open connections, oldest first (with some already closed, pruned as
    /// they are met).
    open: Mutex<VecDeque<Weak<Slot>>>,
}

/// One connection's place under the cap, held for as long as it is open.
pub(crate) struct Place {
    slot: Arc<Slot>,
    _permit: OwnedSemaphorePermit,
}

/// What the cap knows of one connection.
struct Slot {
    /// Requests in flight on it.
    busy: AtomicUsize,
    /// Asks it to close once idle.
    close: Notify,
    /// The cap's [`Connections::idle`].
    idle: Arc<Notify>,
}

/// A request in flight on a connection, while this lives.
pub(crate) struct Busy(Arc<Slot>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Idle now: a client waiting at the cap may have its place.
            self.0.idle.notify_one();
        }
    }
}

impl Connections {
    /// Room for `max` connections (at least one).
    pub(crate) fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            room: Arc::new(Semaphore::new(max)),
            max,
            idle: Arc::new(Notify::new()),
            open: Mutex::new(VecDeque::new()),
        }
    }

    /// A place for one more connection: at once if there is room, else
    /// once a connection has closed, asking the oldest idle one to (again
    /// each time one becomes idle, until there is room).
    pub(crate) async fn place(&self) -> Place {
        let permit = loop {
            if let Ok(permit) = self.room.clone().try_acquire_owned() {
                break permit;
            }
            self.close_oldest_idle();
            tokio::select! {
                permit = self.room.clone().acquire_owned() => {
                    // The semaphore is never closed.
                    if let Ok(permit) = permit {
                        break permit;
                    }
                }
                _ = self.idle.notified() => {}
            }
        };
        let slot = Arc::new(Slot {
            busy: AtomicUsize::new(0),
            close: Notify::new(),
            idle: self.idle.clone(),
        });
        let mut open = self.lock();
        // Closed connections are dropped from the front as evictions meet
        // them; the rest are pruned here, so the list stays near the cap.
        if open.len() >= self.max.saturating_mul(2) {
            open.retain(|slot| slot.strong_count() > 0);
        }
        open.push_back(Arc::downgrade(&slot));
        Place {
            slot,
            _permit: permit,
        }
    }

    /// Asks the oldest connection with no request in flight to close.
    fn close_oldest_idle(&self) {
        let mut open = self.lock();
        while open.front().is_some_and(|slot| slot.strong_count() == 0) {
            open.pop_front();
        }
        let idle = open.iter().position(|slot| {
            slot.upgrade()
                .is_some_and(|slot| slot.busy.load(Ordering::Acquire) == 0)
        });
        if let Some(slot) = idle.and_then(|index| open.remove(index)?.upgrade()) {
            slot.close.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Weak<Slot>>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Place {
    /// Marks a request in flight on this connection until the guard drops.
    pub(crate) fn busy(&self) -> Busy {
        self.slot.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.slot.clone())
    }

    /// Resolves when the cap needs this connection to close.
    pub(crate) async fn asked_to_close(&self) {
        self.slot.close.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_the_oldest_idle_connection_is_asked_to_close() {
        let connections = Connections::new(2);
        let oldest = connections.place().await;
        let busy_one = connections.place().await;
        let _busy = busy_one.busy();
        // Full: the next place asks the oldest idle one to close...
        let third = connections.place();
        tokio::pin!(third);
        assert!(futures_poll_once(third.as_mut()).is_none());
        tokio::time::timeout(std::time::Duration::from_secs(5), oldest.asked_to_close())
            .await
            .expect("the idle connection was not asked to close");
        // ...and gets its place once it has.
        drop(oldest);
        third.await;
    }

    #[tokio::test]
    async fn a_connection_that_becomes_idle_at_the_cap_is_asked_to_close() {
        let connections = Connections::new(1);
        let only = connections.place().await;
        let busy = only.busy();
        let next = connections.place();
        tokio::pin!(next);
        // Busy: nobody is asked to close, the next client waits...
        assert!(futures_poll_once(next.as_mut()).is_none());
        // ...until its request is done: then it is asked to.
        drop(busy);
        assert!(futures_poll_once(next.as_mut()).is_none());
        tokio::time::timeout(std::time::Duration::from_secs(5), only.asked_to_close())
            .await
            .expect("the connection that became idle was not asked to close");
        drop(only);
        next.await;
    }

    /// Polls `future` once.
    fn futures_poll_once<F: std::future::Future>(
        future: std::pin::Pin<&mut F>,
    ) -> Option<F::Output> {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.poll(&mut context) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        }
    }
}
