//! The cap on client connections, shared by every worker, and who gives
//! way at it.
//!
//! A worker takes a [`Place`] for each connection it accepts. At the cap,
//! the client just accepted waits, the worker accepts no other (the
//! kernel's backlog holds them), and work in flight goes on. To make room,
//! the worker asks the oldest idle connection, one with no request in
//! flight, to close; if there is none, the connection whose request has
//! spent longest waiting for its client to send more of its body (at least
//! [`STALLED`] in all, over the body so far) is evicted: its request's
//! body fails (the client gets `408`), and the connection closes. Otherwise the new client waits until
//! a connection closes on its own. A flood of idle connections, or of
//! requests whose bodies drip in, thus cannot keep clients with requests
//! to make out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How long a request must have waited for its client's body, in all, at
/// the cap, before its connection is evicted to make room.
pub(crate) const STALLED: Duration = Duration::from_secs(1);

/// Every open client connection of a server.
pub(crate) struct Connections {
    room: Arc<Semaphore>,
    max: usize,
    /// Told when a connection's last request in flight is done.
    idle: Arc<Notify>,
    /// Open connections, oldest first (with some already closed, pruned as
    /// they are met).
    open: Mutex<VecDeque<Weak<Slot>>>,
    /// When the cap was made: waits are timed from here.
    origin: Instant,
    /// How long a body must have been waited for before its connection may
    /// be evicted ([`STALLED`]).
    stalled: Duration,
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
    /// Since when (in milliseconds after the cap's origin, plus one) a
    /// request on it has been waiting for its client to send more of its
    /// body; 0 while none is.
    body_wait: AtomicU64,
    /// How long (in milliseconds) the request reading its body has waited
    /// for it before the wait under way, if any.
    body_waited: AtomicU64,
    /// Cancelled when the cap evicts the connection: the body being waited
    /// for fails.
    evict: CancellationToken,
    /// The cap's origin.
    origin: Instant,
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
        Self::evicting_after(max, STALLED)
    }

    /// Room for `max` connections, where a body waited for `stalled` may be
    /// evicted.
    fn evicting_after(max: usize, stalled: Duration) -> Self {
        let max = max.max(1);
        Self {
            room: Arc::new(Semaphore::new(max)),
            max,
            idle: Arc::new(Notify::new()),
            open: Mutex::new(VecDeque::new()),
            origin: Instant::now(),
            stalled,
        }
    }

    /// A place for one more connection: at once if there is room, else
    /// once a connection has closed, asking the oldest idle one to, or
    /// evicting a stalled one (again each time one becomes idle, and every
    /// so often while none is, until there is room).
    pub(crate) async fn place(&self) -> Place {
        let permit = loop {
            if let Ok(permit) = self.room.clone().try_acquire_owned() {
                break permit;
            }
            self.make_room();
            tokio::select! {
                permit = self.room.clone().acquire_owned() => {
                    // The semaphore is never closed.
                    if let Ok(permit) = permit {
                        break permit;
                    }
                }
                _ = self.idle.notified() => {}
                // A body that drips in is not an event: look again.
                () = tokio::time::sleep(self.stalled / 2) => {}
            }
        };
        let slot = Arc::new(Slot {
            busy: AtomicUsize::new(0),
            close: Notify::new(),
            idle: self.idle.clone(),
            body_wait: AtomicU64::new(0),
            body_waited: AtomicU64::new(0),
            evict: CancellationToken::new(),
            origin: self.origin,
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

    /// Asks the oldest connection with no request in flight to close; if
    /// there is none, evicts the one whose request has waited longest, and
    /// at least as long as `stalled`, for its client's body.
    fn make_room(&self) {
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
            return;
        }
        let now = self.origin.elapsed();
        let stalled = open
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|slot| !slot.evict.is_cancelled())
            .map(|slot| (slot.waited(now), slot))
            .filter(|(waited, _)| *waited >= self.stalled)
            .max_by_key(|(waited, _)| *waited);
        if let Some((_, slot)) = stalled {
            slot.evict.cancel();
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

    /// What a request on this connection tells the cap while it waits for
    /// its client's body.
    pub(crate) fn body_watch(&self) -> BodyWatch {
        BodyWatch(self.slot.clone())
    }
}

impl Slot {
    /// How long, `now` (after the cap's origin), the request reading its
    /// body has waited for it in all.
    fn waited(&self, now: Duration) -> Duration {
        let before = Duration::from_millis(self.body_waited.load(Ordering::Acquire));
        let current = match self.body_wait.load(Ordering::Acquire) {
            0 => Duration::ZERO,
            since => now.saturating_sub(Duration::from_millis(since - 1)),
        };
        before.saturating_add(current)
    }

    /// Milliseconds since the cap's origin.
    fn now_millis(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }
}

/// A request's view of its connection's place, while it reads its body.
#[derive(Clone)]
pub(crate) struct BodyWatch(Arc<Slot>);

impl BodyWatch {
    /// The request is waiting for the client to send more of its body (a
    /// wait already under way keeps its start).
    pub(crate) fn waiting(&self) {
        let since = self.0.now_millis().saturating_add(1);
        let _ = self
            .0
            .body_wait
            .compare_exchange(0, since, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The client sent more: the wait under way (if any) is over, and
    /// counts in the body's waits.
    pub(crate) fn not_waiting(&self) {
        let since = self.0.body_wait.swap(0, Ordering::AcqRel);
        if since > 0 {
            let waited = self.0.now_millis().saturating_sub(since - 1);
            self.0.body_waited.fetch_add(waited, Ordering::AcqRel);
        }
    }

    /// The body has ended (or is no longer read): nothing is waited for.
    pub(crate) fn done(&self) {
        self.0.body_wait.store(0, Ordering::Release);
        self.0.body_waited.store(0, Ordering::Release);
    }

    /// Resolves when the cap evicts the connection.
    pub(crate) fn evicted(&self) -> WaitForCancellationFutureOwned {
        self.0.evict.clone().cancelled_owned()
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

    #[tokio::test]
    async fn at_the_cap_with_nobody_idle_a_stalled_body_is_evicted() {
        let connections = Connections::evicting_after(2, Duration::from_millis(50));
        let dripping = connections.place().await;
        let _dripping_busy = dripping.busy();
        let working = connections.place().await;
        let _working_busy = working.busy();
        let watch = dripping.body_watch();
        let evicted = watch.evicted();
        watch.waiting();
        // Full, nobody idle: the next place waits; the body that has been
        // waited for longest, past the bound, is evicted.
        let next = connections.place();
        tokio::pin!(next);
        assert!(futures_poll_once(next.as_mut()).is_none());
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            tokio::select! {
                () = evicted => {}
                _ = next.as_mut() => panic!("a place was found without room"),
            }
        })
        .await
        .expect("the stalled body was not evicted");
        // A request that is working (not waiting on its client) is not.
        assert!(!working.slot.evict.is_cancelled());
        drop(dripping);
        next.await;
    }

    #[tokio::test]
    async fn waits_add_up_over_a_body_and_end_with_it() {
        let connections = Connections::evicting_after(1, Duration::from_secs(3600));
        let uploading = connections.place().await;
        let _busy = uploading.busy();
        let watch = uploading.body_watch();
        watch.waiting();
        std::thread::sleep(Duration::from_millis(30));
        watch.not_waiting();
        watch.waiting();
        std::thread::sleep(Duration::from_millis(30));
        watch.not_waiting();
        let now = connections.origin.elapsed();
        let waited = uploading.slot.waited(now);
        assert!(waited >= Duration::from_millis(60), "{waited:?}");
        // Below the bound: not evicted.
        connections.make_room();
        assert!(!uploading.slot.evict.is_cancelled());
        // A body that ended has waited for nothing.
        watch.done();
        assert_eq!(uploading.slot.waited(now), Duration::ZERO);
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
