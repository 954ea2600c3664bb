//! Property tests of what host-api does with text it does not control: log
//! escaping, `allowed_outbound_hosts` patterns and how a key-value URL is
//! shown. None may panic, on any input.
//!
//! Each property runs 256 cases by default (bounded, for CI); for a longer
//! run, set the case count:
//!
//! ```sh
//! PROPTEST_CASES=100000 cargo test --release -p mayfly-host-api --test properties
//! ```

use mayfly_host_api::escape::{escape, escape_capped};
use mayfly_host_api::kv::shown_url;
use mayfly_host_api::outbound::{HostPattern, INTERNAL_DOMAIN, SPIN_INTERNAL_DOMAIN};
use proptest::prelude::*;

/// Proptest's defaults (256 cases, or `PROPTEST_CASES`), without failure
/// files in the source tree: a case that fails is kept as a plain test.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Characters that break or reorder a line, and their neighbours.
const TRICKY: &[char] = &[
    '\n',
    '\r',
    '\t',
    '\0',
    '\u{7}',
    '\u{8}',
    '\u{b}',
    '\u{c}',
    '\u{1b}',
    '\u{7f}',
    '\u{85}',
    '\u{9f}',
    '\u{2028}',
    '\u{2029}',
    '\u{202a}',
    '\u{202b}',
    '\u{202c}',
    '\u{202d}',
    '\u{202e}',
    '\u{2066}',
    '\u{2067}',
    '\u{2068}',
    '\u{2069}',
    '\u{200e}',
    '\u{200f}',
    '\u{061c}',
    '\u{200d}',
    '\u{2065}',
    '\u{206a}',
    '\u{feff}',
    '\\',
    'u',
    '{',
    '}',
    'é',
    '😀',
    ' ',
    '\u{200b}',
    '\u{2060}',
    '\u{e0001}',
    '\u{e0041}',
    '\u{e007f}',
    '\u{3164}',
    '\u{115f}',
    '\u{ffa0}',
    '\u{00ad}',
];

/// Text that is mostly the characters above, mixed with anything at all.
fn hostile_text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        3 => proptest::sample::select(TRICKY),
        1 => any::<char>(),
        1 => proptest::char::range('\0', '\u{7f}'),
    ];
    proptest::collection::vec(c, 0..64).prop_map(|chars| chars.into_iter().collect())
}

/// Whether `c` may not appear in an escaped text: it breaks or reorders a
/// line, or shows nothing (zero-width spaces and joiners, the byte order
/// mark, tag characters, the blank Hangul fillers).
fn breaks_a_line(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{200b}'
                | '\u{200c}'
                | '\u{200d}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{061c}'
                | '\u{2060}'
                | '\u{feff}'
                | '\u{3164}'
                | '\u{115f}'
                | '\u{1160}'
                | '\u{ffa0}'
                | '\u{00ad}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2060}'..='\u{2064}').contains(&c)
        || ('\u{2066}'..='\u{206f}').contains(&c)
        || ('\u{e0000}'..='\u{e007f}').contains(&c)
}

/// The byte offsets at which `text` can be cut into a prefix.
fn char_boundaries(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.char_indices()
        .map(|(at, _)| at)
        .chain(std::iter::once(text.len()))
}

proptest! {
    #![proptest_config(config())]

    /// An escaped text is one line with nothing that breaks or reorders it,
    /// and escaping it again changes nothing.
    #[test]
    fn escaped_text_is_one_plain_line(text in hostile_text()) {
        let escaped = escape(&text);
        if let Some(c) = escaped.chars().find(|c| breaks_a_line(*c)) {
            prop_assert!(false, "{text:?} escaped to {escaped:?}, which holds {c:?}");
        }
        prop_assert_eq!(escape(&escaped), escaped.clone());
        // What needs no escaping is left alone.
        if !text.chars().any(breaks_a_line) {
            prop_assert_eq!(&*escaped, &*text);
        }
        // Every character that is left is one of the input's, in order: a
        // reader sees the text, with only the tricky characters spelled out.
        let kept: String = text.chars().filter(|c| !breaks_a_line(*c)).collect();
        let mut rest = escaped.as_ref();
        for c in kept.chars() {
            match rest.find(c) {
                Some(at) => rest = &rest[at + c.len_utf8()..],
                None => prop_assert!(false, "{c:?} of {text:?} is missing from {escaped:?}"),
            }
        }
    }

    /// A capped text is at most `cap` bytes, and is the escaped text, or a
    /// prefix of it that ends between two escaped characters followed by
    /// `...`.
    #[test]
    fn capped_text_fits_and_is_a_whole_prefix(text in hostile_text(), cap in 0usize..80) {
        let escaped = escape(&text);
        let capped = escape_capped(&text, cap);
        prop_assert!(capped.len() <= cap, "{text:?} capped at {cap}: {capped:?}");
        if escaped.len() <= cap {
            prop_assert_eq!(&*capped, &*escaped);
        } else if cap < 3 {
            // Too small a cap to hold `...`: as much of it as fits.
            prop_assert_eq!(&*capped, &"..."[..cap]);
        } else {
            let Some(prefix) = capped.strip_suffix("...") else {
                return Err(TestCaseError::fail(format!(
                    "{text:?} capped at {cap} is {capped:?}, which does not end in `...`"
                )));
            };
            prop_assert!(
                char_boundaries(&text).any(|at| escape(&text[..at]) == prefix),
                "{text:?} capped at {cap} is {capped:?}: not the escape of a prefix"
            );
        }
    }
}

/// Found by `capped_text_fits_and_is_a_whole_prefix`: a cap under 3 bytes
/// got all of `...`, over the cap.
#[test]
fn tiny_caps_are_kept() {
    assert_eq!(escape_capped("abcdef", 0), "");
    assert_eq!(escape_capped("abcdef", 2), "..");
    assert_eq!(escape_capped("\n", 1), ".");
    assert_eq!(escape_capped("abcdef", 3), "...");
    assert_eq!(escape_capped("abc", 3), "abc");
}

/// Pieces that host patterns (and the hosts they are matched against) are
/// made of: enough overlap that matches happen.
fn host_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(
            &[
                "*",
                "*.",
                ".",
                "example",
                "Example",
                "com",
                "mayfly",
                "MAYFLY",
                "internal",
                "Internal",
                "mayfly.internal",
                "api",
                "127.0.0.1",
                "[::1]",
                ":",
                "é",
                "\u{130}",
                "\u{212a}",
                " ",
                "\n",
                "/",
                "@",
                "%2e",
            ][..]
        )
        .prop_map(str::to_string),
        "[a-zA-Z0-9.*:-]{0,6}",
        any::<String>().prop_map(|s| s.chars().take(6).collect()),
    ]
}

fn host_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(host_piece(), 0..6).prop_map(|pieces| pieces.concat())
}

fn scheme_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(&["http", "https"][..]).prop_map(str::to_string),
        1 => proptest::sample::select(&["HTTP", "ftp", "", "http:", "https "][..])
            .prop_map(str::to_string),
        1 => "[a-z]{0,6}",
    ]
}

fn port_text() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(
            &[
                "", ":*", ":80", ":443", ":0", ":65535", ":65536", ":-1", ":", ":+80", ": 80", "::"
            ][..]
        )
        .prop_map(str::to_string),
        any::<u16>().prop_map(|port| format!(":{port}")),
        any::<u64>().prop_map(|port| format!(":{port}")),
    ]
}

/// A well-formed host pattern's host: a name, `*` or `*.` and a domain.
fn plain_host() -> impl Strategy<Value = String> {
    let name = "[a-zA-Z0-9-]{1,5}(\\.[a-zA-Z0-9-]{1,5}){0,2}";
    prop_oneof![
        2 => name.prop_map(String::from),
        1 => name.prop_map(|domain| format!("*.{domain}")),
        1 => Just("*".to_string()),
        1 => Just("*.mayfly.internal".to_string()),
        1 => Just("api.mayfly.internal".to_string()),
        1 => Just("*.spin.internal".to_string()),
        1 => Just("api.spin.internal".to_string()),
    ]
}

/// Texts that are host patterns, nearly host patterns, or anything.
fn pattern_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (
            proptest::sample::select(&["http", "https"][..]),
            plain_host(),
            proptest::sample::select(&["", ":*", ":80", ":443", ":8080"][..]),
        )
            .prop_map(|(scheme, host, port)| format!("{scheme}://{host}{port}")),
        3 => (scheme_text(), host_text(), port_text())
            .prop_map(|(scheme, host, port)| format!("{scheme}://{host}{port}")),
        1 => any::<String>(),
    ]
}

/// `NAME.mayfly.internal`, `NAME.spin.internal` and the domains
/// themselves, in any case.
fn internal_host() -> impl Strategy<Value = String> {
    let domain = (
        proptest::sample::select(&[INTERNAL_DOMAIN, SPIN_INTERNAL_DOMAIN][..]),
        proptest::collection::vec(any::<bool>(), INTERNAL_DOMAIN.len()),
    )
        .prop_map(|(domain, upper)| {
            domain
                .chars()
                .zip(upper.into_iter().cycle())
                .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
                .collect::<String>()
        });
    (host_text(), domain).prop_map(|(name, domain)| format!("{name}{domain}"))
}

/// What the pattern `text` (parsed) holds, read back from its `Display`:
/// scheme, host, port (`None` for any).
fn parts(pattern: &HostPattern) -> (String, String, Option<u16>) {
    let shown = pattern.to_string();
    let (scheme, rest) = shown.split_once("://").unwrap();
    let (host, port) = rest.rsplit_once(':').unwrap();
    (scheme.into(), host.into(), port.parse().ok())
}

/// The rule, written out plainly: what `pattern` should say about
/// `scheme://host:port`.
fn should_match(pattern: &HostPattern, scheme: &str, host: &str, port: Option<u16>) -> bool {
    let (want_scheme, want_host, want_port) = parts(pattern);
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    if scheme != want_scheme || want_port.is_some_and(|p| p != port.unwrap_or(default_port)) {
        return false;
    }
    let host = host.to_ascii_lowercase();
    let wildcard = want_host.starts_with('*');
    if wildcard && is_internal(&host) {
        return false;
    }
    match want_host.strip_prefix("*.") {
        _ if want_host == "*" => true,
        // A subdomain has a name of its own: `.example.com` is not one.
        Some(domain) => host
            .strip_suffix(&format!(".{domain}"))
            .is_some_and(|name| !name.is_empty()),
        None => host == want_host,
    }
}

/// The dispatcher's rule for a host it sends to a component, and the domain
/// itself.
fn is_internal(lowercase_host: &str) -> bool {
    [INTERNAL_DOMAIN, SPIN_INTERNAL_DOMAIN]
        .iter()
        .any(|domain| lowercase_host.ends_with(domain) || lowercase_host == &domain[1..])
}

proptest! {
    #![proptest_config(config())]

    /// Parsing never panics; what parses shows as a pattern that parses back
    /// to itself, and matches by the documented rule: hosts, schemes and
    /// ports of any kind, and ones made from the pattern's own.
    #[test]
    fn host_patterns_parse_and_match_by_the_rule(
        text in pattern_text(),
        scheme in scheme_text(),
        host in host_text(),
        internal in internal_host(),
        sub in "([a-zA-Z0-9-]{1,4}\\.){0,2}",
        upper in any::<u64>(),
        port in proptest::option::of(any::<u16>()),
    ) {
        let Ok(pattern) = HostPattern::parse(&text) else {
            return Ok(());
        };
        let shown = pattern.to_string();
        let reparsed = HostPattern::parse(&shown);
        prop_assert_eq!(reparsed.as_ref(), Ok(&pattern), "{:?} shows as {:?}", text, shown);

        let (own_scheme, own_host, own_port) = parts(&pattern);
        // A host the pattern may match: its own, under a subdomain, with
        // some letters in upper case.
        let near: String = format!("{sub}{}", own_host.trim_start_matches('*').trim_start_matches('.'))
            .chars()
            .enumerate()
            .map(|(i, c)| if upper >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c })
            .collect();
        for scheme in [scheme.as_str(), own_scheme.as_str()] {
            for host in [&host, &internal, &near] {
                for port in [port, own_port, None] {
                    prop_assert_eq!(
                        pattern.matches(scheme, host, port),
                        should_match(&pattern, scheme, host, port),
                        "{} against {}://{}:{:?}", shown, scheme, host, port
                    );
                }
            }
        }
    }

    /// No wildcard reaches an app's components, whatever the case of the
    /// name.
    #[test]
    fn wildcards_never_reach_internal_hosts(
        host in host_text(),
        name in internal_host(),
        port in proptest::option::of(any::<u16>()),
        scheme in proptest::sample::select(&["http", "https"][..]),
    ) {
        for text in [
            format!("{scheme}://*"),
            format!("{scheme}://*:*"),
            format!("{scheme}://*.internal:*"),
            format!("{scheme}://*.mayfly.internal:*"),
            format!("{scheme}://*.spin.internal:*"),
            format!("{scheme}://*.{host}:*"),
        ] {
            let Ok(pattern) = HostPattern::parse(&text) else {
                continue;
            };
            prop_assert!(!pattern.matches(scheme, &name, port), "{} matches {}", text, name);
        }
    }
}

/// Found by `host_patterns_parse_and_match_by_the_rule`: a subdomain
/// pattern matched against a host whose last bytes split a character
/// panicked instead of not matching.
#[test]
fn a_host_with_multibyte_characters_is_matched_without_panicking() {
    let pattern = HostPattern::parse("http://*.0.-aa.aa-0").unwrap();
    assert!(!pattern.matches("http", "a A\u{1003f}\u{a95f}\u{abc}*", None));
    let pattern = HostPattern::parse("http://*.example.com").unwrap();
    assert!(!pattern.matches("http", "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}", None));
    assert!(pattern.matches("http", "\u{e9}.example.com", None));
    assert!(!pattern.matches("http", ".example.com", None));
}

/// A password: anything at all, `@`, `#`, `/`, `?`, `:` and `&` included.
fn password() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        2 => proptest::sample::select(&['@', '#', '/', '?', ':', '&', '=', '%', '+', ' '][..]),
        3 => proptest::char::range('!', '~'),
        1 => any::<char>(),
    ];
    proptest::collection::vec(c, 1..40).prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(config())]

    /// Whatever the password, and wherever it is written, a shown URL is
    /// the scheme and host (or socket path) alone.
    #[test]
    fn a_shown_redis_url_never_holds_its_password(
        password in password(),
        user in "[a-z][a-z0-9]{0,8}",
        host in "[a-z][a-z0-9-]{0,12}(\\.[a-z]{2,6})?",
        port in proptest::option::of(1u16..),
    ) {
        let host = match port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        let cases = [
            (format!("redis://{user}:{password}@{host}/0"), format!("redis://{host}")),
            (format!("rediss://:{password}@{host}"), format!("rediss://{host}")),
            (format!("redis://{host}/0?password={password}"), format!("redis://{host}")),
            (
                format!("redis+unix:///run/redis.sock?db=0&user={user}&pass={password}"),
                "redis+unix:///run/redis.sock".to_string(),
            ),
            (
                format!("unix:///run/redis.sock?pass={password}"),
                "unix:///run/redis.sock".to_string(),
            ),
        ];
        for (url, expected) in cases {
            let shown = shown_url(&url);
            let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
            // Never more than the scheme and host; less only where a `?`
            // or `#` before an `@` leaves the host in doubt.
            prop_assert!(
                shown == expected || shown == format!("{scheme}://<redacted>"),
                "{} shows {}", url, shown
            );
            if !password.contains(['@', '?', '#']) {
                prop_assert_eq!(&shown, &expected, "{}", url);
            }
        }
    }
}
