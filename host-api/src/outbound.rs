//! Outbound HTTP from guests: deny by default.
//!
//! [`OutboundPolicy`] is the [`WasiHttpHooks`] of every store. A guest that
//! calls `wasi:http/outgoing-handler.handle` gets the standard
//! `error-code.HTTP-request-denied` back when the destination was not
//! granted, so a well-written guest can report it; the host never opens a
//! socket on the guest's behalf.

use std::future::Future;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The outbound HTTP grant of one component instance.
///
/// The default grants nothing.
#[derive(Debug, Default, Clone)]
pub struct OutboundPolicy {
    _private: (),
}

impl OutboundPolicy {
    /// A policy under which every outbound request is denied.
    pub fn deny_all() -> Self {
        Self::default()
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _on_response_error: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        Box::new(std::future::ready(Err(Error::HttpRequestDenied)))
    }
}
