//! Distribution: actors on several nodes talking as if local.
//!
//! A node joins a cluster with [`ActorSystem::start_distribution`](crate::actor::ActorSystem::start_distribution): it
//! listens, dials its seeds, authenticates every peer with the cluster
//! secret (see `net/PROTOCOL.md`), gossips membership in heartbeats and
//! declares silent peers suspect, then down.
//!
//! - **Exporting**: [`Distribution::export`] makes a local actor reachable
//!   from other nodes (its `Msg` and `Reply` must be serde types: see
//!   [`RemoteActor`]). It stays exported until it exits.
//! - **Remote refs**: [`ActorSystem::resolve`](crate::actor::ActorSystem::resolve) (or
//!   [`Distribution::remote_ref`]) returns an ordinary [`ActorRef`] for an
//!   actor on another node: `tell`, `ask` with its timeout, `stop`, monitors
//!   and links work as locally. A ref stands on a local proxy; its exit is
//!   the remote actor's exit, or [`ExitReason::NodeDown`](crate::actor::ExitReason::NodeDown) when the node is
//!   declared down or restarts.
//! - **A node that comes back** (as Erlang's `noconnection`): when a node is
//!   declared down, monitors and links of refs to its actors fire once with
//!   `NodeDown`, and while it stays down an `ask` fails at once with
//!   [`AskError::NodeDown`](crate::actor::AskError::NodeDown) and a `tell` is
//!   dropped. The ref itself stays valid: when the node is Up again with the
//!   same run, the ref works again (a monitor made then waits for the next
//!   exit), and if its actor no longer lives there, the ref exits with the
//!   actor's `NoSuchActor` verdict. A node that restarted (a new
//!   incarnation) has none of its old run's actors: refs to them exit for
//!   good, and resolving the id again reaches the new run's actor.
//! - **Ordering**: everything one node sends another goes through one queue
//!   onto one connection, so messages from one sender to one actor arrive in
//!   order, as locally. Across a reconnect: what was queued but not yet
//!   written goes out in order on the new connection; a message written to
//!   a connection that then broke may be lost (a tell silently, an ask as
//!   [`AskError::ConnectionLost`](crate::actor::AskError::ConnectionLost)); nothing is duplicated. At most once.
//! - **Unreachable nodes**: while a peer cannot be reached, messages wait
//!   in its queue (bounded; `tell` then waits), and an `ask` fails with
//!   [`AskError::Timeout`](crate::actor::AskError::Timeout) at its timeout.
//!
//! All I/O goes through the node's [`Env`]: `Net` for connections, `Clock`
//! for heartbeats and timeouts, `Rng` for nonces and backoff jitter; so
//! the simulator can partition, delay and crash nodes.

mod config;
mod conn;
mod error;
mod export;
mod facets;
mod incarnation;
mod link;
mod loops;
mod membership;
mod meter;
mod node;
pub(crate) mod peers;
mod remote_ref;

pub use config::{DistributionConfig, RemoteActor};
pub use error::{DistributionError, ResolveError};
use loops::{join_through, tick};
pub use membership::{MemberInfo, MemberStatus};
pub(crate) use node::ViewListener;
use node::{Dist, ExportEntry, State};
pub use plexspaces_net::wire::{AdmissionLimits, ClusterSecret};

use crate::actor::deadline::Deadlines;
use crate::actor::{Actor, ActorId, ActorRef};
use crate::env::{Env, NodeName};
use crate::retry::Backoff;
use crate::seams::{Clock, Elapsed, JoinHandle, Rng};
use crate::security::NodeTls;
pub(crate) use export::{Activator, Exported, ExportedRef, Inbound, ReplyTo};
use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};
use link::Link;
use membership::{Change, Membership};
use plexspaces_net::tls::TlsContext;
use plexspaces_net::wire::{
    self, Admission, FrameReader, FrameWriter, Identity, MAX_FRAME_LEN_DEFAULT, Member, WireError,
};
use plexspaces_net::{Connection, DynReader, DynWriter, Listener, Net, NetError};
use plexspaces_storage::sync::LockExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

/// A node's membership in its cluster. Cheap to clone.
#[derive(Clone)]
pub struct Distribution {
    inner: Arc<Dist>,
}

impl fmt::Debug for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Distribution")
            .field("node", self.inner.env.node())
            .field("addr", &self.inner.me.listen)
            .finish()
    }
}

impl Distribution {
    pub(crate) async fn start(
        env: Env,
        deadlines: Arc<Deadlines>,
        config: DistributionConfig,
    ) -> Result<Distribution, DistributionError> {
        config.validate()?;
        let mut listener = env
            .net()
            .listen(config.listen)
            .await
            .map_err(DistributionError::Listen)?;
        let node = env.node().clone();
        let bound = listener.local_addr();
        let listen = config.advertise.unwrap_or(bound);
        let incarnation = incarnation::next(&env)
            .await
            .map_err(DistributionError::Disk)?;
        let me = Identity {
            node: node.to_string(),
            listen,
            incarnation,
        };
        let membership = Membership::new(MemberInfo {
            node: node.clone(),
            addr: listen,
            incarnation,
            status: MemberStatus::Up,
        });
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let config_admission = config.admission;
        let dist = Arc::new(Dist {
            env,
            config,
            me,
            bound,
            deadlines,
            admission: Admission::new(config_admission),
            state: Mutex::new(State {
                membership,
                links: BTreeMap::new(),
                exports: BTreeMap::new(),
                next_export: 0,
                proxies: BTreeMap::new(),
                watchers: Vec::new(),
                activators: BTreeMap::new(),
                view_listeners: Vec::new(),
                closed: false,
            }),
            shutdown: shutdown_rx.shared(),
            shutdown_tx: Mutex::new(Some(shutdown_tx)),
        });
        dist.env.metrics().set_collector(
            "membership",
            meter::MembershipCollector(Arc::downgrade(&dist)),
        );
        let accepting = dist.clone();
        dist.spawn_detached(async move {
            loop {
                match listener.accept().await {
                    Ok((connection, from)) => match accepting.admission.admit(from) {
                        Ok(admitted) => {
                            let dist = accepting.clone();
                            accepting.spawn_detached(conn::accepted(dist, connection, admitted));
                        }
                        // Closed unread: dropping the connection closes it.
                        Err(refused) => tracing::debug!(%from, "connection closed: {refused}"),
                    },
                    Err(e) => {
                        // A failed accept (out of descriptors, say) must not
                        // spin; try again after a heartbeat.
                        tracing::warn!("accept failed: {e}");
                        let pause = accepting.config.heartbeat_interval;
                        accepting.env.sleep(pause).await;
                    }
                }
            }
        });
        dist.spawn_detached(tick(dist.clone()));
        for seed in dist.config.seeds.clone() {
            dist.spawn_detached(join_through(dist.clone(), seed));
        }
        Ok(Distribution { inner: dist })
    }

    /// This node's name.
    pub fn node(&self) -> &NodeName {
        self.inner.env.node()
    }

    /// The address peers dial to reach this node (the advertised one, if
    /// configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.me.listen
    }

    /// The address this node's listener is bound to (differs from
    /// [`Distribution::local_addr`] behind NAT or a proxy).
    pub fn bound_addr(&self) -> SocketAddr {
        self.inner.bound
    }

    /// Every member this node knows (itself first), with its status.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.inner.state().membership.members()
    }

    /// Whether this node has joined its cluster, as readiness sees it: it
    /// is Up in its own view and, if it has seeds, hears from at least one
    /// other member.
    pub fn joined(&self) -> crate::observability::health::CheckOutcome {
        use crate::observability::health::CheckOutcome;
        let members = self.members();
        let up = members
            .iter()
            .filter(|m| m.status == MemberStatus::Up)
            .count();
        let own = [self.local_addr(), self.bound_addr()];
        let other_seeds = self.inner.config.seeds.iter().any(|s| !own.contains(s));
        let others_known = members.len() > 1 || other_seeds;
        if others_known && up < 2 {
            CheckOutcome::failing(format!(
                "no other member is up ({} known, seeds {:?})",
                members.len(),
                self.inner.config.seeds
            ))
        } else {
            CheckOutcome::ok(format!("{up} of {} members up", members.len()))
        }
    }

    /// The membership view number: it increases whenever a member comes up
    /// or goes down (as this node sees it).
    pub fn view(&self) -> u64 {
        self.inner.state().membership.view()
    }

    /// The nodes this node considers Up, itself included, sorted.
    pub fn up_nodes(&self) -> Vec<NodeName> {
        let mut up: Vec<NodeName> = self
            .members()
            .into_iter()
            .filter(|m| m.status == MemberStatus::Up)
            .map(|m| m.node)
            .collect();
        up.sort();
        up
    }

    /// Waits until `condition` holds for the member list (checked now and
    /// after every membership change), for at most `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        condition: impl Fn(&[MemberInfo]) -> bool + Send + Sync,
    ) -> Result<(), Elapsed> {
        let dist = &self.inner;
        let met = std::future::poll_fn(|cx| {
            let mut state = dist.state();
            if condition(&state.membership.members()) {
                return Poll::Ready(());
            }
            state.watchers.push(cx.waker().clone());
            Poll::Pending
        });
        dist.env.timeout(timeout, met).await
    }

    /// Makes `actor` (a local actor) reachable from other nodes by its name,
    /// until it exits. Exporting again replaces the earlier export.
    pub fn export<A: RemoteActor>(&self, actor: &ActorRef<A>) -> Result<(), ResolveError> {
        if !actor.is_local() || actor.id().node() != self.inner.env.node() {
            return Err(ResolveError::NoSuchActor(actor.id().clone()));
        }
        let name = actor.id().name().to_string();
        let exported: Arc<dyn Exported> = Arc::new(ExportedRef(actor.clone()));
        let exited = exported.exited();
        let serial = {
            let mut state = self.inner.state();
            state.next_export += 1;
            let serial = state.next_export;
            state.exports.insert(
                name.clone(),
                ExportEntry {
                    actor: exported,
                    serial,
                },
            );
            serial
        };
        let dist = self.inner.clone();
        self.inner.spawn_detached(async move {
            exited.await;
            let mut state = dist.state();
            if state.exports.get(&name).is_some_and(|e| e.serial == serial) {
                state.exports.remove(&name);
            }
        });
        Ok(())
    }

    /// Hosts virtual actors of `kind` here: messages for `kind:id` reach
    /// `activator`, which activates `id` if placement chose this node.
    pub(crate) fn register_activator(&self, kind: &str, activator: Arc<dyn Activator>) {
        self.inner
            .state()
            .activators
            .insert(kind.to_string(), activator);
    }

    /// Calls `listener` after every membership change.
    pub(crate) fn on_view_change(&self, listener: ViewListener) {
        self.inner.state().view_listeners.push(listener);
    }

    /// Stops exporting the actor named `name`; false if it was not exported.
    pub fn unexport(&self, name: &str) -> bool {
        self.inner.state().exports.remove(name).is_some()
    }

    /// A ref to actor `id` on another member node. Refs to one actor share
    /// one proxy, so they keep one order, however many callers resolve it
    /// at once.
    pub fn remote_ref<A: RemoteActor>(&self, id: &ActorId) -> Result<ActorRef<A>, ResolveError> {
        let dist = &self.inner;
        if id.node() == dist.env.node() {
            return Err(ResolveError::NoSuchActor(id.clone()));
        }
        if dist.state().membership.get(id.node()).is_none() {
            return Err(ResolveError::UnknownNode(id.clone()));
        }
        dist.ensure_link(id.node());
        // Looked up and inserted under one lock: two callers never make
        // two proxies for one actor.
        let (actor, end, link) = {
            let mut state = dist.state();
            if let Some(existing) = state.proxies.get(id)
                && let Some(actor) = existing.downcast_ref::<ActorRef<A>>()
                && !actor.cell.is_closed()
            {
                return Ok(actor.clone());
            }
            let Some(link) = state.links.get(id.node()).cloned() else {
                // Shut down between the check and here.
                return Err(ResolveError::NotDistributed(id.clone()));
            };
            let (actor, end) = crate::actor::proxy::proxy::<A>(
                id.clone(),
                dist.config.proxy_mailbox,
                dist.deadlines.clone(),
            );
            state.proxies.insert(id.clone(), Box::new(actor.clone()));
            (actor, end, link)
        };
        // Room for the frame header and the Ask's own fields.
        let max_payload = (dist.config.max_frame_len as usize).saturating_sub(256);
        dist.spawn_detached(remote_ref::forward(end, link, max_payload));
        Ok(actor)
    }

    /// Starts a graceful departure: this node is Leaving in its own view
    /// (so its virtual actors and other placed work hand off at once: new
    /// calls are placed on the other members) and says so to every peer,
    /// which stop placing work here without waiting for `down_after`. The
    /// node keeps answering what reaches it until [`Distribution::shutdown`].
    /// Idempotent. A peer that misses the frame (its link down) learns the
    /// usual way, when this node falls silent.
    pub fn leave(&self) {
        let changes = self.inner.state().membership.leave();
        if changes.is_empty() {
            return;
        }
        self.inner.apply(changes);
        let links: Vec<Arc<Link>> = self.inner.state().links.values().cloned().collect();
        for link in links {
            if !link.try_send(link::Outgoing::Frame(
                plexspaces_net::wire::WireMessage::Leaving,
            )) {
                tracing::warn!(peer = %link.peer, "could not tell a peer this node is leaving: its queue is full");
            }
        }
    }

    /// Whether [`Distribution::leave`] was called.
    pub fn is_leaving(&self) -> bool {
        self.inner.state().membership.members()[0].status == MemberStatus::Leaving
    }

    /// Leaves the cluster: closes every connection and stops every task of
    /// the distribution. Remote refs held here exit with `NodeDown`; peers
    /// declare this node down after their `down_after`.
    pub fn shutdown(&self) {
        let mut state = self.inner.state();
        state.closed = true;
        state.links.clear();
        state.proxies.clear();
        state.exports.clear();
        state.activators.clear();
        state.view_listeners.clear();
        drop(state);
        drop(self.inner.shutdown_tx.locked().take());
    }
}

/// The node's distribution, once started.
#[derive(Default)]
struct NodeDistribution(std::sync::OnceLock<Distribution>);

impl crate::actor::ActorSystem {
    /// Joins a cluster: listens, dials the seeds, authenticates peers (see
    /// [`crate::distribution`]). Once per actor system.
    pub async fn start_distribution(
        &self,
        config: DistributionConfig,
    ) -> Result<Distribution, DistributionError> {
        let slot = self.service(NodeDistribution::default);
        if slot.0.get().is_some() {
            return Err(DistributionError::AlreadyStarted);
        }
        let dist =
            Distribution::start(self.env().clone(), self.deadlines().clone(), config).await?;
        if slot.0.set(dist.clone()).is_err() {
            dist.shutdown(); // lost a race with another start
            return Err(DistributionError::AlreadyStarted);
        }
        // Node services that span the cluster start with it, so every
        // node answers its peers' copies from the first moment.
        if let Err(e) = crate::registry::replicate(self, &dist) {
            dist.shutdown();
            return Err(e);
        }
        Ok(dist)
    }

    /// This node's distribution, once started.
    pub fn distribution(&self) -> Option<Distribution> {
        self.service(NodeDistribution::default).0.get().cloned()
    }

    /// A ref to actor `id`, wherever it runs: a local lookup on this node,
    /// a remote ref (through distribution) on another.
    pub fn resolve<A: RemoteActor>(&self, id: &ActorId) -> Result<ActorRef<A>, ResolveError> {
        if id.node() == self.node() {
            return self
                .lookup(id.name())
                .ok_or_else(|| ResolveError::NoSuchActor(id.clone()));
        }
        match self.distribution() {
            Some(dist) => dist.remote_ref(id),
            None => Err(ResolveError::NotDistributed(id.clone())),
        }
    }
}

/// The remote facet service's messages, for [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    use crate::actor::facet::{ConfigValue, FacetConfig, FacetConfigError, FacetInfo};
    use facets::{FacetAnswer, FacetCall, FacetOp};
    v.visit("FacetCall", || {
        vec![
            FacetCall {
                target: "account:bob".into(),
                op: FacetOp::Attach {
                    type_name: "metrics".into(),
                    config: FacetConfig::new()
                        .with("priority", ConfigValue::Int(810))
                        .with(
                            "window",
                            ConfigValue::Duration(std::time::Duration::from_millis(250)),
                        ),
                },
            },
            FacetCall {
                target: "worker".into(),
                op: FacetOp::Detach("logging".into()),
            },
        ]
    });
    v.visit("FacetAnswer", || {
        vec![
            FacetAnswer::Listed(vec![FacetInfo {
                name: "metrics".into(),
                priority: 850,
            }]),
            FacetAnswer::Config(FacetConfigError::MissingKey {
                facet: "events".into(),
                key: "topic".into(),
            }),
            FacetAnswer::Detached(true),
        ]
    });
}
