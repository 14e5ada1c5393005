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

mod conn;
mod export;
mod incarnation;
mod link;
mod membership;
mod remote_ref;

pub use membership::{MemberInfo, MemberStatus};
pub use plexspaces_net::wire::{AdmissionLimits, ClusterSecret};

use crate::actor::deadline::Deadlines;
use crate::actor::{Actor, ActorId, ActorRef};
use crate::env::{Env, NodeName};
use crate::retry::Backoff;
use crate::seams::{Clock, Elapsed, JoinHandle, Rng};
pub(crate) use export::{Activator, Exported, ExportedRef, ReplyTo};
use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};
use link::Link;
use membership::{Change, Membership};
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

/// An actor whose messages and replies can cross the network (postcard
/// encoding). Implemented for every actor whose `Msg` and `Reply` are
/// serde types; both nodes must agree on the types.
pub trait RemoteActor:
    Actor<Msg: Serialize + DeserializeOwned, Reply: Serialize + DeserializeOwned>
{
}

impl<A> RemoteActor for A
where
    A: Actor,
    A::Msg: Serialize + DeserializeOwned,
    A::Reply: Serialize + DeserializeOwned,
{
}

/// How a node joins and watches its cluster.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DistributionConfig {
    /// Where to accept connections (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The address peers should dial, if not the bound one (behind NAT,
    /// or when listening on 0.0.0.0).
    pub advertise: Option<SocketAddr>,
    /// Nodes to dial at start; the rest is learned from their gossip.
    pub seeds: Vec<SocketAddr>,
    /// The secret every node of the cluster holds.
    pub secret: ClusterSecret,
    /// How often each peer is sent a heartbeat (default 200 ms).
    pub heartbeat_interval: Duration,
    /// Silence after which a peer is Suspect (default 1 s).
    pub suspect_after: Duration,
    /// Silence after which a peer is Down and its remote monitors fire
    /// (default 3 s).
    pub down_after: Duration,
    /// The longest a handshake may take (default 2 s).
    pub handshake_timeout: Duration,
    /// Bounds on connections in their handshake, in total and per source
    /// address (default 256 and 32): one more is closed unread, so
    /// strangers cannot make the node hold connections without limit.
    pub admission: AdmissionLimits,
    /// First delay before re-dialing a peer (default 50 ms); doubles up to
    /// `reconnect_max`, with ±20 % jitter.
    pub reconnect_min: Duration,
    /// Longest delay between dials (default 1 s).
    pub reconnect_max: Duration,
    /// Largest frame body sent or accepted (default 8 MiB).
    pub max_frame_len: u32,
    /// Frames queued per peer before senders wait (default 4096).
    pub link_queue: usize,
    /// Mailbox capacity of a remote ref's proxy (default 1024).
    pub proxy_mailbox: usize,
}

impl DistributionConfig {
    /// The defaults, listening on `listen`, with `secret`.
    pub fn new(listen: SocketAddr, secret: ClusterSecret) -> Self {
        DistributionConfig {
            listen,
            advertise: None,
            seeds: Vec::new(),
            secret,
            heartbeat_interval: Duration::from_millis(200),
            suspect_after: Duration::from_secs(1),
            down_after: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(2),
            admission: AdmissionLimits::default(),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(1),
            max_frame_len: MAX_FRAME_LEN_DEFAULT,
            link_queue: 4096,
            proxy_mailbox: 1024,
        }
    }

    /// Adds seed nodes to dial at start.
    pub fn with_seeds(mut self, seeds: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.seeds.extend(seeds);
        self
    }

    fn validate(&self) -> Result<(), DistributionError> {
        let bad = |why: &str| Err(DistributionError::InvalidConfig(why.into()));
        if self.heartbeat_interval.is_zero() {
            return bad("heartbeat_interval must be positive");
        }
        if self.suspect_after < self.heartbeat_interval || self.down_after < self.suspect_after {
            return bad("need heartbeat_interval <= suspect_after <= down_after");
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            return bad("need 0 < reconnect_min <= reconnect_max");
        }
        if self.admission.handshakes_max == 0 || self.admission.handshakes_per_source_max == 0 {
            return bad("admission bounds must admit at least one handshake");
        }
        if self.link_queue == 0 || self.proxy_mailbox == 0 || self.max_frame_len < 1024 {
            return bad("queues need room and frames at least 1 KiB");
        }
        Ok(())
    }
}

/// Distribution could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum DistributionError {
    /// This actor system already runs distribution.
    AlreadyStarted,
    /// A setting is out of range.
    InvalidConfig(String),
    /// The listening address could not be bound.
    Listen(NetError),
    /// The node's incarnation could not be read or stored on its disk.
    Disk(plexspaces_storage::disk::DiskError),
}

impl fmt::Display for DistributionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DistributionError::AlreadyStarted => f.write_str("distribution is already running"),
            DistributionError::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            DistributionError::Listen(e) => write!(f, "cannot listen: {e}"),
            DistributionError::Disk(e) => write!(f, "cannot store the node's incarnation: {e}"),
        }
    }
}

impl std::error::Error for DistributionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DistributionError::Listen(e) => Some(e),
            DistributionError::Disk(e) => Some(e),
            DistributionError::AlreadyStarted | DistributionError::InvalidConfig(_) => None,
        }
    }
}

/// A ref to an actor could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveError {
    /// The id names another node and this node runs no distribution.
    NotDistributed(ActorId),
    /// The id names a node this node has never heard of.
    UnknownNode(ActorId),
    /// The id names this node and no actor of that name and type runs.
    NoSuchActor(ActorId),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::NotDistributed(id) => {
                write!(f, "{id} is on another node and distribution is not running")
            }
            ResolveError::UnknownNode(id) => write!(f, "the node of {id} is not a known member"),
            ResolveError::NoSuchActor(id) => write!(f, "no actor {id} of that type runs"),
        }
    }
}

impl std::error::Error for ResolveError {}

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

struct ExportEntry {
    actor: Arc<dyn Exported>,
    serial: u64,
}

struct State {
    membership: Membership,
    links: BTreeMap<NodeName, Arc<Link>>,
    exports: BTreeMap<String, ExportEntry>,
    next_export: u64,
    /// Live proxies (`ActorRef<A>` behind `Any`), so refs to one remote
    /// actor share one proxy and one ordering.
    proxies: BTreeMap<ActorId, Box<dyn Any + Send + Sync>>,
    /// Tasks waiting for a membership change.
    watchers: Vec<Waker>,
    /// Virtual actor kinds hosted here, by kind.
    activators: BTreeMap<String, Arc<dyn Activator>>,
    /// Called after every membership change (virtual actor hosts hand off
    /// the activations they no longer own).
    view_listeners: Vec<ViewListener>,
    closed: bool,
}

pub(crate) type ViewListener = Arc<dyn Fn() + Send + Sync>;

pub(crate) struct Dist {
    env: Env,
    config: DistributionConfig,
    me: Identity,
    /// Where the listener is bound.
    bound: SocketAddr,
    deadlines: Arc<Deadlines>,
    /// Connections in their handshake, bounded.
    admission: Admission,
    state: Mutex<State>,
    /// Resolves when the distribution shuts down; every task races it.
    shutdown: Shared<oneshot::Receiver<()>>,
    shutdown_tx: Mutex<Option<oneshot::Sender<()>>>,
}

impl Dist {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.locked()
    }

    /// Spawns `future` to run until it ends or the distribution shuts down
    /// (then the handle yields `None`).
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<Option<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let shutdown = self.shutdown.clone();
        self.env.spawn(async move {
            let future = std::pin::pin!(future);
            match futures::future::select(future, shutdown).await {
                futures::future::Either::Left((output, _)) => Some(output),
                futures::future::Either::Right(_) => None,
            }
        })
    }

    fn spawn_detached<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        drop(self.spawn(future));
    }

    pub(crate) fn addr_of(&self, node: &NodeName) -> Option<SocketAddr> {
        let state = self.state();
        if state.closed {
            return None;
        }
        state.membership.get(node).map(|m| m.addr)
    }

    pub(crate) fn link(&self, node: &NodeName) -> Option<Arc<Link>> {
        self.state().links.get(node).cloned()
    }

    /// The exported actor `name`, or else the activation of a virtual
    /// actor named `kind:id` (made now if this node hosts it).
    pub(crate) fn exported(&self, name: &str) -> Option<Arc<dyn Exported>> {
        let activator = {
            let state = self.state();
            if let Some(entry) = state.exports.get(name) {
                return Some(entry.actor.clone());
            }
            let (kind, _) = name.split_once(':')?;
            state.activators.get(kind)?.clone()
        };
        let (_, id) = name.split_once(':')?;
        activator.activate(id)
    }

    fn nonce(&self) -> wire::Bytes32 {
        let mut nonce = [0; 32];
        self.env.fill_bytes(&mut nonce);
        nonce
    }

    /// Connects to `addr` and runs the dialer's handshake, within the
    /// handshake timeout.
    pub(crate) async fn dial(
        &self,
        addr: SocketAddr,
    ) -> Result<(FrameReader<DynReader>, FrameWriter<DynWriter>, wire::Peer), WireError> {
        let attempt = async {
            let (reader, writer) = self.env.net().connect(addr).await?.split();
            let max = self.config.max_frame_len;
            let mut reader = FrameReader::new(reader, max);
            let mut writer = FrameWriter::new(writer, max);
            let peer = wire::handshake::dial(
                &mut reader,
                &mut writer,
                &self.config.secret,
                &self.me,
                self.nonce(),
            )
            .await?;
            Ok((reader, writer, peer))
        };
        match self
            .env
            .timeout(self.config.handshake_timeout, attempt)
            .await
        {
            Ok(result) => result,
            Err(Elapsed { .. }) => Err(WireError::AuthFailed("handshake timed out".into())),
        }
    }

    /// Runs the acceptor's handshake and checks who the peer says it is.
    pub(crate) async fn accept_handshake(
        self: &Arc<Self>,
        reader: &mut FrameReader<DynReader>,
        writer: &mut FrameWriter<DynWriter>,
    ) -> Result<NodeName, WireError> {
        let handshake =
            wire::handshake::accept(reader, writer, &self.config.secret, &self.me, self.nonce());
        let peer = match self
            .env
            .timeout(self.config.handshake_timeout, handshake)
            .await
        {
            Ok(result) => result?,
            Err(Elapsed { .. }) => return Err(WireError::AuthFailed("handshake timed out".into())),
        };
        let node = NodeName::new(&peer.node)
            .map_err(|e| WireError::AuthFailed(format!("peer sent {e}")))?;
        if &node == self.env.node() {
            return Err(WireError::AuthFailed(format!(
                "peer claims this node's own name {node}"
            )));
        }
        self.heard_from(&node, peer.listen, peer.incarnation);
        Ok(node)
    }

    pub(crate) fn heard_from(
        self: &Arc<Self>,
        node: &NodeName,
        addr: Option<SocketAddr>,
        incarnation: u64,
    ) {
        let now = self.env.now();
        let changes = self
            .state()
            .membership
            .heard_from(node, addr, incarnation, now);
        self.apply(changes);
    }

    /// Traffic from `node` (which has already shaken hands, so its
    /// incarnation is the known one).
    pub(crate) fn heard_from_traffic(self: &Arc<Self>, node: &NodeName) {
        let incarnation = self.state().membership.get(node).map(|m| m.incarnation);
        if let Some(incarnation) = incarnation {
            self.heard_from(node, None, incarnation);
        }
    }

    /// A heartbeat from `from` with its member list.
    pub(crate) fn gossip(self: &Arc<Self>, from: &NodeName, members: Vec<Member>) {
        let now = self.env.now();
        let mut changes = Vec::new();
        {
            let mut state = self.state();
            for m in members {
                let Ok(node) = NodeName::new(&m.node) else {
                    tracing::warn!(%from, node = m.node, "gossip named an invalid node");
                    continue;
                };
                changes.extend(state.membership.learn(node, m.addr, m.incarnation, now));
            }
        }
        self.apply(changes);
    }

    fn apply(self: &Arc<Self>, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        for change in &changes {
            tracing::info!(?change, "membership");
            match change {
                Change::Learned(node) => self.ensure_link(node),
                Change::Up(node) => {
                    self.ensure_link(node);
                    if let Some(link) = self.link(node) {
                        link.node_up();
                    }
                }
                // Remote refs stay: their monitors fire once, and they work
                // again when the node is back and their actor still lives.
                Change::Down(node) => {
                    if let Some(link) = self.link(node) {
                        link.node_down();
                    }
                }
                // A restarted node keeps its link (it re-dials the new run);
                // the actors of its old run are gone, and so are their refs.
                Change::Restarted(node) => {
                    let link = {
                        let mut state = self.state();
                        state.proxies.retain(|id, _| id.node() != node);
                        state.links.get(node).cloned()
                    };
                    if let Some(link) = link {
                        link.node_restarted();
                    }
                }
            }
        }
        let (watchers, listeners) = {
            let mut state = self.state();
            (
                std::mem::take(&mut state.watchers),
                state.view_listeners.clone(),
            )
        };
        for waker in watchers {
            waker.wake();
        }
        for listener in listeners {
            listener();
        }
    }

    fn ensure_link(self: &Arc<Self>, node: &NodeName) {
        let this = self.clone();
        let mut state = self.state();
        if state.closed || state.links.contains_key(node) {
            return;
        }
        let (link, queue) = Link::new(node.clone(), self.config.link_queue);
        state.links.insert(node.clone(), link.clone());
        drop(state);
        self.spawn_detached(link::run(this, link, queue));
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

/// Heartbeats out, silence checks in, every `heartbeat_interval`.
async fn tick(dist: Arc<Dist>) {
    loop {
        dist.env.sleep(dist.config.heartbeat_interval).await;
        let (changes, links, gossip) = {
            let mut state = dist.state();
            let changes = state.membership.check(
                dist.env.now(),
                dist.config.suspect_after,
                dist.config.down_after,
            );
            let gossip: Vec<Member> = state
                .membership
                .members()
                .into_iter()
                .filter(|m| matches!(m.status, MemberStatus::Up | MemberStatus::Suspect))
                .map(|m| Member {
                    node: m.node.to_string(),
                    addr: m.addr,
                    incarnation: m.incarnation,
                })
                .collect();
            let links: Vec<Arc<Link>> = state.links.values().cloned().collect();
            (changes, links, gossip)
        };
        dist.apply(changes);
        for link in links {
            link.heartbeat(gossip.clone());
        }
    }
}

/// Dials a seed until it answers: the handshake names it, and from then on
/// it is a member with its own link.
async fn join_through(dist: Arc<Dist>, seed: SocketAddr) {
    let config = &dist.config;
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max).pauses();
    loop {
        match dist.dial(seed).await {
            Ok((_, mut writer, peer)) => {
                let _ = writer.close().await;
                match NodeName::new(&peer.node) {
                    Ok(node) if &node != dist.env.node() => {
                        dist.heard_from(&node, Some(seed), peer.incarnation);
                        return;
                    }
                    _ => {
                        tracing::warn!(%seed, node = peer.node, "seed is this node or misnamed");
                        return;
                    }
                }
            }
            Err(e) => tracing::debug!(%seed, "seed not reachable yet: {e}"),
        }
        dist.env.sleep(backoff.next(&dist.env)).await;
    }
}
