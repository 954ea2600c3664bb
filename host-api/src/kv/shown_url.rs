//! How a key-value backend's URL is shown: its scheme and host, never its
//! user information or query, which may hold a password.
//!
//! Redis URLs carry passwords in more than one place: the user information
//! (`redis://user:PASSWORD@host`), where a password may itself hold `#`,
//! `?`, `/` or `@`, and the query (`redis+unix:///run/redis.sock?pass=...`,
//! which redis-rs reads as well). So nothing between the scheme and the
//! last `@` is shown, and nothing after the host (or, for a Unix socket, its
//! path) is. Where a `?` or `#` comes before that `@`, there is no telling
//! whether the `@` ends a password or sits in one, and the host is not
//! shown either.

/// `url` as it may be printed: `scheme://host[:port]`, or for a Unix
/// socket `scheme://PATH`; anything that does not look like a URL shows
/// as `<redacted>`.
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<redacted>".to_string();
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return "<redacted>".to_string();
    }
    // Everything up to the last `@` is user information.
    let rest = match rest.rsplit_once('@') {
        Some((before, _)) if before.contains(['?', '#']) => {
            return format!("{scheme}://<redacted>");
        }
        Some((_, host)) => host,
        None => rest,
    };
    if scheme.ends_with("unix") {
        let path = rest.split(['?', '#']).next().unwrap_or("");
        return format!("{scheme}://{path}");
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::shown_url;

    #[test]
    fn only_the_scheme_and_host_are_shown() {
        assert_eq!(
            shown_url("redis://:s3cret@127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            shown_url("rediss://app:s3cret@cache.internal/2"),
            "rediss://cache.internal"
        );
        assert_eq!(
            shown_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(shown_url("redis://:PA#SS@host"), "redis://<redacted>");
        assert_eq!(
            shown_url("redis://host/0?password=a@b"),
            "redis://<redacted>"
        );
        assert_eq!(shown_url("redis://:PA/SS@host:1/0"), "redis://host:1");
        assert_eq!(
            shown_url("redis+unix:///run/redis.sock?db=1&pass=s3cret"),
            "redis+unix:///run/redis.sock"
        );
        assert_eq!(
            shown_url("unix:///run/redis.sock?user=u&pass=s3cret"),
            "unix:///run/redis.sock"
        );
        assert_eq!(shown_url("not a url"), "<redacted>");
        assert_eq!(shown_url("s3cret"), "<redacted>");
    }
}
