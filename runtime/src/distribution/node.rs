//! One node's distribution state and what changes it: handshakes
//! (dialing and accepting), what peers say (heartbeats, gossip), the
//! membership changes that follow, and the links to peers.

use super::*;
use crate::security::{self, Role};

pub(super) struct ExportEntry {
    pub(super) actor: Arc<dyn Exported>,
    pub(super) serial: u64,
}

pub(super) struct State {
    pub(super) membership: Membership,
    pub(super) links: BTreeMap<NodeName, Arc<Link>>,
    pub(super) exports: BTreeMap<String, ExportEntry>,
    pub(super) next_export: u64,
    /// Live proxies (`ActorRef<A>` behind `Any`), so refs to one remote
    /// actor share one proxy and one ordering.
    pub(super) proxies: BTreeMap<ActorId, Box<dyn Any + Send + Sync>>,
    /// Tasks waiting for a membership change.
    pub(super) watchers: Vec<Waker>,
    /// Virtual actor kinds hosted here, by kind.
    pub(super) activators: BTreeMap<String, Arc<dyn Activator>>,
    /// Called after every membership change (virtual actor hosts hand off
    /// the activations they no longer own).
    pub(super) view_listeners: Vec<ViewListener>,
    pub(super) closed: bool,
}

pub(crate) type ViewListener = Arc<dyn Fn() + Send + Sync>;

pub(crate) struct Dist {
    pub(super) env: Env,
    pub(super) config: DistributionConfig,
    pub(super) me: Identity,
    /// Where the listener is bound.
    pub(super) bound: SocketAddr,
    pub(super) deadlines: Arc<Deadlines>,
    /// Connections in their handshake, bounded.
    pub(super) admission: Admission,
    pub(super) state: Mutex<State>,
    /// Resolves when the distribution shuts down; every task races it.
    pub(super) shutdown: Shared<oneshot::Receiver<()>>,
    pub(super) shutdown_tx: Mutex<Option<oneshot::Sender<()>>>,
}

impl Dist {
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
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

    pub(super) fn spawn_detached<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
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

    pub(super) fn nonce(&self) -> wire::Bytes32 {
        let mut nonce = [0; 32];
        self.env.fill_bytes(&mut nonce);
        nonce
    }

    /// Connects to `addr` and runs the dialer's handshake (TLS first if
    /// configured), within the handshake timeout.
    pub(crate) async fn dial(
        &self,
        addr: SocketAddr,
    ) -> Result<(FrameReader<DynReader>, FrameWriter<DynWriter>, wire::Peer), WireError> {
        let attempt = async {
            let (reader, writer) = self.env.net().connect(addr).await?.split();
            let (reader, writer, certificate) =
                security::secure(self.config.tls.as_deref(), Role::Dialer, reader, writer).await?;
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
            if let Some(certificate) = &certificate {
                TlsContext::check_peer(certificate, &peer.node)?;
            }
            Ok((reader, writer, peer))
        };
        let result = match self
            .env
            .timeout(self.config.handshake_timeout, attempt)
            .await
        {
            Ok(result) => result,
            Err(Elapsed { .. }) => Err(WireError::AuthFailed("handshake timed out".into())),
        };
        if result.is_err() {
            self.env.metrics().remote().handshake_failures.inc();
        }
        result
    }

    /// Runs the acceptor's handshake on an accepted connection (TLS first
    /// if configured), within the handshake timeout, and checks who the
    /// peer says it is.
    pub(crate) async fn accept_handshake(
        self: &Arc<Self>,
        reader: DynReader,
        writer: DynWriter,
    ) -> Result<(FrameReader<DynReader>, FrameWriter<DynWriter>, NodeName), WireError> {
        let handshake = async {
            let (reader, writer, certificate) =
                security::secure(self.config.tls.as_deref(), Role::Acceptor, reader, writer)
                    .await?;
            let max = self.config.max_frame_len;
            let mut reader = FrameReader::new(reader, max);
            let mut writer = FrameWriter::new(writer, max);
            let peer = wire::handshake::accept(
                &mut reader,
                &mut writer,
                &self.config.secret,
                &self.me,
                self.nonce(),
            )
            .await;
            let peer = match peer {
                Ok(peer) => peer,
                Err(e) => {
                    let _ = writer.close().await;
                    return Err(e);
                }
            };
            if let Some(certificate) = &certificate
                && let Err(e) = TlsContext::check_peer(certificate, &peer.node)
            {
                let _ = writer.close().await;
                return Err(e.into());
            }
            Ok((reader, writer, peer))
        };
        let (reader, writer, peer) = match self
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
        Ok((reader, writer, node))
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

    /// `node` said it is shutting down gracefully.
    pub(crate) fn peer_leaving(self: &Arc<Self>, node: &NodeName) {
        let now = self.env.now();
        let changes = {
            let mut state = self.state();
            match state.membership.get(node) {
                Some(member) => state.membership.left(node, member.incarnation, now),
                None => Vec::new(),
            }
        };
        self.apply(changes);
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

    pub(super) fn apply(self: &Arc<Self>, changes: Vec<Change>) {
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
                // Placement listeners (below) move its work; its refs keep
                // working until it closes.
                Change::Leaving(_) => {}
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

    pub(super) fn ensure_link(self: &Arc<Self>, node: &NodeName) {
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
