//! The state interfaces: `wasi:keyvalue` (store, atomics, batch),
//! `wasi:config/store` and `wasi:logging/logging`, as the WIT in
//! `wit/service` defines them.
//!
//! What a component may reach is fixed when it is loaded, in a
//! [`ComponentState`]: the store labels it was granted, its configuration
//! values, and the app's backend. Opening a store that was not granted
//! answers `access-denied`; no call traps for a guest's mistake, and no
//! backend failure takes the host down (the guest gets `other` with the
//! reason, and the host logs it).

use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::kv::{
    Backend, BackendError, MAX_BATCH, MAX_BATCH_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES,
};
use crate::report::Reporter;

/// Bindings generated from `wit/service`'s `state` world.
#[allow(missing_docs)]
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/service",
        world: "mayfly:service/state",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
            "wasi:keyvalue/atomics.cas": super::Cas,
        },
    });
}

use self::bindings::wasi::config::store as config;
use self::bindings::wasi::keyvalue::{atomics, batch, store};
use self::bindings::wasi::logging::logging;

/// Most bytes of `wasi:logging` output one request may write; beyond it,
/// messages are counted and dropped.
pub const LOG_CAP: usize = 64 << 10;
/// Longest single log message kept, in bytes (after escaping).
const MESSAGE_CAP: usize = 4 << 10;
/// Longest log context kept, in bytes (after escaping).
const CONTEXT_CAP: usize = 128;
/// Most bytes of values that compare-and-swap handles may hold at once in
/// one request; a handle that would go over it is refused.
pub const CAS_HELD_CAP: usize = 8 << 20;

/// What one component may reach through the state interfaces.
pub struct ComponentState {
    /// The component's name, for logs.
    pub component: Arc<str>,
    /// Labels of the key-value stores it was granted.
    pub stores: Vec<String>,
    /// Its configuration values.
    pub config: Vec<(String, String)>,
    /// Where the app's key-value data lives, if any store is granted.
    pub backend: Option<Arc<dyn Backend>>,
}

impl std::fmt::Debug for ComponentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentState")
            .field("component", &self.component)
            .field("stores", &self.stores)
            .field(
                "config",
                &self.config.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("backend", &self.backend.is_some())
            .finish()
    }
}

impl ComponentState {
    /// A component with no stores and no configuration.
    pub fn bare(component: Arc<str>) -> Arc<Self> {
        Arc::new(Self {
            component,
            stores: Vec::new(),
            config: Vec::new(),
            backend: None,
        })
    }
}

/// The per-request side: the component's state and the request's id.
pub struct StateCtx {
    component: Arc<ComponentState>,
    request: Arc<str>,
    /// Bytes of `wasi:logging` output written, and messages dropped.
    logged: usize,
    dropped: usize,
    /// Host warnings (denied stores, backend failures), capped.
    reporter: Reporter,
    /// Bytes held by live compare-and-swap handles.
    held: usize,
}

impl StateCtx {
    /// State for request `request` to a component.
    pub fn new(component: Arc<ComponentState>, request: Arc<str>) -> Self {
        Self {
            reporter: Reporter::new(component.component.clone(), request.clone(), "key-value"),
            component,
            request,
            logged: 0,
            dropped: 0,
            held: 0,
        }
    }

    /// A warning for the operator, capped per request.
    fn report(&self, message: &str) {
        self.reporter.report(message);
    }

    /// Charges `bytes` to the compare-and-swap budget, if they fit.
    fn hold(&mut self, bytes: usize) -> Result<(), store::Error> {
        match self.held.checked_add(bytes) {
            Some(held) if held <= CAS_HELD_CAP => {
                self.held = held;
                Ok(())
            }
            _ => Err(store::Error::Other(format!(
                "compare-and-swap handles would hold more than {CAS_HELD_CAP} bytes; \
                 drop some before opening more"
            ))),
        }
    }

    fn release(&mut self, bytes: usize) {
        self.held = self.held.saturating_sub(bytes);
    }
}

impl Drop for StateCtx {
    fn drop(&mut self) {
        if self.dropped > 0 {
            self.reporter.warn(&format!(
                "{} log messages dropped (cap {LOG_CAP} bytes per request)",
                self.dropped
            ));
        }
    }
}

/// A bucket a guest opened: a granted store's label.
pub struct Bucket {
    store: String,
}

/// A compare-and-swap handle: a key and the value read from it.
pub struct Cas {
    store: String,
    key: String,
    current: Option<Vec<u8>>,
}

impl Cas {
    /// The bytes it holds, charged to the request's budget.
    fn held(&self) -> usize {
        self.current.as_ref().map_or(0, Vec::len)
    }
}

/// What the state interfaces' host functions work on.
pub struct StateView<'a> {
    /// The request's state.
    pub ctx: &'a mut StateCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

struct HasState;

impl HasData for HasState {
    type Data<'a> = StateView<'a>;
}

/// Adds the state interfaces to `linker`; `get` finds them in a store's
/// data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> StateView<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, HasState>(linker, get)?;
    atomics::add_to_linker::<T, HasState>(linker, get)?;
    batch::add_to_linker::<T, HasState>(linker, get)?;
    config::add_to_linker::<T, HasState>(linker, get)?;
    logging::add_to_linker::<T, HasState>(linker, get)?;
    Ok(())
}

type KvResult<T> = wasmtime::Result<Result<T, store::Error>>;

impl StateView<'_> {
    fn backend(&self) -> Result<&Arc<dyn Backend>, store::Error> {
        self.ctx
            .component
            .backend
            .as_ref()
            .ok_or_else(|| store::Error::Other("no key-value backend is configured".into()))
    }

    fn bucket(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<String> {
        Ok(self.table.get(bucket)?.store.clone())
    }

    /// A backend failure, logged for the operator and given to the guest.
    fn failed(&mut self, store: &str, err: BackendError) -> store::Error {
        self.ctx
            .report(&format!("key-value store `{store}`: {err}"));
        store::Error::Other(err.0)
    }

    /// `value` in the resource table; a full table is the guest's error.
    fn push<T: Send + 'static>(&mut self, value: T) -> Result<Resource<T>, store::Error> {
        self.table
            .push(value)
            .map_err(|err| store::Error::Other(format!("too many open handles ({err})")))
    }

    /// A compare-and-swap handle, charged to the request's budget.
    fn push_cas(&mut self, cas: Cas) -> Result<Resource<Cas>, store::Error> {
        let held = cas.held();
        self.ctx.hold(held)?;
        self.push(cas).inspect_err(|_| self.ctx.release(held))
    }
}

fn check_key(key: &str) -> Result<(), store::Error> {
    if key.len() > MAX_KEY_BYTES {
        return Err(store::Error::Other(format!(
            "the key is {} bytes long; the limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), store::Error> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(store::Error::Other(format!(
            "the value is {} bytes long; the limit is {MAX_VALUE_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

fn check_batch(len: usize) -> Result<(), store::Error> {
    if len > MAX_BATCH {
        return Err(store::Error::Other(format!(
            "the batch has {len} keys; the limit is {MAX_BATCH}"
        )));
    }
    Ok(())
}

fn batch_too_big() -> store::Error {
    store::Error::Other(format!(
        "get-many would return more than {MAX_BATCH_BYTES} bytes of values; ask for fewer keys at a time"
    ))
}

/// Evaluates to the error as the guest's result if `$check` fails.
macro_rules! guest_try {
    ($check:expr) => {
        if let Err(err) = $check {
            return Ok(Err(err));
        }
    };
}

impl store::Host for StateView<'_> {
    async fn open(&mut self, identifier: String) -> KvResult<Resource<Bucket>> {
        if !self.ctx.component.stores.contains(&identifier) {
            self.ctx.report(&format!(
                "key-value store `{}` denied: not in key_value_stores",
                escape(&identifier, CONTEXT_CAP)
            ));
            return Ok(Err(store::Error::AccessDenied));
        }
        guest_try!(self.backend());
        Ok(self.push(Bucket { store: identifier }))
    }
}

impl store::HostBucket for StateView<'_> {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<Option<Vec<u8>>> {
        let store = self.bucket(&bucket)?;
        guest_try!(check_key(&key));
        let backend = self.backend().map(Arc::clone);
        let backend = match backend {
            Ok(backend) => backend,
            Err(err) => return Ok(Err(err)),
        };
        Ok(backend
            .get(&store, &key)
            .await
            .map_err(|err| self.failed(&store, err)))
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> KvResult<()> {
        let store = self.bucket(&bucket)?;
        guest_try!(check_key(&key));
        guest_try!(check_value(&value));
        let backend = match self.backend().map(Arc::clone) {
            Ok(backend) => backend,
            Err(err) => return Ok(Err(err)),
        };
        Ok(backend
            .set(&store, &key, value)
            .await
            .map_err(|err| self.failed(&store, err)))
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<()> {
        let store = self.bucket(&bucket)?;
        guest_try!(check_key(&key));
        let backend = match self.backend().map(Arc::clone) {
            Ok(backend) => backend,
            Err(err) => return Ok(Err(err)),
        };
        Ok(backend
            .delete(&store, &key)
            .await
            .map_err(|err| self.failed(&store, err)))
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<bool> {
        let store = self.bucket(&bucket)?;
        guest_try!(check_key(&key));
        let backend = match self.backend().map(Arc::clone) {
            Ok(backend) => backend,
            Err(err) => return Ok(Err(err)),
        };
        Ok(backend
            .exists(&store, &key)
            .await
            .map_err(|err| self.failed(&store, err)))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> KvResult<store::KeyResponse> {
        let store = self.bucket(&bucket)?;
        if let Some(cursor) = &cursor {
            guest_try!(check_key(cursor));
        }
        let backend = match self.backend().map(Arc::clone) {
            Ok(backend) => backend,
            Err(err) => return Ok(Err(err)),
        };
        // A cursor the backend never gave is the guest's mistake, not a
        // backend failure: no warning for the operator.
        if let Some(cursor) = &cursor {
            guest_try!(backend.check_cursor(cursor).map_err(store::Error::Other));
        }
        Ok(backend
            .list_keys(&store, cursor.as_deref())
            .await
            .map(|page| store::KeyResponse {
                keys: page.keys,
                cursor: page.cursor,
            })
            .map_err(|err| self.failed(&store, err)))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for StateView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> KvResult<i64> {
        let store = self.bucket(&bucket)?;
        guest_try!(check_key(&key));
        let backend = match self.backend().map(Arc::clone) {
            Ok(backend) => backend,
            Err(err) => return Ok(Err(err)),
        };
        Ok(backend
            .increment(&store, &key, delta)
            .await
            .map_err(|err| self.failed(&store, err)))
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let cas = self.table.delete(cas)?;
        self.ctx.release(cas.held());
        let Cas {
            store,
            key,
            current,
        } = cas;
        if let Err(err) = check_value(&value) {
            return Ok(Err(atomics::CasError::StoreError(err)));
        }
        let backend = match self.backend().map(Arc::clone) {
            Ok(backend) => backend,
            Err(err) => return Ok(Err(atomics::CasError::StoreError(err))),
        };
        match backend
            .compare_and_swap(&store, &key, current.as_deref(), value)
            .await
        {
            Ok(Ok(())) => Ok(Ok(())),
            // Someone else wrote first: a fresh handle with what is there now.
            Ok(Err(now)) => match self.push_cas(Cas {
                store,
                key,
                current: now,
            }) {
                Ok(fresh) => Ok(Err(atomics::CasError::CasFailed(fresh))),
                Err(err) => Ok(Err(atomics::CasError::StoreError(err))),
            },
            Err(err) => Ok(Err(atomics::CasError::StoreError(self.failed(&store, err)))),
        }
    }
}

impl atomics::HostCas for StateView<'_> {
    async fn new(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<Resource<Cas>> {
        let store = self.bucket(&bucket)?;
        guest_try!(check_key(&key));
        let backend = match self.backend().map(Arc::clone) {
            Ok(backend) => backend,
            Err(err) => return Ok(Err(err)),
        };
        let current = match backend.get(&store, &key).await {
            Ok(current) => current,
            Err(err) => return Ok(Err(self.failed(&store, err))),
        };
        Ok(self.push_cas(Cas {
            store,
            key,
            current,
        }))
    }

    async fn current(&mut self, cas: Resource<Cas>) -> KvResult<Option<Vec<u8>>> {
        Ok(Ok(self.table.get(&cas)?.current.clone()))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        let cas = self.table.delete(cas)?;
        self.ctx.release(cas.held());
        Ok(())
    }
}

impl batch::Host for StateView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
        let store = self.bucket(&bucket)?;
        guest_try!(check_batch(keys.len()));
        for key in &keys {
            guest_try!(check_key(key));
        }
        let backend = match self.backend().map(Arc::clone) {
            Ok(backend) => backend,
            Err(err) => return Ok(Err(err)),
        };
        // The backend stops at the cap, which counts a key listed twice
        // twice, as the reply does.
        let values = match backend.get_many(&store, &keys, MAX_BATCH_BYTES).await {
            Ok(Some(values)) => values,
            Ok(None) => return Ok(Err(batch_too_big())),
            Err(err) => return Ok(Err(self.failed(&store, err))),
        };
        if values.len() != keys.len() {
            let err = BackendError(format!(
                "get-many answered {} values for {} keys",
                values.len(),
                keys.len()
            ));
            return Ok(Err(self.failed(&store, err)));
        }
        Ok(Ok(keys.into_iter().zip(values).collect()))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> KvResult<()> {
        let store = self.bucket(&bucket)?;
        guest_try!(check_batch(pairs.len()));
        let mut total = 0usize;
        for (key, value) in &pairs {
            guest_try!(check_key(key));
            guest_try!(check_value(value));
            total = total.saturating_add(key.len() + value.len());
        }
        if total > MAX_BATCH_BYTES {
            return Ok(Err(store::Error::Other(format!(
                "set-many would write {total} bytes; the limit for one batch is {MAX_BATCH_BYTES}"
            ))));
        }
        let backend = match self.backend().map(Arc::clone) {
            Ok(backend) => backend,
            Err(err) => return Ok(Err(err)),
        };
        Ok(backend
            .set_many(&store, pairs)
            .await
            .map_err(|err| self.failed(&store, err)))
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> KvResult<()> {
        let store = self.bucket(&bucket)?;
        guest_try!(check_batch(keys.len()));
        for key in &keys {
            guest_try!(check_key(key));
        }
        let backend = match self.backend().map(Arc::clone) {
            Ok(backend) => backend,
            Err(err) => return Ok(Err(err)),
        };
        Ok(backend
            .delete_many(&store, &keys)
            .await
            .map_err(|err| self.failed(&store, err)))
    }
}

impl config::Host for StateView<'_> {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<String>, config::Error>> {
        Ok(Ok(self
            .ctx
            .component
            .config
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value.clone())))
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, config::Error>> {
        Ok(Ok(self.ctx.component.config.clone()))
    }
}

impl logging::Host for StateView<'_> {
    async fn log(
        &mut self,
        level: logging::Level,
        context: String,
        message: String,
    ) -> wasmtime::Result<()> {
        // Escaped at the source: a guest cannot forge log lines or send
        // terminal escapes, whatever formatter prints them.
        let context = escape(&context, CONTEXT_CAP);
        let message = escape(&message, MESSAGE_CAP);
        let cost = context.len() + message.len();
        if self.ctx.logged + cost > LOG_CAP {
            self.ctx.dropped += 1;
            return Ok(());
        }
        self.ctx.logged += cost;
        let level = match level {
            logging::Level::Trace => "trace",
            logging::Level::Debug => "debug",
            logging::Level::Info => "info",
            logging::Level::Warn => "warn",
            logging::Level::Error => "error",
            logging::Level::Critical => "critical",
        };
        let component = &*self.ctx.component.component;
        let request_id = &*self.ctx.request;
        macro_rules! log {
            ($macro:ident) => {
                tracing::$macro!(
                    component,
                    request_id,
                    context = %context,
                    guest_level = level,
                    "{message}"
                )
            };
        }
        match level {
            "trace" | "debug" => log!(debug),
            "info" => log!(info),
            "warn" => log!(warn),
            _ => log!(error),
        }
        Ok(())
    }
}

/// `text` with control characters (and the Unicode ones that reorder or
/// break lines) escaped as `\n`, `\u{1b}` and so on, cut to at most `cap`
/// bytes at a character boundary (ending in `...` if cut).
fn escape(text: &str, cap: usize) -> String {
    let mut out = String::with_capacity(text.len().min(cap));
    // Where the text may be cut and still leave room for `...`.
    let mut cut = 0;
    for c in text.chars() {
        let tricky = c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c);
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            _ if tricky => out.extend(c.escape_unicode()),
            _ => out.push(c),
        }
        if out.len() > cap {
            out.truncate(cut);
            out.push_str("...");
            return out;
        }
        if out.len() + 3 <= cap {
            cut = out.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn log_text_is_escaped_and_capped() {
        assert_eq!(escape("plain ü text", 100), "plain ü text");
        assert_eq!(
            escape("a\nforged line\r\u{1b}[31m\u{202e}", 100),
            "a\\nforged line\\r\\u{1b}[31m\\u{202e}"
        );
        assert_eq!(escape("abcdefghij", 10), "abcdefghij");
        assert_eq!(escape("abcdefghijk", 10), "abcdefg...");
        assert_eq!(escape("\n\n\n\n\n\n", 10), "\\n\\n\\n...");
        assert!(escape(&"é".repeat(100), 11).len() <= 11);
    }
}
