//! The subscribing side: a relay actor per subscription, in the topic's
//! process group, that filters, drops duplicates and tells the subscriber.

use super::emitter::EventEmitterFacet;
use super::{EVENTS_NAMESPACE, EVENTS_TENANT, Event, EventsError, check_topic};
use crate::actor::{Actor, ActorError, ActorRef, ActorSystem, Context, SendError, SpawnOptions};
use crate::groups::ProcessGroups;
use crate::seams::{Rng, Spawn};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Which events a subscriber wants.
pub type EventFilter = Arc<dyn Fn(&Event) -> bool + Send + Sync>;

/// How a subscription behaves.
#[derive(Clone)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// Only events this accepts are forwarded (default: all).
    pub filter: Option<EventFilter>,
    /// The relay's mailbox bound (default 1024): a subscriber slower than
    /// its emitters fills it, and then the emitters' queues, whose drop
    /// policy decides.
    pub capacity: usize,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            filter: None,
            capacity: ActorSystem::MAILBOX_CAPACITY_DEFAULT,
        }
    }
}

impl SubscribeOptions {
    /// Forwards only the events `filter` accepts.
    pub fn with_filter(mut self, filter: impl Fn(&Event) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(filter));
        self
    }
}

/// What a subscription has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubscriptionStats {
    /// Events that reached the relay.
    pub received: u64,
    /// Events the filter refused.
    pub filtered: u64,
    /// Events told to the subscriber.
    pub forwarded: u64,
    /// Events refused as already seen (a sequence number passed before).
    pub duplicates: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    filtered: AtomicU64,
    forwarded: AtomicU64,
    duplicates: AtomicU64,
}

type Forward = Box<dyn Fn(Event) -> BoxFuture<'static, Result<(), SendError>> + Send>;

/// The most emitter runs a relay remembers the last sequence number of
/// (the oldest is forgotten beyond).
const SOURCES_MAX: usize = 4096;

/// A subscription's relay: a member of the topic's process group (so
/// emitters on any node reach it) that tells its subscriber each event.
pub struct EventRelay {
    filter: Option<EventFilter>,
    forward: Forward,
    /// The last sequence number seen per emitter run, and when (an
    /// ordinal), to forget the least recently heard beyond the bound.
    last_seq: BTreeMap<(String, u64), (u64, u64)>,
    heard: u64,
    counters: Arc<Counters>,
}

impl Actor for EventRelay {
    type Msg = Event;
    type Reply = ();

    async fn handle(&mut self, ctx: &mut Context<Self>, event: Event) -> Result<(), ActorError> {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        self.heard += 1;
        let key = (event.source.clone(), event.run);
        match self.last_seq.get_mut(&key) {
            Some((last, _)) if event.seq <= *last => {
                self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Some((last, heard)) => (*last, *heard) = (event.seq, self.heard),
            None => {
                if self.last_seq.len() >= SOURCES_MAX
                    && let Some(oldest) = self
                        .last_seq
                        .iter()
                        .min_by_key(|(_, (_, heard))| *heard)
                        .map(|(k, _)| k.clone())
                {
                    self.last_seq.remove(&oldest);
                }
                self.last_seq.insert(key, (event.seq, self.heard));
            }
        }
        if let Some(filter) = &self.filter
            && !filter(&event)
        {
            self.counters.filtered.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        match (self.forward)(event).await {
            Ok(()) => {
                self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
            }
            // The subscriber is gone: so is its subscription.
            Err(_) => ctx.stop(),
        }
        Ok(())
    }
}

/// A live subscription; dropping it keeps it (it ends with its
/// subscriber, or with [`Subscription::cancel`]).
pub struct Subscription {
    relay: ActorRef<EventRelay>,
    topic: String,
    groups: ProcessGroups,
    counters: Arc<Counters>,
}

impl Subscription {
    /// The relay's id (the member the topic's group lists).
    pub fn relay_id(&self) -> &crate::actor::ActorId {
        self.relay.id()
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The counters now.
    pub fn stats(&self) -> SubscriptionStats {
        let c = &self.counters;
        SubscriptionStats {
            received: c.received.load(Ordering::Relaxed),
            filtered: c.filtered.load(Ordering::Relaxed),
            forwarded: c.forwarded.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
        }
    }

    /// Ends the subscription: the relay leaves the group and stops.
    pub async fn cancel(self) {
        let _ = self
            .groups
            .leave(EVENTS_TENANT, EVENTS_NAMESPACE, &self.topic, &self.relay)
            .await;
        self.relay.stop();
        self.relay.wait_exit().await;
    }
}

/// Subscribes `subscriber` to `topic` on every node: each event an emitter
/// sends is told to it as `to_msg(event)`. Start distribution first for a
/// cluster-wide subscription.
pub async fn subscribe<A: Actor>(
    system: &ActorSystem,
    topic: &str,
    subscriber: &ActorRef<A>,
    to_msg: impl Fn(Event) -> A::Msg + Send + Sync + 'static,
    options: SubscribeOptions,
) -> Result<Subscription, EventsError> {
    check_topic(topic)?;
    EventEmitterFacet::register(system);
    let groups = system
        .process_groups()
        .map_err(|e| EventsError::Unavailable(e.to_string()))?;
    let counters = Arc::new(Counters::default());
    let target = subscriber.clone();
    let to_msg = Arc::new(to_msg);
    let relay = EventRelay {
        filter: options.filter,
        forward: Box::new(move |event| {
            let (target, to_msg) = (target.clone(), to_msg.clone());
            Box::pin(async move { target.tell(to_msg(event)).await })
        }),
        last_seq: BTreeMap::new(),
        heard: 0,
        counters: counters.clone(),
    };
    let name = format!("event-relay-{:016x}", system.env().next_u64());
    let spawn = SpawnOptions {
        mailbox_capacity: options.capacity.max(1),
        ..SpawnOptions::default()
    };
    let relay = system
        .spawn_with(&name, relay, spawn)
        .map_err(|e| EventsError::Unavailable(e.to_string()))?;
    if let Err(e) = groups
        .join(EVENTS_TENANT, EVENTS_NAMESPACE, topic, &relay)
        .await
    {
        relay.stop();
        return Err(EventsError::Unavailable(e.to_string()));
    }
    // The relay ends with its subscriber.
    let (watched, relay_of_it) = (subscriber.clone(), relay.clone());
    system.env().spawn_task(Box::pin(async move {
        watched.wait_exit().await;
        relay_of_it.stop();
    }));
    Ok(Subscription {
        relay,
        topic: topic.to_string(),
        groups,
        counters,
    })
}

impl ActorSystem {
    /// Enables events on this node: registers the `events` facet type (so
    /// it can be attached by name). [`subscribe`] does it too.
    pub fn enable_events(&self) {
        EventEmitterFacet::register(self);
    }
}
