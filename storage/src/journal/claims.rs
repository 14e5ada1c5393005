//! The claims a shared-journal client holds: per stream, the epoch its
//! claim was granted and the last sequence number it knows, so every write
//! can say which epoch it writes under and which number it expects next.

use super::JournalError;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// One stream's claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The epoch the claim was granted.
    pub epoch: u64,
    /// The stream's last durable sequence number, as of the claim and this
    /// writer's own appends.
    pub last_seq: u64,
}

/// The claims of one journal client, by stream.
#[derive(Debug, Default)]
pub struct Claims(Mutex<BTreeMap<String, Claim>>);

impl Claims {
    fn map(&self) -> MutexGuard<'_, BTreeMap<String, Claim>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a newly granted claim of `stream`.
    pub fn granted(&self, stream: &str, claim: Claim) {
        self.map().insert(stream.to_string(), claim);
    }

    /// The claim on `stream`, or [`JournalError::Fenced`] if there is none
    /// (writing without a claim is refused).
    pub fn of(&self, stream: &str) -> Result<Claim, JournalError> {
        self.map()
            .get(stream)
            .copied()
            .ok_or_else(|| JournalError::Fenced {
                stream: stream.to_string(),
                detail: "this node has not claimed the stream".into(),
            })
    }

    /// Records that appends under `epoch` reached `last_seq` (ignored if
    /// the stream was claimed again since).
    pub fn appended(&self, stream: &str, epoch: u64, last_seq: u64) {
        if let Some(claim) = self.map().get_mut(stream).filter(|c| c.epoch == epoch) {
            claim.last_seq = last_seq;
        }
    }

    /// The last sequence number known for `stream` (0 if unclaimed).
    pub fn last_seq(&self, stream: &str) -> u64 {
        self.map().get(stream).map_or(0, |c| c.last_seq)
    }
}
