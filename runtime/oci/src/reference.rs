//! Image names, normalised as docker and containerd do: `hello:1` is
//! `docker.io/library/hello:1`, `me/hello` is `docker.io/me/hello:latest`,
//! and a name whose first part looks like a host (`registry.example.com:5000/x/y`,
//! `localhost/x`) keeps it.
//!
//! The grammar is that of the distribution project's `reference` package,
//! less digests (`name@sha256:...`): an image being built has no digest
//! until it is built.

use std::fmt;
use std::str::FromStr;

/// The registry of names that do not name one.
const DEFAULT_DOMAIN: &str = "docker.io";
/// Docker Hub's other name, normalised to [`DEFAULT_DOMAIN`].
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Where a one-part name on Docker Hub lives.
const OFFICIAL_PREFIX: &str = "library/";
/// The tag of a name written without one.
const DEFAULT_TAG: &str = "latest";
/// The longest name (domain and path), as docker allows.
const MAX_NAME: usize = 255;
/// The longest tag.
const MAX_TAG: usize = 128;

/// A fully qualified image name: domain, path and tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: String,
}

/// Why a name is not a valid image name. The text says which rule it
/// broke; the caller shows the name and where it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReferenceError(String);

impl Reference {
    /// Parses and normalises `name`, as `[DOMAIN/]PATH[:TAG]`.
    pub fn parse(name: &str) -> Result<Self, ReferenceError> {
        let fail = |message: &str| Err(ReferenceError(message.to_string()));
        if name.is_empty() {
            return fail("the name is empty");
        }
        if name.contains('@') {
            return fail(
                "a digest (`@sha256:...`) cannot be given: the build computes the image's digest",
            );
        }
        // A `:` after the last `/` starts the tag; one before it is a port.
        let (named, tag) = match name.rfind(':') {
            Some(colon) if !name[colon..].contains('/') => (&name[..colon], &name[colon + 1..]),
            _ => (name, DEFAULT_TAG),
        };
        check_tag(tag).map_err(ReferenceError)?;

        let (domain, path) = match named.split_once('/') {
            Some((first, rest)) if looks_like_domain(first) => (first, rest.to_string()),
            _ => (DEFAULT_DOMAIN, named.to_string()),
        };
        let domain = if domain == LEGACY_DEFAULT_DOMAIN {
            DEFAULT_DOMAIN
        } else {
            domain
        };
        check_domain(domain).map_err(ReferenceError)?;
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return fail("the repository name must be lowercase");
        }
        check_path(&path).map_err(ReferenceError)?;
        if path.len() == 64 && path.bytes().all(|b| b.is_ascii_hexdigit()) {
            return fail(
                "a repository name cannot be 64 hexadecimal characters (it would read as an image id)",
            );
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path
        };
        if domain.len() + 1 + path.len() > MAX_NAME {
            return fail("the name is longer than 255 characters");
        }
        Ok(Self {
            domain: domain.to_string(),
            path,
            tag: tag.to_string(),
        })
    }

    /// The registry, as `docker.io` or `registry.example.com:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository within the registry, as `library/hello`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, as `1` or `latest`.
    pub fn tag(&self) -> &str {
        &self.tag
    }
}

impl fmt::Display for Reference {
    /// The normalised name, as `docker.io/library/hello:1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.domain, self.path, self.tag)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::parse(name)
    }
}

/// Whether the first part of a name is a registry rather than a path
/// component: it has a `.` or a port, is `localhost`, or has capitals
/// (which a path may not).
fn looks_like_domain(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("the tag after `:` is empty".into());
    }
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let valid = tag.len() <= MAX_TAG
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid tag: use 1 to {MAX_TAG} letters, digits, `_`, `.` and `-`, \
             not starting with `.` or `-`",
            tag.escape_debug()
        ))
    }
}

/// Host names separated by `.`, each of letters, digits and inner `-`,
/// and an optional `:PORT`.
fn check_domain(domain: &str) -> Result<(), String> {
    let (host, port) = match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let port_ok =
        port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    if host.split('.').all(label_ok) && port_ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid registry: use a host name with an optional `:PORT`",
            domain.escape_debug()
        ))
    }
}

/// Components separated by `/`, each of lowercase letters and digits
/// joined by one `.`, one or two `_`, or any number of `-`.
fn check_path(path: &str) -> Result<(), String> {
    for component in path.split('/') {
        if !component_ok(component) {
            let shown = component.escape_debug();
            return Err(if component.is_empty() {
                "the repository name has an empty part (a leading, trailing or doubled `/`)".into()
            } else {
                format!(
                    "`{shown}` is not a valid repository name part: use lowercase letters and \
                     digits, joined by `.`, `_`, `__` or `-`"
                )
            });
        }
    }
    Ok(())
}

fn component_ok(component: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let mut i = 0;
    loop {
        // A run of letters and digits...
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // ...then a separator before the next run.
        let separator = &component[i..];
        let skip = if separator.starts_with("__") {
            2
        } else if separator.starts_with(['.', '_']) {
            1
        } else {
            separator.bytes().take_while(|b| *b == b'-').count()
        };
        if skip == 0 {
            return false;
        }
        i += skip;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_as_docker_does() {
        for (given, normalised) in [
            ("hello", "docker.io/library/hello:latest"),
            ("hello:1", "docker.io/library/hello:1"),
            ("me/hello:1", "docker.io/me/hello:1"),
            ("docker.io/hello:1", "docker.io/library/hello:1"),
            ("index.docker.io/me/hello", "docker.io/me/hello:latest"),
            (
                "registry.example.com:5000/x/y:2",
                "registry.example.com:5000/x/y:2",
            ),
            ("localhost/hello:dev", "localhost/hello:dev"),
            ("localhost:5000/hello", "localhost:5000/hello:latest"),
            (
                "Registry.Example.com/team/app:v1.2_3-rc",
                "Registry.Example.com/team/app:v1.2_3-rc",
            ),
            ("a/b/c/d-e__f.g---h:T", "docker.io/a/b/c/d-e__f.g---h:T"),
        ] {
            let reference = Reference::parse(given).unwrap();
            assert_eq!(reference.to_string(), normalised, "{given}");
        }
        let reference = Reference::parse("registry.example.com:5000/x/y:2").unwrap();
        assert_eq!(reference.domain(), "registry.example.com:5000");
        assert_eq!(reference.path(), "x/y");
        assert_eq!(reference.tag(), "2");
    }

    #[test]
    fn malformed_names_are_refused_with_the_rule_they_break() {
        for (given, expected) in [
            ("", "the name is empty"),
            ("Hello:1", "the repository name must be lowercase"),
            ("me/Hello", "the repository name must be lowercase"),
            (
                "hello world",
                "`hello world` is not a valid repository name part",
            ),
            ("hello/", "empty part"),
            ("/hello", "empty part"),
            ("me//hello", "empty part"),
            ("-hello", "`-hello` is not a valid repository name part"),
            ("hello.", "`hello.` is not a valid repository name part"),
            ("he...llo", "`he...llo` is not a valid repository name part"),
            ("he___llo", "`he___llo` is not a valid repository name part"),
            ("hello:", "the tag after `:` is empty"),
            ("hello:-1", "`-1` is not a valid tag"),
            ("hello:a/b", "`hello:a` is not a valid registry"),
            ("hello:1:2", "`hello:1` is not a valid repository name part"),
            ("hello@sha256:abc", "a digest"),
            ("bad_host.com/x", "`bad_host.com` is not a valid registry"),
            ("host.com:port/x", "`host.com:port` is not a valid registry"),
            ("host.com:/x", "`host.com:` is not a valid registry"),
            (&"a".repeat(64), "64 hexadecimal characters"),
            (
                &format!("x/{}", "a".repeat(260)),
                "longer than 255 characters",
            ),
            (&format!("hello:{}", "1".repeat(129)), "is not a valid tag"),
        ] {
            let err = Reference::parse(given).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{given}: expected `{expected}` in: {err}"
            );
        }
    }
}
