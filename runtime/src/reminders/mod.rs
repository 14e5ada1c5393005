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

mod schedule;
mod shard;

pub use schedule::Recurrence;

use crate::actor::{
    Actor, ActorError, ActorId, ActorRef, ActorSystem, AskError, Context, SpawnError,
};
use crate::durability::{DurableActor, JournalBackend};
use crate::seams::{Clock, Rng, Spawn};
use crate::virtual_actor::{VirtualActors, eligible_nodes, placement};
use futures::future::BoxFuture;
use schedule::{millis, time_of};
use serde::{Deserialize, Serialize};
use shard::{Event, Key, Shard};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// The name of each node's reminder host actor.
const HOST_NAME: &str = "reminders";
/// Longest reminder name, in bytes.
pub const REMINDER_NAME_BYTES_MAX: usize = 128;

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
    /// This actor system already runs reminders.
    AlreadyStarted,
}

impl fmt::Display for ReminderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReminderError::InvalidName(why) => write!(f, "invalid reminder name: {why}"),
            ReminderError::InvalidSchedule(why) => write!(f, "invalid reminder schedule: {why}"),
            ReminderError::Unavailable(why) => write!(f, "reminders unavailable: {why}"),
            ReminderError::AlreadyStarted => f.write_str("reminders are already running"),
        }
    }
}

impl std::error::Error for ReminderError {}

/// How a node serves reminders.
#[derive(Clone, Debug)]
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
        self.deliverers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// This node's reminder service. Cheap to clone.
#[derive(Clone)]
pub struct Reminders {
    system: ActorSystem,
    common: Arc<Common>,
    host: ActorRef<ReminderHost>,
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
    if name.is_empty() || name.len() > REMINDER_NAME_BYTES_MAX || name.chars().any(char::is_control)
    {
        return Err(ReminderError::InvalidName(format!(
            "{what} {name:?}: 1 to {REMINDER_NAME_BYTES_MAX} bytes, no control characters"
        )));
    }
    Ok(())
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
        let host = ReminderHost {
            common: common.clone(),
            shards: BTreeMap::new(),
        };
        let host = match system.spawn(HOST_NAME, host) {
            Ok(host) => host,
            Err(SpawnError::NameTaken(_)) => return Err(ReminderError::AlreadyStarted),
            Err(e) => return Err(ReminderError::Unavailable(e.to_string())),
        };
        if let Some(dist) = system.distribution() {
            dist.export(&host)
                .map_err(|e| ReminderError::Unavailable(e.to_string()))?;
            let listener = host.clone();
            dist.on_view_change(Arc::new(move || {
                let _ = listener.try_tell(HostMsg::Rebalance);
            }));
        }
        Ok(Reminders {
            system: system.clone(),
            common,
            host,
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
        let msg = HostMsg::Register {
            target: target.clone(),
            name: spec.name,
            recurrence: spec.recurrence,
            first_due_ms: millis(spec.first_due),
        };
        match self.route(target, msg, timeout).await? {
            HostReply::Registered(info) => Ok(info.into()),
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
        let msg = HostMsg::Cancel {
            target: target.clone(),
            name: name.to_string(),
        };
        match self.route(target, msg, timeout).await? {
            HostReply::Cancelled(existed) => Ok(existed),
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
        let msg = HostMsg::List {
            target: target.clone(),
        };
        match self.route(target, msg, timeout).await? {
            HostReply::Listed(infos) => Ok(infos.into_iter().map(Into::into).collect()),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `msg` to the host owning `target`'s shard, retrying while
    /// ownership settles, for at most `timeout`.
    async fn route(
        &self,
        target: &ReminderTarget,
        msg: HostMsg,
        timeout: Duration,
    ) -> Result<HostReply, ReminderError> {
        let env = self.system.env().clone();
        let deadline = env.now() + timeout;
        let shard = shard_of(target, self.common.config.shards);
        let mut pause = Duration::from_millis(10);
        let mut last = String::from("no attempt finished");
        loop {
            let remaining = deadline.saturating_duration_since(env.now());
            if remaining.is_zero() {
                return Err(ReminderError::Unavailable(format!(
                    "shard {shard} of {target}: {last}"
                )));
            }
            let attempt = remaining.min(Duration::from_secs(1));
            let host = match owner_of(&self.system, shard) {
                Some(owner) if &owner == self.system.node() => Ok(self.host.clone()),
                Some(owner) => match self.system.distribution() {
                    Some(dist) => ActorId::new(HOST_NAME, owner)
                        .map_err(|e| e.to_string())
                        .and_then(|id| {
                            dist.remote_ref::<ReminderHost>(&id)
                                .map_err(|e| e.to_string())
                        }),
                    None => Err("no distribution".to_string()),
                },
                None => Err("no eligible node".to_string()),
            };
            match host {
                Ok(host) => match host.ask(msg.clone(), attempt).await {
                    Ok(HostReply::NotOwner) => last = format!("{} does not own it yet", host.id()),
                    Ok(HostReply::Refused(why)) => return Err(ReminderError::Unavailable(why)),
                    Ok(reply) => return Ok(reply),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e,
            }
            env.sleep(env.jitter(pause, 0.2).min(remaining)).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// The shards this node serves now (for tests and operators).
    pub async fn owned_shards(&self) -> Vec<u32> {
        match self.host.ask(HostMsg::Owned, Duration::from_secs(5)).await {
            Ok(HostReply::Owned(shards)) => shards,
            _ => Vec::new(),
        }
    }
}

fn unexpected(reply: HostReply) -> ReminderError {
    ReminderError::Unavailable(format!("unexpected answer {reply:?}"))
}

fn shard_of(target: &ReminderTarget, shards: u32) -> u32 {
    (placement::stable_hash(&[target.kind.as_bytes(), target.id.as_bytes()]) % u64::from(shards))
        as u32
}

fn owner_of(system: &ActorSystem, shard: u32) -> Option<crate::NodeName> {
    placement::owner(HOST_NAME, &shard.to_string(), &eligible_nodes(system)).cloned()
}

/// A reminder as it crosses the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct InfoWire {
    target: ReminderTarget,
    name: String,
    recurrence: Recurrence,
    next_due_ms: u64,
}

impl From<InfoWire> for ReminderInfo {
    fn from(w: InfoWire) -> Self {
        ReminderInfo {
            target: w.target,
            name: w.name,
            recurrence: w.recurrence,
            next_due: time_of(w.next_due_ms),
        }
    }
}

impl From<ReminderInfo> for InfoWire {
    fn from(i: ReminderInfo) -> Self {
        InfoWire {
            target: i.target,
            name: i.name,
            recurrence: i.recurrence,
            next_due_ms: millis(i.next_due),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum HostMsg {
    Register {
        target: ReminderTarget,
        name: String,
        recurrence: Recurrence,
        first_due_ms: u64,
    },
    Cancel {
        target: ReminderTarget,
        name: String,
    },
    List {
        target: ReminderTarget,
    },
    Owned,
    /// A reminder's timer: deliver the firing for `due_ms`.
    Fire {
        shard: u32,
        target: ReminderTarget,
        name: String,
        due_ms: u64,
    },
    /// A delivery finished.
    Delivered {
        shard: u32,
        target: ReminderTarget,
        name: String,
        due_ms: u64,
        outcome: Result<(), String>,
    },
    /// Re-check which shards this node owns.
    Rebalance,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum HostReply {
    Registered(InfoWire),
    Cancelled(bool),
    Listed(Vec<InfoWire>),
    Owned(Vec<u32>),
    /// This node does not (or no longer) own the shard: ask again.
    NotOwner,
    /// The request cannot succeed (the journal failed).
    Refused(String),
    Done,
}

/// One node's reminder host: the shards it owns, their timers and
/// deliveries.
struct ReminderHost {
    common: Arc<Common>,
    shards: BTreeMap<u32, Shard>,
}

type HostContext = Context<ReminderHost>;

impl ReminderHost {
    fn config(&self) -> &ReminderConfig {
        &self.common.config
    }

    fn wall_ms(ctx: &HostContext) -> u64 {
        millis(ctx.env().wall_clock())
    }

    /// Arms (or re-arms) the timer of `key` in `shard` for `at_ms`.
    fn arm(ctx: &mut HostContext, shard_no: u32, shard: &mut Shard, key: &Key, at_ms: u64) {
        let now = Self::wall_ms(ctx);
        let Some(entry) = shard.entries.get_mut(key) else {
            return;
        };
        if let Some(old) = entry.timer.take() {
            ctx.cancel_timer(old);
        }
        let delay = Duration::from_millis(at_ms.saturating_sub(now));
        let fire = HostMsg::Fire {
            shard: shard_no,
            target: key.0.clone(),
            name: key.1.clone(),
            due_ms: entry.next_due_ms,
        };
        entry.timer = ctx.send_after(delay, fire).ok();
    }

    /// The shard if this node owns it, loading it first if needed.
    async fn owned_shard(&mut self, ctx: &mut HostContext, shard_no: u32) -> Option<&mut Shard> {
        if owner_of(ctx.system(), shard_no).as_ref() != Some(ctx.system().node()) {
            return None;
        }
        if !self.shards.contains_key(&shard_no) {
            self.take_over(ctx, shard_no).await;
        }
        self.shards.get_mut(&shard_no)
    }

    async fn take_over(&mut self, ctx: &mut HostContext, shard_no: u32) {
        let stream = format!("@reminders-{shard_no}");
        match Shard::recover(&self.config().journal, stream).await {
            Ok(mut shard) => {
                let keys: Vec<(Key, u64)> = shard
                    .entries
                    .iter()
                    .map(|(k, e)| (k.clone(), e.next_due_ms))
                    .collect();
                for (key, due) in keys {
                    Self::arm(ctx, shard_no, &mut shard, &key, due);
                }
                tracing::debug!(
                    shard = shard_no,
                    reminders = shard.entries.len(),
                    "took over a reminder shard"
                );
                self.shards.insert(shard_no, shard);
            }
            Err(e) => tracing::warn!(
                shard = shard_no,
                "cannot take over a reminder shard yet: {e}"
            ),
        }
    }

    fn drop_shard(&mut self, ctx: &mut HostContext, shard_no: u32) {
        if let Some(shard) = self.shards.remove(&shard_no) {
            for entry in shard.entries.into_values() {
                if let Some(timer) = entry.timer {
                    ctx.cancel_timer(timer);
                }
            }
            tracing::debug!(shard = shard_no, "gave up a reminder shard");
        }
    }

    async fn rebalance(&mut self, ctx: &mut HostContext) {
        let me = ctx.system().node().clone();
        let nodes = eligible_nodes(ctx.system());
        for shard_no in 0..self.config().shards {
            let mine = placement::owner(HOST_NAME, &shard_no.to_string(), &nodes) == Some(&me);
            match (mine, self.shards.contains_key(&shard_no)) {
                (true, false) => self.take_over(ctx, shard_no).await,
                (false, true) => self.drop_shard(ctx, shard_no),
                _ => {}
            }
        }
    }

    /// Journals `event` in `shard_no`; a fenced shard is dropped.
    async fn record(
        &mut self,
        ctx: &mut HostContext,
        shard_no: u32,
        event: Event,
    ) -> Result<(), HostReply> {
        let every = self.config().checkpoint_every;
        let journal = self.config().journal.clone();
        let Some(shard) = self.shards.get_mut(&shard_no) else {
            return Err(HostReply::NotOwner);
        };
        match shard.record(&journal, event, every).await {
            Ok(()) => Ok(()),
            Err(plexspaces_storage::journal::JournalError::Fenced { .. }) => {
                self.drop_shard(ctx, shard_no);
                Err(HostReply::NotOwner)
            }
            Err(e) => {
                // Fail-stop for this shard: reload it from what is durable.
                self.drop_shard(ctx, shard_no);
                Err(HostReply::Refused(format!("reminder journal: {e}")))
            }
        }
    }

    async fn register(
        &mut self,
        ctx: &mut HostContext,
        target: ReminderTarget,
        name: String,
        recurrence: Recurrence,
        first_due_ms: u64,
    ) -> HostReply {
        let shard_no = shard_of(&target, self.config().shards);
        if self.owned_shard(ctx, shard_no).await.is_none() {
            return HostReply::NotOwner;
        }
        let compiled = match recurrence.compile() {
            Ok(c) => c,
            Err(e) => return HostReply::Refused(e),
        };
        let now = Self::wall_ms(ctx);
        let next = match compiled.due_at_or_after(first_due_ms, now) {
            Some(next) => next,
            None if matches!(recurrence, Recurrence::Once) => now,
            None => return HostReply::Refused("the schedule is never due".into()),
        };
        let key = (target.clone(), name.clone());
        let event = Event::Put {
            target,
            name,
            recurrence,
            anchor_ms: first_due_ms,
            next_due_ms: next,
        };
        if let Err(reply) = self.record(ctx, shard_no, event).await {
            return reply;
        }
        let shard = self.shards.get_mut(&shard_no).expect("recorded above");
        Self::arm(ctx, shard_no, shard, &key, next);
        HostReply::Registered(shard.entries[&key].info(&key).into())
    }

    async fn cancel(
        &mut self,
        ctx: &mut HostContext,
        target: ReminderTarget,
        name: String,
    ) -> HostReply {
        let shard_no = shard_of(&target, self.config().shards);
        let Some(shard) = self.owned_shard(ctx, shard_no).await else {
            return HostReply::NotOwner;
        };
        let key = (target.clone(), name.clone());
        let Some(timer) = shard.entries.get(&key).map(|e| e.timer) else {
            return HostReply::Cancelled(false);
        };
        if let Err(reply) = self
            .record(ctx, shard_no, Event::Remove { target, name })
            .await
        {
            return reply;
        }
        if let Some(timer) = timer {
            ctx.cancel_timer(timer);
        }
        HostReply::Cancelled(true)
    }

    async fn fire(&mut self, ctx: &mut HostContext, shard_no: u32, key: Key, due_ms: u64) {
        let now = Self::wall_ms(ctx);
        let Some(shard) = self.shards.get_mut(&shard_no) else {
            return;
        };
        let Some(entry) = shard.entries.get_mut(&key) else {
            return;
        };
        if entry.next_due_ms != due_ms || entry.delivering {
            return; // replaced, or a delivery of it is already out
        }
        entry.timer = None;
        if now < due_ms {
            // The wall clock went back since the timer was set.
            Self::arm(ctx, shard_no, shard, &key, due_ms);
            return;
        }
        let Some(deliver) = self.common.deliverers().get(&key.0.kind).cloned() else {
            tracing::warn!(target = %key.0, "no delivery registered for this kind; will retry");
            let entry = shard.entries.get_mut(&key).expect("checked above");
            entry.attempts += 1;
            let retry = Self::retry_delay(&self.common.config, ctx, entry.attempts);
            Self::arm(ctx, shard_no, shard, &key, now + retry);
            return;
        };
        let entry = shard.entries.get_mut(&key).expect("checked above");
        entry.delivering = true;
        let firing = Firing {
            firing_id: format!("{}/{}@{due_ms}", key.0, key.1),
            target: key.0.clone(),
            name: key.1.clone(),
            due: time_of(due_ms),
        };
        let myself = ctx.myself().clone();
        ctx.env().spawn_task(Box::pin(async move {
            let outcome = deliver(firing).await;
            let _ = myself
                .tell(HostMsg::Delivered {
                    shard: shard_no,
                    target: key.0,
                    name: key.1,
                    due_ms,
                    outcome,
                })
                .await;
        }));
    }

    fn retry_delay(config: &ReminderConfig, ctx: &HostContext, attempts: u32) -> u64 {
        let backoff = config
            .retry_min
            .saturating_mul(1 << attempts.saturating_sub(1).min(20))
            .min(config.retry_max);
        ctx.env().jitter(backoff, 0.2).as_millis() as u64
    }

    async fn delivered(
        &mut self,
        ctx: &mut HostContext,
        shard_no: u32,
        key: Key,
        due_ms: u64,
        outcome: Result<(), String>,
    ) {
        let now = Self::wall_ms(ctx);
        let Some(shard) = self.shards.get_mut(&shard_no) else {
            return;
        };
        let Some(entry) = shard.entries.get_mut(&key) else {
            return; // cancelled meanwhile
        };
        if entry.next_due_ms != due_ms {
            return; // replaced meanwhile
        }
        entry.delivering = false;
        if let Err(why) = outcome {
            entry.attempts += 1;
            tracing::debug!(target = %key.0, name = key.1, attempts = entry.attempts, "reminder delivery failed: {why}");
            let retry = Self::retry_delay(&self.common.config, ctx, entry.attempts);
            let shard = self.shards.get_mut(&shard_no).expect("present");
            Self::arm(ctx, shard_no, shard, &key, now + retry);
            return;
        }
        let next = entry.compiled.next_after(entry.anchor_ms, due_ms, now);
        let event = Event::Fired {
            target: key.0.clone(),
            name: key.1.clone(),
            due_ms,
            next_due_ms: next,
        };
        if self.record(ctx, shard_no, event).await.is_err() {
            return;
        }
        if let Some(next) = next {
            let shard = self.shards.get_mut(&shard_no).expect("recorded above");
            Self::arm(ctx, shard_no, shard, &key, next);
        }
    }
}

impl Actor for ReminderHost {
    type Msg = HostMsg;
    type Reply = HostReply;

    async fn pre_start(&mut self, ctx: &mut HostContext) -> Result<(), ActorError> {
        // One timer per reminder: the default bound is for ordinary actors.
        ctx.set_max_timers(usize::MAX);
        ctx.send_interval(self.config().rebalance_every, HostMsg::Rebalance)
            .map_err(|e| ActorError::new(e.to_string()))?;
        self.rebalance(ctx).await;
        Ok(())
    }

    async fn handle(
        &mut self,
        ctx: &mut HostContext,
        msg: HostMsg,
    ) -> Result<HostReply, ActorError> {
        Ok(match msg {
            HostMsg::Register {
                target,
                name,
                recurrence,
                first_due_ms,
            } => {
                self.register(ctx, target, name, recurrence, first_due_ms)
                    .await
            }
            HostMsg::Cancel { target, name } => self.cancel(ctx, target, name).await,
            HostMsg::List { target } => {
                let shard_no = shard_of(&target, self.config().shards);
                match self.owned_shard(ctx, shard_no).await {
                    None => HostReply::NotOwner,
                    Some(shard) => HostReply::Listed(
                        shard
                            .entries
                            .iter()
                            .filter(|((t, _), _)| *t == target)
                            .map(|(k, e)| e.info(k).into())
                            .collect(),
                    ),
                }
            }
            HostMsg::Owned => HostReply::Owned(self.shards.keys().copied().collect()),
            HostMsg::Fire {
                shard,
                target,
                name,
                due_ms,
            } => {
                self.fire(ctx, shard, (target, name), due_ms).await;
                HostReply::Done
            }
            HostMsg::Delivered {
                shard,
                target,
                name,
                due_ms,
                outcome,
            } => {
                self.delivered(ctx, shard, (target, name), due_ms, outcome)
                    .await;
                HostReply::Done
            }
            HostMsg::Rebalance => {
                self.rebalance(ctx).await;
                HostReply::Done
            }
        })
    }
}
