//! The claims a shared-journal client holds: per stream, the epoch its
//! claim was granted and the last sequence number it knows, so every write
//! can say which epoch it writes under and which number it expects next.

use super::JournalError;
use crate::sync::LockExt;
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
        self.0.locked()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_recorded_advanced_by_its_own_epoch_only_and_read_back() {
        let claims = Claims::default();
        assert_eq!(claims.last_seq("s"), 0);
        assert!(matches!(claims.of("s"), Err(JournalError::Fenced { .. })));
        claims.granted(
            "s",
            Claim {
                epoch: 3,
                last_seq: 10,
            },
        );
        assert_eq!(
            claims.of("s").unwrap(),
            Claim {
                epoch: 3,
                last_seq: 10
            }
        );
        assert_eq!(claims.last_seq("s"), 10);
        claims.appended("s", 3, 12);
        assert_eq!(claims.last_seq("s"), 12);
        // An append acknowledged under an older claim changes nothing.
        claims.appended("s", 2, 99);
        assert_eq!(claims.last_seq("s"), 12);
        // Nor does one for a stream never claimed.
        claims.appended("t", 3, 5);
        assert_eq!(claims.last_seq("t"), 0);
        claims.granted(
            "s",
            Claim {
                epoch: 4,
                last_seq: 20,
            },
        );
        assert_eq!(claims.of("s").unwrap().epoch, 4);
        assert_eq!(claims.last_seq("s"), 20);
    }
}
