//! Remote refs: a proxy per remote actor, whose task encodes what callers
//! send and queues it on the peer's link, and turns the peer's verdict
//! (exit, node down) into the proxy's exit.

use super::RemoteActor;
use super::export::exit_reason;
use super::facets::{self, FACET_SERVICE, FacetCall};
use super::link::{Link, NodeBack, Outgoing, PendingReply, Verdict};
use crate::actor::facet::FacetError;
use crate::actor::proxy::{ProxyEnd, ProxyEvent};
use crate::actor::{ActorError, ActorId, AskError, ExitReason};
use futures::channel::oneshot;
use futures::future::Either;
use plexspaces_net::wire::{ReplyOutcome, WireMessage};
use std::sync::Arc;

/// An ask's reply channel, decoding the reply into the actor's type.
struct TypedPending<A: RemoteActor> {
    actor: ActorId,
    reply: crate::actor::ReplySender<A>,
}

impl<A: RemoteActor> PendingReply for TypedPending<A> {
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn complete(self: Box<Self>, outcome: Option<ReplyOutcome>) {
        let answer = match outcome {
            None => Err(AskError::ConnectionLost(self.actor)),
            Some(ReplyOutcome::Replied(bytes)) => {
                crate::codec::decode::<A::Reply>(&bytes, "remote reply")
                    .map_err(|e| AskError::Failed(ActorError::new(e.to_string())))
            }
            Some(ReplyOutcome::Failed(why)) => Err(AskError::Failed(ActorError::new(why))),
            Some(ReplyOutcome::Unavailable(why)) => {
                Err(AskError::Failed(ActorError::unavailable(why)))
            }
            Some(ReplyOutcome::Rejected(why)) => Err(AskError::Failed(ActorError::with_kind(
                why,
                crate::actor::ActorErrorKind::Rejected,
            ))),
            Some(ReplyOutcome::Unauthenticated(why)) => Err(AskError::Failed(
                ActorError::with_kind(why, crate::actor::ActorErrorKind::Unauthenticated),
            )),
            Some(ReplyOutcome::Forbidden(why)) => Err(AskError::Failed(ActorError::with_kind(
                why,
                crate::actor::ActorErrorKind::Forbidden,
            ))),
            Some(ReplyOutcome::Undecodable(why)) => Err(AskError::Failed(ActorError::new(
                format!("the remote node could not decode the message: {why}"),
            ))),
            Some(ReplyOutcome::NoSuchActor | ReplyOutcome::Stopped) => {
                Err(AskError::Stopped(self.actor))
            }
        };
        let _ = self.reply.send(answer);
    }
}

/// The proxy's task: forward until the remote actor's final verdict. While
/// the node is declared down the proxy is interrupted (its watchers heard
/// `NodeDown`; asks fail at once, tells are dropped) and resumes when the
/// node is back with the same run.
pub(crate) async fn forward<A: RemoteActor>(
    mut end: ProxyEnd<A>,
    link: Arc<Link>,
    max_payload: usize,
) {
    let node = end.id().node().clone();
    loop {
        let restarts_seen = link.restarts();
        let verdict = link.monitor(end.id().name());
        let reason = match connected(&mut end, &link, verdict, max_payload).await {
            Connected::Verdict(Ok(Verdict::NodeDown)) => {
                end.interrupt(ExitReason::NodeDown(node.clone()));
                match unreachable(&mut end, link.when_back(restarts_seen)).await {
                    Some(NodeBack::Up) if end.resume() => continue,
                    _ => ExitReason::NodeDown(node.clone()),
                }
            }
            Connected::Verdict(Ok(Verdict::Exited(notice))) => exit_reason(notice),
            // Canceled: the link is gone (the distribution shut down).
            Connected::Verdict(Ok(Verdict::Restarted) | Err(oneshot::Canceled)) => {
                ExitReason::NodeDown(node.clone())
            }
            Connected::RefsDropped(verdict) => match verdict {
                Ok(Verdict::Exited(notice)) => exit_reason(notice),
                _ => ExitReason::NodeDown(node.clone()),
            },
        };
        end.exit(reason);
        return;
    }
}

/// How forwarding to a reachable node ended.
enum Connected {
    /// The remote actor's verdict.
    Verdict(Result<Verdict, oneshot::Canceled>),
    /// Every ref was dropped; then the verdict monitors still waited for.
    RefsDropped(Result<Verdict, oneshot::Canceled>),
}

/// Forwards what callers send until a verdict arrives.
async fn connected<A: RemoteActor>(
    end: &mut ProxyEnd<A>,
    link: &Link,
    mut verdict: oneshot::Receiver<Verdict>,
    max_payload: usize,
) -> Connected {
    let target = end.id().name().to_string();
    loop {
        let event = {
            let next = std::pin::pin!(end.next());
            match futures::future::select(&mut verdict, next).await {
                Either::Left((verdict, _)) => return Connected::Verdict(verdict),
                Either::Right((event, _)) => event,
            }
        };
        match event {
            Some(ProxyEvent::Control(op)) => {
                if let Some((op, pending)) = facets::remote_op(end.id(), op) {
                    let call = FacetCall {
                        target: target.clone(),
                        op,
                    };
                    match crate::codec::encode(&call, "facet call") {
                        Ok(payload) => {
                            link.send(Outgoing::Ask {
                                to: FACET_SERVICE.to_string(),
                                headers: Default::default(),
                                payload,
                                pending: Box::new(pending),
                            })
                            .await;
                        }
                        Err(e) => pending.fail(FacetError::Unreachable {
                            actor: end.id().clone(),
                            reason: e.to_string(),
                        }),
                    }
                }
            }
            // Nobody can send any more, but monitors may still be waiting
            // for the exit.
            None => return Connected::RefsDropped(verdict.await),
            Some(ProxyEvent::Stop) => {
                link.send(Outgoing::Frame(WireMessage::Stop {
                    target: target.clone(),
                }))
                .await;
            }
            Some(ProxyEvent::Tell(msg, headers)) => match encode::<A>(&msg, max_payload) {
                Ok(payload) => {
                    link.send(Outgoing::Frame(WireMessage::Tell {
                        to: target.clone(),
                        headers,
                        payload,
                    }))
                    .await;
                }
                Err(e) => tracing::warn!(actor = %end.id(), "remote tell not sent: {e}"),
            },
            Some(ProxyEvent::Ask(msg, headers, reply)) => match encode::<A>(&msg, max_payload) {
                Ok(payload) => {
                    let pending = Box::new(TypedPending::<A> {
                        actor: end.id().clone(),
                        reply,
                    });
                    link.send(Outgoing::Ask {
                        to: target.clone(),
                        headers,
                        payload,
                        pending,
                    })
                    .await;
                }
                Err(e) => {
                    let _ = reply.send(Err(AskError::Failed(e)));
                }
            },
        }
    }
}

/// While the node is down: asks fail at once with `NodeDown`, tells and
/// stops are dropped (nothing can reach the node; nothing is held for
/// later), until the node is back. `None` if every ref was dropped or the
/// link went away meanwhile.
async fn unreachable<A: RemoteActor>(
    end: &mut ProxyEnd<A>,
    mut back: oneshot::Receiver<NodeBack>,
) -> Option<NodeBack> {
    loop {
        let event = {
            let next = std::pin::pin!(end.next());
            match futures::future::select(&mut back, next).await {
                Either::Left((back, _)) => return back.ok(),
                Either::Right((event, _)) => event,
            }
        };
        match event {
            None => return None,
            Some(ProxyEvent::Ask(_, _, reply)) => {
                let _ = reply.send(Err(AskError::NodeDown(end.id().clone())));
            }
            Some(ProxyEvent::Control(op)) => {
                if let Some((_, pending)) = facets::remote_op(end.id(), op) {
                    pending.fail(FacetError::Unreachable {
                        actor: end.id().clone(),
                        reason: "its node is down".into(),
                    });
                }
            }
            Some(ProxyEvent::Tell(..)) | Some(ProxyEvent::Stop) => {
                tracing::debug!(actor = %end.id(), "its node is down: a tell or stop dropped")
            }
        }
    }
}

fn encode<A: RemoteActor>(msg: &A::Msg, max_payload: usize) -> Result<Vec<u8>, ActorError> {
    let bytes = crate::codec::encode(msg, "message").map_err(|e| ActorError::unencodable(&e))?;
    if bytes.len() > max_payload {
        return Err(ActorError::new(format!(
            "message of {} bytes exceeds the frame limit ({max_payload} bytes of payload)",
            bytes.len()
        )));
    }
    Ok(bytes)
}
