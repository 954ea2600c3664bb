//! The admin API, on its own loopback port (off unless `--admin-listen` is
//! given).
//!
//! | request | token | what |
//! | --- | --- | --- |
//! | `GET /healthz` | no | `200 ok` while the process serves |
//! | `GET /readyz` | no | `200 ready`, or `503 draining` during shutdown |
//! | `GET /metrics` | no | Prometheus metrics |
//! | `GET /v1/components` | yes | every component's versions, and the live one |
//! | `PUT /v1/components/NAME` | yes | the body (a `.wasm`) becomes NAME's next version |
//! | `POST /v1/components/NAME/rollback` | yes | NAME's previous version goes back live |
//!
//! The token is a bearer token (`Authorization: Bearer TOKEN`) taken from a
//! file or an environment variable, never from the command line.
//!
//! The two health checks can also be served alone, on any address
//! ([`serve_health`], `--health-listen`): that is what an orchestrator's
//! probes reach, from outside the host's loopback.
//!
//! Each listener serves at most [`MAX_CONNECTIONS`] connections at once,
//! within the descriptors the host keeps for itself; at the cap the oldest
//! idle connection is closed to make room, as on the app's listener, so
//! idle connections cannot take the process's descriptors.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;

use crate::connections::Connections;
use crate::live::{LiveApp, UpdateError};

/// Connections each of the admin API and the health checks serves at once
/// (both fit in the descriptors the server keeps beside its
/// `--max-connections`).
pub const MAX_CONNECTIONS: usize = 32;

/// Largest component a deploy may upload.
const MAX_UPLOAD: usize = 256 << 20;

type AdminResponse = Response<Full<Bytes>>;

/// How long an admin client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the admin API on `listener` until the process ends.
pub async fn serve(listener: TcpListener, live: Arc<LiveApp>, token: Arc<str>) {
    serve_capped(listener, "admin API", move |request| {
        let live = live.clone();
        let token = token.clone();
        async move { route(request, &live, &token).await }
    })
    .await;
}

/// Serves only `GET /healthz` and `GET /readyz` on `listener`, to anyone
/// who can reach it, until the process ends: nothing here changes the app
/// or reveals more than whether it is serving and whether it is draining.
pub async fn serve_health(listener: TcpListener, live: Arc<LiveApp>) {
    serve_capped(
        listener,
        "health checks",
        move |request: Request<Incoming>| {
            let response = health(request.method(), request.uri().path(), &live)
                .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "no such health check\n"));
            async move { response }
        },
    )
    .await;
}

/// Serves `answer` on `listener`, at most [`MAX_CONNECTIONS`] connections
/// at once: at the cap, the client just accepted waits (and no other is
/// accepted) until the oldest idle connection has closed to make room.
async fn serve_capped<F, A>(listener: TcpListener, what: &'static str, answer: F)
where
    F: Fn(Request<Incoming>) -> A + Clone + Send + Sync + 'static,
    A: Future<Output = AdminResponse> + Send + 'static,
{
    let connections = Connections::new(MAX_CONNECTIONS);
    loop {
        let stream = crate::server::accept_or_back_off(&listener, what).await;
        let place = Arc::new(connections.place().await);
        let answer = answer.clone();
        tokio::spawn(async move {
            let busy_place = place.clone();
            let service = service_fn(move |request| {
                // Not idle until it is answered.
                let busy = busy_place.busy();
                let answer = answer(request);
                async move {
                    let response = answer.await;
                    drop(busy);
                    Ok::<_, Infallible>(response)
                }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = place.asked_to_close() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

/// Binds the health-check port, on any address.
pub async fn bind_health(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {addr} for health checks: {err}"))
}

/// The answer to a health check, or `None` if this is not one.
fn health(method: &Method, path: &str, live: &LiveApp) -> Option<AdminResponse> {
    match (method, path) {
        (&Method::GET, "/healthz") => Some(text(StatusCode::OK, "ok\n")),
        (&Method::GET, "/readyz") if live.draining() => {
            Some(text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"))
        }
        (&Method::GET, "/readyz") => Some(text(StatusCode::OK, "ready\n")),
        _ => None,
    }
}

/// Binds the admin port; only loopback addresses are allowed.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    if !addr.ip().is_loopback() {
        anyhow::bail!(
            "--admin-listen {addr}: the admin API listens on loopback only (127.0.0.1 or ::1)"
        );
    }
    TcpListener::bind(addr)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {addr} for the admin API: {err}"))
}

/// How long a request with a wrong or missing token waits for its 401,
/// one at a time across the whole admin API: guessing the token goes at
/// this pace at most, however many connections try.
const FAILED_TOKEN_PAUSE: Duration = Duration::from_millis(250);

/// Held while a failed token attempt waits out its pause.
static FAILED_TOKEN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether `request` is addressed to a loopback name (`localhost`,
/// `127.0.0.1`, `[::1]`, with any port): a page on another site that
/// rebinds its own name to 127.0.0.1 sends its own name as `Host`, and is
/// turned away.
fn addressed_to_loopback<B>(request: &Request<B>) -> bool {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
        });
    let Some(host) = host else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn route(request: Request<Incoming>, live: &Arc<LiveApp>, token: &str) -> AdminResponse {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    if !addressed_to_loopback(&request) {
        return text(
            StatusCode::MISDIRECTED_REQUEST,
            "the admin API answers requests addressed to localhost, 127.0.0.1 or [::1] only\n",
        );
    }
    if let Some(response) = health(&method, &path, live) {
        return response;
    }
    match (&method, path.as_str()) {
        (&Method::GET, "/metrics") => {
            let mut response = text(StatusCode::OK, &live.current().metrics().render());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            response
        }
        _ if path.starts_with("/v1/") => {
            if !authorized(&request, token) {
                let pause = FAILED_TOKEN.lock().await;
                tokio::time::sleep(FAILED_TOKEN_PAUSE).await;
                drop(pause);
                let mut response = text(
                    StatusCode::UNAUTHORIZED,
                    "this needs `Authorization: Bearer TOKEN` with the admin token\n",
                );
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            versioned(request, method, &path, live).await
        }
        _ => text(StatusCode::NOT_FOUND, "no such admin endpoint\n"),
    }
}

async fn versioned(
    request: Request<Incoming>,
    method: Method,
    path: &str,
    live: &Arc<LiveApp>,
) -> AdminResponse {
    let rest = path.trim_start_matches("/v1/components");
    match (
        method,
        rest.trim_matches('/')
            .split('/')
            .collect::<Vec<_>>()
            .as_slice(),
    ) {
        (Method::GET, [""]) => json(StatusCode::OK, &components(live)),
        (Method::PUT, [name]) if !name.is_empty() => {
            let name = (*name).to_string();
            let bytes = match Limited::new(request.into_body(), MAX_UPLOAD)
                .collect()
                .await
            {
                Ok(body) => body.to_bytes().to_vec(),
                Err(err) => {
                    return text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("cannot read the upload (at most {MAX_UPLOAD} bytes): {err}\n"),
                    );
                }
            };
            // Compiling takes a while: off the async threads.
            update(live, name, "deploy", move |live, name| {
                live.deploy(name, bytes)
            })
            .await
        }
        (Method::POST, [name, "rollback"]) => {
            // It waits for an update in progress (a deploy compiling): off
            // the async threads.
            update(live, (*name).to_string(), "rollback", |live, name| {
                live.rollback(name)
            })
            .await
        }
        _ => text(StatusCode::NOT_FOUND, "no such admin endpoint\n"),
    }
}

/// Runs `change` (a deploy or a rollback of component `name`) on a blocking
/// thread, and answers with the version it made live, or why not.
async fn update(
    live: &Arc<LiveApp>,
    name: String,
    verb: &str,
    change: impl FnOnce(&LiveApp, &str) -> Result<u32, UpdateError> + Send + 'static,
) -> AdminResponse {
    let changing = live.clone();
    let target = name.clone();
    match tokio::task::spawn_blocking(move || change(&changing, &target)).await {
        Ok(Ok(version)) => {
            tracing::info!(component = %name, "{verb}: version {version} is live");
            json(
                StatusCode::OK,
                &serde_json::json!({ "component": name, "version": version }),
            )
        }
        Ok(Err(err)) => {
            tracing::error!(component = %name, "{verb} refused: {err}");
            update_error(&err)
        }
        Err(err) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the {verb} failed: {err}\n"),
        ),
    }
}

fn components(live: &LiveApp) -> serde_json::Value {
    let list: Vec<serde_json::Value> = live
        .versions()
        .into_iter()
        .map(|(name, versions, live)| {
            let versions: Vec<serde_json::Value> = versions
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "version": v.number,
                        "sha256": v.sha256,
                        "origin": v.origin,
                        "deployed_at": v.deployed_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                    })
                })
                .collect();
            serde_json::json!({ "component": name, "live": live, "versions": versions })
        })
        .collect();
    serde_json::json!({ "components": list })
}

fn update_error(err: &UpdateError) -> AdminResponse {
    let status = match err {
        UpdateError::NoSuchComponent(_) => StatusCode::NOT_FOUND,
        UpdateError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        UpdateError::NothingToRollBack(_) => StatusCode::CONFLICT,
    };
    json(status, &serde_json::json!({ "error": err.to_string() }))
}

/// Compares the bearer token in constant time.
fn authorized<B>(request: &Request<B>, token: &str) -> bool {
    let Some(given) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return false;
    };
    // In constant time: how much of a guess was right must not show.
    bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

fn text(status: StatusCode, body: &str) -> AdminResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json(status: StatusCode, value: &serde_json::Value) -> AdminResponse {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
