//! Helpers shared by Mayfly's WASI 0.2 guest components: reading a
//! request's query and sending a whole response in one call. Guests that
//! stream use the `wasip2` types directly. What a guest shares with its 0.3
//! twin is in `common`.

/// Attacks shared by the hostile guests.
pub use common::attacks;
/// The state interfaces (`wasi:keyvalue`, `wasi:config`, `wasi:logging`),
/// bound once for both worlds.
pub use common::state;

use std::io::Write as _;

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// Sends a complete response with the given status, headers and body.
pub fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, &[u8])], body: &[u8]) {
    let (response, body_handle) = response_head(status, headers);
    ResponseOutparam::set(out, Ok(response));
    let mut stream = body_handle.write().expect("response body stream");
    stream.write_all(body).expect("write response body");
    stream.flush().expect("flush response body");
    drop(stream);
    OutgoingBody::finish(body_handle, None).expect("finish response body");
}

/// Builds a response head and takes its body, ready for
/// `ResponseOutparam::set` and streaming.
pub fn response_head(status: u16, headers: &[(&str, &[u8])]) -> (OutgoingResponse, OutgoingBody) {
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value)
            .expect("guest sets only valid, allowed headers");
    }
    let response = OutgoingResponse::new(fields);
    response.set_status_code(status).expect("valid status");
    let body = response.body().expect("body is taken once");
    (response, body)
}

/// The value of query parameter `name`, if present, percent-decoded.
pub fn query_param(request: &IncomingRequest, name: &str) -> Option<String> {
    common::query::value(&request.path_with_query()?, name)
}

/// Reads a request's whole body (for small bodies only).
pub fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let body = request.consume().expect("request body is consumed once");
    let mut input = body.stream().expect("request body stream");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut input, &mut bytes).expect("read request body");
    drop(input);
    wasip2::http::types::IncomingBody::finish(body);
    bytes
}

/// Why an outgoing GET got no response.
#[derive(Debug)]
pub enum GetError {
    /// The URL is not `scheme://authority/path`.
    Url(&'static str),
    /// The host (or the network) answered with this error code.
    Refused(wasip2::http::types::ErrorCode),
    /// Anything else, said in words.
    Broken(String),
}

/// A GET to `url` through `wasi:http/outgoing-handler`: the response's
/// status and whole body.
pub fn http_get(url: &str) -> Result<(u16, Vec<u8>), GetError> {
    let broken = |what: &str| GetError::Broken(what.to_string());
    let future = start_get(url)?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(GetError::Refused(code)),
        _ => return Err(broken("the response future was ready but empty")),
    };
    let status = response.status();
    let body = response
        .consume()
        .map_err(|()| broken("the response body was taken"))?;
    let mut stream = body
        .stream()
        .map_err(|()| broken("the response body stream was taken"))?;
    let mut contents = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut contents)
        .map_err(|err| GetError::Broken(format!("reading the body: {err}")))?;
    drop(stream);
    wasip2::http::types::IncomingBody::finish(body);
    Ok((status, contents))
}

/// Sends a GET to `url` through `wasi:http/outgoing-handler`, without
/// waiting for the response.
pub fn start_get(url: &str) -> Result<wasip2::http::types::FutureIncomingResponse, GetError> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{OutgoingRequest, Scheme};

    let (scheme, rest) = url
        .split_once("://")
        .ok_or(GetError::Url("url must be scheme://authority/path"))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    let valid = request.set_scheme(Some(&scheme)).is_ok()
        && request.set_authority(Some(authority)).is_ok()
        && request.set_path_with_query(Some(path)).is_ok();
    if !valid {
        return Err(GetError::Url("invalid url"));
    }
    let body = request
        .body()
        .map_err(|()| GetError::Broken("the request body was taken".into()))?;
    let future = outgoing_handler::handle(request, None).map_err(GetError::Refused)?;
    OutgoingBody::finish(body, None).map_err(GetError::Refused)?;
    Ok(future)
}

/// Blocks the guest for `ms` milliseconds through `wasi:clocks`.
pub fn sleep_ms(ms: u64) {
    wasip2::clocks::monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
}
