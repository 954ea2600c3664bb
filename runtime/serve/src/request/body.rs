//! The bodies and short answers of the request path: a request body that
//! stops at the component's limit, a response body that shows a guest's
//! failure, and the host's own plain-text responses.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::Error;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::component::LoadedComponent;

/// What the guest task and the response body share.
#[derive(Default)]
pub(super) struct Shared {
    /// The guest did not finish cleanly.
    pub(super) failed: AtomicBool,
    /// The client sent more body than the component accepts.
    pub(super) body_too_large: AtomicBool,
    /// The client paused its body longer than the body timeout.
    pub(super) body_stalled: AtomicBool,
}

/// 413, naming the component and its limit.
pub(super) fn body_too_large(component: &LoadedComponent) -> Response<HyperOutgoingBody> {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body exceeds component `{}`'s limit of {} bytes\n",
            component.name(),
            component.limits().max_request_body
        ),
    )
}

/// 408: the client stopped sending its body.
pub(super) fn body_stalled(timeout: Duration) -> Response<HyperOutgoingBody> {
    let mut response = plain(
        StatusCode::REQUEST_TIMEOUT,
        format!("the request body paused for more than {timeout:?}\n"),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// 503 with `Retry-After`.
pub(super) fn overloaded(message: &str) -> Response<HyperOutgoingBody> {
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
pub(super) fn drain_in_background<B>(mut body: B)
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
/// the component's limit, or once the client pauses it for longer than the
/// body timeout.
pub(super) struct LimitedBody<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    /// Taken only on drop.
    body: Option<B>,
    remaining: u64,
    /// The limit was crossed: what is left is drained on drop.
    over: bool,
    /// The longest pause allowed between frames (`None`: no bound but
    /// the deadline), and the pause under way while the guest waits.
    timeout: Option<Duration>,
    paused: Option<Pin<Box<tokio::time::Sleep>>>,
    shared: Arc<Shared>,
}

impl<B> LimitedBody<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    /// `body`, cut off with an error past `limit` bytes or after a pause
    /// longer than `timeout` (each noted in `shared`).
    pub(super) fn new(body: B, limit: u64, timeout: Option<Duration>, shared: Arc<Shared>) -> Self {
        Self {
            body: Some(body),
            remaining: limit,
            over: false,
            timeout,
            paused: None,
            shared,
        }
    }

    /// The client has sent nothing since the guest asked: `Pending` while
    /// the pause is within the timeout, an error once it is not.
    fn paused(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let Some(timeout) = self.timeout else {
            return Poll::Pending;
        };
        let paused = self
            .paused
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match paused.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                self.shared.body_stalled.store(true, Ordering::Release);
                // Nothing more is read from this client.
                self.body = None;
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }
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
    B::Error: Into<Error>,
{
    type Data = Bytes;
    type Error = Error;

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
            Poll::Pending => return self.paused(cx),
        };
        self.paused = None;
        if let Some(data) = frame.data_ref() {
            let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
            if len > self.remaining {
                self.over = true;
                self.shared.body_too_large.store(true, Ordering::Release);
                return Poll::Ready(Some(Err(Error::HttpRequestBodySize(None))));
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
///
/// A body that the guest itself ends with an error (WASI 0.3 lets it) is
/// cut the same way, and logged once, against its component and request.
pub(super) struct GuestBody {
    body: HyperOutgoingBody,
    shared: Arc<Shared>,
    /// Whom to blame for an error from the guest's side, until it is told.
    blame: Option<(Arc<LoadedComponent>, Arc<str>)>,
}

impl GuestBody {
    /// The guest's `body`, ending in an error if `shared` says it failed.
    pub(super) fn new(
        body: HyperOutgoingBody,
        shared: Arc<Shared>,
        component: Arc<LoadedComponent>,
        request_id: Arc<str>,
    ) -> Self {
        Self {
            body,
            shared,
            blame: Some((component, request_id)),
        }
    }
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(None) if self.shared.failed.load(Ordering::Acquire) => {
                Poll::Ready(Some(Err(Error::HttpResponseIncomplete)))
            }
            Poll::Ready(Some(Err(err))) => {
                if let Some((component, request_id)) = self.blame.take() {
                    super::outcome::report(
                        &component,
                        &request_id,
                        &format!("the response body failed: {err:?}"),
                    );
                }
                Poll::Ready(Some(Err(err)))
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
pub fn plain(status: StatusCode, body: String) -> Response<HyperOutgoingBody> {
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
