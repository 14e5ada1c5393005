//! The in-memory journal: the [`Journal`] semantics with no disk, for tests
//! and the `memory` backend. Every append is "durable" at once; nothing
//! survives the process.

use super::{
    Checkpoint, Journal, JournalConfig, JournalError, validate_checkpoint_seq, validate_entries,
    validate_stream,
};
use crate::sync::LockExt;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// A journal held in memory.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    entry_bytes_max: usize,
    streams: Mutex<BTreeMap<String, MemoryStream>>,
}

#[derive(Debug)]
struct MemoryStream {
    /// Sequence number of `entries[0]`.
    first_seq: u64,
    entries: VecDeque<Vec<u8>>,
    checkpoint: Option<Checkpoint>,
}

impl Default for MemoryStream {
    fn default() -> Self {
        MemoryStream {
            first_seq: 1,
            entries: VecDeque::new(),
            checkpoint: None,
        }
    }
}

impl MemoryStream {
    fn last_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64 - 1
    }
}

impl MemoryJournal {
    /// An empty journal with the default bounds.
    pub fn new() -> Self {
        Self::with_config(&JournalConfig::default())
    }

    /// An empty journal with the entry size bound of `config`.
    pub fn with_config(config: &JournalConfig) -> Self {
        MemoryJournal {
            entry_bytes_max: config.entry_bytes_max,
            streams: Mutex::new(BTreeMap::new()),
        }
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, MemoryStream>> {
        self.streams.locked()
    }
}

impl Journal for MemoryJournal {
    async fn append(&self, stream: &str, data: &[u8]) -> Result<u64, JournalError> {
        self.append_all(stream, &[data]).await
    }

    async fn append_all(&self, stream: &str, entries: &[&[u8]]) -> Result<u64, JournalError> {
        validate_stream(stream)?;
        validate_entries(entries, self.entry_bytes_max)?;
        let mut streams = self.streams();
        let entry = streams.entry(stream.to_string()).or_default();
        for data in entries {
            entry.entries.push_back(data.to_vec());
        }
        Ok(entry.last_seq())
    }

    async fn replay_each<F>(
        &self,
        stream: &str,
        from_seq: u64,
        mut visit: F,
    ) -> Result<u64, JournalError>
    where
        F: FnMut(u64, &[u8]) + Send,
    {
        validate_stream(stream)?;
        let streams = self.streams();
        let Some(entry) = streams.get(stream) else {
            return Ok(0);
        };
        if from_seq < entry.first_seq && entry.first_seq > 1 {
            return Err(JournalError::Truncated {
                stream: stream.to_string(),
                requested: from_seq,
                first_available: entry.first_seq,
            });
        }
        let skip = from_seq.saturating_sub(entry.first_seq) as usize;
        let mut count = 0;
        for (i, data) in entry.entries.iter().enumerate().skip(skip) {
            visit(entry.first_seq + i as u64, data);
            count += 1;
        }
        Ok(count)
    }

    fn last_seq(&self, stream: &str) -> u64 {
        self.streams().get(stream).map_or(0, MemoryStream::last_seq)
    }

    async fn save_checkpoint(
        &self,
        stream: &str,
        seq: u64,
        state: &[u8],
    ) -> Result<(), JournalError> {
        validate_stream(stream)?;
        let mut streams = self.streams();
        let entry = streams.entry(stream.to_string()).or_default();
        let current = entry.checkpoint.as_ref().map(|c| c.seq);
        validate_checkpoint_seq(stream, seq, entry.last_seq(), current)?;
        entry.checkpoint = Some(Checkpoint {
            stream: stream.to_string(),
            seq,
            state: state.to_vec(),
        });
        // In memory, compaction is immediate: drop what the checkpoint covers.
        while entry.first_seq <= seq {
            entry.entries.pop_front();
            entry.first_seq += 1;
        }
        Ok(())
    }

    async fn latest_checkpoint(&self, stream: &str) -> Result<Option<Checkpoint>, JournalError> {
        validate_stream(stream)?;
        Ok(self
            .streams()
            .get(stream)
            .and_then(|s| s.checkpoint.clone()))
    }
}
