//! How a guest's run ended, what that counts as, and what the operator is
//! told.

use mayfly_host_api::escape::escape_capped;
use mayfly_host_api::report::MESSAGE_CAP;
use mayfly_sandbox::LimitKind;
use mayfly_sandbox::failure;
use mayfly_sandbox::limiter::Limiter;
use wasmtime::{PoolConcurrencyLimitError, Trap};

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
    /// Why (bounded: it goes in the client's answer), and the limit it hit
    /// if it died of one.
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
            None => Outcome::Trapped(
                format!("host error: {}", failure::reason(err, ANSWER_CAP)),
                limit,
            ),
        }
    }
}

/// The most of a guest's own text (an error code's message, a trap's
/// reason) an answer to the client quotes, in bytes.
pub(super) const ANSWER_CAP: usize = 1 << 10;

/// `text` from a guest, escaped and cut to fit an answer to the client.
pub(super) fn quoted(text: &str) -> String {
    escape_capped(text, ANSWER_CAP)
}

/// A warning about one request to `component`, escaped and cut to
/// [`MESSAGE_CAP`].
pub(super) fn report(component: &LoadedComponent, request: &str, message: &str) {
    let message = escape_capped(message, MESSAGE_CAP);
    tracing::warn!(
        component = component.name(),
        request_id = request,
        "{message}"
    );
}
