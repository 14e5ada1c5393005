//! The embedded backend: the [`Table`] in memory, every change made
//! durable in a journal stream before it is applied and acknowledged, so
//! the store survives restarts on the file journal and runs in the
//! simulator with its disk faults.
//!
//! Changes are serialized by a gate held across plan, append and apply:
//! a compare-and-set must see the change before it even while that change
//! is still being synced. The cost is one journal round trip per mutation
//! in flight at a time (reads never wait for it). Every
//! `checkpoint_every` changes the live entries are saved as the stream's
//! checkpoint, so reopening replays at most that many records.

use super::table::{Change, Planned, Table};
use super::{KvEntry, KvError, KvStore};
use crate::durability::JournalBackend;
use futures::future::BoxFuture;
use plexspaces_storage::journal::{Journal, JournalError};
use plexspaces_storage::sync::LockExt;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Default number of changes between checkpoints.
pub const EMBEDDED_KV_CHECKPOINT_EVERY: u64 = 10_000;

/// A change as journaled (times as durations since the Unix epoch).
#[derive(Serialize, Deserialize)]
enum Record {
    Put {
        key: String,
        value: Vec<u8>,
        expires: Option<Duration>,
    },
    Remove {
        key: String,
    },
}

/// A checkpoint: the live entries.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    entries: Vec<(String, Vec<u8>, Option<Duration>)>,
}

fn since_epoch(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

fn record(change: &Change) -> Record {
    match change {
        Change::Put { key, entry } => Record::Put {
            key: key.clone(),
            value: entry.value.clone(),
            expires: entry.expires.map(since_epoch),
        },
        Change::Remove { key } => Record::Remove { key: key.clone() },
    }
}

fn change(record: Record) -> Change {
    match record {
        Record::Put {
            key,
            value,
            expires,
        } => Change::Put {
            key,
            entry: KvEntry {
                value,
                expires: expires.map(|d| SystemTime::UNIX_EPOCH + d),
            },
        },
        Record::Remove { key } => Change::Remove { key },
    }
}

fn unavailable(e: JournalError) -> KvError {
    KvError::Unavailable(format!("journal: {e}"))
}

/// Mutations' serialization point; what it guards is the journal's order.
struct Writer {
    /// Changes since the last checkpoint.
    since_checkpoint: u64,
}

/// A durable key-value store on one journal stream. One handle per stream
/// (it claims the stream on open).
pub struct EmbeddedKv {
    journal: JournalBackend,
    stream: String,
    table: Mutex<Table>,
    writer: tokio::sync::Mutex<Writer>,
    checkpoint_every: u64,
}

impl EmbeddedKv {
    /// Opens the store kept in `journal`'s stream `kv/{name}`, holding at
    /// most `max_keys` keys: loads its checkpoint and replays the changes
    /// after it. Entries restored past a smaller bound than the store was
    /// written with stay readable; new keys are refused until expiries or
    /// deletes make room.
    pub async fn open(
        journal: JournalBackend,
        name: &str,
        max_keys: usize,
    ) -> Result<Self, KvError> {
        let stream = format!("kv/{name}");
        journal.claim(&stream).await.map_err(unavailable)?;
        let mut table = Table::new(max_keys);
        let mut from = 1;
        if let Some(checkpoint) = journal
            .latest_checkpoint(&stream)
            .await
            .map_err(unavailable)?
        {
            let snapshot: Snapshot = postcard::from_bytes(&checkpoint.state).map_err(|e| {
                KvError::Unavailable(format!("{stream}: checkpoint unreadable: {e}"))
            })?;
            for (key, value, expires) in snapshot.entries {
                let entry = KvEntry {
                    value,
                    expires: expires.map(|d| SystemTime::UNIX_EPOCH + d),
                };
                table.apply(Change::Put { key, entry });
            }
            from = checkpoint.seq + 1;
        }
        let mut bad = None;
        let replayed = journal
            .replay_each(&stream, from, |seq, data| {
                match postcard::from_bytes::<Record>(data) {
                    Ok(record) => table.apply(change(record)),
                    Err(e) => {
                        bad.get_or_insert(format!("{stream}: record {seq} unreadable: {e}"));
                    }
                }
            })
            .await
            .map_err(unavailable)?;
        if let Some(bad) = bad {
            return Err(KvError::Unavailable(bad));
        }
        Ok(EmbeddedKv {
            journal,
            stream,
            table: Mutex::new(table),
            writer: tokio::sync::Mutex::new(Writer {
                since_checkpoint: replayed,
            }),
            checkpoint_every: EMBEDDED_KV_CHECKPOINT_EVERY,
        })
    }

    /// At most `max_bytes` of keys and values (default
    /// [`KV_BYTES_MAX_DEFAULT`](super::KV_BYTES_MAX_DEFAULT)).
    pub fn max_bytes(self, max_bytes: usize) -> Self {
        self.table.locked().max_bytes = max_bytes;
        self
    }

    /// Checkpoints after every `changes` changes instead of the default.
    pub fn checkpoint_every(mut self, changes: u64) -> Self {
        self.checkpoint_every = changes.max(1);
        self
    }

    /// Keys held, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.table.locked().len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes `change` durable, then applies it. Called with the writer
    /// gate held, so the journal's order is the table's.
    async fn commit(
        &self,
        writer: &mut Writer,
        change: Change,
        now: SystemTime,
    ) -> Result<(), KvError> {
        let bytes = postcard::to_allocvec(&record(&change))
            .map_err(|e| KvError::Unavailable(format!("encoding a change: {e}")))?;
        let seq = self
            .journal
            .append(&self.stream, &bytes)
            .await
            .map_err(unavailable)?;
        self.table.locked().apply(change);
        writer.since_checkpoint += 1;
        if writer.since_checkpoint >= self.checkpoint_every {
            let snapshot = {
                let table = self.table.locked();
                Snapshot {
                    entries: table
                        .live_entries(now)
                        .map(|(k, e)| (k.to_string(), e.value.clone(), e.expires.map(since_epoch)))
                        .collect(),
                }
            };
            let state = postcard::to_allocvec(&snapshot)
                .map_err(|e| KvError::Unavailable(format!("encoding a checkpoint: {e}")))?;
            // The change itself is durable and applied: a failed
            // checkpoint only means a longer replay, retried next change.
            if self
                .journal
                .save_checkpoint(&self.stream, seq, &state)
                .await
                .is_ok()
            {
                writer.since_checkpoint = 0;
            }
        }
        Ok(())
    }
}

impl EmbeddedKv {
    /// Plans a mutation and commits its change, under the writer gate.
    async fn mutate<R>(
        &self,
        now: SystemTime,
        plan: impl FnOnce(&mut Table) -> Planned<R>,
    ) -> Result<R, KvError> {
        let mut writer = self.writer.lock().await;
        let (outcome, change) = plan(&mut self.table.locked())?;
        if let Some(change) = change {
            self.commit(&mut writer, change, now).await?;
        }
        Ok(outcome)
    }
}

impl KvStore for EmbeddedKv {
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
        Box::pin(self.mutate(now, move |t| t.plan_set(key, value, expires, now)))
    }

    fn delete<'a>(&'a self, key: &'a str, now: SystemTime) -> BoxFuture<'a, Result<bool, KvError>> {
        Box::pin(self.mutate(now, move |t| t.plan_delete(key, now)))
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Vec<u8>,
        expires: Option<SystemTime>,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<bool, KvError>> {
        Box::pin(self.mutate(now, move |t| {
            t.plan_compare_and_set(key, expected, new, expires, now)
        }))
    }

    fn increment<'a>(
        &'a self,
        key: &'a str,
        by: i64,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<i64, KvError>> {
        Box::pin(self.mutate(now, move |t| t.plan_increment(key, by, now)))
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

/// The embedded store's journal records and checkpoints (`encoded_types`).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    v.visit("EmbeddedKvRecord", || {
        vec![
            Record::Put {
                key: "5:acme/6:orders/o-1".into(),
                value: b"paid".to_vec(),
                expires: Some(Duration::from_secs(1_800_000_000)),
            },
            Record::Put {
                key: "k".into(),
                value: 7i64.to_le_bytes().to_vec(),
                expires: None,
            },
            Record::Remove { key: "k".into() },
        ]
    });
    v.visit("EmbeddedKvSnapshot", || {
        vec![Snapshot {
            entries: vec![
                ("a".into(), vec![1], None),
                ("b".into(), vec![], Some(Duration::new(5, 7))),
            ],
        }]
    });
}
