//! The request path: a fresh instance per request, dropped when it is done.
//!
//! For each request: wait for a turn at the component (bounded queue), build
//! a new [`Store`] with its own [`Host`] state, instantiate from the
//! pre-instantiated component, call `wasi:http/incoming-handler`, and drop
//! everything. The guest runs in its own local task so it can keep
//! streaming the body after the response head has gone out; the task is
//! bounded by the component's deadline.
//!
//! Nothing here builds an error value on the success path: errors capture
//! backtraces, which would cost real throughput.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use wasmtime::{PoolConcurrencyLimitError, Store, Trap, WasmBacktrace};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use mayfly_host_api::outbound::X_REQUEST_ID;

use crate::app::App;
use crate::component::LoadedComponent;
use crate::guest_log::GuestLog;
use crate::host::Host;
use crate::limits::{Limiter, RequestLimits};
use crate::metrics::LimitKind;

/// How many internal hops led to a request (absent for outside requests):
/// an extension the internal dispatcher puts on the requests it makes.
#[derive(Debug, Clone, Copy)]
pub struct Hops(pub u32);

/// The deadline of the request an internal call is part of (a request
/// extension): the hop's own deadline is the earlier of this and its
/// component's `timeout`.
#[derive(Debug, Clone, Copy)]
pub struct CallerDeadline(pub Instant);

/// Numbers requests, for log lines.
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// Routes `request` to its component and serves it; unmatched paths get 404.
///
/// Must run inside a [`tokio::task::LocalSet`]. `guard` is held until the
/// guest has finished, including any work after its response was sent.
pub async fn dispatch<B, G>(app: &App, request: Request<B>, guard: G) -> Response<HyperOutgoingBody>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
    G: 'static,
{
    match app.route(request.uri().path()) {
        Some(component) => handle(component, request, guard).await,
        None => {
            crate::metrics::unrouted();
            plain(StatusCode::NOT_FOUND, "no route matches this path\n".into())
        }
    }
}

/// What the guest task and the response body share.
#[derive(Default)]
struct Shared {
    /// The guest did not finish cleanly.
    failed: AtomicBool,
    /// The client sent more body than the component accepts.
    body_too_large: AtomicBool,
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
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
    G: 'static,
{
    let arrived = Instant::now();
    let mut request = request;
    let request_id = request_id(&mut request);
    let mut response = serve(component, request, guard, arrived, &request_id).await;
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
) -> Response<HyperOutgoingBody>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
    G: 'static,
{
    let limits = component.limits;
    // The deadline runs from arrival: time spent queueing counts. A hop of
    // a chain ends with its caller's request at the latest.
    let mut deadline = arrived + limits.timeout;
    if let Some(CallerDeadline(caller)) = request.extensions().get::<CallerDeadline>() {
        deadline = deadline.min(*caller);
    }
    let budget = deadline.saturating_duration_since(arrived);
    let name = component.name();
    if request.uri().authority().is_none() && !request.headers().contains_key(header::HOST) {
        return plain(StatusCode::BAD_REQUEST, "missing Host header\n".into());
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

    let request_id = request_id.clone();
    let log = GuestLog::default();
    let host = match Host::new(
        &component.state,
        &request_id,
        &limits,
        &component.grants,
        &log,
    ) {
        Ok(host) => host,
        Err(err) => {
            report(
                component,
                &request_id,
                &format!("cannot set up its grants: {err}"),
            );
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("component `{name}` could not be given its grants\n"),
            );
        }
    };
    let mut host = host;
    if let Some(Hops(hops)) = request.extensions().get::<Hops>() {
        host.set_hops(*hops);
    }
    host.set_deadline(deadline);
    let mut store = Store::new(component.pre.engine(), host);
    store.limiter(|host| &mut host.limits);
    RequestLimits::arm_deadline(&mut store, deadline);
    if let Some(fuel) = component.fuel {
        // Cannot fail: the component's fuel is set only when the engine
        // meters fuel.
        let _ = store.set_fuel(fuel);
    }

    let shared = Arc::new(Shared::default());
    let request = request.map(|body| LimitedBody {
        body: Some(body),
        remaining: limits.max_request_body,
        over: false,
        shared: shared.clone(),
    });
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

    let task_component = component.clone();
    let task_shared = shared.clone();
    let task_request_id = request_id.clone();
    let guest = tokio::task::spawn_local(async move {
        let request_id = task_request_id;
        let component = task_component;
        let run = async {
            let started = Instant::now();
            let proxy = component.pre.instantiate_async(&mut store).await?;
            component.metrics.instantiation.observe(started.elapsed());
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, outparam)
                .await
        };
        let outcome = match tokio::time::timeout_at(deadline.into(), run).await {
            Ok(Ok(())) => Outcome::Finished,
            Ok(Err(err)) => {
                let mut outcome = Outcome::of(&err, store.data().limiter());
                if let Outcome::Trapped(reason, kind) = &outcome {
                    // The whole chain, with the guest's wasm backtrace.
                    report(&component, &request_id, &format!("trapped: {err:#}"));
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
        if task_shared.body_too_large.load(Ordering::Acquire) {
            component.metrics.limit(LimitKind::RequestBody);
        }
        // Before the store (and with it the body's sender) goes away, so the
        // response body sees the failure when it sees its end.
        if !matches!(outcome, Outcome::Finished) {
            task_shared.failed.store(true, Ordering::Release);
        }
        drop(store);
        drop(permit);
        log.flush(&component.name, &request_id);
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

    match receiver.await {
        Ok(Ok(response)) if response.headers().len() > limits.max_response_headers => {
            component.metrics.limit(LimitKind::ResponseHeaders);
            report(
                component,
                &request_id,
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
        Ok(Ok(response)) => response.map(|body| GuestBody { body, shared }.boxed_unsync()),
        Ok(Err(code)) => {
            report(
                component,
                &request_id,
                &format!("responded with error code {code:?}"),
            );
            if shared.body_too_large.load(Ordering::Acquire) {
                return body_too_large(component);
            }
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("component `{name}` failed: {code:?}\n"),
            )
        }
        // The guest dropped the response without setting it: it trapped, ran
        // out of time, or returned without answering.
        Err(_) => {
            let outcome = guest.await;
            if shared.body_too_large.load(Ordering::Acquire) {
                return body_too_large(component);
            }
            match outcome {
                Ok(Outcome::Finished) => {
                    report(
                        component,
                        &request_id,
                        "returned without sending a response",
                    );
                    plain(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("component `{name}` sent no response\n"),
                    )
                }
                Ok(Outcome::Trapped(reason, _)) => plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("component `{name}` failed: {reason}\n"),
                ),
                Ok(Outcome::DeadlineExceeded) => plain(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("component `{name}` exceeded its request deadline of {budget:?}\n"),
                ),
                Ok(Outcome::Overloaded) => {
                    overloaded("the server is at its instance limit; retry shortly\n")
                }
                Err(join) => {
                    report(
                        component,
                        &request_id,
                        &format!("guest task failed: {join}"),
                    );
                    plain(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("component `{name}` failed\n"),
                    )
                }
            }
        }
    }
}

/// Counts a run that did not finish cleanly in the component's metrics.
fn count(component: &LoadedComponent, outcome: &Outcome) {
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
enum Outcome {
    Finished,
    /// Why, and the limit it hit if it died of one.
    Trapped(String, Option<LimitKind>),
    DeadlineExceeded,
    /// Every instance slot of the engine was in use.
    Overloaded,
}

impl Outcome {
    fn of(err: &wasmtime::Error, limiter: &Limiter) -> Self {
        if err.is::<PoolConcurrencyLimitError>() {
            return Outcome::Overloaded;
        }
        let limit = crate::limits::limit_hit(err, Some(limiter));
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

fn report(component: &LoadedComponent, request: &str, message: &str) {
    tracing::warn!(
        component = component.name(),
        request_id = request,
        "{message}"
    );
}

/// The request's id: its `x-request-id` if it has a usable one (a load
/// balancer's, or a calling component's), else the next number, which is
/// then added to the request so the guest can pass it on.
fn request_id<B>(request: &mut Request<B>) -> Arc<str> {
    if let Some(id) = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_plain_request_id(id))
    {
        return Arc::from(id);
    }
    let id = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed).to_string();
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert(X_REQUEST_ID, value);
    }
    Arc::from(id)
}

/// Whether a client's `x-request-id` can be used as it is: 1 to 128 of
/// `A-Z a-z 0-9 . _ : -`. Anything else is replaced with an id of ours, so
/// a client cannot put spaces or control characters into log lines.
fn is_plain_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The size of a request's head as it came over the wire: the request line
/// and every header line.
pub(crate) fn head_size<B>(request: &Request<B>) -> usize {
    let uri = request.uri();
    let target = uri
        .path_and_query()
        .map_or(1, |target| target.as_str().len())
        + uri
            .authority()
            .map_or(0, |authority| authority.as_str().len() + 8);
    // `METHOD TARGET HTTP/1.1\r\n`
    let line = request.method().as_str().len() + target + 11;
    request.headers().iter().fold(line, |size, (name, value)| {
        size + name.as_str().len() + value.len() + 4
    })
}

/// The `Content-Length` the client declared, if any.
fn declared_length<B>(request: &Request<B>) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn body_too_large(component: &LoadedComponent) -> Response<HyperOutgoingBody> {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body exceeds component `{}`'s limit of {} bytes\n",
            component.name(),
            component.limits.max_request_body
        ),
    )
}

fn overloaded(message: &str) -> Response<HyperOutgoingBody> {
    let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, message.to_string());
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// How much of a refused request body is still read (and thrown away), and
/// for how long, so that the client can finish sending and read its 413
/// instead of having its connection reset under it.
const DRAIN_BYTES: usize = 8 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Reads and discards the rest of a refused request body, within
/// [`DRAIN_BYTES`] and [`DRAIN_TIME`], in a task of its own.
fn drain_in_background<B>(mut body: B)
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut left = DRAIN_BYTES;
        let drain = async {
            while let Some(Ok(frame)) = body.frame().await {
                let len = frame.data_ref().map_or(0, Bytes::len);
                if len >= left {
                    break;
                }
                left -= len;
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    });
}

/// A request body that stops, with an error the guest sees, once it exceeds
/// the component's limit.
struct LimitedBody<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    /// Taken only on drop.
    body: Option<B>,
    remaining: u64,
    /// The limit was crossed: what is left is drained on drop.
    over: bool,
    shared: Arc<Shared>,
}

impl<B> Drop for LimitedBody<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    fn drop(&mut self) {
        if let (true, Some(body)) = (self.over, self.body.take()) {
            drain_in_background(body);
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = match Pin::new(body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
            if len > self.remaining {
                self.over = true;
                self.shared.body_too_large.store(true, Ordering::Release);
                return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpRequestBodySize(
                    None,
                ))));
            }
            self.remaining -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

/// A guest's response body, which ends in an error rather than cleanly if
/// the guest failed before finishing it.
///
/// wasmtime-wasi-http ends a body normally when its sender is dropped, which
/// is also what happens when the guest traps halfway: without this, a client
/// would take a truncated body for a complete one.
struct GuestBody {
    body: HyperOutgoingBody,
    shared: Arc<Shared>,
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(None) if self.shared.failed.load(Ordering::Acquire) => {
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
