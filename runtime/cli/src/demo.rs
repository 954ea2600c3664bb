//! The demo app built into the `mayfly` binary, served by `mayfly serve`
//! when no app is given: the example guests from `guests/`, built by
//! `mayfly-guests` and embedded (the `demo` cargo feature).

use mayfly_guests::bytes;
use mayfly_sandbox::Grants;
use mayfly_serve::limits::Limits;
use mayfly_serve::manifest::{AppSpec, ComponentSpec, LimitFields, Source};
use mayfly_serve::router::Pattern;

/// Guest `name`, built into this binary, with no grants and default limits.
fn guest(name: &'static str, label: &'static str, bytes: &'static [u8]) -> ComponentSpec {
    ComponentSpec {
        name: name.to_string(),
        source: Source::Embedded { label, bytes },
        field: format!("demo.{name}"),
        limits: Limits::default(),
        limit_fields: LimitFields::default(),
        grants: Grants::default(),
        build: None,
    }
}

/// The demo app: `hello` at `/`, `echo` under `/echo/...`, the fresh-instance
/// `probe` at `/probe`, `slow` at `/slow`, and the stateful ones on the
/// embedded key-value store: the visit `counter` under `/count/...` and the
/// JSON `crud` service under `/items/...`.
pub fn app() -> AppSpec {
    let mut counter = guest("counter", "guests/counter", bytes::COUNTER);
    counter.grants.stores = vec!["default".into()];
    let mut crud = guest("crud", "guests/crud", bytes::CRUD);
    crud.grants.stores = vec!["items".into()];
    AppSpec {
        kind: mayfly_serve::manifest::AppKind::Mayfly,
        name: "demo".into(),
        components: vec![
            guest("hello", "guests/hello", bytes::HELLO),
            guest("echo", "guests/echo", bytes::ECHO),
            guest("probe", "guests/probe", bytes::PROBE),
            guest("slow", "guests/slow", bytes::SLOW),
            counter,
            crud,
        ],
        routes: vec![
            (Pattern::Exact("/".into()), 0),
            (Pattern::Prefix("/echo".into()), 1),
            (Pattern::Exact("/probe".into()), 2),
            (Pattern::Exact("/slow".into()), 3),
            (Pattern::Prefix("/count".into()), 4),
            (Pattern::Prefix("/items".into()), 5),
        ],
    }
}
