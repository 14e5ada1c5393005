//! The actors that serve reminders on a node: one [`ShardActor`] per shard
//! this node owns (so shards journal concurrently and share group commits),
//! and a [`Coordinator`] that starts and stops them as ownership moves.

use super::schedule::{millis, time_of};
use super::shard::{Event, Key, Shard};
use super::{Common, Firing, Recurrence, ReminderConfig, ReminderInfo, ReminderTarget, owner_of};
use crate::actor::{Actor, ActorError, ActorRef, Context, SpawnError};
use crate::seams::{Clock, Spawn};
use plexspaces_storage::journal::JournalError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The name of shard `n`'s actor on its owner node.
pub(super) fn shard_actor_name(shard: u32) -> String {
    format!("reminders-{shard}")
}

/// A reminder as it crosses the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct InfoWire {
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

/// What a shard actor is asked, by callers (first three, possibly from
/// other nodes) and by itself (timers and delivery outcomes).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum ShardMsg {
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
    /// A reminder's timer: deliver the firing for `due_ms`.
    Fire {
        target: ReminderTarget,
        name: String,
        due_ms: u64,
    },
    /// A delivery finished.
    Delivered {
        target: ReminderTarget,
        name: String,
        due_ms: u64,
        outcome: Result<(), String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) enum ShardReply {
    Registered(InfoWire),
    Cancelled(bool),
    Listed(Vec<InfoWire>),
    /// This node does not (or no longer) own the shard: ask again.
    NotOwner,
    /// The request cannot succeed (the journal failed).
    Refused(String),
    Done,
    /// The shard holds its maximum number of reminders.
    Full {
        shard: u32,
        max: usize,
    },
}

/// Why a shard actor's table is there: `pre_start` loads it before any
/// message, or the actor does not start.
const SHARD_LOADED: &str = "a shard actor loads its table in pre_start, before any message";

/// Serves one shard: its table, a timer per reminder, deliveries.
pub(super) struct ShardActor {
    common: Arc<Common>,
    shard_no: u32,
    /// Loaded in `pre_start` (claiming the stream fences earlier owners).
    shard: Option<Shard>,
}

type ShardContext = Context<ShardActor>;

fn wall_ms(ctx: &ShardContext) -> u64 {
    millis(ctx.env().wall_clock())
}

fn retry_delay(config: &ReminderConfig, ctx: &ShardContext, attempts: u32) -> u64 {
    let backoff = crate::retry::Backoff::new(config.retry_min, config.retry_max);
    backoff.delay(attempts, ctx.env()).as_millis() as u64
}

/// Arms (or re-arms) the timer of `key` for `at_ms`.
fn arm(ctx: &mut ShardContext, shard: &mut Shard, key: &Key, at_ms: u64) {
    let now = wall_ms(ctx);
    let Some(entry) = shard.entries.get_mut(key) else {
        return;
    };
    if let Some(old) = entry.timer.take() {
        ctx.cancel_timer(old);
    }
    let delay = Duration::from_millis(at_ms.saturating_sub(now));
    let fire = ShardMsg::Fire {
        target: key.0.clone(),
        name: key.1.clone(),
        due_ms: entry.next_due_ms,
    };
    entry.timer = Some(ctx.send_after(delay, fire).expect(
        "a shard arms one timer per reminder, and its timer bound is at least its reminders",
    ));
}

impl ShardActor {
    pub(super) fn new(common: Arc<Common>, shard_no: u32) -> Self {
        ShardActor {
            common,
            shard_no,
            shard: None,
        }
    }

    fn owned(&self, ctx: &ShardContext) -> bool {
        owner_of(ctx.system(), self.shard_no).as_ref() == Some(ctx.system().node())
    }

    /// Journals `event`; a fenced or failed journal stops this actor (the
    /// coordinator reloads the shard from what is durable, if it still
    /// owns it).
    async fn record(&mut self, ctx: &mut ShardContext, event: Event) -> Result<(), ShardReply> {
        let config = &self.common.config;
        let shard = self.shard.as_mut().expect(SHARD_LOADED);
        let env = ctx.env().clone();
        match shard
            .record(&env, &config.journal, event, config.checkpoint_every)
            .await
        {
            Ok(()) => Ok(()),
            Err(JournalError::Fenced { .. }) => {
                ctx.stop();
                Err(ShardReply::NotOwner)
            }
            Err(e) => {
                ctx.fail(format!("reminder journal: {e}"));
                Err(ShardReply::Refused(format!("reminder journal: {e}")))
            }
        }
    }

    async fn register(
        &mut self,
        ctx: &mut ShardContext,
        target: ReminderTarget,
        name: String,
        recurrence: Recurrence,
        first_due_ms: u64,
    ) -> ShardReply {
        let compiled = match recurrence.compile() {
            Ok(c) => c,
            Err(e) => return ShardReply::Refused(e),
        };
        let now = wall_ms(ctx);
        let next = match compiled.due_at_or_after(first_due_ms, now) {
            Some(next) => next,
            None if matches!(recurrence, Recurrence::Once) => now,
            None => return ShardReply::Refused("the schedule is never due".into()),
        };
        let key = (target.clone(), name.clone());
        let max = self.common.config.reminders_per_shard_max;
        let shard = self.shard.as_ref().expect(SHARD_LOADED);
        if !shard.entries.contains_key(&key) && shard.entries.len() >= max {
            return ShardReply::Full {
                shard: self.shard_no,
                max,
            };
        }
        let event = Event::Put {
            target,
            name,
            recurrence,
            anchor_ms: first_due_ms,
            next_due_ms: next,
        };
        if let Err(reply) = self.record(ctx, event).await {
            return reply;
        }
        let shard = self.shard.as_mut().expect(SHARD_LOADED);
        arm(ctx, shard, &key, next);
        ShardReply::Registered(shard.entries[&key].info(&key).into())
    }

    async fn cancel(
        &mut self,
        ctx: &mut ShardContext,
        target: ReminderTarget,
        name: String,
    ) -> ShardReply {
        let key = (target.clone(), name.clone());
        let shard = self.shard.as_ref().expect(SHARD_LOADED);
        let Some(timer) = shard.entries.get(&key).map(|e| e.timer) else {
            return ShardReply::Cancelled(false);
        };
        if let Err(reply) = self.record(ctx, Event::Remove { target, name }).await {
            return reply;
        }
        if let Some(timer) = timer {
            ctx.cancel_timer(timer);
        }
        ShardReply::Cancelled(true)
    }

    fn fire(&mut self, ctx: &mut ShardContext, key: Key, due_ms: u64) {
        let now = wall_ms(ctx);
        let config = &self.common.config;
        let shard = self.shard.as_mut().expect(SHARD_LOADED);
        let Some(entry) = shard.entries.get_mut(&key) else {
            return;
        };
        if entry.next_due_ms != due_ms || entry.delivering {
            return; // replaced, or a delivery of it is already out
        }
        entry.timer = None;
        if now < due_ms {
            // The wall clock went back since the timer was set.
            arm(ctx, shard, &key, due_ms);
            return;
        }
        let Some(deliver) = self.common.deliverers().get(&key.0.kind).cloned() else {
            tracing::warn!(target = %key.0, "no delivery registered for this kind; will retry");
            entry.attempts += 1;
            let retry = retry_delay(config, ctx, entry.attempts);
            arm(ctx, shard, &key, now + retry);
            return;
        };
        entry.delivering = true;
        let metrics = ctx.env().metrics().services();
        metrics.reminders_due.inc();
        if entry.attempts == 0 {
            // Lateness of the first attempt only: a retry is late by design.
            let late_ms = now - due_ms;
            metrics.reminder_lateness.observe(late_ms as f64 / 1000.0);
            if late_ms > 1000 {
                metrics.reminders_late.inc();
            }
        }
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
                .tell(ShardMsg::Delivered {
                    target: key.0,
                    name: key.1,
                    due_ms,
                    outcome,
                })
                .await;
        }));
    }

    async fn delivered(
        &mut self,
        ctx: &mut ShardContext,
        key: Key,
        due_ms: u64,
        outcome: Result<(), String>,
    ) {
        let now = wall_ms(ctx);
        let config = &self.common.config;
        let shard = self.shard.as_mut().expect(SHARD_LOADED);
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
            let retry = retry_delay(config, ctx, entry.attempts);
            arm(ctx, shard, &key, now + retry);
            return;
        }
        ctx.env().metrics().services().reminders_fired.inc();
        let next = entry.compiled.next_after(entry.anchor_ms, due_ms, now);
        let event = Event::Fired {
            target: key.0.clone(),
            name: key.1.clone(),
            due_ms,
            next_due_ms: next,
        };
        if self.record(ctx, event).await.is_err() {
            return;
        }
        if let Some(next) = next {
            let shard = self.shard.as_mut().expect(SHARD_LOADED);
            arm(ctx, shard, &key, next);
        }
    }
}

impl Actor for ShardActor {
    type Msg = ShardMsg;
    type Reply = ShardReply;

    async fn pre_start(&mut self, ctx: &mut ShardContext) -> Result<(), ActorError> {
        let stream = format!("@{}", shard_actor_name(self.shard_no));
        let mut shard = Shard::recover(&self.common.config.journal, stream)
            .await
            .map_err(|e| {
                ActorError::new(format!("taking over reminder shard {}: {e}", self.shard_no))
            })?;
        // One timer per reminder: the table's bound, or what a journal
        // written under a larger bound holds (never refuse to load it).
        let bound = self.common.config.reminders_per_shard_max;
        ctx.set_max_timers(bound.max(shard.entries.len()));
        let keys: Vec<(Key, u64)> = shard
            .entries
            .iter()
            .map(|(k, e)| (k.clone(), e.next_due_ms))
            .collect();
        for (key, due) in keys {
            arm(ctx, &mut shard, &key, due);
        }
        tracing::debug!(
            shard = self.shard_no,
            reminders = shard.entries.len(),
            "took over a reminder shard"
        );
        self.shard = Some(shard);
        Ok(())
    }

    async fn handle(
        &mut self,
        ctx: &mut ShardContext,
        msg: ShardMsg,
    ) -> Result<ShardReply, ActorError> {
        let external = matches!(
            msg,
            ShardMsg::Register { .. } | ShardMsg::Cancel { .. } | ShardMsg::List { .. }
        );
        if external && !self.owned(ctx) {
            // Placement moved the shard; the coordinator stops this actor.
            return Ok(ShardReply::NotOwner);
        }
        Ok(match msg {
            ShardMsg::Register {
                target,
                name,
                recurrence,
                first_due_ms,
            } => {
                self.register(ctx, target, name, recurrence, first_due_ms)
                    .await
            }
            ShardMsg::Cancel { target, name } => self.cancel(ctx, target, name).await,
            ShardMsg::List { target } => {
                let shard = self.shard.as_ref().expect(SHARD_LOADED);
                ShardReply::Listed(
                    shard
                        .entries
                        .iter()
                        .filter(|((t, _), _)| *t == target)
                        .map(|(k, e)| e.info(k).into())
                        .collect(),
                )
            }
            ShardMsg::Fire {
                target,
                name,
                due_ms,
            } => {
                self.fire(ctx, (target, name), due_ms);
                ShardReply::Done
            }
            ShardMsg::Delivered {
                target,
                name,
                due_ms,
                outcome,
            } => {
                self.delivered(ctx, (target, name), due_ms, outcome).await;
                ShardReply::Done
            }
        })
    }
}

/// What the coordinator does.
#[derive(Clone, Copy, Debug)]
pub(super) enum CoordinatorMsg {
    /// Re-check which shards this node owns.
    Rebalance,
}

/// Starts a shard actor for every shard this node owns and stops the rest,
/// on every membership change and every `rebalance_every`.
pub(super) struct Coordinator {
    pub(super) common: Arc<Common>,
    pub(super) shards: BTreeMap<u32, ActorRef<ShardActor>>,
}

impl Coordinator {
    fn rebalance(&mut self, ctx: &mut Context<Self>) {
        let me = ctx.system().node().clone();
        for shard_no in 0..self.common.config.shards {
            let mine = owner_of(ctx.system(), shard_no).as_ref() == Some(&me);
            let running = self
                .shards
                .get(&shard_no)
                .filter(|a| !a.status().is_finished())
                .cloned();
            match (mine, running) {
                (true, Some(_)) | (false, None) => {}
                (true, None) => {
                    let actor = ShardActor::new(self.common.clone(), shard_no);
                    match ctx.system().spawn(&shard_actor_name(shard_no), actor) {
                        Ok(actor) => {
                            if let Some(dist) = ctx.system().distribution()
                                && let Err(e) = dist.export(&actor)
                            {
                                tracing::warn!(
                                    shard = shard_no,
                                    "cannot export a reminder shard: {e}"
                                );
                            }
                            self.shards.insert(shard_no, actor);
                        }
                        // The previous one is still stopping: next time.
                        Err(SpawnError::NameTaken(_)) => {}
                        Err(e) => {
                            tracing::warn!(shard = shard_no, "cannot start a reminder shard: {e}")
                        }
                    }
                }
                (false, Some(actor)) => {
                    tracing::debug!(shard = shard_no, "gave up a reminder shard");
                    actor.stop();
                    self.shards.remove(&shard_no);
                }
            }
        }
    }
}

impl Actor for Coordinator {
    type Msg = CoordinatorMsg;
    type Reply = ();

    async fn pre_start(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        ctx.send_interval(
            self.common.config.rebalance_every,
            CoordinatorMsg::Rebalance,
        )
        .map_err(|e| ActorError::new(e.to_string()))?;
        self.rebalance(ctx);
        Ok(())
    }

    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        msg: CoordinatorMsg,
    ) -> Result<(), ActorError> {
        match msg {
            CoordinatorMsg::Rebalance => self.rebalance(ctx),
        }
        Ok(())
    }

    async fn post_stop(&mut self, _: &mut Context<Self>, _: &crate::actor::ExitReason) {
        for actor in self.shards.values() {
            actor.stop();
        }
    }
}

/// A shard actor's messages (they cross the wire), for
/// [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(super) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    fn target() -> ReminderTarget {
        ReminderTarget::new("invoice", "inv-7")
    }
    fn info() -> InfoWire {
        InfoWire {
            target: target(),
            name: "hourly".into(),
            recurrence: Recurrence::Every(Duration::from_secs(3_600)),
            next_due_ms: 1_700_003_600_000,
        }
    }
    v.visit("reminders::InfoWire", || vec![info()]);
    v.visit("reminders::ShardMsg", || {
        vec![
            ShardMsg::Register {
                target: target(),
                name: "hourly".into(),
                recurrence: Recurrence::Once,
                first_due_ms: 1_700_000_000_000,
            },
            ShardMsg::Delivered {
                target: target(),
                name: "hourly".into(),
                due_ms: 1_700_000_000_000,
                outcome: Err("target unavailable".into()),
            },
        ]
    });
    v.visit("reminders::ShardReply", || {
        vec![
            ShardReply::Listed(vec![info()]),
            ShardReply::Registered(info()),
            ShardReply::NotOwner,
        ]
    });
}
