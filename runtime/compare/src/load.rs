//! The HTTP variant of `mayfly compare`: the same request served by
//! `mayfly serve` (a fresh component instance per request) and by a small
//! CGI-style host that starts a fresh isolate (process, namespaces or OCI
//! container) per request, both driven by the same built-in load generator
//! over keep-alive connections on loopback. The CGI host answers only the
//! harness: every request must carry its random [`Token`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::sync::{Semaphore, oneshot};

use crate::mode::Mode;
use crate::runners::Runner;
use crate::stats::{Latency, count, micros};
use crate::token::Token;

/// How long one call may run inside the CGI host before it is stopped.
const CGI_DEADLINE: Duration = Duration::from_secs(30);

/// Throughput and latency of one server at one number of connections.
#[derive(Debug, Clone, Serialize)]
pub struct HttpStats {
    /// The isolate each request gets: `wasm` is `mayfly serve`; the others
    /// are the CGI host running that mode.
    pub mode: Mode,
    /// Who served: `mayfly serve` or `cgi <mode>`.
    pub server: String,
    /// The request path (`/trivial`, `/json/N`).
    pub path: String,
    /// Connections in use at once.
    pub connections: usize,
    /// Requests answered (correctly or not).
    pub requests: usize,
    /// Requests per second.
    pub requests_per_second: f64,
    /// Latency of a request.
    #[serde(flatten)]
    pub latency: Latency,
    /// Requests that failed: a connection error, a status other than 200,
    /// or a body other than the expected answer.
    pub errors: usize,
    /// How the first failed request ended, if any.
    pub first_failure: Option<String>,
}

/// A CGI-style HTTP host: every request runs the workload once in a fresh
/// isolate from `runner` and answers with what it printed. `GET /trivial`
/// runs `trivial`; `GET /json/N` runs `json N`. A request without the
/// host's token (`Authorization: Bearer TOKEN`) gets `403` and runs
/// nothing: any local process can reach a loopback port. Stopped on drop.
pub struct CgiHost {
    addr: SocketAddr,
    token: Token,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CgiHost {
    /// Starts the host on a free loopback port, with `workers` event-loop
    /// threads and at most `in_flight` isolates at once.
    pub fn start(
        runner: Arc<dyn Runner>,
        workers: usize,
        in_flight: usize,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let token = Token::random().context("cannot make the CGI host's token")?;
        let (stop, stopped) = oneshot::channel();
        let permits = Arc::new(Semaphore::new(in_flight.max(1)));
        let accepted = token.clone();
        let thread = std::thread::Builder::new()
            .name("cgi-host".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = stopped => {}
                        () = accept(listener, runner, permits, accepted) => {}
                    }
                });
                // Connections still open are dropped with the runtime.
                runtime.shutdown_background();
            })?;
        Ok(Self {
            addr,
            token,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token every request must carry.
    pub fn token(&self) -> &Token {
        &self.token
    }
}

impl Drop for CgiHost {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    runner: Arc<dyn Runner>,
    permits: Arc<Semaphore>,
    token: Token,
) {
    let token = Arc::new(token);
    loop {
        let stream = mayfly_serve::server::accept_or_back_off(&listener, "cgi host").await;
        let _ = stream.set_nodelay(true);
        let runner = runner.clone();
        let permits = permits.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let runner = runner.clone();
                let permits = permits.clone();
                let allowed = token.is_in(request.headers());
                async move {
                    Ok::<_, Infallible>(if allowed {
                        cgi(request.uri().path(), runner, permits).await
                    } else {
                        refuse()
                    })
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The workload's arguments for a request path, as the HTTP guest reads it.
pub fn workload_args(path: &str) -> Option<Vec<String>> {
    match path.strip_prefix('/')?.split_once('/') {
        None if path == "/trivial" => Some(vec!["trivial".into()]),
        Some(("json", records)) if records.parse::<u32>().is_ok() => {
            Some(vec!["json".into(), records.into()])
        }
        _ => None,
    }
}

/// A plain-text answer.
fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// The answer to a request without the token: it runs nothing.
fn refuse() -> Response<Full<Bytes>> {
    text(
        StatusCode::FORBIDDEN,
        "this host serves only the `mayfly compare` that started it\n".into(),
    )
}

async fn cgi(
    path: &str,
    runner: Arc<dyn Runner>,
    permits: Arc<Semaphore>,
) -> Response<Full<Bytes>> {
    let Some(args) = workload_args(path) else {
        return text(StatusCode::NOT_FOUND, "try /trivial or /json/N\n".into());
    };
    let Ok(permit) = permits.acquire_owned().await else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "stopping\n".into());
    };
    // The permit goes with the call: a client that hangs up does not free
    // its place while its isolate still runs.
    let call = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        runner.call(&args, CGI_DEADLINE)
    })
    .await;
    match call {
        Ok(Ok(call)) if call.ended == "ok" => text(StatusCode::OK, call.stdout),
        Ok(Ok(call)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the workload ended: {}\n", call.ended),
        ),
        Ok(Err(err)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot run the workload: {err:#}\n"),
        ),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the call panicked\n".into(),
        ),
    }
}

/// A server for [`load`] to drive.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The isolate each request gets.
    pub mode: Mode,
    /// Who serves: `mayfly serve` or `cgi <mode>`.
    pub server: &'a str,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The token every request carries, for a server that needs one.
    pub token: Option<&'a Token>,
}

/// Drives `target` with `connections` keep-alive connections, each sending
/// `GET path` one after another for `duration`, and checks that every
/// answer is `200` with a body that starts with `expect`.
pub fn load(
    target: &Target<'_>,
    path: &str,
    expect: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<HttpStats> {
    let addr = target.addr;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let connections = connections.max(1);
    let (samples, elapsed) = runtime.block_on(async {
        let started = Instant::now();
        let until = started + duration;
        let authorization = target.token.map(Token::header_value);
        let mut tasks = Vec::with_capacity(connections);
        for _ in 0..connections {
            let (path, expect) = (path.to_string(), expect.to_string());
            let authorization = authorization.clone();
            tasks.push(tokio::spawn(async move {
                connection(addr, authorization.as_deref(), &path, &expect, until).await
            }));
        }
        let mut samples = Vec::new();
        for task in tasks {
            samples.extend(task.await.context("a load connection panicked")?);
        }
        anyhow::Ok((samples, started.elapsed()))
    })?;
    let mut latencies: Vec<f64> = samples
        .iter()
        .filter_map(|(latency, _)| latency.map(micros))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let failures: Vec<&String> = samples.iter().filter_map(|(_, f)| f.as_ref()).collect();
    Ok(HttpStats {
        mode: target.mode,
        server: target.server.to_string(),
        path: path.to_string(),
        connections,
        requests: latencies.len(),
        requests_per_second: count(latencies.len()) / elapsed.as_secs_f64(),
        latency: Latency::of(&latencies),
        errors: failures.len(),
        first_failure: failures.first().map(|f| f.to_string()),
    })
}

/// One connection's requests until `until`: each one's latency (`None` if
/// it got no answer) and, if it failed, how. A broken connection is opened
/// again.
async fn connection(
    addr: SocketAddr,
    authorization: Option<&str>,
    path: &str,
    expect: &str,
    until: Instant,
) -> Vec<(Option<Duration>, Option<String>)> {
    let mut samples = Vec::new();
    let mut sender = None;
    while Instant::now() < until {
        let begun = Instant::now();
        if sender.is_none() {
            match open(addr).await {
                Ok(opened) => sender = Some(opened),
                Err(err) => {
                    samples.push((None, Some(format!("connect: {err}"))));
                    // Do not spin on a server that is gone.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(send) = sender.as_mut() else {
            continue;
        };
        let mut request = Request::get(path).header(http::header::HOST, addr.to_string());
        if let Some(authorization) = authorization {
            request = request.header(http::header::AUTHORIZATION, authorization);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .expect("a GET with a valid path and token");
        let outcome = async {
            let response = send.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        }
        .await;
        let latency = begun.elapsed();
        samples.push(match outcome {
            Ok((StatusCode::OK, body)) if body.starts_with(expect.as_bytes()) => {
                (Some(latency), None)
            }
            Ok((status, body)) => (
                Some(latency),
                Some(format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)]).trim()
                )),
            ),
            Err(err) => {
                sender = None;
                (None, Some(format!("{err:#}")))
            }
        });
    }
    samples
}

async fn open(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::{CgiHost, Target, load, workload_args};
    use crate::Mode;
    use crate::runners::{Call, Runner};
    use crate::token::Token;

    /// Counts its calls, and answers each with `ok`.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Runner for Counting {
        fn call(&self, _: &[String], _: Duration) -> anyhow::Result<Call> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Call {
                stdout: "ok\n".into(),
                ended: "ok".into(),
                ..Call::default()
            })
        }
    }

    #[test]
    fn the_cgi_host_runs_nothing_for_a_request_without_its_token() {
        let runner = Arc::new(Counting::default());
        let host = CgiHost::start(runner.clone(), 1, 1).unwrap();
        let drive = |token: Option<&Token>| {
            let target = Target {
                mode: Mode::Process,
                server: "cgi",
                addr: host.addr(),
                token,
            };
            load(&target, "/trivial", "ok", 1, Duration::from_millis(50)).unwrap()
        };
        // With its token, every request is served by a call.
        let served = drive(Some(host.token()));
        assert!(served.requests > 0, "{served:?}");
        assert_eq!(served.errors, 0, "{served:?}");
        assert_eq!(runner.0.load(Ordering::SeqCst), served.requests);
        // Without it, or with another, every request is refused and no
        // call is made.
        let other = Token::random().unwrap();
        for refused in [drive(None), drive(Some(&other))] {
            assert!(refused.requests > 0, "{refused:?}");
            assert_eq!(refused.errors, refused.requests, "{refused:?}");
            let failure = refused.first_failure.unwrap_or_default();
            assert!(
                failure.starts_with("403 Forbidden: this host serves only"),
                "{failure}"
            );
        }
        assert_eq!(runner.0.load(Ordering::SeqCst), served.requests);
    }

    #[test]
    fn paths_map_to_the_workload_arguments() {
        assert_eq!(workload_args("/trivial"), Some(vec!["trivial".into()]));
        assert_eq!(
            workload_args("/json/1000"),
            Some(vec!["json".into(), "1000".into()])
        );
        assert_eq!(workload_args("/json/x"), None);
        assert_eq!(workload_args("/json/-1"), None);
        assert_eq!(workload_args("/probe"), None);
        assert_eq!(workload_args("trivial"), None);
    }
}
