//! The journal a durable actor writes to: in memory, or the embedded file
//! journal (the default for real deployments).

use super::shared::SharedJournal;
use crate::env::Env;
use crate::seams::Rng;
use plexspaces_storage::disk::{Disk, DynDisk};
use plexspaces_storage::journal::{
    Checkpoint, FileJournal, Journal, JournalConfig, JournalEntry, JournalError, MemoryJournal,
};
use std::sync::Arc;

/// A journal backend. Cheap to clone; clones share the journal.
#[derive(Clone)]
pub enum JournalBackend {
    /// Nothing survives the process (tests, caches).
    Memory(Arc<MemoryJournal>),
    /// The embedded file journal on the node's disk.
    File(FileJournal<DynDisk>),
    /// A journal server every node shares (actors can move between nodes).
    Shared(SharedJournal),
}

impl std::fmt::Debug for JournalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JournalBackend::Memory(_) => "JournalBackend::Memory",
            JournalBackend::File(_) => "JournalBackend::File",
            JournalBackend::Shared(_) => "JournalBackend::Shared",
        })
    }
}

impl JournalBackend {
    /// A fresh in-memory journal.
    pub fn memory() -> Self {
        JournalBackend::Memory(Arc::new(MemoryJournal::new()))
    }

    /// The file journal in the `journal` directory of the node's disk,
    /// recovered if it exists.
    pub async fn file(env: &Env, config: JournalConfig) -> Result<Self, JournalError> {
        let disk = env.disk().subdir("journal").await?;
        Ok(JournalBackend::File(
            FileJournal::open(disk, config, env.next_u64()).await?,
        ))
    }
}

impl Journal for JournalBackend {
    async fn append(&self, stream: &str, data: &[u8]) -> Result<u64, JournalError> {
        match self {
            JournalBackend::Memory(j) => j.append(stream, data).await,
            JournalBackend::File(j) => j.append(stream, data).await,
            JournalBackend::Shared(j) => j.append(stream, data).await,
        }
    }

    async fn append_all(&self, stream: &str, entries: &[&[u8]]) -> Result<u64, JournalError> {
        match self {
            JournalBackend::Memory(j) => j.append_all(stream, entries).await,
            JournalBackend::File(j) => j.append_all(stream, entries).await,
            JournalBackend::Shared(j) => j.append_all(stream, entries).await,
        }
    }

    async fn replay_each<F>(
        &self,
        stream: &str,
        from_seq: u64,
        visit: F,
    ) -> Result<u64, JournalError>
    where
        F: FnMut(u64, &[u8]) + Send,
    {
        match self {
            JournalBackend::Memory(j) => j.replay_each(stream, from_seq, visit).await,
            JournalBackend::File(j) => j.replay_each(stream, from_seq, visit).await,
            JournalBackend::Shared(j) => j.replay_each(stream, from_seq, visit).await,
        }
    }

    async fn replay_from(
        &self,
        stream: &str,
        from_seq: u64,
    ) -> Result<Vec<JournalEntry>, JournalError> {
        match self {
            JournalBackend::Memory(j) => j.replay_from(stream, from_seq).await,
            JournalBackend::File(j) => j.replay_from(stream, from_seq).await,
            JournalBackend::Shared(j) => j.replay_from(stream, from_seq).await,
        }
    }

    fn last_seq(&self, stream: &str) -> u64 {
        match self {
            JournalBackend::Memory(j) => j.last_seq(stream),
            JournalBackend::File(j) => j.last_seq(stream),
            JournalBackend::Shared(j) => j.last_seq(stream),
        }
    }

    async fn save_checkpoint(
        &self,
        stream: &str,
        seq: u64,
        state: &[u8],
    ) -> Result<(), JournalError> {
        match self {
            JournalBackend::Memory(j) => j.save_checkpoint(stream, seq, state).await,
            JournalBackend::File(j) => j.save_checkpoint(stream, seq, state).await,
            JournalBackend::Shared(j) => j.save_checkpoint(stream, seq, state).await,
        }
    }

    async fn claim(&self, stream: &str) -> Result<(), JournalError> {
        match self {
            JournalBackend::Memory(j) => j.claim(stream).await,
            JournalBackend::File(j) => j.claim(stream).await,
            JournalBackend::Shared(j) => j.claim(stream).await,
        }
    }

    async fn latest_checkpoint(&self, stream: &str) -> Result<Option<Checkpoint>, JournalError> {
        match self {
            JournalBackend::Memory(j) => j.latest_checkpoint(stream).await,
            JournalBackend::File(j) => j.latest_checkpoint(stream).await,
            JournalBackend::Shared(j) => j.latest_checkpoint(stream).await,
        }
    }
}
