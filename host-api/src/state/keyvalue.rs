//! `wasi:keyvalue` (store, atomics, batch): buckets are the granted stores,
//! every key, value and batch is bounded, and a backend failure is the
//! guest's `error::other` (and a warning for the operator), never a trap.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::bindings::wasi::keyvalue::{atomics, batch, store};
use super::{Bucket, Cas, StateView};
use crate::escape::escape_capped;
use crate::kv::{
    Backend, BackendError, MAX_BATCH, MAX_BATCH_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES,
};

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

impl Cas {
    /// The bytes it holds, charged to the request's budget.
    fn held(&self) -> usize {
        self.current.as_ref().map_or(0, Vec::len)
    }
}

/// Longest store name a warning shows, in bytes (after escaping).
const SHOWN_NAME_CAP: usize = 128;

type KvResult<T> = wasmtime::Result<Result<T, store::Error>>;

impl StateView<'_> {
    /// The stores' backend; the guest's error if there is none.
    fn backend(&self) -> Result<Arc<dyn Backend>, store::Error> {
        self.ctx
            .component
            .backend
            .clone()
            .ok_or_else(|| store::Error::Other("no key-value backend is configured".into()))
    }

    /// The backend's `answer` for `store`, as the guest gets it: a
    /// failure is logged for the operator and given as `other`.
    fn answer<T>(&mut self, store: &str, answer: Result<T, BackendError>) -> KvResult<T> {
        Ok(answer.map_err(|err| self.failed(store, err)))
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

impl store::Host for StateView<'_> {
    async fn open(&mut self, identifier: String) -> KvResult<Resource<Bucket>> {
        if !self.ctx.component.stores.contains(&identifier) {
            self.ctx.report(&format!(
                "key-value store `{}` denied: not in key_value_stores",
                escape_capped(&identifier, SHOWN_NAME_CAP)
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
        let backend = guest_try!(self.backend());
        let answer = backend.get(&store, &key).await;
        self.answer(&store, answer)
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> KvResult<()> {
        let store = self.bucket(&bucket)?;
        guest_try!(check_key(&key));
        guest_try!(check_value(&value));
        let backend = guest_try!(self.backend());
        let answer = backend.set(&store, &key, value).await;
        self.answer(&store, answer)
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<()> {
        let store = self.bucket(&bucket)?;
        guest_try!(check_key(&key));
        let backend = guest_try!(self.backend());
        let answer = backend.delete(&store, &key).await;
        self.answer(&store, answer)
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> KvResult<bool> {
        let store = self.bucket(&bucket)?;
        guest_try!(check_key(&key));
        let backend = guest_try!(self.backend());
        let answer = backend.exists(&store, &key).await;
        self.answer(&store, answer)
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
        let backend = guest_try!(self.backend());
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
        let backend = guest_try!(self.backend());
        let answer = backend.increment(&store, &key, delta).await;
        self.answer(&store, answer)
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
        let backend = match self.backend() {
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
        let backend = guest_try!(self.backend());
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
        let backend = guest_try!(self.backend());
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
        let backend = guest_try!(self.backend());
        let answer = backend.set_many(&store, pairs).await;
        self.answer(&store, answer)
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> KvResult<()> {
        let store = self.bucket(&bucket)?;
        guest_try!(check_batch(keys.len()));
        for key in &keys {
            guest_try!(check_key(key));
        }
        let backend = guest_try!(self.backend());
        let answer = backend.delete_many(&store, &keys).await;
        self.answer(&store, answer)
    }
}
