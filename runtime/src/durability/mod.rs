//! Durable actors (the design's DurabilityFacet, Restate-inspired): an
//! actor whose every accepted message, side effect and reply is journaled,
//! so after a crash it rebuilds exactly the state it had, never loses an
//! acknowledged message and never applies one twice.
//!
//! - **Journaling**: a message's entry reaches the journal with its first
//!   side effect or, at the latest, with its reply; the reply to an `ask`
//!   is sent only after the entries that produced it are durable.
//! - **Side effects**: [`DurableContext::run`] executes a closure once and
//!   journals its result; on replay the journaled result is returned and the
//!   closure does not run. Time and randomness come through it too
//!   ([`DurableContext::now`], [`DurableContext::random_u64`]). A crash
//!   after a side effect ran but before its result was journaled runs it
//!   again on recovery: effects are at-least-once, their *results* are used
//!   exactly once.
//! - **Exactly-once processing**: every request carries an idempotency key;
//!   a key already processed (within the dedupe window) gets its original
//!   reply back without being handled again.
//! - **Checkpoints** every `checkpoint_interval` messages: the actor's state
//!   and the dedupe table; recovery loads the latest and replays only what
//!   follows; the journal drops segments no checkpoint needs.
//! - **Recovery** runs in `pre_start`, so on a supervisor restart, a node
//!   restart or an activation alike, before any new message.
//! - **Time travel**: [`state_at`] rebuilds the state as of any sequence
//!   number from the journal.
//!
//! Handlers must be deterministic apart from what goes through the context:
//! replay re-runs them, and a handler that asks for a different side effect
//! than the journal holds fails recovery loudly ([`ReplayDiverged`]).

mod actor;
mod backend;
mod context;
mod entry;
mod error;
pub mod lost_claims;
pub(crate) mod ops;
pub mod shared;

pub use actor::{Durable, DurableActor, RecoveryReport, Request, RequestKind, state_at};
pub use backend::JournalBackend;
pub use context::DurableContext;
pub use entry::{EntryDescription, describe_entry};
pub use error::{DurabilityError, ReplayDiverged};

/// This module's encoded types, for [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    entry::encoded_types(v);
    actor::encoded_types(v);
}

use std::sync::Arc;

/// Longest stream a durable actor journals under: a journal stream name
/// ([`STREAM_NAME_BYTES_MAX`](plexspaces_storage::journal::STREAM_NAME_BYTES_MAX))
/// less the journal server's prefix for the stream holding its epochs,
/// so every backend can hold it and its fence.
pub const STREAM_BYTES_MAX: usize =
    plexspaces_storage::journal::STREAM_NAME_BYTES_MAX - shared::FENCE_PREFIX.len();

/// The journal stream a durable actor named `name` (its id, or a virtual
/// actor's `kind:id`) journals under: `name` itself when it fits
/// ([`STREAM_BYTES_MAX`] bytes), else a readable prefix of it, `@@` and the SHA-256 of the whole
/// name (128 bits, hex). No name that fits contains `@@` (an actor id has
/// one `@`, a virtual actor's name none), so a hashed stream never equals
/// a name that fits, and two long names share a stream only if their
/// hashes collide. Names that fit keep their stream, so journals written
/// before long names were allowed are found as they were.
pub fn stream_for(name: &str) -> String {
    use sha2::{Digest, Sha256};
    if name.len() <= STREAM_BYTES_MAX {
        return name.to_string();
    }
    const HASH_HEX: usize = 32;
    let mut prefix_len = STREAM_BYTES_MAX - HASH_HEX - 2;
    while !name.is_char_boundary(prefix_len) {
        prefix_len -= 1;
    }
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest[..HASH_HEX / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let stream = format!("{}@@{hex}", &name[..prefix_len]);
    debug_assert!(stream.len() <= STREAM_BYTES_MAX);
    stream
}

/// A hook called with each recovery's report.
pub type RecoveryHook = Arc<dyn Fn(&RecoveryReport) + Send + Sync>;

/// How a durable actor journals and recovers.
#[derive(Clone)]
#[non_exhaustive]
pub struct DurabilityConfig {
    /// Messages between checkpoints (the design's default: 1000).
    pub checkpoint_interval: u64,
    /// Whether recovery replays the entries after the latest checkpoint
    /// (true, the default). False starts from the checkpoint alone: faster,
    /// but the state misses what came after it.
    pub replay_on_activation: bool,
    /// Whether side effect results are journaled (true, the default). False
    /// re-runs every side effect on replay.
    pub cache_side_effects: bool,
    /// How many recent idempotency keys are remembered for deduplication.
    pub dedupe_window: usize,
    /// How old the last proof that this activation still owns its stream
    /// may be when it answers a query (default 1 s). On a shared journal an
    /// activation another node superseded would otherwise answer from its
    /// stale state forever: queries write nothing, so fencing never stops
    /// them. Past this age, the next query checks the claim first
    /// ([`Journal::check_claim`](plexspaces_storage::journal::Journal::check_claim));
    /// a superseded activation fails and the caller's retry reaches the
    /// current one. Every journal write renews the proof.
    pub query_claim_check: std::time::Duration,
    /// A deliberately broken variant, for the simulator's tests: always
    /// present (so enabling the feature anywhere in a build breaks no
    /// struct literal), acted on only with the `planted-bugs` feature.
    #[doc(hidden)]
    pub planted_bug: Option<crate::PlantedBug>,
    /// Called after each recovery, with what it did.
    pub on_recovered: Option<RecoveryHook>,
    /// Whether an activation that stops cleanly (normal exit or shutdown,
    /// not a failure) saves a checkpoint of what it applied since its last
    /// one (default false), so its next activation, on this node or the
    /// one it migrates to, replays nothing. On a shared journal the save is
    /// fenced like any write: an activation another node has superseded
    /// saves nothing. Virtual actor kinds with mobility turn it on.
    pub checkpoint_on_stop: bool,
}

impl Default for DurabilityConfig {
    fn default() -> Self {
        DurabilityConfig {
            checkpoint_interval: 1000,
            replay_on_activation: true,
            cache_side_effects: true,
            dedupe_window: 10_000,
            query_claim_check: std::time::Duration::from_secs(1),
            planted_bug: None,
            on_recovered: None,
            checkpoint_on_stop: false,
        }
    }
}

impl std::fmt::Debug for DurabilityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurabilityConfig")
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("replay_on_activation", &self.replay_on_activation)
            .field("cache_side_effects", &self.cache_side_effects)
            .field("dedupe_window", &self.dedupe_window)
            .field("query_claim_check", &self.query_claim_check)
            .field("checkpoint_on_stop", &self.checkpoint_on_stop)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::{STREAM_BYTES_MAX, stream_for};

    #[test]
    fn names_that_fit_are_their_own_stream() {
        for name in ["a", "account@node1", &"n".repeat(STREAM_BYTES_MAX)] {
            assert_eq!(stream_for(name), name);
        }
    }

    #[test]
    fn long_names_hash_into_distinct_streams_that_fit() {
        let prefix = "customer/eu-west/".repeat(12);
        let streams: Vec<String> = (0..50)
            .map(|i| stream_for(&format!("{prefix}{i}")))
            .collect();
        for (i, stream) in streams.iter().enumerate() {
            assert!(stream.len() <= STREAM_BYTES_MAX, "{stream}");
            assert!(stream.contains("@@"), "{stream}");
            assert!(stream.starts_with("customer/eu-west/"), "{stream}");
            assert_eq!(stream, &stream_for(&format!("{prefix}{i}")), "stable");
        }
        let mut unique = streams.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), streams.len(), "two long names share a stream");
        // One byte over the limit is hashed too.
        let over = "n".repeat(STREAM_BYTES_MAX + 1);
        assert_ne!(stream_for(&over), over);
    }

    #[test]
    fn the_readable_prefix_is_cut_at_a_character_boundary() {
        let name = "é".repeat(100); // 200 bytes of two-byte characters
        let stream = stream_for(&name);
        assert!(stream.len() <= STREAM_BYTES_MAX);
        assert!(stream.starts_with("éé"));
    }
}
