//! Bindings for the state interfaces (`wasi:keyvalue@0.2.0-draft2`,
//! `wasi:config@0.2.0-rc.1`, `wasi:logging@0.1.0-draft`), from
//! `wit/service`'s `state` world (`wit/service-p3`'s is the same files).
//! They are synchronous, and a 0.3 component imports them as a 0.2 one
//! does: one binding serves both worlds. HTTP comes from each world's kit.

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
