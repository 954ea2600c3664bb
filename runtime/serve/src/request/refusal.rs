//! Every answer the host gives instead of a guest's: a [`Refusal`] carries
//! its status, its one-line message and the limit it counts as, and turns
//! into a response in one place, so nothing on the request path formats an
//! error response inline.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use mayfly_sandbox::Ended;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::body::ClientFault;
use crate::component::LoadedComponent;
use crate::limits::Limit;
use crate::metrics::ComponentMetrics;

/// The most of a guest's own text (an error code's message, a trap's
/// reason) an answer quotes, in bytes.
pub(super) const ANSWER_CAP: usize = 1 << 10;

/// An answer of the host's own.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    message: String,
    /// The limit it counts as, when it is counted here (refusals made of
    /// how a guest ended are counted where it ended).
    limit: Option<Limit>,
    /// `Retry-After: 1`: the server is busy, not the request wrong.
    retry: bool,
    /// `Connection: close`: nothing more is read from this client.
    close: bool,
}

impl Refusal {
    fn new(status: StatusCode, message: String) -> Self {
        Self {
            status,
            message,
            limit: None,
            retry: false,
            close: false,
        }
    }

    fn counted(mut self, limit: Limit) -> Self {
        self.limit = Some(limit);
        self
    }

    fn retry(mut self) -> Self {
        self.retry = true;
        self
    }

    /// 404: no route matches.
    pub(crate) fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "no route matches this path".into())
    }

    /// 400: no `Host` header (and no authority in the target).
    pub(super) fn missing_host() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "missing Host header".into())
    }

    /// 400: more than one `Host` header (RFC 9112).
    pub(super) fn two_hosts() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "more than one Host header".into())
    }

    /// 431: a head over the server's `--max-header-bytes`.
    pub(crate) fn head_too_large_for_server(max: usize) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the request head exceeds the limit of {max} bytes"),
        )
    }

    /// 431: a head over the component's `request_headers`.
    pub(super) fn head_too_large(component: &LoadedComponent, max: usize) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request head exceeds component `{}`'s limit of {max} bytes",
                component.name()
            ),
        )
        .counted(Limit::RequestHeaders)
    }

    /// 413: a body over the component's `request_body`, declared (counted
    /// here) or found while it streamed (counted when the guest is done).
    pub(super) fn body_too_large(component: &LoadedComponent, declared: bool) -> Self {
        let refusal = Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body exceeds component `{}`'s limit of {} bytes",
                component.name(),
                component.limits().http.max_request_body
            ),
        );
        if declared {
            refusal.counted(Limit::RequestBody)
        } else {
            refusal
        }
    }

    /// 503: the component's instances and queue are full.
    pub(super) fn component_busy(component: &LoadedComponent) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "component `{}` is at its limit of {} concurrent requests; retry shortly",
                component.name(),
                component.limits().http.instances
            ),
        )
        .counted(Limit::Concurrency)
        .retry()
    }

    /// 503: guests hold every descriptor they may.
    pub(super) fn no_descriptors() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server holds all the files it may open for guests; retry shortly".into(),
        )
        .retry()
    }

    /// 500: a granted directory could not be opened.
    pub(super) fn no_grants(component: &LoadedComponent) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "component `{}` could not be given its grants",
                component.name()
            ),
        )
    }

    /// 400: the request cannot be handed to a guest.
    pub(super) fn unpassable(reason: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("cannot pass this request to the component: {reason}"),
        )
    }

    /// 502: the guest's response has too many headers.
    pub(super) fn too_many_response_headers(component: &LoadedComponent, sent: usize) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "component `{}` sent {sent} response headers; the limit is {}",
                component.name(),
                component.limits().http.max_response_headers
            ),
        )
        .counted(Limit::ResponseHeaders)
    }

    /// 500: the guest answered with an error code (its text quoted, cut).
    pub(super) fn error_code(component: &LoadedComponent, code: &str) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "component `{}` failed: {}",
                component.name(),
                mayfly_host_api::escape::escape_capped(code, ANSWER_CAP)
            ),
        )
    }

    /// The answer for a guest that ended with no response: 500 if it
    /// returned without one or failed, 504 past its deadline (of `budget`),
    /// 503 with no instance slot for it. Counted where it ended.
    pub(super) fn ended(component: &LoadedComponent, ended: &Ended, budget: Duration) -> Self {
        let name = component.name();
        match ended {
            Ended::Finished | Ended::Exited(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("component `{name}` sent no response"),
            ),
            Ended::Deadline => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("component `{name}` exceeded its request deadline of {budget:?}"),
            ),
            Ended::PoolFull => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is at its instance limit; retry shortly".into(),
            )
            .retry(),
            Ended::Limit { .. } | Ended::Failed(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("component `{name}` failed: {}", ended.reason(ANSWER_CAP)),
            ),
        }
    }

    /// 500: the guest's task itself failed (a bug).
    pub(super) fn task_failed(component: &LoadedComponent) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("component `{}` failed", component.name()),
        )
    }

    /// The client's fault: 413 for a body too large (counted when the guest
    /// is done), else 408, and the connection closes.
    pub(super) fn client(component: &LoadedComponent, fault: ClientFault) -> Self {
        let message = match fault {
            ClientFault::TooLarge => return Self::body_too_large(component, false),
            ClientFault::Paused(timeout) => {
                format!("the request body paused for more than {timeout:?}")
            }
            ClientFault::TooSlow(rate) => {
                format!("the request body came slower than {rate} bytes per second")
            }
            ClientFault::Evicted => {
                "the server needed this connection while the request body waited".into()
            }
        };
        let mut refusal = Self::new(StatusCode::REQUEST_TIMEOUT, message);
        refusal.close = true;
        refusal
    }

    /// The response, counting its limit (if it is counted here) in
    /// `metrics`.
    pub(crate) fn answer(self, metrics: Option<&ComponentMetrics>) -> Response<HyperOutgoingBody> {
        if let (Some(limit), Some(metrics)) = (self.limit, metrics) {
            metrics.limit(limit);
        }
        let mut response = plain(self.status, format!("{}\n", self.message));
        if self.retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
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
