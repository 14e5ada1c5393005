//! The emitting side: a facet with listeners, a bounded queue and a task
//! that sends each queued event to the topic's subscribers, in order.

use super::subscribe::EventRelay;
use super::{DropPolicy, EVENTS_NAMESPACE, EVENTS_TENANT, Event, EventsError, check_topic};
use crate::actor::facet::{
    ConfigValue, Facet, FacetCategory, FacetConfig, FacetConfigError, FacetDescriptor, FacetOption,
    Hooks, OptionKind, priority_in,
};
use crate::actor::{ActorId, ActorSystem};
use crate::seams::{Rng, Spawn};
use futures::task::AtomicWaker;
use plexspaces_storage::sync::LockExt;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

/// What an emitter has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmitterStats {
    /// Events emitted (queued or dropped).
    pub emitted: u64,
    /// Events a full queue dropped.
    pub dropped: u64,
    /// Sends to subscribers' relays that were accepted (one per event and
    /// subscriber).
    pub delivered: u64,
    /// Calls of local listeners.
    pub listener_calls: u64,
    /// Events queued, not yet sent.
    pub queued: u64,
}

#[derive(Default)]
struct Counters {
    emitted: AtomicU64,
    dropped: AtomicU64,
    delivered: AtomicU64,
    listener_calls: AtomicU64,
}

/// The queue between the facet (which must not wait: handlers emit
/// synchronously) and the task that sends.
#[derive(Default)]
struct Outbox {
    queue: Mutex<OutboxState>,
    waker: AtomicWaker,
}

#[derive(Default)]
struct OutboxState {
    events: VecDeque<Event>,
    /// The facet is gone: the task sends what is queued, then ends.
    closed: bool,
}

type Listener = Box<dyn FnMut(&Event) + Send>;

/// Emits events from an actor's handlers (see [`crate::events`]).
pub struct EventEmitterFacet {
    priority: i32,
    system: crate::actor::WeakSystem,
    policy: DropPolicy,
    capacity: usize,
    source: Option<String>,
    run: u64,
    seq: u64,
    listeners: BTreeMap<String, Vec<Listener>>,
    outbox: Arc<Outbox>,
    counters: Arc<Counters>,
}

impl EventEmitterFacet {
    /// Default priority: the domain band.
    pub const PRIORITY: i32 = 300;
    /// Default queue bound.
    pub const CAPACITY_DEFAULT: usize = 1024;
    /// The most listeners one facet keeps.
    pub const LISTENERS_MAX: usize = 1024;

    /// An emitter for an actor of `system`, queueing at most `capacity`
    /// events (at least 1) and dropping per `policy` beyond.
    pub fn new(system: &ActorSystem, capacity: usize, policy: DropPolicy) -> Self {
        EventEmitterFacet {
            priority: Self::PRIORITY,
            system: system.downgrade(),
            policy,
            capacity: capacity.max(1),
            source: None,
            run: system.env().next_u64(),
            seq: 0,
            listeners: BTreeMap::new(),
            outbox: Arc::new(Outbox::default()),
            counters: Arc::new(Counters::default()),
        }
    }

    /// The registry's description of the `events` type.
    pub fn descriptor() -> FacetDescriptor {
        FacetDescriptor::new(
            "events",
            FacetCategory::Domain,
            "emits events on topics to listeners and to subscribers on any node",
        )
        .priority_option(Self::PRIORITY)
        .option(
            FacetOption::new("capacity", OptionKind::Int, "the queue's bound")
                .default_value(ConfigValue::Int(Self::CAPACITY_DEFAULT as i64)),
        )
        .option(
            FacetOption::new(
                "drop_policy",
                OptionKind::Str,
                "what a full queue drops: drop-newest or drop-oldest",
            )
            .default_value(ConfigValue::Str("drop-newest".into())),
        )
    }

    /// Registers the `events` type on `system`'s registry (done by
    /// [`subscribe`](super::subscribe) and by
    /// [`ActorSystem::enable_events`]; a
    /// second call changes nothing).
    pub fn register(system: &ActorSystem) {
        let weak = system.downgrade();
        let _already = system
            .facet_types()
            .register(Self::descriptor(), move |config| {
                let system = weak.upgrade().ok_or_else(|| FacetConfigError::Invalid {
                    key: "events".into(),
                    reason: "the node has shut down".into(),
                })?;
                Ok(Box::new(Self::from_config(&system, config)?))
            });
    }

    /// Builds from configuration (`priority`, `capacity`, `drop_policy`).
    pub fn from_config(
        system: &ActorSystem,
        mut config: FacetConfig,
    ) -> Result<Self, FacetConfigError> {
        let band = FacetCategory::Domain.band();
        let priority = priority_in(&mut config, Self::PRIORITY, band)?;
        let capacity = match config.int("capacity")? {
            None => Self::CAPACITY_DEFAULT,
            Some(n) if (1..=1 << 20).contains(&n) => n as usize,
            Some(n) => {
                return Err(FacetConfigError::Invalid {
                    key: "capacity".into(),
                    reason: format!("{n} is outside 1..=1048576"),
                });
            }
        };
        let policy = match config.string("drop_policy")? {
            None => DropPolicy::DropNewest,
            Some(text) => DropPolicy::parse(&text).ok_or(FacetConfigError::Invalid {
                key: "drop_policy".into(),
                reason: format!("{text:?} is neither drop-newest nor drop-oldest"),
            })?,
        };
        config.finish("events")?;
        let mut facet = Self::new(system, capacity, policy);
        facet.priority = priority;
        Ok(facet)
    }

    /// Emits `payload` on `topic`: local listeners run now; subscribers
    /// get it through the queue (dropped per the policy if it is full).
    /// Returns the event's sequence number.
    pub fn emit(&mut self, topic: &str, payload: &impl Serialize) -> Result<u64, EventsError> {
        check_topic(topic)?;
        let source = self.source.clone().ok_or(EventsError::NotAttached)?;
        let payload = crate::codec::encode(payload, "event payload")
            .map_err(|e| EventsError::Unencodable(e.to_string()))?;
        self.seq += 1;
        let event = Event {
            topic: topic.to_string(),
            source,
            seq: self.seq,
            run: self.run,
            payload,
        };
        self.counters.emitted.fetch_add(1, Ordering::Relaxed);
        if let Some(listeners) = self.listeners.get_mut(topic) {
            for listener in listeners.iter_mut() {
                listener(&event);
            }
            let calls = listeners.len() as u64;
            self.counters
                .listener_calls
                .fetch_add(calls, Ordering::Relaxed);
        }
        let mut state = self.outbox.queue.locked();
        if state.events.len() >= self.capacity {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            match self.policy {
                DropPolicy::DropNewest => return Ok(event.seq),
                DropPolicy::DropOldest => {
                    state.events.pop_front();
                }
            }
        }
        let seq = event.seq;
        state.events.push_back(event);
        debug_assert!(
            state.events.len() <= self.capacity,
            "the queue keeps its bound"
        );
        drop(state);
        self.outbox.waker.wake();
        Ok(seq)
    }

    /// Runs `listener` on every event this actor emits on `topic`, in the
    /// actor, as it is emitted. Refused beyond [`Self::LISTENERS_MAX`].
    pub fn on(
        &mut self,
        topic: &str,
        listener: impl FnMut(&Event) + Send + 'static,
    ) -> Result<(), EventsError> {
        check_topic(topic)?;
        let count: usize = self.listeners.values().map(Vec::len).sum();
        if count >= Self::LISTENERS_MAX {
            return Err(EventsError::Unavailable(format!(
                "at most {} listeners",
                Self::LISTENERS_MAX
            )));
        }
        self.listeners
            .entry(topic.to_string())
            .or_default()
            .push(Box::new(listener));
        Ok(())
    }

    /// Removes every listener of `topic`; how many there were.
    pub fn off(&mut self, topic: &str) -> usize {
        self.listeners.remove(topic).map_or(0, |l| l.len())
    }

    /// The counters now.
    pub fn stats(&self) -> EmitterStats {
        let c = &self.counters;
        EmitterStats {
            emitted: c.emitted.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            listener_calls: c.listener_calls.load(Ordering::Relaxed),
            queued: self.outbox.queue.locked().events.len() as u64,
        }
    }
}

impl Facet for EventEmitterFacet {
    fn name(&self) -> &str {
        "events"
    }

    fn priority(&self) -> i32 {
        self.priority
    }

    fn hooks(&self) -> Hooks {
        // Sees no message: it holds the outbox the actor emits through.
        Hooks::NONE
    }

    fn on_attach(&mut self, actor: &ActorId) {
        self.source = Some(actor.to_string());
        let Some(system) = self.system.upgrade() else {
            return;
        };
        let (outbox, counters) = (self.outbox.clone(), self.counters.clone());
        let env = system.env().clone();
        // The task holds the system only while it sends: it ends when the
        // facet closes the queue (detach, or the actor's exit).
        env.spawn_task(Box::pin(send_queued(system, outbox, counters)));
    }

    fn on_detach(&mut self, _actor: &ActorId) {
        self.outbox.queue.locked().closed = true;
        self.outbox.waker.wake();
    }
}

impl Drop for EventEmitterFacet {
    fn drop(&mut self) {
        self.outbox.queue.locked().closed = true;
        self.outbox.waker.wake();
    }
}

/// Sends each queued event to every relay of its topic the node's groups
/// list, one event at a time (so each subscriber gets them in order).
async fn send_queued(system: ActorSystem, outbox: Arc<Outbox>, counters: Arc<Counters>) {
    let groups = match system.process_groups() {
        Ok(groups) => groups,
        Err(e) => {
            tracing::warn!("events cannot be sent: {e}");
            return;
        }
    };
    while let Some(event) = next_event(&outbox).await {
        let members = match groups
            .members(EVENTS_TENANT, EVENTS_NAMESPACE, &event.topic)
            .await
        {
            Ok(members) => members,
            Err(e) => {
                tracing::debug!(topic = event.topic, "event not sent: {e}");
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        for member in members {
            // Another type under a group name, or gone: skipped.
            let Ok(relay) = system.resolve::<EventRelay>(&member) else {
                continue;
            };
            if relay.tell(event.clone()).await.is_ok() {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn next_event(outbox: &Outbox) -> Option<Event> {
    std::future::poll_fn(|cx| {
        outbox.waker.register(cx.waker());
        let mut state = outbox.queue.locked();
        match state.events.pop_front() {
            Some(event) => Poll::Ready(Some(event)),
            None if state.closed => Poll::Ready(None),
            None => Poll::Pending,
        }
    })
    .await
}
