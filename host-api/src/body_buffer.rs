//! The `wasi:http` body buffers the host keeps for a guest: how large one
//! may be, and the lease that charges it to the instance's host memory for
//! as long as it lives.
//!
//! A body a guest writes (a response, or the request of an outbound call)
//! passes through a buffer on the host before it reaches a socket, and a
//! body nobody reads (a request never sent, a client that never reads)
//! keeps its buffer full for as long as the body is held. wasmtime-wasi-http
//! buffers up to about 2 MiB per body by default, so a guest holding a few
//! hundred filled bodies could pin hundreds of megabytes of the host's
//! memory. Every body buffer here holds at most [`BODY_BUFFER`] bytes
//! (writes of at most [`BODY_CHUNK`] bytes each), and that much is leased
//! against the instance's `host_memory` while the body lives (a
//! [`LeasedBody`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::{Error, WasiBody};

use crate::budget::MemoryLease;

/// The most a guest hands the host in one write to a body (wasmtime-wasi-http's
/// default is 1 MiB): a larger `write` is refused, and `check-write`
/// never allows more.
pub const BODY_CHUNK: usize = 32 << 10;

/// The most one body's buffer holds on the host, and what it is charged:
/// WASI 0.2's channel holds two writes, WASI 0.3's one write and the frame
/// being sent.
pub const BODY_BUFFER: usize = 2 * BODY_CHUNK;

/// A body whose buffer is charged to its instance until the body is
/// dropped: by the guest, or by whoever it was handed to (a connection
/// sending it, the client reading it).
pub struct LeasedBody {
    body: WasiBody,
    _lease: MemoryLease,
}

impl LeasedBody {
    /// `body`, holding `lease` for as long as it lives.
    pub fn wrap(body: WasiBody, lease: MemoryLease) -> WasiBody {
        Self {
            body,
            _lease: lease,
        }
        .boxed_unsync()
    }
}

impl Body for LeasedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::InstanceBudget;

    #[tokio::test]
    async fn the_lease_lasts_as_long_as_the_body() {
        let budget = InstanceBudget::new(1, 1 << 20);
        let body: WasiBody = http_body_util::Full::new(Bytes::from_static(b"data"))
            .map_err(|never| match never {})
            .boxed_unsync();
        let leased = LeasedBody::wrap(body, budget.lease_memory(BODY_BUFFER).unwrap());
        assert_eq!(budget.host_memory(), BODY_BUFFER);
        // It passes the body through unchanged...
        let read = leased.collect().await.unwrap().to_bytes();
        assert_eq!(read, Bytes::from_static(b"data"));
        // ...and gives the lease back when it goes.
        assert_eq!(budget.host_memory(), 0);
    }
}
