//! The request path: a fresh instance per request, dropped when it is done.
//!
//! For each request: wait for a turn at the component (bounded queue), make
//! a new store from the component's sandbox (its own host state, limits and
//! deadline), instantiate from the pre-instantiated component, call its
//! handler (`wasi:http/incoming-handler` of WASI 0.2 or `wasi:http/handler`
//! of WASI 0.3, see `invoke`), and drop everything. The guest runs in its own local task so it can keep
//! streaming the body after the response head has gone out; the task is
//! bounded by the component's deadline.
//!
//! Nothing here builds an error value on the success path: errors capture
//! backtraces, which would cost real throughput.

mod body;
mod gather;
mod head;
mod invoke;
mod outcome;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Body;
use mayfly_host_api::budget::Exhausted;
use mayfly_host_api::outbound::{Dispatcher, X_REQUEST_ID};
use mayfly_sandbox::output::GuestLog;
use mayfly_sandbox::{CallContext, LimitKind, Stdio};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

pub use self::body::{ClientBody, plain};
use self::body::{
    ClientFault, GuestBody, LimitedBody, Shared, body_too_large, drain_in_background, overloaded,
};
use self::gather::{gather, give_way};
pub use self::head::head_size;
use self::head::{declared_length, request_id};
use self::invoke::Invocation;
use self::outcome::{Outcome, count, quoted, report};
use crate::app::App;
use crate::component::LoadedComponent;
use crate::metrics::ClientTimeout;

/// How many internal hops led to a request (absent for outside requests):
/// an extension the internal dispatcher puts on the requests it makes.
#[derive(Debug, Clone, Copy)]
pub struct Hops(pub u32);

/// The deadline of the request an internal call is part of (a request
/// extension): the hop's own deadline is the earlier of this and its
/// component's `timeout`.
#[derive(Debug, Clone, Copy)]
pub struct CallerDeadline(pub Instant);

/// Routes `request` to its component and serves it; unmatched paths get 404.
///
/// Must run inside a [`tokio::task::LocalSet`]. `guard` is held until the
/// guest has finished, including any work after its response was sent.
/// The guest's internal calls go to `dispatcher`; the request's body is
/// read within `client`'s bounds (`None`: the deadline's alone).
pub async fn dispatch<B, G>(
    app: &App,
    request: Request<B>,
    guard: G,
    dispatcher: Option<&Dispatcher>,
    client: Option<ClientBody>,
) -> Response<HyperOutgoingBody>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
    G: 'static,
{
    match app.route(request.uri().path()) {
        Some(component) => handle(component, request, guard, dispatcher, client).await,
        None => {
            app.metrics().unrouted();
            plain(StatusCode::NOT_FOUND, "no route matches this path\n".into())
        }
    }
}

/// Serves one request with a fresh instance of `component`.
///
/// Must run inside a [`tokio::task::LocalSet`]. `guard` is held until the
/// guest has finished. The guest's internal calls go to `dispatcher`
/// (`None`: they fail inside the guest); the body is read within
/// `client`'s bounds.
pub async fn handle<B, G>(
    component: &Arc<LoadedComponent>,
    request: Request<B>,
    guard: G,
    dispatcher: Option<&Dispatcher>,
    client: Option<ClientBody>,
) -> Response<HyperOutgoingBody>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
    G: 'static,
{
    let arrived = Instant::now();
    let mut request = request;
    let request_id = request_id(&mut request);
    let mut response = serve(
        component,
        request,
        guard,
        arrived,
        &request_id,
        dispatcher,
        client,
    )
    .await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    let metrics = &component.metrics;
    metrics.request(response.status().as_u16(), arrived.elapsed());
    response
}

async fn serve<B, G>(
    component: &Arc<LoadedComponent>,
    request: Request<B>,
    guard: G,
    arrived: Instant,
    request_id: &Arc<str>,
    dispatcher: Option<&Dispatcher>,
    client: Option<ClientBody>,
) -> Response<HyperOutgoingBody>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
    G: 'static,
{
    let limits = *component.limits();
    // The deadline runs from arrival: time spent queueing counts. A hop of
    // a chain ends with its caller's request at the latest.
    let mut deadline = arrived + limits.timeout;
    if let Some(CallerDeadline(caller)) = request.extensions().get::<CallerDeadline>() {
        deadline = deadline.min(*caller);
    }
    let budget = deadline.saturating_duration_since(arrived);
    let name = component.name();
    // RFC 9112: a request with no Host header, or with more than one, is
    // answered 400.
    match request.headers().get_all(header::HOST).iter().count() {
        0 if request.uri().authority().is_none() => {
            return plain(StatusCode::BAD_REQUEST, "missing Host header\n".into());
        }
        0 | 1 => {}
        _ => {
            return plain(
                StatusCode::BAD_REQUEST,
                "more than one Host header\n".into(),
            );
        }
    }
    if let Some(max) = limits.max_request_head
        && head_size(&request) > max
    {
        drain_in_background(request.into_body());
        component.metrics.limit(LimitKind::RequestHeaders);
        return plain(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the request head exceeds component `{name}`'s limit of {max} bytes\n"),
        );
    }
    if declared_length(&request).is_some_and(|length| length > limits.max_request_body) {
        drain_in_background(request.into_body());
        component.metrics.limit(LimitKind::RequestBody);
        return body_too_large(component);
    }
    let Some(permit) = component.gate.enter(deadline).await else {
        component.metrics.limit(LimitKind::Concurrency);
        return overloaded(&format!(
            "component `{name}` is at its limit of {} concurrent requests; retry shortly\n",
            limits.instances
        ));
    };

    let log = GuestLog::default();
    let call = CallContext {
        request_id: request_id.clone(),
        deadline,
        hops: request
            .extensions()
            .get::<Hops>()
            .map_or(0, |Hops(hops)| *hops),
        dispatcher: dispatcher.cloned(),
    };
    let mut store = match component.sandbox.store(call, &Stdio::captured(&log), &[]) {
        Ok(store) => store,
        Err(err) if err.get_ref().is_some_and(|inner| inner.is::<Exhausted>()) => {
            report(component, request_id, &format!("not started: {err}"));
            return overloaded(
                "the server holds all the files it may open for guests; retry shortly\n",
            );
        }
        Err(err) => {
            report(
                component,
                request_id,
                &format!("cannot set up its grants: {err}"),
            );
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("component `{name}` could not be given its grants\n"),
            );
        }
    };

    let shared = Arc::new(Shared::default());
    let request =
        request.map(|body| LimitedBody::new(body, limits.max_request_body, client, shared.clone()));
    let (invocation, answer) = match Invocation::new(&component.pre, &mut store, request) {
        Ok(prepared) => prepared,
        Err(err) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("cannot pass this request to the component: {err}\n"),
            );
        }
    };

    // Sent (or dropped) once the response is in hyper's hands: with a body
    // the guest has finished, hyper writes it in the same turn.
    let (hand_over, handed_over) = tokio::sync::oneshot::channel::<()>();
    let task_component = component.clone();
    let task_shared = shared.clone();
    let task_request_id = request_id.clone();
    let guest = tokio::task::spawn_local(async move {
        let request_id = task_request_id;
        let component = task_component;
        let run = invocation.run(&mut store, &component.metrics);
        let outcome = match tokio::time::timeout_at(deadline.into(), run).await {
            Ok(Ok(())) => Outcome::Finished,
            Ok(Err(err)) => {
                let mut outcome = Outcome::of(&err, store.data().limiter());
                if let Outcome::Trapped(reason, kind) = &outcome {
                    // The whole chain, with the guest's wasm backtrace
                    // (bounded: names and all are the guest's).
                    report(
                        &component,
                        &request_id,
                        &format!("trapped: {}", mayfly_sandbox::failure::describe(&err)),
                    );
                    // A guest that traps after being refused memory (or
                    // table space) has, in all likelihood, died of it.
                    if matches!(kind, Some(LimitKind::Memory | LimitKind::Table))
                        && let Some((_, limit)) = store.data().limiter().refusal()
                    {
                        outcome = Outcome::Trapped(format!("{limit} ({reason})"), *kind);
                    }
                }
                outcome
            }
            Err(_elapsed) => Outcome::DeadlineExceeded,
        };
        count(&component, &outcome);
        // (Counted once the guest is done: it may read its body after
        // sending the response head.)
        match task_shared.fault.get().copied() {
            Some(ClientFault::TooLarge) => component.metrics.limit(LimitKind::RequestBody),
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
        if matches!(outcome, Outcome::Finished) {
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
        drop(permit);
        log.flush(component.name(), &request_id);
        match &outcome {
            Outcome::Finished | Outcome::Overloaded | Outcome::Trapped(..) => {}
            Outcome::DeadlineExceeded => report(
                &component,
                &request_id,
                &format!("request deadline of {budget:?} exceeded"),
            ),
        }
        drop(guard);
        outcome
    });

    match answer.head().await {
        Ok(Ok(response)) if response.headers().len() > limits.max_response_headers => {
            component.metrics.limit(LimitKind::ResponseHeaders);
            report(
                component,
                request_id,
                &format!("sent {} response headers", response.headers().len()),
            );
            plain(
                StatusCode::BAD_GATEWAY,
                format!(
                    "component `{name}` sent {} response headers; the limit is {}\n",
                    response.headers().len(),
                    limits.max_response_headers
                ),
            )
        }
        Ok(Ok(response)) => {
            let response = response.map(|body| {
                GuestBody::new(body, shared, component.clone(), request_id.clone()).boxed_unsync()
            });
            let response = gather(response).await;
            let _ = hand_over.send(());
            response
        }
        Ok(Err(code)) => {
            report(
                component,
                request_id,
                &format!("responded with error code {code}"),
            );
            if let Some(fault) = shared.fault.get() {
                return fault.answer(component);
            }
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("component `{name}` failed: {}\n", quoted(&code)),
            )
        }
        // The guest dropped the response without setting it: it trapped, ran
        // out of time, or returned without answering.
        Err(_) => {
            drop(hand_over);
            let outcome = guest.await;
            if let Some(fault) = shared.fault.get() {
                return fault.answer(component);
            }
            match outcome {
                Ok(Outcome::Finished) => {
                    report(component, request_id, "returned without sending a response");
                    plain(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("component `{name}` sent no response\n"),
                    )
                }
                Ok(Outcome::Trapped(reason, _)) => plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("component `{name}` failed: {}\n", quoted(&reason)),
                ),
                Ok(Outcome::DeadlineExceeded) => plain(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("component `{name}` exceeded its request deadline of {budget:?}\n"),
                ),
                Ok(Outcome::Overloaded) => {
                    overloaded("the server is at its instance limit; retry shortly\n")
                }
                Err(join) => {
                    report(component, request_id, &format!("guest task failed: {join}"));
                    plain(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("component `{name}` failed\n"),
                    )
                }
            }
        }
    }
}
