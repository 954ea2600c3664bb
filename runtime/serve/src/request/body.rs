//! The bodies of the request path: a request body that stops at the
//! component's limit and at its client's bounds (a pause, a pace, the
//! connection cap's need for the connection), and a response body that
//! shows a guest's failure.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::Error;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::component::LoadedComponent;
use crate::connections::BodyWatch;

/// How a client's request body is read: the bounds on its pauses and its
/// pace, and the connection it comes on.
#[derive(Clone)]
pub struct ClientBody {
    /// The longest pause between two parts of the body.
    pub pause: Duration,
    /// The slowest the body may come once `grace` has passed, in bytes per
    /// second over all the time spent waiting for it (0: no bound).
    pub min_rate: u64,
    /// The waiting a body gets before its pace counts.
    pub grace: Duration,
    /// The connection's place under the cap, which may evict it.
    pub(crate) watch: Option<BodyWatch>,
}

/// How a client failed its request, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientFault {
    /// It sent more body than the component accepts.
    TooLarge,
    /// It paused its body for longer than this.
    Paused(Duration),
    /// Its body came slower than this many bytes per second.
    TooSlow(u64),
    /// The connection cap needed its connection while it kept the server
    /// waiting for its body.
    Evicted,
}

impl ClientFault {
    /// The operator's line about it (there is none for a body too large:
    /// that is a limit, counted as one).
    pub(super) fn report(self) -> Option<String> {
        match self {
            ClientFault::TooLarge => None,
            ClientFault::Paused(timeout) => Some(format!(
                "the client paused its request body for more than {timeout:?}"
            )),
            ClientFault::TooSlow(rate) => Some(format!(
                "the client sent its request body slower than {rate} bytes per second"
            )),
            ClientFault::Evicted => Some(
                "the connection cap evicted the client, which kept the server waiting for its \
                 request body"
                    .to_string(),
            ),
        }
    }
}

/// What the guest task and the response body share.
#[derive(Default)]
pub(super) struct Shared {
    /// The guest did not finish cleanly.
    pub(super) failed: AtomicBool,
    /// The client failed its request (the first way it did).
    pub(super) fault: OnceLock<ClientFault>,
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
/// the component's limit, once the client pauses it for longer than its
/// pause bound or sends it slower than its pace bound, or once the
/// connection cap evicts its connection while the guest waits for it.
///
/// Only the time the guest spends waiting for the client counts: a guest
/// that reads slowly does not make its client slow.
pub(super) struct LimitedBody<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    /// Taken only on drop.
    body: Option<B>,
    remaining: u64,
    /// The limit was crossed: what is left is drained on drop.
    over: bool,
    /// The client's bounds (`None`: no bound but the deadline, as for an
    /// internal call).
    client: Option<ClientBody>,
    /// Bytes received so far.
    received: u64,
    /// Time spent waiting for the client in earlier waits.
    waited: Duration,
    /// When the wait under way began.
    waiting_since: Option<Instant>,
    /// Ends the wait under way at the pause or pace bound.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Resolves if the connection cap evicts the connection.
    evicted: Option<Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>>,
    shared: Arc<Shared>,
}

impl<B> LimitedBody<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    /// `body`, cut off with an error past `limit` bytes or at `client`'s
    /// bounds (each noted in `shared`).
    pub(super) fn new(
        body: B,
        limit: u64,
        client: Option<ClientBody>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            body: Some(body),
            remaining: limit,
            over: false,
            client,
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
            evicted: None,
            shared,
        }
    }

    /// The client has sent nothing since the guest asked: `Pending` while
    /// within its bounds, an error once it is not.
    fn paused(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let Some(client) = &self.client else {
            return Poll::Pending;
        };
        let since = *self.waiting_since.get_or_insert_with(Instant::now);
        let (mut end, mut fault) = (since + client.pause, ClientFault::Paused(client.pause));
        if client.min_rate > 0 {
            // All the waiting together may last the grace period and the
            // time the bytes received would take at the slowest pace.
            let earned = u128::from(self.received) * 1_000_000_000 / u128::from(client.min_rate);
            let earned = Duration::from_nanos(u64::try_from(earned).unwrap_or(u64::MAX));
            let allowed = client.grace.saturating_add(earned);
            let pace_end = since + allowed.saturating_sub(self.waited);
            if pace_end < end {
                (end, fault) = (pace_end, ClientFault::TooSlow(client.min_rate));
            }
        }
        if let Some(watch) = &client.watch {
            watch.waiting();
            let evicted = self
                .evicted
                .get_or_insert_with(|| Box::pin(watch.evicted()));
            if evicted.as_mut().poll(cx).is_ready() {
                return self.fail(ClientFault::Evicted);
            }
        }
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(end.into())));
        if timer.deadline() != end.into() {
            timer.as_mut().reset(end.into());
        }
        match timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => self.fail(fault),
        }
    }

    /// The wait under way (if any) is over: the client sent something.
    fn resumed(&mut self) {
        if let Some(since) = self.waiting_since.take() {
            self.waited = self.waited.saturating_add(since.elapsed());
        }
        if let Some(watch) = self.client.as_ref().and_then(|c| c.watch.as_ref()) {
            watch.not_waiting();
        }
    }

    /// Stops reading the body for `fault`: the guest sees the read fail.
    fn fail(&mut self, fault: ClientFault) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let _ = self.shared.fault.set(fault);
        self.resumed();
        if let Some(watch) = self.client.as_ref().and_then(|c| c.watch.as_ref()) {
            watch.done();
        }
        // Nothing more is read from this client.
        self.body = None;
        Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
    }
}

impl<B> Drop for LimitedBody<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    fn drop(&mut self) {
        self.resumed();
        if let Some(watch) = self.client.as_ref().and_then(|c| c.watch.as_ref()) {
            watch.done();
        }
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
            Poll::Ready(Some(Err(err))) => {
                self.resumed();
                return Poll::Ready(Some(Err(err.into())));
            }
            Poll::Ready(None) => {
                self.resumed();
                if let Some(watch) = self.client.as_ref().and_then(|c| c.watch.as_ref()) {
                    watch.done();
                }
                return Poll::Ready(None);
            }
            Poll::Pending => return self.paused(cx),
        };
        self.resumed();
        if let Some(data) = frame.data_ref() {
            let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
            if len > self.remaining {
                self.over = true;
                let _ = self.shared.fault.set(ClientFault::TooLarge);
                return Poll::Ready(Some(Err(Error::HttpRequestBodySize(None))));
            }
            self.remaining -= len;
            self.received = self.received.saturating_add(len);
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
                    super::run::report(
                        &component,
                        &request_id,
                        &format!(
                            "the response body failed: {}",
                            mayfly_sandbox::failure::debug_capped(
                                &err,
                                mayfly_host_api::report::MESSAGE_CAP
                            )
                        ),
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
