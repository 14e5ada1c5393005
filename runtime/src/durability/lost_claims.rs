//! The durable actors of this node that lost their journal stream to a
//! newer claim (another activation, on another node, fenced them out), and
//! when. Readiness reads it: a node that still means to serve an id whose
//! claim it lost lately is not ready (see `VirtualActors::register`'s
//! `claims:<kind>` check). Claiming the id back does not clear the loss:
//! across a partition both sides claim in turns, and each should read as
//! not ready until the cluster agrees on placement again (a view change
//! forgets the kind's losses) or [`CLAIM_LOSS_HOLD`] passes without a
//! new loss. (Claimed back, an id serves no stale state: its fenced
//! activation stopped, and the new one recovered from the journal.)

use crate::actor::ActorSystem;
use crate::seams::Instant;
use plexspaces_storage::sync::LockExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How long a lost claim keeps its node unready without a new loss or a
/// view change: across a partition losses keep coming (both sides claim
/// in turns) and the node stays unready; a loss from two views converging
/// a moment apart passes.
pub const CLAIM_LOSS_HOLD: std::time::Duration = std::time::Duration::from_secs(5);

/// Most losses remembered; past it the oldest is forgotten (a node that
/// lost this many claims is unready for its newer ones all the same).
pub const LOST_CLAIMS_MAX: usize = 4096;

/// Actor names whose claim this node lost, with when.
#[derive(Debug, Default)]
pub struct LostClaims {
    lost: Mutex<BTreeMap<String, Instant>>,
}

impl LostClaims {
    /// The node's record (one per actor system).
    pub fn of(system: &ActorSystem) -> Arc<LostClaims> {
        system.service(LostClaims::default)
    }

    /// The activation `actor` was fenced out at `at`.
    pub(crate) fn lost(&self, actor: &str, at: Instant) {
        let mut lost = self.lost.locked();
        if !lost.contains_key(actor) && lost.len() >= LOST_CLAIMS_MAX {
            let oldest = lost
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                lost.remove(&oldest);
            }
        }
        lost.insert(actor.to_string(), at);
        debug_assert!(lost.len() <= LOST_CLAIMS_MAX, "the record is bounded");
    }

    /// Forgets `actor` (its id belongs to another node now).
    pub(crate) fn forget(&self, actor: &str) {
        self.lost.locked().remove(actor);
    }

    /// Forgets every loss of a name starting with `prefix` (the cluster's
    /// view changed: placement is agreed afresh, and whoever owns an id
    /// now claims it on its next call).
    pub(crate) fn forget_prefix(&self, prefix: &str) {
        self.lost
            .locked()
            .retain(|name, _| !name.starts_with(prefix));
    }

    /// Forgets losses older than `hold` at `now`.
    pub(crate) fn forget_before(&self, now: Instant, hold: std::time::Duration) {
        self.lost
            .locked()
            .retain(|_, at| now.saturating_duration_since(*at) < hold);
    }

    /// The names lost whose name starts with `prefix`, oldest loss first.
    pub fn lost_with_prefix(&self, prefix: &str) -> Vec<(String, Instant)> {
        let mut found: Vec<(String, Instant)> = self
            .lost
            .locked()
            .range(prefix.to_string()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(name, at)| (name.clone(), *at))
            .collect();
        found.sort_by_key(|(_, at)| *at);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn losses_are_kept_until_forgotten_and_bounded() {
        let claims = LostClaims::default();
        let at = |ms| Instant::from_duration(Duration::from_millis(ms));
        claims.lost("Acct:b", at(2));
        claims.lost("Acct:a", at(1));
        claims.lost("Other:a", at(3));
        let names = |v: Vec<(String, Instant)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(
            names(claims.lost_with_prefix("Acct:")),
            ["Acct:a", "Acct:b"]
        );
        claims.forget_before(at(1_500), Duration::from_millis(1_499));
        assert_eq!(names(claims.lost_with_prefix("Acct:")), ["Acct:b"]);
        claims.forget("Acct:b");
        assert!(claims.lost_with_prefix("Acct:").is_empty());
        claims.lost("Acct:c", at(4));
        claims.forget_prefix("Acct:");
        assert!(claims.lost_with_prefix("Acct:").is_empty());
        assert_eq!(claims.lost_with_prefix("Other:").len(), 1);
        for i in 0..LOST_CLAIMS_MAX as u64 + 10 {
            claims.lost(&format!("Many:{i:05}"), at(10 + i));
        }
        // The oldest went first: Other:a, then the first ten of these.
        assert!(claims.lost_with_prefix("Other:").is_empty());
        let kept = claims.lost_with_prefix("Many:");
        assert_eq!(kept.len(), LOST_CLAIMS_MAX);
        assert_eq!(kept[0].0, "Many:00010");
    }
}
