//! Routes: which component answers which request path.
//!
//! A route is either an exact path (`/hello`) or a prefix wildcard
//! (`/api/...`, which matches `/api` and everything below it; `/...` matches
//! every path). An exact route beats any wildcard, and a longer wildcard
//! beats a shorter one, so the most specific route always wins. Two routes
//! with the same pattern are ambiguous and rejected when the app loads.

use std::collections::HashMap;
use std::fmt;

/// A parsed route pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// Matches this path only.
    Exact(String),
    /// Matches this path and every path below it (`""` matches all).
    Prefix(String),
}

impl Pattern {
    /// Parses a route as written in a manifest.
    pub fn parse(route: &str) -> Result<Self, String> {
        if !route.starts_with('/') {
            return Err("a route must start with `/`".into());
        }
        if route.contains(['?', '#']) || route.chars().any(char::is_whitespace) {
            return Err("a route is a path only: no query, fragment or whitespace".into());
        }
        if let Some(prefix) = route.strip_suffix("/...") {
            if prefix.contains("...") {
                return Err("`...` may appear only once, as the last segment".into());
            }
            return Ok(Pattern::Prefix(prefix.to_string()));
        }
        if route.contains("...") {
            return Err("`...` is only allowed as the last segment, as in `/api/...`".into());
        }
        Ok(Pattern::Exact(route.to_string()))
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(path) => f.write_str(path),
            Pattern::Prefix(prefix) => write!(f, "{prefix}/..."),
        }
    }
}

/// Maps request paths to targets (component indices, in Mayfly).
#[derive(Debug, Clone)]
pub struct Router<T> {
    exact: HashMap<String, T>,
    /// Longest prefix first.
    prefixes: Vec<(String, T)>,
}

impl<T: Copy> Router<T> {
    /// Builds a router; fails on the first pattern that appears twice,
    /// returning it.
    pub fn new(routes: impl IntoIterator<Item = (Pattern, T)>) -> Result<Self, Pattern> {
        let mut exact = HashMap::new();
        let mut prefixes: Vec<(String, T)> = Vec::new();
        for (pattern, target) in routes {
            match &pattern {
                Pattern::Exact(path) => {
                    if exact.insert(path.clone(), target).is_some() {
                        return Err(pattern);
                    }
                }
                Pattern::Prefix(prefix) => {
                    if prefixes.iter().any(|(p, _)| p == prefix) {
                        return Err(pattern);
                    }
                    prefixes.push((prefix.clone(), target));
                }
            }
        }
        prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(Self { exact, prefixes })
    }

    /// The target for a request path, if any route matches it.
    pub fn route(&self, path: &str) -> Option<T> {
        if let Some(target) = self.exact.get(path) {
            return Some(*target);
        }
        self.prefixes.iter().find_map(|(prefix, target)| {
            let rest = path.strip_prefix(prefix.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some(*target)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router<usize> {
        Router::new(
            routes
                .iter()
                .enumerate()
                .map(|(i, r)| (Pattern::parse(r).unwrap(), i)),
        )
        .unwrap()
    }

    #[test]
    fn most_specific_route_wins() {
        let r = router(&["/...", "/api/...", "/api/users/...", "/api/health"]);
        assert_eq!(r.route("/"), Some(0));
        assert_eq!(r.route("/other"), Some(0));
        assert_eq!(r.route("/api"), Some(1));
        assert_eq!(r.route("/api/x"), Some(1));
        assert_eq!(r.route("/api/users"), Some(2));
        assert_eq!(r.route("/api/users/7"), Some(2));
        assert_eq!(r.route("/api/health"), Some(3));
        assert_eq!(r.route("/api/healthz"), Some(1));
    }

    #[test]
    fn prefix_matches_whole_segments_only() {
        let r = router(&["/api/..."]);
        assert_eq!(r.route("/apix"), None);
        assert_eq!(r.route("/"), None);
        assert_eq!(r.route("/api/"), Some(0));
    }

    #[test]
    fn duplicates_are_rejected() {
        let dup = Router::new([
            (Pattern::parse("/a/...").unwrap(), 0),
            (Pattern::parse("/a/...").unwrap(), 1),
        ]);
        assert_eq!(dup.unwrap_err(), Pattern::Prefix("/a".into()));
    }

    #[test]
    fn malformed_routes_are_explained() {
        assert_eq!(
            Pattern::parse("api").unwrap_err(),
            "a route must start with `/`"
        );
        assert!(
            Pattern::parse("/a/.../b")
                .unwrap_err()
                .contains("last segment")
        );
        assert!(Pattern::parse("/a?b=1").unwrap_err().contains("no query"));
        assert_eq!(
            Pattern::parse("/...").unwrap(),
            Pattern::Prefix(String::new())
        );
    }
}
