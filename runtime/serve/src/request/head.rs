//! What the request path reads from a request's head: its id, its size,
//! its declared body length.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderValue, Request, header};
use mayfly_host_api::outbound::X_REQUEST_ID;

/// Numbers requests, for log lines.
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// The request's id: its `x-request-id` if it has exactly one, and that
/// one is usable (a load balancer's, or a calling component's), else the
/// next number, which then replaces whatever it had so that the guest
/// passes on the one id its log lines show.
pub(super) fn request_id<B>(request: &mut Request<B>) -> Arc<str> {
    let mut ids = request.headers().get_all(&X_REQUEST_ID).iter();
    if let (Some(value), None) = (ids.next(), ids.next())
        && let Ok(id) = value.to_str()
        && is_plain_request_id(id)
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
        + uri.scheme_str().map_or(0, |scheme| scheme.len() + 3)
        + uri
            .authority()
            .map_or(0, |authority| authority.as_str().len());
    // `METHOD TARGET HTTP/1.1\r\n`: a space, then ` HTTP/1.1\r\n` (11).
    let line = request.method().as_str().len() + 1 + target + 11;
    request.headers().iter().fold(line, |size, (name, value)| {
        size + name.as_str().len() + value.len() + 4
    })
}

/// The `Content-Length` the client declared, if any: digits only, as
/// HTTP has it (`u64`'s parser would also take `+5`).
pub(super) fn declared_length<B>(request: &Request<B>) -> Option<u64> {
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?;
    if !length.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    length.parse().ok()
}

/// Property tests: any head a client (or a calling component) can send.
/// 256 cases each by default; `PROPTEST_CASES=100000 cargo test --release
/// -p mayfly-serve --lib request::head` runs longer.
#[cfg(test)]
mod tests {
    use http::{HeaderName, Method};
    use proptest::prelude::*;

    use super::*;

    fn config() -> ProptestConfig {
        ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Header values: plain ids around the length limit, near-plain ones,
    /// and any bytes a header value may hold.
    fn value() -> impl Strategy<Value = HeaderValue> {
        let any_bytes = proptest::collection::vec(any::<u8>(), 0..40).prop_map(|bytes| {
            // Control characters other than tab cannot be in a value.
            bytes
                .into_iter()
                .map(|b| {
                    if b == b'\t' || (b >= 32 && b != 127) {
                        b
                    } else {
                        b ^ 0x40
                    }
                })
                .collect()
        });
        prop_oneof![
            "[A-Za-z0-9._:-]{0,130}".prop_map(Vec::from),
            "[A-Za-z0-9 \t/=+@é-]{0,20}".prop_map(Vec::from),
            any_bytes,
        ]
        .prop_map(|bytes: Vec<u8>| HeaderValue::from_bytes(&bytes).unwrap())
    }

    fn name() -> impl Strategy<Value = HeaderName> {
        prop_oneof![
            2 => Just(X_REQUEST_ID),
            1 => Just(header::CONTENT_LENGTH),
            1 => "[a-z0-9!#$%&'*+.^_`|~-]{1,20}"
                .prop_map(|name| HeaderName::from_bytes(name.as_bytes()).unwrap()),
        ]
    }

    fn method() -> impl Strategy<Value = Method> {
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
            .prop_map(|method| Method::from_bytes(method.as_bytes()).unwrap())
    }

    /// A request with `headers`, to `target` (origin or absolute form).
    fn request(
        method: Method,
        target: &str,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Option<Request<()>> {
        let mut request = Request::builder()
            .method(method)
            .uri(target)
            .body(())
            .ok()?;
        for (name, value) in headers {
            request.headers_mut().append(name, value.clone());
        }
        Some(request)
    }

    /// The head as it goes over the wire.
    fn wire_size(request: &Request<()>) -> usize {
        let mut head = format!("{} {} HTTP/1.1\r\n", request.method(), request.uri()).into_bytes();
        for (name, value) in request.headers() {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.len()
    }

    /// Found by the properties below: two ids, of which the log showed one
    /// and the guest saw both; a `+` taken as part of a length; a request
    /// line counted a byte short.
    #[test]
    fn found_by_the_properties() {
        let ids = [
            (X_REQUEST_ID, HeaderValue::from_static("a")),
            (X_REQUEST_ID, HeaderValue::from_static("b")),
        ];
        let mut two_ids = request(Method::GET, "/", &ids).unwrap();
        let id = request_id(&mut two_ids);
        assert!(!["a", "b"].contains(&&*id), "{id}");
        let kept: Vec<_> = two_ids.headers().get_all(&X_REQUEST_ID).iter().collect();
        assert_eq!(kept, [&*id]);

        let plus = [(header::CONTENT_LENGTH, HeaderValue::from_static("+0"))];
        assert_eq!(
            declared_length(&request(Method::POST, "/", &plus).unwrap()),
            None
        );

        // `GET / HTTP/1.1\r\n`
        assert_eq!(head_size(&request(Method::GET, "/", &[]).unwrap()), 16);
        // `GET http://a/ HTTP/1.1\r\n`
        assert_eq!(
            head_size(&request(Method::GET, "http://a/", &[]).unwrap()),
            24
        );
    }

    proptest! {
        #![proptest_config(config())]

        /// Whatever `x-request-id`s a request comes with, its id is one a
        /// log line can hold as it is, and the request goes on with exactly
        /// that id: the client's if it sent exactly one usable one.
        #[test]
        fn a_request_leaves_with_one_plain_id(
            headers in proptest::collection::vec((name(), value()), 0..6),
        ) {
            let mut request = request(Method::GET, "/", &headers).unwrap();
            let sent: Vec<HeaderValue> =
                request.headers().get_all(&X_REQUEST_ID).iter().cloned().collect();
            let id = request_id(&mut request);
            prop_assert!(is_plain_request_id(&id), "{:?}", id);
            let kept: Vec<&HeaderValue> = request.headers().get_all(&X_REQUEST_ID).iter().collect();
            prop_assert_eq!(kept, vec![&*id], "sent {:?}", sent);
            if let [only] = &sent[..]
                && only.to_str().is_ok_and(is_plain_request_id)
            {
                prop_assert_eq!(only.to_str().unwrap(), &*id);
            }
        }

        /// A head's size is what it takes on the wire, as `http` writes
        /// it: request line and header lines.
        #[test]
        fn head_size_is_the_size_on_the_wire(
            method in method(),
            target in prop_oneof![
                "/[!-~]{0,40}",
                "https?://[a-z0-9.-]{1,12}(:[0-9]{1,5})?(/[!-~]{0,20})?",
            ],
            headers in proptest::collection::vec((name(), value()), 0..6),
        ) {
            let Some(request) = request(method, &target, &headers) else {
                return Ok(());
            };
            prop_assert_eq!(head_size(&request), wire_size(&request), "{:?}", request);
        }

        /// `Content-Length` is a declared length exactly when it is a
        /// decimal number (RFC 9110: `1*DIGIT`) that fits.
        #[test]
        fn only_a_number_is_a_declared_length(
            lengths in proptest::collection::vec(
                prop_oneof![
                    any::<u64>().prop_map(HeaderValue::from),
                    "[+-]?[0-9]{1,21}".prop_map(|n| HeaderValue::from_str(&n).unwrap()),
                    value(),
                ],
                0..3,
            ),
        ) {
            let headers: Vec<_> =
                lengths.iter().map(|v| (header::CONTENT_LENGTH, v.clone())).collect();
            let request = request(Method::POST, "/", &headers).unwrap();
            let expected = lengths.first().and_then(|first| {
                let digits = first.to_str().ok()?;
                digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse().ok())?
            });
            prop_assert_eq!(declared_length(&request), expected, "{:?}", lengths);
        }
    }
}
