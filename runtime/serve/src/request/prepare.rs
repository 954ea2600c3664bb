//! The second step: the call's place in its chain, a new store from the
//! component's sandbox, and the request put in it for the handler's world.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Request;
use hyper::body::Body;
use mayfly_host_api::budget::Exhausted;
use mayfly_host_api::chain::CallChain;
use mayfly_sandbox::output::GuestLog;
use mayfly_sandbox::{Host, Stdio};
use wasmtime::Store;

use super::Origin;
use super::body::{ClientBody, LimitedBody, Shared};
use super::invoke::{Answer, Invocation};
use super::refusal::Refusal;
use super::run::report;
use crate::component::LoadedComponent;

/// The chain of a request to `component` that arrived at `arrived` as
/// `request_id` from `origin`: due at its component's `timeout` after it
/// arrived (time spent queueing counts), or with its caller's request,
/// if that comes first; its internal calls go where `origin`'s do.
pub(super) fn chain(
    component: &LoadedComponent,
    arrived: Instant,
    request_id: &Arc<str>,
    origin: &Origin<'_>,
) -> CallChain {
    let own = arrived + component.limits().store.timeout;
    let (hops, deadline, dispatcher) = match origin {
        Origin::Client { dispatcher, .. } => (0, own, Some((*dispatcher).clone())),
        Origin::Component(caller) => (
            caller.hops,
            own.min(caller.deadline),
            caller.dispatcher.clone(),
        ),
        Origin::Direct => (0, own, None),
    };
    CallChain {
        request_id: request_id.clone(),
        hops,
        deadline,
        dispatcher,
    }
}

/// A request ready to run: what the guest's task takes, and where its
/// response head arrives.
pub(super) struct Prepared {
    pub(super) guest: Guest,
    pub(super) answer: Answer,
}

/// What the guest's task takes.
pub(super) struct Guest {
    pub(super) store: Store<Host>,
    pub(super) invocation: Invocation,
    pub(super) log: GuestLog,
    pub(super) deadline: Instant,
    /// What the task, the request body and the response body share.
    pub(super) shared: Arc<Shared>,
    pub(super) request_id: Arc<str>,
}

/// Makes the store for `chain` and puts `request` in it, its body read
/// within the component's `request_body` and `client`'s bounds.
pub(super) fn prepare<B>(
    component: &LoadedComponent,
    request: Request<B>,
    chain: CallChain,
    client: Option<ClientBody>,
) -> Result<Prepared, Refusal>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let log = GuestLog::default();
    let deadline = chain.deadline;
    let request_id = chain.request_id.clone();
    let mut store = match component.sandbox.store(chain, &Stdio::captured(&log), &[]) {
        Ok(store) => store,
        Err(err) if err.get_ref().is_some_and(|inner| inner.is::<Exhausted>()) => {
            report(component, &request_id, &format!("not started: {err}"));
            return Err(Refusal::no_descriptors());
        }
        Err(err) => {
            report(
                component,
                &request_id,
                &format!("cannot set up its grants: {err}"),
            );
            return Err(Refusal::no_grants(component));
        }
    };
    let shared = Arc::new(Shared::default());
    let limit = component.limits().http.max_request_body;
    let request = request.map(|body| LimitedBody::new(body, limit, client, shared.clone()));
    let (invocation, answer) = Invocation::new(&component.pre, &mut store, request)
        .map_err(|err| Refusal::unpassable(&err))?;
    Ok(Prepared {
        guest: Guest {
            store,
            invocation,
            log,
            deadline,
            shared,
            request_id,
        },
        answer,
    })
}
