//! The request path: a fresh instance per request, dropped when it is done.
//!
//! A request goes through four steps, a file each:
//!
//! 1. `admit`: what can be refused before any instance is made (a bad
//!    `Host`, a head or a declared body over the component's limits), and
//!    a turn at the component's gate (bounded queue);
//! 2. `prepare`: the call's place in its chain, a new store from the
//!    component's sandbox (its own host state, limits and deadline), and
//!    the request put in it for the handler's world (`invoke`);
//! 3. `run`: the guest, in a local task of its own, bounded by the
//!    deadline, so that it can keep streaming the body after the response
//!    head has gone out; how it ended ([`mayfly_sandbox::Ended`]) is
//!    counted and logged there, and the store dropped;
//! 4. `answer`: the guest's response (its head gathered with the body it
//!    has ready), or the host's own `Refusal` when it gave none.
//!
//! Nothing here builds an error value on the success path: errors capture
//! backtraces, which would cost real throughput.

mod admit;
mod answer;
mod body;
mod gather;
mod head;
mod invoke;
mod prepare;
mod refusal;
mod run;
mod spin;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use hyper::body::Body;
use mayfly_host_api::chain::CallChain;
use mayfly_host_api::outbound::{Dispatcher, X_REQUEST_ID};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

pub use self::body::ClientBody;
pub use self::head::head_size;
pub(crate) use self::refusal::Refusal;
pub use self::refusal::plain;
use crate::app::App;
use crate::component::LoadedComponent;
use crate::logging;
use crate::manifest::AppKind;

/// Where a request comes from.
pub enum Origin<'a> {
    /// A client of the server: its body is read within `body`'s bounds,
    /// and the guest's internal calls go to the worker's `dispatcher`.
    Client {
        /// The client's address, if the socket told.
        peer: Option<SocketAddr>,
        /// The bounds of the client's request body.
        body: ClientBody,
        /// The serving worker's dispatcher.
        dispatcher: &'a Dispatcher,
    },
    /// Another component of the app: a hop of its caller's chain (one
    /// further on), which it may not outlast.
    Component(&'a CallChain),
    /// Nobody in particular (a benchmark): no bound but the deadline, and
    /// no app to call into.
    Direct,
}

/// Routes `request` to its component and serves it; unmatched paths get 404.
///
/// Must run inside a [`tokio::task::LocalSet`]. `guard` is held until the
/// guest has finished, including any work after its response was sent.
pub async fn dispatch<B, G>(
    app: &App,
    mut request: Request<B>,
    guard: G,
    origin: Origin<'_>,
) -> Response<HyperOutgoingBody>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
    G: 'static,
{
    match app.route(request.uri().path()) {
        Some((component, route)) => {
            if app.kind() == AppKind::Spin {
                let peer = match &origin {
                    Origin::Client { peer, .. } => *peer,
                    Origin::Component(_) | Origin::Direct => None,
                };
                spin::add_headers(&mut request, route, peer);
            }
            handle(component, request, guard, origin).await
        }
        None => {
            app.metrics().unrouted();
            let response = Refusal::no_route().answer(None);
            if let Some(line) = logging::logs_requests().then(|| line_of(&request)) {
                logging::request_line(None, "", &line, response.status(), Duration::ZERO);
            }
            response
        }
    }
}

/// Serves one request with a fresh instance of `component`.
///
/// Must run inside a [`tokio::task::LocalSet`]. `guard` is held until the
/// guest has finished.
pub async fn handle<B, G>(
    component: &Arc<LoadedComponent>,
    mut request: Request<B>,
    guard: G,
    origin: Origin<'_>,
) -> Response<HyperOutgoingBody>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
    G: 'static,
{
    let arrived = Instant::now();
    let request_id = head::request_id(&mut request);
    let line = logging::logs_requests().then(|| line_of(&request));
    let mut response = serve(component, request, guard, arrived, &request_id, origin)
        .await
        .unwrap_or_else(|refusal| refusal.answer(Some(&component.metrics)));
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    component
        .metrics
        .request(response.status().as_u16(), arrived.elapsed());
    if let Some(line) = line {
        let name = Some(component.name());
        logging::request_line(
            name,
            &request_id,
            &line,
            response.status(),
            arrived.elapsed(),
        );
    }
    response
}

/// What a request's log line shows of it: its method and path.
fn line_of<B>(request: &Request<B>) -> (http::Method, String) {
    (request.method().clone(), request.uri().path().to_owned())
}

/// Admits, prepares and runs the request, and answers it.
async fn serve<B, G>(
    component: &Arc<LoadedComponent>,
    request: Request<B>,
    guard: G,
    arrived: Instant,
    request_id: &Arc<str>,
    origin: Origin<'_>,
) -> Result<Response<HyperOutgoingBody>, Refusal>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
    G: 'static,
{
    let chain = prepare::chain(component, arrived, request_id, &origin);
    let (request, turn) = admit::admit(component, request, chain.deadline).await?;
    let client = match origin {
        Origin::Client { body, .. } => Some(body),
        Origin::Component(_) | Origin::Direct => None,
    };
    let prepared = prepare::prepare(component, request, chain, client)?;
    let running = run::spawn(component, prepared.guest, turn, guard, arrived);
    Ok(answer::answer(component, prepared.answer, running).await)
}
