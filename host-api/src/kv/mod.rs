//! Key-value backends: where `wasi:keyvalue` data lives.
//!
//! A backend holds the stores of one app, each a separate key space named
//! by its label in the manifest. The embedded backend (redb, a file per app)
//! is the default; the Redis backend lets several Mayfly hosts share state.
//! Both keep counters as decimal text, so `get` on a counter reads `42`.

mod backend;
#[cfg(feature = "redb")]
mod embedded;
#[cfg(feature = "redis")]
mod redis;
mod shown_url;

pub use self::backend::{
    Backend, BackendError, BackendResult, KeyPage, MAX_BATCH, MAX_BATCH_BYTES, MAX_KEY_BYTES,
    MAX_VALUE_BYTES, PAGE_SIZE,
};
#[cfg(feature = "redb")]
pub use self::embedded::EmbeddedBackend;
#[cfg(feature = "redis")]
pub use self::redis::RedisBackend;
pub use self::shown_url::shown_url;
