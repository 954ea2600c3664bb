//! What a key-value backend is: the trait, its bounds and its errors.

use async_trait::async_trait;

/// Longest key a guest may use, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest value a guest may store, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Keys per `list-keys` page.
pub const PAGE_SIZE: usize = 100;
/// Most keys in one batch operation.
pub const MAX_BATCH: usize = 1000;
/// Most bytes of keys and values one batch operation reads or writes: a
/// `get-many` whose values add up to more is refused, not allocated.
pub const MAX_BATCH_BYTES: usize = 16 << 20;

/// A failure of the backend itself (I/O, connection, corruption). Guests
/// see its text as `error::other`.
#[derive(Debug)]
pub struct BackendError(pub String);

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendError {}

/// The result of a backend operation.
pub type BackendResult<T> = Result<T, BackendError>;

/// A page of keys and the cursor for the next one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Up to [`PAGE_SIZE`] keys.
    pub keys: Vec<String>,
    /// Where the next page starts; `None` on the last page.
    pub cursor: Option<String>,
}

/// Where key-value data lives. Every method is one atomic operation on
/// store `store`.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The value of `key`.
    async fn get(&self, store: &str, key: &str) -> BackendResult<Option<Vec<u8>>>;
    /// Sets `key` to `value`; acknowledged only once durable.
    async fn set(&self, store: &str, key: &str, value: Vec<u8>) -> BackendResult<()>;
    /// Removes `key`.
    async fn delete(&self, store: &str, key: &str) -> BackendResult<()>;
    /// Whether `key` is set.
    async fn exists(&self, store: &str, key: &str) -> BackendResult<bool>;
    /// Whether `cursor` is one this backend could have given out; the
    /// reason if not. A bad cursor is the guest's mistake, not a failure of
    /// the backend, so it is checked before [`Backend::list_keys`].
    fn check_cursor(&self, cursor: &str) -> Result<(), String> {
        let _ = cursor;
        Ok(())
    }
    /// A page of keys after `cursor` (an opaque string from an earlier
    /// page). A cursor the backend cannot read is an error, never a crash.
    async fn list_keys(&self, store: &str, cursor: Option<&str>) -> BackendResult<KeyPage>;
    /// Adds `delta` to the integer at `key` (missing is 0); the new value.
    async fn increment(&self, store: &str, key: &str, delta: i64) -> BackendResult<i64>;
    /// Sets `key` to `new` if it holds `expected` (`None`: not set).
    /// `Ok(Err(current))` if it held something else.
    async fn compare_and_swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: Vec<u8>,
    ) -> BackendResult<Result<(), Option<Vec<u8>>>>;
    /// The values of `keys`, in order, or `Ok(None)` as soon as they add up
    /// to more than `max_bytes` (reading stops there). Not atomic: each key
    /// is read as it is at some moment during the call.
    async fn get_many(
        &self,
        store: &str,
        keys: &[String],
        max_bytes: usize,
    ) -> BackendResult<Option<Vec<Option<Vec<u8>>>>>;
    /// Sets every pair, all or nothing; of pairs with the same key, the
    /// last wins.
    async fn set_many(&self, store: &str, pairs: Vec<(String, Vec<u8>)>) -> BackendResult<()>;
    /// Removes every key, all or nothing.
    async fn delete_many(&self, store: &str, keys: &[String]) -> BackendResult<()>;
}

/// Parses a stored counter; a value that is not an integer is an error.
#[cfg(any(feature = "redb", feature = "redis"))]
pub(super) fn parse_counter(bytes: &[u8]) -> BackendResult<i64> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| {
            BackendError("the value is not an integer, so it cannot be incremented".into())
        })
}
