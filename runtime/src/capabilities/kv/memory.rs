//! The memory backend: a bounded ordered map, expiry judged at each call.

use super::{KvEntry, KvError, KvStore, check, counter};
use futures::future::BoxFuture;
use plexspaces_storage::sync::LockExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Default bound on keys.
pub const MEMORY_KV_KEYS_DEFAULT: usize = 1_000_000;

/// Keys in memory, lost with the process. Cheap to clone (shared).
#[derive(Clone)]
pub struct MemoryKv {
    inner: Arc<Mutex<BTreeMap<String, KvEntry>>>,
    max_keys: usize,
}

impl Default for MemoryKv {
    fn default() -> Self {
        Self::new(MEMORY_KV_KEYS_DEFAULT)
    }
}

fn live(entry: &KvEntry, now: SystemTime) -> bool {
    entry.expires.is_none_or(|at| at > now)
}

impl MemoryKv {
    /// At most `max_keys` keys (expired ones are dropped to make room).
    pub fn new(max_keys: usize) -> Self {
        MemoryKv {
            inner: Arc::new(Mutex::new(BTreeMap::new())),
            max_keys,
        }
    }

    fn put(
        &self,
        map: &mut BTreeMap<String, KvEntry>,
        key: &str,
        entry: KvEntry,
        now: SystemTime,
    ) -> Result<(), KvError> {
        if !map.contains_key(key) && map.len() >= self.max_keys {
            map.retain(|_, e| live(e, now));
            if map.len() >= self.max_keys {
                return Err(KvError::Full(self.max_keys));
            }
        }
        map.insert(key.to_string(), entry);
        Ok(())
    }
}

impl KvStore for MemoryKv {
    fn get<'a>(
        &'a self,
        key: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Option<KvEntry>, KvError>> {
        Box::pin(async move {
            check(key, None)?;
            let map = self.inner.locked();
            Ok(map.get(key).filter(|e| live(e, now)).cloned())
        })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        expires: Option<SystemTime>,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(async move {
            check(key, Some(&value))?;
            let mut map = self.inner.locked();
            self.put(&mut map, key, KvEntry { value, expires }, now)
        })
    }

    fn delete<'a>(&'a self, key: &'a str, now: SystemTime) -> BoxFuture<'a, Result<bool, KvError>> {
        Box::pin(async move {
            check(key, None)?;
            let mut map = self.inner.locked();
            Ok(map.remove(key).is_some_and(|e| live(&e, now)))
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
            check(key, Some(&new))?;
            let mut map = self.inner.locked();
            let current = map
                .get(key)
                .filter(|e| live(e, now))
                .map(|e| e.value.as_slice());
            if current != expected {
                return Ok(false);
            }
            self.put(
                &mut map,
                key,
                KvEntry {
                    value: new,
                    expires,
                },
                now,
            )?;
            Ok(true)
        })
    }

    fn increment<'a>(
        &'a self,
        key: &'a str,
        by: i64,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<i64, KvError>> {
        Box::pin(async move {
            check(key, None)?;
            let mut map = self.inner.locked();
            let (current, expires) = match map.get(key).filter(|e| live(e, now)) {
                Some(entry) => (counter(key, &entry.value)?, entry.expires),
                None => (0, None),
            };
            let next = current
                .checked_add(by)
                .ok_or_else(|| KvError::NotACounter(format!("{key} would overflow")))?;
            let entry = KvEntry {
                value: next.to_le_bytes().to_vec(),
                expires,
            };
            self.put(&mut map, key, entry, now)?;
            Ok(next)
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Vec<String>, KvError>> {
        Box::pin(async move {
            let map = self.inner.locked();
            Ok(map
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .filter(|(_, e)| live(e, now))
                .map(|(k, _)| k.clone())
                .take(limit.min(super::KV_LIST_MAX))
                .collect())
        })
    }
}
