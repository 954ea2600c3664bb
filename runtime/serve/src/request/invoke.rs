//! How a request is handed to a fresh instance, in each world: WASI 0.2's
//! `incoming-handler.handle` with a response outparam, or WASI 0.3's
//! `handler.handle`, an async export whose response streams while the
//! store's event loop runs. Either way the response head comes back on a
//! channel ([`Answer`]) while the guest goes on running in its task, and
//! the same deadline, limits and fresh store apply.

use std::pin::Pin;
use std::time::Instant;

use bytes::Bytes;
use http::Request;
use hyper::body::Body;
use tokio::sync::oneshot;
use wasmtime::Store;
use wasmtime::component::Resource;
use wasmtime_wasi_http::handler::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};
use wasmtime_wasi_http::{WasiHttpView as _, p3};

use mayfly_sandbox::Host;

use super::body::LimitedBody;
use crate::metrics::ComponentMetrics;

/// A response head, or the guest's error instead of one.
pub(super) type Head = Result<http::Response<HyperOutgoingBody>, String>;

/// Where the response head arrives.
pub(super) enum Answer {
    Http02(oneshot::Receiver<Result<http::Response<HyperOutgoingBody>, ErrorCode>>),
    Http03(oneshot::Receiver<Head>),
}

impl Answer {
    /// The head, or `Err` if the guest gave none (it trapped, ran out of
    /// time, or returned without answering).
    pub(super) async fn head(self) -> Result<Head, oneshot::error::RecvError> {
        match self {
            Answer::Http02(receiver) => Ok(receiver.await?.map_err(|code| code_text(&code))),
            Answer::Http03(receiver) => receiver.await,
        }
    }
}

/// The request's future that reports body errors back to a 0.3 guest.
type BodyIo = Pin<Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send + 'static>>;

/// A request, ready to be handled by an instance of its component.
pub(super) struct Invocation {
    pre: ProxyPre<Host>,
    request: Prepared,
}

/// The request, put in the store for the handler's world.
enum Prepared {
    Http02 {
        request: Resource<HostIncomingRequest>,
        outparam: Resource<HostResponseOutparam>,
    },
    Http03 {
        request: p3::Request,
        io: BodyIo,
        head: oneshot::Sender<Head>,
    },
}

impl Invocation {
    /// Puts `request` in `store` for the world of `pre`'s handler.
    pub(super) fn new<B>(
        pre: &ProxyPre<Host>,
        store: &mut Store<Host>,
        request: Request<LimitedBody<B>>,
    ) -> Result<(Self, Answer), String>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        match pre {
            ProxyPre::P2(pre) => {
                let (sender, receiver) = oneshot::channel();
                let mut http = store.data_mut().http();
                let request = http
                    .new_incoming_request(Scheme::Http, request)
                    .map_err(|err| err.to_string())?;
                let outparam = http
                    .new_response_outparam(sender)
                    .map_err(|err| err.to_string())?;
                let invocation = Invocation {
                    pre: ProxyPre::P2(pre.clone()),
                    request: Prepared::Http02 { request, outparam },
                };
                Ok((invocation, Answer::Http02(receiver)))
            }
            ProxyPre::P3(pre) => {
                let (head, receiver) = oneshot::channel();
                let (request, io) = p3::Request::from_http(store.data_mut().http().hooks, request);
                let invocation = Invocation {
                    pre: ProxyPre::P3(pre.clone()),
                    request: Prepared::Http03 {
                        request,
                        io: Box::pin(io),
                        head,
                    },
                };
                Ok((invocation, Answer::Http03(receiver)))
            }
        }
    }

    /// Instantiates the component in `store` and handles the request, until
    /// the guest is done: its response body sent, and (for 0.3) every task
    /// it started finished.
    pub(super) async fn run(
        self,
        store: &mut Store<Host>,
        metrics: &ComponentMetrics,
    ) -> wasmtime::Result<()> {
        let started = Instant::now();
        let proxy = self.pre.instantiate_async(&mut *store).await?;
        metrics.instantiated(started.elapsed());
        match (proxy, self.request) {
            (Proxy::P2(proxy), Prepared::Http02 { request, outparam }) => {
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut *store, request, outparam)
                    .await
            }
            (Proxy::P3(service), Prepared::Http03 { request, io, head }) => {
                store
                    .run_concurrent(async move |accessor| -> wasmtime::Result<()> {
                        match service.handle(accessor, request).await? {
                            Ok(response) => {
                                let response = accessor
                                    .with(|mut access| response.into_http(&mut access, io))?;
                                let _ = head.send(Ok(response));
                            }
                            Err(code) => {
                                let _ = head.send(Err(code_text(&code)));
                            }
                        }
                        // The body streams, and tasks the guest left
                        // running go on, only while this loop turns.
                        std::future::poll_fn(|cx| accessor.poll_no_interesting_tasks(cx)).await;
                        Ok(())
                    })
                    .await?
            }
            // (A request is made for its handler's world.)
            _ => Err(wasmtime::format_err!(
                "a request was made for another world than its handler's"
            )),
        }
    }
}

/// A guest's error code (of either world) as the operator reads it: its
/// message is the guest's own, so it is cut while it is formatted.
fn code_text(code: &dyn std::fmt::Debug) -> String {
    mayfly_sandbox::failure::debug_capped(code, mayfly_host_api::report::MESSAGE_CAP)
}
