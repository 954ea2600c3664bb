//! `scheme://host:port` patterns, as `allowed_outbound_hosts` writes them.

use std::fmt;

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
        let (host, port) = match rest.rsplit_once(':') {
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
            HostMatch::Any => true,
            HostMatch::Exactly(expected) => host.eq_ignore_ascii_case(expected),
            HostMatch::SubdomainOf(domain) => {
                host.len() > domain.len() + 1 && {
                    let (sub, rest) = host.split_at(host.len() - domain.len());
                    sub.ends_with('.') && rest.eq_ignore_ascii_case(domain)
                }
            }
        }
    }
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
