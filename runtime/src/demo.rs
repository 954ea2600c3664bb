//! The demo app built into the `mayfly` binary, served by `mayfly serve`
//! when no app is given: the example guests from `guests/`, compiled by the
//! build script and embedded.

use crate::limits::RequestLimits;
use crate::manifest::{AppSpec, ComponentSpec, Grants, Source};
use crate::router::Pattern;

macro_rules! guest {
    ($name:literal, $env:literal) => {
        ComponentSpec {
            name: $name.to_string(),
            source: Source::Embedded {
                label: concat!("guests/", $name),
                bytes: include_bytes!(env!($env)),
            },
            field: format!("demo.{}", $name),
            limits: RequestLimits::default(),
            grants: Grants::default(),
        }
    };
}

/// The demo app: `hello` at `/`, `echo` under `/echo/...`, the fresh-instance
/// `probe` at `/probe`, `slow` at `/slow`, and the stateful ones on the
/// embedded key-value store: the visit `counter` under `/count/...` and the
/// JSON `crud` service under `/items/...`.
pub fn app() -> AppSpec {
    let mut counter = guest!("counter", "MAYFLY_GUEST_COUNTER");
    counter.grants.stores = vec!["default".into()];
    let mut crud = guest!("crud", "MAYFLY_GUEST_CRUD");
    crud.grants.stores = vec!["items".into()];
    AppSpec {
        name: "demo".into(),
        components: vec![
            guest!("hello", "MAYFLY_GUEST_HELLO"),
            guest!("echo", "MAYFLY_GUEST_ECHO"),
            guest!("probe", "MAYFLY_GUEST_PROBE"),
            guest!("slow", "MAYFLY_GUEST_SLOW"),
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
