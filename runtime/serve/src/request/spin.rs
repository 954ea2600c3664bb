//! Spin's request headers, for the components of a Spin app: what Spin's
//! SDKs and routers read to know where a request was routed.
//!
//! | header | value |
//! | --- | --- |
//! | `spin-full-url` | `scheme://host/path?query`, the host from `Host` |
//! | `spin-path-info` | the path below a wildcard route (`/a/b` of `/x/...` on `/x/a/b`); `""` for an exact route |
//! | `spin-matched-route`, `spin-raw-component-route` | the route (`/x/...`) |
//! | `spin-component-route` | the route without its wildcard (`/x`; `""` for `/...`) |
//! | `spin-base-path` | `/` |
//! | `spin-client-addr` | the client's `ip:port` (`0.0.0.0:0` for a call from another component) |
//!
//! A client's own `spin-*` headers are removed first, so a component can
//! trust these (Spin itself appends, leaving both).

use std::net::SocketAddr;

use http::{HeaderName, HeaderValue, Request};

use crate::router::Pattern;

/// Replaces `request`'s `spin-*` headers with Spin's, for `route` (the
/// route it matched) and `client` (its peer, if a client sent it).
pub(super) fn add_headers<B>(
    request: &mut Request<B>,
    route: &Pattern,
    client: Option<SocketAddr>,
) {
    let path = request.uri().path().to_owned();
    let full_url = format!(
        "{}://{}{}",
        request.uri().scheme_str().unwrap_or("http"),
        request
            .headers()
            .get(http::header::HOST)
            .and_then(|host| host.to_str().ok())
            .unwrap_or("localhost"),
        request
            .uri()
            .path_and_query()
            .map_or(path.as_str(), |whole| whole.as_str())
    );
    let (path_info, component_route) = match route {
        Pattern::Exact(exact) => (String::new(), exact.clone()),
        Pattern::Prefix(prefix) => (
            path.strip_prefix(prefix.as_str())
                .unwrap_or_default()
                .to_owned(),
            prefix.clone(),
        ),
    };
    let matched = route.to_string();
    let client = client.map_or_else(|| "0.0.0.0:0".to_owned(), |addr| addr.to_string());
    let headers = request.headers_mut();
    let theirs: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for name in theirs {
        headers.remove(name);
    }
    for (name, value) in [
        ("spin-full-url", full_url.as_str()),
        ("spin-path-info", &path_info),
        ("spin-matched-route", &matched),
        ("spin-raw-component-route", &matched),
        ("spin-component-route", &component_route),
        ("spin-base-path", "/"),
        ("spin-client-addr", &client),
    ] {
        // Every part came from a parsed URI or header: always valid.
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_for(uri: &str, route: &str) -> Vec<(String, String)> {
        let mut request = Request::get(uri)
            .header("host", "example.com:3000")
            .header("spin-path-info", "/forged")
            .body(())
            .unwrap();
        let client = "127.0.0.1:8777".parse().ok();
        add_headers(&mut request, &Pattern::parse(route).unwrap(), client);
        let mut seen: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("spin-"))
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        seen.sort();
        seen
    }

    #[test]
    fn a_wildcard_route_gives_the_rest_of_the_path_and_replaces_the_clients_own() {
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            headers_for("/foo/bar?key=value", "/foo/..."),
            pairs(&[
                ("spin-base-path", "/"),
                ("spin-client-addr", "127.0.0.1:8777"),
                ("spin-component-route", "/foo"),
                ("spin-full-url", "http://example.com:3000/foo/bar?key=value"),
                ("spin-matched-route", "/foo/..."),
                ("spin-path-info", "/bar"),
                ("spin-raw-component-route", "/foo/..."),
            ])
        );
        let exact = headers_for("/hello", "/hello");
        assert!(exact.contains(&("spin-path-info".into(), String::new())));
        assert!(exact.contains(&("spin-component-route".into(), "/hello".into())));
        let all = headers_for("/", "/...");
        assert!(all.contains(&("spin-path-info".into(), "/".into())));
        assert!(all.contains(&("spin-component-route".into(), String::new())));
    }
}
