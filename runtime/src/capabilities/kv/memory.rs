//! The memory backend: the [`Table`] behind a lock, each change applied
//! as soon as it is planned.

use super::table::{Planned, Table};
use super::{KvEntry, KvError, KvStore};
use futures::future::BoxFuture;
use plexspaces_storage::sync::LockExt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Default bound on keys.
pub const MEMORY_KV_KEYS_DEFAULT: usize = 1_000_000;

/// Keys in memory, lost with the process. Cheap to clone (shared).
#[derive(Clone)]
pub struct MemoryKv {
    table: Arc<Mutex<Table>>,
}

impl Default for MemoryKv {
    fn default() -> Self {
        Self::new(MEMORY_KV_KEYS_DEFAULT)
    }
}

impl MemoryKv {
    /// At most `max_keys` keys and [`KV_BYTES_MAX_DEFAULT`](super::KV_BYTES_MAX_DEFAULT) bytes of keys
    /// and values (expired entries are dropped to make room).
    pub fn new(max_keys: usize) -> Self {
        MemoryKv {
            table: Arc::new(Mutex::new(Table::new(max_keys))),
        }
    }

    /// At most `max_bytes` of keys and values instead of the default.
    pub fn max_bytes(self, max_bytes: usize) -> Self {
        self.table.locked().max_bytes = max_bytes;
        self
    }
}

impl MemoryKv {
    /// Plans a mutation and applies its change, under one lock.
    fn mutate<R>(&self, plan: impl FnOnce(&mut Table) -> Planned<R>) -> Result<R, KvError> {
        let mut table = self.table.locked();
        let (outcome, change) = plan(&mut table)?;
        if let Some(change) = change {
            table.apply(change);
        }
        Ok(outcome)
    }
}

impl KvStore for MemoryKv {
    fn get<'a>(
        &'a self,
        key: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Option<KvEntry>, KvError>> {
        Box::pin(async move { self.table.locked().get(key, now) })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        expires: Option<SystemTime>,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(async move { self.mutate(|t| t.plan_set(key, value, expires, now)) })
    }

    fn delete<'a>(&'a self, key: &'a str, now: SystemTime) -> BoxFuture<'a, Result<bool, KvError>> {
        Box::pin(async move { self.mutate(|t| t.plan_delete(key, now)) })
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
            self.mutate(|t| t.plan_compare_and_set(key, expected, new, expires, now))
        })
    }

    fn increment<'a>(
        &'a self,
        key: &'a str,
        by: i64,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<i64, KvError>> {
        Box::pin(async move { self.mutate(|t| t.plan_increment(key, by, now)) })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Vec<String>, KvError>> {
        Box::pin(async move { Ok(self.table.locked().list(prefix, limit, now)) })
    }
}
