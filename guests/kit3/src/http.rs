//! `wasi:http@0.3.0` helpers: a response with a whole body in one call, a
//! response body to stream into, a request's query and body, and outgoing
//! GETs through `wasi:http/client`.

use wit_bindgen::{FutureWriter, StreamReader, StreamResult, StreamWriter};

pub use crate::wasi::http::types::{ErrorCode, Fields, Method, Request, Response, Scheme};
use crate::{wit_future, wit_stream};

/// The trailers a body ends with: `Ok` with the trailers (if any), or the
/// error that cut the body short.
pub type Trailers = Result<Option<Fields>, ErrorCode>;

/// Read at most this much at a time from a body.
const CHUNK: usize = 64 * 1024;

/// A response with the given status, headers and whole body. The body is
/// written by a spawned task once the host takes the response.
pub fn respond(
    status: u16,
    headers: &[(&str, &[u8])],
    body: impl Into<Vec<u8>>,
) -> Result<Response, ErrorCode> {
    let (response, mut writer) = response(status, headers)?;
    let body = body.into();
    crate::spawn(async move {
        writer.write(body).await;
        writer.finish(None).await;
    });
    Ok(response)
}

/// A response head with a body still to write through the returned
/// [`Body`]; nothing is sent until `handle` returns the response.
pub fn response(status: u16, headers: &[(&str, &[u8])]) -> Result<(Response, Body), ErrorCode> {
    let fields = fields(headers)?;
    let (stream, contents) = wit_stream::new();
    let (trailers, trailers_reader) = wit_future::new(|| Ok(None));
    let (response, _transmitted) = Response::new(fields, Some(contents), trailers_reader);
    response
        .set_status_code(status)
        .map_err(|()| internal(format!("invalid status {status}")))?;
    Ok((response, Body { stream, trailers }))
}

/// A header map with the given entries, in order.
pub fn fields(headers: &[(&str, &[u8])]) -> Result<Fields, ErrorCode> {
    let entries: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_vec()))
        .collect();
    Fields::from_list(&entries).map_err(|err| internal(format!("bad headers: {err:?}")))
}

/// `error-code.internal-error` with a message: what a guest answers when it
/// fails on its own.
pub fn internal(message: String) -> ErrorCode {
    ErrorCode::InternalError(Some(message))
}

/// The writable end of a response (or request) body and its trailers.
///
/// Dropping it ends the body with no trailers, as [`Body::finish`] with
/// `None` does.
pub struct Body {
    stream: StreamWriter<u8>,
    trailers: FutureWriter<Trailers>,
}

impl Body {
    /// Writes `bytes`, waiting until the reader has taken them all. `false`
    /// if the reader has gone (the client hung up, or the host stopped
    /// reading): nothing more can be sent.
    pub async fn write(&mut self, bytes: impl Into<Vec<u8>>) -> bool {
        self.stream.write_all(bytes.into()).await.is_empty()
    }

    /// Ends the body, then sends `trailers`.
    pub async fn finish(self, trailers: Option<Fields>) {
        drop(self.stream);
        let _ = self.trailers.write(Ok(trailers)).await;
    }

    /// Ends the body with an error instead of trailers: the reader sees the
    /// body cut short.
    pub async fn fail(self, code: ErrorCode) {
        drop(self.stream);
        let _ = self.trailers.write(Err(code)).await;
    }
}

/// The whole path and query of a request (`/` if it has none).
pub fn path_with_query(request: &Request) -> String {
    request
        .get_path_with_query()
        .unwrap_or_else(|| "/".to_string())
}

/// The path of a request, without its query.
pub fn path(request: &Request) -> String {
    let path = path_with_query(request);
    match path.split_once('?') {
        Some((path, _)) => path.to_string(),
        None => path,
    }
}

/// The value of query parameter `name`, if present, percent-decoded.
pub fn query_param(request: &Request, name: &str) -> Option<String> {
    query_value(&path_with_query(request), name)
}

/// The value of query parameter `name` in a `path?query`, percent-decoded.
pub use common::query::value as query_value;

/// A method as it appears on the request line.
pub fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other.clone(),
    }
}

/// The readable end of a request (or response) body, and its trailers.
pub struct Incoming {
    stream: StreamReader<u8>,
    trailers: wit_bindgen::FutureReader<Trailers>,
}

impl Incoming {
    /// Takes the body of `request` (its headers stay readable through any
    /// handle taken before).
    pub fn request(request: Request) -> Incoming {
        let (_, done) = wit_future::new(|| Ok(()));
        let (stream, trailers) = Request::consume_body(request, done);
        Incoming { stream, trailers }
    }

    /// Takes the body of `response`.
    pub fn response(response: Response) -> Incoming {
        let (_, done) = wit_future::new(|| Ok(()));
        let (stream, trailers) = Response::consume_body(response, done);
        Incoming { stream, trailers }
    }

    /// The next bytes as they arrive (at most 64 KiB), or `None` once the
    /// body has ended (then [`Incoming::end`] tells whether it was whole).
    pub async fn read(&mut self) -> Option<Vec<u8>> {
        loop {
            let (result, chunk) = self.stream.read(Vec::with_capacity(CHUNK)).await;
            match result {
                StreamResult::Complete(_) if !chunk.is_empty() => return Some(chunk),
                StreamResult::Complete(_) => continue,
                StreamResult::Dropped | StreamResult::Cancelled => return None,
            }
        }
    }

    /// Stops reading and waits for the trailers: `Err` if the body was cut
    /// short (by the peer, or by the host's limit on its size).
    pub async fn end(self) -> Trailers {
        drop(self.stream);
        self.trailers.await
    }

    /// Reads the rest of the body: the bytes, or the error that cut it off.
    pub async fn read_all(mut self) -> Result<Vec<u8>, ErrorCode> {
        let mut bytes = Vec::new();
        while let Some(chunk) = self.read().await {
            bytes.extend_from_slice(&chunk);
        }
        self.end().await.map(|_| bytes)
    }

    /// Reads and drops the rest of the body: how many bytes it held, or the
    /// error that cut it off.
    pub async fn count(mut self) -> Result<usize, ErrorCode> {
        let mut total = 0;
        while let Some(chunk) = self.read().await {
            total += chunk.len();
        }
        self.end().await.map(|_| total)
    }
}

/// Why an outgoing GET got no response.
#[derive(Debug)]
pub enum GetError {
    /// The URL is not `scheme://authority/path`.
    Url(&'static str),
    /// The host (or the network) answered with this error code.
    Refused(ErrorCode),
    /// The response came, but its body was cut off with this error code.
    Body(ErrorCode),
}

/// A GET request for `url`, ready for `wasi:http/client.send`.
pub fn get_request(url: &str) -> Result<Request, GetError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or(GetError::Url("url must be scheme://authority/path"))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    let (_, trailers) = wit_future::new(|| Ok(None));
    let (request, _sent) = Request::new(Fields::new(), None, trailers, None);
    let valid = request.set_scheme(Some(&scheme)).is_ok()
        && request.set_authority(Some(authority)).is_ok()
        && request.set_path_with_query(Some(path)).is_ok();
    if !valid {
        return Err(GetError::Url("invalid url"));
    }
    Ok(request)
}

/// Sends a GET to `url` through `wasi:http/client@0.3.0`: the response,
/// whose body is still to read.
pub async fn get(url: &str) -> Result<Response, GetError> {
    let request = get_request(url)?;
    crate::wasi::http::client::send(request)
        .await
        .map_err(GetError::Refused)
}

/// A GET to `url` through `wasi:http/client@0.3.0`: the response's status
/// and whole body.
pub async fn get_all(url: &str) -> Result<(u16, Vec<u8>), GetError> {
    let response = get(url).await?;
    let status = response.get_status_code();
    let body = Incoming::response(response)
        .read_all()
        .await
        .map_err(GetError::Body)?;
    Ok((status, body))
}

/// How `capabilities` answers `?op=fetch`: 200 with `STATUS BODY` of the
/// upstream's response; 403 `denied: ErrorCode::HttpRequestDenied` if the
/// host refused the request, 502 `denied: ErrorCode::...` for any other
/// error code, 502 `body cut off: ErrorCode::...` if the upstream's body
/// failed, 400 for a malformed URL.
pub fn fetch_answer(result: Result<(u16, Vec<u8>), GetError>) -> (u16, Vec<u8>) {
    match result {
        Ok((status, body)) => {
            let mut contents = format!("{status} ").into_bytes();
            contents.extend_from_slice(&body);
            (200, contents)
        }
        Err(GetError::Url(why)) => (400, why.as_bytes().to_vec()),
        Err(GetError::Refused(code)) => {
            let status = match code {
                ErrorCode::HttpRequestDenied => 403,
                _ => 502,
            };
            (status, format!("denied: {code:?}").into_bytes())
        }
        Err(GetError::Body(code)) => (502, format!("body cut off: {code:?}").into_bytes()),
    }
}
