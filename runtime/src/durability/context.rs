//! `DurableContext`: what a durable handler reaches, and the one door for
//! anything that must not change on replay (side effects, time, randomness).

use super::backend::JournalBackend;
use super::entry::{Entry, decode};
use super::error::{DurabilityError, ReplayDiverged};
use crate::actor::facet::{Facet, FacetChain};
use crate::actor::{ActorError, ActorId};
use crate::env::Env;
use crate::seams::{Clock, Rng};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::future::Future;
use std::time::{Duration, SystemTime};

/// A side effect's journaled outcome.
pub(crate) type Recorded = Result<Vec<u8>, String>;

pub(crate) enum Mode {
    /// Handling a new message: side effects run and are journaled.
    Live,
    /// Re-running a journaled message: side effects come from the journal.
    /// `complete` if its reply was journaled too (so the handler may not
    /// ask for more side effects than were recorded); an incomplete one
    /// (cut by a crash) goes live once the recorded effects run out.
    Replay { complete: bool },
}

/// The context of a durable handler.
pub struct DurableContext<'a> {
    pub(crate) env: &'a Env,
    pub(crate) id: &'a ActorId,
    /// The actor's facets (none when replaying for time travel).
    pub(crate) facets: Option<&'a mut FacetChain>,
    pub(crate) journal: &'a JournalBackend,
    pub(crate) stream: &'a str,
    pub(crate) cache_side_effects: bool,
    pub(crate) mode: Mode,
    /// Journaled effects of the message being replayed: (seq, name, the
    /// value, or why it could not be encoded).
    pub(crate) recorded: VecDeque<(u64, String, Recorded)>,
    /// Entries written with the next durable point (the message entry).
    pub(crate) pending: Vec<Vec<u8>>,
    /// The first divergence or journal failure, which fails the actor.
    pub(crate) failure: Option<DurabilityError>,
    /// The planted bug `ReplaySideEffects` (always false otherwise).
    pub(crate) rerun_effects_on_replay: bool,
    /// The key of the message being handled.
    pub(crate) message_key: &'a str,
    /// Side effects this message has started, replayed or live: the place
    /// of the next one, which replay reaches at the same count.
    pub(crate) effects_started: u32,
}

impl DurableContext<'_> {
    /// This actor's id.
    pub fn id(&self) -> &ActorId {
        self.id
    }

    /// Whether this is a new message rather than a replayed one.
    pub(crate) fn is_live(&self) -> bool {
        matches!(self.mode, Mode::Live)
    }

    /// The node's seams. Reading time or randomness here directly makes
    /// replay diverge; use [`DurableContext::now`] and
    /// [`DurableContext::random_u64`], or [`DurableContext::run`].
    pub fn env(&self) -> &Env {
        self.env
    }

    /// The attached facet of type `T`, if one is (as
    /// [`Context::facet`](crate::actor::Context::facet)).
    ///
    /// Replay runs handlers again, and facets are not journaled: reading
    /// a facet's configuration or a handle is safe, but a call with an
    /// effect on the world (publishing an event, calling a service,
    /// reading a clock or a counter the facet keeps) must go through
    /// [`DurableContext::run`] so that replay returns its recorded result
    /// instead of running it again. Take what the call needs from the
    /// facet first (a client, a handle), then call inside `run`:
    /// `let audit = ctx.facet::<Audit>().map(Audit::client);`
    /// `ctx.run("audit", || async move { audit.send(..).await }).await?`.
    /// During time travel no facet is attached (`None`).
    pub fn facet<T: Facet>(&self) -> Option<&T> {
        self.facets.as_deref().and_then(FacetChain::get::<T>)
    }

    /// The attached facet of type `T`, mutably (see
    /// [`DurableContext::facet`] on replay).
    pub fn facet_mut<T: Facet>(&mut self) -> Option<&mut T> {
        self.facets
            .as_deref_mut()
            .and_then(FacetChain::get_mut::<T>)
    }

    /// A key naming the next side effect `effect` of the message being
    /// handled: the same every time this message is handled or replayed
    /// (it hashes the actor, the message's key, the effect's name and its
    /// place among the message's effects), different for every other
    /// effect. Sent to a service as an idempotency key, it lets the
    /// service recognise a call made again after a crash cut it before
    /// its outcome was journaled.
    pub fn idempotency_key(&self, effect: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for part in [
            self.id.to_string().as_bytes(),
            self.message_key.as_bytes(),
            effect.as_bytes(),
            &self.effects_started.to_le_bytes(),
        ] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
        hash.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn fail(&mut self, failure: DurabilityError) -> ActorError {
        let error = ActorError::unavailable(failure.to_string());
        self.failure.get_or_insert(failure);
        error
    }

    /// Runs the side effect `effect` once and journals its result under
    /// `name`; on replay, returns the journaled result without running it.
    pub async fn run<T, F, Fut>(&mut self, name: &str, effect: F) -> Result<T, ActorError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        if let Some(failure) = &self.failure {
            return Err(ActorError::unavailable(failure.to_string()));
        }
        self.effects_started += 1;
        if self.cache_side_effects && matches!(self.mode, Mode::Replay { .. }) {
            match self.recorded.pop_front() {
                Some((_, recorded, value)) if recorded == name => {
                    if self.rerun_effects_on_replay {
                        drop(effect().await);
                    }
                    return match value {
                        Ok(value) => decode(&value, "side effect").map_err(|e| self.fail(e)),
                        Err(error) => Err(unencodable_again(error)),
                    };
                }
                Some((seq, recorded, _)) => {
                    let diverged = ReplayDiverged {
                        seq,
                        detail: format!(
                            "the journal has side effect {recorded:?}, the handler ran {name:?}"
                        ),
                    };
                    return Err(self.fail(diverged.into()));
                }
                None if matches!(self.mode, Mode::Replay { complete: true }) => {
                    let diverged = ReplayDiverged {
                        seq: 0,
                        detail: format!(
                            "the handler ran side effect {name:?}, which the journal never recorded"
                        ),
                    };
                    return Err(self.fail(diverged.into()));
                }
                None => self.mode = Mode::Live, // the rest of an interrupted message runs live
            }
        }
        let value = effect().await;
        if !self.cache_side_effects {
            return Ok(value);
        }
        // A result that cannot be encoded is journaled as such: the effect
        // ran, and replay must give the same error, not run it again.
        let (entry, outcome) = match crate::codec::encode(&value, "side effect's result") {
            Ok(encoded) => (
                Entry::Effect {
                    name: name.to_string(),
                    value: encoded,
                },
                Ok(value),
            ),
            Err(e) => (
                Entry::Unencodable {
                    name: name.to_string(),
                    error: e.to_string(),
                },
                Err(ActorError::unencodable(&e)),
            ),
        };
        self.pending.push(entry.encode());
        let entries: Vec<&[u8]> = self.pending.iter().map(Vec::as_slice).collect();
        if let Err(e) = self
            .journal
            .append_all_metered(self.env, self.stream, &entries)
            .await
        {
            return Err(self.fail(DurabilityError::Journal {
                doing: "journaling a side effect's result",
                source: e,
            }));
        }
        self.pending.clear();
        outcome
    }

    /// The wall-clock time, journaled (replay sees the same instant).
    pub async fn now(&mut self) -> Result<SystemTime, ActorError> {
        let env = self.env.clone();
        let nanos: u128 = self
            .run("plexspaces:now", || async move {
                env.wall_clock()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()
            })
            .await?;
        Ok(SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)))
    }

    /// A random number, journaled (replay sees the same number).
    pub async fn random_u64(&mut self) -> Result<u64, ActorError> {
        let env = self.env.clone();
        self.run("plexspaces:random", || async move { env.next_u64() })
            .await
    }
}

/// The error a replayed side effect whose result could not be encoded
/// gives again (journaled as [`Entry::Unencodable`], with its text).
fn unencodable_again(error: String) -> ActorError {
    ActorError::with_kind(error, crate::actor::ActorErrorKind::Unencodable)
}
