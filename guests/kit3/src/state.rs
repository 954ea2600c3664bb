//! The state interfaces, the same as the WASI 0.2 guests import
//! (`wasi:keyvalue@0.2.0-draft2`, `wasi:config@0.2.0-rc.1`,
//! `wasi:logging@0.1.0-draft`): synchronous, and imported by a 0.3
//! component as they are.

pub use crate::wasi::config::store as config;
pub use crate::wasi::keyvalue::{atomics, batch, store};
pub use crate::wasi::logging::logging;

/// The text of a store error, for a response body.
pub fn describe(err: &store::Error) -> String {
    match err {
        store::Error::NoSuchStore => "no-such-store".into(),
        store::Error::AccessDenied => "access-denied".into(),
        store::Error::Other(text) => format!("other: {text}"),
    }
}
