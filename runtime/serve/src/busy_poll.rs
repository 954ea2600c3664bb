//! Busy polling: after a request, a worker keeps polling its sockets for a
//! short while before it sleeps, so that the next request of a busy
//! connection is picked up at once instead of after a wake-up.
//!
//! On this kind of machine (virtual CPUs, shared hosts) a worker that goes
//! to sleep between requests pays twice for it when the next one comes: the
//! kernel has to wake its CPU, and the request then runs on cold caches. At
//! one connection that doubled the CPU time a request took and halved
//! throughput (see BENCHMARKS.md, "One connection"). Polling a few tens of
//! microseconds longer keeps the thread on its CPU through the client's
//! turn.
//!
//! The window adapts, as the kernel's halt polling does: a poll that ends
//! with nothing arriving halves the next window (down to none), and a
//! request that arrives soon after polling gave up doubles it again (up to
//! the configured most). Sparse traffic costs no more than a few short
//! polls before the worker stops polling altogether; steady traffic keeps
//! the whole window.
//!
//! Polling is a task on the worker's own event loop that yields until its
//! window has passed: other tasks run first, and each turn the event loop
//! checks its sockets without blocking.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The shortest window worth polling; below it, none.
const SHORTEST: Duration = Duration::from_micros(5);

/// One worker's busy polling. Shared by the worker's connections, which
/// report each request's start and end.
pub(crate) struct BusyPoll {
    /// The most this worker polls after its last request event.
    most: Duration,
    /// When the last request started or ended.
    last: Cell<Instant>,
    /// When the first request since the polling task last looked started.
    arrived: Cell<Option<Instant>>,
    /// Wakes the polling task when a request starts or ends.
    event: Notify,
}

impl BusyPoll {
    /// Busy polling for up to `most` after each request; `None` if `most`
    /// is zero (it is off).
    pub(crate) fn new(most: Duration) -> Option<Rc<Self>> {
        (!most.is_zero()).then(|| {
            Rc::new(Self {
                most,
                last: Cell::new(Instant::now()),
                arrived: Cell::new(None),
                event: Notify::new(),
            })
        })
    }

    /// A request started on this worker.
    pub(crate) fn started(&self) {
        let now = Instant::now();
        self.last.set(now);
        if self.arrived.get().is_none() {
            self.arrived.set(Some(now));
        }
        self.event.notify_one();
    }

    /// A request ended on this worker.
    pub(crate) fn ended(&self) {
        self.last.set(Instant::now());
        self.event.notify_one();
    }

    /// Polls after each request event, within the adaptive window, for as
    /// long as the worker's event loop runs. Spawn it on the worker's
    /// `LocalSet`.
    pub(crate) async fn run(self: Rc<Self>) {
        let mut window = Window::new(self.most);
        loop {
            self.event.notified().await;
            if let Some(arrived) = self.arrived.take() {
                window.request_came(arrived);
            }
            if let Some(length) = window.length() {
                while self.last.get().elapsed() < length {
                    tokio::task::yield_now().await;
                    // A request that came while polling was caught: it says
                    // nothing about the window.
                    self.arrived.take();
                }
            }
            window.gave_up(Instant::now());
        }
    }
}

/// The adaptive polling window.
#[derive(Debug)]
struct Window {
    most: Duration,
    length: Duration,
    /// When polling last gave up (or, polling off, the worker went to
    /// sleep), if no request has come since.
    gave_up: Option<Instant>,
}

impl Window {
    fn new(most: Duration) -> Self {
        Self {
            most,
            length: most,
            gave_up: None,
        }
    }

    /// How long to poll now; `None`: not at all.
    fn length(&self) -> Option<Duration> {
        (!self.length.is_zero()).then_some(self.length)
    }

    /// The worker stopped polling at `at`, with nothing arriving.
    fn gave_up(&mut self, at: Instant) {
        self.gave_up = Some(at);
    }

    /// The first request after polling gave up started at `at`. If it came
    /// within the most window, a longer poll would have caught it: double
    /// the window. If not, polling was wasted: halve it (below the
    /// shortest worth polling, stop polling).
    fn request_came(&mut self, at: Instant) {
        let Some(gave_up) = self.gave_up.take() else {
            return;
        };
        if at.saturating_duration_since(gave_up) <= self.most {
            self.length = (self.length * 2).clamp(SHORTEST, self.most);
        } else {
            self.length /= 2;
            if self.length < SHORTEST {
                self.length = Duration::ZERO;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOST: Duration = Duration::from_micros(100);

    /// `window`'s lengths as polling gives up at each request and the next
    /// comes `gap` later, `requests` times.
    fn lengths(window: &mut Window, gap: Duration, requests: usize) -> Vec<Duration> {
        let mut at = Instant::now();
        let mut lengths = Vec::new();
        for _ in 0..requests {
            let polled = window.length().unwrap_or_default();
            lengths.push(polled);
            window.gave_up(at + polled);
            at += polled + gap;
            window.request_came(at);
        }
        lengths
    }

    #[test]
    fn requests_soon_after_polling_keep_the_whole_window() {
        let mut window = Window::new(MOST);
        let lengths = lengths(&mut window, Duration::from_micros(30), 10);
        assert_eq!(lengths, vec![MOST; 10]);
        assert_eq!(window.length(), Some(MOST));
    }

    #[test]
    fn sparse_requests_stop_polling_and_close_ones_start_it_again() {
        let mut window = Window::new(MOST);
        let sparse = lengths(&mut window, Duration::from_millis(10), 8);
        let us = |n: u64| Duration::from_nanos(n);
        assert_eq!(
            sparse,
            [
                us(100_000),
                us(50_000),
                us(25_000),
                us(12_500),
                us(6_250),
                Duration::ZERO,
                Duration::ZERO,
                Duration::ZERO
            ]
        );
        assert_eq!(window.length(), None);

        // Requests 40 µs apart: the window doubles back to the most.
        let close = lengths(&mut window, Duration::from_micros(40), 8);
        assert_eq!(close[..2], [Duration::ZERO, SHORTEST]);
        assert_eq!(close.last(), Some(&MOST), "{close:?}");
    }
}
