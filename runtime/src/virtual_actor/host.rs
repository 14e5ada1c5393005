//! A node's host for one kind of virtual actor: its activations, idle
//! deactivation, and hand-off when placement moves ids elsewhere.

use super::{ActivationStrategy, VirtualConfig, placement};
use crate::actor::{ActorId, ActorRef, ActorSystem, SpawnError, SpawnOptions};
use crate::distribution::{Activator, Exported, ExportedRef, MemberStatus};
use crate::durability::{Durable, DurableActor};
use crate::env::{Env, NodeName};
use crate::seams::{Clock, Instant};
use futures::future::BoxFuture;
use plexspaces_storage::sync::LockExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// Builds a virtual actor's initial state from its id (used when its
/// journal is empty).
pub(crate) type Factory<A> = Box<dyn Fn(&str) -> A + Send + Sync>;

struct Activation<A: DurableActor> {
    actor: ActorRef<Durable<A>>,
    last_used: Instant,
}

pub(crate) struct Host<A: DurableActor> {
    pub(crate) system: ActorSystem,
    pub(crate) config: VirtualConfig,
    factory: Factory<A>,
    activations: Mutex<BTreeMap<String, Activation<A>>>,
    /// Placement overrides (migrations) as this node has read them.
    pub(crate) placement: Arc<super::mobility::Placement>,
}

/// Why an id could not be activated here, now.
pub(crate) enum NotHere {
    /// Placement names another node.
    Elsewhere(NodeName),
    /// The previous activation is still stopping, or no node is eligible.
    NotYet,
}

impl<A: DurableActor> Host<A> {
    pub(crate) fn new(
        system: ActorSystem,
        config: VirtualConfig,
        factory: Factory<A>,
    ) -> Arc<Self> {
        Arc::new(Host {
            system,
            config,
            factory,
            activations: Mutex::new(BTreeMap::new()),
            placement: Arc::default(),
        })
    }

    fn activations(&self) -> MutexGuard<'_, BTreeMap<String, Activation<A>>> {
        self.activations.locked()
    }

    pub(crate) fn env(&self) -> &Env {
        self.system.env()
    }

    pub(crate) fn me(&self) -> &NodeName {
        self.system.node()
    }

    /// The nodes eligible to host (see [`eligible_nodes`]).
    pub(crate) fn eligible_nodes(&self) -> Vec<NodeName> {
        eligible_nodes(&self.system)
    }

    /// The node placement chooses for `id`, as this node sees the cluster.
    pub(crate) fn owner(&self, id: &str) -> Option<NodeName> {
        self.owner_among(id, &self.eligible_nodes())
    }

    /// The owner of `id` among `nodes`: the node it is pinned to while
    /// that node is eligible, else rendezvous placement.
    fn owner_among(&self, id: &str, nodes: &[NodeName]) -> Option<NodeName> {
        if let Some((pinned, _)) = self.placement.pinned(id)
            && nodes.contains(&pinned)
        {
            return Some(pinned);
        }
        placement::owner(&self.config.kind, id, nodes).cloned()
    }

    /// The name activations of `id` run under on their node.
    pub(crate) fn actor_name(&self, id: &str) -> String {
        format!("{}:{id}", self.config.kind)
    }

    /// The live activation of `id` here, made now if this node owns `id`.
    pub(crate) fn activate(&self, id: &str) -> Result<ActorRef<Durable<A>>, NotHere> {
        // Placement is read under the activations' lock, as `hand_off`
        // reads it, so an activation can never slip in after a hand-off
        // that should have retired it.
        let mut activations = self.activations();
        match self.owner(id) {
            Some(owner) if &owner == self.me() => {}
            Some(owner) => return Err(NotHere::Elsewhere(owner)),
            None => return Err(NotHere::NotYet),
        }
        let now = self.env().now();
        if let Some(active) = activations.get_mut(id)
            && !active.actor.status().is_finished()
        {
            active.last_used = now;
            return Ok(active.actor.clone());
        }
        let name = self.actor_name(id);
        let mut durability = self.config.durability.clone();
        // A migrating activation leaves a checkpoint for its new node.
        durability.checkpoint_on_stop |= self.config.mobility.is_some();
        let durable = Durable::new((self.factory)(id), self.config.journal.clone(), durability)
            .with_stream(name.clone());
        let mut facets = Vec::with_capacity(self.config.facets.len());
        for spec in &self.config.facets {
            match spec.build(self.system.facet_types(), &name) {
                Ok(facet) => facets.push(facet),
                Err(e) => {
                    // Checked when the kind was registered; a factory or
                    // registry that changed since is refused here.
                    tracing::warn!("cannot activate {name}: facet: {e}");
                    return Err(NotHere::NotYet);
                }
            }
        }
        if let Some(mobility) = &self.config.mobility {
            facets.push(Box::new(super::mobility::MobilityFacet::new(
                id,
                self.me().clone(),
                self.placement.clone(),
                mobility.clone(),
            )));
        }
        let options = SpawnOptions {
            mailbox_capacity: self.config.mailbox_capacity,
            facets,
        };
        match self.system.spawn_with(&name, durable, options) {
            Ok(actor) => {
                tracing::debug!(actor = %actor.id(), "virtual actor activated");
                activations.insert(
                    id.to_string(),
                    Activation {
                        actor: actor.clone(),
                        last_used: now,
                    },
                );
                Ok(actor)
            }
            // The previous activation is still on its way out.
            Err(SpawnError::NameTaken(_)) => Err(NotHere::NotYet),
            Err(e) => {
                tracing::warn!("cannot activate {name}: {e}");
                Err(NotHere::NotYet)
            }
        }
    }

    /// Marks `id` as used now (its idle time starts again).
    pub(crate) fn touch(&self, id: &str) {
        let now = self.env().now();
        if let Some(active) = self.activations().get_mut(id) {
            active.last_used = now;
        }
    }

    /// The ids active here, sorted.
    pub(crate) fn active_ids(&self) -> Vec<String> {
        self.activations()
            .iter()
            .filter(|(_, a)| !a.actor.status().is_finished())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Stops the activations that match `retire`, removing them first so
    /// no new message reaches them through this host.
    fn retire(&self, retire: impl Fn(&str, &Activation<A>) -> bool, why: &str) {
        self.retire_with(|| (), |_, id, a| retire(id, a), why);
    }

    /// As `retire`, with `setup` run under the activations' lock first and
    /// its result handed to the predicate.
    fn retire_with<T>(
        &self,
        setup: impl FnOnce() -> T,
        retire: impl Fn(&T, &str, &Activation<A>) -> bool,
        why: &str,
    ) {
        let retired: Vec<(String, ActorRef<Durable<A>>)> = {
            let mut activations = self.activations();
            let context = setup();
            let retire = |id: &str, a: &Activation<A>| retire(&context, id, a);
            let ids: Vec<String> = activations
                .iter()
                .filter(|(id, a)| a.actor.status().is_finished() || retire(id, a))
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| activations.remove(&id).map(|a| (id, a.actor)))
                .collect()
        };
        for (id, actor) in retired {
            tracing::debug!(kind = %self.config.kind, id, "virtual actor deactivated: {why}");
            actor.stop();
        }
    }

    /// Deactivates what has been idle for the deactivation timeout.
    fn sweep_idle(&self) {
        let now = self.env().now();
        let timeout = self.config.deactivation_timeout;
        self.retire(
            |_, a| now.saturating_duration_since(a.last_used) >= timeout,
            "idle",
        );
    }

    /// Deactivates what placement now gives to another node.
    pub(crate) fn hand_off(&self) {
        #[cfg(feature = "planted-bugs")]
        if self.config.planted_bug == Some(crate::PlantedBug::SkipHandOff) {
            return;
        }
        let me = self.me();
        self.retire_with(
            || self.eligible_nodes(),
            |nodes, id, _| self.owner_among(id, nodes).as_ref() != Some(me),
            "placement moved it",
        );
    }

    /// Deactivates everything (the host is closing).
    pub(crate) fn deactivate_all(&self) {
        self.retire(|_, _| true, "shutdown");
    }
}

/// The nodes eligible to host placed work: Up or Suspect members (a
/// suspect node keeps its work until it is declared down, so a slow
/// heartbeat does not move it), sorted. Just this node without
/// distribution.
pub(crate) fn eligible_nodes(system: &ActorSystem) -> Vec<NodeName> {
    match system.distribution() {
        None => vec![system.node().clone()],
        Some(dist) => {
            let mut nodes: Vec<NodeName> = dist
                .members()
                .into_iter()
                .filter(|m| matches!(m.status, MemberStatus::Up | MemberStatus::Suspect))
                .map(|m| m.node)
                .collect();
            nodes.sort();
            nodes
        }
    }
}

/// Runs the idle sweep until the host is gone.
pub(crate) async fn sweep_idle<A: DurableActor>(host: Weak<Host<A>>, every: Duration, env: Env) {
    loop {
        env.sleep(every).await;
        match host.upgrade() {
            Some(host) => host.sweep_idle(),
            None => return,
        }
    }
}

/// Whether virtual actors of this strategy are activated when their ref is
/// made rather than at the first message.
pub(crate) fn eager(strategy: ActivationStrategy) -> bool {
    matches!(strategy, ActivationStrategy::Eager)
}

/// What other nodes reach: the activation, touched on every delivery.
struct Touching<A: DurableActor> {
    host: Arc<Host<A>>,
    id: String,
    actor: ExportedRef<Durable<A>>,
}

impl<A: DurableActor> Exported for Touching<A> {
    fn deliver(
        &self,
        env: &Env,
        inbound: crate::distribution::Inbound,
        reply: Option<crate::distribution::ReplyTo>,
    ) -> BoxFuture<'_, ()> {
        self.host.touch(&self.id);
        self.actor.deliver(env, inbound, reply)
    }

    fn control(&self, op: crate::actor::cell::ControlOp) {
        self.actor.control(op);
    }

    fn stop(&self) {
        self.actor.stop();
    }

    fn exited(&self) -> BoxFuture<'static, crate::actor::ExitReason> {
        self.actor.exited()
    }
}

/// The host as other nodes see it: `kind:id` activates `id` if this node
/// owns it.
pub(crate) struct HostActivator<A: DurableActor>(pub(crate) Arc<Host<A>>);

impl<A: DurableActor> Activator for HostActivator<A> {
    fn activate(&self, id: &str) -> Option<Arc<dyn Exported>> {
        let actor = self.0.activate(id).ok()?;
        Some(Arc::new(Touching {
            host: self.0.clone(),
            id: id.to_string(),
            actor: ExportedRef(actor),
        }))
    }
}

/// The id of `id`'s activation on `node`.
pub(crate) fn activation_id<A: DurableActor>(
    host: &Host<A>,
    id: &str,
    node: NodeName,
) -> Option<ActorId> {
    ActorId::new(&host.actor_name(id), node).ok()
}
