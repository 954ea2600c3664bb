//! The third step: the guest, in a local task of its own, bounded by the
//! deadline. How it ended is counted and logged here, once; the store, the
//! turn and the guard go when the guest is done and its response is in
//! hyper's hands.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mayfly_host_api::escape::escape_capped;
use mayfly_host_api::report::MESSAGE_CAP;
use mayfly_sandbox::Ended;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::body::{ClientFault, Shared};
use super::gather::give_way;
use super::prepare::Guest;
use crate::component::LoadedComponent;
use crate::gate::Turn;
use crate::limits::Limit;
use crate::metrics::ClientTimeout;

/// The guest's task, as the answer sees it.
pub(super) struct Running {
    /// How the guest ended.
    pub(super) ended: JoinHandle<Ended>,
    /// Sent (or dropped) once the response is in hyper's hands: with a
    /// body the guest has finished, hyper writes it in the same turn.
    pub(super) hand_over: oneshot::Sender<()>,
    pub(super) shared: Arc<Shared>,
    pub(super) request_id: Arc<str>,
    /// The request's budget: from arrival to its deadline.
    pub(super) budget: Duration,
}

/// Runs `guest` in a task of its own, holding `turn` and `guard` until it
/// is done.
pub(super) fn spawn<G: 'static>(
    component: &Arc<LoadedComponent>,
    guest: Guest,
    turn: Turn,
    guard: G,
    arrived: Instant,
) -> Running {
    let Guest {
        mut store,
        invocation,
        log,
        deadline,
        shared,
        request_id,
    } = guest;
    let budget = deadline.saturating_duration_since(arrived);
    let (hand_over, handed_over) = oneshot::channel::<()>();
    let component = component.clone();
    let task_shared = shared.clone();
    let task_request_id = request_id.clone();
    let ended = tokio::task::spawn_local(async move {
        let request_id = task_request_id;
        let run = invocation.run(&mut store, &component.metrics);
        let ended = match tokio::time::timeout_at(deadline.into(), run).await {
            Ok(Ok(())) => Ended::Finished,
            Ok(Err(err)) => Ended::failed(
                err,
                component.sandbox.limits(),
                Some(store.data().limiter()),
            ),
            Err(_elapsed) => Ended::Deadline,
        };
        count(&component, &ended);
        if matches!(ended, Ended::Finished)
            && let Some((kind, reason)) = store.data().limiter().refusal()
        {
            // Refused memory or table space, and answered anyway (an
            // interpreter's out-of-memory error, say): still a limit hit.
            component.metrics.limit(Limit::Store(kind));
            report(
                &component,
                &request_id,
                &format!("{reason}; the guest handled the refusal"),
            );
        }
        if let Some(description) = ended.describe() {
            // The limit it hit, the whole chain, with the guest's wasm
            // backtrace (bounded: names and all are the guest's).
            report(&component, &request_id, &format!("trapped: {description}"));
        }
        // (Counted once the guest is done: it may read its body after
        // sending the response head.)
        match task_shared.fault.get().copied() {
            Some(ClientFault::TooLarge) => component.metrics.limit(Limit::RequestBody),
            Some(fault) => {
                component
                    .metrics
                    .server()
                    .client_timeout(ClientTimeout::Body);
                if let Some(line) = fault.report() {
                    report(&component, &request_id, &line);
                }
            }
            None => {}
        }
        // Before the store (and with it the body's sender) goes away, so the
        // response body sees the failure when it sees its end. But a body
        // the guest finished before it failed is whole: the connection
        // first gets the turns it takes to read it (a body still open
        // after them is cut).
        if matches!(ended, Ended::Finished) {
            // The response goes out before the instance is torn down, so
            // the client does not wait for the teardown; unless the
            // instance's turn or slot is the last one free, when another
            // request could be turned away (or queued) for it meanwhile.
            if component.has_room() {
                let _ = handed_over.await;
            }
        } else {
            give_way().await;
            task_shared.failed.store(true, Ordering::Release);
        }
        drop(store);
        drop(turn);
        log.flush(component.name(), &request_id);
        if matches!(ended, Ended::Deadline) {
            report(
                &component,
                &request_id,
                &format!("request deadline of {budget:?} exceeded"),
            );
        }
        drop(guard);
        ended
    });
    Running {
        ended,
        hand_over,
        shared,
        request_id,
        budget,
    }
}

/// Counts a run that did not finish cleanly in the component's metrics.
fn count(component: &LoadedComponent, ended: &Ended) {
    let metrics = &component.metrics;
    match ended {
        Ended::Finished | Ended::Exited(_) => {}
        Ended::Deadline => metrics.limit(Limit::Store(mayfly_sandbox::LimitKind::Deadline)),
        Ended::PoolFull => metrics.limit(Limit::InstanceSlots),
        Ended::Limit { kind, .. } => {
            metrics.trap();
            metrics.limit(Limit::Store(*kind));
        }
        Ended::Failed(_) => metrics.trap(),
    }
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
