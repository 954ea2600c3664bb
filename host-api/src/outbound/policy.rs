//! The outbound policy of one instance: what its `wasi:http` requests may
//! reach, and where its internal calls go.

use std::future::Future;
use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::connect;
use super::pattern::{HostPattern, internal_component};
use crate::body_buffer::{BODY_BUFFER, BODY_CHUNK, LeasedBody};
use crate::budget::{Exhausted, InstanceBudget, MemoryLease};
use crate::chain::CallChain;
use crate::report::Reporter;

/// The header that names a request, in logs and between components.
pub const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// How many internal hops one external request may make.
pub const MAX_HOPS: u32 = 8;

/// A call from one component to another of the same app, for the worker
/// thread's dispatcher to serve.
pub struct InternalCall {
    /// The component called.
    pub component: String,
    /// The request, as the calling guest built it.
    pub request: http::Request<WasiBody>,
    /// The call's place in its chain: its caller's, one hop further (the
    /// hop may not outlast the request it is part of).
    pub chain: CallChain,
    /// Where the response goes; `None` if there is no such component.
    pub reply: tokio::sync::oneshot::Sender<Option<http::Response<WasiBody>>>,
}

/// The sending side of a worker thread's dispatcher.
pub type Dispatcher = tokio::sync::mpsc::Sender<InternalCall>;

/// How many internal calls may wait for a worker's dispatcher to pick them
/// up. The dispatcher hands each on at once (the called component's own
/// instance and queue limits then apply), so this is only reached when the
/// worker thread is stalled; a call beyond it fails in the calling guest.
pub const DISPATCH_QUEUE: usize = 1024;

/// The outbound HTTP grant of one component instance, and the
/// `wasi:http` hooks of its store.
#[derive(Debug)]
pub struct OutboundPolicy {
    allowed: Arc<[HostPattern]>,
    /// Private, loopback and link-local addresses are granted whatever the
    /// pattern (`allow_private_networks`).
    private_networks: bool,
    /// What the instance's connections count against.
    budget: Arc<InstanceBudget>,
    /// Where this instance stands in its chain of calls.
    chain: CallChain,
    /// Denied and failed calls, for the operator; capped per request.
    reporter: Arc<Reporter>,
    /// The lease of the WASI 0.3 body buffer wasmtime-wasi-http has just
    /// made (it asks for the buffer's size first), until the body is
    /// handed over to the outbound request it belongs to.
    body_lease: Option<Result<MemoryLease, Exhausted>>,
    /// The leases of WASI 0.3 bodies that were not sent (the instance's
    /// response), held for as long as the store.
    kept_leases: Vec<MemoryLease>,
}

impl OutboundPolicy {
    /// The policy of an instance of `component` at `chain`: requests that
    /// match one of `allowed` may go out (none, if it is empty), to public
    /// addresses, or to any if `private_networks`. Each connection counts
    /// against `budget`.
    pub fn new(
        component: Arc<str>,
        allowed: Arc<[HostPattern]>,
        private_networks: bool,
        chain: CallChain,
        budget: Arc<InstanceBudget>,
    ) -> Self {
        Self {
            reporter: Arc::new(Reporter::new(
                component,
                chain.request_id.clone(),
                "outbound HTTP",
            )),
            allowed,
            private_networks,
            budget,
            chain,
            body_lease: None,
            kept_leases: Vec::new(),
        }
    }

    /// The patterns this policy allows.
    pub fn allowed(&self) -> &[HostPattern] {
        &self.allowed
    }

    /// Whether a request to this URI may go out.
    pub fn permits(&self, uri: &http::Uri) -> bool {
        self.reach(uri).is_some()
    }

    /// Whether a request to this URI may go out (`None`: no), and if so,
    /// whether to non-public addresses too: only when a matching pattern
    /// names the address (an IP literal, `localhost`) or the grant opens
    /// private networks.
    fn reach(&self, uri: &http::Uri) -> Option<bool> {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return None;
        };
        let port = uri.port_u16();
        let mut matching = self
            .allowed
            .iter()
            .filter(|p| p.matches(scheme, host, port))
            .peekable();
        matching.peek()?;
        Some(self.private_networks || matching.any(HostPattern::names_address))
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
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _on_response_error: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        // A WASI 0.3 request's body buffer was made just before this call,
        // and is charged for as long as the request's body lives. (A WASI
        // 0.2 body is charged when the guest asks for it.)
        match self.body_lease.take() {
            Some(Ok(lease)) => {
                request = request.map(|body| LeasedBody::wrap(body, lease));
            }
            Some(Err(exhausted)) => {
                self.reporter.report(&format!(
                    "outbound request to {} refused: {exhausted}",
                    request.uri()
                ));
                return Box::new(std::future::ready(Err(Error::InternalError(Some(
                    exhausted.to_string(),
                )))));
            }
            None => {}
        }
        let Some(private_ok) = self.reach(request.uri()) else {
            self.reporter.report(&format!(
                "outbound request to {} denied: not in allowed_outbound_hosts",
                request.uri()
            ));
            return Box::new(std::future::ready(Err(Error::HttpRequestDenied)));
        };
        // Host names are case-insensitive, like the grant check above:
        // `Api.Mayfly.Internal` is component `api`, never a DNS name.
        if let Some(target) = request.uri().host().and_then(internal_component) {
            return self.internal(target, request);
        }
        let ticket = match self.budget.descriptor() {
            Ok(ticket) => ticket,
            Err(exhausted) => {
                self.reporter.report(&format!(
                    "outbound request to {} refused: {exhausted}",
                    request.uri()
                ));
                return Box::new(std::future::ready(Err(Error::ConnectionLimitReached)));
            }
        };
        let reporter = self.reporter.clone();
        let uri = request.uri().to_string();
        Box::new(async move {
            connect::send(request, options, private_ok, ticket)
                .await
                .map_err(|refusal| {
                    if let Some(reason) = refusal.reason {
                        reporter.report(&format!("outbound request to {uri} refused: {reason}"));
                    }
                    refusal.error
                })
        })
    }

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        // With the one slot wasmtime-wasi-http adds, two writes.
        1
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK
    }

    /// Asked as a WASI 0.3 body's buffer is made, for a response or an
    /// outbound request: the buffer is leased here.
    fn p3_outgoing_body_chunk_size(&mut self) -> usize {
        let lease = self.budget.lease_memory(BODY_BUFFER);
        if let Some(Ok(earlier)) = self.body_lease.replace(lease) {
            self.kept_leases.push(earlier);
        }
        BODY_CHUNK
    }
}

impl OutboundPolicy {
    /// Hands `request` to the worker's dispatcher, for component `target`.
    fn internal(&self, target: String, mut request: http::Request<WasiBody>) -> ResponseFuture {
        let fail = |error: Error, why: &str| -> ResponseFuture {
            self.reporter
                .report(&format!("internal call to `{target}` failed: {why}"));
            Box::new(std::future::ready(Err(error)))
        };
        let chain = self.chain.next_hop();
        if chain.hops > MAX_HOPS {
            return fail(
                Error::LoopDetected,
                &format!("more than {MAX_HOPS} hops (a loop?)"),
            );
        }
        let Some(dispatcher) = &self.chain.dispatcher else {
            return fail(
                Error::DestinationNotFound,
                "internal calls reach only the components of a served app, and this instance \
                 serves none",
            );
        };
        // The hop is part of the caller's request: it goes by the same id
        // unless the guest chose one.
        if !request.headers().contains_key(X_REQUEST_ID)
            && let Ok(value) = http::HeaderValue::from_str(&self.chain.request_id)
        {
            request.headers_mut().insert(X_REQUEST_ID, value);
        }
        let (reply, response) = tokio::sync::oneshot::channel();
        let call = InternalCall {
            component: target.clone(),
            request,
            chain,
            reply,
        };
        match dispatcher.try_send(call) {
            Ok(()) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                return fail(
                    Error::ConnectionLimitReached,
                    &format!("{DISPATCH_QUEUE} internal calls are already waiting"),
                );
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                return fail(Error::DestinationNotFound, "the server is shutting down");
            }
        }
        let reporter = self.reporter.clone();
        Box::new(async move {
            match response.await {
                Ok(Some(response)) => {
                    let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                        Box::new(std::future::ready(Ok(())));
                    Ok((response, done))
                }
                _ => {
                    reporter.report(&format!(
                        "internal call to `{target}` failed: the app has no such component"
                    ));
                    Err(Error::DestinationNotFound)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(patterns: &[&str]) -> OutboundPolicy {
        let allowed: Vec<HostPattern> = patterns
            .iter()
            .map(|p| HostPattern::parse(p).unwrap())
            .collect();
        OutboundPolicy::new("test".into(), allowed.into(), false, chain(None), budget())
    }

    fn budget() -> Arc<InstanceBudget> {
        InstanceBudget::new(16, 1 << 20)
    }

    /// An outside request's place, with `dispatcher` for its internal calls.
    fn chain(dispatcher: Option<Dispatcher>) -> CallChain {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        CallChain {
            dispatcher,
            ..CallChain::new("1".into(), deadline)
        }
    }

    fn permits(policy: &OutboundPolicy, uri: &str) -> bool {
        policy.permits(&uri.parse().unwrap())
    }

    /// An internal call to `api`, under a policy that allows it.
    fn call_api(policy: &mut OutboundPolicy) -> ResponseFuture {
        use http_body_util::BodyExt as _;
        let body: WasiBody = http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = http::Request::get("http://api.mayfly.internal/")
            .body(body)
            .unwrap();
        policy.send_request(request, None, Box::new(std::future::ready(Ok(()))))
    }

    /// The outcome of `future` if it is ready at once.
    fn ready_now(future: ResponseFuture) -> Option<Result<(), Error>> {
        let mut future = Box::into_pin(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(result) => Some(result.map(|_| ())),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn internal_calls_waiting_for_the_dispatcher_are_bounded() {
        let (dispatcher, mut calls) = tokio::sync::mpsc::channel(DISPATCH_QUEUE);
        let allowed: Arc<[HostPattern]> =
            Arc::from([HostPattern::parse("http://api.mayfly.internal").unwrap()]);
        let mut policy = OutboundPolicy::new(
            "test".into(),
            allowed,
            false,
            chain(Some(dispatcher)),
            budget(),
        );
        // The dispatcher is stalled: calls wait for it, up to the bound...
        for _ in 0..DISPATCH_QUEUE {
            assert!(ready_now(call_api(&mut policy)).is_none());
        }
        // ...and the next one fails at once, in the guest.
        assert!(matches!(
            ready_now(call_api(&mut policy)),
            Some(Err(Error::ConnectionLimitReached))
        ));
        // Every waiting call is still there for the dispatcher, and once it
        // has picked them up there is room again.
        let mut waiting = 0;
        while let Ok(call) = calls.try_recv() {
            assert_eq!((call.component.as_str(), call.chain.hops), ("api", 1));
            waiting += 1;
        }
        assert_eq!(waiting, DISPATCH_QUEUE);
        assert!(ready_now(call_api(&mut policy)).is_none());
        // With no dispatcher left (the server is stopping), calls fail.
        drop(calls);
        assert!(matches!(
            ready_now(call_api(&mut policy)),
            Some(Err(Error::DestinationNotFound))
        ));
    }

    #[test]
    fn an_instance_without_a_dispatcher_cannot_call_into_an_app() {
        let mut policy = policy(&["http://api.mayfly.internal"]);
        assert!(matches!(
            ready_now(call_api(&mut policy)),
            Some(Err(Error::DestinationNotFound))
        ));
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let deny = OutboundPolicy::new("test".into(), Arc::from([]), false, chain(None), budget());
        assert!(!permits(&deny, "http://example.com/"));
        assert!(!permits(&deny, "https://localhost/"));
    }

    #[test]
    fn exact_hosts_and_default_ports() {
        let p = policy(&["https://api.example.com", "http://127.0.0.1:8080"]);
        assert!(permits(&p, "https://api.example.com/v1"));
        assert!(permits(&p, "https://API.example.com:443/"));
        assert!(!permits(&p, "https://api.example.com:8443/"));
        assert!(!permits(&p, "http://api.example.com/"));
        assert!(!permits(&p, "https://evil.com/?q=api.example.com"));
        assert!(permits(&p, "http://127.0.0.1:8080/"));
        assert!(!permits(&p, "http://127.0.0.1:8081/"));
        assert!(!permits(&p, "http://127.0.0.1/"));
    }

    #[test]
    fn ipv6_literals_with_and_without_a_port() {
        let p = policy(&[
            "http://[::1]",
            "https://[2001:db8::1]:8443",
            "http://[fe80::1]:*",
        ]);
        assert!(permits(&p, "http://[::1]/"));
        assert!(!permits(&p, "http://[::1]:8080/"));
        assert!(permits(&p, "https://[2001:db8::1]:8443/"));
        assert!(permits(&p, "http://[fe80::1]:9/"));
        assert!(p.allowed().iter().all(HostPattern::names_address));
    }

    #[test]
    fn wildcards() {
        let p = policy(&["https://*.example.com", "http://localhost:*"]);
        assert!(permits(&p, "https://a.example.com/"));
        assert!(permits(&p, "https://a.b.example.com/"));
        assert!(!permits(&p, "https://example.com/"));
        assert!(!permits(&p, "https://badexample.com/"));
        assert!(permits(&p, "http://localhost:1/"));
        assert!(permits(&p, "http://localhost:65535/"));
        assert!(!permits(&p, "https://localhost:443/"));
    }
}
