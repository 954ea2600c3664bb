//! What the request path reads from a request's head: its id, its size,
//! its declared body length.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderValue, Request, header};
use mayfly_host_api::outbound::X_REQUEST_ID;

/// Numbers requests, for log lines.
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// The request's id: its `x-request-id` if it has a usable one (a load
/// balancer's, or a calling component's), else the next number, which is
/// then added to the request so the guest can pass it on.
pub(super) fn request_id<B>(request: &mut Request<B>) -> Arc<str> {
    if let Some(id) = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_plain_request_id(id))
    {
        return Arc::from(id);
    }
    let id = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed).to_string();
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert(X_REQUEST_ID, value);
    }
    Arc::from(id)
}

/// Whether a client's `x-request-id` can be used as it is: 1 to 128 of
/// `A-Z a-z 0-9 . _ : -`. Anything else is replaced with an id of ours, so
/// a client cannot put spaces or control characters into log lines.
fn is_plain_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The size of a request's head as it came over the wire: the request line
/// and every header line.
pub fn head_size<B>(request: &Request<B>) -> usize {
    let uri = request.uri();
    let target = uri
        .path_and_query()
        .map_or(1, |target| target.as_str().len())
        + uri
            .authority()
            .map_or(0, |authority| authority.as_str().len() + 8);
    // `METHOD TARGET HTTP/1.1\r\n`
    let line = request.method().as_str().len() + target + 11;
    request.headers().iter().fold(line, |size, (name, value)| {
        size + name.as_str().len() + value.len() + 4
    })
}

/// The `Content-Length` the client declared, if any.
pub(super) fn declared_length<B>(request: &Request<B>) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
