//! Bindings for the state interfaces (`wasi:keyvalue`, `wasi:config`,
//! `wasi:logging`) from `wit/service`'s `state` world. HTTP comes from the
//! `wasip2` crate as usual.

wit_bindgen::generate!({
    path: "../../wit/service",
    world: "mayfly:service/state",
    generate_all,
});

pub use self::wasi::config::store as config;
pub use self::wasi::keyvalue::{atomics, batch, store};
pub use self::wasi::logging::logging;

/// The text of a store error, for a response body.
pub fn describe(err: &store::Error) -> String {
    match err {
        store::Error::NoSuchStore => "no-such-store".into(),
        store::Error::AccessDenied => "access-denied".into(),
        store::Error::Other(text) => format!("other: {text}"),
    }
}
