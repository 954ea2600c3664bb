//! How a guest's run ended, what that counts as, and what the operator is
//! told.

use mayfly_sandbox::LimitKind;
use mayfly_sandbox::limiter::Limiter;
use wasmtime::{PoolConcurrencyLimitError, Trap, WasmBacktrace};

use crate::component::LoadedComponent;

/// Counts a run that did not finish cleanly in the component's metrics.
pub(super) fn count(component: &LoadedComponent, outcome: &Outcome) {
    let metrics = &component.metrics;
    match outcome {
        Outcome::Finished => {}
        Outcome::DeadlineExceeded => metrics.limit(LimitKind::Deadline),
        Outcome::Overloaded => metrics.limit(LimitKind::InstanceSlots),
        Outcome::Trapped(_, limit) => {
            metrics.trap();
            if let Some(kind) = limit {
                metrics.limit(*kind);
            }
        }
    }
}

/// How a guest's run ended. Failures are logged where they happen, since the
/// response may already be on its way to the client.
pub(super) enum Outcome {
    Finished,
    /// Why, and the limit it hit if it died of one.
    Trapped(String, Option<LimitKind>),
    DeadlineExceeded,
    /// Every instance slot of the engine was in use.
    Overloaded,
}

impl Outcome {
    pub(super) fn of(err: &wasmtime::Error, limiter: &Limiter) -> Self {
        if err.is::<PoolConcurrencyLimitError>() {
            return Outcome::Overloaded;
        }
        let limit = mayfly_sandbox::limiter::limit_hit(err, Some(limiter));
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Outcome::DeadlineExceeded,
            Some(trap) => Outcome::Trapped(trap.to_string(), limit),
            // A host call refused the guest (a full resource table, an
            // oversized header block...): the reason, without the backtrace.
            None => {
                let backtrace = usize::from(err.downcast_ref::<WasmBacktrace>().is_some());
                let reasons: Vec<String> = err
                    .chain()
                    .skip(backtrace)
                    .map(ToString::to_string)
                    .collect();
                Outcome::Trapped(format!("host error: {}", reasons.join(": ")), limit)
            }
        }
    }
}

/// A warning about one request to `component`.
pub(super) fn report(component: &LoadedComponent, request: &str, message: &str) {
    tracing::warn!(
        component = component.name(),
        request_id = request,
        "{message}"
    );
}
