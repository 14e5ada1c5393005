//! The key-value semantics in one place: an ordered map with expiry judged
//! at each call. A mutation is planned first (checked against the bounds
//! and the current entries, yielding the [`Change`] to make) and applied
//! second, so the embedded backend can make the change durable in between
//! and the memory backend applies it at once: both keep the same contract
//! by construction.

use super::{
    KV_LIST_MAX, KvEntry, KvError, check_key_and_value as check, counter_value as counter,
};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// A planned mutation: its outcome for the caller, and the change to make
/// (none when the mutation changes nothing).
pub(crate) type Planned<R> = Result<(R, Option<Change>), KvError>;

/// One change to the table: what the embedded backend journals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Put { key: String, entry: KvEntry },
    Remove { key: String },
}

/// A bounded ordered map of entries: at most `max_keys` keys and
/// `max_bytes` of keys and values together.
pub(crate) struct Table {
    map: BTreeMap<String, KvEntry>,
    max_keys: usize,
    /// Bytes of keys and values held.
    bytes: usize,
    pub(crate) max_bytes: usize,
}

/// Default bound on the bytes of keys and values one store holds.
pub const KV_BYTES_MAX_DEFAULT: usize = 256 * 1024 * 1024;

fn size(key: &str, entry: &KvEntry) -> usize {
    key.len() + entry.value.len()
}

pub(crate) fn live(entry: &KvEntry, now: SystemTime) -> bool {
    entry.expires.is_none_or(|at| at > now)
}

impl Table {
    pub(crate) fn new(max_keys: usize) -> Self {
        Table {
            map: BTreeMap::new(),
            max_keys,
            bytes: 0,
            max_bytes: KV_BYTES_MAX_DEFAULT,
        }
    }

    pub(crate) fn get(&self, key: &str, now: SystemTime) -> Result<Option<KvEntry>, KvError> {
        check(key, None)?;
        Ok(self.map.get(key).filter(|e| live(e, now)).cloned())
    }

    pub(crate) fn list(&self, prefix: &str, limit: usize, now: SystemTime) -> Vec<String> {
        self.map
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, e)| live(e, now))
            .map(|(k, _)| k.clone())
            .take(limit.min(KV_LIST_MAX))
            .collect()
    }

    /// A put of `key`, refused if it is a new key and the table is full of
    /// live ones (expired entries are dropped to make room).
    fn put(&mut self, key: &str, entry: KvEntry, now: SystemTime) -> Result<Change, KvError> {
        let replaced = self.map.get(key).map_or(0, |old| size(key, old));
        let after = |table: &Table| table.bytes - replaced + size(key, &entry);
        let new_key = !self.map.contains_key(key);
        if (new_key && self.map.len() >= self.max_keys) || after(self) > self.max_bytes {
            self.drop_expired(now);
            if new_key && self.map.len() >= self.max_keys {
                return Err(KvError::Full(self.max_keys));
            }
            if after(self) > self.max_bytes {
                return Err(KvError::OverBudget(self.max_bytes));
            }
        }
        Ok(Change::Put {
            key: key.to_string(),
            entry,
        })
    }

    pub(crate) fn plan_set(
        &mut self,
        key: &str,
        value: Vec<u8>,
        expires: Option<SystemTime>,
        now: SystemTime,
    ) -> Planned<()> {
        check(key, Some(&value))?;
        let change = self.put(key, KvEntry { value, expires }, now)?;
        Ok(((), Some(change)))
    }

    /// Whether `key` exists (live), and the change that deletes it. An
    /// expired entry is dropped here without a change: it reads as absent
    /// whether or not a replay brings it back.
    pub(crate) fn plan_delete(&mut self, key: &str, now: SystemTime) -> Planned<bool> {
        check(key, None)?;
        match self.map.get(key) {
            Some(entry) if live(entry, now) => Ok((
                true,
                Some(Change::Remove {
                    key: key.to_string(),
                }),
            )),
            Some(_) => {
                self.apply(Change::Remove {
                    key: key.to_string(),
                });
                Ok((false, None))
            }
            None => Ok((false, None)),
        }
    }

    /// The change a compare-and-set makes, if `key` holds `expected`.
    pub(crate) fn plan_compare_and_set(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        new: Vec<u8>,
        expires: Option<SystemTime>,
        now: SystemTime,
    ) -> Planned<bool> {
        check(key, Some(&new))?;
        let current = self
            .map
            .get(key)
            .filter(|e| live(e, now))
            .map(|e| e.value.as_slice());
        if current != expected {
            return Ok((false, None));
        }
        let entry = KvEntry {
            value: new,
            expires,
        };
        Ok((true, Some(self.put(key, entry, now)?)))
    }

    /// The counter's next value and the change that stores it (keeping the
    /// entry's expiry).
    pub(crate) fn plan_increment(&mut self, key: &str, by: i64, now: SystemTime) -> Planned<i64> {
        check(key, None)?;
        let (current, expires) = match self.map.get(key).filter(|e| live(e, now)) {
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
        Ok((next, Some(self.put(key, entry, now)?)))
    }

    /// Drops expired entries (keeping the byte count).
    fn drop_expired(&mut self, now: SystemTime) {
        let mut freed = 0;
        self.map.retain(|key, entry| {
            let keep = live(entry, now);
            if !keep {
                freed += size(key, entry);
            }
            keep
        });
        self.bytes -= freed;
    }

    pub(crate) fn apply(&mut self, change: Change) {
        match change {
            Change::Put { key, entry } => {
                let (added, key_len) = (size(&key, &entry), key.len());
                if let Some(old) = self.map.insert(key, entry) {
                    self.bytes -= key_len + old.value.len();
                }
                self.bytes += added;
            }
            Change::Remove { key } => {
                if let Some(old) = self.map.remove(&key) {
                    self.bytes -= size(&key, &old);
                }
            }
        }
    }

    /// The live entries, in key order (a checkpoint's content).
    pub(crate) fn live_entries(&self, now: SystemTime) -> impl Iterator<Item = (&str, &KvEntry)> {
        self.map
            .iter()
            .filter(move |(_, e)| live(e, now))
            .map(|(k, e)| (k.as_str(), e))
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}
