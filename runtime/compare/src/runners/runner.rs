//! What a runner is: a way to run the workload once in a fresh isolate,
//! and what one call did.

use std::time::Duration;

/// What one call did, with its start-up breakdown. The phases follow one
/// another: `create`, `start`, `run`, `teardown`; `first_byte` counts from
/// the call's beginning.
#[derive(Debug, Clone, Default)]
pub struct Call {
    /// Its standard output.
    pub stdout: String,
    /// How it ended: `ok`, `exit N`, `trap: ...`, `deadline`, `killed`.
    pub ended: String,
    /// Creating the isolate: instantiating; fork and exec (with the
    /// namespaces set up); `runc create`.
    pub create: Duration,
    /// Starting the created isolate, where that is a step of its own
    /// (`runc start`); zero otherwise.
    pub start: Duration,
    /// From the call's beginning to the first byte of output (zero if it
    /// printed nothing).
    pub first_byte: Duration,
    /// From started to the workload's end (its output closed).
    pub run: Duration,
    /// From the workload's end until the isolate is gone: the store
    /// dropped, the process reaped, the container deleted.
    pub teardown: Duration,
    /// The largest resident memory seen while it ran, in KiB, when it runs
    /// as a process (sampled from /proc; 0 if it ended before a sample).
    pub rss_kib: u64,
}

/// A way to run the workload.
pub trait Runner: Send + Sync {
    /// Runs the workload once with `args`, in a fresh isolate, stopping it
    /// at `deadline`.
    fn call(&self, args: &[String], deadline: Duration) -> anyhow::Result<Call>;
}
