//! Deadlines: the epoch ticker that drives them, and the deadline each
//! store gets.
//!
//! A guest's CPU time is cut by epoch interruption: a background thread bumps
//! the engine's epoch every [`EPOCH_TICK`], and at each tick a running guest
//! either yields to the other calls on its thread or, past its deadline,
//! traps. Time spent waiting in the host (a sleep, a slow body) is cut by a
//! timer around the whole call, which the caller (the server, a plugin
//! call) sets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::{Engine, Store, Trap, UpdateDeadline};

/// How often the epoch advances: the granularity of deadlines and of the
/// yields that keep a busy guest from starving its neighbours.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

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

/// The background thread that advances an engine's epoch. Stops on drop.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine` every [`EPOCH_TICK`].
    pub(crate) fn start(engine: &Engine) -> std::io::Result<Self> {
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
