//! Persistent reminders (the design's ReminderFacet, Orleans-inspired):
//! named schedules that belong to virtual actors and outlive them. A due
//! reminder is delivered to its actor as an ordinary message (activating
//! it if it is not running), with an idempotency key that names the firing.
//!
//! - **Recurrence**: once, a fixed period from an anchor time, or a cron
//!   expression in an IANA time zone ([`Recurrence`]). Due times are wall
//!   clock (the `Clock` seam's `wall_clock`), waited for on the node's
//!   timer service.
//! - **Storage**: the reminder table is split into shards, each a journal
//!   stream (`@reminders-N`) on the configured backend: the embedded file
//!   journal for one node, a shared backend (journal server, PostgreSQL)
//!   for a cluster. Registrations, cancellations and acknowledged firings
//!   are journaled before they are answered or forgotten; checkpoints keep
//!   recovery short.
//! - **Ownership**: each shard is served by the node placement chooses for
//!   it (rendezvous hashing over the live members, as virtual actors). The
//!   owner claims the shard's stream before loading it, which fences out
//!   any previous owner's writes; a node that loses a shard drops it.
//! - **Delivery and exactly-once**: at a due time the owner calls the
//!   target through [`Reminders::deliver_to`]'s conversion, under the
//!   idempotency key [`Firing::firing_id`] (`kind:id/name@due-ms`), and
//!   records the firing only once the target acknowledged it; a failed
//!   delivery is retried with backoff. In a healthy cluster each due time
//!   fires once. A firing may be *delivered* again when ownership moves
//!   between the acknowledgement and its record (a crash, a partition in
//!   which both sides own the shard): it carries the same firing id, which
//!   a durable virtual actor deduplicates, so it is *applied* once.
//! - **Lateness**: a due time missed while no node could fire it (the
//!   owner down, the node paused) fires once when a node can, and the
//!   reminder continues from its next due time after now: missed times are
//!   skipped, never replayed in a burst.

mod host;
mod schedule;
mod shard;

pub use schedule::Recurrence;

/// This module's encoded types, for [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    v.visit("reminders::ReminderTarget", || {
        vec![ReminderTarget::new("invoice", "inv-7")]
    });
    v.visit("reminders::Recurrence", || {
        vec![
            Recurrence::Once,
            Recurrence::Every(Duration::from_millis(1_500)),
            Recurrence::Cron {
                expression: "0 30 9 * * Mon-Fri".into(),
                time_zone: "America/New_York".into(),
            },
        ]
    });
    shard::encoded_types(v);
    host::encoded_types(v);
}

use crate::actor::{ActorId, ActorSystem, AskError, SpawnError};
use crate::durability::{DurableActor, JournalBackend};
use crate::retry::{Backoff, RetryUntil};
use crate::virtual_actor::{VirtualActors, eligible_nodes, placement};
use futures::future::BoxFuture;
use host::{Coordinator, CoordinatorMsg, ShardActor, ShardMsg, ShardReply, shard_actor_name};
use plexspaces_storage::sync::LockExt;
use schedule::millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// The name of each node's reminder coordinator (and the placement key of
/// the shards).
const HOST_NAME: &str = "reminders";
/// Longest reminder name, in bytes.
pub const REMINDER_NAME_BYTES_MAX: usize = crate::names::NAME_BYTES_MAX;

/// The virtual actor a reminder belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReminderTarget {
    /// Its kind (as registered with [`VirtualActors::register`]).
    pub kind: String,
    /// Its id.
    pub id: String,
}

impl ReminderTarget {
    /// The virtual actor `kind`/`id`.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        ReminderTarget {
            kind: kind.into(),
            id: id.into(),
        }
    }
}

impl fmt::Display for ReminderTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

/// A reminder to register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReminderSpec {
    /// Its name, unique per target (registering the name again replaces
    /// the reminder).
    pub name: String,
    /// Its first due time (the anchor of a fixed period; the earliest time
    /// a cron expression is matched from). In the past, the first due time
    /// is the next one from now (a one-shot in the past fires at once).
    pub first_due: SystemTime,
    /// How it recurs.
    pub recurrence: Recurrence,
}

/// A registered reminder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReminderInfo {
    /// Whose it is.
    pub target: ReminderTarget,
    /// Its name.
    pub name: String,
    /// How it recurs.
    pub recurrence: Recurrence,
    /// When it is next due.
    pub next_due: SystemTime,
}

/// One due time of one reminder, as delivered to its target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firing {
    /// Whose reminder it is.
    pub target: ReminderTarget,
    /// The reminder's name.
    pub name: String,
    /// The due time this firing is for.
    pub due: SystemTime,
    /// `kind:id/name@due-ms`: the same for every delivery of this due time,
    /// and used as the call's idempotency key.
    pub firing_id: String,
}

/// A reminder operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReminderError {
    /// A target or reminder name is empty, too long or holds control
    /// characters.
    InvalidName(String),
    /// The recurrence does not parse (cron syntax, time zone, zero period)
    /// or is never due.
    InvalidSchedule(String),
    /// No node could serve the reminder's shard within the timeout, or its
    /// journal failed.
    Unavailable(String),
    /// A shard's host answered with a reply this version does not expect
    /// (a bug, or a node running another version): not retried.
    Protocol(String),
    /// This actor system already runs reminders.
    AlreadyStarted,
    /// The reminder's shard holds
    /// [`ReminderConfig::reminders_per_shard_max`] reminders: cancel some,
    /// or raise the bound (with more shards, it is spread further).
    TooMany {
        /// The shard.
        shard: u32,
        /// Its bound.
        max: usize,
    },
}

impl fmt::Display for ReminderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReminderError::InvalidName(why) => write!(f, "invalid reminder name: {why}"),
            ReminderError::InvalidSchedule(why) => write!(f, "invalid reminder schedule: {why}"),
            ReminderError::Unavailable(why) => write!(f, "reminders unavailable: {why}"),
            ReminderError::Protocol(why) => write!(f, "reminder protocol error: {why}"),
            ReminderError::AlreadyStarted => f.write_str("reminders are already running"),
            ReminderError::TooMany { shard, max } => {
                write!(
                    f,
                    "reminder shard {shard} holds its maximum of {max} reminders"
                )
            }
        }
    }
}

impl std::error::Error for ReminderError {}

/// How a node serves reminders.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReminderConfig {
    /// Where the reminder table lives: the embedded file journal for one
    /// node, a shared backend for a cluster.
    pub journal: JournalBackend,
    /// Shards of the table (default 16); must be the same on every node.
    pub shards: u32,
    /// The longest a delivery to a target may take (default 5 s).
    pub delivery_timeout: Duration,
    /// First retry delay of a failed delivery (default 100 ms), doubling up
    /// to `retry_max` (default 60 s), with jitter.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// How often a node re-checks which shards it owns, besides on every
    /// membership change (default 1 s).
    pub rebalance_every: Duration,
    /// Journal events per shard between checkpoints (default 1000).
    pub checkpoint_every: u64,
    /// Most reminders one shard holds (default 100,000, so 1.6 million
    /// with the default 16 shards); a new one past it is refused with
    /// [`ReminderError::TooMany`]. Each costs a timer and its table entry.
    pub reminders_per_shard_max: usize,
}

impl ReminderConfig {
    /// The defaults, with the table on `journal`.
    pub fn new(journal: JournalBackend) -> Self {
        ReminderConfig {
            journal,
            shards: 16,
            delivery_timeout: Duration::from_secs(5),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(60),
            rebalance_every: Duration::from_secs(1),
            checkpoint_every: 1000,
            reminders_per_shard_max: 100_000,
        }
    }
}

/// Calls a target with a firing; `Ok` once it acknowledged.
type Deliverer = Arc<dyn Fn(Firing) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

struct Common {
    config: ReminderConfig,
    deliverers: Mutex<BTreeMap<String, Deliverer>>,
}

impl Common {
    fn deliverers(&self) -> MutexGuard<'_, BTreeMap<String, Deliverer>> {
        self.deliverers.locked()
    }
}

/// This node's reminder service. Cheap to clone.
#[derive(Clone)]
pub struct Reminders {
    system: ActorSystem,
    common: Arc<Common>,
}

impl fmt::Debug for Reminders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reminders")
            .field("node", self.system.node())
            .field("shards", &self.common.config.shards)
            .finish()
    }
}

fn check_name(what: &str, name: &str) -> Result<(), ReminderError> {
    crate::names::check(what, name).map_err(ReminderError::InvalidName)
}

fn check_target(target: &ReminderTarget) -> Result<(), ReminderError> {
    check_name("kind", &target.kind)?;
    check_name("id", &target.id)
}

impl Reminders {
    /// Serves reminders on `system`'s node. In a cluster, start
    /// distribution first and run this on every node, with the same
    /// shared journal and shard count.
    pub async fn start(
        system: &ActorSystem,
        config: ReminderConfig,
    ) -> Result<Self, ReminderError> {
        if config.shards == 0 || config.retry_min.is_zero() || config.retry_max < config.retry_min {
            return Err(ReminderError::InvalidSchedule(
                "need shards > 0 and 0 < retry_min <= retry_max".into(),
            ));
        }
        let common = Arc::new(Common {
            config,
            deliverers: Mutex::new(BTreeMap::new()),
        });
        let coordinator = Coordinator {
            common: common.clone(),
            shards: BTreeMap::new(),
        };
        let coordinator = match system.spawn(HOST_NAME, coordinator) {
            Ok(coordinator) => coordinator,
            Err(SpawnError::NameTaken(_)) => return Err(ReminderError::AlreadyStarted),
            Err(e) => return Err(ReminderError::Unavailable(e.to_string())),
        };
        if let Some(dist) = system.distribution() {
            let listener = coordinator.clone();
            dist.on_view_change(Arc::new(move || {
                let _ = listener.try_tell(CoordinatorMsg::Rebalance);
            }));
        }
        Ok(Reminders {
            system: system.clone(),
            common,
        })
    }

    /// Delivers due reminders of `actors`' kind as the message `to_msg`
    /// makes, through [`crate::virtual_actor::VirtualRef::call`] under the
    /// firing's id. Register it on every node that may own a shard.
    pub fn deliver_to<A: DurableActor>(
        &self,
        actors: &VirtualActors<A>,
        to_msg: impl Fn(&Firing) -> A::Msg + Send + Sync + 'static,
    ) where
        A::Msg: Clone,
    {
        let kind = actors.kind().to_string();
        let actors = actors.clone();
        let timeout = self.common.config.delivery_timeout;
        let deliver: Deliverer = Arc::new(move |firing: Firing| {
            let target = actors.get(&firing.target.id);
            let msg = to_msg(&firing);
            Box::pin(async move {
                let target = target.map_err(|e| e.to_string())?;
                match target.call(firing.firing_id.clone(), msg, timeout).await {
                    Ok(_) => Ok(()),
                    // The handler answered (with an error): acknowledged,
                    // and remembered under the firing id.
                    Err(AskError::Failed(e)) if !e.is_unavailable() => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            })
        });
        self.common.deliverers().insert(kind, deliver);
    }

    /// Registers (or replaces) reminder `spec.name` of `target`, durably.
    pub async fn register(
        &self,
        target: &ReminderTarget,
        spec: ReminderSpec,
        timeout: Duration,
    ) -> Result<ReminderInfo, ReminderError> {
        check_target(target)?;
        check_name("reminder", &spec.name)?;
        spec.recurrence
            .compile()
            .map_err(ReminderError::InvalidSchedule)?;
        let msg = ShardMsg::Register {
            target: target.clone(),
            name: spec.name,
            recurrence: spec.recurrence,
            first_due_ms: millis(spec.first_due),
        };
        match self.route(target, msg, timeout).await? {
            ShardReply::Registered(info) => Ok(info.into()),
            ShardReply::Full { shard, max } => Err(ReminderError::TooMany { shard, max }),
            other => Err(unexpected(other)),
        }
    }

    /// Cancels reminder `name` of `target`; false if there was none. A
    /// cancelled reminder never fires again (a firing already in flight
    /// may still arrive, with its firing id).
    pub async fn cancel(
        &self,
        target: &ReminderTarget,
        name: &str,
        timeout: Duration,
    ) -> Result<bool, ReminderError> {
        check_target(target)?;
        check_name("reminder", name)?;
        let msg = ShardMsg::Cancel {
            target: target.clone(),
            name: name.to_string(),
        };
        match self.route(target, msg, timeout).await? {
            ShardReply::Cancelled(existed) => Ok(existed),
            other => Err(unexpected(other)),
        }
    }

    /// The reminders of `target`, sorted by name.
    pub async fn list(
        &self,
        target: &ReminderTarget,
        timeout: Duration,
    ) -> Result<Vec<ReminderInfo>, ReminderError> {
        check_target(target)?;
        let msg = ShardMsg::List {
            target: target.clone(),
        };
        match self.route(target, msg, timeout).await? {
            ShardReply::Listed(infos) => Ok(infos.into_iter().map(Into::into).collect()),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `msg` to the actor serving `target`'s shard, retrying while
    /// ownership settles, for at most `timeout`.
    async fn route(
        &self,
        target: &ReminderTarget,
        msg: ShardMsg,
        timeout: Duration,
    ) -> Result<ShardReply, ReminderError> {
        let env = self.system.env().clone();
        let mut backoff = RetryUntil::new(
            &env,
            timeout,
            Backoff::new(Duration::from_millis(10), Duration::from_millis(500)),
        );
        let shard = shard_of(target, self.common.config.shards);
        let name = shard_actor_name(shard);
        let mut last = String::from("no attempt finished");
        loop {
            let remaining = backoff.remaining();
            if remaining.is_zero() {
                return Err(ReminderError::Unavailable(format!(
                    "shard {shard} of {target}: {last}"
                )));
            }
            let attempt = remaining.min(Duration::from_secs(1));
            let actor = match owner_of(&self.system, shard) {
                Some(owner) if &owner == self.system.node() => self
                    .system
                    .lookup::<ShardActor>(&name)
                    .ok_or_else(|| "its actor is not running here yet".to_string()),
                Some(owner) => match self.system.distribution() {
                    Some(dist) => ActorId::new(&name, owner)
                        .map_err(|e| e.to_string())
                        .and_then(|id| {
                            dist.remote_ref::<ShardActor>(&id)
                                .map_err(|e| e.to_string())
                        }),
                    None => Err("no distribution".to_string()),
                },
                None => Err("no eligible node".to_string()),
            };
            match actor {
                Ok(actor) => match actor.ask(msg.clone(), attempt).await {
                    Ok(ShardReply::NotOwner) => {
                        last = format!("{} does not own it (yet)", actor.id())
                    }
                    Ok(ShardReply::Refused(why)) => return Err(ReminderError::Unavailable(why)),
                    Ok(reply) => return Ok(reply),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e,
            }
            backoff.pause().await;
        }
    }
}

#[track_caller]
fn unexpected(reply: ShardReply) -> ReminderError {
    ReminderError::Protocol(crate::invariant::wrong_remote_reply(
        "a reminder shard operation",
        &reply,
    ))
}

fn shard_of(target: &ReminderTarget, shards: u32) -> u32 {
    (placement::stable_hash(&[target.kind.as_bytes(), target.id.as_bytes()]) % u64::from(shards))
        as u32
}

fn owner_of(system: &ActorSystem, shard: u32) -> Option<crate::NodeName> {
    placement::owner(HOST_NAME, &shard.to_string(), &eligible_nodes(system)).cloned()
}
