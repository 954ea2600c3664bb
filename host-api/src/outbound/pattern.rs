//! `scheme://host:port` patterns, as `allowed_outbound_hosts` writes them.

use std::fmt;

/// The domain under which an app's components call each other. A host
/// under it matches only a pattern that names it exactly: no wildcard
/// (`http://*`, `http://*.internal`) reaches an app's components.
pub const INTERNAL_DOMAIN: &str = ".mayfly.internal";

/// The same for Spin apps' components, which call each other as
/// `http://ID.spin.internal`: one rule for both domains.
pub const SPIN_INTERNAL_DOMAIN: &str = ".spin.internal";

/// The component an internal host names (`api` for `api.mayfly.internal`
/// or `API.spin.internal`), lowercased; `None` for any other host.
pub fn internal_component(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    [INTERNAL_DOMAIN, SPIN_INTERNAL_DOMAIN]
        .iter()
        .find_map(|domain| host.strip_suffix(domain).map(str::to_string))
}

/// A `scheme://host:port` pattern from a manifest.
///
/// The host may be `*` (any host) or start with `*.` (any subdomain of the
/// rest, not the domain itself); the port may be `*` (any port) or left out
/// (the scheme's default port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: Scheme,
    host: HostMatch,
    port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    /// Lowercase, without the leading `*.`.
    SubdomainOf(String),
    /// Lowercase.
    Exactly(String),
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl HostPattern {
    /// Parses `http://host`, `https://*.example.com`, `http://127.0.0.1:*`...
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let (scheme, rest) = match pattern.split_once("://") {
            Some(("http", rest)) => (Scheme::Http, rest),
            Some(("https", rest)) => (Scheme::Https, rest),
            _ => {
                return Err(format!(
                    "`{pattern}` must start with `http://` or `https://`"
                ));
            }
        };
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "`{pattern}` must be `scheme://host` or `scheme://host:port`, with no path"
            ));
        }
        // An IPv6 literal is bracketed: only a `:` after its `]` starts a
        // port.
        let port_colon = match rest.rfind(']') {
            Some(bracket) => rest[bracket..].find(':').map(|at| bracket + at),
            None => rest.rfind(':'),
        };
        let split = port_colon.map(|at| (&rest[..at], &rest[at + 1..]));
        let (host, port) = match split {
            Some((host, "*")) => (host, None),
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("`{pattern}` has an invalid port `{port}`"))?;
                (host, Some(port))
            }
            None => (rest, Some(scheme.default_port())),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.is_empty() || domain.contains('*') {
                return Err(format!("`{pattern}` has an invalid wildcard"));
            }
            HostMatch::SubdomainOf(domain.to_string())
        } else if host.is_empty() || host.contains('*') {
            return Err(format!(
                "`{pattern}`: `*` is allowed only as the whole host or as a leading `*.`"
            ));
        } else {
            HostMatch::Exactly(host)
        };
        Ok(Self { scheme, host, port })
    }

    /// Whether a request to `scheme://host:port` matches (`port`: as the
    /// URI gives it, if it does; else the scheme's default).
    pub fn matches(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return false,
        };
        let port = port.unwrap_or(scheme.default_port());
        if self.scheme != scheme || self.port.is_some_and(|p| p != port) {
            return false;
        }
        match &self.host {
            _ if is_internal(host) && !matches!(self.host, HostMatch::Exactly(_)) => false,
            HostMatch::Any => true,
            HostMatch::Exactly(expected) => host.eq_ignore_ascii_case(expected),
            HostMatch::SubdomainOf(domain) => {
                host.len() > domain.len() + 1
                    // Not at a character boundary: `rest` cannot be `domain`.
                    && host
                        .split_at_checked(host.len() - domain.len())
                        .is_some_and(|(sub, rest)| {
                            sub.ends_with('.') && rest.eq_ignore_ascii_case(domain)
                        })
            }
        }
    }

    /// Whether the pattern names an address itself (an IP literal, or
    /// `localhost`), which grants reaching it even where it is loopback or
    /// private. A name or wildcard grants public addresses only.
    pub fn names_address(&self) -> bool {
        let HostMatch::Exactly(host) = &self.host else {
            return false;
        };
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        host == "localhost" || bare.parse::<std::net::IpAddr>().is_ok()
    }
}

/// Whether `host` is under [`INTERNAL_DOMAIN`] or [`SPIN_INTERNAL_DOMAIN`]
/// (or is one of the domains itself).
fn is_internal(host: &str) -> bool {
    [INTERNAL_DOMAIN, SPIN_INTERNAL_DOMAIN]
        .iter()
        .any(|domain| {
            let domain = &domain[1..];
            let Some(at) = host.len().checked_sub(domain.len()) else {
                return false;
            };
            host.is_char_boundary(at)
                && host[at..].eq_ignore_ascii_case(domain)
                && (at == 0 || host[..at].ends_with('.'))
        })
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let host = match &self.host {
            HostMatch::Any => "*".to_string(),
            HostMatch::SubdomainOf(domain) => format!("*.{domain}"),
            HostMatch::Exactly(host) => host.clone(),
        };
        match self.port {
            Some(port) => write!(f, "{scheme}://{host}:{port}"),
            None => write!(f, "{scheme}://{host}:*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_pattern_naming_a_component_reaches_it() {
        let internal = "api.mayfly.internal";
        for wildcard in [
            "http://*",
            "http://*:*",
            "http://*.internal",
            "http://*.mayfly.internal",
            "http://*.Mayfly.Internal",
        ] {
            let pattern = HostPattern::parse(wildcard).unwrap();
            assert!(!pattern.matches("http", internal, None), "{wildcard}");
            assert!(
                !pattern.matches("http", "API.MAYFLY.INTERNAL", None),
                "{wildcard}"
            );
            assert!(
                !pattern.matches("http", "mayfly.internal", None),
                "{wildcard}"
            );
        }
        // Wildcards still match everything else...
        let any = HostPattern::parse("http://*").unwrap();
        assert!(any.matches("http", "example.com", None));
        assert!(any.matches("http", "db.internal", None));
        // ...and a component named exactly is reached, in any case.
        let exact = HostPattern::parse("http://api.mayfly.internal").unwrap();
        assert!(exact.matches("http", internal, None));
        assert!(exact.matches("http", "Api.Mayfly.Internal", None));
        assert!(!exact.matches("http", "web.mayfly.internal", None));
    }

    #[test]
    fn malformed_patterns_are_explained() {
        for (pattern, needle) in [
            ("example.com", "must start with"),
            ("ftp://example.com", "must start with"),
            ("https://example.com/path", "no path"),
            ("https://example.com:http", "invalid port"),
            ("https://ex*ample.com", "`*` is allowed only"),
            ("https://*.", "invalid wildcard"),
            ("https://", "no path"),
        ] {
            let err = HostPattern::parse(pattern).unwrap_err();
            assert!(err.contains(needle), "{pattern}: {err}");
        }
        assert_eq!(
            HostPattern::parse("HTTP://Example.COM").unwrap_err(),
            "`HTTP://Example.COM` must start with `http://` or `https://`"
        );
        assert_eq!(
            HostPattern::parse("https://*.Example.com:*")
                .unwrap()
                .to_string(),
            "https://*.example.com:*"
        );
    }
}
