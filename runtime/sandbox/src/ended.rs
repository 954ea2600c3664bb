//! How a call into a guest ended, told once for every caller: `mayfly
//! serve` turns it into an HTTP status, a plugin call into a
//! `PluginError`, `mayfly run` into an exit status, `mayfly compare` into a
//! row. Each maps [`Ended`] to its own surface; none looks at wasmtime's
//! errors itself.
//!
//! A failure keeps its error ([`Failure::error`]) for a caller that knows
//! more of it (a plugin host's own error type, say); everything that shows
//! a failure as text goes through [`failure`], bounded.

use mayfly_host_api::escape::escape_capped;
use wasmtime::{PoolConcurrencyLimitError, Trap};

use crate::failure;
use crate::limiter::Limiter;
use crate::limits::{LimitKind, StoreLimits};

/// How a call ended.
#[derive(Debug)]
pub enum Ended {
    /// It returned.
    Finished,
    /// A command exited with this status (`wasi:cli/exit`).
    Exited(i32),
    /// It ran, or waited, past its deadline.
    Deadline,
    /// Every instance slot of the engine was in use: it never started.
    PoolFull,
    /// It hit one of its store's limits (`limit` is the limit's value: bytes,
    /// elements, fuel units or resources), and failed of it.
    Limit {
        /// Which limit.
        kind: LimitKind,
        /// Its value.
        limit: u64,
        /// What the guest did when it hit it (trapped, most often).
        failure: Failure,
    },
    /// It trapped, or a host function it called failed.
    Failed(Failure),
}

/// A failed call: its error, kept whole, and bounded texts of it.
#[derive(Debug)]
pub struct Failure(wasmtime::Error);

impl Ended {
    /// How a call that failed with `err` ended, its store having run under
    /// `limits` with `limiter` (if the store is still there to ask: a guest
    /// refused memory or table space has, in all likelihood, died of it).
    pub fn failed(err: wasmtime::Error, limits: &StoreLimits, limiter: Option<&Limiter>) -> Self {
        if err.is::<PoolConcurrencyLimitError>() {
            return Ended::PoolFull;
        }
        if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return Ended::Exited(exit.0);
        }
        if matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            return Ended::Deadline;
        }
        let failure = Failure(err);
        match crate::limiter::limit_hit(&failure.0, limiter) {
            Some(kind) => Ended::Limit {
                kind,
                limit: limits.value_of(kind),
                failure,
            },
            None => Ended::Failed(failure),
        }
    }

    /// The limit it hit, if it hit one (the deadline among them).
    pub fn limit(&self) -> Option<LimitKind> {
        match self {
            Ended::Deadline => Some(LimitKind::Deadline),
            Ended::Limit { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The failure, if it failed.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Ended::Limit { failure, .. } | Ended::Failed(failure) => Some(failure),
            _ => None,
        }
    }

    /// Why it failed, in a few words and at most `cap` bytes, escaped: the
    /// limit and what it caused (`memory limit of 256MiB reached (wasm
    /// trap: ...)`), the trap, or the host's refusal (`host error: ...`).
    /// Empty for a call that did not fail.
    pub fn reason(&self, cap: usize) -> String {
        match self {
            Ended::Finished => String::new(),
            Ended::Exited(code) => format!("exited with status {code}"),
            Ended::Deadline => "deadline exceeded".to_string(),
            Ended::PoolFull => "every instance slot is in use".to_string(),
            Ended::Limit {
                kind,
                limit,
                failure,
            } if let Some(reached) = kind.reached(*limit) => {
                format!("{reached} ({})", failure.reason(cap))
            }
            Ended::Limit { failure, .. } | Ended::Failed(failure) => failure.reason(cap),
        }
    }

    /// What the operator's log says of a failure: the limit it hit, if it
    /// hit one, then [`Failure::describe`] (`memory limit of 256MiB
    /// reached: wasm trap: ...` and the backtrace). `None` for a call that
    /// did not fail.
    pub fn describe(&self) -> Option<String> {
        let failure = self.failure()?;
        Some(match self {
            Ended::Limit { kind, limit, .. } if let Some(reached) = kind.reached(*limit) => {
                format!("{reached}: {}", failure.describe())
            }
            _ => failure.describe(),
        })
    }
}

impl Failure {
    /// The error, whole (for a caller that knows more kinds of it).
    pub fn error(&self) -> &wasmtime::Error {
        &self.0
    }

    /// The trap, if it trapped (and was not stopped by its deadline).
    pub fn trap(&self) -> Option<&Trap> {
        self.0.downcast_ref::<Trap>()
    }

    /// Why, in at most `cap` bytes, escaped: the trap, or `host error: `
    /// and the chain of the host's refusal.
    pub fn reason(&self, cap: usize) -> String {
        match self.trap() {
            Some(trap) => escape_capped(&trap.to_string(), cap),
            None => format!("host error: {}", failure::reason(&self.0, cap)),
        }
    }

    /// The guest's wasm backtrace, bounded (see [`failure::backtrace`]).
    pub fn backtrace(&self) -> Option<String> {
        self.0
            .downcast_ref::<wasmtime::WasmBacktrace>()
            .map(failure::backtrace)
            .filter(|text| !text.is_empty())
    }

    /// What the operator's log says of it: the reason and the backtrace,
    /// within [`failure::LOG_CAP`].
    pub fn describe(&self) -> String {
        failure::describe(&self.0)
    }
}
