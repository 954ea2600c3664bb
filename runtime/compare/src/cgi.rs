//! The CGI-style host of `mayfly compare`'s HTTP variant: a small HTTP
//! server that runs the workload in a fresh isolate (process, namespaces or
//! OCI container) for every request, as `mayfly serve` gives every request
//! a fresh component instance. It answers only the harness: every request
//! must carry its random [`Token`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::{Semaphore, oneshot};

use crate::runners::Runner;
use crate::token::Token;

/// How long one call may run inside the CGI host before it is stopped.
const CGI_DEADLINE: Duration = Duration::from_secs(30);

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::{CgiHost, workload_args};
    use crate::load::{Target, load};
    use crate::mode::Mode;
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
