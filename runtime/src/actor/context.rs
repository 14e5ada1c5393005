//! `Context`: what an actor's handlers can reach: itself, its node's seams,
//! the actor system (spawn, lookup, and the services that hang off it),
//! monitors, links and facets.

use super::actor_ref::Delivery;
use super::cell::wait_exit;
use super::facet::{Facet, FacetChain, FacetError, FacetInfo, Headers};
use super::{Actor, ActorId, ActorRef, ActorSystem, ExitReason, SpawnError};
use crate::env::Env;
use crate::seams::JoinHandle;

/// The context handed to an actor's handlers.
pub struct Context<A: Actor> {
    pub(crate) myself: ActorRef<A>,
    pub(crate) system: ActorSystem,
    pub(crate) facets: FacetChain,
    pub(crate) stop: Option<ExitReason>,
    pub(crate) watchers: Vec<JoinHandle<()>>,
    pub(crate) correlation: u64,
    /// This run's timers (made on first use, cancelled when the run ends).
    pub(crate) timers: Option<Box<super::timers::ActorTimers>>,
    /// What came with the message being handled, if anything.
    pub(crate) delivery: Option<Box<Delivery>>,
}

impl<A: Actor> Context<A> {
    fn timers(&mut self) -> &mut super::timers::ActorTimers {
        let deadlines = &self.myself.deadlines;
        self.timers
            .get_or_insert_with(|| Box::new(super::timers::ActorTimers::new(deadlines.clone())))
    }

    /// Sends `msg` to this actor after `delay` (a one-shot timer). Timers
    /// end with this run of the actor; see [`super::timers`] for lateness.
    pub fn send_after(
        &mut self,
        delay: std::time::Duration,
        msg: A::Msg,
    ) -> Result<super::TimerId, super::TimerError> {
        let myself = self.myself.clone();
        self.timers().send_after(&myself, delay, msg)
    }

    /// Sends a copy of `msg` to this actor every `period`, first after one
    /// period, until cancelled or the actor stops. Missed ticks are
    /// coalesced, never replayed in a burst.
    pub fn send_interval(
        &mut self,
        period: std::time::Duration,
        msg: A::Msg,
    ) -> Result<super::TimerId, super::TimerError>
    where
        A::Msg: Clone,
    {
        let myself = self.myself.clone();
        self.timers().send_interval(&myself, period, msg)
    }

    /// Cancels a timer; false if it already fired (one-shot), was
    /// cancelled, or is not this actor's. A cancelled timer never delivers
    /// again, though a message it delivered may still be in the mailbox.
    pub fn cancel_timer(&mut self, id: super::TimerId) -> bool {
        self.timers.as_mut().is_some_and(|t| t.cancel(id))
    }

    /// Timers live now (one-shots not yet fired, periodic not cancelled).
    pub fn live_timers(&mut self) -> usize {
        self.timers.as_ref().map_or(0, |t| t.live())
    }

    /// Bounds this actor's live timers (default
    /// [`super::timers::MAX_TIMERS_DEFAULT`]); timers already live stay.
    pub fn set_max_timers(&mut self, max: usize) {
        self.timers().set_max(max);
    }

    /// This actor's id.
    pub fn id(&self) -> &ActorId {
        self.myself.id()
    }

    /// A ref to this actor (to hand to others).
    pub fn myself(&self) -> &ActorRef<A> {
        &self.myself
    }

    /// The node's clock, randomness, spawner, disk and network. Handlers
    /// read time and draw random numbers here, never from globals, so the
    /// simulator controls them.
    pub fn env(&self) -> &Env {
        self.system.env()
    }

    /// The actor system of this node: spawn, lookup by name, and the
    /// node's services (registry, tuple spaces, channels, process groups,
    /// distribution), which their modules add to it.
    pub fn system(&self) -> &ActorSystem {
        &self.system
    }

    /// The correlation id of the message being handled.
    pub fn correlation_id(&self) -> u64 {
        self.correlation
    }

    /// Stops this actor normally once the current message is handled.
    pub fn stop(&mut self) {
        self.stop.get_or_insert(ExitReason::Normal);
    }

    /// Fails this actor once the current message is handled (its
    /// supervisor sees an error exit).
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.stop.get_or_insert(ExitReason::Error(reason.into()));
    }

    /// Spawns an actor on this node.
    pub fn spawn<B: Actor>(&self, name: &str, actor: B) -> Result<ActorRef<B>, SpawnError> {
        self.system.spawn(name, actor)
    }

    /// Looks up an actor of type `B` by name on this node.
    pub fn lookup<B: Actor>(&self, name: &str) -> Option<ActorRef<B>> {
        self.system.lookup(name)
    }

    /// Watches `target`: when it exits, this actor receives
    /// `on_exit(target_id, reason)` as a message. The watch ends with this
    /// actor.
    pub fn monitor<B: Actor>(
        &mut self,
        target: &ActorRef<B>,
        on_exit: impl FnOnce(ActorId, ExitReason) -> A::Msg + Send + 'static,
    ) {
        let (me, id, exit) = (
            self.myself.clone(),
            target.id().clone(),
            target.cell.exit_watch(),
        );
        let watcher = self.system.env().spawn(async move {
            let reason = wait_exit(exit).await;
            let _ = me.tell(on_exit(id, reason)).await;
        });
        self.watchers.push(watcher);
    }

    /// Links this actor and `target`: when either fails, the other fails
    /// too, with [`ExitReason::LinkDied`]. Clean exits do not propagate.
    pub fn link<B: Actor>(&mut self, target: &ActorRef<B>) {
        let env = self.system.env().clone();
        let propagate = |watched: std::sync::Arc<super::cell::Cell>,
                         victim: std::sync::Arc<super::cell::Cell>| {
            let exit = watched.exit_watch();
            env.spawn(async move {
                let reason = wait_exit(exit).await;
                if reason.is_failure() {
                    victim.request_stop(ExitReason::LinkDied {
                        linked: watched.id.clone(),
                        reason: reason.to_string(),
                    });
                }
            })
        };
        // Ended with this actor: its death must not be watched by itself.
        let watching_target = propagate(target.cell.clone(), self.myself.cell.clone());
        self.watchers.push(watching_target);
        // Detached: it must outlive this actor to pass its failure on.
        drop(propagate(self.myself.cell.clone(), target.cell.clone()));
    }

    /// The headers of the message being handled (sender, tenant,
    /// principal, trace context); empty if it came with none. Pass them on
    /// with `tell_with`/`ask_with` to keep a trace or a principal.
    pub fn headers(&self) -> &Headers {
        Delivery::headers_of(self.delivery.as_deref())
    }

    /// The caller of the message in hand, as the actor's authentication
    /// facet verified it (`None` without one, or outside a handler).
    pub fn principal(&self) -> Option<&super::facet::Principal> {
        self.delivery.as_ref().and_then(|d| d.principal.as_deref())
    }

    /// The node the message being handled came from, if it came over the
    /// network.
    pub fn source_node(&self) -> Option<&crate::env::NodeName> {
        self.delivery.as_ref().and_then(|d| d.source.as_ref())
    }

    /// The attached facet of type `T`, if one is: how a handler calls a
    /// capability facet (typed, no lookup by name).
    pub fn facet<T: Facet>(&self) -> Option<&T> {
        self.facets.get::<T>()
    }

    /// The attached facet of type `T`, mutably.
    pub fn facet_mut<T: Facet>(&mut self) -> Option<&mut T> {
        self.facets.get_mut::<T>()
    }

    /// Attaches a facet to this actor; it runs from the next message on.
    pub fn attach_facet(&mut self, facet: Box<dyn Facet>) -> Result<(), FacetError> {
        let id = self.myself.id().clone();
        self.facets.attach(&id, self.system.env(), facet)
    }

    /// Detaches the facet named `name`; false if none was attached.
    pub fn detach_facet(&mut self, name: &str) -> bool {
        let id = self.myself.id().clone();
        self.facets.detach(&id, name)
    }

    /// The attached facets, in the order they run.
    pub fn list_facets(&self) -> Vec<FacetInfo> {
        self.facets.list()
    }
}
