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

/// Why a journal always has a segment: open creates or recovers one, and
/// compaction never removes the active (last) one.
const ACTIVE_SEGMENT: &str = "an open journal always has its active segment";

/// Largest single read while recovering or replaying.
const READ_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// Replay reads across gaps up to this size (other streams' frames)
/// rather than issuing another read.
const REPLAY_GAP_BYTES_MAX: u64 = 256 * 1024;

/// A journal on a directory of a [`Disk`]. Cheap to clone; clones share it.
pub struct FileJournal<D: Disk> {
    inner: Arc<Inner<D>>,
}

impl<D: Disk> Clone for FileJournal<D> {
    fn clone(&self) -> Self {
        FileJournal {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<D: Disk> {
    disk: D,
    config: JournalConfig,
    journal_id: u64,
    state: Mutex<State<D::File>>,
    /// Serialises checkpoint saves (they share a temporary file name).
    checkpoint_io: futures::lock::Mutex<()>,
}

struct State<F> {
    /// Set when a write or sync failed: the instance is fail-stop.
    stopped: Option<Arc<DiskError>>,
    /// The writer slot: taken while writing and syncing a batch, rolling a
    /// segment or compacting.
    writer_busy: bool,
    /// Bumped whenever a batch becomes durable or the writer slot frees;
    /// waiters sleep until it moves.
    epoch: u64,
    /// Tasks waiting for `epoch` to move.
    wakers: Vec<Waker>,
    next_lsn: u64,
    /// Every record with an lsn up to this is durable.
    durable_lsn: u64,
    pending: VecDeque<PendingRecord>,
    in_flight: Option<Batch>,
    /// Next sequence number to hand out, per stream (counts pending records).
    next_seq: BTreeMap<String, u64>,
    /// Where each stream's durable entries are.
    streams: BTreeMap<String, StreamIndex>,
    segments: BTreeMap<u64, Segment<F>>,
    /// Sequence number of each stream's durable checkpoint.
    checkpoints: BTreeMap<String, u64>,
}

struct PendingRecord {
    lsn: u64,
    stream: String,
    seq: u64,
    data: Vec<u8>,
}

struct Batch {
    segment_id: u64,
    offset: u64,
    bytes: Vec<u8>,
    last_lsn: u64,
    /// (stream, seq, location) of each record, applied to the index once durable.
    placed: Vec<(String, u64, Location)>,
}

#[derive(Clone, Copy, Debug)]
struct Location {
    segment_id: u64,
    offset: u64,
    len: u32,
}

#[derive(Default)]
struct StreamIndex {
    /// Sequence number of `locations[0]`.
    first_seq: u64,
    locations: VecDeque<Location>,
}

impl StreamIndex {
    fn last_seq(&self) -> u64 {
        self.first_seq + self.locations.len() as u64 - 1
    }
}

struct Segment<F> {
    file: Arc<F>,
    /// Bytes written and durable (or in flight) so far.
    size: u64,
    /// Highest sequence number of each stream in this segment: the segment
    /// may go once every one of them is covered by a checkpoint.
    max_seq: BTreeMap<String, u64>,
}

fn segment_name(id: u64) -> String {
    format!("seg-{id:016x}.log")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok())?
}

fn checkpoint_name(stream: &str) -> String {
    let hex: String = stream.bytes().map(|b| format!("{b:02x}")).collect();
    format!("ckpt-{hex}")
}

fn parse_checkpoint_name(name: &str) -> Option<String> {
    let hex = name.strip_prefix("ckpt-")?;
    if hex.len() % 2 != 0 || hex.is_empty() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// Reads a whole file in bounded pieces.
async fn read_all<F: DiskFile>(file: &F) -> Result<Vec<u8>, DiskError> {
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
    /// Opens the journal in `disk`, recovering it, or creates a new one
    /// (with id `new_journal_id`, which should be random) if `disk` holds none.
    pub async fn open(
        disk: D,
        config: JournalConfig,
        new_journal_id: u64,
    ) -> Result<Self, JournalError> {
        let names = disk.list().await?;
        let mut removed_any = false;
        for tmp in names.iter().filter(|n| n.ends_with(".tmp")) {
            disk.remove(tmp).await?; // a checkpoint save cut short
            removed_any = true;
        }
        let mut segment_ids: Vec<u64> =
            names.iter().filter_map(|n| parse_segment_name(n)).collect();
        segment_ids.sort_unstable();

        // A last segment with no complete header was being created when the
        // node crashed; it never held a frame (frames follow the header's sync).
        if let Some(&last) = segment_ids.last() {
            let file = disk.open(&segment_name(last)).await?;
            let size = file.size().await?;
            let head = file.read_at(0, SEGMENT_HEADER_BYTES).await?;
            if size <= SEGMENT_HEADER_BYTES as u64 && SegmentHeader::decode(&head).is_err() {
                disk.remove(&segment_name(last)).await?;
                removed_any = true;
                segment_ids.pop();
            }
        }
        if removed_any {
            disk.sync_dir().await?;
        }

        let journal_id = match segment_ids.first() {
            None => new_journal_id,
            Some(&first) => {
                let file = disk.open(&segment_name(first)).await?;
                let head = file.read_at(0, SEGMENT_HEADER_BYTES).await?;
                SegmentHeader::decode(&head)
                    .map_err(|e| JournalError::Corrupt {
                        segment: first,
                        offset: 0,
                        reason: format!("segment header: {e:?}"),
                    })?
                    .journal_id
            }
        };
        let has_marker = names.iter().any(|n| n == MARKER_NAME);
        if segment_ids.is_empty() && has_marker {
            // The marker is written only after the first segment was
            // durably created, and compaction always keeps one segment.
            return Err(JournalError::SegmentsMissing {
                marker: MARKER_NAME.to_string(),
            });
        }
        let checkpoints = load_checkpoints(&disk, &names, journal_id).await?;
        if segment_ids.is_empty() && !checkpoints.is_empty() {
            return Err(JournalError::CorruptCheckpoint {
                file: checkpoint_name(
                    checkpoints
                        .keys()
                        .next()
                        .expect("checked non-empty in this condition"),
                ),
                reason: "checkpoints exist but no segment does".to_string(),
            });
        }

        let mut state = State {
            stopped: None,
            writer_busy: false,
            epoch: 0,
            wakers: Vec::new(),
            next_lsn: 1,
            durable_lsn: 0,
            pending: VecDeque::new(),
            in_flight: None,
            next_seq: BTreeMap::new(),
            streams: BTreeMap::new(),
            segments: BTreeMap::new(),
            checkpoints: checkpoints
                .iter()
                .map(|(s, c)| (s.clone(), c.checkpoint.seq))
                .collect(),
        };
        // A last segment holding only its header may come from a roll the
        // crash cut before its predecessor's seal was durable.
        let last_is_empty = match segment_ids.last() {
            Some(&last) => {
                disk.open(&segment_name(last)).await?.size().await? <= SEGMENT_HEADER_BYTES as u64
            }
            None => false,
        };
        let mut repairs = Vec::new();
        for (position, &id) in segment_ids.iter().enumerate() {
            let successor = segment_ids.get(position + 1).map(|&next| Successor {
                id: next,
                empty_and_last: position + 2 == segment_ids.len() && last_is_empty,
            });
            // A repair with nothing to do does nothing when applied.
            repairs.push(recover_segment(&disk, &mut state, journal_id, id, successor).await?);
        }
        check_checkpoints_against_log(&state, &checkpoints)?;
        for repair in repairs {
            let segment = state
                .segments
                .get_mut(&repair.segment)
                .expect("a repaired segment was recovered");
            repair.apply(segment).await?;
        }
        let inner = Inner {
            disk,
            config,
            journal_id,
            state: Mutex::new(state),
            checkpoint_io: futures::lock::Mutex::new(()),
        };
        let journal = FileJournal {
            inner: Arc::new(inner),
        };
        if segment_ids.is_empty() {
            let _writer = journal.writer_slot().await;
            journal.roll().await?;
        }
        if !has_marker {
            // After the first segment is durable (a new journal), or for a
            // journal written before markers existed.
            write_marker(&journal.inner.disk, journal_id).await?;
        }
        Ok(journal)
    }

    /// This journal's id (in every segment header).
    pub fn journal_id(&self) -> u64 {
        self.inner.journal_id
    }

    /// Ids of the segment files currently in use, oldest first.
    pub fn segment_ids(&self) -> Vec<u64> {
        self.state().segments.keys().copied().collect()
    }

    fn state(&self) -> MutexGuard<'_, State<D::File>> {
        self.inner.state.locked()
    }

    fn stopped_error(cause: &Arc<DiskError>) -> JournalError {
        JournalError::Stopped {
            cause: cause.clone(),
        }
    }

    /// Waits for the writer slot (for rolling or compacting).
    async fn writer_slot(&self) -> WriterSlot<'_, D> {
        loop {
            let seen = {
                let mut state = self.state();
                if !state.writer_busy {
                    state.writer_busy = true;
                    return WriterSlot { journal: self };
                }
                state.epoch
            };
            EpochChange {
                journal: self,
                seen,
            }
            .await;
        }
    }

    /// Waits until `lsn` is durable, writing and syncing batches whenever
    /// the writer slot is free.
    async fn flush_until(&self, lsn: u64) -> Result<(), JournalError> {
        loop {
            let seen = {
                let mut state = self.state();
                if let Some(cause) = &state.stopped {
                    return Err(Self::stopped_error(cause));
                }
                if state.durable_lsn >= lsn {
                    return Ok(());
                }
                if state.writer_busy {
                    Some(state.epoch)
                } else {
                    state.writer_busy = true;
                    None
                }
            };
            match seen {
                Some(seen) => {
                    EpochChange {
                        journal: self,
                        seen,
                    }
                    .await
                }
                None => {
                    let _writer = WriterSlot { journal: self };
                    self.write_one_batch().await?;
                }
            }
        }
    }

    /// Writes and syncs one batch (the in-flight one, or a new one of
    /// pending records). Caller holds the writer slot.
    async fn write_one_batch(&self) -> Result<(), JournalError> {
        let roll_needed = {
            let state = self.state();
            let active = state.segments.values().next_back().expect(ACTIVE_SEGMENT);
            state.in_flight.is_none() && active.size >= self.inner.config.segment_bytes_max
        };
        if roll_needed {
            self.roll().await?;
        }
        let (file, segment_id, offset, bytes) = {
            let mut state = self.state();
            if state.in_flight.is_none() {
                let batch = self.build_batch(&mut state);
                state.in_flight = Some(batch);
            }
            let batch = state
                .in_flight
                .as_ref()
                .expect("in_flight was set just above, under the same lock");
            let segment = &state.segments[&batch.segment_id];
            (
                segment.file.clone(),
                batch.segment_id,
                batch.offset,
                batch.bytes.clone(),
            )
        };
        let written = self.write_and_sync_batch(&*file, offset, &bytes).await;
        if let Err(e) = written {
            // Fail-stop: the unsynced data may be gone whatever a retry
            // says (fsyncgate), so nothing pending is acknowledged. The
            // unsynced frames are also cut from the file, best effort: the
            // page cache may still show them after a failed sync, and a
            // reopen in this process must not take them for durable data.
            let _ = file.set_len(offset).await;
            let cause = Arc::new(e);
            let mut state = self.state();
            state.stopped = Some(cause.clone());
            state.in_flight = None;
            state.pending.clear();
            return Err(Self::stopped_error(&cause));
        }
        let mut state = self.state();
        let batch = state
            .in_flight
            .take()
            .expect("only the writer slot holder, this task, takes the batch in flight");
        debug_assert_eq!((batch.segment_id, batch.offset), (segment_id, offset));
        apply_durable_batch(&mut state, batch);
        Ok(())
    }

    /// Writes a batch and makes it durable. (Planted bugs, for the
    /// simulator's own tests, break exactly this step.)
    async fn write_and_sync_batch(
        &self,
        file: &D::File,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), DiskError> {
        #[cfg(feature = "planted-bugs")]
        match self.inner.config.planted_bug {
            Some(super::PlantedBug::AckBeforeSync) => return file.write_at(offset, bytes).await,
            Some(super::PlantedBug::IgnoreSyncError) => {
                file.write_at(offset, bytes).await?;
                let _ = file.sync_data().await;
                return Ok(());
            }
            _ => {}
        }
        file.write_at_and_sync(offset, bytes).await
    }

    /// Encodes pending records, up to the batch bounds, for the active segment.
    fn build_batch(&self, state: &mut State<D::File>) -> Batch {
        let (&segment_id, segment) = state.segments.iter().next_back().expect(ACTIVE_SEGMENT);
        let offset = segment.size;
        let commit_lsn = state.durable_lsn;
        let mut bytes = Vec::new();
        let mut placed = Vec::new();
        let mut last_lsn = state.durable_lsn;
        while let Some(next) = state.pending.front() {
            // The bound is on the bytes written: whole frames, headers
            // included (a frame larger than the bound still goes, alone).
            let next_len = frame_len(&Record {
                stream: &next.stream,
                seq: next.seq,
                data: &next.data,
            });
            let full = placed.len() >= self.inner.config.batch_records_max
                || bytes.len() + next_len > self.inner.config.batch_bytes_max;
            if full && !placed.is_empty() {
                break;
            }
            let record = state
                .pending
                .pop_front()
                .expect("front() was Some just above, under the same lock");
            let start = bytes.len();
            let header = FrameHeader {
                segment_id,
                lsn: record.lsn,
                commit_lsn,
            };
            encode_frame(
                &mut bytes,
                header,
                &Record {
                    stream: &record.stream,
                    seq: record.seq,
                    data: &record.data,
                },
            );
            let location = Location {
                segment_id,
                offset: offset + start as u64,
                len: (bytes.len() - start) as u32,
            };
            last_lsn = record.lsn;
            placed.push((record.stream, record.seq, location));
        }
        Batch {
            segment_id,
            offset,
            bytes,
            last_lsn,
            placed,
        }
    }

    /// Starts a new segment: created, header written and synced, directory
    /// synced, and only then used. Caller holds the writer slot.
    async fn roll(&self) -> Result<(), JournalError> {
        let (id, header, previous) = {
            let state = self.state();
            assert!(
                state.in_flight.is_none(),
                "a segment rolls only when no batch is in flight"
            );
            let id = state.segments.keys().next_back().map_or(1, |last| last + 1);
            let header = SegmentHeader {
                journal_id: self.inner.journal_id,
                segment_id: id,
                first_lsn: state.durable_lsn + 1,
                commit_lsn: state.durable_lsn,
            };
            let previous = state
                .segments
                .iter()
                .next_back()
                .map(|(&previous_id, segment)| (previous_id, segment.file.clone(), segment.size));
            (id, header, previous)
        };
        let name = segment_name(id);
        let created = async {
            // A writer cancelled mid-roll may have left the file behind.
            let file = match self.inner.disk.create(&name).await {
                Err(e) if e.kind() == DiskErrorKind::AlreadyExists => {
                    self.inner.disk.open(&name).await?
                }
                other => other?,
            };
            file.set_len(0).await?;
            file.write_at(0, &header.encode()).await?;
            file.sync_data().await?;
            #[cfg(feature = "planted-bugs")]
            if self.inner.config.planted_bug == Some(super::PlantedBug::SkipSegmentDirSync) {
                return Ok(file);
            }
            self.inner.disk.sync_dir().await?;
            Ok::<_, DiskError>(file)
        };
        match created.await {
            Ok(file) => {
                if let Some((previous_id, previous_file, previous_size)) = previous {
                    // The successor is durable: seal the previous segment,
                    // naming it, so its loss can never pass for a clean end.
                    let mut seal = Vec::new();
                    encode_seal(&mut seal, previous_id, header.commit_lsn, id);
                    if let Err(e) = previous_file.write_at_and_sync(previous_size, &seal).await {
                        // The new segment stays: it is durable and empty,
                        // and recovery reseals its predecessor.
                        return Err(self.fail_stop(e));
                    }
                    let sealed_size = previous_size + seal.len() as u64;
                    // The seal is the segment's last bytes, for good.
                    let on_disk = previous_file.size().await.map_err(|e| self.fail_stop(e))?;
                    assert_eq!(on_disk, sealed_size, "a sealed segment ends with its seal");
                    let mut state = self.state();
                    let sealed = state
                        .segments
                        .get_mut(&previous_id)
                        .expect("the previous segment is held while the writer slot is");
                    sealed.size = sealed_size;
                }
                self.state().segments.insert(
                    id,
                    Segment {
                        file: Arc::new(file),
                        size: SEGMENT_HEADER_BYTES as u64,
                        max_seq: BTreeMap::new(),
                    },
                );
                Ok(())
            }
            Err(e) => {
                // As for a failed batch: the new segment's header may be in
                // the page cache only; do not leave it for a reopen to trust.
                if self.inner.disk.remove(&name).await.is_ok() {
                    let _ = self.inner.disk.sync_dir().await;
                }
                Err(self.fail_stop(e))
            }
        }
    }

    /// Stops the instance after a failed write or sync: nothing pending is
    /// acknowledged, now or later.
    fn fail_stop(&self, e: DiskError) -> JournalError {
        let cause = Arc::new(e);
        let mut state = self.state();
        state.stopped = Some(cause.clone());
        state.pending.clear();
        Self::stopped_error(&cause)
    }

    /// Removes the oldest segments whose every entry is covered by a
    /// checkpoint. The active segment always stays. Returns how many went.
    pub async fn compact(&self) -> Result<usize, JournalError> {
        let _writer = self.writer_slot().await;
        let mut removed = 0;
        loop {
            let candidate = {
                let state = self.state();
                let active = *state.segments.keys().next_back().expect(ACTIVE_SEGMENT);
                let (&oldest, segment) = state.segments.iter().next().expect(ACTIVE_SEGMENT);
                let covered = segment
                    .max_seq
                    .iter()
                    .all(|(stream, max)| state.checkpoints.get(stream).is_some_and(|c| c >= max));
                (oldest != active && covered).then_some(oldest)
            };
            let Some(id) = candidate else {
                return Ok(removed);
            };
            self.inner.disk.remove(&segment_name(id)).await?;
            // One directory sync per removal: recovery must never see an
            // older segment come back while a newer one stays removed.
            self.inner.disk.sync_dir().await?;
            let mut state = self.state();
            let segment = state.segments.remove(&id).expect("the candidate was read from the table under the writer slot, which this task holds");
            for stream in segment.max_seq.keys() {
                let index = state
                    .streams
                    .get_mut(stream)
                    .expect("every stream with entries in a segment is indexed");
                while index.locations.front().is_some_and(|l| l.segment_id == id) {
                    index.locations.pop_front();
                    index.first_seq += 1;
                }
            }
            removed += 1;
        }
    }

    fn last_seq_locked(state: &State<D::File>, stream: &str) -> u64 {
        let entries = state.streams.get(stream).map_or(0, StreamIndex::last_seq);
        entries.max(state.checkpoints.get(stream).copied().unwrap_or(0))
    }
}

/// The writer slot, held; freeing it (also when the holder is cancelled)
/// wakes every waiter so one of them can take over.
struct WriterSlot<'a, D: Disk> {
    journal: &'a FileJournal<D>,
}

impl<D: Disk> Drop for WriterSlot<'_, D> {
    fn drop(&mut self) {
        let mut state = self.journal.state();
        state.writer_busy = false;
        bump_epoch(&mut state);
    }
}

/// Wakes every task waiting for the journal's state to move.
fn bump_epoch<F>(state: &mut State<F>) {
    state.epoch += 1;
    for waker in state.wakers.drain(..) {
        waker.wake();
    }
}

/// Completes once the journal's epoch differs from `seen`.
struct EpochChange<'a, D: Disk> {
    journal: &'a FileJournal<D>,
    seen: u64,
}

impl<D: Disk> Future for EpochChange<'_, D> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.journal.state();
        if state.epoch != self.seen {
            return Poll::Ready(());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Makes a durable batch visible: index, segment bookkeeping, durable lsn.
fn apply_durable_batch<F>(state: &mut State<F>, batch: Batch) {
    let segment = state.segments.get_mut(&batch.segment_id).expect(
        "a batch is written to a segment the table holds (compaction never removes the active one)",
    );
    segment.size = batch.offset + batch.bytes.len() as u64;
    for (stream, seq, location) in batch.placed {
        let index = state
            .streams
            .entry(stream.clone())
            .or_insert_with(|| StreamIndex {
                first_seq: seq,
                locations: VecDeque::new(),
            });
        debug_assert_eq!(
            index.first_seq + index.locations.len() as u64,
            seq,
            "gap-free"
        );
        index.locations.push_back(location);
        segment.max_seq.insert(stream, seq);
    }
    state.durable_lsn = batch.last_lsn;
}

async fn load_checkpoints<D: Disk>(
    disk: &D,
    names: &[String],
    journal_id: u64,
) -> Result<BTreeMap<String, CheckpointFile>, JournalError> {
    let mut checkpoints = BTreeMap::new();
    for name in names {
        // Not a name this journal writes, or a save cut short (`.tmp`,
        // never a valid name, removed by `open`): leave it alone.
        let Some(stream) = parse_checkpoint_name(name) else {
            continue;
        };
        let bytes = read_all(&disk.open(name).await?).await?;
        let checkpoint = decode_checkpoint_file(journal_id, &bytes).map_err(|e| {
            JournalError::CorruptCheckpoint {
                file: name.clone(),
                reason: format!("{e:?}"),
            }
        })?;
        if checkpoint.checkpoint.stream != stream {
            return Err(JournalError::CorruptCheckpoint {
                file: name.clone(),
                reason: format!("holds stream {:?}", checkpoint.checkpoint.stream),
            });
        }
        checkpoints.insert(stream, checkpoint);
    }
    Ok(checkpoints)
}

/// The segment after the one being recovered.
#[derive(Clone, Copy)]
struct Successor {
    id: u64,
    /// It is the last segment and holds only its header: a roll may have
    /// been cut between creating it and sealing its predecessor.
    empty_and_last: bool,
}

/// Scans one segment into `state`: cuts a torn tail off the last one (or
/// off the one before an empty last one, whose roll a crash cut short),
/// refuses a seal naming a segment that is not there, and seals a segment
/// that has a successor but no seal (written before seals existed, or
/// rolled by a crash-cut roll).
async fn recover_segment<D: Disk>(
    disk: &D,
    state: &mut State<D::File>,
    journal_id: u64,
    id: u64,
    successor: Option<Successor>,
) -> Result<Repair, JournalError> {
    let corrupt = |offset: u64, reason: String| JournalError::Corrupt {
        segment: id,
        offset,
        reason,
    };
    let file = disk.open(&segment_name(id)).await?;
    let bytes = read_all(&file).await?;
    // Whose segment is it? Checked before anything else about it.
    if let Ok(header) = SegmentHeader::decode(&bytes)
        && header.journal_id != journal_id
    {
        return Err(JournalError::ForeignSegment {
            segment: id,
            expected: journal_id,
            found: header.journal_id,
        });
    }
    if !state.segments.is_empty()
        && let Ok(header) = SegmentHeader::decode(&bytes)
        && header.first_lsn != state.next_lsn
    {
        return Err(corrupt(
            0,
            format!(
                "segment starts at lsn {}, expected {}",
                header.first_lsn, state.next_lsn
            ),
        ));
    }
    let mut max_seq: BTreeMap<String, u64> = BTreeMap::new();
    let streams = &mut state.streams;
    let checkpoints = &state.checkpoints;
    let scan = scan_segment_with(&bytes, id, |frame| {
        let stream = frame.record.stream;
        let seq = frame.record.seq;
        let location = Location {
            segment_id: id,
            offset: frame.offset,
            len: frame.len,
        };
        match streams.get_mut(stream) {
            Some(index) => {
                if seq != index.last_seq() + 1 {
                    return Err(format!("stream {stream:?} jumps to seq {seq}"));
                }
                index.locations.push_back(location);
            }
            None => {
                // Entries before the first one held must have been
                // compacted under a checkpoint.
                let floor = checkpoints.get(stream).copied().unwrap_or(0);
                if seq == 0 || seq > floor + 1 {
                    return Err(format!("stream {stream:?} starts at seq {seq}"));
                }
                let mut locations = VecDeque::new();
                locations.push_back(location);
                streams.insert(
                    stream.to_string(),
                    StreamIndex {
                        first_seq: seq,
                        locations,
                    },
                );
            }
        }
        match max_seq.get_mut(stream) {
            Some(max) => *max = seq,
            None => {
                max_seq.insert(stream.to_string(), seq);
            }
        }
        Ok(())
    })
    .map_err(|e| match e {
        ScanError::BadHeader(h) => corrupt(0, format!("segment header: {h:?}")),
        ScanError::WrongSegment { found } => corrupt(0, format!("header names segment {found}")),
        ScanError::Corrupt { offset, reason } => corrupt(offset, reason),
    })?;
    let segment = Segment {
        file: Arc::new(file),
        size: bytes.len() as u64,
        max_seq,
    };
    state.next_lsn = scan.next_lsn;
    state.durable_lsn = state.next_lsn - 1;
    let missing = |named: u64| JournalError::MissingSegment {
        file: segment_name(named),
        named_by: segment_name(id),
    };
    let cut_at = match (scan.end, successor) {
        (ScanEnd::Clean, None) => None,
        (ScanEnd::TornTail { offset }, None) => Some(offset),
        // Sealed only once its successor was durable: the successor is lost.
        (ScanEnd::Sealed { successor: named }, None) => return Err(missing(named)),
        (ScanEnd::Sealed { successor: named }, Some(next)) => match named.cmp(&next.id) {
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Less => return Err(missing(named)),
            std::cmp::Ordering::Greater => {
                return Err(corrupt(
                    segment.size,
                    format!(
                        "sealed naming segment {named}, but segment {} follows",
                        next.id
                    ),
                ));
            }
        },
        (ScanEnd::Clean, Some(_)) => None,
        (ScanEnd::TornTail { offset }, Some(next)) if next.empty_and_last => Some(offset),
        // Later segments exist only once everything here was synced.
        (ScanEnd::TornTail { offset }, Some(_)) => {
            return Err(corrupt(
                offset,
                "bad frame before a later segment".to_string(),
            ));
        }
    };
    let sealed = matches!(scan.end, ScanEnd::Sealed { .. });
    let repair = Repair {
        segment: id,
        cut_at,
        seal: match (successor, sealed) {
            (Some(next), false) => Some((state.durable_lsn, next.id)),
            _ => None,
        },
    };
    state.segments.insert(id, segment);
    Ok(repair)
}

/// What recovery changes in a segment, once every segment and checkpoint
/// checked out (an open that fails changes nothing).
struct Repair {
    segment: u64,
    /// Cut the torn tail here.
    cut_at: Option<u64>,
    /// Write the seal: the segment's last lsn and its successor.
    seal: Option<(u64, u64)>,
}

impl Repair {
    async fn apply<F: DiskFile>(&self, segment: &mut Segment<F>) -> Result<(), JournalError> {
        if let Some(offset) = self.cut_at {
            segment.file.set_len(offset).await?;
            segment.file.sync_data().await?;
            segment.size = offset;
        }
        if let Some((last_lsn, successor)) = self.seal {
            let mut seal = Vec::new();
            encode_seal(&mut seal, self.segment, last_lsn, successor);
            segment.file.write_at_and_sync(segment.size, &seal).await?;
            segment.size += seal.len() as u64;
            assert_eq!(
                segment.file.size().await?,
                segment.size,
                "a sealed segment ends with its seal"
            );
        }
        Ok(())
    }
}

/// Refuses a log that lost records a checkpoint proves were durable: every
/// checkpoint records how far the log reached when it was saved (format
/// 2), and a stream's checkpoint never passes its last entry.
fn check_checkpoints_against_log<F>(
    state: &State<F>,
    checkpoints: &BTreeMap<String, CheckpointFile>,
) -> Result<(), JournalError> {
    let log_end_lsn = state.next_lsn - 1;
    for (stream, file) in checkpoints {
        let lost = |checkpoint_lsn: u64| JournalError::LostTail {
            checkpoint: checkpoint_name(stream),
            checkpoint_lsn,
            log_end_lsn,
        };
        if let Some(lsn) = file.log_lsn
            && lsn > log_end_lsn
        {
            return Err(lost(lsn));
        }
        if let Some(index) = state.streams.get(stream)
            && index.last_seq() < file.checkpoint.seq
        {
            return Err(lost(file.log_lsn.unwrap_or(0)));
        }
    }
    Ok(())
}

/// Writes the journal's marker: from now on, a directory with the marker
/// and no segment has lost its log.
/// Called only when open's listing had no marker; a marker created since
/// means another opener is at work on the directory, and its
/// `AlreadyExists` is the error.
async fn write_marker<D: Disk>(disk: &D, journal_id: u64) -> Result<(), JournalError> {
    let file = disk.create(MARKER_NAME).await?;
    file.write_at_and_sync(0, &encode_marker(journal_id))
        .await?;
    disk.sync_dir().await?;
    Ok(())
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
        mut visit: F,
    ) -> Result<u64, JournalError>
    where
        F: FnMut(u64, &[u8]) + Send,
    {
        validate_stream(stream)?;
        let (first_seq, wanted, files) = {
            let state = self.state();
            let checkpoint = state.checkpoints.get(stream).copied().unwrap_or(0);
            let Some(index) = state.streams.get(stream) else {
                if from_seq <= checkpoint {
                    return Err(JournalError::Truncated {
                        stream: stream.to_string(),
                        requested: from_seq,
                        first_available: checkpoint + 1,
                    });
                }
                return Ok(0);
            };
            if from_seq < index.first_seq && index.first_seq > 1 {
                return Err(JournalError::Truncated {
                    stream: stream.to_string(),
                    requested: from_seq,
                    first_available: index.first_seq,
                });
            }
            let first_seq = from_seq.max(index.first_seq);
            let skip = (first_seq - index.first_seq) as usize;
            let wanted: Vec<Location> = index.locations.iter().skip(skip).copied().collect();
            let mut files = BTreeMap::new();
            for location in &wanted {
                files
                    .entry(location.segment_id)
                    .or_insert_with(|| state.segments[&location.segment_id].file.clone());
            }
            (first_seq, wanted, files)
        };
        let mut count = 0u64;
        let mut next = 0;
        while next < wanted.len() {
            // Coalesce the stream's frames that sit close together in one
            // segment into one read: other streams' frames in between are
            // read and skipped, which costs far less than a read each.
            let start = &wanted[next];
            let file = &files[&start.segment_id];
            let mut end = next + 1;
            let mut span = u64::from(start.len);
            while end < wanted.len() {
                let l = &wanted[end];
                let near = l.segment_id == start.segment_id
                    && l.offset >= start.offset + span
                    && l.offset - (start.offset + span) <= REPLAY_GAP_BYTES_MAX;
                if !near {
                    break;
                }
                let reach = l.offset + u64::from(l.len) - start.offset;
                if reach > READ_CHUNK_BYTES as u64 {
                    break;
                }
                span = reach;
                end += 1;
            }
            let bytes = file.read_at(start.offset, span as usize).await?;
            for location in &wanted[next..end] {
                let at = ((location.offset - start.offset) as usize).min(bytes.len());
                let expected_seq = first_seq + count;
                let damaged = |reason: &str| JournalError::Corrupt {
                    segment: location.segment_id,
                    offset: location.offset,
                    reason: format!("on replay: {reason}"),
                };
                let (_, record, len) =
                    decode_frame(&bytes[at..]).map_err(|e| damaged(&format!("{e:?}")))?;
                if record.stream != stream
                    || record.seq != expected_seq
                    || len != location.len as usize
                {
                    return Err(damaged("frame differs from the one recovered"));
                }
                visit(record.seq, record.data);
                count += 1;
            }
            next = end;
        }
        Ok(count)
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
        validate_stream(stream)?;
        if state_bytes.len() > CHECKPOINT_STATE_BYTES_MAX {
            return Err(JournalError::TooLarge {
                len: state_bytes.len(),
                max: CHECKPOINT_STATE_BYTES_MAX,
            });
        }
        let _checkpoint_io = self.inner.checkpoint_io.lock().await;
        let log_lsn = {
            let state = self.state();
            let last = Self::last_seq_locked(&state, stream);
            validate_checkpoint_seq(stream, seq, last, state.checkpoints.get(stream).copied())?;
            // Entry `seq` is durable, so its lsn is at most this: a log
            // found shorter than this after a restart lost durable records.
            state.durable_lsn
        };
        let disk = &self.inner.disk;
        let name = checkpoint_name(stream);
        let tmp = format!("{name}.tmp");
        match disk.remove(&tmp).await {
            Err(e) if !e.is_not_found() => return Err(e.into()),
            _ => {}
        }
        let file = disk.create(&tmp).await?;
        file.write_at(
            0,
            &encode_checkpoint(self.inner.journal_id, stream, seq, log_lsn, state_bytes),
        )
        .await?;
        file.sync_data().await?;
        disk.rename(&tmp, &name).await?;
        disk.sync_dir().await?;
        self.state().checkpoints.insert(stream.to_string(), seq);
        self.compact().await?;
        Ok(())
    }

    async fn latest_checkpoint(&self, stream: &str) -> Result<Option<Checkpoint>, JournalError> {
        validate_stream(stream)?;
        let _checkpoint_io = self.inner.checkpoint_io.lock().await;
        let name = checkpoint_name(stream);
        let file = match self.inner.disk.open(&name).await {
            Ok(file) => file,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let bytes = read_all(&file).await?;
        decode_checkpoint(self.inner.journal_id, &bytes)
            .map(Some)
            .map_err(|e| JournalError::CorruptCheckpoint {
                file: name,
                reason: format!("{e:?}"),
            })
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
        assert!(checkpoint_name(&"x".repeat(super::super::STREAM_NAME_BYTES_MAX)).len() <= 255);
    }
}
