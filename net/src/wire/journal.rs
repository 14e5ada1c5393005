//! The shared-journal service's messages: a node asks a journal server to
//! claim, append to, read and checkpoint streams, with fencing.
//!
//! Fencing: `Claim` makes the caller a stream's only writer and returns a
//! new, larger epoch; every write carries the epoch it was granted and the
//! sequence number it expects to write next, and the server applies it only
//! if both are still current (a conditional append). An activation that
//! lost its claim can therefore never append again.

use serde::{Deserialize, Serialize};

/// A request to the journal server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JournalOp {
    /// Become the stream's writer: the server bumps its epoch.
    Claim {
        /// The stream.
        stream: String,
    },
    /// Append `entries` as `first_seq, first_seq + 1, ...`, if `epoch` is
    /// the stream's current epoch and `first_seq` its next sequence number.
    Append {
        /// The stream.
        stream: String,
        /// The epoch `Claim` granted.
        epoch: u64,
        /// The sequence number the first entry must get.
        first_seq: u64,
        /// The entries, in order.
        entries: Vec<Vec<u8>>,
    },
    /// Entries with `seq >= from_seq`, at most about `max_bytes` of them.
    Read {
        /// The stream.
        stream: String,
        /// The first sequence number wanted.
        from_seq: u64,
        /// A soft bound on the answer's size (at least one entry comes back).
        max_bytes: u32,
    },
    /// Save a checkpoint, if `epoch` is still current.
    SaveCheckpoint {
        /// The stream.
        stream: String,
        /// The epoch `Claim` granted.
        epoch: u64,
        /// The checkpoint covers entries `1..=seq`.
        seq: u64,
        /// The encoded state.
        state: Vec<u8>,
    },
    /// The stream's latest checkpoint.
    LatestCheckpoint {
        /// The stream.
        stream: String,
    },
}

/// The journal server's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JournalOutcome {
    /// The claim succeeded: the new epoch and the stream's last sequence
    /// number at that moment.
    Claimed {
        /// The caller's epoch from now on.
        epoch: u64,
        /// The stream's last durable sequence number.
        last_seq: u64,
    },
    /// The entries are durable; the last one's sequence number.
    Appended {
        /// The stream's last durable sequence number.
        last_seq: u64,
    },
    /// Entries read.
    Entries {
        /// `(seq, data)` in order.
        entries: Vec<(u64, Vec<u8>)>,
        /// Whether more entries follow (read again from the next seq).
        more: bool,
    },
    /// The checkpoint is durable.
    Saved,
    /// The latest checkpoint, if any: `(seq, state)`.
    Checkpoint(Option<(u64, Vec<u8>)>),
    /// Refused: another writer claimed the stream, or the expected
    /// sequence number is not the next one. Nothing was written.
    Fenced(String),
    /// The entries asked for were compacted; the first one held.
    Truncated {
        /// The first sequence number still held.
        first_available: u64,
    },
    /// The server failed the request (its journal's error text). For an
    /// append, nothing was acknowledged.
    Failed(String),
}
