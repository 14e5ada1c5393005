//! `ActorSystem`: one node's actors: spawning, the name registry, and each
//! actor's task (the loop that takes one message at a time).

use super::actor_ref::{Delivery, Envelope, ReplySender};
use super::cell::{Cell, ControlOp, Signal};
use super::facet::{
    Before, Facet, FacetChain, FacetError, FacetRegistry, Failure, HandlerTrace, Hooks, Message,
    MessageMeta, Verdict,
};
use super::mailbox::{self, Receiver};
use super::{
    Actor, ActorError, ActorId, ActorRef, ActorStatus, AskError, Context, ExitReason, SpawnError,
};
use crate::env::{Env, NodeName};
use crate::seams::{Clock, Spawn, panic_message};
use futures::FutureExt;
use plexspaces_storage::sync::LockExt;
use std::any::Any;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

/// Options for [`ActorSystem::spawn_with`].
pub struct SpawnOptions {
    /// Most messages the mailbox holds; `tell` waits and `try_tell` fails
    /// beyond it.
    pub mailbox_capacity: usize,
    /// Facets attached before the first message.
    pub facets: Vec<Box<dyn Facet>>,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            mailbox_capacity: ActorSystem::MAILBOX_CAPACITY_DEFAULT,
            facets: Vec::new(),
        }
    }
}

struct Registered {
    cell: Arc<Cell>,
    actor_ref: Box<dyn RegisteredRef>,
}

/// A registered actor's ref without its type: what the registry needs
/// of it (a typed lookup, its backlog for a draining shutdown).
trait RegisteredRef: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    /// Messages queued, and taken but not yet handled (behind the one in
    /// hand).
    fn backlog(&self) -> usize;
}

impl<A: Actor> RegisteredRef for ActorRef<A> {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn backlog(&self) -> usize {
        let taken = usize::try_from(self.cell.depth_reported()).unwrap_or(usize::MAX);
        self.mailbox.len().saturating_add(taken)
    }
}

struct SystemInner {
    env: Env,
    /// The node's subsystems (channels, the object registry, process
    /// groups, named tuple spaces, distribution), by type: each is made by
    /// its own module on first use ([`ActorSystem::service`]) and kept for
    /// the node's life. The actor layer holds them without knowing them,
    /// so it imports none of them; they reach the node through the system.
    /// Bounded by the number of subsystem types.
    services: Mutex<BTreeMap<std::any::TypeId, Arc<dyn Any + Send + Sync>>>,
    deadlines: Arc<super::deadline::Deadlines>,
    registry: Mutex<BTreeMap<String, Registered>>,
    /// Set by `shutdown`: nothing new is spawned afterwards.
    shut_down: std::sync::atomic::AtomicBool,
    facet_types: FacetRegistry,
}

/// An [`ActorSystem`] that may have shut down and been dropped.
#[derive(Clone)]
pub struct WeakSystem(std::sync::Weak<SystemInner>);

impl WeakSystem {
    /// The system, if it is still alive.
    pub fn upgrade(&self) -> Option<ActorSystem> {
        self.0.upgrade().map(|inner| ActorSystem { inner })
    }
}

/// One node's actors. Cheap to clone; clones share them.
#[derive(Clone)]
pub struct ActorSystem {
    inner: Arc<SystemInner>,
}

impl std::fmt::Debug for ActorSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorSystem")
            .field("node", self.node())
            .field("actors", &self.actor_ids().len())
            .finish()
    }
}

impl ActorSystem {
    /// Default mailbox capacity.
    pub const MAILBOX_CAPACITY_DEFAULT: usize = 1024;

    /// An empty actor system on the node `env` describes.
    pub fn new(env: Env) -> Self {
        ActorSystem {
            inner: Arc::new(SystemInner {
                deadlines: super::deadline::Deadlines::new(env.clone()),
                services: Mutex::new(BTreeMap::new()),
                env,
                registry: Mutex::new(BTreeMap::new()),
                shut_down: std::sync::atomic::AtomicBool::new(false),
                facet_types: FacetRegistry::with_builtins(),
            }),
        }
    }

    /// A handle that does not keep the node alive (for what the node
    /// itself holds, such as a facet builder in its registry).
    pub fn downgrade(&self) -> WeakSystem {
        WeakSystem(Arc::downgrade(&self.inner))
    }

    /// The node's seams.
    pub fn env(&self) -> &Env {
        &self.inner.env
    }

    /// The node's name.
    pub fn node(&self) -> &NodeName {
        self.inner.env.node()
    }

    /// The node's service of type `S`, made by `make` on first use (under
    /// the services' lock: `make` must not reach for another service).
    pub(crate) fn service<S: Any + Send + Sync>(&self, make: impl FnOnce() -> S) -> Arc<S> {
        let mut services = self.inner.services.locked();
        let service = services
            .entry(std::any::TypeId::of::<S>())
            .or_insert_with(|| Arc::new(make()))
            .clone();
        drop(services);
        service
            .downcast::<S>()
            .unwrap_or_else(|_| unreachable!("services are keyed by their own type"))
    }

    /// The deadlines service, for subsystems that time out asks.
    pub(crate) fn deadlines(&self) -> &Arc<super::deadline::Deadlines> {
        &self.inner.deadlines
    }

    /// The facet types that can be attached by name.
    pub fn facet_types(&self) -> &FacetRegistry {
        &self.inner.facet_types
    }

    fn names(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Registered>> {
        self.inner.registry.locked()
    }

    /// Spawns `actor` under `name` with the default options.
    pub fn spawn<A: Actor>(&self, name: &str, actor: A) -> Result<ActorRef<A>, SpawnError> {
        self.spawn_with(name, actor, SpawnOptions::default())
    }

    /// Spawns `actor` under `name`, unique on this node while it runs.
    pub fn spawn_with<A: Actor>(
        &self,
        name: &str,
        actor: A,
        options: SpawnOptions,
    ) -> Result<ActorRef<A>, SpawnError> {
        if options.mailbox_capacity == 0 {
            return Err(SpawnError::ZeroCapacity);
        }
        let id =
            ActorId::new(name, self.node().clone()).map_err(|e| SpawnError::InvalidName(e.0))?;
        // Facet names first, so a bad set registers nothing.
        let mut facet_names = std::collections::BTreeSet::new();
        for facet in &options.facets {
            if !facet_names.insert(facet.name()) {
                return Err(SpawnError::Facet(FacetError::NameTaken {
                    actor: id,
                    name: facet.name().to_string(),
                }));
            }
        }
        let (tx, rx) = mailbox::mailbox(options.mailbox_capacity);
        let cell = Cell::new(id.clone(), self.inner.env.metrics().kind_of::<A>());
        let actor_ref = ActorRef {
            cell: cell.clone(),
            mailbox: tx,
            deadlines: self.inner.deadlines.clone(),
        };
        {
            let mut registry = self.names();
            // Read under the registry's lock, which `shutdown` takes after
            // setting it: no spawn slips past a shutdown.
            if self
                .inner
                .shut_down
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                cell.abandon();
                return Err(SpawnError::ShutDown);
            }
            if let Some(existing) = registry.get(name)
                && matches!(
                    existing.cell.status(),
                    ActorStatus::Creating | ActorStatus::Active
                )
            {
                cell.abandon();
                return Err(SpawnError::NameTaken(id));
            }
            registry.insert(
                name.to_string(),
                Registered {
                    cell: cell.clone(),
                    actor_ref: Box::new(actor_ref.clone()),
                },
            );
        }
        let mut facets = FacetChain::default();
        for facet in options.facets {
            facets
                .attach(&id, &self.inner.env, facet)
                .expect("facet names were checked unique before spawning");
        }
        let context = Context {
            myself: actor_ref.clone(),
            system: self.clone(),
            facets,
            stop: None,
            watchers: Vec::new(),
            correlation: 0,
            timers: None,
            delivery: None,
        };
        // No JoinHandle: the loop catches its own panics and publishes its
        // exit through the cell, so the lighter `spawn_task` suffices (it
        // saves a few allocations per actor).
        self.inner.env.spawn_task(Box::pin(run(actor, context, rx)));
        Ok(actor_ref)
    }

    /// The running actor named `name`, if it is of type `A`.
    pub fn lookup<A: Actor>(&self, name: &str) -> Option<ActorRef<A>> {
        let registry = self.names();
        let entry = registry.get(name)?;
        entry
            .actor_ref
            .as_any()
            .downcast_ref::<ActorRef<A>>()
            .cloned()
    }

    /// The ids of the actors registered now, sorted.
    pub fn actor_ids(&self) -> Vec<ActorId> {
        self.names().values().map(|r| r.cell.id.clone()).collect()
    }

    /// The actors registered now with their status, sorted by id (what an
    /// operator lists).
    pub fn actors(&self) -> Vec<(ActorId, super::ActorStatus)> {
        let mut all: Vec<_> = self
            .names()
            .values()
            .map(|r| (r.cell.id.clone(), r.cell.status()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Messages the registered actors have yet to handle: queued in their
    /// mailboxes, or taken in their last batch behind the one in hand.
    pub fn queued_messages(&self) -> usize {
        self.names()
            .values()
            .map(|r| r.actor_ref.backlog())
            .fold(0, usize::saturating_add)
    }

    /// Waits, at most `deadline`, until the registered actors have handled
    /// everything queued for them (each at most busy with the message in
    /// hand), checking every 10 ms; true if they did. New messages may still arrive: a node
    /// draining before [`ActorSystem::shutdown`] stops taking new work
    /// first (leaving its cluster's placement).
    pub async fn drain(&self, deadline: std::time::Duration) -> bool {
        let env = self.env().clone();
        let until = env.now() + deadline;
        loop {
            if self.queued_messages() == 0 {
                return true;
            }
            if env.now() >= until {
                return false;
            }
            env.sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Whether [`ActorSystem::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.inner
            .shut_down
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops every actor and waits until all have exited. Afterwards the
    /// system spawns nothing more (`SpawnError::ShutDown`), as a stopped
    /// node would not.
    pub async fn shutdown(&self) {
        self.inner
            .shut_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let cells: Vec<Arc<Cell>> = self.names().values().map(|r| r.cell.clone()).collect();
        for cell in &cells {
            cell.request_stop(ExitReason::Shutdown);
        }
        for cell in cells {
            super::cell::wait_exit(cell.exit_watch()).await;
        }
    }

    fn unregister(&self, cell: &Arc<Cell>) {
        let mut registry = self.names();
        if registry
            .get(cell.id.name())
            .is_some_and(|r| Arc::ptr_eq(&r.cell, cell))
        {
            registry.remove(cell.id.name());
        }
    }
}

/// An actor's task: `pre_start`, then one message at a time until a stop,
/// then `post_stop`; panics are caught and become a Failed exit.
async fn run<A: Actor>(mut actor: A, mut ctx: Context<A>, mut rx: Receiver<Envelope<A>>) {
    let cell = ctx.myself.cell.clone();
    // If the executor drops this task (its node stopped or crashed), the
    // watchers still hear of the exit.
    let _dropped = DroppedExit(cell.clone());
    // Boxed: run once, they should not weigh on every idle actor's task.
    let started = Box::pin(AssertUnwindSafe(actor.pre_start(&mut ctx)).catch_unwind()).await;
    // The asker whose message crashed the actor hears of it (its reply
    // sender dropped) only once the exit is published, so whoever it tells
    // (a supervisor it asks for the child, say) already knows the actor
    // is gone. (Returned by the loop, not lent to it: a local the loop
    // borrowed would add to every idle actor's task.)
    let (reason, state_intact, crashed_asker) = match started {
        Err(panic) => (
            ExitReason::Panic(panic_message(panic.as_ref())),
            false,
            None,
        ),
        Ok(Err(e)) => (ExitReason::Error(e.to_string()), true, None),
        Ok(Ok(())) => {
            cell.set_status(ActorStatus::Active);
            message_loop(&mut actor, &mut ctx, &mut rx, &cell).await
        }
    };
    if state_intact {
        let _ = Box::pin(AssertUnwindSafe(actor.post_stop(&mut ctx, &reason)).catch_unwind()).await;
    }
    drop(actor);
    drop(rx); // close the mailbox: queued asks see Stopped
    cell.close();
    let id = cell.id.clone();
    ctx.facets.detach_all(&id);
    for watcher in ctx.watchers.drain(..) {
        watcher.abort();
    }
    cell.set_status(if reason.is_failure() {
        ActorStatus::Failed
    } else {
        ActorStatus::Terminated
    });
    ctx.system.unregister(&cell);
    cell.publish_exit(reason);
    drop(crashed_asker);
}

/// Publishes a Shutdown exit if the actor's task is dropped before it
/// published one itself (a no-op after a normal exit).
struct DroppedExit(Arc<Cell>);

impl Drop for DroppedExit {
    fn drop(&mut self) {
        if matches!(self.0.status(), ActorStatus::Creating | ActorStatus::Active) {
            self.0.set_status(ActorStatus::Terminated);
        }
        self.0.close();
        self.0.publish_exit(ExitReason::Shutdown);
    }
}

/// Waits for the next batch of messages (or a signal); comes to false
/// once the mailbox is closed and empty. A macro, not an async fn: the
/// wait is where idle actors sit, and a nested future would store its
/// own copy of the references in every idle task.
macro_rules! refill {
    ($rx:expr, $cell:expr, $batch:expr) => {{
        let (rx, cell, batch): (&mut Receiver<_>, &Cell, &mut std::collections::VecDeque<_>) =
            ($rx, $cell, $batch);
        // Drained: the kind's depth gauge no longer counts this actor's
        // queue (a compare, no write, when it did not).
        cell.report_depth(0);
        let open = std::future::poll_fn(|cx| {
            cell.waker.register(cx.waker());
            if cell.has_signal() {
                return Poll::Ready(true);
            }
            rx.poll_recv_batch(cx, batch)
        })
        .await;
        if open {
            // Counted per batch taken, not per message: one atomic add
            // however many came.
            if let Some(kind) = &cell.kind {
                kind.messages.inc_by(batch.len() as u64);
            }
            cell.report_depth((batch.len() + rx.len()).saturating_sub(1) as u64);
        }
        open
    }};
}

/// How a message loop ended.
enum LoopEnd<A: Actor> {
    /// The actor exits: the reason, whether its state is still sound
    /// (false after a panic in a handler), and the reply sender of the ask
    /// whose handler panicked, if one did.
    Exit(ExitReason, bool, Option<ReplySender<A>>),
    /// Facets were attached to an actor that had none, or its last one
    /// detached: go on in the other loop.
    Switch,
}

/// Returns the exit reason, whether the actor's state is still sound
/// (false after a panic in a handler), and the reply sender of the ask
/// whose handler panicked, if one did.
///
/// Two loops: one for an actor without facets (the handler alone, its
/// state inline in the actor's task) and one with (the facet chain around
/// every message, in a future boxed once for as long as facets stay
/// attached, so an actor without facets does not carry its size and an
/// actor with them does not pay an allocation per message).
async fn message_loop<A: Actor>(
    actor: &mut A,
    ctx: &mut Context<A>,
    rx: &mut Receiver<Envelope<A>>,
    cell: &Arc<Cell>,
) -> (ExitReason, bool, Option<ReplySender<A>>) {
    let mut batch = std::collections::VecDeque::new();
    loop {
        if !ctx.facets.is_empty() {
            match Box::pin(facet_loop(actor, ctx, rx, cell, &mut batch)).await {
                LoopEnd::Exit(reason, intact, asker) => return (reason, intact, asker),
                LoopEnd::Switch => continue,
            }
        }
        // The plain loop, written here rather than in a function of its
        // own: an idle actor waits in it, and a nested future would keep
        // a second copy of these references in every idle task.
        let envelope = match next_in_hand(ctx, cell, &mut batch, false) {
            Some(Ok(envelope)) => envelope,
            Some(Err(LoopEnd::Exit(reason, intact, asker))) => return (reason, intact, asker),
            Some(Err(LoopEnd::Switch)) => continue,
            None if refill!(rx, cell, &mut batch) => continue,
            None => return (ExitReason::Normal, true, None),
        };
        if let Some((panic, asker)) = handle_plain(actor, ctx, envelope).await {
            return (ExitReason::Panic(panic), false, asker);
        }
        if let Some(reason) = ctx.stop.take() {
            return (reason, true, None);
        }
    }
}

/// The loop of an actor with facets.
async fn facet_loop<A: Actor>(
    actor: &mut A,
    ctx: &mut Context<A>,
    rx: &mut Receiver<Envelope<A>>,
    cell: &Arc<Cell>,
    batch: &mut std::collections::VecDeque<Envelope<A>>,
) -> LoopEnd<A> {
    // Held for the loop's life: the facets' meta borrows them, and a
    // clone per message would be two atomic round trips each.
    let env = ctx.system.env().clone();
    loop {
        let envelope = match next_in_hand(ctx, cell, batch, true) {
            Some(Ok(envelope)) => envelope,
            Some(Err(end)) => return end,
            None if refill!(rx, cell, batch) => continue,
            None => return LoopEnd::Exit(ExitReason::Normal, true, None),
        };
        let in_hand = batch.len() + rx.len();
        let crash = if ctx
            .facets
            .has_any(Hooks::BEFORE.with(Hooks::SPAN).with(Hooks::TRACE))
        {
            handle_with_facets(actor, ctx, cell, &env, in_hand, envelope).await
        } else {
            handle_observed(actor, ctx, cell, &env, in_hand, envelope).await
        };
        if let Some((panic, asker)) = crash {
            return LoopEnd::Exit(ExitReason::Panic(panic), false, asker);
        }
        if let Some(reason) = ctx.stop.take() {
            return LoopEnd::Exit(reason, true, None);
        }
    }
}

/// The next message in hand, after any signal (stop, facet control)
/// waiting before it; `None` when the batch is drained (then `refill!`);
/// or how the loop ends. `with_facets` says which loop asks:
/// a control signal that attaches the first facet or detaches the last
/// switches loops. Not async: the loops call it per message, and a future
/// per message would cost more than the work.
fn next_in_hand<A: Actor>(
    ctx: &mut Context<A>,
    cell: &Cell,
    batch: &mut std::collections::VecDeque<Envelope<A>>,
    with_facets: bool,
) -> Option<Result<Envelope<A>, LoopEnd<A>>> {
    // Signals (stop, facet control) go before the next message.
    while let Some(signal) = cell.take_signal() {
        match signal {
            Signal::Stop(reason) => return Some(Err(LoopEnd::Exit(reason, true, None))),
            Signal::Control(op) => {
                apply_control(ctx, op);
                if ctx.facets.is_empty() == with_facets {
                    return Some(Err(LoopEnd::Switch));
                }
            }
        }
    }
    batch.pop_front().map(Ok)
}

fn apply_control<A: Actor>(ctx: &mut Context<A>, op: ControlOp) {
    let id = ctx.myself.id().clone();
    match op {
        ControlOp::Attach(facet, reply) => {
            let _ = reply.send(ctx.facets.attach(&id, ctx.system.env(), facet));
        }
        ControlOp::AttachNamed {
            type_name,
            config,
            reply,
        } => {
            let attached = ctx
                .system
                .facet_types()
                .build(&type_name, config)
                .map_err(FacetError::from)
                .and_then(|facet| ctx.facets.attach(&id, ctx.system.env(), facet));
            let _ = reply.send(attached);
        }
        ControlOp::Detach(name, reply) => {
            let _ = reply.send(Ok(ctx.facets.detach(&id, &name)));
        }
        ControlOp::List(reply) => {
            let _ = reply.send(Ok(ctx.facets.list()));
        }
        ControlOp::Inspect(inspect) => inspect(&mut ctx.facets),
    }
}

/// What a handler's panic leaves: its message and the asker's reply
/// sender (if it was an ask), to be dropped once the exit is published.
type Crash<A> = (String, Option<ReplySender<A>>);

/// Runs one message through the handler of an actor without facets;
/// returns the panic if the handler panicked.
async fn handle_plain<A: Actor>(
    actor: &mut A,
    ctx: &mut Context<A>,
    envelope: Envelope<A>,
) -> Option<Crash<A>> {
    let (msg, reply, delivery) = open_envelope(ctx, envelope);
    ctx.delivery = delivery;
    match AssertUnwindSafe(actor.handle(ctx, msg))
        .catch_unwind()
        .await
    {
        Ok(result) => {
            if result.is_err() {
                count_failure(ctx);
            }
            if let Some(reply) = reply {
                let _ = reply.send(result.map_err(AskError::Failed));
            }
            None
        }
        Err(panic) => {
            count_failure(ctx);
            Some((panic_message(panic.as_ref()), reply))
        }
    }
}

/// Takes a message out of its envelope for handling: the context gets
/// its correlation id, a periodic timer's tick is marked taken; the
/// message, the asker's reply sender and the delivery come back.
fn open_envelope<A: Actor>(
    ctx: &mut Context<A>,
    envelope: Envelope<A>,
) -> (A::Msg, Option<ReplySender<A>>, Option<Box<Delivery>>) {
    let Envelope {
        msg,
        reply,
        correlation,
        delivery,
    } = envelope;
    if let Some(tick) = delivery.as_ref().and_then(|d| d.tick.as_ref()) {
        tick.store(false, std::sync::atomic::Ordering::Release);
    }
    ctx.correlation = correlation;
    (msg, reply, delivery)
}

/// A handler returned an error or panicked: counted for its kind.
fn count_failure<A: Actor>(ctx: &Context<A>) {
    if let Some(kind) = &ctx.myself.cell.kind {
        kind.failures.inc();
    }
}

/// What the facets are told about the message in hand.
fn meta_of<'a, A: Actor>(
    cell: &'a Cell,
    correlation: u64,
    mailbox_len: usize,
    is_ask: bool,
    delivery: Option<&'a Delivery>,
    env: &'a Env,
) -> MessageMeta<'a> {
    MessageMeta {
        actor: &cell.id,
        kind: cell.kind.as_ref().map_or("", |k| k.kind.as_str()),
        correlation,
        msg_type: std::any::type_name::<A::Msg>(),
        mailbox_len,
        is_ask,
        headers: Delivery::headers_of(delivery),
        source_node: delivery.and_then(|d| d.source.as_ref()),
        source_certified: delivery.is_some_and(|d| d.source_certified),
        principal: delivery.and_then(|d| d.principal.as_deref()),
        env,
    }
}

/// Runs every `after` hook in chain order, borrowing the reply afresh for
/// each call and not across its await (a reply need not be `Sync`).
macro_rules! run_after {
    ($facets:expr, $meta:expr, $reply:expr, $elapsed:expr) => {
        for at in 0..$facets.len() {
            let hook = $facets.after_at(at, $meta, $reply, $elapsed);
            if let Err(waiting) = hook.now_or_later() {
                waiting.await;
            }
        }
    };
}

/// Tells the facets how the handler did and answers the asker; comes to
/// the panic if the handler panicked. A macro, not an async fn: expanded
/// in the caller's future, it costs no second future per message.
macro_rules! settle {
    ($ctx:expr, $cell:expr, $env:expr, $mailbox_len:expr, $reply:expr, $handled:expr, $elapsed:expr) => {{
        let (ctx, reply, elapsed): (&mut Context<A>, Option<ReplySender<A>>, Option<Duration>) =
            ($ctx, $reply, $elapsed);
        let delivery = ctx.delivery.take();
        let meta = meta_of::<A>(
            $cell,
            ctx.correlation,
            $mailbox_len,
            reply.is_some(),
            delivery.as_deref(),
            $env,
        );
        match $handled {
            Ok(Ok(value)) => {
                if ctx.facets.has(Hooks::AFTER) {
                    run_after!(ctx.facets, &meta, &value, elapsed);
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(value));
                }
                None
            }
            Ok(Err(error)) => {
                count_failure(ctx);
                ctx.facets
                    .on_error(&meta, &Failure::Handler(&error), elapsed, None)
                    .await;
                if let Some(reply) = reply {
                    let _ = reply.send(Err(AskError::Failed(error)));
                }
                None
            }
            Err(panic) => {
                count_failure(ctx);
                let panic = panic_message(panic.as_ref());
                ctx.facets
                    .on_error(&meta, &Failure::Panicked(&panic), elapsed, None)
                    .await;
                Some((panic, reply))
            }
        }
    }};
}

/// Runs one message through the facets and the handler; returns the panic
/// if the handler panicked. `mailbox_len` counts the messages behind it.
async fn handle_with_facets<A: Actor>(
    actor: &mut A,
    ctx: &mut Context<A>,
    cell: &Cell,
    env: &Env,
    mailbox_len: usize,
    envelope: Envelope<A>,
) -> Option<Crash<A>> {
    let (msg, reply, mut delivery) = open_envelope(ctx, envelope);
    // The delivery is lent to the facets here and handed back to the
    // context for the handler (`ctx.headers()`); the previous message's
    // (left by the plain loop before a switch) goes.
    ctx.delivery = None;
    // Each hook is called with a fresh borrow of the payload, dropped
    // before its result is awaited (the payload need not be `Sync`).
    let mut decided = Before::Continue;
    let befores = if ctx.facets.has(Hooks::BEFORE) {
        ctx.facets.len()
    } else {
        0
    };
    for at in 0..befores {
        let hook = {
            let message = Message {
                meta: meta_of::<A>(
                    cell,
                    ctx.correlation,
                    mailbox_len,
                    reply.is_some(),
                    delivery.as_deref(),
                    env,
                ),
                payload: &msg,
                inner: A::inner_message(&msg),
                wire: delivery.as_ref().and_then(|d| d.wire.as_deref()),
            };
            ctx.facets.before_at(at, &message)
        };
        let verdict = match hook.now_or_later() {
            Ok(verdict) => verdict,
            Err(waiting) => waiting.await,
        };
        match verdict {
            Verdict::Continue => continue,
            Verdict::ContinueAs(principal) => {
                delivery.get_or_insert_with(Box::default).principal = Some(principal);
                continue;
            }
            Verdict::Reject(rejection) => decided = Before::Rejected { at, rejection },
            Verdict::Answer(answer) => decided = Before::Answered { at, answer },
        }
        break;
    }
    let meta = meta_of::<A>(
        cell,
        ctx.correlation,
        mailbox_len,
        reply.is_some(),
        delivery.as_deref(),
        env,
    );
    match decided {
        Before::Continue => {}
        Before::Rejected { at, rejection } => {
            if let Some(kind) = &cell.kind {
                kind.rejected.inc();
            }
            let by = ctx.facets.name_at(at).to_string();
            let failure = Failure::Rejected {
                by: &by,
                rejection: &rejection,
            };
            ctx.facets.on_error(&meta, &failure, None, Some(at)).await;
            if let Some(reply) = reply {
                let error = ActorError::from_rejection(&by, &rejection);
                let _ = reply.send(Err(AskError::Failed(error)));
            }
            return None;
        }
        Before::Answered { at, answer } => {
            let answered = match answer.downcast::<A::Reply>() {
                Ok(value) => {
                    run_after!(ctx.facets, &meta, &*value, None);
                    Ok(*value)
                }
                Err(_) => {
                    let error = ActorError::new(format!(
                        "facet {:?} answered in the actor's place with a value that is not a {}",
                        ctx.facets.name_at(at),
                        std::any::type_name::<A::Reply>()
                    ));
                    let failure = Failure::Handler(&error);
                    ctx.facets.on_error(&meta, &failure, None, None).await;
                    Err(error)
                }
            };
            if let Some(reply) = reply {
                let _ = reply.send(answered.map_err(AskError::Failed));
            }
            return None;
        }
    }
    // Asked before the delivery moves to the context (the meta borrows it).
    let span = if ctx.facets.has(Hooks::SPAN) {
        ctx.facets.handler_span(&meta)
    } else {
        None
    };
    let trace = if ctx.facets.has(Hooks::TRACE) {
        ctx.facets.trace_context()
    } else {
        None
    };
    // The handler sees the headers through its context.
    let delivery = std::mem::replace(&mut ctx.delivery, delivery);
    debug_assert!(delivery.is_none(), "the context held no other delivery");
    // The clock is read only if a facet wants this handler timed.
    let started = ctx.facets.times().then(|| env.now());
    if let (Some(span), Some(HandlerTrace::Context(trace))) = (&span, &trace) {
        // The log lines carry the trace the handler runs in, even a new one.
        use opentelemetry::trace::TraceContextExt;
        let trace_id = trace.span().span_context().trace_id();
        span.record("trace_id", tracing::field::display(trace_id));
    }
    let handling = AssertUnwindSafe(actor.handle(ctx, msg)).catch_unwind();
    // One arm per wrapping: each a future type of its own, none nested in
    // a helper future.
    use crate::observability::trace_scope::InUnsampled;
    use opentelemetry::context::FutureExt as _;
    use tracing::Instrument as _;
    let handled = match (span, trace) {
        (None, None) => handling.await,
        (None, Some(HandlerTrace::Unsampled(trace))) => InUnsampled::new(trace, handling).await,
        (None, Some(HandlerTrace::Context(cx))) => handling.with_context(cx).await,
        (Some(span), None) => handling.instrument(span).await,
        (Some(span), Some(HandlerTrace::Unsampled(trace))) => {
            InUnsampled::new(trace, handling.instrument(span)).await
        }
        (Some(span), Some(HandlerTrace::Context(cx))) => {
            handling.instrument(span).with_context(cx).await
        }
    };
    let elapsed = started.map(|started| env.now() - started);
    settle!(ctx, cell, env, mailbox_len, reply, handled, elapsed)
}

/// Runs one message through the handler of an actor whose facets only
/// observe outcomes (no `before`, span or trace: the metrics facet's
/// shape), without the steps they would skip.
async fn handle_observed<A: Actor>(
    actor: &mut A,
    ctx: &mut Context<A>,
    cell: &Cell,
    env: &Env,
    mailbox_len: usize,
    envelope: Envelope<A>,
) -> Option<Crash<A>> {
    let (msg, reply, delivery) = open_envelope(ctx, envelope);
    ctx.delivery = delivery;
    // The clock is read only if a facet wants this handler timed.
    let started = ctx.facets.times().then(|| env.now());
    let handled = AssertUnwindSafe(actor.handle(ctx, msg))
        .catch_unwind()
        .await;
    let elapsed = started.map(|started| env.now() - started);
    settle!(ctx, cell, env, mailbox_len, reply, handled, elapsed)
}
