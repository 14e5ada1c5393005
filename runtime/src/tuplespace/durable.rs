//! A tuple space whose contents survive restarts: every write and every
//! take is journaled (the embedded file journal, or a shared backend)
//! before it is acknowledged, and opening the space replays its journal.
//!
//! - A `write` returns once the tuple is durable; a `take` returns a tuple
//!   only once its removal is durable. A crash between a take's removal
//!   and its journal entry leaves the tuple in the space (the taker never
//!   got it), so no acknowledged tuple is lost and none is taken twice.
//! - A take whose journal entry fails puts the tuple back and reports the
//!   error.
//! - Takes are journaled by value: equal tuples are interchangeable.
//! - Opening claims the space's stream, so on a shared backend an older
//!   opener of the same space can no longer write.
//! - Every `checkpoint_every` journaled changes (default 1,000), the
//!   space's journaled contents are checkpointed and the journal below is
//!   compacted, so opening replays at most that many changes. Tuples come
//!   back from a checkpoint in the order of their values, not of their
//!   writes.
//! - Leases are not offered here (their expiry would need the wall clock
//!   across restarts); [`super::SharedSpaces`] has leased takes.

use super::space::{TupleSpace, TupleSpaceConfig, TupleSpaceError};
use super::value::{Pattern, Tuple};
use crate::durability::JournalBackend;
use crate::env::Env;
use futures::lock::Mutex as AsyncMutex;
use plexspaces_storage::journal::{Journal, JournalError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// What the space's stream records.
#[derive(Serialize, Deserialize)]
enum SpaceEvent {
    Write(Tuple),
    Take(Tuple),
    Clear,
}

/// A durable space's operation failed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DurableSpaceError {
    /// The space refused it (full, tuple too large).
    Space(TupleSpaceError),
    /// The journal failed; the operation was not acknowledged (a take's
    /// tuple is back in the space).
    Journal(JournalError),
    /// Opening found a checkpoint or event it cannot decode; the space is
    /// not opened (skipping it would lose or resurrect tuples).
    Unreadable(String),
}

impl fmt::Display for DurableSpaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurableSpaceError::Space(e) => e.fmt(f),
            DurableSpaceError::Journal(e) => write!(f, "tuple space journal: {e}"),
            DurableSpaceError::Unreadable(detail) => write!(f, "tuple space journal: {detail}"),
        }
    }
}

impl std::error::Error for DurableSpaceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DurableSpaceError::Space(e) => Some(e),
            DurableSpaceError::Journal(e) => Some(e),
            DurableSpaceError::Unreadable(_) => None,
        }
    }
}

impl From<TupleSpaceError> for DurableSpaceError {
    fn from(e: TupleSpaceError) -> Self {
        DurableSpaceError::Space(e)
    }
}

impl From<JournalError> for DurableSpaceError {
    fn from(e: JournalError) -> Self {
        DurableSpaceError::Journal(e)
    }
}

/// What the journal says the space holds: each tuple and how many times.
/// Kept under the append lock, so it always matches the journal's last
/// entry, which the in-memory space (ahead by takes in flight) does not.
#[derive(Default)]
struct Journaled {
    tuples: BTreeMap<Tuple, usize>,
    since_checkpoint: u64,
}

impl Journaled {
    fn apply(&mut self, event: &SpaceEvent) {
        match event {
            SpaceEvent::Write(tuple) => *self.tuples.entry(tuple.clone()).or_default() += 1,
            SpaceEvent::Take(tuple) => {
                if let Some(n) = self.tuples.get_mut(tuple) {
                    *n -= 1;
                    if *n == 0 {
                        self.tuples.remove(tuple);
                    }
                }
            }
            SpaceEvent::Clear => self.tuples.clear(),
        }
    }

    fn all(&self) -> Vec<Tuple> {
        self.tuples
            .iter()
            .flat_map(|(t, n)| std::iter::repeat_n(t.clone(), *n))
            .collect()
    }
}

/// A tuple space on a journal. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct DurableTupleSpace {
    space: TupleSpace,
    journal: JournalBackend,
    stream: String,
    checkpoint_every: u64,
    /// Journal appends one at a time (a shared journal's writer expects
    /// the sequence numbers it hands out to follow each other), with the
    /// journaled contents they produce.
    appending: std::sync::Arc<AsyncMutex<Journaled>>,
}

impl fmt::Debug for DurableTupleSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableTupleSpace")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl DurableTupleSpace {
    /// Journaled changes between checkpoints, unless set otherwise.
    pub const CHECKPOINT_EVERY_DEFAULT: u64 = 1_000;

    /// Opens the space `name` on `journal`, rebuilding its tuples from the
    /// latest checkpoint and the changes after it.
    pub async fn open(
        name: &str,
        env: Env,
        config: TupleSpaceConfig,
        journal: JournalBackend,
    ) -> Result<Self, DurableSpaceError> {
        let stream = format!("@space {name}");
        journal.claim(&stream).await?;
        let mut journaled = Journaled::default();
        let from = match journal.latest_checkpoint(&stream).await? {
            Some(checkpoint) => {
                let tuples: Vec<Tuple> =
                    crate::codec::decode(&checkpoint.state, "tuple space checkpoint").map_err(
                        |e| DurableSpaceError::Unreadable(format!("checkpoint of {name:?}: {e}")),
                    )?;
                for tuple in tuples {
                    journaled.apply(&SpaceEvent::Write(tuple));
                }
                checkpoint.seq + 1
            }
            None => 1,
        };
        let mut unreadable = None;
        journal
            .replay_each(&stream, from, |seq, data| {
                match crate::codec::decode::<SpaceEvent>(data, "tuple space event") {
                    Ok(event) => {
                        journaled.apply(&event);
                        journaled.since_checkpoint += 1;
                    }
                    Err(e) => {
                        unreadable.get_or_insert(format!("tuple space event {seq}: {e}"));
                    }
                }
            })
            .await?;
        if let Some(detail) = unreadable {
            // A skipped event would resurrect or lose tuples: refuse.
            return Err(DurableSpaceError::Unreadable(detail));
        }
        let space = TupleSpace::new(name, env, config);
        // Restored without the bound: every write in the journal was
        // within it when it was made.
        journaled.all().into_iter().for_each(|t| space.restore(t));
        Ok(DurableTupleSpace {
            space,
            journal,
            stream,
            checkpoint_every: Self::CHECKPOINT_EVERY_DEFAULT,
            appending: std::sync::Arc::new(AsyncMutex::new(journaled)),
        })
    }

    /// Checkpoints every `every` journaled changes instead (at least 1).
    pub fn with_checkpoint_every(mut self, every: u64) -> Self {
        self.checkpoint_every = every.max(1);
        self
    }

    /// Journals `event` and applies it to the journaled contents; the
    /// caller holds `appending` (as `journaled`). Checkpoints when due.
    async fn append(
        &self,
        journaled: &mut Journaled,
        event: &SpaceEvent,
    ) -> Result<(), JournalError> {
        let bytes = crate::codec::encode_own(event);
        let env = self.space.env();
        let seq = self
            .journal
            .append_all_metered(env, &self.stream, &[&bytes])
            .await?;
        journaled.apply(event);
        journaled.since_checkpoint += 1;
        if journaled.since_checkpoint >= self.checkpoint_every {
            let state = crate::codec::encode_own(&journaled.all());
            // A failed checkpoint loses nothing (the changes are in the
            // journal); the next change tries again.
            match self
                .journal
                .save_checkpoint_metered(env, &self.stream, seq, &state)
                .await
            {
                Ok(()) => journaled.since_checkpoint = 0,
                Err(e) => tracing::warn!("tuple space checkpoint failed: {e}"),
            }
        }
        Ok(())
    }

    async fn record(&self, event: &SpaceEvent) -> Result<(), JournalError> {
        let mut journaled = self.appending.lock().await;
        self.append(&mut journaled, event).await
    }

    /// The in-memory space (for reads, counts and subscriptions).
    pub fn space(&self) -> &TupleSpace {
        &self.space
    }

    /// Writes a tuple, durably.
    pub async fn write(&self, tuple: Tuple) -> Result<(), DurableSpaceError> {
        // Checked and journaled under the append lock, so two writes never
        // both pass the bound, and a refused tuple is never journaled.
        self.space.check_size(&tuple)?;
        let mut journaled = self.appending.lock().await;
        if self.space.len() >= self.space.config().tuples_max {
            return Err(TupleSpaceError::Full {
                space: self.space.name().to_string(),
                tuples_max: self.space.config().tuples_max,
            }
            .into());
        }
        self.append(&mut journaled, &SpaceEvent::Write(tuple.clone()))
            .await?;
        // Cannot be refused: the bound was checked under the same lock and
        // takes only make room.
        self.space.restore(tuple);
        Ok(())
    }

    /// Journals the take of `tuple`; on failure, puts it back.
    async fn taken(&self, tuple: Tuple) -> Result<Tuple, DurableSpaceError> {
        match self.record(&SpaceEvent::Take(tuple.clone())).await {
            Ok(()) => Ok(tuple),
            Err(e) => {
                self.space.restore(tuple);
                Err(e.into())
            }
        }
    }

    /// Waits for a matching tuple and removes it, durably.
    pub async fn take(&self, pattern: Pattern) -> Result<Tuple, DurableSpaceError> {
        let tuple = self.space.take(pattern).await;
        self.taken(tuple).await
    }

    /// [`DurableTupleSpace::take`], giving up after `timeout` (`Ok(None)`).
    pub async fn take_with_timeout(
        &self,
        pattern: Pattern,
        timeout: Duration,
    ) -> Result<Option<Tuple>, DurableSpaceError> {
        match self.space.take_with_timeout(pattern, timeout).await {
            Some(tuple) => self.taken(tuple).await.map(Some),
            None => Ok(None),
        }
    }

    /// A matching tuple, removed durably, if there is one now.
    pub async fn take_if_exists(
        &self,
        pattern: &Pattern,
    ) -> Result<Option<Tuple>, DurableSpaceError> {
        match self.space.take_if_exists(pattern).await {
            Some(tuple) => self.taken(tuple).await.map(Some),
            None => Ok(None),
        }
    }

    /// Waits for a matching tuple and returns a copy (it stays).
    pub async fn read(&self, pattern: Pattern) -> Tuple {
        self.space.read(pattern).await
    }

    /// Every matching tuple, left in place.
    pub async fn read_all_if_exists(&self, pattern: &Pattern) -> Vec<Tuple> {
        self.space.read_all_if_exists(pattern).await
    }

    /// How many tuples match.
    pub async fn count(&self, pattern: &Pattern) -> usize {
        self.space.count(pattern).await
    }

    /// Removes every tuple, durably.
    pub async fn clear(&self) -> Result<(), DurableSpaceError> {
        let mut journaled = self.appending.lock().await;
        self.append(&mut journaled, &SpaceEvent::Clear).await?;
        self.space.clear().await;
        Ok(())
    }
}

/// The durable space's stream and checkpoint, for
/// [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(super) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    use super::encoded_sample as sample;
    v.visit("tuplespace::SpaceEvent", || {
        vec![
            SpaceEvent::Write(sample()),
            SpaceEvent::Take(sample()),
            SpaceEvent::Clear,
        ]
    });
    v.visit("tuplespace::Checkpoint", || vec![vec![sample(), sample()]]);
}
