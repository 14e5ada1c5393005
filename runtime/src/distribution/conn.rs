//! One authenticated connection's incoming side: what each frame from the
//! peer does on this node. Dialed and accepted connections are served
//! alike; they differ only in where answers go.

use super::Dist;
use super::export::{Inbound, ReplyTo, exit_notice};
use super::facets::{self, FACET_SERVICE, FacetCall};
use super::link::{Link, Outgoing};
use super::meter::LinkMeter;
use crate::NodeName;
use crate::actor::mailbox::{self, Sender};
use crate::seams::Spawn;
use crate::seams::{Clock, Instant, JoinHandle};
use futures::future::BoxFuture;
use plexspaces_net::wire::{
    Admitted, ExitNotice, FrameReader, ReplyOutcome, WireError, WireMessage,
};
use plexspaces_net::{ByteReader, Connection, DynConnection};
use std::collections::VecDeque;
use std::sync::Arc;

/// Which end of the connection this node is.
pub(crate) enum Side {
    /// This node dialed it: replies to our asks arrive here, and anything we
    /// must answer goes out through the link's queue.
    Dialed(Arc<Link>),
    /// The peer dialed it: answers go out through this queue.
    Accepted(Sender<Outgoing>),
}

impl Side {
    async fn answer(&self, msg: WireMessage) {
        match self {
            Side::Dialed(link) => {
                link.send(Outgoing::Frame(msg)).await;
            }
            Side::Accepted(queue) => {
                let _ = queue.send(Outgoing::Frame(msg)).await;
            }
        }
    }

    fn reply_to(&self, request: u64) -> ReplyTo {
        let queue = self.reply_queue();
        Box::new(move |outcome| queue(WireMessage::Reply { request, outcome }))
    }
}

/// Reads and acts on frames until the connection fails; returns why.
/// Remote monitors set up through this connection end with it.
pub(crate) async fn serve<R: ByteReader>(
    dist: Arc<Dist>,
    mut reader: FrameReader<R>,
    peer: NodeName,
    side: Side,
) -> WireError {
    let mut watchers: Vec<JoinHandle<Option<()>>> = Vec::new();
    let mut last_reported = Instant::ZERO;
    let mut meter = LinkMeter::new(dist.env.metrics(), "received");
    let error = loop {
        let msg = match reader.read_frame().await {
            Ok(msg) => msg,
            Err(e) => break e,
        };
        meter.update(reader.frames_read());
        // Any frame shows the peer alive; tell the membership table at most
        // once per heartbeat interval.
        let now = dist.env.now();
        if now.saturating_duration_since(last_reported) >= dist.config.heartbeat_interval {
            last_reported = now;
            dist.heard_from_traffic(&peer);
        }
        match msg {
            WireMessage::Heartbeat { members } => dist.gossip(&peer, members),
            WireMessage::Leaving => dist.peer_leaving(&peer),
            WireMessage::Tell {
                to,
                headers,
                payload,
            } => {
                if let Some(actor) = dist.exported(&to) {
                    let inbound = Inbound {
                        payload,
                        headers,
                        source: peer.clone(),
                        certified: dist.config.tls.is_some(),
                    };
                    actor.deliver(&dist.env, inbound, None).await;
                } else {
                    tracing::debug!(%peer, to, "tell for an actor not exported here: dropped");
                }
            }
            WireMessage::Ask {
                to,
                request,
                payload,
                ..
            } if to == FACET_SERVICE => {
                let reply = side.reply_to(request);
                let dist = dist.clone();
                // Applied between the target's messages, which may take
                // long: answered from a task of its own.
                dist.env.clone().spawn_task(Box::pin(async move {
                    let outcome = match crate::codec::decode::<FacetCall>(&payload, "facet call") {
                        Err(e) => ReplyOutcome::Undecodable(e.to_string()),
                        Ok(call) => match dist.exported(&call.target) {
                            None => ReplyOutcome::NoSuchActor,
                            Some(actor) => {
                                let answer = facets::apply(&*actor, call.op).await;
                                match crate::codec::encode(&answer, "facet answer") {
                                    Ok(bytes) => ReplyOutcome::Replied(bytes),
                                    Err(e) => ReplyOutcome::Failed(e.to_string()),
                                }
                            }
                        },
                    };
                    reply(outcome).await;
                }));
            }
            WireMessage::Ask {
                to,
                request,
                headers,
                payload,
            } => match dist.exported(&to) {
                Some(actor) => {
                    let inbound = Inbound {
                        payload,
                        headers,
                        source: peer.clone(),
                        certified: dist.config.tls.is_some(),
                    };
                    actor
                        .deliver(&dist.env, inbound, Some(side.reply_to(request)))
                        .await
                }
                None => {
                    side.answer(WireMessage::Reply {
                        request,
                        outcome: ReplyOutcome::NoSuchActor,
                    })
                    .await
                }
            },
            WireMessage::Reply { request, outcome } => match &side {
                Side::Dialed(link) => link.complete(request, outcome),
                Side::Accepted(_) => {
                    tracing::debug!(%peer, request, "reply on a connection we did not ask on")
                }
            },
            WireMessage::Monitor { target } => {
                watchers.retain(|w| !w.is_finished());
                match dist.exported(&target) {
                    Some(actor) => {
                        let exited = actor.exited();
                        let answer = side.reply_queue();
                        watchers.push(dist.spawn(async move {
                            let reason = exit_notice(&exited.await);
                            answer(WireMessage::Exited { target, reason }).await;
                        }));
                    }
                    None => {
                        side.answer(WireMessage::Exited {
                            target,
                            reason: ExitNotice::NoSuchActor,
                        })
                        .await
                    }
                }
            }
            WireMessage::Exited { target, reason } => {
                if let Some(link) = dist.link(&peer) {
                    link.exited(&target, reason);
                }
            }
            WireMessage::Stop { target } => {
                if let Some(actor) = dist.exported(&target) {
                    actor.stop();
                }
            }
            other => {
                break WireError::Unexpected {
                    expected: "a message after the handshake",
                    got: other.kind(),
                };
            }
        }
    };
    for watcher in watchers {
        watcher.abort();
    }
    error
}

impl Side {
    /// A way to queue a frame for the peer from a task that outlives this
    /// call (a handler's answer, a monitor's exit notice). It waits for room,
    /// so answers are never dropped for a full queue.
    fn reply_queue(&self) -> Box<dyn FnOnce(WireMessage) -> BoxFuture<'static, ()> + Send> {
        match self {
            Side::Dialed(link) => {
                let link = link.clone();
                Box::new(move |msg| {
                    Box::pin(async move {
                        link.send(Outgoing::Frame(msg)).await;
                    })
                })
            }
            Side::Accepted(queue) => {
                let queue = queue.clone();
                Box::new(move |msg| {
                    Box::pin(async move {
                        let _ = queue.send(Outgoing::Frame(msg)).await;
                    })
                })
            }
        }
    }
}

/// Serves a connection a peer dialed: handshake, then frames until it
/// breaks. Every failure is logged with its typed error and ends only this
/// connection.
///
/// `admitted` holds the connection's place among those in their handshake
/// and is released as soon as the handshake ends.
pub(crate) async fn accepted(dist: Arc<Dist>, connection: DynConnection, admitted: Admitted) {
    let from = connection.peer_addr();
    let (reader, writer) = connection.split();
    let handshake = dist.accept_handshake(reader, writer).await;
    drop(admitted);
    let (reader, mut writer, peer) = match handshake {
        Ok(accepted) => accepted,
        Err(e) => {
            dist.env.metrics().remote().handshake_failures.inc();
            tracing::warn!(%from, "refused a connection: {e}");
            return;
        }
    };
    let (queue, mut rx) = mailbox::mailbox(dist.config.link_queue);
    let mut meter = LinkMeter::new(dist.env.metrics(), "sent");
    meter.update(writer.frames_written());
    let writing = dist.spawn(async move {
        let mut batch = VecDeque::new();
        while rx.recv_batch(&mut batch).await {
            for out in batch.drain(..) {
                if let Outgoing::Frame(msg) = out
                    && let Err(e) = writer.queue(&msg)
                {
                    tracing::warn!("not sent: {e}");
                }
            }
            if writer.flush().await.is_err() {
                return;
            }
            meter.update(writer.frames_written());
        }
    });
    let error = serve(dist.clone(), reader, peer.clone(), Side::Accepted(queue)).await;
    match error {
        WireError::Closed => tracing::debug!(%peer, "peer closed its connection"),
        e => tracing::warn!(%peer, %from, "closed a connection: {e}"),
    }
    writing.abort();
}
