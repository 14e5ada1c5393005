//! The embedded file journal: segments of checksummed frames on a `Disk`,
//! group-committed, recovered by the rules of `storage/FORMAT.md`.
//!
//! Concurrency: appenders enqueue their record under a short lock, then wait
//! until it is durable. Whenever the single writer slot is free, one waiting
//! appender takes it and writes *everything* pending (up to the batch
//! bounds) with one `write_at` and one `sync_data`, so N concurrent
//! appenders share one sync. Appenders whose records someone else made
//! durable never touch the slot: they are woken and return. A batch being
//! written stays in `in_flight` until it is durable, so if its writer is
//! cancelled, the next writer rewrites the same bytes at the same offset
//! (idempotent) instead of losing them.
//!
//! The parts: `group_commit.rs` (the writer slot, batches, fail-stop),
//! `segments.rs` (rolling to a new segment, compaction), `recovery.rs`
//! (open: segments, seals, checkpoints and the marker checked, then
//! repaired), `replay.rs` (reading streams back), `checkpoints.rs`
//! (checkpoint files).

mod checkpoints;
mod group_commit;
mod recovery;
mod replay;
mod segments;

use super::checkpoint::{
    CHECKPOINT_STATE_BYTES_MAX, CheckpointFile, decode_checkpoint, decode_checkpoint_file,
    encode_checkpoint,
};
use super::frame::{
    FrameHeader, Record, SEGMENT_HEADER_BYTES, SegmentHeader, decode_frame, encode_frame,
    encode_seal, frame_len,
};
use super::marker::{MARKER_NAME, encode_marker};
use super::scan::{ScanEnd, ScanError, scan_segment_with};
use super::{
    Checkpoint, Journal, JournalConfig, JournalError, validate_checkpoint_seq, validate_entries,
    validate_stream,
};
use crate::disk::{Disk, DiskError, DiskErrorKind, DiskFile, READ_BYTES_MAX};
use crate::sync::LockExt;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use checkpoints::{checkpoint_name, parse_checkpoint_name};

/// Why a journal always has a segment: open creates or recovers one, and
/// compaction never removes the active (last) one.
pub(super) const ACTIVE_SEGMENT: &str = "an open journal always has its active segment";

/// Largest single read while recovering or replaying.
pub(super) const READ_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// Replay reads across gaps up to this size (other streams' frames)
/// rather than issuing another read.
pub(super) const REPLAY_GAP_BYTES_MAX: u64 = 256 * 1024;

/// A journal on a directory of a [`Disk`]. Cheap to clone; clones share it.
pub struct FileJournal<D: Disk> {
    pub(super) inner: Arc<Inner<D>>,
}

impl<D: Disk> Clone for FileJournal<D> {
    fn clone(&self) -> Self {
        FileJournal {
            inner: self.inner.clone(),
        }
    }
}

pub(super) struct Inner<D: Disk> {
    pub(super) disk: D,
    pub(super) config: JournalConfig,
    pub(super) journal_id: u64,
    pub(super) state: Mutex<State<D::File>>,
    /// Serialises checkpoint saves (they share a temporary file name).
    pub(super) checkpoint_io: futures::lock::Mutex<()>,
    /// Told about every group commit (set once, by whoever runs the
    /// journal on a node with metrics).
    pub(super) observer: std::sync::OnceLock<Arc<dyn CommitObserver>>,
}

/// Told about each group commit of a [`FileJournal`]. The journal has no
/// clock of its own (time is the runtime's seam), so the observer keeps
/// the time: `starting` returns a reading that comes back to `committed`.
pub trait CommitObserver: Send + Sync + 'static {
    /// A batch is about to be written and synced.
    fn starting(&self) -> u64;
    /// The batch begun at `started`, of `records` records and `bytes`
    /// bytes, is durable (`durable`) or failed to be written or synced.
    fn committed(&self, started: u64, records: usize, bytes: usize, durable: bool);
}

pub(super) struct State<F> {
    /// Set when a write or sync failed: the instance is fail-stop.
    pub(super) stopped: Option<Arc<DiskError>>,
    /// The writer slot: taken while writing and syncing a batch, rolling a
    /// segment or compacting.
    pub(super) writer_busy: bool,
    /// Bumped whenever a batch becomes durable or the writer slot frees;
    /// waiters sleep until it moves.
    pub(super) epoch: u64,
    /// Tasks waiting for `epoch` to move.
    pub(super) wakers: Vec<Waker>,
    pub(super) next_lsn: u64,
    /// Every record with an lsn up to this is durable.
    pub(super) durable_lsn: u64,
    pub(super) pending: VecDeque<PendingRecord>,
    pub(super) in_flight: Option<Batch>,
    /// Next sequence number to hand out, per stream (counts pending records).
    pub(super) next_seq: BTreeMap<String, u64>,
    /// Where each stream's durable entries are.
    pub(super) streams: BTreeMap<String, StreamIndex>,
    pub(super) segments: BTreeMap<u64, Segment<F>>,
    /// Sequence number of each stream's durable checkpoint.
    pub(super) checkpoints: BTreeMap<String, u64>,
}

pub(super) struct PendingRecord {
    pub(super) lsn: u64,
    pub(super) stream: String,
    pub(super) seq: u64,
    pub(super) data: Vec<u8>,
}

pub(super) struct Batch {
    pub(super) segment_id: u64,
    pub(super) offset: u64,
    pub(super) bytes: Vec<u8>,
    pub(super) last_lsn: u64,
    /// (stream, seq, location) of each record, applied to the index once durable.
    pub(super) placed: Vec<(String, u64, Location)>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Location {
    pub(super) segment_id: u64,
    pub(super) offset: u64,
    pub(super) len: u32,
}

#[derive(Default)]
pub(super) struct StreamIndex {
    /// Sequence number of `locations[0]`.
    pub(super) first_seq: u64,
    pub(super) locations: VecDeque<Location>,
}

impl StreamIndex {
    pub(super) fn last_seq(&self) -> u64 {
        self.first_seq + self.locations.len() as u64 - 1
    }
}

pub(super) struct Segment<F> {
    pub(super) file: Arc<F>,
    /// Bytes written and durable (or in flight) so far.
    pub(super) size: u64,
    /// Highest sequence number of each stream in this segment: the segment
    /// may go once every one of them is covered by a checkpoint.
    pub(super) max_seq: BTreeMap<String, u64>,
}

pub(super) fn segment_name(id: u64) -> String {
    format!("seg-{id:016x}.log")
}

/// The segment id a file of a journal directory holds, if its name is a
/// segment's (`seg-<16 hex digits>.log`): for tools that read a journal
/// directory without opening it.
pub fn segment_id_of(name: &str) -> Option<u64> {
    parse_segment_name(name)
}

/// The stream a file of a journal directory holds the checkpoint of, if
/// its name is a checkpoint's (`ckpt-<hex of the stream name>`).
pub fn checkpoint_stream_of(name: &str) -> Option<String> {
    parse_checkpoint_name(name)
}

pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok())?
}

/// Reads a whole file in bounded pieces.
pub(super) async fn read_all<F: DiskFile>(file: &F) -> Result<Vec<u8>, DiskError> {
    let size = file.size().await?;
    if size <= READ_BYTES_MAX as u64 {
        return file.read_at(0, size as usize).await; // one read, no copy
    }
    let mut bytes = Vec::with_capacity(size as usize);
    while (bytes.len() as u64) < size {
        let want = (size - bytes.len() as u64).min(READ_CHUNK_BYTES as u64) as usize;
        let piece = file.read_at(bytes.len() as u64, want).await?;
        if piece.is_empty() {
            break; // the file shrank under us; recovery works with what is there
        }
        bytes.extend_from_slice(&piece);
    }
    Ok(bytes)
}

impl<D: Disk> FileJournal<D> {
    /// This journal's id (in every segment header).
    pub fn journal_id(&self) -> u64 {
        self.inner.journal_id
    }

    /// Tells `observer` about every group commit from now on. Only the
    /// first observer set is kept; returns whether this one was.
    pub fn observe_commits(&self, observer: Arc<dyn CommitObserver>) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    /// The failure that stopped this journal, if a write or sync failed
    /// (it is fail-stop: reopen it to go on).
    pub fn stopped(&self) -> Option<Arc<DiskError>> {
        self.state().stopped.clone()
    }

    /// Ids of the segment files currently in use, oldest first.
    pub fn segment_ids(&self) -> Vec<u64> {
        self.state().segments.keys().copied().collect()
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State<D::File>> {
        self.inner.state.locked()
    }

    pub(super) fn stopped_error(cause: &Arc<DiskError>) -> JournalError {
        JournalError::Stopped {
            cause: cause.clone(),
        }
    }

    pub(super) fn last_seq_locked(state: &State<D::File>, stream: &str) -> u64 {
        let entries = state.streams.get(stream).map_or(0, StreamIndex::last_seq);
        entries.max(state.checkpoints.get(stream).copied().unwrap_or(0))
    }
}

impl<D: Disk> Journal for FileJournal<D> {
    async fn append(&self, stream: &str, data: &[u8]) -> Result<u64, JournalError> {
        self.append_all(stream, &[data]).await
    }

    async fn append_all(&self, stream: &str, entries: &[&[u8]]) -> Result<u64, JournalError> {
        validate_stream(stream)?;
        validate_entries(entries, self.inner.config.entry_bytes_max)?;
        let (last_lsn, last_seq) = {
            let mut state = self.state();
            if let Some(cause) = &state.stopped {
                return Err(Self::stopped_error(cause));
            }
            let mut seq = match state.next_seq.get(stream) {
                Some(&next) => next,
                None => Self::last_seq_locked(&state, stream) + 1,
            };
            if entries.is_empty() {
                return Ok(seq - 1);
            }
            let max = self.inner.config.pending_records_max;
            if state.pending.len() + entries.len() > max {
                return Err(JournalError::Overloaded {
                    pending: state.pending.len(),
                    max,
                });
            }
            let mut lsn = 0;
            for data in entries {
                lsn = state.next_lsn;
                state.next_lsn += 1;
                state.pending.push_back(PendingRecord {
                    lsn,
                    stream: stream.to_string(),
                    seq,
                    data: data.to_vec(),
                });
                seq += 1;
            }
            state.next_seq.insert(stream.to_string(), seq);
            (lsn, seq - 1)
        };
        self.flush_until(last_lsn).await?;
        Ok(last_seq)
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
        self.replay_stream(stream, from_seq, visit).await
    }

    async fn replay_streams_each<F>(
        &self,
        streams: &[(&str, u64)],
        visit: F,
    ) -> Result<u64, JournalError>
    where
        F: FnMut(&str, u64, &[u8]) + Send,
    {
        self.replay_streams(streams, visit).await
    }

    fn last_seq(&self, stream: &str) -> u64 {
        Self::last_seq_locked(&self.state(), stream)
    }

    async fn save_checkpoint(
        &self,
        stream: &str,
        seq: u64,
        state_bytes: &[u8],
    ) -> Result<(), JournalError> {
        self.save_checkpoint_file(stream, seq, state_bytes).await
    }

    async fn latest_checkpoint(&self, stream: &str) -> Result<Option<Checkpoint>, JournalError> {
        self.latest_checkpoint_file(stream).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        assert_eq!(parse_segment_name(&segment_name(0xabc)), Some(0xabc));
        assert_eq!(parse_segment_name("seg-xyz.log"), None);
        assert_eq!(parse_segment_name("seg-00000000000000001.log"), None);
        for stream in ["a", "acct-7@node1", "ünïcode"] {
            assert_eq!(
                parse_checkpoint_name(&checkpoint_name(stream)).as_deref(),
                Some(stream)
            );
        }
        assert_eq!(parse_checkpoint_name("ckpt-zz"), None);
        assert_eq!(parse_checkpoint_name("ckpt-"), None);
        assert!(checkpoint_name(&"x".repeat(crate::journal::STREAM_NAME_BYTES_MAX)).len() <= 255);
    }
}
