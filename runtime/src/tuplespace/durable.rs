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
//! - Leases are not offered here (their expiry would need the wall clock
//!   across restarts). The journal is replayed whole on open: there are no
//!   checkpoints yet, so a long-lived space replays its whole history.

use super::space::{TupleSpace, TupleSpaceConfig, TupleSpaceError};
use super::value::{Field, Pattern, Tuple};
use crate::durability::JournalBackend;
use crate::env::Env;
use futures::lock::Mutex as AsyncMutex;
use plexspaces_storage::journal::{Journal, JournalError};
use serde::{Deserialize, Serialize};
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
pub enum DurableSpaceError {
    /// The space refused it (full, tuple too large).
    Space(TupleSpaceError),
    /// The journal failed; the operation was not acknowledged (a take's
    /// tuple is back in the space).
    Journal(JournalError),
}

impl fmt::Display for DurableSpaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurableSpaceError::Space(e) => e.fmt(f),
            DurableSpaceError::Journal(e) => write!(f, "tuple space journal: {e}"),
        }
    }
}

impl std::error::Error for DurableSpaceError {}

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

/// A pattern matching exactly `tuple`.
fn exactly(tuple: &Tuple) -> Pattern {
    Pattern(tuple.0.iter().cloned().map(Field::Exact).collect())
}

/// A tuple space on a journal. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct DurableTupleSpace {
    space: TupleSpace,
    journal: JournalBackend,
    stream: String,
    /// Journal appends one at a time: a shared journal's writer expects
    /// the sequence numbers it hands out to follow each other.
    appending: std::sync::Arc<AsyncMutex<()>>,
}

impl fmt::Debug for DurableTupleSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableTupleSpace")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl DurableTupleSpace {
    /// Opens the space `name` on `journal`, rebuilding its tuples.
    pub async fn open(
        name: &str,
        env: Env,
        config: TupleSpaceConfig,
        journal: JournalBackend,
    ) -> Result<Self, DurableSpaceError> {
        let stream = format!("@space {name}");
        journal.claim(&stream).await?;
        let space = TupleSpace::new(name, env, config);
        let mut events = Vec::new();
        journal
            .replay_each(&stream, 1, |_, data| match postcard::from_bytes(data) {
                Ok(event) => events.push(event),
                Err(e) => tracing::error!("unreadable tuple space event skipped: {e}"),
            })
            .await?;
        for event in events {
            match event {
                // Replayed without the bound: every write in the journal
                // was within it when it was made.
                SpaceEvent::Write(tuple) => space.restore(tuple),
                SpaceEvent::Take(tuple) => {
                    space.take_if_exists(&exactly(&tuple)).await;
                }
                SpaceEvent::Clear => space.clear().await,
            }
        }
        Ok(DurableTupleSpace {
            space,
            journal,
            stream,
            appending: std::sync::Arc::new(AsyncMutex::new(())),
        })
    }

    /// Journals `event`; the caller holds `appending`.
    async fn append(&self, event: &SpaceEvent) -> Result<(), JournalError> {
        let bytes = postcard::to_allocvec(event).expect("tuple space events always encode");
        self.journal.append(&self.stream, &bytes).await.map(drop)
    }

    async fn record(&self, event: &SpaceEvent) -> Result<(), JournalError> {
        let _one_at_a_time = self.appending.lock().await;
        self.append(event).await
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
        let _one_at_a_time = self.appending.lock().await;
        if self.space.len() >= self.space.config().tuples_max {
            return Err(TupleSpaceError::Full {
                space: self.space.name().to_string(),
                tuples_max: self.space.config().tuples_max,
            }
            .into());
        }
        self.append(&SpaceEvent::Write(tuple.clone())).await?;
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
        let _one_at_a_time = self.appending.lock().await;
        self.append(&SpaceEvent::Clear).await?;
        self.space.clear().await;
        Ok(())
    }
}
