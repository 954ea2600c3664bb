//! `echo` and `echo-p3`: a request sent back. The request line and headers
//! come back as `x-echo-*` response headers and the body is copied to the
//! response body as it arrives; with `?count` in the query the whole body
//! is read first and answered with its length.

/// Read at most this much of a body at a time.
pub const CHUNK: usize = 64 * 1024;

/// Whether `query` asks for the body's length rather than the body.
pub fn counts(query: &str) -> bool {
    query.split('&').any(|pair| pair == "count")
}

/// The answer to `?count`: the body's length.
pub fn counted(total: usize) -> String {
    format!("{total} bytes\n")
}

/// The response headers that tell the request back: its method, path and
/// query, then each of its `headers` as `x-echo-header-NAME`.
pub fn headers(
    method: String,
    path: &str,
    query: &str,
    headers: Vec<(String, Vec<u8>)>,
) -> Vec<(String, Vec<u8>)> {
    let mut echoed: Vec<(String, Vec<u8>)> = vec![
        ("x-echo-method".into(), method.into_bytes()),
        ("x-echo-path".into(), path.as_bytes().to_vec()),
        ("x-echo-query".into(), query.as_bytes().to_vec()),
    ];
    for (name, value) in headers {
        echoed.push((format!("x-echo-header-{name}"), value));
    }
    echoed
}

/// `headers` as the kits take them.
pub fn borrowed(headers: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_slice()))
        .collect()
}
