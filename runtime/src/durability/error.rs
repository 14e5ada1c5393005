//! Why a durable actor could not recover, checkpoint, travel in time or
//! go on: typed, so callers can tell a failing journal from a handler
//! that no longer matches its journal.

use plexspaces_storage::journal::JournalError;
use std::fmt;

/// A durable actor's journal could not be used as it must be.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DurabilityError {
    /// The journal failed while the actor was `doing` something (claiming
    /// its stream, reading, appending, checkpointing).
    Journal {
        /// What the actor was doing.
        doing: &'static str,
        /// The journal's error.
        source: JournalError,
    },
    /// Another activation claimed the stream since this one last wrote or
    /// checked: this activation's state may be stale.
    Superseded(JournalError),
    /// A journaled value does not decode as the type the code expects.
    Undecodable(crate::DecodeError),
    /// The stream's entries are not in an order a durable actor writes
    /// them (damage, or a stream another program wrote).
    Malformed {
        /// The entry's sequence number.
        seq: u64,
        /// What is wrong.
        detail: String,
    },
    /// Replay found the handler doing something other than the journal
    /// recorded.
    Diverged(ReplayDiverged),
}

impl fmt::Display for DurabilityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurabilityError::Journal { doing, source } => write!(f, "{doing}: {source}"),
            DurabilityError::Superseded(e) => {
                write!(f, "this activation no longer owns its journal stream: {e}")
            }
            DurabilityError::Undecodable(e) => write!(f, "journaled {e}"),
            DurabilityError::Malformed { seq, detail } => {
                write!(f, "journal entry {seq}: {detail}")
            }
            DurabilityError::Diverged(d) => d.fmt(f),
        }
    }
}

impl std::error::Error for DurabilityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DurabilityError::Journal { source, .. } | DurabilityError::Superseded(source) => {
                Some(source)
            }
            DurabilityError::Diverged(d) => Some(d),
            DurabilityError::Undecodable(e) => Some(e),
            DurabilityError::Malformed { .. } => None,
        }
    }
}

impl From<ReplayDiverged> for DurabilityError {
    fn from(d: ReplayDiverged) -> Self {
        DurabilityError::Diverged(d)
    }
}

/// Replay found the handler doing something other than what the journal
/// recorded: the handler is not deterministic, or the code changed under a
/// journal written by the old code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayDiverged {
    /// The journal entry's sequence number (0: past the journal's end).
    pub seq: u64,
    /// What differed.
    pub detail: String,
}

impl fmt::Display for ReplayDiverged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replay diverged at journal entry {}: {}",
            self.seq, self.detail
        )
    }
}

impl std::error::Error for ReplayDiverged {}
