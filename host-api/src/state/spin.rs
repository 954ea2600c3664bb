//! Spin's variables and key-value interfaces, as Spin apps' components
//! import them: `fermyon:spin/*@2.0.0` (synchronous; spin-sdk up to 5,
//! Spin's JavaScript SDK) and `spin:variables@3.0.0`,
//! `spin:key-value@3.0.0` (async; spin-sdk 6 and 7, on WASI 0.3). Both are
//! the same per-component state as the standard interfaces: a variable is
//! one of the component's configuration values (a Spin manifest's
//! `[component.ID.variables]`), a store one the component was granted, on
//! the app's backend. One set of operations here, and a thin layer per
//! version: Spin's errors, with Spin's meanings: a store not granted is
//! `access-denied`, more than 256 open stores `store-table-full`, a
//! backend failure `other` (and a warning for the operator).

use std::sync::Arc;

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::bindings::spin::fermyon::spin::{key_value as kv2, variables as var2};
use super::bindings::spin3::spin::key_value::key_value as kv3;
use super::bindings::spin3::spin::variables::variables as var3;
use super::{HasState, StateView};
use crate::escape::escape_capped;
use crate::kv::{Backend, BackendError, MAX_BATCH_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// A store a guest opened: a granted store's label.
pub struct SpinStore {
    label: String,
}

/// Most stores one instance may hold open, as in Spin.
const MAX_OPEN_STORES: usize = 256;

/// Longest name a warning or an error shows, in bytes (after escaping).
const SHOWN_NAME_CAP: usize = 128;

/// What a Spin variable's name is made of.
const VARIABLE_NAME_RULE: &str =
    "lowercase letters, digits and `_`, starting with a letter, not ending with `_`, without `__`";

/// Checks a variable's name as Spin allows it: the one rule for a
/// manifest's variables and a guest's lookups.
pub fn check_variable_name(name: &str) -> Result<(), String> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('_')
        && !name.contains("__")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid variable name: use {VARIABLE_NAME_RULE}",
            escape_capped(name, SHOWN_NAME_CAP)
        ))
    }
}

/// Why a variable has no value, in either version's terms.
enum VariableError {
    InvalidName(String),
    Undefined(String),
}

/// Why a store operation failed, in either version's terms.
enum StoreError {
    StoreTableFull,
    AccessDenied,
    Other(String),
}

macro_rules! version_errors {
    ($var:ident, $kv:ident) => {
        impl From<VariableError> for $var::Error {
            fn from(err: VariableError) -> Self {
                match err {
                    VariableError::InvalidName(message) => Self::InvalidName(message),
                    VariableError::Undefined(message) => Self::Undefined(message),
                }
            }
        }

        impl From<StoreError> for $kv::Error {
            fn from(err: StoreError) -> Self {
                match err {
                    StoreError::StoreTableFull => Self::StoreTableFull,
                    StoreError::AccessDenied => Self::AccessDenied,
                    StoreError::Other(message) => Self::Other(message),
                }
            }
        }
    };
}

version_errors!(var2, kv2);
version_errors!(var3, kv3);

/// What one operation on an open store does, once the view has given its
/// label and the backend.
enum Op {
    Get(String),
    Set(String, Vec<u8>),
    Delete(String),
    Exists(String),
    Keys,
}

/// An open store's label and the backend it lives on.
type Target = (String, Arc<dyn Backend>);

/// What it answers.
enum Answer {
    Value(Option<Vec<u8>>),
    Done,
    Exists(bool),
    Keys(Vec<String>),
}

impl StateView<'_> {
    /// The value of the component's variable `name`.
    fn spin_variable(&self, name: &str) -> Result<String, VariableError> {
        let shown = escape_capped(name, SHOWN_NAME_CAP);
        if check_variable_name(name).is_err() {
            return Err(VariableError::InvalidName(format!(
                "`{shown}` is not a variable name: {VARIABLE_NAME_RULE}"
            )));
        }
        let component = &self.ctx.component;
        component
            .config
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .ok_or_else(|| {
                VariableError::Undefined(format!(
                    "no variable for \"{}\".\"{shown}\"",
                    component.component
                ))
            })
    }

    /// Opens store `label`, if it was granted.
    fn spin_open(&mut self, label: String) -> Result<Resource<SpinStore>, StoreError> {
        if !self.ctx.component.stores.contains(&label) {
            self.ctx.report(&format!(
                "key-value store `{}` denied: not in key_value_stores",
                escape_capped(&label, SHOWN_NAME_CAP)
            ));
            return Err(StoreError::AccessDenied);
        }
        self.spin_backend()?;
        if self.ctx.spin_stores >= MAX_OPEN_STORES {
            return Err(StoreError::StoreTableFull);
        }
        let store = self
            .table
            .push(SpinStore { label })
            .map_err(|_| StoreError::StoreTableFull)?;
        self.ctx.spin_stores += 1;
        Ok(store)
    }

    fn spin_backend(&self) -> Result<Arc<dyn Backend>, StoreError> {
        self.ctx
            .component
            .backend
            .clone()
            .ok_or_else(|| StoreError::Other("no key-value backend is configured".into()))
    }

    /// An open store's label and the backend, for `op` (checked first).
    fn spin_target(
        &self,
        store: &Resource<SpinStore>,
        op: &Op,
    ) -> wasmtime::Result<Result<Target, StoreError>> {
        let label = self.table.get(store)?.label.clone();
        Ok(check(op).and_then(|()| Ok((label, self.spin_backend()?))))
    }

    /// A backend failure, logged for the operator and given to the guest.
    fn spin_failed(&mut self, label: &str, err: BackendError) -> StoreError {
        self.ctx
            .report(&format!("key-value store `{label}`: {err}"));
        StoreError::Other(err.0)
    }

    fn spin_close(&mut self, store: Resource<SpinStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        self.ctx.spin_stores = self.ctx.spin_stores.saturating_sub(1);
        Ok(())
    }
}

/// The bounds a key or value of `op` must keep.
fn check(op: &Op) -> Result<(), StoreError> {
    let (key, value) = match op {
        Op::Get(key) | Op::Delete(key) | Op::Exists(key) => (Some(key), None),
        Op::Set(key, value) => (Some(key), Some(value)),
        Op::Keys => (None, None),
    };
    if let Some(key) = key.filter(|key| key.len() > MAX_KEY_BYTES) {
        return Err(StoreError::Other(format!(
            "the key is {} bytes long; the limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    if let Some(value) = value.filter(|value| value.len() > MAX_VALUE_BYTES) {
        return Err(StoreError::Other(format!(
            "the value is {} bytes long; the limit is {MAX_VALUE_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

/// Runs `op` on store `label`; a guest's error (too many keys) is `Ok(Err)`,
/// a backend failure `Err`.
async fn run(
    backend: &dyn Backend,
    label: &str,
    op: Op,
) -> Result<Result<Answer, StoreError>, BackendError> {
    Ok(Ok(match op {
        Op::Get(key) => Answer::Value(backend.get(label, &key).await?),
        Op::Set(key, value) => {
            backend.set(label, &key, value).await?;
            Answer::Done
        }
        Op::Delete(key) => {
            backend.delete(label, &key).await?;
            Answer::Done
        }
        Op::Exists(key) => Answer::Exists(backend.exists(label, &key).await?),
        Op::Keys => {
            // Every key, page by page: more than a batch's bytes of keys is
            // the guest's error rather than an unbounded list.
            let mut keys = Vec::new();
            let mut bytes = 0usize;
            let mut cursor: Option<String> = None;
            loop {
                let page = backend.list_keys(label, cursor.as_deref()).await?;
                // A key costs its bytes and its `String`: empty keys count.
                bytes = page.keys.iter().fold(bytes, |sum, key| {
                    sum.saturating_add(key.len() + std::mem::size_of::<String>())
                });
                if bytes > MAX_BATCH_BYTES {
                    return Ok(Err(StoreError::Other(format!(
                        "the store's keys add up to more than {MAX_BATCH_BYTES} bytes"
                    ))));
                }
                keys.extend(page.keys);
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => break Answer::Keys(keys),
                }
            }
        }
    }))
}

// --- fermyon:spin@2.0.0: the view is held across the backend's await.

type Kv2<T> = wasmtime::Result<Result<T, kv2::Error>>;

impl StateView<'_> {
    async fn spin2(&mut self, store: &Resource<SpinStore>, op: Op) -> Kv2<Answer> {
        let (label, backend) = match self.spin_target(store, &op)? {
            Ok(target) => target,
            Err(err) => return Ok(Err(err.into())),
        };
        Ok(match run(&*backend, &label, op).await {
            Ok(answer) => answer.map_err(Into::into),
            Err(err) => Err(self.spin_failed(&label, err).into()),
        })
    }
}

impl var2::Host for StateView<'_> {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, var2::Error>> {
        Ok(self.spin_variable(&name).map_err(Into::into))
    }
}

impl kv2::Host for StateView<'_> {}

impl kv2::HostStore for StateView<'_> {
    async fn open(&mut self, label: String) -> Kv2<Resource<SpinStore>> {
        Ok(self.spin_open(label).map_err(Into::into))
    }

    async fn get(&mut self, store: Resource<SpinStore>, key: String) -> Kv2<Option<Vec<u8>>> {
        Ok(self
            .spin2(&store, Op::Get(key))
            .await?
            .map(|answer| match answer {
                Answer::Value(value) => value,
                _ => None,
            }))
    }

    async fn set(&mut self, store: Resource<SpinStore>, key: String, value: Vec<u8>) -> Kv2<()> {
        Ok(self.spin2(&store, Op::Set(key, value)).await?.map(drop))
    }

    async fn delete(&mut self, store: Resource<SpinStore>, key: String) -> Kv2<()> {
        Ok(self.spin2(&store, Op::Delete(key)).await?.map(drop))
    }

    async fn exists(&mut self, store: Resource<SpinStore>, key: String) -> Kv2<bool> {
        Ok(self
            .spin2(&store, Op::Exists(key))
            .await?
            .map(|answer| matches!(answer, Answer::Exists(true))))
    }

    async fn get_keys(&mut self, store: Resource<SpinStore>) -> Kv2<Vec<String>> {
        Ok(self
            .spin2(&store, Op::Keys)
            .await?
            .map(|answer| match answer {
                Answer::Keys(keys) => keys,
                _ => Vec::new(),
            }))
    }

    async fn drop(&mut self, store: Resource<SpinStore>) -> wasmtime::Result<()> {
        self.spin_close(store)
    }
}

// --- spin:*@3.0.0: async functions, which take the view only between
// awaits (other tasks of the instance run meanwhile).

type Kv3<T> = wasmtime::Result<Result<T, kv3::Error>>;

/// Runs `op` on `store` for a 3.0.0 call.
async fn spin3<U>(
    accessor: &Accessor<U, HasState>,
    store: &Resource<SpinStore>,
    op: Op,
) -> Kv3<Answer> {
    let target = accessor.with(|mut access| access.get().spin_target(store, &op))?;
    let (label, backend) = match target {
        Ok(target) => target,
        Err(err) => return Ok(Err(err.into())),
    };
    Ok(match run(&*backend, &label, op).await {
        Ok(answer) => answer.map_err(Into::into),
        Err(err) => Err(accessor
            .with(|mut access| access.get().spin_failed(&label, err))
            .into()),
    })
}

impl var3::Host for StateView<'_> {}

impl<U> var3::HostWithStore<U> for HasState {
    async fn get(
        accessor: &Accessor<U, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, var3::Error>> {
        Ok(accessor.with(|mut access| access.get().spin_variable(&name).map_err(Into::into)))
    }
}

impl kv3::Host for StateView<'_> {}

impl kv3::HostStore for StateView<'_> {
    fn drop(&mut self, store: Resource<SpinStore>) -> wasmtime::Result<()> {
        self.spin_close(store)
    }
}

impl<U> kv3::HostStoreWithStore<U> for HasState {
    async fn open(accessor: &Accessor<U, Self>, label: String) -> Kv3<Resource<SpinStore>> {
        Ok(accessor.with(|mut access| access.get().spin_open(label).map_err(Into::into)))
    }

    async fn get(
        accessor: &Accessor<U, Self>,
        store: Resource<SpinStore>,
        key: String,
    ) -> Kv3<Option<Vec<u8>>> {
        Ok(spin3(accessor, &store, Op::Get(key))
            .await?
            .map(|answer| match answer {
                Answer::Value(value) => value,
                _ => None,
            }))
    }

    async fn set(
        accessor: &Accessor<U, Self>,
        store: Resource<SpinStore>,
        key: String,
        value: Vec<u8>,
    ) -> Kv3<()> {
        Ok(spin3(accessor, &store, Op::Set(key, value))
            .await?
            .map(drop))
    }

    async fn delete(
        accessor: &Accessor<U, Self>,
        store: Resource<SpinStore>,
        key: String,
    ) -> Kv3<()> {
        Ok(spin3(accessor, &store, Op::Delete(key)).await?.map(drop))
    }

    async fn exists(
        accessor: &Accessor<U, Self>,
        store: Resource<SpinStore>,
        key: String,
    ) -> Kv3<bool> {
        Ok(spin3(accessor, &store, Op::Exists(key))
            .await?
            .map(|answer| matches!(answer, Answer::Exists(true))))
    }

    /// The keys, all read before the stream starts: a stream of them, and
    /// the outcome.
    async fn get_keys(
        accessor: &Accessor<U, Self>,
        store: Resource<SpinStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), kv3::Error>>)> {
        let (keys, outcome) = match spin3(accessor, &store, Op::Keys).await? {
            Ok(Answer::Keys(keys)) => (keys, Ok(())),
            Ok(_) => (Vec::new(), Ok(())),
            Err(err) => (Vec::new(), Err(err)),
        };
        accessor.with(|mut access| {
            let stream = StreamReader::new(&mut access, keys)?;
            let outcome =
                FutureReader::new(
                    &mut access,
                    async move { Ok::<_, wasmtime::Error>(outcome) },
                )?;
            Ok((stream, outcome))
        })
    }
}
