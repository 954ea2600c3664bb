//! The embedded backend: one redb database file per app, one table per
//! store. Every write is a transaction committed with fsync before it is
//! acknowledged, so an acknowledged write survives a crash of the host.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};

use super::backend::{Backend, BackendError, BackendResult, KeyPage, PAGE_SIZE, parse_counter};

/// redb, in a file.
#[derive(Clone)]
pub struct EmbeddedBackend {
    db: Arc<Database>,
    /// redb runs one write transaction at a time; writers queue here, in
    /// the async world, rather than as blocked threads.
    writer: Arc<tokio::sync::Mutex<()>>,
}

fn table(store: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(store)
}

fn fail(err: impl std::fmt::Display) -> BackendError {
    BackendError(format!("embedded store: {err}"))
}

impl EmbeddedBackend {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> BackendResult<Self> {
        // A new database file is this user's alone.
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
            match created {
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => {
                    return Err(BackendError(format!(
                        "cannot create the key-value database {}: {err}",
                        path.display()
                    )));
                }
            }
        }
        let db = Database::create(path).map_err(|err| {
            BackendError(format!(
                "cannot open the key-value database {}: {err}",
                path.display()
            ))
        })?;
        Ok(Self {
            db: Arc::new(db),
            writer: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Runs `read` on store `store`, or returns `missing` if the store has
    /// never been written.
    fn read<T>(
        &self,
        store: &str,
        missing: T,
        read: impl FnOnce(&redb::ReadOnlyTable<&'static str, &'static [u8]>) -> BackendResult<T>,
    ) -> BackendResult<T> {
        let txn = self.db.begin_read().map_err(fail)?;
        match txn.open_table(table(store)) {
            Ok(t) => read(&t),
            Err(TableError::TableDoesNotExist(_)) => Ok(missing),
            Err(err) => Err(fail(err)),
        }
    }

    /// Runs `write` in a write transaction on store `store` and commits it
    /// durably, off the async threads (a commit waits for the disk).
    async fn write<T: Send + 'static>(
        &self,
        store: &str,
        write: impl FnOnce(&mut redb::Table<&'static str, &'static [u8]>) -> BackendResult<T>
        + Send
        + 'static,
    ) -> BackendResult<T> {
        let db = self.db.clone();
        let store = store.to_string();
        let _turn = self.writer.lock().await;
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write().map_err(fail)?;
            let result = {
                let mut t = txn.open_table(table(&store)).map_err(fail)?;
                write(&mut t)?
            };
            txn.commit().map_err(fail)?;
            Ok(result)
        })
        .await
        .map_err(|err| fail(format!("write task failed: {err}")))?
    }
}

#[async_trait]
impl Backend for EmbeddedBackend {
    async fn get(&self, store: &str, key: &str) -> BackendResult<Option<Vec<u8>>> {
        self.read(store, None, |t| {
            Ok(t.get(key).map_err(fail)?.map(|v| v.value().to_vec()))
        })
    }

    async fn set(&self, store: &str, key: &str, value: Vec<u8>) -> BackendResult<()> {
        let key = key.to_string();
        self.write(store, move |t| {
            t.insert(key.as_str(), value.as_slice()).map_err(fail)?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, store: &str, key: &str) -> BackendResult<()> {
        let key = key.to_string();
        self.write(store, move |t| {
            t.remove(key.as_str()).map_err(fail)?;
            Ok(())
        })
        .await
    }

    async fn exists(&self, store: &str, key: &str) -> BackendResult<bool> {
        self.read(store, false, |t| Ok(t.get(key).map_err(fail)?.is_some()))
    }

    async fn list_keys(&self, store: &str, cursor: Option<&str>) -> BackendResult<KeyPage> {
        // The cursor is the last key of the previous page: any string is a
        // valid (if useless) cursor, so a guest cannot break this.
        self.read(store, KeyPage::default(), |t| {
            let range = match cursor {
                Some(after) => {
                    t.range::<&str>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                }
                None => t.range::<&str>(..),
            }
            .map_err(fail)?;
            let mut keys = Vec::with_capacity(PAGE_SIZE);
            let mut more = false;
            for entry in range {
                let (key, _) = entry.map_err(fail)?;
                if keys.len() == PAGE_SIZE {
                    more = true;
                    break;
                }
                keys.push(key.value().to_string());
            }
            let cursor = if more { keys.last().cloned() } else { None };
            Ok(KeyPage { keys, cursor })
        })
    }

    async fn increment(&self, store: &str, key: &str, delta: i64) -> BackendResult<i64> {
        let key = key.to_string();
        self.write(store, move |t| {
            let current = match t.get(key.as_str()).map_err(fail)? {
                Some(value) => parse_counter(value.value())?,
                None => 0,
            };
            let next = current
                .checked_add(delta)
                .ok_or_else(|| BackendError("the counter would overflow".into()))?;
            t.insert(key.as_str(), next.to_string().as_bytes())
                .map_err(fail)?;
            Ok(next)
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: Vec<u8>,
    ) -> BackendResult<Result<(), Option<Vec<u8>>>> {
        let key = key.to_string();
        let expected = expected.map(<[u8]>::to_vec);
        self.write(store, move |t| {
            let current = t
                .get(key.as_str())
                .map_err(fail)?
                .map(|v| v.value().to_vec());
            if current != expected {
                return Ok(Err(current));
            }
            t.insert(key.as_str(), new.as_slice()).map_err(fail)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn get_many(
        &self,
        store: &str,
        keys: &[String],
        max_bytes: usize,
    ) -> BackendResult<Option<Vec<Option<Vec<u8>>>>> {
        self.read(store, Some(vec![None; keys.len()]), |t| {
            let mut values = Vec::with_capacity(keys.len());
            let mut total = 0usize;
            for key in keys {
                let value = t.get(key.as_str()).map_err(fail)?;
                if let Some(value) = &value {
                    // The length is known before the value is copied out.
                    total = total.saturating_add(value.value().len());
                    if total > max_bytes {
                        return Ok(None);
                    }
                }
                values.push(value.map(|v| v.value().to_vec()));
            }
            Ok(Some(values))
        })
    }

    async fn set_many(&self, store: &str, pairs: Vec<(String, Vec<u8>)>) -> BackendResult<()> {
        self.write(store, move |t| {
            for (key, value) in &pairs {
                t.insert(key.as_str(), value.as_slice()).map_err(fail)?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_many(&self, store: &str, keys: &[String]) -> BackendResult<()> {
        let keys = keys.to_vec();
        self.write(store, move |t| {
            for key in &keys {
                t.remove(key.as_str()).map_err(fail)?;
            }
            Ok(())
        })
        .await
    }
}
