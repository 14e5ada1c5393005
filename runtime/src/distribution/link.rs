//! A link: everything this node sends to one peer, over the connection it
//! dials to that peer, re-dialed with backoff when it breaks.
//!
//! One queue per peer, written in order onto one connection at a time, is
//! what gives per sender → receiver ordering. Asks written to a connection
//! that then breaks fail with `ConnectionLost` (they may have been handled);
//! what is still queued goes out on the next connection. Remote monitors
//! are re-sent on every new connection.

use super::Dist;
use super::conn::{self, Side};
use super::meter::LinkMeter;
use crate::NodeName;
use crate::actor::mailbox::{self, Receiver, Sender};
use crate::observability::NodeMetrics;
use crate::retry::Backoff;
use crate::seams::{Clock, JoinHandle};
use futures::channel::oneshot;
use futures::future::Either;
use plexspaces_net::ByteWriter;
use plexspaces_net::wire::{
    ExitNotice, FrameWriter, Headers, Member, ReplyOutcome, WireError, WireMessage,
};
use plexspaces_storage::sync::LockExt;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// An ask's reply sink, type-erased.
pub(crate) trait PendingReply: Send {
    /// The caller gave up (timed out); the entry can be dropped.
    fn abandoned(&self) -> bool;
    /// Delivers the outcome, or `None` if the connection was lost first.
    fn complete(self: Box<Self>, outcome: Option<ReplyOutcome>);
}

/// What a remote ref's proxy learns about its actor.
pub(crate) enum Verdict {
    /// The remote actor exited (or never existed).
    Exited(ExitNotice),
    /// Its node was declared down: the actor may live on, unreachable.
    NodeDown,
    /// Its node restarted: the actor of the old run is gone.
    Restarted,
}

/// How a node declared down came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeBack {
    /// Up again, the same run: its actors may still live.
    Up,
    /// A new run: the old run's actors are gone.
    Restarted,
}

/// Something to send on a connection.
pub(crate) enum Outgoing {
    /// A frame as is.
    Frame(WireMessage),
    /// An ask: the writer assigns the request id and files the sink.
    Ask {
        to: String,
        headers: Headers,
        payload: Vec<u8>,
        pending: Box<dyn PendingReply>,
    },
    /// A heartbeat carrying the sender's member list.
    Heartbeat(Vec<Member>),
}

#[derive(Default)]
struct LinkState {
    /// Asks written to the current connection and not yet answered.
    pending: BTreeMap<u64, Box<dyn PendingReply>>,
    next_request: u64,
    /// Size of `pending` after the last sweep of abandoned entries.
    swept_len: usize,
    /// Proxies waiting for a remote actor's exit, by actor name.
    monitors: BTreeMap<String, Vec<oneshot::Sender<Verdict>>>,
    /// A heartbeat waits in the queue (so they never pile up while the
    /// peer is unreachable).
    heartbeat_queued: bool,
    /// The peer is declared down.
    down: bool,
    /// Times the peer restarted (a new incarnation) since the link began.
    restarts: u64,
    /// Proxies waiting for the peer to come back.
    back_waiters: Vec<oneshot::Sender<NodeBack>>,
}

pub(crate) struct Link {
    pub(crate) peer: NodeName,
    queue: Sender<Outgoing>,
    state: Mutex<LinkState>,
}

impl Link {
    pub(crate) fn new(peer: NodeName, capacity: usize) -> (Arc<Self>, Receiver<Outgoing>) {
        let (queue, rx) = mailbox::mailbox(capacity);
        let link = Link {
            peer,
            queue,
            state: Mutex::new(LinkState::default()),
        };
        (Arc::new(link), rx)
    }

    fn state(&self) -> MutexGuard<'_, LinkState> {
        self.state.locked()
    }

    /// Queues `out`, waiting for room. False if the link is gone.
    pub(crate) async fn send(&self, out: Outgoing) -> bool {
        self.queue.send(out).await.is_ok()
    }

    /// Queues `out` if there is room now. False if there is not, or the
    /// link is gone.
    pub(crate) fn try_send(&self, out: Outgoing) -> bool {
        self.queue.try_send(out).is_ok()
    }

    /// Queues a heartbeat unless one is already waiting.
    pub(crate) fn heartbeat(&self, members: Vec<Member>) {
        let mut state = self.state();
        if state.heartbeat_queued {
            return;
        }
        if self.queue.try_send(Outgoing::Heartbeat(members)).is_ok() {
            state.heartbeat_queued = true;
        }
    }

    /// Watches remote actor `target`: the receiver gets its verdict.
    pub(crate) fn monitor(&self, target: &str) -> oneshot::Receiver<Verdict> {
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut state = self.state();
            let watchers = state.monitors.entry(target.to_string()).or_default();
            watchers.retain(|w| !w.is_canceled());
            watchers.push(tx);
            watchers.len() == 1
        };
        if first {
            // A full queue is fine: the monitor is re-sent on connect.
            let _ = self.queue.try_send(Outgoing::Frame(WireMessage::Monitor {
                target: target.to_string(),
            }));
        }
        rx
    }

    /// The peer says `target` exited.
    pub(crate) fn exited(&self, target: &str, notice: ExitNotice) {
        let watchers = self.state().monitors.remove(target).unwrap_or_default();
        for watcher in watchers {
            let _ = watcher.send(Verdict::Exited(notice.clone()));
        }
    }

    /// The peer was declared down: every watcher hears so once (its actors
    /// may live on, unreachable).
    pub(crate) fn node_down(&self) {
        let monitors = {
            let mut state = self.state();
            state.down = true;
            std::mem::take(&mut state.monitors)
        };
        for watcher in monitors.into_values().flatten() {
            let _ = watcher.send(Verdict::NodeDown);
        }
    }

    /// The peer came back with a new incarnation: every actor watched on
    /// its old run is gone.
    pub(crate) fn node_restarted(&self) {
        let (monitors, waiters) = {
            let mut state = self.state();
            state.restarts += 1;
            (
                std::mem::take(&mut state.monitors),
                std::mem::take(&mut state.back_waiters),
            )
        };
        for watcher in monitors.into_values().flatten() {
            let _ = watcher.send(Verdict::Restarted);
        }
        for waiter in waiters {
            let _ = waiter.send(NodeBack::Restarted);
        }
    }

    /// The peer is up again (or for the first time).
    pub(crate) fn node_up(&self) {
        let waiters = {
            let mut state = self.state();
            state.down = false;
            std::mem::take(&mut state.back_waiters)
        };
        for waiter in waiters {
            let _ = waiter.send(NodeBack::Up);
        }
    }

    /// Times the peer restarted so far.
    pub(crate) fn restarts(&self) -> u64 {
        self.state().restarts
    }

    /// Resolves when the peer is back: `Restarted` if it restarted since
    /// `restarts_seen` (see [`Link::restarts`]), else `Up` once it is not
    /// declared down. Dropped (cancelled) if the link goes away.
    pub(crate) fn when_back(&self, restarts_seen: u64) -> oneshot::Receiver<NodeBack> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.state();
        if state.restarts > restarts_seen {
            let _ = tx.send(NodeBack::Restarted);
        } else if !state.down {
            let _ = tx.send(NodeBack::Up);
        } else {
            state.back_waiters.retain(|w| !w.is_canceled());
            state.back_waiters.push(tx);
        }
        rx
    }

    /// The answer to request `request` arrived.
    pub(crate) fn complete(&self, request: u64, outcome: ReplyOutcome) {
        let pending = self.state().pending.remove(&request);
        match pending {
            Some(pending) => pending.complete(Some(outcome)),
            None => {
                tracing::debug!(peer = %self.peer, request, "reply to an unknown or abandoned request")
            }
        }
    }

    fn file_ask(&self, pending: Box<dyn PendingReply>) -> u64 {
        let mut state = self.state();
        // Callers that timed out leave entries behind until their reply
        // comes; sweep them whenever the map has doubled since last time.
        if state.pending.len() >= 64 && state.pending.len() >= 2 * state.swept_len {
            state.pending.retain(|_, p| !p.abandoned());
            state.swept_len = state.pending.len();
        }
        state.next_request += 1;
        let request = state.next_request;
        state.pending.insert(request, pending);
        request
    }

    fn connection_lost(&self) {
        let pending = {
            let mut state = self.state();
            state.swept_len = 0;
            std::mem::take(&mut state.pending)
        };
        for (_, p) in pending {
            p.complete(None);
        }
    }

    fn monitored(&self) -> Vec<String> {
        self.state().monitors.keys().cloned().collect()
    }
}

/// The link's task: dial, handshake, write the queue in order, and start
/// over with backoff when the connection breaks, until the distribution
/// shuts down.
pub(crate) async fn run(dist: Arc<Dist>, link: Arc<Link>, mut queue: Receiver<Outgoing>) {
    let config = dist.config.clone();
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max).pauses();
    let mut batch = VecDeque::new();
    loop {
        let Some(addr) = dist.addr_of(&link.peer) else {
            return;
        };
        match dist.dial(addr).await {
            Ok((reader, writer, peer)) if peer.node == link.peer.as_str() => {
                backoff.reset();
                dist.heard_from(&link.peer, None, peer.incarnation);
                let mut reading = dist.spawn(conn::serve(
                    dist.clone(),
                    reader,
                    link.peer.clone(),
                    Side::Dialed(link.clone()),
                ));
                let ended = write_connection(
                    dist.env.metrics(),
                    &link,
                    writer,
                    &mut queue,
                    &mut batch,
                    &mut reading,
                )
                .await;
                reading.abort();
                link.connection_lost();
                match ended {
                    Ended::QueueClosed => return,
                    Ended::Failed(e) => {
                        tracing::info!(peer = %link.peer, "connection lost: {e}")
                    }
                }
            }
            Ok((_, _, peer)) => tracing::warn!(
                expected = %link.peer, found = %peer.node, %addr,
                "another node answers at this peer's address"
            ),
            Err(e) => tracing::debug!(peer = %link.peer, %addr, "dial failed: {e}"),
        }
        dist.env.sleep(backoff.next(&dist.env)).await;
    }
}

enum Ended {
    QueueClosed,
    Failed(WireError),
}

async fn write_connection<W: ByteWriter>(
    dist_metrics: &NodeMetrics,
    link: &Link,
    writer: FrameWriter<W>,
    queue: &mut Receiver<Outgoing>,
    batch: &mut VecDeque<Outgoing>,
    reading: &mut JoinHandle<Option<WireError>>,
) -> Ended {
    let mut writer = writer;
    let mut meter = LinkMeter::new(dist_metrics, "sent");
    for target in link.monitored() {
        if let Err(e) = writer.queue(&WireMessage::Monitor { target }) {
            return Ended::Failed(e);
        }
    }
    loop {
        if let Err(e) = writer.flush().await {
            return Ended::Failed(e);
        }
        meter.update(writer.frames_written());
        let open = {
            let next = std::pin::pin!(queue.recv_batch(batch));
            match futures::future::select(&mut *reading, next).await {
                Either::Left((read_end, _)) => {
                    let why = read_end.ok().flatten().unwrap_or(WireError::Closed);
                    return Ended::Failed(why);
                }
                Either::Right((open, _)) => open,
            }
        };
        if !open {
            return Ended::QueueClosed;
        }
        for out in batch.drain(..) {
            let msg = match out {
                Outgoing::Frame(msg) => msg,
                Outgoing::Heartbeat(members) => {
                    link.state().heartbeat_queued = false;
                    WireMessage::Heartbeat { members }
                }
                Outgoing::Ask {
                    to,
                    headers,
                    payload,
                    pending,
                } => {
                    if pending.abandoned() {
                        continue;
                    }
                    let request = link.file_ask(pending);
                    WireMessage::Ask {
                        to,
                        request,
                        headers,
                        payload,
                    }
                }
            };
            if let Err(e) = writer.queue(&msg) {
                // Only an oversized message fails here; it is dropped (an
                // ask's caller hears of it) and the connection goes on.
                tracing::warn!(peer = %link.peer, "not sent: {e}");
                if let WireMessage::Ask { request, .. } = msg {
                    link.complete(request, ReplyOutcome::Failed(e.to_string()));
                }
            }
        }
    }
}
