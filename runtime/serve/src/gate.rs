//! Admission to a component: at most `instances` requests run at once, at
//! most `queue` wait for a turn, and the rest are turned away. And the
//! server's instance slots (`--max-instances`), as far as a finished
//! instance needs to know whether another request could start now.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::{Engine, PoolingAllocatorMetrics};

use crate::limits::HttpLimits;
use crate::metrics::ComponentMetrics;

/// One component's admission (shared by its versions while their limits
/// agree), keeping the component's in-flight and queue gauges.
pub struct Gate {
    running: Arc<Semaphore>,
    permits: usize,
    waiting: AtomicU32,
    queue: u32,
    in_flight: Gauge,
    queued: Gauge,
}

/// A turn to run: held until the guest is done.
pub(crate) struct Turn {
    _permit: OwnedSemaphorePermit,
    in_flight: Gauge,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

impl Gate {
    pub(crate) fn new(limits: &HttpLimits, metrics: &ComponentMetrics) -> Self {
        let permits = Self::permits_for(limits);
        Self {
            running: Arc::new(Semaphore::new(permits)),
            permits,
            waiting: AtomicU32::new(0),
            queue: limits.queue,
            in_flight: metrics.in_flight.clone(),
            queued: metrics.queued.clone(),
        }
    }

    /// A turn to run, waiting in the queue until `deadline` at the latest;
    /// `None` if the queue is full or the wait runs out. If the caller stops
    /// waiting (the client went away and its request was dropped), its
    /// place in the queue is given back.
    pub(crate) async fn enter(&self, deadline: Instant) -> Option<Turn> {
        if let Ok(permit) = self.running.clone().try_acquire_owned() {
            return Some(self.turn(permit));
        }
        let _place = self.queue_place()?;
        let permit =
            tokio::time::timeout_at(deadline.into(), self.running.clone().acquire_owned()).await;
        permit
            .ok()
            .and_then(Result::ok)
            .map(|permit| self.turn(permit))
    }

    fn turn(&self, permit: OwnedSemaphorePermit) -> Turn {
        self.in_flight.inc();
        Turn {
            _permit: permit,
            in_flight: self.in_flight.clone(),
        }
    }

    /// A place in the queue, held until the guard drops; `None` if the queue
    /// is full.
    fn queue_place(&self) -> Option<QueuePlace<'_>> {
        self.queued.inc();
        let place = QueuePlace { gate: self };
        // The guard gives the place back even when the queue was full.
        (self.waiting.fetch_add(1, Ordering::AcqRel) < self.queue).then_some(place)
    }

    /// Whether this gate enforces `limits` (so a new version of the
    /// component can share it).
    pub(crate) fn enforces(&self, limits: &HttpLimits) -> bool {
        self.permits == Self::permits_for(limits) && self.queue == limits.queue
    }

    /// Whether a request could take a turn now without waiting.
    pub(crate) fn has_free_turn(&self) -> bool {
        self.running.available_permits() > 0
    }

    /// Requests running now.
    #[cfg(test)]
    fn running(&self) -> usize {
        self.permits - self.running.available_permits()
    }

    fn permits_for(limits: &HttpLimits) -> usize {
        usize::try_from(limits.instances)
            .unwrap_or(Semaphore::MAX_PERMITS)
            .min(Semaphore::MAX_PERMITS)
    }
}

/// The server's instance slots, shared by every component: how many
/// component instances are alive against the most there may be
/// (`--max-instances`).
#[derive(Clone)]
pub(crate) struct Slots {
    /// `None` on an engine without a pool (then there is no such bound).
    live: Option<PoolingAllocatorMetrics>,
    most: u64,
}

impl Slots {
    pub(crate) fn new(engine: &Engine, most: u32) -> Self {
        Self {
            live: engine.pooling_allocator_metrics(),
            most: u64::from(most),
        }
    }

    /// Whether a new instance could be made now.
    pub(crate) fn has_free_slot(&self) -> bool {
        self.live
            .as_ref()
            .is_none_or(|live| live.component_instances() < self.most)
    }
}

/// A request's place in a [`Gate`]'s queue; dropping it leaves the queue.
struct QueuePlace<'a> {
    gate: &'a Gate,
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.gate.waiting.fetch_sub(1, Ordering::AcqRel);
        self.gate.queued.dec();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::Metrics;

    #[tokio::test]
    async fn turns_and_queue_places_are_bounded_and_counted() {
        let metrics = Arc::new(Metrics::default()).component("c");
        let limits = HttpLimits {
            instances: 1,
            queue: 1,
            ..HttpLimits::default()
        };
        let gate = Arc::new(Gate::new(&limits, &metrics));
        let first = gate.enter(Instant::now()).await.expect("a free turn");
        assert_eq!((gate.running(), metrics.in_flight.get()), (1, 1));
        // One may wait; while it does, the next finds the queue full.
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.enter(Instant::now() + Duration::from_secs(30))
                    .await
                    .is_some()
            })
        };
        while metrics.queued.get() != 1 {
            tokio::task::yield_now().await;
        }
        assert!(
            gate.enter(Instant::now() + Duration::from_secs(30))
                .await
                .is_none()
        );
        drop(first);
        assert!(waiter.await.unwrap());
        assert_eq!((gate.running(), metrics.in_flight.get()), (0, 0));
        assert_eq!(metrics.queued.get(), 0);
    }
}
