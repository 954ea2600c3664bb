//! The embedded backend: one redb database file per app, one table per
//! store. Every write is acknowledged only once the transaction holding it
//! is committed with fsync, so an acknowledged write survives a crash of
//! the host.
//!
//! Writes are committed in groups. One writer thread takes every write
//! waiting when it is free, applies them in order in one transaction, and
//! commits once: concurrent writers share one fsync instead of queueing for
//! one each. Each write still sees the ones before it, so increments and
//! compare-and-swap stay exact. A write that fails (a counter that would
//! overflow, say) must not take the others with it: the group is then
//! rolled back and each of its writes committed on its own. Reads take a
//! snapshot of the last commit and never wait for the writer.

use std::any::Any;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};

use super::backend::{Backend, BackendError, BackendResult, KeyPage, PAGE_SIZE, parse_counter};

/// Most writes committed in one transaction.
const MAX_GROUP: usize = 128;

/// redb, in a file.
#[derive(Clone)]
pub struct EmbeddedBackend {
    db: Arc<Database>,
    writer: Arc<Writer>,
}

/// A store's table, as a write sees it.
type WriteTable<'t> = redb::Table<'t, &'static str, &'static [u8]>;

/// What a write does to its store's table, and what it answers. It may run
/// twice (once in a group that is rolled back), so it only borrows what it
/// writes.
type WriteOp = Box<dyn for<'t> Fn(&mut WriteTable<'t>) -> BackendResult<Answer> + Send>;

/// A write's answer, of the type its caller expects.
type Answer = Box<dyn Any + Send>;

/// One write waiting for the writer thread.
struct Job {
    store: String,
    op: WriteOp,
    reply: tokio::sync::oneshot::Sender<BackendResult<Answer>>,
}

/// The writer thread, and the queue to it. Dropped with the last handle on
/// the backend: the queue closes, and the thread (which holds the
/// database) is waited for, so the file is closed when this returns.
struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Transactions committed.
    commits: Arc<AtomicU64>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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
        let db = Arc::new(Database::create(path).map_err(|err| {
            BackendError(format!(
                "cannot open the key-value database {}: {err}",
                path.display()
            ))
        })?);
        let (jobs, queue) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let thread = std::thread::Builder::new()
            .name("mayfly-kv-writer".into())
            .spawn({
                let db = db.clone();
                let commits = commits.clone();
                move || write_groups(&db, &queue, &commits)
            })
            .map_err(|err| fail(format!("cannot start the writer thread: {err}")))?;
        Ok(Self {
            db,
            writer: Arc::new(Writer {
                jobs: Some(jobs),
                thread: Some(thread),
                commits,
            }),
        })
    }

    /// Write transactions committed so far (each holds one or more
    /// writes).
    pub fn commits(&self) -> u64 {
        self.writer.commits.load(Ordering::Relaxed)
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

    /// Runs `write` on store `store` in the writer's next group, and
    /// answers once the group is durably committed.
    async fn write<T: Send + 'static>(
        &self,
        store: &str,
        write: impl for<'t> Fn(&mut WriteTable<'t>) -> BackendResult<T> + Send + 'static,
    ) -> BackendResult<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            store: store.to_string(),
            op: Box::new(move |t| write(t).map(|value| -> Answer { Box::new(value) })),
            reply,
        };
        let stopped = || fail("the writer has stopped");
        let jobs = self.writer.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(job).map_err(|_| stopped())?;
        let answer = answer.await.map_err(|_| stopped())??;
        answer
            .downcast::<T>()
            .map(|value| *value)
            .map_err(|_| fail("a write answered with the wrong type"))
    }
}

/// The writer thread: every write waiting when it is free becomes one
/// group, until the queue closes.
fn write_groups(db: &Database, queue: &mpsc::Receiver<Job>, commits: &AtomicU64) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(db, group, commits);
    }
}

/// Why a group was not committed whole.
enum GroupFailed {
    /// One of its writes failed: each is tried on its own.
    Write,
    /// The database failed: every write in it gets this.
    Database(String),
}

/// Commits `group` in one transaction, or, if one of its writes fails,
/// each write in a transaction of its own; then answers each.
fn commit_group(db: &Database, group: Vec<Job>, commits: &AtomicU64) {
    let failed = match apply_together(db, &group) {
        Ok(answers) => {
            commits.fetch_add(1, Ordering::Relaxed);
            for (job, answer) in group.into_iter().zip(answers) {
                let _ = job.reply.send(Ok(answer));
            }
            return;
        }
        Err(failed) => failed,
    };
    for job in group {
        let answer = match &failed {
            GroupFailed::Database(err) => Err(fail(err)),
            GroupFailed::Write => {
                let answer = apply_alone(db, &job);
                commits.fetch_add(1, Ordering::Relaxed);
                answer
            }
        };
        let _ = job.reply.send(answer);
    }
}

/// Every write of `group` in order, in one transaction, committed.
fn apply_together(db: &Database, group: &[Job]) -> Result<Vec<Answer>, GroupFailed> {
    let database = |err: &dyn std::fmt::Display| GroupFailed::Database(err.to_string());
    let txn = db.begin_write().map_err(|err| database(&err))?;
    let mut answers = Vec::with_capacity(group.len());
    // Consecutive writes to one store share its open table (opening one
    // costs a lookup, and closing it an update of the table tree).
    let mut open: Option<(&str, WriteTable<'_>)> = None;
    for job in group {
        let t = match &mut open {
            Some((store, t)) if *store == job.store => t,
            _ => {
                // (The table before is closed first.)
                open = None;
                let t = txn
                    .open_table(table(&job.store))
                    .map_err(|err| database(&err))?;
                &mut open.insert((&job.store, t)).1
            }
        };
        // A failed write may have written part of itself: the whole
        // transaction is dropped, which rolls it back.
        answers.push((job.op)(t).map_err(|_| GroupFailed::Write)?);
    }
    drop(open);
    txn.commit().map_err(|err| database(&err))?;
    Ok(answers)
}

/// One write in a transaction of its own, committed if it succeeds.
fn apply_alone(db: &Database, job: &Job) -> BackendResult<Answer> {
    let txn = db.begin_write().map_err(fail)?;
    let answer = {
        let mut t = txn.open_table(table(&job.store)).map_err(fail)?;
        (job.op)(&mut t)?
    };
    txn.commit().map_err(fail)?;
    Ok(answer)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(dir: &tempfile::TempDir) -> EmbeddedBackend {
        EmbeddedBackend::open(&dir.path().join("app.redb")).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_to_several_stores_in_one_group_each_land_in_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let db = backend(&dir);
        // Interleaved, so groups switch between the stores' tables.
        let writers: Vec<_> = (0..300)
            .map(|n| {
                let db = db.clone();
                let store = ["a", "b", "c"][n % 3];
                tokio::spawn(async move { (store, db.increment(store, "n", 1).await.unwrap()) })
            })
            .collect();
        let mut answers: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
        for writer in writers {
            let (store, total) = writer.await.unwrap();
            answers.entry(store).or_default().push(total);
        }
        for (store, mut totals) in answers {
            totals.sort_unstable();
            assert_eq!(totals, (1..=100).collect::<Vec<i64>>(), "store {store}");
            assert_eq!(db.get(store, "n").await.unwrap(), Some(b"100".to_vec()));
        }
        assert!(db.commits() < 300, "{} commits", db.commits());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_increments_are_grouped_and_stay_exact() {
        let dir = tempfile::tempdir().unwrap();
        let db = backend(&dir);
        let writers: Vec<_> = (0..400)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move { db.increment("s", "n", 1).await.unwrap() })
            })
            .collect();
        let mut answers = Vec::new();
        for writer in writers {
            answers.push(writer.await.unwrap());
        }
        answers.sort_unstable();
        assert_eq!(answers, (1..=400).collect::<Vec<i64>>());
        assert_eq!(db.get("s", "n").await.unwrap(), Some(b"400".to_vec()));
        // Writers that came while a commit was on its way to the disk
        // shared the next one.
        assert!(
            db.commits() < 400,
            "{} commits for 400 writes",
            db.commits()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_does_not_take_its_group_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = backend(&dir);
        db.set("s", "full", i64::MAX.to_string().into_bytes())
            .await
            .unwrap();
        let writers: Vec<_> = (0..200)
            .map(|i| {
                let db = db.clone();
                let key = if i % 2 == 0 { "full" } else { "fine" };
                tokio::spawn(async move { (key, db.increment("s", key, 1).await) })
            })
            .collect();
        let mut fine = 0;
        for writer in writers {
            match writer.await.unwrap() {
                ("full", Err(err)) => assert_eq!(err.0, "the counter would overflow"),
                ("fine", Ok(_)) => fine += 1,
                other => panic!("unexpected: {other:?}"),
            }
        }
        assert_eq!(fine, 100);
        assert_eq!(db.get("s", "fine").await.unwrap(), Some(b"100".to_vec()));
        assert_eq!(
            db.get("s", "full").await.unwrap(),
            Some(i64::MAX.to_string().into_bytes())
        );
    }

    #[tokio::test]
    async fn the_file_is_closed_when_the_last_handle_goes() {
        let dir = tempfile::tempdir().unwrap();
        let db = backend(&dir);
        let other = db.clone();
        db.set("s", "k", b"v".to_vec()).await.unwrap();
        drop(db);
        other.set("s", "k2", b"v2".to_vec()).await.unwrap();
        drop(other);
        // Open again at once: the writer thread has let go of it.
        let again = backend(&dir);
        assert_eq!(again.get("s", "k2").await.unwrap(), Some(b"v2".to_vec()));
    }
}
