//! The Redis backend: an app's stores as key prefixes in one Redis
//! database, so that several Mayfly hosts share them. Acknowledged writes
//! are as durable as the Redis server is configured to make them.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script, Value};

use super::backend::{Backend, BackendError, BackendResult, KeyPage, PAGE_SIZE};

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

/// The values of KEYS, as MGET gives them, if their lengths add up to at
/// most ARGV[1] bytes; nil (and nothing read) if they add up to more.
const GET_MANY: &str = r"
local budget = tonumber(ARGV[1])
local total = 0
for i = 1, #KEYS do
  total = total + redis.call('STRLEN', KEYS[i])
  if total > budget then return false end
end
return redis.call('MGET', unpack(KEYS))
";

/// Redis, through one multiplexed, self-reconnecting connection.
#[derive(Clone)]
pub struct RedisBackend {
    connection: ConnectionManager,
    /// `mayfly:<app>:`: every key of this app starts with it.
    prefix: String,
    cas: Script,
    get_many: Script,
}

fn fail(err: impl std::fmt::Display) -> BackendError {
    BackendError(format!("redis: {err}"))
}

impl RedisBackend {
    /// Connects to `url` (`redis://host:port/db`) for the stores of `app`.
    pub async fn connect(url: &str, app: &str) -> BackendResult<Self> {
        // The URL may carry a password: errors show it redacted.
        let shown = super::shown_url(url);
        let client = redis::Client::open(url)
            .map_err(|err| BackendError(format!("invalid Redis URL `{shown}`: {err}")))?;
        let connection = client
            .get_connection_manager()
            .await
            .map_err(|err| BackendError(format!("cannot connect to Redis at {shown}: {err}")))?;
        Ok(Self {
            connection,
            prefix: format!("mayfly:{app}:"),
            cas: Script::new(COMPARE_AND_SWAP),
            get_many: Script::new(GET_MANY),
        })
    }

    fn key(&self, store: &str, key: &str) -> String {
        format!("{}{store}:{key}", self.prefix)
    }

    fn con(&self) -> ConnectionManager {
        self.connection.clone()
    }
}

/// `text` as a SCAN MATCH pattern that matches exactly it.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Redis's SCAN cursor, from its text.
fn parse_cursor(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("invalid cursor `{text}`"))
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

    fn check_cursor(&self, cursor: &str) -> Result<(), String> {
        parse_cursor(cursor).map(|_| ())
    }

    async fn list_keys(&self, store: &str, cursor: Option<&str>) -> BackendResult<KeyPage> {
        // The cursor is Redis's own SCAN cursor; the host checks it with
        // `check_cursor` first, so garbage here is a bug, refused anyway.
        let start: u64 = match cursor {
            None => 0,
            Some(text) => parse_cursor(text).map_err(BackendError)?,
        };
        let prefix = format!("{}{store}:", self.prefix);
        let pattern = format!("{}*", glob_escape(&prefix));
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(start)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(PAGE_SIZE)
            .query_async(&mut self.con())
            .await
            .map_err(fail)?;
        // MATCH already filtered; anything else is skipped, never sliced.
        let keys = found
            .into_iter()
            .filter_map(|key| key.strip_prefix(&prefix).map(str::to_string))
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

    async fn get_many(
        &self,
        store: &str,
        keys: &[String],
        max_bytes: usize,
    ) -> BackendResult<Option<Vec<Option<Vec<u8>>>>> {
        if keys.is_empty() {
            return Ok(Some(Vec::new()));
        }
        // One script: the lengths are summed in Redis, and the values are
        // only sent if they fit, so an oversized batch costs no memory here.
        let mut invocation = self.get_many.prepare_invoke();
        for key in keys {
            invocation.key(self.key(store, key));
        }
        invocation.arg(max_bytes);
        invocation.invoke_async(&mut self.con()).await.map_err(fail)
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

#[cfg(test)]
mod tests {
    use super::{glob_escape, parse_cursor};

    #[test]
    fn patterns_match_only_their_prefix_and_cursors_are_numbers() {
        assert_eq!(glob_escape("mayfly:app:items:"), "mayfly:app:items:");
        assert_eq!(glob_escape(r"a*b?c[d]e\f^"), r"a\*b\?c\[d\]e\\f\^");
        assert_eq!(parse_cursor("42"), Ok(42));
        assert_eq!(parse_cursor("-1"), Err("invalid cursor `-1`".into()));
    }
}
