//! Typed journal errors: each names the stream, segment or offset involved.

use crate::disk::DiskError;
use std::fmt;
use std::sync::Arc;

/// What went wrong in a journal.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum JournalError {
    /// The disk failed. If it failed during an append's write or sync, the
    /// journal is now stopped (see [`JournalError::Stopped`]).
    Disk(Arc<DiskError>),
    /// Acknowledged data is damaged: a bad frame is followed by a frame that
    /// was written after it was durable. The journal refuses to open rather
    /// than skip or truncate it.
    Corrupt {
        /// The segment holding the damage.
        segment: u64,
        /// Byte offset of the bad frame within the segment file.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// A segment file belongs to another journal (its id differs).
    ForeignSegment {
        /// The segment's id, from its file name.
        segment: u64,
        /// This journal's id.
        expected: u64,
        /// The id the segment carries.
        found: u64,
    },
    /// A segment the journal's own files prove existed is gone: a sealed
    /// segment names it as its successor (a segment is sealed only once
    /// its successor is durable). The journal refuses to open.
    MissingSegment {
        /// The missing segment's file name.
        file: String,
        /// The segment file whose seal names it.
        named_by: String,
    },
    /// The journal's marker file exists but no segment does: the log was
    /// lost (compaction always keeps one segment). The journal refuses to
    /// open rather than start a new, empty log in its place.
    SegmentsMissing {
        /// The marker's file name.
        marker: String,
    },
    /// The log ends before what a checkpoint proves was durable when it was
    /// saved: records at the end of the log were lost (a tail segment cut
    /// or removed). The journal refuses to open.
    LostTail {
        /// The checkpoint's file name.
        checkpoint: String,
        /// The log's durable lsn when the checkpoint was saved (0 for a
        /// version 1 checkpoint, which proves it by its stream's entries).
        checkpoint_lsn: u64,
        /// Where the log found on disk ends.
        log_end_lsn: u64,
    },
    /// A checkpoint file is damaged or foreign.
    CorruptCheckpoint {
        /// The checkpoint's file name.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An earlier write or sync failed, so this journal instance stopped
    /// (fail-stop): nothing unsynced is acknowledged, and no retry pretends
    /// otherwise. Reopen the journal to recover what is durable.
    Stopped {
        /// The failure that stopped it.
        cause: Arc<DiskError>,
    },
    /// An append would queue more records than
    /// [`JournalConfig::pending_records_max`](super::JournalConfig::pending_records_max)
    /// while the disk catches up: nothing was queued. Retry later.
    Overloaded {
        /// Records queued now.
        pending: usize,
        /// The bound.
        max: usize,
    },
    /// The entries asked for were removed by compaction below a checkpoint.
    Truncated {
        /// The stream.
        stream: String,
        /// The first sequence number asked for.
        requested: u64,
        /// The first sequence number still held.
        first_available: u64,
    },
    /// A stream name is empty or longer than [`super::STREAM_NAME_BYTES_MAX`].
    InvalidStream {
        /// The offending name.
        stream: String,
    },
    /// An entry or checkpoint is larger than the configured maximum.
    TooLarge {
        /// Its size in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A checkpoint was asked for at a sequence number the stream has not
    /// reached (durably).
    CheckpointAhead {
        /// The stream.
        stream: String,
        /// The checkpoint's sequence number.
        seq: u64,
        /// The stream's last durable sequence number.
        last: u64,
    },
    /// A checkpoint older than the stream's current one: saving it could
    /// point recovery at entries compaction already removed.
    CheckpointBehind {
        /// The stream.
        stream: String,
        /// The checkpoint's sequence number.
        seq: u64,
        /// The current checkpoint's sequence number.
        current: u64,
    },
    /// A shared journal refused a write: another writer claimed the stream
    /// since this one did, or the write's expected sequence number is not
    /// the stream's next one. Nothing was written; claim and recover again.
    Fenced {
        /// The stream.
        stream: String,
        /// Why (the epochs or sequence numbers that disagree).
        detail: String,
    },
    /// A shared journal could not be reached or did not answer in time. For
    /// an append, the entries may or may not have been written; they were
    /// not acknowledged.
    Unavailable {
        /// What failed.
        reason: String,
    },
}

impl JournalError {
    /// Whether the journal instance is stopped and must be reopened.
    pub fn is_stopped(&self) -> bool {
        matches!(self, JournalError::Stopped { .. })
    }
}

impl From<DiskError> for JournalError {
    fn from(err: DiskError) -> Self {
        JournalError::Disk(Arc::new(err))
    }
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Disk(e) => write!(f, "journal disk error: {e}"),
            JournalError::Corrupt {
                segment,
                offset,
                reason,
            } => write!(
                f,
                "journal corrupt in segment {segment} at offset {offset}: {reason}"
            ),
            JournalError::ForeignSegment {
                segment,
                expected,
                found,
            } => write!(
                f,
                "segment {segment} belongs to journal {found:016x}, not {expected:016x}"
            ),
            JournalError::MissingSegment { file, named_by } => write!(
                f,
                "segment file {file} is missing: {named_by} was sealed naming it as its successor"
            ),
            JournalError::SegmentsMissing { marker } => write!(
                f,
                "no segment file found, but the journal's marker {marker} shows it had some: the log was lost"
            ),
            JournalError::LostTail {
                checkpoint,
                checkpoint_lsn,
                log_end_lsn,
            } => write!(
                f,
                "the log ends at lsn {log_end_lsn}, but checkpoint {checkpoint} was saved when lsn \
                 {checkpoint_lsn} (or its stream's entries) were durable: records at the end of the log were lost"
            ),
            JournalError::CorruptCheckpoint { file, reason } => {
                write!(f, "checkpoint {file} is damaged: {reason}")
            }
            JournalError::Stopped { cause } => {
                write!(f, "journal stopped after a failed write or sync: {cause}")
            }
            JournalError::Overloaded { pending, max } => write!(
                f,
                "journal overloaded: {pending} records wait for the disk (at most {max}); nothing was queued"
            ),
            JournalError::Truncated {
                stream,
                requested,
                first_available,
            } => write!(
                f,
                "stream {stream:?}: entries from {requested} were compacted; first held is {first_available}"
            ),
            JournalError::InvalidStream { stream } => write!(f, "invalid stream name {stream:?}"),
            JournalError::TooLarge { len, max } => {
                write!(f, "{len} bytes exceeds the limit of {max}")
            }
            JournalError::CheckpointAhead { stream, seq, last } => write!(
                f,
                "stream {stream:?}: checkpoint at {seq} is past its last durable entry {last}"
            ),
            JournalError::CheckpointBehind {
                stream,
                seq,
                current,
            } => write!(
                f,
                "stream {stream:?}: checkpoint at {seq} is older than the current one at {current}"
            ),
            JournalError::Fenced { stream, detail } => {
                write!(f, "stream {stream:?} is fenced: {detail}")
            }
            JournalError::Unavailable { reason } => {
                write!(f, "shared journal unavailable: {reason}")
            }
        }
    }
}

impl std::error::Error for JournalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JournalError::Disk(e) => Some(e.as_ref()),
            JournalError::Stopped { cause } => Some(cause.as_ref()),
            _ => None,
        }
    }
}
