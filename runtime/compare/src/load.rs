//! The load generator of `mayfly compare`'s HTTP variant, and the one HTTP
//! client of this crate: keep-alive HTTP/1.1 connections on loopback, each
//! sending `GET`s one after another, as fast as they are answered, and
//! every answer checked. The same client times the cold start's first
//! answer ([`crate::cold_start`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;

use crate::mode::Mode;
use crate::stats::{Latency, count, micros};
use crate::token::Token;

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
    let mut open = None;
    while Instant::now() < until {
        let begun = Instant::now();
        if open.is_none() {
            match Connection::open(addr).await {
                Ok(opened) => open = Some(opened),
                Err(err) => {
                    samples.push((None, Some(format!("connect: {err}"))));
                    // Do not spin on a server that is gone.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(connection) = open.as_mut() else {
            continue;
        };
        let outcome = connection.get(path, authorization).await;
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
                open = None;
                (None, Some(format!("{err:#}")))
            }
        });
    }
    samples
}

/// A keep-alive HTTP/1.1 connection to a server, for `GET`s one after
/// another: the one HTTP client of this crate.
pub(crate) struct Connection {
    addr: SocketAddr,
    sender: SendRequest<Empty<Bytes>>,
}

impl Connection {
    /// Connects to `addr`, with `TCP_NODELAY` (the requests are small, and
    /// timed). A task on the current runtime drives the connection until
    /// it is dropped.
    pub(crate) async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self { addr, sender })
    }

    /// `GET path`, with `Authorization: authorization` if given: the
    /// status and the whole body (de-chunked). After an error the
    /// connection is of no more use: open another.
    pub(crate) async fn get(
        &mut self,
        path: &str,
        authorization: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::get(path).header(http::header::HOST, self.addr.to_string());
        if let Some(authorization) = authorization {
            request = request.header(http::header::AUTHORIZATION, authorization);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .with_context(|| format!("cannot make a request for {path}"))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// `GET path` from `addr` over a new connection, run on `runtime` (for
/// callers that are not async), within `limit`: the status and the whole
/// body.
pub(crate) fn get_once(
    runtime: &tokio::runtime::Runtime,
    addr: SocketAddr,
    path: &str,
    limit: Duration,
) -> anyhow::Result<(StatusCode, Bytes)> {
    runtime.block_on(async {
        let answer = async { Connection::open(addr).await?.get(path, None).await };
        tokio::time::timeout(limit, answer)
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {limit:?}")))
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::time::Duration;

    use http::StatusCode;

    use super::get_once;

    /// Answers one connection with `response`, after reading its request.
    fn answer_once(response: &'static str) -> std::net::SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buffer = [0; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buffer).unwrap();
                assert!(n > 0, "the request head ended early");
                request.extend_from_slice(&buffer[..n]);
            }
            stream.write_all(response.as_bytes()).unwrap();
        });
        addr
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_chunked_body_is_put_together() {
        let addr = answer_once(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
             2\r\nok\r\n1\r\n\n\r\n0\r\n\r\n",
        );
        let (status, body) =
            get_once(&runtime(), addr, "/trivial", Duration::from_secs(10)).unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "ok\n");
    }

    #[test]
    fn a_server_that_does_not_answer_is_given_up_on() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let err = get_once(&runtime(), addr, "/trivial", Duration::from_millis(50)).unwrap_err();
        assert_eq!(err.to_string(), "no answer within 50ms");
    }
}
