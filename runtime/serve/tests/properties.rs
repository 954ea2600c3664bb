//! Property tests of what mayfly-serve reads from an app's author: the
//! manifest (any text, and near-valid manifests with fields gone wrong) and
//! the routes. Neither may panic on any input; every manifest error says
//! where the problem is.
//!
//! Each property runs 256 cases by default (bounded, for CI); for a longer
//! run, set the case count:
//!
//! ```sh
//! PROPTEST_CASES=100000 cargo test --release -p mayfly-serve --test properties
//! ```

use std::path::Path;

use mayfly_serve::manifest::{AppSpec, ManifestError};
use mayfly_serve::router::{Pattern, Router};
use proptest::prelude::*;
use proptest::sample::select;
use toml::{Table, Value};

/// Proptest's defaults (256 cases, or `PROPTEST_CASES`), without failure
/// files in the source tree: a case that fails is kept as a plain test.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---- the manifest ----

/// In the secrets file, which no error may quote.
const SECRET: &str = "s3cret-value-never-shown";

/// A directory for the manifest, with what its fields may name: a data
/// directory, a plain file, a secrets file and a broken one.
fn app_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("file.txt"), "not a directory").unwrap();
    std::fs::write(
        dir.path().join("secrets.toml"),
        format!("token = \"{SECRET}\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad-secrets.toml"),
        format!("token = {SECRET}\n"),
    )
    .unwrap();
    dir
}

/// Loads `text` as `dir/app.toml`, and checks what came of it: an app whose
/// routes are a valid route table, or an error that names a field (or, for
/// text that is not a manifest at all, a line and column), never a secret.
fn check_manifest(dir: &Path, text: &str) -> Result<(), TestCaseError> {
    let path = dir.join("app.toml");
    std::fs::write(&path, text).unwrap();
    match AppSpec::from_manifest(&path) {
        Ok(spec) => {
            prop_assert!(!spec.components.is_empty() && !spec.routes.is_empty());
            prop_assert!(spec.routes.iter().all(|(_, c)| *c < spec.components.len()));
            let router = Router::new(spec.routes.iter().cloned());
            prop_assert!(router.is_ok(), "{:?} has duplicate routes", spec.routes);
        }
        Err(err) => {
            let shown = err.to_string();
            prop_assert!(
                !shown.contains(SECRET),
                "an error shows a secret: {}",
                shown
            );
            match &err {
                ManifestError::Field { field, .. } => check_field(field, text, &shown)?,
                // Not valid TOML, or not the manifest's shape: the parser
                // says where, and for a value of the wrong type or an
                // unknown or missing field, which field.
                ManifestError::Parse {
                    position, field, ..
                } => {
                    prop_assert!(
                        position.is_some() || field.is_some(),
                        "a parse error that says neither where nor which field: {}\n{}",
                        shown,
                        text
                    );
                    if let Some((line, column)) = position {
                        prop_assert!(shown.contains(&format!(":{line}:{column}")), "{}", shown);
                    }
                    if let Some(field) = field {
                        check_field(field, text, &shown)?;
                    }
                }
                ManifestError::Read { .. } => {
                    prop_assert!(false, "the manifest was written, yet: {}", shown);
                }
            }
        }
    }
    Ok(())
}

/// Whether `field` (`component.api.limits.memory`, `route[2].path`,
/// toml's `route.path`...) names something in the manifest `text`, or is
/// `component` or `route` (for an app that declares none). Names may
/// themselves hold dots.
/// `shown` (an error about the manifest `text`) names `field`, and `field`
/// is one of the manifest's.
fn check_field(field: &str, text: &str, shown: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        shown.contains(&format!("field `{field}`")),
        "{} does not name its field",
        shown
    );
    prop_assert!(
        names_a_field_of(field, text),
        "{:?} is not a field of the manifest:\n{}\n{}",
        field,
        text,
        shown
    );
    Ok(())
}

fn names_a_field_of(field: &str, text: &str) -> bool {
    if field == "component" || field == "route" {
        return true;
    }
    // toml names the field of a value it cannot read (`1e400`): the text
    // as a whole is then not TOML, and there is nothing to look the field
    // up in.
    let Ok(table) = text.parse::<Table>() else {
        return true;
    };
    let mut steps = Vec::new();
    for part in field.split('.') {
        // `route[2]` is the step `route`, then index 2.
        match part.strip_suffix(']').and_then(|p| p.rsplit_once('[')) {
            Some((name, index)) if index.parse::<usize>().is_ok() => {
                steps.push(Step::Key(name.to_string()));
                steps.push(Step::Index(index.parse().unwrap()));
            }
            _ => steps.push(Step::Key(part.to_string())),
        }
    }
    walk(&Value::Table(table), &steps)
}

enum Step {
    Key(String),
    Index(usize),
}

fn walk(value: &Value, steps: &[Step]) -> bool {
    let Some((step, rest)) = steps.split_first() else {
        return true;
    };
    match (step, value) {
        (Step::Index(i), Value::Array(items)) => items.get(*i).is_some_and(|v| walk(v, rest)),
        // toml names a field of an array of tables without its index, as
        // `route.path`: a field of one of them.
        (Step::Key(_), Value::Array(items)) if items.iter().all(Value::is_table) => {
            items.iter().any(|item| walk(item, steps))
        }
        // serde reads a struct from an array too, field by field in order
        // (`route = [["/", "hello"]]`): its fields have no names to look up.
        (Step::Key(_), Value::Array(_)) => true,
        (Step::Key(key), Value::Table(table)) => {
            // The key, or the key and the steps after it joined by dots (a
            // name with dots in it).
            (0..=rest.len()).any(|joined| {
                let mut name = key.clone();
                for step in &rest[..joined] {
                    match step {
                        Step::Key(more) => {
                            name.push('.');
                            name.push_str(more);
                        }
                        Step::Index(_) => return false,
                    }
                }
                table
                    .get(&name)
                    .is_some_and(|value| walk(value, &rest[joined..]))
            })
        }
        _ => false,
    }
}

/// One of `good` mostly, sometimes one of `bad`.
fn choice(
    good: &'static [&'static str],
    bad: &'static [&'static str],
) -> BoxedStrategy<&'static str> {
    prop_oneof![12 => select(good), 1 => select(bad)].boxed()
}

/// A field's text: one of `good` mostly, sometimes one of `bad`.
fn text(good: &'static [&'static str], bad: &'static [&'static str]) -> BoxedStrategy<Value> {
    choice(good, bad)
        .prop_map(|text| Value::String(text.into()))
        .boxed()
}

/// A field's number: one of `good` mostly, sometimes one of `bad`.
fn number(good: &'static [i64], bad: &'static [i64]) -> BoxedStrategy<Value> {
    prop_oneof![12 => select(good), 1 => select(bad)]
        .prop_map(Value::Integer)
        .boxed()
}

const DURATIONS: &[&str] = &["500ms", "30s", "2m", "60m", "1ms"];
const BAD_DURATIONS: &[&str] = &[
    "61m",
    "0s",
    "-1s",
    "1e400ms",
    "1.5s",
    "10",
    "",
    "5 s",
    "99999999999999999999m",
    "307445734561825861m",
    "1h",
];
const SIZES: &[&str] = &["64MiB", "64KiB", "1MiB", "16MiB", "1GiB"];
const BAD_SIZES: &[&str] = &[
    "63KiB",
    "1023B",
    "17MiB",
    "0B",
    "1.5 GiB",
    "99999999999 TiB",
    "17179869184GiB",
    "18446744073709551615B",
    "18446744073709551616B",
    "64MB",
    "-1MiB",
    "",
];
const COUNTS: &[i64] = &[1, 16, 200, 1000, 10_000];
const BAD_COUNTS: &[i64] = &[
    0,
    15,
    10_001,
    20_001,
    1_000_001,
    -1,
    i64::MAX,
    i64::MIN,
    1 << 32,
];
const NAMES: &[&str] = &["hello", "api", "a", "web-1"];
const BAD_NAMES: &[&str] = &["Api", "-x", "x-", "a_b", "a.b", "", "é", "a:b"];
const ROUTES: &[&str] = &["/", "/...", "/api/...", "/api", "/api/health", "/a/b"];
const BAD_ROUTES: &[&str] = &["api", "/a/.../b", "/a?x", "/a b", "/a/....", "", "/a#b"];
const HOSTS: &[&str] = &[
    "http://example.com",
    "https://*.example.com:*",
    "http://api.mayfly.internal",
    "http://*",
    "http://127.0.0.1:8080",
];
const BAD_HOSTS: &[&str] = &[
    "ftp://x",
    "https://x/path",
    "https://x:99999",
    "https://ex*ample.com",
    "https://*.",
    "example.com",
    "",
];

/// Sometimes a field the manifest does not have.
fn maybe<S: Strategy>(strategy: S) -> impl Strategy<Value = Option<S::Value>> {
    proptest::option::weighted(0.3, strategy)
}

/// A table of the fields that are there.
fn table(fields: impl IntoIterator<Item = (&'static str, Option<Value>)>) -> Value {
    Value::Table(
        fields
            .into_iter()
            .filter_map(|(key, value)| Some((key.to_string(), value?)))
            .collect(),
    )
}

fn limits() -> impl Strategy<Value = Value> {
    let duration = || maybe(text(DURATIONS, BAD_DURATIONS));
    let size = || maybe(text(SIZES, BAD_SIZES));
    let count = || maybe(number(COUNTS, BAD_COUNTS));
    (
        (duration(), size(), size(), size(), size()),
        (
            count(),
            count(),
            count(),
            count(),
            count(),
            count(),
            count(),
        ),
    )
        .prop_map(
            |(
                (timeout, memory, body, head, host_memory),
                (elements, resources, descriptors, instances, queue, headers, fuel),
            )| {
                table([
                    ("timeout", timeout),
                    ("memory", memory),
                    ("request_body", body),
                    ("request_headers", head),
                    ("host_memory", host_memory),
                    ("table_elements", elements),
                    ("resources", resources),
                    ("descriptors", descriptors),
                    ("instances", instances),
                    ("queue", queue),
                    ("response_headers", headers),
                    ("fuel", fuel),
                ])
            },
        )
}

fn list(item: BoxedStrategy<Value>, most: usize) -> impl Strategy<Value = Value> {
    proptest::collection::vec(item, 0..=most).prop_map(Value::Array)
}

/// How a config value may be written: a reference to an environment
/// variable or a secret, well or badly.
const CONFIG_REFERENCES: &[&[(&str, &str)]] = &[
    &[("env", "PATH")],
    &[("secret", "token")],
    &[("env", "MAYFLY_PROPERTY_TEST_UNSET")],
    &[("secret", "missing")],
    &[("env", "PATH"), ("secret", "token")],
    &[("other", "x")],
    &[],
];

fn config_value() -> impl Strategy<Value = Value> {
    let reference = |pairs: &[(&str, &str)]| {
        Value::Table(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .collect(),
        )
    };
    prop_oneof![
        4 => text(&["plain", ""], &["\0"]),
        2 => select(&CONFIG_REFERENCES[..2]).prop_map(reference),
        1 => select(&CONFIG_REFERENCES[2..]).prop_map(reference),
    ]
}

/// A table from names to values.
fn named(
    keys: BoxedStrategy<Value>,
    values: impl Strategy<Value = Value>,
) -> impl Strategy<Value = Value> {
    proptest::collection::vec((keys, values), 0..3).prop_map(|pairs| {
        Value::Table(
            pairs
                .into_iter()
                .map(|(key, value)| (key.as_str().unwrap_or_default().to_string(), value))
                .collect(),
        )
    })
}

fn component() -> impl Strategy<Value = Value> {
    let grant = (
        text(&["data"], &["missing", "file.txt", ""]),
        text(&["/data", "/other"], &["data", "/a/../b", ""]),
        maybe(text(&["read-only", "read-write"], &["rw"])),
    )
        .prop_map(|(host, guest, mode)| {
            table([("host", Some(host)), ("guest", Some(guest)), ("mode", mode)])
        });
    (
        text(&["x.wasm", "../x.wasm"], &[""]),
        maybe(limits()),
        maybe(named(
            text(&["LANG", "a.b"], &["", "A=B", "A\0"]),
            text(&["x", ""], &["\0"]),
        )),
        maybe(list(grant.boxed(), 2)),
        maybe(list(text(HOSTS, BAD_HOSTS), 3)),
        maybe(list(text(&["default", "cache"], &["Bad", ""]), 2)),
        maybe(named(text(&["greeting", "a.b"], &[""]), config_value())),
        maybe(any::<bool>().prop_map(Value::Boolean)),
    )
        .prop_map(
            |(source, limits, env, files, hosts, stores, config, private)| {
                table([
                    ("source", Some(source)),
                    ("limits", limits),
                    ("env", env),
                    ("files", files),
                    ("allowed_outbound_hosts", hosts),
                    ("key_value_stores", stores),
                    ("config", config),
                    ("allow_private_networks", private),
                ])
            },
        )
}

/// A manifest that is valid, or nearly: each field has a good value, or
/// now and then a bad one for that field.
fn manifest() -> impl Strategy<Value = Value> {
    let components = proptest::collection::btree_map(choice(NAMES, BAD_NAMES), component(), 1..4);
    (
        maybe(text(&["shop", "my-app_2"], &["Shop", "a:b", ""])),
        components,
        maybe(limits()),
        maybe(text(
            &["secrets.toml"],
            &["bad-secrets.toml", "missing.toml"],
        )),
    )
        .prop_flat_map(|(name, components, limits, secrets)| {
            let names: Vec<&str> = components.keys().copied().collect();
            // Routes to the declared components, or now and then to one
            // that is not.
            let target = prop_oneof![
                12 => select(names),
                1 => select(BAD_NAMES),
            ];
            let route = (text(ROUTES, BAD_ROUTES), target).prop_map(|(path, component)| {
                table([
                    ("path", Some(path)),
                    ("component", Some(Value::String(component.into()))),
                ])
            });
            let components = Value::Table(
                components
                    .into_iter()
                    .map(|(name, c)| (name.to_string(), c))
                    .collect(),
            );
            proptest::collection::vec(route, 1..4).prop_map(move |routes| {
                table([
                    ("name", name.clone()),
                    ("component", Some(components.clone())),
                    ("route", Some(Value::Array(routes))),
                    ("limits", limits.clone()),
                    ("secrets", secrets.clone()),
                ])
            })
        })
}

/// A value of the wrong type for almost any field.
fn wrong_type() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Integer),
        select(&[0.5, -1.0, f64::NAN, f64::INFINITY, 1e300][..]).prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
        Just(Value::Array(vec![
            Value::Integer(1),
            Value::String("x".into())
        ])),
        Just(Value::Array(Vec::new())),
        Just(Value::Table(Table::from_iter([(
            "x".to_string(),
            Value::Integer(1)
        )]))),
        Just(Value::Table(Table::new())),
        "\\PC{0,8}".prop_map(Value::String),
    ]
}

/// One change to a manifest, at the field chosen by the index.
#[derive(Debug, Clone)]
enum Mutation {
    /// The field's value becomes this one.
    Replace(Value),
    /// The field is left out.
    Remove,
    /// The table gets a field it does not have.
    Unknown(String, Value),
}

fn mutation() -> impl Strategy<Value = (proptest::sample::Index, Mutation)> {
    // Values that are wrong anywhere, or wrong in most places.
    let bad_text = select(
        [
            BAD_DURATIONS,
            BAD_SIZES,
            BAD_NAMES,
            BAD_ROUTES,
            BAD_HOSTS,
            SIZES,
            ROUTES,
        ]
        .concat(),
    )
    .prop_map(|text| Value::String(text.into()));
    let change = prop_oneof![
        3 => wrong_type().prop_map(Mutation::Replace),
        2 => bad_text.prop_map(Mutation::Replace),
        1 => Just(Mutation::Remove),
        1 => (
            select(&["sauce", "Source", "limit", "routes", "path ", "descriptor"][..]),
            wrong_type(),
        )
            .prop_map(|(key, value)| Mutation::Unknown(key.into(), value)),
    ];
    (any::<proptest::sample::Index>(), change)
}

/// Every value in `value`, as the steps that lead to it.
fn places(value: &Value, at: &mut Vec<Vec<Place>>, here: &mut Vec<Place>) {
    let children: Vec<(Place, &Value)> = match value {
        Value::Table(table) => table
            .iter()
            .map(|(key, value)| (Place::Key(key.clone()), value))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, value)| (Place::Index(i), value))
            .collect(),
        _ => Vec::new(),
    };
    for (place, child) in children {
        here.push(place);
        at.push(here.clone());
        places(child, at, here);
        here.pop();
    }
}

#[derive(Debug, Clone)]
enum Place {
    Key(String),
    Index(usize),
}

fn mutate(manifest: &mut Value, (which, mutation): &(proptest::sample::Index, Mutation)) {
    let mut all = Vec::new();
    places(manifest, &mut all, &mut Vec::new());
    let Some((last, parents)) = all
        .get(which.index(all.len().max(1)))
        .and_then(|p| p.split_last())
    else {
        return;
    };
    let mut parent = &mut *manifest;
    for place in parents {
        parent = match (place, parent) {
            (Place::Key(key), Value::Table(table)) => table.get_mut(key).unwrap(),
            (Place::Index(i), Value::Array(items)) => &mut items[*i],
            _ => unreachable!(),
        };
    }
    match (mutation, last, parent) {
        (Mutation::Replace(value), Place::Key(key), Value::Table(table)) => {
            table.insert(key.clone(), value.clone());
        }
        (Mutation::Replace(value), Place::Index(i), Value::Array(items)) => {
            items[*i] = value.clone();
        }
        (Mutation::Remove, Place::Key(key), Value::Table(table)) => {
            table.remove(key);
        }
        (Mutation::Remove, Place::Index(i), Value::Array(items)) => {
            items.remove(*i);
        }
        (Mutation::Unknown(key, value), _, Value::Table(table)) => {
            table.insert(key.clone(), value.clone());
        }
        _ => {}
    }
}

/// A manifest close to a valid one: [`manifest`], with up to three of its
/// fields changed, left out or added.
fn near_valid_manifest() -> impl Strategy<Value = String> {
    // Most changes make the manifest unparsable, and the checks after
    // parsing need cases too: two in three are left as they are.
    let changes = prop_oneof![
        2 => Just(Vec::new()),
        1 => proptest::collection::vec(mutation(), 1..=3),
    ];
    (manifest(), changes).prop_filter_map("not writable as TOML", |(mut manifest, mutations)| {
        for change in &mutations {
            mutate(&mut manifest, change);
        }
        toml::to_string(&manifest).ok()
    })
}

/// Text that looks a little like a manifest, or not at all.
fn manifest_like_text() -> impl Strategy<Value = String> {
    let header = select(
        &[
            "[component.hello]",
            "[component.hello.limits]",
            "[[component.hello.files]]",
            "[component.hello.config]",
            "[component.hello.env]",
            "[component.\"a.b\"]",
            "[[route]]",
            "[limits]",
            "[route]",
            "[[limits]]",
            "[component]",
            "[",
            "[[]]",
        ][..],
    )
    .prop_map(String::from);
    let key = select(
        &[
            "source",
            "path",
            "component",
            "timeout",
            "memory",
            "instances",
            "fuel",
            "name",
            "secrets",
            "guest",
            "host",
            "mode",
            "allowed_outbound_hosts",
            "env",
            "\"quoted\"",
            "a.b",
            "",
        ][..],
    );
    let value = prop_oneof![
        select(
            &[
                "\"hello.wasm\"",
                "\"/...\"",
                "\"hello\"",
                "\"64MiB\"",
                "\"1e400ms\"",
                "5",
                "-1",
                "1e400",
                "nan",
                "inf",
                "0x1F",
                "1979-05-27",
                "true",
                "[1, \"a\"]",
                "[]",
                "{ env = \"PATH\" }",
                "{",
                "\"unterminated",
                "'''multi",
                "\"\\u0000\"",
                "\"\\uD800\"",
            ][..]
        )
        .prop_map(String::from),
        "\\PC{0,10}",
    ];
    let line = prop_oneof![
        3 => (key, value).prop_map(|(key, value)| format!("{key} = {value}")),
        1 => header,
        1 => any::<String>(),
    ];
    proptest::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(config())]

    /// Near-valid manifests: wrong types, unknown keys, values out of
    /// range, bad routes, hosts, names and sizes.
    #[test]
    fn near_valid_manifests_are_loaded_or_explained(text in near_valid_manifest()) {
        let dir = app_dir();
        check_manifest(dir.path(), &text)?;
    }

    /// Anything at all.
    #[test]
    fn any_text_is_loaded_or_explained(text in manifest_like_text()) {
        let dir = app_dir();
        check_manifest(dir.path(), &text)?;
    }
}

// ---- the router ----

/// Route patterns and request paths made of the same few segments, so that
/// they overlap.
fn path_text() -> impl Strategy<Value = String> {
    let segment = select(
        &[
            "", "a", "api", "users", "...", "b", "é", "%2F", "a b", "?", ".",
        ][..],
    );
    prop_oneof![
        8 => proptest::collection::vec(segment, 0..5)
            .prop_map(|segments| format!("/{}", segments.join("/"))),
        1 => any::<String>(),
        1 => "[a/.]{0,6}",
    ]
}

/// The routing rule, written out: an exact route, else the longest prefix
/// route that the path is, or is below.
fn most_specific(routes: &[(Pattern, usize)], path: &str) -> Option<usize> {
    let exact = routes.iter().find_map(|(pattern, target)| match pattern {
        Pattern::Exact(exact) if exact == path => Some(*target),
        _ => None,
    });
    exact.or_else(|| {
        routes
            .iter()
            .filter_map(|(pattern, target)| match pattern {
                Pattern::Prefix(prefix)
                    if path == prefix || path.starts_with(&format!("{prefix}/")) =>
                {
                    Some((prefix.len(), *target))
                }
                _ => None,
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, target)| target)
    })
}

proptest! {
    #![proptest_config(config())]

    /// Any routes are parsed or refused, and show as what they parse back
    /// to; a route table refuses the first duplicate and sends each path to
    /// its most specific route.
    #[test]
    fn the_most_specific_route_wins(
        routes in proptest::collection::vec(path_text(), 0..8),
        paths in proptest::collection::vec(path_text(), 1..8),
    ) {
        let mut parsed: Vec<(Pattern, usize)> = Vec::new();
        let mut duplicate = None;
        for (i, route) in routes.iter().enumerate() {
            let Ok(pattern) = Pattern::parse(route) else {
                continue;
            };
            prop_assert_eq!(Pattern::parse(&pattern.to_string()), Ok(pattern.clone()));
            if parsed.iter().any(|(p, _)| *p == pattern) {
                duplicate.get_or_insert(pattern.clone());
            }
            parsed.push((pattern, i));
        }
        match Router::new(parsed.iter().cloned()) {
            Err(pattern) => prop_assert_eq!(Some(pattern), duplicate),
            Ok(_) => prop_assert_eq!(duplicate, None),
        }
        // Without the duplicates, the first of each.
        let mut unique: Vec<(Pattern, usize)> = Vec::new();
        for (pattern, target) in parsed {
            if !unique.iter().any(|(p, _)| *p == pattern) {
                unique.push((pattern, target));
            }
        }
        let router = Router::new(unique.iter().cloned()).unwrap();
        for path in paths {
            prop_assert_eq!(
                router.route(&path),
                most_specific(&unique, &path),
                "{:?} with routes {:?}", path, unique
            );
        }
    }
}
