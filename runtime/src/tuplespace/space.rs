//! One named, bounded, in-memory tuple space.

use super::index::{Indexed, Slot, TupleIndex};
use super::value::{Pattern, Tuple};
use crate::env::Env;
use crate::observability::metrics::OpLabel;
use crate::seams::{Clock, Instant};
use futures::StreamExt;
use futures::channel::mpsc;
use plexspaces_storage::sync::LockExt;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// A space's bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TupleSpaceConfig {
    /// Most tuples held at once; a write beyond fails with `Full`.
    pub tuples_max: usize,
    /// Largest tuple accepted, in (approximate) bytes.
    pub tuple_bytes_max: usize,
}

impl Default for TupleSpaceConfig {
    fn default() -> Self {
        TupleSpaceConfig {
            tuples_max: 100_000,
            tuple_bytes_max: 64 * 1024,
        }
    }
}

/// Why a tuple space refused an operation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum TupleSpaceError {
    /// The space holds its maximum number of tuples.
    Full {
        /// The space.
        space: String,
        /// Its bound.
        tuples_max: usize,
    },
    /// The tuple is larger than the space accepts.
    TupleTooLarge {
        /// Its size.
        bytes: usize,
        /// The bound.
        max: usize,
    },
    /// The tuple nests tuples deeper than `max` levels.
    TooDeep {
        /// The bound ([`NESTING_MAX`](crate::tuplespace::NESTING_MAX)).
        max: usize,
    },
}

impl fmt::Display for TupleSpaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TupleSpaceError::Full { space, tuples_max } => {
                write!(f, "tuple space {space:?} is full ({tuples_max} tuples)")
            }
            TupleSpaceError::TupleTooLarge { bytes, max } => {
                write!(f, "a tuple of {bytes} bytes exceeds the limit of {max}")
            }
            TupleSpaceError::TooDeep { max } => {
                write!(f, "a tuple nests tuples deeper than {max} levels")
            }
        }
    }
}

impl std::error::Error for TupleSpaceError {}

/// What happened to a tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Action {
    /// It was written.
    Write,
    /// It was taken.
    Take,
}

/// An event a subscription delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TupleEvent {
    /// What happened.
    pub action: Action,
    /// To which tuple.
    pub tuple: Tuple,
}

/// Receives the events of a subscription.
pub trait TupleSpaceListener: Send + Sync + 'static {
    /// Called once per matching event, in the order events happened.
    fn on_event(&self, event: &TupleEvent);
}

/// How events reach a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QoS {
    /// Before the call that wrote or took the tuple returns, in the order
    /// the events happened across every task and thread: no event is ever
    /// lost, and a slow listener slows the space's users. The listener runs
    /// outside the space's lock, so it may use the space; an event a
    /// listener's own call causes is delivered right after that listener
    /// returns.
    Synchronous,
    /// Through a queue of `capacity` events drained by a task of its own:
    /// the space's users never wait; when the queue is full, events are
    /// dropped and counted ([`Subscription::dropped`]).
    Queued {
        /// Queue bound.
        capacity: usize,
    },
}

/// Identifies a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(u64);

/// A live subscription; `unsubscribe` (or dropping the space) ends it.
#[derive(Clone, Debug)]
pub struct Subscription {
    /// Its id.
    pub id: SubscriptionId,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl Subscription {
    /// Events dropped because the queue was full ([`QoS::Queued`] only).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

struct Stored {
    tuple: Tuple,
    expires: Option<Instant>,
}

impl Indexed for Stored {
    fn tuple(&self) -> &Tuple {
        &self.tuple
    }
}

impl Stored {
    fn live_at(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

struct Waiter {
    id: u64,
    pattern: Pattern,
    take: bool,
    waker: Waker,
}

enum Delivery {
    Sync(Arc<dyn TupleSpaceListener>),
    Queued(mpsc::Sender<TupleEvent>),
}

struct Sub {
    pattern: Pattern,
    actions: Vec<Action>,
    delivery: Delivery,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Default)]
struct State {
    /// The tuples held, with their leases.
    tuples: TupleIndex<Stored>,
    /// Tuples with a lease; while none, lookups skip the expiry sweep.
    leased: usize,
    waiters: VecDeque<Waiter>,
    /// Tuples handed to waiters that have not picked them up yet, with the
    /// lease they were written with (a taker that gives up puts its tuple
    /// back as it was).
    delivered: BTreeMap<u64, Stored>,
    next_waiter: u64,
    subs: BTreeMap<SubscriptionId, Sub>,
    next_sub: u64,
    /// Events for synchronous listeners, numbered in the order they
    /// happened, not yet delivered.
    sync_events: VecDeque<(u64, Arc<dyn TupleSpaceListener>, TupleEvent)>,
    /// The number the next event queued gets.
    next_event: u64,
    /// Every event numbered below this has been delivered.
    delivered_events: u64,
    /// A task is delivering an event now; others wait their turn, so
    /// listeners see events one at a time, in order.
    delivering: bool,
}

struct Inner {
    name: String,
    env: Env,
    config: TupleSpaceConfig,
    state: Mutex<State>,
    /// Signalled whenever a synchronous event has been delivered.
    event_delivered: Condvar,
}

/// A tuple space. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct TupleSpace {
    inner: Arc<Inner>,
}

impl fmt::Debug for TupleSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TupleSpace")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl State {
    /// The first stored tuple matching `pattern`, oldest first, after
    /// dropping the expired tuples it could have been.
    fn find(&mut self, pattern: &Pattern, now: Instant) -> Option<Slot> {
        if self.leased > 0 {
            self.leased -= self.tuples.prune(pattern, |s| s.live_at(now));
        }
        self.tuples.find(pattern)
    }

    fn remove(&mut self, slot: &Slot) -> Tuple {
        let stored = self.tuples.remove(slot);
        if stored.expires.is_some() {
            self.leased -= 1;
        }
        stored.tuple
    }

    /// Offers a new tuple to the waiters: every matching reader gets a
    /// copy (reading consumes nothing, so all of them see it), then the
    /// oldest matching taker gets the tuple itself. Returns the tuple if no
    /// taker took it.
    fn offer(
        &mut self,
        tuple: Tuple,
        expires: Option<Instant>,
        wake: &mut Vec<Waker>,
    ) -> Option<Tuple> {
        let taker = self
            .waiters
            .iter()
            .find(|w| w.take && w.pattern.matches(&tuple))
            .map(|w| w.id);
        let mut kept = VecDeque::with_capacity(self.waiters.len());
        for waiter in self.waiters.drain(..) {
            let reader = !waiter.take && waiter.pattern.matches(&tuple);
            if reader || Some(waiter.id) == taker {
                wake.push(waiter.waker);
                if reader {
                    let copy = Stored {
                        tuple: tuple.clone(),
                        expires,
                    };
                    self.delivered.insert(waiter.id, copy);
                }
            } else {
                kept.push_back(waiter);
            }
        }
        self.waiters = kept;
        match taker {
            Some(id) => {
                self.delivered.insert(id, Stored { tuple, expires });
                None
            }
            None => Some(tuple),
        }
    }

    /// Puts `tuple` into the space under the lock the caller holds: a
    /// Write event, then the oldest matching taker gets it (a Take event)
    /// or it is stored. Wakers are left for the caller to wake once the lock is
    /// released.
    fn put_locked(&mut self, tuple: Tuple, expires: Option<Instant>, wake: &mut Vec<Waker>) {
        self.events(Action::Write, &tuple);
        let event_copy = tuple.clone();
        match self.offer(tuple, expires, wake) {
            Some(unclaimed) => self.store(unclaimed, expires),
            None => self.events(Action::Take, &event_copy),
        }
    }

    fn store(&mut self, tuple: Tuple, expires: Option<Instant>) {
        self.tuples.insert(Stored { tuple, expires });
        if expires.is_some() {
            self.leased += 1;
        }
    }

    /// The first tuple matching `pattern`, removed (with its Take event) if
    /// `take`, else copied.
    fn get_locked(&mut self, pattern: &Pattern, take: bool, now: Instant) -> Option<Tuple> {
        let slot = self.find(pattern, now)?;
        Some(if take {
            let tuple = self.remove(&slot);
            self.events(Action::Take, &tuple);
            tuple
        } else {
            self.tuples.get(&slot).tuple.clone()
        })
    }

    /// If synchronous events were queued since number `first`, the number
    /// after the last: the call that queued them returns once every event
    /// before it is delivered. A call that queued none skips delivery.
    fn events_since(&self, first: u64) -> Option<u64> {
        (self.next_event > first).then_some(self.next_event)
    }

    /// Events for the subscriptions matching `tuple`: synchronous ones are
    /// queued in order, for delivery once the lock is released (see
    /// [`TupleSpace::deliver`]); queued ones are sent here.
    fn events(&mut self, action: Action, tuple: &Tuple) {
        let mut queued = Vec::new();
        for sub in self.subs.values() {
            if !sub.actions.contains(&action) || !sub.pattern.matches(tuple) {
                continue;
            }
            let event = TupleEvent {
                action,
                tuple: tuple.clone(),
            };
            match &sub.delivery {
                Delivery::Sync(listener) => queued.push((listener.clone(), event)),
                Delivery::Queued(queue) => {
                    if queue.clone().try_send(event).is_err() {
                        sub.dropped
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }
        for (listener, event) in queued {
            let number = self.next_event;
            self.next_event += 1;
            self.sync_events.push_back((number, listener, event));
        }
    }
}

impl TupleSpace {
    /// An empty space named `name` on the node of `env`.
    pub fn new(name: &str, env: Env, config: TupleSpaceConfig) -> Self {
        TupleSpace {
            inner: Arc::new(Inner {
                name: name.to_string(),
                env,
                config,
                state: Mutex::new(State::default()),
                event_delivered: Condvar::new(),
            }),
        }
    }

    /// The node the space lives on.
    pub(crate) fn env(&self) -> &Env {
        &self.inner.env
    }

    /// The space's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.locked()
    }

    /// Counts one operation in the node's metrics and, inside a sampled
    /// trace, opens its span (a child of the caller's), ended when the
    /// returned guard drops: a blocked `take` or `read` spans its wait.
    fn count_op(&self, op: &'static str) -> OpSpan {
        let env = &self.inner.env;
        let metrics = env.metrics().services();
        metrics.tuplespace_ops.get_or_create(&OpLabel { op }).inc();
        if !env.traces().is_on() {
            return OpSpan(None);
        }
        OpSpan(env.traces().child_span(
            op_span_name(op),
            opentelemetry::trace::SpanKind::Internal,
            vec![opentelemetry::KeyValue::new(
                "plexspaces.tuplespace.space",
                self.inner.name.clone(),
            )],
        ))
    }

    fn blocked_takers(&self) -> &prometheus_client::metrics::gauge::Gauge {
        &self.inner.env.metrics().services().tuplespace_blocked
    }

    /// The space's bounds.
    pub fn config(&self) -> &TupleSpaceConfig {
        &self.inner.config
    }

    pub(crate) fn check_size(&self, tuple: &Tuple) -> Result<(), TupleSpaceError> {
        self.check(tuple)
    }

    fn check(&self, tuple: &Tuple) -> Result<(), TupleSpaceError> {
        tuple.check_bounds(self.inner.config.tuple_bytes_max)
    }

    /// Writes a tuple.
    pub async fn write(&self, tuple: Tuple) -> Result<(), TupleSpaceError> {
        let _span = self.count_op("write");
        self.write_inner(tuple, None)
    }

    /// Writes a tuple that vanishes after `lease` (on the node's clock).
    pub async fn write_with_lease(
        &self,
        tuple: Tuple,
        lease: Duration,
    ) -> Result<(), TupleSpaceError> {
        let _span = self.count_op("write");
        let expires = self.inner.env.now() + lease;
        self.write_inner(tuple, Some(expires))
    }

    /// Writes several tuples, all or none (none if any is refused). The
    /// bound is checked and every tuple written under one lock, so no
    /// concurrent writer can make it write part.
    pub async fn write_all(&self, tuples: Vec<Tuple>) -> Result<(), TupleSpaceError> {
        let _span = self.count_op("write_all");
        for tuple in &tuples {
            self.check(tuple)?;
        }
        let mut wake = Vec::new();
        let events = {
            let mut state = self.state();
            let first_event = state.next_event;
            if state.tuples.len() + tuples.len() > self.inner.config.tuples_max {
                return Err(self.full());
            }
            for tuple in tuples {
                state.put_locked(tuple, None, &mut wake);
            }
            state.events_since(first_event)
        };
        self.notify(wake, events);
        Ok(())
    }

    fn full(&self) -> TupleSpaceError {
        TupleSpaceError::Full {
            space: self.inner.name.clone(),
            tuples_max: self.inner.config.tuples_max,
        }
    }

    fn write_inner(&self, tuple: Tuple, expires: Option<Instant>) -> Result<(), TupleSpaceError> {
        self.put(tuple, expires, true)
    }

    /// Puts back a tuple a durable take could not journal: it was in the
    /// space a moment ago, so the bound does not apply.
    pub(crate) fn restore(&self, tuple: Tuple) {
        let _ = self.put(tuple, None, false);
    }

    fn put(
        &self,
        tuple: Tuple,
        expires: Option<Instant>,
        bounded: bool,
    ) -> Result<(), TupleSpaceError> {
        self.check(&tuple)?;
        let mut wake = Vec::new();
        let events = {
            let mut state = self.state();
            let first_event = state.next_event;
            // A full space still accepts a tuple a blocked taker will take.
            let taker_waits = state
                .waiters
                .iter()
                .any(|w| w.take && w.pattern.matches(&tuple));
            if bounded && state.tuples.len() >= self.inner.config.tuples_max && !taker_waits {
                return Err(self.full());
            }
            state.put_locked(tuple, expires, &mut wake);
            state.events_since(first_event)
        };
        self.notify(wake, events);
        Ok(())
    }

    fn try_get(&self, pattern: &Pattern, take: bool) -> Option<Tuple> {
        let (found, events) = {
            let mut state = self.state();
            let first_event = state.next_event;
            let found = state.get_locked(pattern, take, self.inner.env.now())?;
            (found, state.events_since(first_event))
        };
        self.notify(Vec::new(), events);
        Some(found)
    }

    /// A matching tuple, left in place, if there is one now.
    pub async fn read_if_exists(&self, pattern: &Pattern) -> Option<Tuple> {
        let _span = self.count_op("read_if_exists");
        self.try_get(pattern, false)
    }

    /// A matching tuple, removed, if there is one now.
    pub async fn take_if_exists(&self, pattern: &Pattern) -> Option<Tuple> {
        let _span = self.count_op("take_if_exists");
        self.try_get(pattern, true)
    }

    fn scan(&self, pattern: &Pattern, take: bool) -> Vec<Tuple> {
        let mut out = Vec::new();
        let events = {
            let mut state = self.state();
            let first_event = state.next_event;
            let now = self.inner.env.now();
            if take {
                while let Some(slot) = state.find(pattern, now) {
                    let tuple = state.remove(&slot);
                    state.events(Action::Take, &tuple);
                    out.push(tuple);
                }
            } else {
                // Reading leaves tuples in place; expired ones are skipped
                // (and dropped by the next lookup that takes).
                let tuples = &state.tuples;
                out.extend(
                    tuples
                        .find_all(pattern)
                        .iter()
                        .map(|slot| tuples.get(slot))
                        .filter(|s| s.live_at(now))
                        .map(|s| s.tuple.clone()),
                );
            }
            state.events_since(first_event)
        };
        self.notify(Vec::new(), events);
        out
    }

    /// Every matching tuple, left in place.
    pub async fn read_all_if_exists(&self, pattern: &Pattern) -> Vec<Tuple> {
        let _span = self.count_op("read_all");
        self.scan(pattern, false)
    }

    /// Every matching tuple, removed.
    pub async fn take_all_if_exists(&self, pattern: &Pattern) -> Vec<Tuple> {
        let _span = self.count_op("take_all");
        self.scan(pattern, true)
    }

    /// How many tuples match.
    pub async fn count(&self, pattern: &Pattern) -> usize {
        let _span = self.count_op("count");
        self.scan(pattern, false).len()
    }

    /// Whether a tuple matches.
    pub async fn exists(&self, pattern: &Pattern) -> bool {
        let _span = self.count_op("exists");
        self.try_get(pattern, false).is_some()
    }

    /// Waits for a matching tuple and returns a copy (it stays).
    pub async fn read(&self, pattern: Pattern) -> Tuple {
        let _span = self.count_op("read");
        Wait {
            space: self,
            pattern,
            take: false,
            id: None,
        }
        .await
    }

    /// Waits for a matching tuple and removes it.
    pub async fn take(&self, pattern: Pattern) -> Tuple {
        let _span = self.count_op("take");
        Wait {
            space: self,
            pattern,
            take: true,
            id: None,
        }
        .await
    }

    /// [`TupleSpace::read`], giving up after `timeout`.
    pub async fn read_with_timeout(&self, pattern: Pattern, timeout: Duration) -> Option<Tuple> {
        self.inner
            .env
            .timeout(timeout, self.read(pattern))
            .await
            .ok()
    }

    /// [`TupleSpace::take`], giving up after `timeout`. A tuple handed over
    /// just as the timeout fires goes back into the space, never lost.
    pub async fn take_with_timeout(&self, pattern: Pattern, timeout: Duration) -> Option<Tuple> {
        self.inner
            .env
            .timeout(timeout, self.take(pattern))
            .await
            .ok()
    }

    /// Waits until a matching tuple exists.
    pub async fn wait_until_exists(&self, pattern: Pattern) {
        self.read(pattern).await;
    }

    /// Removes every tuple (waiters keep waiting).
    pub async fn clear(&self) {
        let _span = self.count_op("clear");
        let mut state = self.state();
        state.tuples.clear();
        state.leased = 0;
    }

    /// Tuples held now (expired ones may still be counted until touched).
    pub fn len(&self) -> usize {
        self.state().tuples.len()
    }

    /// Whether the space holds no tuples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Subscribes `listener` to `actions` on tuples matching `pattern`.
    pub fn subscribe(
        &self,
        pattern: Pattern,
        listener: Arc<dyn TupleSpaceListener>,
        qos: QoS,
        actions: &[Action],
    ) -> Subscription {
        let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let delivery = match qos {
            QoS::Synchronous => Delivery::Sync(listener),
            QoS::Queued { capacity } => {
                let (tx, mut rx) = mpsc::channel::<TupleEvent>(capacity.max(1));
                drop(self.inner.env.spawn(async move {
                    while let Some(event) = rx.next().await {
                        listener.on_event(&event);
                    }
                }));
                Delivery::Queued(tx)
            }
        };
        let mut state = self.state();
        let id = SubscriptionId(state.next_sub);
        state.next_sub += 1;
        state.subs.insert(
            id,
            Sub {
                pattern,
                actions: actions.to_vec(),
                delivery,
                dropped: dropped.clone(),
            },
        );
        Subscription { id, dropped }
    }

    /// Ends a subscription; false if it was not there.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        self.state().subs.remove(&id).is_some()
    }
}

/// A blocked read or take.
struct Wait<'a> {
    space: &'a TupleSpace,
    pattern: Pattern,
    take: bool,
    id: Option<u64>,
}

impl Future for Wait<'_> {
    type Output = Tuple;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Tuple> {
        let space = self.space;
        let mut state = space.state();
        let first_event = state.next_event;
        if let Some(id) = self.id {
            if let Some(handed) = state.delivered.remove(&id) {
                drop(state);
                space.blocked_takers().dec();
                self.id = None;
                return Poll::Ready(handed.tuple);
            }
            if let Some(waiter) = state.waiters.iter_mut().find(|w| w.id == id) {
                waiter.waker = cx.waker().clone();
            }
            return Poll::Pending;
        }
        // Looking and registering under one lock: a write either comes
        // before (and is found) or after (and is offered to this waiter).
        let now = space.inner.env.now();
        if let Some(tuple) = state.get_locked(&self.pattern, self.take, now) {
            let events = state.events_since(first_event);
            drop(state);
            space.notify(Vec::new(), events);
            return Poll::Ready(tuple);
        }
        let id = state.next_waiter;
        state.next_waiter += 1;
        state.waiters.push_back(Waiter {
            id,
            pattern: self.pattern.clone(),
            take: self.take,
            waker: cx.waker().clone(),
        });
        drop(state);
        space.blocked_takers().inc();
        self.id = Some(id);
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        self.space.blocked_takers().dec();
        let mut wake = Vec::new();
        let events = {
            let mut state = self.space.state();
            let first_event = state.next_event;
            state.waiters.retain(|w| w.id != id);
            // A tuple handed to this taker but never picked up goes back,
            // with its lease, and subscribers see it return (they saw it
            // taken). One whose lease ran out meanwhile is gone, as any
            // expired tuple is.
            if let Some(handed) = state.delivered.remove(&id)
                && self.take
                && handed
                    .expires
                    .is_none_or(|at| at > self.space.inner.env.now())
            {
                state.put_locked(handed.tuple, handed.expires, &mut wake);
            }
            state.events_since(first_event)
        };
        self.space.notify(wake, events);
    }
}

thread_local! {
    /// The spaces whose synchronous events this thread is delivering now
    /// (by address): a listener's own call on such a space leaves its
    /// events to the delivery loop it runs in.
    static DELIVERING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks this thread as delivering a space's events while a listener runs,
/// and on leaving (also by a listener's panic) records the event delivered
/// and lets the next deliverer go.
struct Delivering<'a> {
    space: &'a TupleSpace,
    number: u64,
}

impl Drop for Delivering<'_> {
    fn drop(&mut self) {
        DELIVERING.with(|d| d.borrow_mut().pop());
        let mut state = self.space.state();
        state.delivering = false;
        state.delivered_events = state.delivered_events.max(self.number + 1);
        drop(state);
        self.space.inner.event_delivered.notify_all();
    }
}

impl TupleSpace {
    fn address(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Wakes `wake`, then, if the call queued synchronous events, delivers
    /// every event up to (not including) number `events` (see
    /// [`State::events_since`]), once the lock is released.
    fn notify(&self, wake: Vec<Waker>, events: Option<u64>) {
        for waker in wake {
            waker.wake();
        }
        if let Some(upto) = events {
            self.deliver(upto);
        }
    }

    /// Returns once every synchronous event numbered below `upto` has been
    /// delivered: delivers them itself, one at a time in order, or waits
    /// while another task delivers. Inside a listener of this space, it
    /// returns at once: the loop that called the listener delivers the
    /// events its call caused right after it.
    fn deliver(&self, upto: u64) {
        let me = self.address();
        if DELIVERING.with(|d| d.borrow().contains(&me)) {
            return;
        }
        let mut state = self.state();
        loop {
            if state.delivered_events >= upto {
                return;
            }
            if state.delivering {
                state = plexspaces_storage::sync::wait(&self.inner.event_delivered, state);
                continue;
            }
            let (number, listener, event) = state
                .sync_events
                .pop_front()
                .expect("events numbered below next_event and not delivered are queued");
            debug_assert_eq!(number, state.delivered_events, "events leave in order");
            state.delivering = true;
            drop(state);
            {
                DELIVERING.with(|d| d.borrow_mut().push(me));
                let _delivering = Delivering {
                    space: self,
                    number,
                };
                listener.on_event(&event);
            }
            state = self.state();
        }
    }
}

/// A tuple space operation's span, ended when dropped (however the
/// operation ends: returned, failed or cancelled while waiting).
struct OpSpan(Option<opentelemetry::Context>);

impl Drop for OpSpan {
    fn drop(&mut self) {
        if let Some(cx) = &self.0 {
            use opentelemetry::trace::TraceContextExt;
            cx.span().end();
        }
    }
}

/// The span name of an operation (`'static`: names are few and fixed).
fn op_span_name(op: &'static str) -> &'static str {
    match op {
        "write" => "tuplespace.write",
        "write_all" => "tuplespace.write_all",
        "read_if_exists" => "tuplespace.read_if_exists",
        "take_if_exists" => "tuplespace.take_if_exists",
        "read_all" => "tuplespace.read_all",
        "take_all" => "tuplespace.take_all",
        "count" => "tuplespace.count",
        "exists" => "tuplespace.exists",
        "read" => "tuplespace.read",
        "take" => "tuplespace.take",
        "clear" => "tuplespace.clear",
        _ => "tuplespace",
    }
}
