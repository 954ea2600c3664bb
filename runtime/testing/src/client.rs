//! HTTP/1.1 through hyper: whole exchanges, bodies held open, bodies read
//! as they stream. Every exchange is bounded by [`PATIENCE`]: no request
//! may hang.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::PATIENCE;

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its whole body.
    pub body: Bytes,
}

impl Reply {
    /// The body, as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of header `name`; panics if there is none.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("no `{name}` header in {:?}", self.headers))
    }
}

/// A request body of any kind.
pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A keep-alive HTTP/1.1 connection to the server.
pub struct Client {
    sender: http1::SendRequest<Body>,
    addr: SocketAddr,
}

impl Client {
    /// A connection to `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        Self { sender, addr }
    }

    /// Sends a request; the Host header is filled in unless it has one.
    /// Panics if the whole exchange takes longer than [`PATIENCE`]: no
    /// request may hang.
    pub async fn send(&mut self, mut request: Request<Body>) -> Result<Reply, hyper::Error> {
        request
            .headers_mut()
            .entry(http::header::HOST)
            .or_insert(self.addr.to_string().parse().unwrap());
        let what = format!("{} {}", request.method(), request.uri());
        let exchange = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(PATIENCE, exchange)
            .await
            .unwrap_or_else(|_| panic!("{what} got no complete answer within {PATIENCE:?}"))
    }

    /// A connection, or `None` if the server is not there.
    pub async fn connect_or_none(addr: SocketAddr) -> Option<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.ok()?;
        tokio::spawn(connection);
        Some(Self { sender, addr })
    }

    /// Sends a request; `None` if the connection failed (the server died).
    pub async fn try_send(&mut self, request: Request<Body>) -> Option<Reply> {
        self.send(request).await.ok()
    }

    /// `GET path` on this connection.
    pub async fn get(&mut self, path: &str) -> Reply {
        let request = Request::get(path).body(full("")).unwrap();
        self.send(request).await.unwrap()
    }
}

/// One GET on a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    Client::connect(addr).await.get(path).await
}

/// A request whose body stays open until the returned sender is dropped,
/// and the response it gets, read line by line.
pub struct Held {
    body: Option<tokio::sync::mpsc::Sender<Result<Frame<Bytes>, std::convert::Infallible>>>,
    response: Incoming,
    pending: String,
}

impl Held {
    /// POSTs to `path` with a body left open, and waits for a 200 head.
    pub async fn start(addr: SocketAddr, path: &str) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        let (body_sender, mut frames) = tokio::sync::mpsc::channel(1);
        let body = StreamBody::new(futures_util::stream::poll_fn(move |cx| {
            frames.poll_recv(cx)
        }));
        let request = Request::post(path)
            .header("host", addr.to_string())
            .body(body)
            .unwrap();
        let response = tokio::time::timeout(PATIENCE, sender.send_request(request))
            .await
            .unwrap_or_else(|_| panic!("{path}: no response head"))
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        Self {
            body: Some(body_sender),
            response: response.into_body(),
            pending: String::new(),
        }
    }

    /// The next line of the response body.
    pub async fn line(&mut self) -> String {
        loop {
            if let Some(end) = self.pending.find('\n') {
                let line = self.pending[..end].to_string();
                self.pending.drain(..=end);
                return line;
            }
            let frame = tokio::time::timeout(PATIENCE, self.response.frame())
                .await
                .expect("no line within PATIENCE")
                .expect("the body ended before a line")
                .expect("the body failed");
            if let Some(data) = frame.data_ref() {
                self.pending.push_str(&String::from_utf8_lossy(data));
            }
        }
    }

    /// Ends the request body; the guest lets go of what it held and says
    /// so.
    pub async fn release(mut self) {
        self.body = None;
        assert_eq!(self.line().await, "released");
    }
}

/// A response read frame by frame: its head, and how its body ended.
#[derive(Debug)]
pub struct Streamed {
    /// Its status.
    pub status: StatusCode,
    /// Body bytes received before the body ended.
    pub received: usize,
    /// Why the body ended early, or `None` if it ended cleanly.
    pub error: Option<hyper::Error>,
    /// From sending the request to the end of the body.
    pub took: Duration,
}

/// One GET on a fresh connection, reading the body as it streams, so that a
/// body cut off halfway still tells its status and how much came. Panics if
/// the head does not arrive, or the body does not end, within [`PATIENCE`].
pub async fn get_streamed(addr: SocketAddr, path: &str) -> Streamed {
    let started = Instant::now();
    let mut client = Client::connect(addr).await;
    let mut request = Request::get(path).body(full("")).unwrap();
    request
        .headers_mut()
        .insert(http::header::HOST, addr.to_string().parse().unwrap());
    let exchange = async {
        client.sender.ready().await.unwrap();
        let response = client.sender.send_request(request).await.unwrap();
        let status = response.status();
        let mut body = response.into_body();
        let mut received = 0;
        let error = loop {
            match body.frame().await {
                None => break None,
                Some(Err(err)) => break Some(err),
                Some(Ok(frame)) => received += frame.data_ref().map_or(0, Bytes::len),
            }
        };
        Streamed {
            status,
            received,
            error,
            took: started.elapsed(),
        }
    };
    tokio::time::timeout(PATIENCE, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {path} did not end within {PATIENCE:?}"))
}

/// Sends `path` (a `/slow?...&head_first=1` request) and returns once the
/// response head is in, with the body still to come.
pub async fn in_flight(addr: SocketAddr, path: &str) -> http::Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request = Request::get(path)
        .header("host", addr.to_string())
        .body(full(""))
        .unwrap();
    let response = tokio::time::timeout(PATIENCE, sender.send_request(request))
        .await
        .expect("no response head")
        .unwrap();
    assert_eq!(response.status(), 200);
    response
}

/// Reads the rest of an [`in_flight`] response's body in the background.
/// The task panics if the body hangs past [`PATIENCE`] or is cut off.
pub fn rest_of_body(response: http::Response<Incoming>) -> tokio::task::JoinHandle<Bytes> {
    tokio::spawn(async move {
        tokio::time::timeout(PATIENCE, response.into_body().collect())
            .await
            .expect("the in-flight request hung")
            .expect("the in-flight request was cut off")
            .to_bytes()
    })
}
