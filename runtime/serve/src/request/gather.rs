//! A response head, held back for a few turns of the server's task queue
//! while the body its guest has ready is gathered.
//!
//! The head reaches the connection before the body does: a WASI 0.3 guest
//! returns its response and then writes the body from a task of its own.
//! Sent at once, the head would go out with whatever body hyper finds, and
//! the end of the body in a second write (with chunked framing, the
//! length being unknown). Gathered first, a body written at once leaves in
//! the same write as its head, with a `Content-Length`. While this waits,
//! the guest's task runs (and a guest that spins still yields at each
//! epoch tick); a body still being written after those turns, or larger
//! than [`GATHERED_BYTES`], streams as it comes, after what was gathered.
//! A body that failed keeps its failure: what came before it goes out
//! first, and then the connection is cut. And a body the guest finished
//! is whole even if the guest fails right after: its task gives the
//! connection these turns ([`give_way`]) before it records the failure.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::Error;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The most body gathered before the head goes out.
const GATHERED_BYTES: usize = 64 * 1024;

/// How many times the head waits for the body: each is one trip through
/// the worker's task queue, in which the guest's task runs if it can.
const TURNS: u32 = 4;

/// `response`, with the body its guest has ready gathered in front of the
/// rest. (Its body is a `GuestBody`, which turns a guest's failure into an
/// error: a body cut by a trap is not taken for a whole one.)
pub(super) async fn gather(response: Response<HyperOutgoingBody>) -> Response<HyperOutgoingBody> {
    let (head, mut body) = response.into_parts();
    let mut gathered = Gathered::default();
    let mut turns = 0;
    loop {
        let next = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
        match next {
            Poll::Ready(Some(Ok(frame))) => {
                gathered.push(frame);
                if gathered.bytes > GATHERED_BYTES {
                    break;
                }
            }
            Poll::Ready(Some(Err(err))) => {
                gathered.error = Some(err);
                return Response::from_parts(head, gathered.boxed_unsync());
            }
            Poll::Ready(None) => return Response::from_parts(head, gathered.boxed_unsync()),
            Poll::Pending if turns == TURNS => break,
            Poll::Pending => {
                turns += 1;
                tokio::task::yield_now().await;
            }
        }
    }
    gathered.rest = Some(body);
    Response::from_parts(head, gathered.boxed_unsync())
}

/// Gives the connection's task the turns [`gather`] waits for a body: a
/// failed guest's task calls it before it records the failure, so that a
/// body the guest had finished is read whole first.
pub(super) async fn give_way() {
    for _ in 0..=TURNS {
        tokio::task::yield_now().await;
    }
}

/// The frames gathered, then the error the body ended with, or the rest of
/// the body (absent: it had ended).
#[derive(Default)]
struct Gathered {
    frames: VecDeque<Frame<Bytes>>,
    /// The data bytes in `frames`.
    bytes: usize,
    trailers: bool,
    error: Option<Error>,
    /// The error waits one poll after the last frame, so that hyper writes
    /// what came before it (and the head) before the error cuts the
    /// connection: a cut body is seen to be cut, not missing.
    error_deferred: bool,
    rest: Option<HyperOutgoingBody>,
}

impl Gathered {
    fn push(&mut self, frame: Frame<Bytes>) {
        match frame.data_ref() {
            Some(data) => self.bytes += data.len(),
            None => self.trailers |= frame.is_trailers(),
        }
        self.frames.push_back(frame);
    }
}

impl Body for Gathered {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if let Some(frame) = self.frames.pop_front() {
            if let Some(data) = frame.data_ref() {
                self.bytes -= data.len();
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        if self.error.is_some() && !self.error_deferred {
            self.error_deferred = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some(err) = self.error.take() {
            return Poll::Ready(Some(Err(err)));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.error.is_none() && self.rest.is_none()
    }

    /// Exact for a whole body without trailers (so it is sent with a
    /// `Content-Length`); trailers need chunked framing, and an error must
    /// cut the body, so neither gets an upper bound of their own.
    fn size_hint(&self) -> SizeHint {
        let bytes = u64::try_from(self.bytes).unwrap_or(u64::MAX);
        let rest = match &self.rest {
            Some(rest) => rest.size_hint(),
            None if self.trailers || self.error.is_some() => SizeHint::new(),
            None => SizeHint::with_exact(0),
        };
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(bytes));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(bytes));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    /// A body whose frames come down a channel: it ends when the sender
    /// is dropped.
    struct Channel(mpsc::Receiver<Result<Frame<Bytes>, Error>>);

    impl Body for Channel {
        type Data = Bytes;
        type Error = Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
            self.0.poll_recv(cx)
        }
    }

    /// A body of `frames`, and its sender (drop it to end the body).
    fn body(
        frames: Vec<Result<Frame<Bytes>, Error>>,
    ) -> (mpsc::Sender<Result<Frame<Bytes>, Error>>, HyperOutgoingBody) {
        let (sender, receiver) = mpsc::channel(64);
        for frame in frames {
            sender.try_send(frame).unwrap();
        }
        (sender, Channel(receiver).boxed_unsync())
    }

    fn data(bytes: &'static [u8]) -> Result<Frame<Bytes>, Error> {
        Ok(Frame::data(Bytes::from_static(bytes)))
    }

    #[tokio::test]
    async fn a_whole_body_is_gathered_with_its_exact_length() {
        let (sender, body) = body(vec![data(b"hello "), data(b"world")]);
        drop(sender);
        let response = gather(Response::new(body)).await;
        assert_eq!(response.body().size_hint().exact(), Some(11));
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "hello world");
    }

    #[tokio::test]
    async fn trailers_keep_the_length_open_and_arrive_last() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-done", http::HeaderValue::from_static("1"));
        let (sender, body) = body(vec![data(b"abc"), Ok(Frame::trailers(trailers))]);
        drop(sender);
        let response = gather(Response::new(body)).await;
        assert_eq!(response.body().size_hint().exact(), None);
        let collected = response.into_body().collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["x-done"], "1");
        assert_eq!(collected.to_bytes(), "abc");
    }

    #[tokio::test]
    async fn an_error_is_kept_after_the_data_before_it() {
        let (sender, body) = body(vec![data(b"part"), Err(Error::HttpResponseIncomplete)]);
        drop(sender);
        let mut body = gather(Response::new(body)).await.into_body();
        assert_eq!(body.size_hint().exact(), None);
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "part");
        assert!(matches!(
            body.frame().await,
            Some(Err(Error::HttpResponseIncomplete))
        ));
    }

    #[tokio::test]
    async fn a_body_that_waits_streams_after_what_was_gathered() {
        let (sender, body) = body(vec![data(b"now ")]);
        let mut body = gather(Response::new(body)).await.into_body();
        assert_eq!(body.size_hint().exact(), None);
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "now "
        );
        sender.send(data(b"later")).await.unwrap();
        drop(sender);
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "later"
        );
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn no_more_than_the_limit_is_gathered() {
        let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
        let (sender, body) = body((0..10).map(|_| Ok(Frame::data(chunk.clone()))).collect());
        drop(sender);
        let body = gather(Response::new(body)).await.into_body();
        // The chunks until the limit was passed; the rest streams after.
        assert_eq!(body.size_hint().lower(), 5 * 16 * 1024);
        assert_eq!(body.size_hint().upper(), None);
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, vec![b'x'; 10 * 16 * 1024]);
    }
}
