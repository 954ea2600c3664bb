//! Every per-request bound in one place: the epoch ticker that drives
//! deadlines, the deadline each store gets, and its memory and table caps.
//!
//! A guest's CPU time is cut by epoch interruption: a background thread bumps
//! the engine's epoch every [`EPOCH_TICK`], and at each tick a running guest
//! either yields to the other requests on its thread or, past its deadline,
//! traps. Time spent waiting in the host (a sleep, a slow body) is cut by a
//! timer around the whole request in the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::{Engine, ResourceLimiter, Store, Trap, UpdateDeadline};

/// How often the epoch advances: the granularity of deadlines and of the
/// yields that keep a busy guest from starving its neighbours.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The bounds each request to a component runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Wall-clock budget of the whole request, guest code and host waits.
    pub timeout: Duration,
    /// Largest linear memory an instance may grow to, in bytes.
    pub max_memory_bytes: usize,
    /// Largest table an instance may grow to, in elements.
    pub max_table_elements: usize,
    /// Most host resources (streams, fields, requests...) an instance may
    /// hold at once.
    pub max_resources: usize,
    /// Most instances of the component running at once.
    pub instances: u32,
    /// Most requests waiting for an instance; beyond it, 503.
    pub queue: u32,
    /// Largest request body, in bytes; beyond it, 413.
    pub max_request_body: u64,
    /// Most headers a response may carry; beyond it, 502.
    pub max_response_headers: usize,
    /// Fuel (roughly, WebAssembly instructions) per request, if metered.
    pub fuel: Option<u64>,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            max_memory_bytes: 256 << 20,
            max_table_elements: 20_000,
            max_resources: 1_000,
            instances: 200,
            queue: 1_000,
            max_request_body: 256 << 20,
            max_response_headers: 200,
            fuel: None,
        }
    }
}

impl RequestLimits {
    /// The [`Limiter`] to put in a new store's state.
    pub fn limiter(&self) -> Limiter {
        Limiter {
            memory: self.max_memory_bytes,
            table_elements: self.max_table_elements,
            memory_refused: false,
        }
    }

    /// Arms the CPU deadline of `store`: from now, the guest yields at every
    /// epoch tick, and traps with [`Trap::Interrupt`] once `deadline` has
    /// passed.
    pub fn arm_deadline<T: 'static>(store: &mut Store<T>, deadline: Instant) {
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
    }
}

/// A store's memory and table caps. Growth past a cap fails inside the
/// guest (as running out of memory would); the limiter remembers that it
/// refused, so that a trap that follows can be reported as what it is.
#[derive(Debug)]
pub struct Limiter {
    memory: usize,
    table_elements: usize,
    memory_refused: bool,
}

impl Limiter {
    /// Whether a memory growth was refused in this store.
    pub fn memory_refused(&self) -> bool {
        self.memory_refused
    }

    /// The memory cap, in bytes.
    pub fn memory_limit(&self) -> usize {
        self.memory
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.memory_refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }
}

/// The background thread that advances an engine's epoch. Stops on drop.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine` every [`EPOCH_TICK`].
    pub fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let thread = std::thread::Builder::new()
            .name("mayfly-epoch".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
