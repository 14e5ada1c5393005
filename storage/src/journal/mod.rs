//! The journal: per-stream, gap-free logs of opaque entries, durable before
//! they are acknowledged, and checkpoints that let old entries go.
//!
//! Two implementations share the [`Journal`] trait:
//!
//! - [`FileJournal`]: the embedded default, a segmented append-only log on
//!   the [`Disk`](crate::disk::Disk) seam, with checksummed frames, group
//!   commit and the recovery rules of `storage/FORMAT.md`;
//! - [`MemoryJournal`]: the same semantics in memory, for tests and for the
//!   `memory` backend (nothing survives the process).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use plexspaces_storage::disk::FsDisk;
//! use plexspaces_storage::journal::{FileJournal, Journal, JournalConfig};
//! let dir = std::env::temp_dir().join(format!("plexspaces-doc-journal-{}", std::process::id()));
//! let disk = FsDisk::open_dir(&dir).await?;
//! let journal = FileJournal::open(disk.clone(), JournalConfig::default(), 0x5eed).await?;
//! assert_eq!(journal.append("counter@n1", b"+5").await?, 1);   // durable when this returns
//! assert_eq!(journal.append("counter@n1", b"+2").await?, 2);
//! drop(journal);
//! let reopened = FileJournal::open(disk, JournalConfig::default(), 0x5eed).await?;
//! let entries = reopened.replay_from("counter@n1", 1).await?;
//! assert_eq!(entries[1].data, b"+2");
//! # std::fs::remove_dir_all(&dir)?; Ok(()) }
//! ```

pub mod checkpoint;
pub mod claims;
mod error;
mod file;
pub mod frame;
pub mod marker;
mod memory;
pub mod scan;

pub use checkpoint::Checkpoint;
pub use error::JournalError;
pub use file::{CommitObserver, FileJournal, checkpoint_stream_of, segment_id_of};
pub use memory::MemoryJournal;

use std::future::Future;

/// Longest stream name (actor id) in bytes.
pub const STREAM_NAME_BYTES_MAX: usize = 100;

/// One entry of a stream, as replayed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    /// Its sequence number in the stream: 1, 2, 3, ... without gaps.
    pub seq: u64,
    /// The bytes appended.
    pub data: Vec<u8>,
}

/// Bounds of a journal. Every queue and batch has one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalConfig {
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_bytes_max: u64,
    /// Most records one group commit writes and syncs.
    pub batch_records_max: usize,
    /// Most bytes one group commit writes and syncs.
    pub batch_bytes_max: usize,
    /// Largest entry accepted by `append`.
    pub entry_bytes_max: usize,
    /// Most records waiting for a group commit at once (appended, not yet
    /// written). An append that would queue more fails at once with
    /// [`JournalError::Overloaded`] and queues nothing: the journal is
    /// behind the disk, and the caller should slow down.
    pub pending_records_max: usize,
    /// A deliberately broken variant, so the simulator can prove it
    /// catches it: always present (so enabling the feature anywhere in a
    /// build breaks no struct literal), acted on only with the
    /// `planted-bugs` feature.
    #[doc(hidden)]
    pub planted_bug: Option<PlantedBug>,
}

/// Deliberate bugs the simulator's tests plant in the journal, to show the
/// simulator finds them (a simulator that finds nothing proves nothing).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// Acknowledge appends without syncing them.
    AckBeforeSync,
    /// Treat a failed `sync_data` as a success.
    IgnoreSyncError,
    /// Create new segments without syncing the directory.
    SkipSegmentDirSync,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            // Small enough that recovery reads a segment in one call.
            segment_bytes_max: 32 * 1024 * 1024,
            batch_records_max: 4096,
            batch_bytes_max: 4 * 1024 * 1024,
            entry_bytes_max: 1024 * 1024,
            // Sixteen full batches: far more than concurrent appenders
            // queue while one batch syncs, far less than exhausts memory.
            pending_records_max: 16 * 4096,
            planted_bug: None,
        }
    }
}

/// A journal of many streams.
///
/// Sequence numbers are per stream, start at 1 and have no gaps. An entry
/// is durable when `append` returns `Ok`; replay returns exactly the durable
/// entries, in order.
pub trait Journal: Send + Sync + 'static {
    /// Appends `data` to `stream` and returns its sequence number once it is
    /// durable. On `Err`, the entry may or may not survive a crash, but it
    /// was not acknowledged.
    fn append(
        &self,
        stream: &str,
        data: &[u8],
    ) -> impl Future<Output = Result<u64, JournalError>> + Send;

    /// Appends `entries` to `stream`, in order, with one durability wait
    /// for all of them, and returns the last one's sequence number (the
    /// stream's last, if `entries` is empty). A crash before `Ok` may keep
    /// any prefix of them.
    fn append_all(
        &self,
        stream: &str,
        entries: &[&[u8]],
    ) -> impl Future<Output = Result<u64, JournalError>> + Send;

    /// Hands each durable entry of `stream` with `seq >= from_seq` to
    /// `visit`, in order, without copying it out, and returns how many.
    /// Entries removed by compaction below a checkpoint give
    /// [`JournalError::Truncated`].
    fn replay_each<F>(
        &self,
        stream: &str,
        from_seq: u64,
        visit: F,
    ) -> impl Future<Output = Result<u64, JournalError>> + Send
    where
        F: FnMut(u64, &[u8]) + Send;

    /// [`Journal::replay_each`] for several streams at once: hands each
    /// durable entry of every `(stream, from_seq)` to `visit`, with its
    /// stream's name, and returns how many. Each stream's entries come in
    /// order; different streams' entries may interleave. A journal that
    /// keeps its streams in one log (the file journal) reads it once for
    /// all of them, where replaying them one by one reads it once each.
    fn replay_streams_each<F>(
        &self,
        streams: &[(&str, u64)],
        visit: F,
    ) -> impl Future<Output = Result<u64, JournalError>> + Send
    where
        F: FnMut(&str, u64, &[u8]) + Send,
    {
        async move {
            let mut visit = visit;
            let mut count = 0;
            for &(stream, from_seq) in streams {
                count += self
                    .replay_each(stream, from_seq, |seq, data| visit(stream, seq, data))
                    .await?;
            }
            Ok(count)
        }
    }

    /// The durable entries of `stream` with `seq >= from_seq`, in order (see
    /// [`Journal::replay_each`]).
    fn replay_from(
        &self,
        stream: &str,
        from_seq: u64,
    ) -> impl Future<Output = Result<Vec<JournalEntry>, JournalError>> + Send {
        async move {
            let mut entries = Vec::new();
            self.replay_each(stream, from_seq, |seq, data| {
                entries.push(JournalEntry {
                    seq,
                    data: data.to_vec(),
                })
            })
            .await?;
            Ok(entries)
        }
    }

    /// The last durable sequence number of `stream` (0 if it has none).
    /// On a shared journal, as of this writer's claim and own appends.
    fn last_seq(&self, stream: &str) -> u64;

    /// Makes this journal handle `stream`'s only writer before it recovers
    /// and appends. A journal one process owns (file, memory) has nothing
    /// to fence and returns at once; a journal several nodes share grants a
    /// new epoch, after which any earlier claimant's writes to `stream` fail
    /// with [`JournalError::Fenced`].
    fn claim(&self, stream: &str) -> impl Future<Output = Result<(), JournalError>> + Send {
        let checked = validate_stream(stream);
        async move { checked }
    }

    /// Checks that this handle's claim on `stream` still stands: no newer
    /// claimant took the stream since. A journal one process owns has one
    /// writer and answers at once; a shared one asks its store and answers
    /// [`JournalError::Fenced`] if the claim is gone. A reader that answers
    /// from memory (a durable actor's query) calls this now and then, so an
    /// activation another node superseded stops serving stale state.
    fn check_claim(&self, stream: &str) -> impl Future<Output = Result<(), JournalError>> + Send {
        let checked = validate_stream(stream);
        async move { checked }
    }

    /// Saves `state` as `stream`'s checkpoint at `seq` (the state after
    /// entries `1..=seq`), durably, replacing the previous one; entries no
    /// checkpoint needs any more may then be removed.
    fn save_checkpoint(
        &self,
        stream: &str,
        seq: u64,
        state: &[u8],
    ) -> impl Future<Output = Result<(), JournalError>> + Send;

    /// The latest checkpoint of `stream`, if any.
    fn latest_checkpoint(
        &self,
        stream: &str,
    ) -> impl Future<Output = Result<Option<Checkpoint>, JournalError>> + Send;
}

/// Checks a stream name.
fn validate_stream(stream: &str) -> Result<(), JournalError> {
    if stream.is_empty() || stream.len() > STREAM_NAME_BYTES_MAX {
        return Err(JournalError::InvalidStream {
            stream: stream.to_string(),
        });
    }
    Ok(())
}

/// Checks a batch of entries against the size bound.
fn validate_entries(entries: &[&[u8]], max: usize) -> Result<(), JournalError> {
    match entries.iter().find(|e| e.len() > max) {
        Some(big) => Err(JournalError::TooLarge {
            len: big.len(),
            max,
        }),
        None => Ok(()),
    }
}

/// Checks a checkpoint's sequence number against the stream's durable
/// entries and its current checkpoint.
fn validate_checkpoint_seq(
    stream: &str,
    seq: u64,
    last: u64,
    current: Option<u64>,
) -> Result<(), JournalError> {
    if seq > last {
        return Err(JournalError::CheckpointAhead {
            stream: stream.to_string(),
            seq,
            last,
        });
    }
    if let Some(current) = current.filter(|&c| seq < c) {
        return Err(JournalError::CheckpointBehind {
            stream: stream.to_string(),
            seq,
            current,
        });
    }
    Ok(())
}
