//! One shard of the reminder table: its entries, the events that change
//! them (journaled to the shard's stream), and recovery from the stream.

use super::schedule::{Compiled, Recurrence};
use super::{ReminderInfo, ReminderTarget};
use crate::actor::TimerId;
use crate::codec::{decode, encode_own as encode};
use crate::durability::JournalBackend;
use plexspaces_storage::journal::{Journal, JournalError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A reminder's identity: its target and its name.
pub(crate) type Key = (ReminderTarget, String);

/// What the shard's stream records.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Event {
    /// A reminder registered (or replaced).
    Put {
        target: ReminderTarget,
        name: String,
        recurrence: Recurrence,
        anchor_ms: u64,
        next_due_ms: u64,
    },
    /// A reminder cancelled.
    Remove {
        target: ReminderTarget,
        name: String,
    },
    /// The firing for `due_ms` was acknowledged by its target; the next due
    /// time, or `None` if the reminder is done.
    Fired {
        target: ReminderTarget,
        name: String,
        due_ms: u64,
        next_due_ms: Option<u64>,
    },
}

/// A checkpoint: every entry, as `Put` events.
#[derive(Serialize, Deserialize)]
struct Snapshot(Vec<Event>);

pub(crate) struct Entry {
    pub(crate) recurrence: Recurrence,
    pub(crate) compiled: Compiled,
    pub(crate) anchor_ms: u64,
    pub(crate) next_due_ms: u64,
    /// The timer armed for `next_due_ms` (or a retry).
    pub(crate) timer: Option<TimerId>,
    /// A delivery of `next_due_ms` is in flight.
    pub(crate) delivering: bool,
    /// Failed deliveries of `next_due_ms` so far.
    pub(crate) attempts: u32,
}

impl Entry {
    pub(crate) fn info(&self, key: &Key) -> ReminderInfo {
        ReminderInfo {
            target: key.0.clone(),
            name: key.1.clone(),
            recurrence: self.recurrence.clone(),
            next_due: super::schedule::time_of(self.next_due_ms),
        }
    }
}

pub(crate) struct Shard {
    pub(crate) stream: String,
    pub(crate) entries: BTreeMap<Key, Entry>,
    events_since_checkpoint: u64,
}

impl Shard {
    /// Takes the shard over: claims its stream (fencing out any earlier
    /// owner) and rebuilds its entries from the checkpoint and the events.
    pub(crate) async fn recover(
        journal: &JournalBackend,
        stream: String,
    ) -> Result<Shard, JournalError> {
        journal.claim(&stream).await?;
        let mut shard = Shard {
            stream,
            entries: BTreeMap::new(),
            events_since_checkpoint: 0,
        };
        let from = match journal.latest_checkpoint(&shard.stream).await? {
            Some(checkpoint) => {
                if let Ok(Snapshot(events)) = decode(&checkpoint.state, "reminder checkpoint") {
                    for event in events {
                        shard.apply(event);
                    }
                } else {
                    tracing::error!(
                        stream = shard.stream,
                        "unreadable reminder checkpoint skipped"
                    );
                }
                checkpoint.seq + 1
            }
            None => 1,
        };
        let mut events = Vec::new();
        journal
            .replay_each(&shard.stream, from, |_, data| {
                match decode::<Event>(data, "reminder event") {
                    Ok(event) => events.push(event),
                    Err(e) => tracing::error!("unreadable reminder event skipped: {e}"),
                }
            })
            .await?;
        for event in events {
            shard.apply(event);
            shard.events_since_checkpoint += 1;
        }
        Ok(shard)
    }

    /// Applies an event to the entries (recovery and live changes alike).
    pub(crate) fn apply(&mut self, event: Event) {
        match event {
            Event::Put {
                target,
                name,
                recurrence,
                anchor_ms,
                next_due_ms,
            } => {
                let Ok(compiled) = recurrence.compile() else {
                    tracing::error!(%target, name, "stored reminder no longer compiles");
                    return;
                };
                let key = (target, name);
                // A replaced reminder's armed timer stays with the entry,
                // so re-arming cancels it rather than leaking it.
                let timer = self.entries.get(&key).and_then(|old| old.timer);
                self.entries.insert(
                    key,
                    Entry {
                        recurrence,
                        compiled,
                        anchor_ms,
                        next_due_ms,
                        timer,
                        delivering: false,
                        attempts: 0,
                    },
                );
            }
            Event::Remove { target, name } => {
                self.entries.remove(&(target, name));
            }
            Event::Fired {
                target,
                name,
                due_ms,
                next_due_ms,
            } => {
                let key = (target, name);
                match (self.entries.get_mut(&key), next_due_ms) {
                    (Some(entry), Some(next)) if entry.next_due_ms == due_ms => {
                        entry.next_due_ms = next;
                        entry.attempts = 0;
                    }
                    (Some(entry), None) if entry.next_due_ms == due_ms => {
                        let _ = entry;
                        self.entries.remove(&key);
                    }
                    _ => {} // replaced or cancelled since
                }
            }
        }
    }

    /// Journals `event` durably, then applies it; every `checkpoint_every`
    /// events, saves a checkpoint so recovery stays short.
    pub(crate) async fn record(
        &mut self,
        env: &crate::Env,
        journal: &JournalBackend,
        event: Event,
        checkpoint_every: u64,
    ) -> Result<(), JournalError> {
        journal
            .append_all_metered(env, &self.stream, &[&encode(&event)])
            .await?;
        self.apply(event);
        self.events_since_checkpoint += 1;
        if self.events_since_checkpoint >= checkpoint_every {
            let snapshot = Snapshot(
                self.entries
                    .iter()
                    .map(|((target, name), e)| Event::Put {
                        target: target.clone(),
                        name: name.clone(),
                        recurrence: e.recurrence.clone(),
                        anchor_ms: e.anchor_ms,
                        next_due_ms: e.next_due_ms,
                    })
                    .collect(),
            );
            let seq = journal.last_seq(&self.stream);
            journal
                .save_checkpoint_metered(env, &self.stream, seq, &encode(&snapshot))
                .await?;
            self.events_since_checkpoint = 0;
        }
        Ok(())
    }
}

/// A shard's stream and checkpoint, for [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(super) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    fn target() -> ReminderTarget {
        ReminderTarget::new("invoice", "inv-7")
    }
    fn put() -> Event {
        Event::Put {
            target: target(),
            name: "nightly".into(),
            recurrence: Recurrence::Cron {
                expression: "0 0 2 * * *".into(),
                time_zone: "Europe/Paris".into(),
            },
            anchor_ms: 1_700_000_000_000,
            next_due_ms: 1_700_003_600_000,
        }
    }
    v.visit("reminders::Event", || {
        vec![
            put(),
            Event::Fired {
                target: target(),
                name: "nightly".into(),
                due_ms: 1_700_003_600_000,
                next_due_ms: None,
            },
            Event::Remove {
                target: target(),
                name: "nightly".into(),
            },
        ]
    });
    v.visit("reminders::Snapshot", || vec![Snapshot(vec![put()])]);
}
