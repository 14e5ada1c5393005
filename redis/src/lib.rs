//! A key-value store on Redis for the `KeyValueFacet`
//! (`plexspaces::capabilities::kv`), keeping the same contract as every
//! other backend.
//!
//! Each call is one Lua script, so atomic on the server. An entry is a
//! hash (`v`: value, `e`: expiry in microseconds since the Unix epoch) at
//! `plexspaces:kv:{store}:k:<key>`; a sorted set at
//! `plexspaces:kv:{store}:index` holds every key for byte-ordered listing
//! by prefix (`ZRANGEBYLEX`). The braces make a store's keys one hash slot,
//! so the scripts also run on a Redis Cluster.
//!
//! Expiry is judged against the caller's wall clock (`now`, the node's
//! `Clock` seam), as every backend does, so it behaves the same under a
//! test clock. Redis's own expiry is set as well when the deadline is
//! still ahead of the server's clock (plus a second of grace), so an
//! abandoned key is reclaimed by the server; index entries of reclaimed
//! keys are dropped by the `list` calls that meet them.
//!
//! `increment` reads and then compare-and-sets, retrying on a lost race:
//! Lua's numbers are doubles and cannot hold every `i64`.
//!
//! It runs on tokio only (the `redis` crate's own sockets, like
//! tokio-postgres): the simulator models key-value stores with the memory
//! and embedded backends, which keep the same contract.

use futures::future::BoxFuture;
use plexspaces::capabilities::kv::{
    KV_LIST_MAX, KvEntry, KvError, KvStore, check_key_and_value, increment_by_swapping,
};
use redis::aio::MultiplexedConnection;
use redis::{Client, Script};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

/// Is the hash at `key` live at `now`? (Lua, shared by the scripts.)
const LIVE: &str = r"
local function live(key, now)
  local e = redis.call('HGET', key, 'e')
  if e == false then return redis.call('EXISTS', key) == 1 end
  return e == '' or tonumber(e) > now
end
local function store(key, index, member, value, expires)
  redis.call('DEL', key)
  redis.call('HSET', key, 'v', value, 'e', expires)
  redis.call('ZADD', index, 0, member)
  if expires ~= '' then
    local t = redis.call('TIME')
    local server_now = tonumber(t[1]) * 1000000 + tonumber(t[2])
    if tonumber(expires) > server_now then
      redis.call('PEXPIREAT', key, math.floor(tonumber(expires) / 1000) + 1000)
    end
  end
end
";

/// KEYS: entry. ARGV: now. The value and expiry, or nil.
static GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LIVE}
if not live(KEYS[1], tonumber(ARGV[1])) then return false end
return redis.call('HMGET', KEYS[1], 'v', 'e')"
    ))
});

/// KEYS: entry, index. ARGV: member, value, expires ('' none).
static SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LIVE}
store(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
return 1"
    ))
});

/// KEYS: entry, index. ARGV: member, now. 1 if a live key was deleted.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LIVE}
local was = live(KEYS[1], tonumber(ARGV[2]))
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if was then return 1 else return 0 end"
    ))
});

/// KEYS: entry, index. ARGV: member, has_expected ('0'/'1'), expected,
/// new, expires, now. 1 if swapped.
static COMPARE_AND_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LIVE}
local current = false
if live(KEYS[1], tonumber(ARGV[6])) then current = redis.call('HGET', KEYS[1], 'v') end
if ARGV[2] == '0' then
  if current ~= false then return 0 end
elseif current ~= ARGV[3] then
  return 0
end
store(KEYS[1], KEYS[2], ARGV[1], ARGV[4], ARGV[5])
return 1"
    ))
});

/// KEYS: index. ARGV: entry prefix, member prefix, now, limit. Live keys
/// under the prefix in byte order; index entries of gone or expired keys
/// met on the way are removed.
static LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LIVE}
local entry, prefix, now, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {{}}
local from = '-'
if prefix ~= '' then from = '[' .. prefix end
while #out < limit do
  local batch = redis.call('ZRANGEBYLEX', KEYS[1], from, '+', 'LIMIT', 0, 256)
  if #batch == 0 then break end
  for _, member in ipairs(batch) do
    if string.sub(member, 1, #prefix) ~= prefix then return out end
    local key = entry .. member
    if live(key, now) then
      table.insert(out, member)
      if #out >= limit then return out end
    else
      redis.call('DEL', key)
      redis.call('ZREM', KEYS[1], member)
    end
  end
  from = '(' .. batch[#batch]
end
return out"
    ))
});

/// A named key-value store in Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisKv {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    connection: futures::lock::Mutex<Option<MultiplexedConnection>>,
    /// `plexspaces:kv:{store}:k:`
    entry_prefix: String,
    /// `plexspaces:kv:{store}:index`
    index: String,
}

fn unavailable(e: redis::RedisError) -> KvError {
    KvError::Unavailable(format!("redis: {e}"))
}

/// Microseconds since the Unix epoch.
fn micros(at: SystemTime) -> u64 {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}

fn expires_arg(expires: Option<SystemTime>) -> String {
    expires.map(|at| micros(at).to_string()).unwrap_or_default()
}

impl RedisKv {
    /// Connects to `url` (`redis://127.0.0.1:6379/0`); the store's keys are
    /// those named `store`.
    pub async fn connect(url: &str, store: &str) -> Result<Self, KvError> {
        let client = Client::open(url).map_err(unavailable)?;
        let kv = RedisKv {
            inner: Arc::new(Inner {
                client,
                connection: futures::lock::Mutex::new(None),
                entry_prefix: format!("plexspaces:kv:{{{store}}}:k:"),
                index: format!("plexspaces:kv:{{{store}}}:index"),
            }),
        };
        kv.connection().await?;
        Ok(kv)
    }

    /// The live connection, reconnecting if the last one broke.
    async fn connection(&self) -> Result<MultiplexedConnection, KvError> {
        let mut slot = self.inner.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let connection = self
            .inner
            .client
            .get_multiplexed_async_connection()
            .await
            .map_err(unavailable)?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Runs `invocation`, dropping the connection if it broke so the next
    /// call reconnects.
    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, KvError> {
        let mut connection = self.connection().await?;
        match invocation.invoke_async(&mut connection).await {
            Ok(value) => Ok(value),
            Err(e) => {
                if e.is_unrecoverable_error() || e.is_io_error() {
                    *self.inner.connection.lock().await = None;
                }
                Err(unavailable(e))
            }
        }
    }

    fn entry(&self, key: &str) -> String {
        format!("{}{key}", self.inner.entry_prefix)
    }

    async fn get_now(&self, key: &str, now: SystemTime) -> Result<Option<KvEntry>, KvError> {
        check_key_and_value(key, None)?;
        let mut invocation = GET.prepare_invoke();
        invocation.key(self.entry(key)).arg(micros(now));
        let found: Option<(Vec<u8>, String)> = self.run(invocation).await?;
        Ok(found.map(|(value, expires)| KvEntry {
            value,
            expires: expires
                .parse::<u64>()
                .ok()
                .map(|us| SystemTime::UNIX_EPOCH + Duration::from_micros(us)),
        }))
    }

    async fn compare_and_set_now(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        expires: Option<SystemTime>,
        now: SystemTime,
    ) -> Result<bool, KvError> {
        check_key_and_value(key, Some(new))?;
        let mut invocation = COMPARE_AND_SET.prepare_invoke();
        invocation
            .key(self.entry(key))
            .key(&self.inner.index)
            .arg(key)
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(new)
            .arg(expires_arg(expires))
            .arg(micros(now));
        let swapped: i64 = self.run(invocation).await?;
        Ok(swapped == 1)
    }
}

impl KvStore for RedisKv {
    fn get<'a>(
        &'a self,
        key: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Option<KvEntry>, KvError>> {
        Box::pin(self.get_now(key, now))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        expires: Option<SystemTime>,
        _now: SystemTime,
    ) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(async move {
            check_key_and_value(key, Some(&value))?;
            let mut invocation = SET.prepare_invoke();
            invocation
                .key(self.entry(key))
                .key(&self.inner.index)
                .arg(key)
                .arg(value)
                .arg(expires_arg(expires));
            self.run::<i64>(invocation).await?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, key: &'a str, now: SystemTime) -> BoxFuture<'a, Result<bool, KvError>> {
        Box::pin(async move {
            check_key_and_value(key, None)?;
            let mut invocation = DELETE.prepare_invoke();
            invocation
                .key(self.entry(key))
                .key(&self.inner.index)
                .arg(key)
                .arg(micros(now));
            Ok(self.run::<i64>(invocation).await? == 1)
        })
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Vec<u8>,
        expires: Option<SystemTime>,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<bool, KvError>> {
        Box::pin(async move {
            self.compare_and_set_now(key, expected, &new, expires, now)
                .await
        })
    }

    fn increment<'a>(
        &'a self,
        key: &'a str,
        by: i64,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<i64, KvError>> {
        Box::pin(increment_by_swapping(self, key, by, now))
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Vec<String>, KvError>> {
        Box::pin(async move {
            let limit = limit.min(KV_LIST_MAX);
            if limit == 0 {
                return Ok(Vec::new());
            }
            let mut invocation = LIST.prepare_invoke();
            invocation
                .key(&self.inner.index)
                .arg(&self.inner.entry_prefix)
                .arg(prefix)
                .arg(micros(now))
                .arg(limit);
            self.run(invocation).await
        })
    }
}
