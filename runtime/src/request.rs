//! The request path: a fresh instance per request, dropped when it is done.
//!
//! For each request: a new [`Store`] with its own [`Host`] state, instantiate
//! from the pre-instantiated component, call `wasi:http/incoming-handler`,
//! and drop everything. The guest runs in its own local task so it can keep
//! streaming the body after the response head has gone out; the task is
//! bounded by the component's deadline.
//!
//! Nothing here builds an error value on the success path: errors capture
//! backtraces, which would cost real throughput.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use wasmtime::{PoolConcurrencyLimitError, Store, Trap};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::app::App;
use crate::component::LoadedComponent;
use crate::host::Host;

/// Routes `request` to its component and serves it; unmatched paths get 404.
///
/// Must run inside a [`tokio::task::LocalSet`]. `guard` is held until the
/// guest has finished, including any work after its response was sent.
pub async fn dispatch<B, G>(app: &App, request: Request<B>, guard: G) -> Response<HyperOutgoingBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
    G: 'static,
{
    match app.route(request.uri().path()) {
        Some(component) => handle(component, request, guard).await,
        None => plain(StatusCode::NOT_FOUND, "no route matches this path\n".into()),
    }
}

/// Serves one request with a fresh instance of `component`.
///
/// Must run inside a [`tokio::task::LocalSet`]. `guard` is held until the
/// guest has finished.
pub async fn handle<B, G>(
    component: &Arc<LoadedComponent>,
    request: Request<B>,
    guard: G,
) -> Response<HyperOutgoingBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
    G: 'static,
{
    if request.uri().authority().is_none() && !request.headers().contains_key(header::HOST) {
        return plain(StatusCode::BAD_REQUEST, "missing Host header\n".into());
    }
    let limits = component.limits;
    let host = match Host::new(limits.store_limits(), &component.grants) {
        Ok(host) => host,
        Err(err) => {
            log(component, &format!("cannot set up its grants: {err}"));
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "component `{}` could not be given its grants\n",
                    component.name()
                ),
            );
        }
    };
    let mut store = Store::new(component.pre.engine(), host);
    store.limiter(|host| &mut host.limits);
    limits.arm_deadline(&mut store);

    let (sender, receiver) = oneshot::channel();
    let mut http = store.data_mut().http();
    let resources = http
        .new_incoming_request(Scheme::Http, request)
        .and_then(|request| Ok((request, http.new_response_outparam(sender)?)));
    let (request, outparam) = match resources {
        Ok(resources) => resources,
        Err(err) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("cannot pass this request to the component: {err}\n"),
            );
        }
    };

    let pre = component.pre.clone();
    let task_component = component.clone();
    let failed = Arc::new(AtomicBool::new(false));
    let task_failed = failed.clone();
    let guest = tokio::task::spawn_local(async move {
        let run = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, outparam)
                .await
        };
        let outcome = match tokio::time::timeout(limits.timeout, run).await {
            Ok(Ok(())) => Outcome::Finished,
            Ok(Err(err)) => Outcome::failed(&task_component, err),
            Err(_elapsed) => Outcome::DeadlineExceeded,
        };
        // Before the store (and with it the body's sender) goes away, so the
        // response body sees the failure when it sees its end.
        if !matches!(outcome, Outcome::Finished) {
            task_failed.store(true, Ordering::Release);
        }
        drop(store);
        drop(guard);
        if let Outcome::DeadlineExceeded = outcome {
            log(
                &task_component,
                &format!("request deadline of {:?} exceeded", limits.timeout),
            );
        }
        outcome
    });

    match receiver.await {
        Ok(Ok(response)) => response.map(|body| GuestBody { body, failed }.boxed_unsync()),
        Ok(Err(code)) => guest_error_code(component, code),
        // The guest dropped the response without setting it: it trapped, ran
        // out of time, or returned without answering.
        Err(_) => {
            let name = component.name();
            match guest.await {
                Ok(Outcome::Finished) => {
                    log(component, "returned without sending a response");
                    plain(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("component `{name}` sent no response\n"),
                    )
                }
                Ok(Outcome::Trapped(reason)) => plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("component `{name}` failed: {reason}\n"),
                ),
                Ok(Outcome::Overloaded) => {
                    let mut response = plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the server is at its instance limit; retry shortly\n".into(),
                    );
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    response
                }
                Ok(Outcome::DeadlineExceeded) => plain(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "component `{name}` exceeded its request deadline of {:?}\n",
                        limits.timeout
                    ),
                ),
                Err(join) => {
                    log(component, &format!("guest task failed: {join}"));
                    plain(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("component `{name}` failed\n"),
                    )
                }
            }
        }
    }
}

/// How a guest's run ended. Failures are logged where they happen, since the
/// response may already be on its way to the client.
enum Outcome {
    Finished,
    Trapped(String),
    DeadlineExceeded,
    /// Every instance slot of the engine was in use.
    Overloaded,
}

impl Outcome {
    fn failed(component: &LoadedComponent, err: wasmtime::Error) -> Self {
        if err.is::<PoolConcurrencyLimitError>() {
            return Outcome::Overloaded;
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Outcome::DeadlineExceeded,
            trap => {
                log(component, &format!("trapped: {err:#}"));
                Outcome::Trapped(match trap {
                    Some(trap) => trap.to_string(),
                    None => "host error".to_string(),
                })
            }
        }
    }
}

fn guest_error_code(component: &LoadedComponent, code: ErrorCode) -> Response<HyperOutgoingBody> {
    log(component, &format!("responded with error code {code:?}"));
    plain(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("component `{}` failed: {code:?}\n", component.name()),
    )
}

fn log(component: &LoadedComponent, message: &str) {
    eprintln!("mayfly: component `{}`: {message}", component.name());
}

/// A guest's response body, which ends in an error rather than cleanly if
/// the guest failed before finishing it.
///
/// wasmtime-wasi-http ends a body normally when its sender is dropped, which
/// is also what happens when the guest traps halfway: without this, a client
/// would take a truncated body for a complete one.
struct GuestBody {
    body: HyperOutgoingBody,
    failed: Arc<AtomicBool>,
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(None) if self.failed.load(Ordering::Acquire) => {
                Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpResponseIncomplete)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A short plain-text response from the host itself.
pub(crate) fn plain(status: StatusCode, body: String) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
