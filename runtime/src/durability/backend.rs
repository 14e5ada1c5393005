//! The journal a durable actor writes to: in memory, or the embedded file
//! journal (the default for real deployments).

use super::shared::SharedJournal;
use crate::env::Env;
use crate::observability::metrics::{BackendLabel, seconds};
use crate::seams::Clock;
use crate::seams::Rng;
use futures::future::BoxFuture;
use plexspaces_storage::disk::{Disk, DynDisk};
use plexspaces_storage::journal::{
    Checkpoint, CommitObserver, FileJournal, Journal, JournalConfig, JournalEntry, JournalError,
    MemoryJournal,
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
    /// Any other [`Journal`] (PostgreSQL from `plexspaces-postgres`, say),
    /// behind [`JournalBackend::custom`].
    Custom(Arc<dyn ErasedJournal>),
}

/// A [`Journal`] behind a pointer: the object-safe form every journal has,
/// so backends defined in other crates fit in a [`JournalBackend`].
pub trait ErasedJournal: Send + Sync + 'static {
    /// [`Journal::append_all`].
    fn dyn_append_all<'a>(
        &'a self,
        stream: &'a str,
        entries: &'a [&'a [u8]],
    ) -> BoxFuture<'a, Result<u64, JournalError>>;
    /// [`Journal::replay_each`].
    fn dyn_replay_each<'a>(
        &'a self,
        stream: &'a str,
        from_seq: u64,
        visit: &'a mut (dyn FnMut(u64, &[u8]) + Send),
    ) -> BoxFuture<'a, Result<u64, JournalError>>;
    /// [`Journal::last_seq`].
    fn dyn_last_seq(&self, stream: &str) -> u64;
    /// [`Journal::claim`].
    fn dyn_claim<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<(), JournalError>>;
    /// [`Journal::check_claim`].
    fn dyn_check_claim<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<(), JournalError>>;
    /// [`Journal::save_checkpoint`].
    fn dyn_save_checkpoint<'a>(
        &'a self,
        stream: &'a str,
        seq: u64,
        state: &'a [u8],
    ) -> BoxFuture<'a, Result<(), JournalError>>;
    /// [`Journal::latest_checkpoint`].
    fn dyn_latest_checkpoint<'a>(
        &'a self,
        stream: &'a str,
    ) -> BoxFuture<'a, Result<Option<Checkpoint>, JournalError>>;
}

impl<J: Journal> ErasedJournal for J {
    fn dyn_append_all<'a>(
        &'a self,
        stream: &'a str,
        entries: &'a [&'a [u8]],
    ) -> BoxFuture<'a, Result<u64, JournalError>> {
        Box::pin(Journal::append_all(self, stream, entries))
    }

    fn dyn_replay_each<'a>(
        &'a self,
        stream: &'a str,
        from_seq: u64,
        visit: &'a mut (dyn FnMut(u64, &[u8]) + Send),
    ) -> BoxFuture<'a, Result<u64, JournalError>> {
        Box::pin(Journal::replay_each(self, stream, from_seq, visit))
    }

    fn dyn_last_seq(&self, stream: &str) -> u64 {
        Journal::last_seq(self, stream)
    }

    fn dyn_claim<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(Journal::claim(self, stream))
    }

    fn dyn_check_claim<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(Journal::check_claim(self, stream))
    }

    fn dyn_save_checkpoint<'a>(
        &'a self,
        stream: &'a str,
        seq: u64,
        state: &'a [u8],
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(Journal::save_checkpoint(self, stream, seq, state))
    }

    fn dyn_latest_checkpoint<'a>(
        &'a self,
        stream: &'a str,
    ) -> BoxFuture<'a, Result<Option<Checkpoint>, JournalError>> {
        Box::pin(Journal::latest_checkpoint(self, stream))
    }
}

impl std::fmt::Debug for JournalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JournalBackend::Memory(_) => "JournalBackend::Memory",
            JournalBackend::File(_) => "JournalBackend::File",
            JournalBackend::Shared(_) => "JournalBackend::Shared",
            JournalBackend::Custom(_) => "JournalBackend::Custom",
        })
    }
}

impl JournalBackend {
    /// Any journal, type-erased.
    pub fn custom(journal: impl Journal) -> Self {
        JournalBackend::Custom(Arc::new(journal))
    }

    /// A fresh in-memory journal.
    pub fn memory() -> Self {
        JournalBackend::Memory(Arc::new(MemoryJournal::new()))
    }

    /// The file journal in the `journal` directory of the node's disk,
    /// recovered if it exists. Its group commits are counted and timed in
    /// the node's metrics.
    pub async fn file(env: &Env, config: JournalConfig) -> Result<Self, JournalError> {
        let disk = env.disk().subdir("journal").await?;
        let journal = FileJournal::open(disk, config, env.next_u64()).await?;
        journal.observe_commits(Arc::new(CommitMetrics { env: env.clone() }));
        Ok(JournalBackend::File(journal))
    }

    /// The `backend` label of this journal's metrics.
    pub(crate) fn metrics_label(&self) -> &'static str {
        match self {
            JournalBackend::Memory(_) => "memory",
            JournalBackend::File(_) => "file",
            JournalBackend::Shared(_) => "shared",
            JournalBackend::Custom(_) => "custom",
        }
    }

    /// [`Journal::append_all`], counted and timed in `env`'s metrics
    /// (what the runtime's own writers call).
    pub(crate) async fn append_all_metered(
        &self,
        env: &Env,
        stream: &str,
        entries: &[&[u8]],
    ) -> Result<u64, JournalError> {
        let started = env.now();
        let span = env.traces().child_span(
            "journal.append",
            opentelemetry::trace::SpanKind::Internal,
            vec![
                opentelemetry::KeyValue::new("plexspaces.journal.backend", self.metrics_label()),
                opentelemetry::KeyValue::new("plexspaces.journal.stream", stream.to_string()),
                opentelemetry::KeyValue::new("plexspaces.journal.entries", entries.len() as i64),
            ],
        );
        let appended = self.append_all(stream, entries).await;
        if let Some(cx) = span {
            use opentelemetry::trace::TraceContextExt;
            if let Err(e) = &appended {
                cx.span()
                    .set_status(opentelemetry::trace::Status::error(e.to_string()));
            }
            cx.span().end();
        }
        let metrics = env.metrics().journal();
        let label = BackendLabel {
            backend: self.metrics_label(),
        };
        match &appended {
            Ok(_) => {
                let bytes: usize = entries.iter().map(|e| e.len()).sum();
                metrics
                    .appends
                    .get_or_create(&label)
                    .inc_by(entries.len() as u64);
                metrics
                    .append_bytes
                    .get_or_create(&label)
                    .inc_by(bytes as u64);
                metrics
                    .append_latency
                    .get_or_create(&label)
                    .observe(seconds(env.now() - started));
            }
            Err(_) => {
                metrics.errors.get_or_create(&label).inc();
            }
        }
        appended
    }

    /// [`Journal::save_checkpoint`], counted in `env`'s metrics.
    pub(crate) async fn save_checkpoint_metered(
        &self,
        env: &Env,
        stream: &str,
        seq: u64,
        state: &[u8],
    ) -> Result<(), JournalError> {
        let saved = self.save_checkpoint(stream, seq, state).await;
        let metrics = env.metrics().journal();
        if saved.is_ok() {
            metrics.checkpoints.inc();
        } else {
            let label = BackendLabel {
                backend: self.metrics_label(),
            };
            metrics.errors.get_or_create(&label).inc();
        }
        saved
    }
}

/// Feeds the node's fsync metrics from the file journal's group commits.
struct CommitMetrics {
    env: Env,
}

impl CommitObserver for CommitMetrics {
    fn starting(&self) -> u64 {
        self.env.now().since_origin().as_nanos() as u64
    }

    fn committed(&self, started: u64, records: usize, bytes: usize, durable: bool) {
        let metrics = self.env.metrics().journal();
        if !durable {
            let label = BackendLabel { backend: "file" };
            metrics.errors.get_or_create(&label).inc();
            return;
        }
        let now = self.env.now().since_origin().as_nanos() as u64;
        metrics.fsyncs.inc();
        metrics
            .fsync_latency
            .observe(now.saturating_sub(started) as f64 / 1e9);
        metrics.fsync_bytes.inc_by(bytes as u64);
        metrics.batch_records.observe(records as f64);
    }
}

impl Journal for JournalBackend {
    async fn append(&self, stream: &str, data: &[u8]) -> Result<u64, JournalError> {
        match self {
            JournalBackend::Memory(j) => j.append(stream, data).await,
            JournalBackend::File(j) => j.append(stream, data).await,
            JournalBackend::Shared(j) => j.append(stream, data).await,
            JournalBackend::Custom(j) => j.dyn_append_all(stream, &[data]).await,
        }
    }

    async fn append_all(&self, stream: &str, entries: &[&[u8]]) -> Result<u64, JournalError> {
        match self {
            JournalBackend::Memory(j) => j.append_all(stream, entries).await,
            JournalBackend::File(j) => j.append_all(stream, entries).await,
            JournalBackend::Shared(j) => j.append_all(stream, entries).await,
            JournalBackend::Custom(j) => j.dyn_append_all(stream, entries).await,
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
            JournalBackend::Custom(j) => {
                let mut visit = visit;
                j.dyn_replay_each(stream, from_seq, &mut visit).await
            }
        }
    }

    async fn replay_streams_each<F>(
        &self,
        streams: &[(&str, u64)],
        visit: F,
    ) -> Result<u64, JournalError>
    where
        F: FnMut(&str, u64, &[u8]) + Send,
    {
        match self {
            JournalBackend::Memory(j) => j.replay_streams_each(streams, visit).await,
            JournalBackend::File(j) => j.replay_streams_each(streams, visit).await,
            JournalBackend::Shared(j) => j.replay_streams_each(streams, visit).await,
            JournalBackend::Custom(j) => {
                let mut visit = visit;
                let mut count = 0;
                for &(stream, from_seq) in streams {
                    count += j
                        .dyn_replay_each(stream, from_seq, &mut |seq, data| {
                            visit(stream, seq, data)
                        })
                        .await?;
                }
                Ok(count)
            }
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
            JournalBackend::Custom(j) => {
                let mut entries = Vec::new();
                let mut visit = |seq, data: &[u8]| {
                    entries.push(JournalEntry {
                        seq,
                        data: data.to_vec(),
                    })
                };
                j.dyn_replay_each(stream, from_seq, &mut visit).await?;
                Ok(entries)
            }
        }
    }

    fn last_seq(&self, stream: &str) -> u64 {
        match self {
            JournalBackend::Memory(j) => j.last_seq(stream),
            JournalBackend::File(j) => j.last_seq(stream),
            JournalBackend::Shared(j) => j.last_seq(stream),
            JournalBackend::Custom(j) => j.dyn_last_seq(stream),
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
            JournalBackend::Custom(j) => j.dyn_save_checkpoint(stream, seq, state).await,
        }
    }

    async fn claim(&self, stream: &str) -> Result<(), JournalError> {
        match self {
            JournalBackend::Memory(j) => j.claim(stream).await,
            JournalBackend::File(j) => j.claim(stream).await,
            JournalBackend::Shared(j) => j.claim(stream).await,
            JournalBackend::Custom(j) => j.dyn_claim(stream).await,
        }
    }

    async fn check_claim(&self, stream: &str) -> Result<(), JournalError> {
        match self {
            JournalBackend::Memory(j) => j.check_claim(stream).await,
            JournalBackend::File(j) => j.check_claim(stream).await,
            JournalBackend::Shared(j) => j.check_claim(stream).await,
            JournalBackend::Custom(j) => j.dyn_check_claim(stream).await,
        }
    }

    async fn latest_checkpoint(&self, stream: &str) -> Result<Option<Checkpoint>, JournalError> {
        match self {
            JournalBackend::Memory(j) => j.latest_checkpoint(stream).await,
            JournalBackend::File(j) => j.latest_checkpoint(stream).await,
            JournalBackend::Shared(j) => j.latest_checkpoint(stream).await,
            JournalBackend::Custom(j) => j.dyn_latest_checkpoint(stream).await,
        }
    }
}
