//! Spin's `fermyon:spin/variables@2.0.0` and `fermyon:spin/key-value@2.0.0`,
//! as Spin apps' components import them: the same per-component state as
//! the standard interfaces. A variable is one of the component's
//! configuration values (a Spin manifest's `[component.ID.variables]`);
//! a store is one the component was granted, on the app's backend. Errors
//! are Spin's own variants, with Spin's meanings: a store not granted is
//! `access-denied`, too many open stores `store-table-full`, a backend
//! failure `other` (and a warning for the operator).

use std::sync::Arc;

use wasmtime::component::Resource;

use super::StateView;
use super::bindings::spin::fermyon::spin::{key_value, variables};
use crate::escape::escape_capped;
use crate::kv::{Backend, MAX_BATCH_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// A store a guest opened: a granted store's label.
pub struct SpinStore {
    label: String,
}

/// Most stores one instance may hold open, as in Spin.
const MAX_OPEN_STORES: usize = 256;

/// Longest name a warning or an error shows, in bytes (after escaping).
const SHOWN_NAME_CAP: usize = 128;

type KvResult<T> = wasmtime::Result<Result<T, key_value::Error>>;

/// The value of `$result`, or, if it is the guest's error, that error as
/// the call's result.
macro_rules! guest_try {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(err) => return Ok(Err(err)),
        }
    };
}

impl variables::Host for StateView<'_> {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        let shown = escape_capped(&name, SHOWN_NAME_CAP);
        if !is_variable_name(&name) {
            return Ok(Err(variables::Error::InvalidName(format!(
                "`{shown}` is not a variable name: lowercase letters, digits and `_`, \
                 starting with a letter"
            ))));
        }
        let component = &self.ctx.component;
        Ok(component
            .config
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
            .ok_or_else(|| {
                variables::Error::Undefined(format!(
                    "no variable for \"{}\".\"{shown}\"",
                    component.component
                ))
            }))
    }
}

/// A variable name as Spin reads one: lowercase letters, digits and `_`,
/// starting with a letter.
fn is_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl StateView<'_> {
    fn spin_backend(&self) -> Result<Arc<dyn Backend>, key_value::Error> {
        self.ctx
            .component
            .backend
            .clone()
            .ok_or_else(|| key_value::Error::Other("no key-value backend is configured".into()))
    }

    fn spin_label(&self, store: &Resource<SpinStore>) -> wasmtime::Result<String> {
        Ok(self.table.get(store)?.label.clone())
    }

    /// The backend's `answer` as the guest gets it: a failure is logged for
    /// the operator and given as `other`.
    fn spin_answer<T>(&mut self, label: &str, answer: crate::kv::BackendResult<T>) -> KvResult<T> {
        Ok(answer.map_err(|err| {
            self.ctx
                .report(&format!("key-value store `{label}`: {err}"));
            key_value::Error::Other(err.0)
        }))
    }
}

fn check_key(key: &str) -> Result<(), key_value::Error> {
    if key.len() > MAX_KEY_BYTES {
        return Err(key_value::Error::Other(format!(
            "the key is {} bytes long; the limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

impl key_value::Host for StateView<'_> {}

impl key_value::HostStore for StateView<'_> {
    async fn open(&mut self, label: String) -> KvResult<Resource<SpinStore>> {
        if !self.ctx.component.stores.contains(&label) {
            self.ctx.report(&format!(
                "key-value store `{}` denied: not in key_value_stores",
                escape_capped(&label, SHOWN_NAME_CAP)
            ));
            return Ok(Err(key_value::Error::AccessDenied));
        }
        guest_try!(self.spin_backend());
        if self.ctx.spin_stores >= MAX_OPEN_STORES {
            return Ok(Err(key_value::Error::StoreTableFull));
        }
        match self.table.push(SpinStore { label }) {
            Ok(store) => {
                self.ctx.spin_stores += 1;
                Ok(Ok(store))
            }
            Err(_) => Ok(Err(key_value::Error::StoreTableFull)),
        }
    }

    async fn get(&mut self, store: Resource<SpinStore>, key: String) -> KvResult<Option<Vec<u8>>> {
        let label = self.spin_label(&store)?;
        guest_try!(check_key(&key));
        let backend = guest_try!(self.spin_backend());
        let answer = backend.get(&label, &key).await;
        self.spin_answer(&label, answer)
    }

    async fn set(
        &mut self,
        store: Resource<SpinStore>,
        key: String,
        value: Vec<u8>,
    ) -> KvResult<()> {
        let label = self.spin_label(&store)?;
        guest_try!(check_key(&key));
        if value.len() > MAX_VALUE_BYTES {
            return Ok(Err(key_value::Error::Other(format!(
                "the value is {} bytes long; the limit is {MAX_VALUE_BYTES}",
                value.len()
            ))));
        }
        let backend = guest_try!(self.spin_backend());
        let answer = backend.set(&label, &key, value).await;
        self.spin_answer(&label, answer)
    }

    async fn delete(&mut self, store: Resource<SpinStore>, key: String) -> KvResult<()> {
        let label = self.spin_label(&store)?;
        guest_try!(check_key(&key));
        let backend = guest_try!(self.spin_backend());
        let answer = backend.delete(&label, &key).await;
        self.spin_answer(&label, answer)
    }

    async fn exists(&mut self, store: Resource<SpinStore>, key: String) -> KvResult<bool> {
        let label = self.spin_label(&store)?;
        guest_try!(check_key(&key));
        let backend = guest_try!(self.spin_backend());
        let answer = backend.exists(&label, &key).await;
        self.spin_answer(&label, answer)
    }

    /// Every key, page by page; more than a batch's bytes of keys is an
    /// error rather than an unbounded list.
    async fn get_keys(&mut self, store: Resource<SpinStore>) -> KvResult<Vec<String>> {
        let label = self.spin_label(&store)?;
        let backend = guest_try!(self.spin_backend());
        let mut keys = Vec::new();
        let mut bytes = 0usize;
        let mut cursor: Option<String> = None;
        loop {
            let page = backend.list_keys(&label, cursor.as_deref()).await;
            let page = guest_try!(self.spin_answer(&label, page)?);
            bytes = page
                .keys
                .iter()
                .fold(bytes, |sum, key| sum.saturating_add(key.len()));
            if bytes > MAX_BATCH_BYTES {
                return Ok(Err(key_value::Error::Other(format!(
                    "the store's keys add up to more than {MAX_BATCH_BYTES} bytes"
                ))));
            }
            keys.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(Ok(keys)),
            }
        }
    }

    async fn drop(&mut self, store: Resource<SpinStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        self.ctx.spin_stores = self.ctx.spin_stores.saturating_sub(1);
        Ok(())
    }
}
