//! The Redis backend: an app's stores as key prefixes in one Redis
//! database, so that several Mayfly hosts share them. Acknowledged writes
//! are as durable as the Redis server is configured to make them.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script, Value};

use super::{Backend, BackendError, BackendResult, KeyPage, PAGE_SIZE};

/// Sets KEYS[1] to ARGV[3] if it holds ARGV[2] (ARGV[1] = "1") or is not set
/// (ARGV[1] = "0"). Returns {1}, or {0} / {0, current} on a conflict.
const COMPARE_AND_SWAP: &str = r"
local current = redis.call('GET', KEYS[1])
local matches
if ARGV[1] == '1' then
  matches = current ~= false and current == ARGV[2]
else
  matches = current == false
end
if not matches then
  if current == false then return {0} end
  return {0, current}
end
redis.call('SET', KEYS[1], ARGV[3])
return {1}
";

/// Redis, through one multiplexed, self-reconnecting connection.
#[derive(Clone)]
pub struct RedisBackend {
    connection: ConnectionManager,
    /// `mayfly:<app>:`: every key of this app starts with it.
    prefix: String,
    cas: Script,
}

fn fail(err: impl std::fmt::Display) -> BackendError {
    BackendError(format!("redis: {err}"))
}

impl RedisBackend {
    /// Connects to `url` (`redis://host:port/db`) for the stores of `app`.
    pub async fn connect(url: &str, app: &str) -> BackendResult<Self> {
        let client = redis::Client::open(url)
            .map_err(|err| BackendError(format!("invalid Redis URL `{url}`: {err}")))?;
        let connection = client
            .get_connection_manager()
            .await
            .map_err(|err| BackendError(format!("cannot connect to Redis at {url}: {err}")))?;
        Ok(Self {
            connection,
            prefix: format!("mayfly:{app}:"),
            cas: Script::new(COMPARE_AND_SWAP),
        })
    }

    fn key(&self, store: &str, key: &str) -> String {
        format!("{}{store}:{key}", self.prefix)
    }

    fn con(&self) -> ConnectionManager {
        self.connection.clone()
    }
}

#[async_trait]
impl Backend for RedisBackend {
    async fn get(&self, store: &str, key: &str) -> BackendResult<Option<Vec<u8>>> {
        self.con().get(self.key(store, key)).await.map_err(fail)
    }

    async fn set(&self, store: &str, key: &str, value: Vec<u8>) -> BackendResult<()> {
        self.con()
            .set::<_, _, ()>(self.key(store, key), value)
            .await
            .map_err(fail)
    }

    async fn delete(&self, store: &str, key: &str) -> BackendResult<()> {
        self.con()
            .del::<_, ()>(self.key(store, key))
            .await
            .map_err(fail)
    }

    async fn exists(&self, store: &str, key: &str) -> BackendResult<bool> {
        self.con().exists(self.key(store, key)).await.map_err(fail)
    }

    async fn list_keys(&self, store: &str, cursor: Option<&str>) -> BackendResult<KeyPage> {
        // The cursor is Redis's own SCAN cursor; a guest's garbage is
        // refused here rather than sent on.
        let start: u64 = match cursor {
            None => 0,
            Some(text) => text
                .parse()
                .map_err(|_| BackendError(format!("invalid cursor `{text}`")))?,
        };
        let pattern = format!("{}{store}:*", self.prefix);
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(start)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(PAGE_SIZE)
            .query_async(&mut self.con())
            .await
            .map_err(fail)?;
        let strip = pattern.len() - 1;
        let keys = found
            .into_iter()
            .map(|key| key[strip..].to_string())
            .collect();
        Ok(KeyPage {
            keys,
            cursor: (next != 0).then(|| next.to_string()),
        })
    }

    async fn increment(&self, store: &str, key: &str, delta: i64) -> BackendResult<i64> {
        self.con()
            .incr(self.key(store, key), delta)
            .await
            .map_err(fail)
    }

    async fn compare_and_swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: Vec<u8>,
    ) -> BackendResult<Result<(), Option<Vec<u8>>>> {
        let mut invocation = self.cas.key(self.key(store, key));
        invocation
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(new);
        let reply: Vec<Value> = invocation
            .invoke_async(&mut self.con())
            .await
            .map_err(fail)?;
        match reply.as_slice() {
            [Value::Int(1)] => Ok(Ok(())),
            [Value::Int(0)] => Ok(Err(None)),
            [Value::Int(0), Value::BulkString(current)] => Ok(Err(Some(current.clone()))),
            other => Err(fail(format!("unexpected compare-and-swap reply {other:?}"))),
        }
    }

    async fn get_many(&self, store: &str, keys: &[String]) -> BackendResult<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let full: Vec<String> = keys.iter().map(|key| self.key(store, key)).collect();
        redis::cmd("MGET")
            .arg(full)
            .query_async(&mut self.con())
            .await
            .map_err(fail)
    }

    async fn set_many(&self, store: &str, pairs: Vec<(String, Vec<u8>)>) -> BackendResult<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let full: Vec<(String, Vec<u8>)> = pairs
            .into_iter()
            .map(|(key, value)| (self.key(store, &key), value))
            .collect();
        self.con().mset::<_, _, ()>(&full).await.map_err(fail)
    }

    async fn delete_many(&self, store: &str, keys: &[String]) -> BackendResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let full: Vec<String> = keys.iter().map(|key| self.key(store, key)).collect();
        self.con().del::<_, ()>(full).await.map_err(fail)
    }
}
