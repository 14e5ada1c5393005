//! Remote refs: a proxy per remote actor, whose task encodes what callers
//! send and queues it on the peer's link, and turns the peer's verdict
//! (exit, node down) into the proxy's exit.

use super::RemoteActor;
use super::export::exit_reason;
use super::link::{Link, Outgoing, PendingReply, Verdict};
use crate::actor::proxy::{ProxyEnd, ProxyEvent};
use crate::actor::{Actor, ActorError, ActorId, AskError, ExitReason};
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
        self.reply.is_canceled()
    }

    fn complete(self: Box<Self>, outcome: Option<ReplyOutcome>) {
        let answer = match outcome {
            None => Err(AskError::ConnectionLost(self.actor)),
            Some(ReplyOutcome::Replied(bytes)) => {
                postcard::from_bytes::<A::Reply>(&bytes).map_err(|e| {
                    AskError::Failed(ActorError::new(format!(
                        "reply is not a {}: {e}",
                        std::any::type_name::<A::Reply>()
                    )))
                })
            }
            Some(ReplyOutcome::Failed(why)) => Err(AskError::Failed(ActorError::new(why))),
            Some(ReplyOutcome::Unavailable(why)) => {
                Err(AskError::Failed(ActorError::unavailable(why)))
            }
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

/// The proxy's task: forward until the remote actor's verdict arrives.
pub(crate) async fn forward<A: RemoteActor>(
    mut end: ProxyEnd<A>,
    link: Arc<Link>,
    mut verdict: oneshot::Receiver<Verdict>,
    max_payload: usize,
) {
    let target = end.id().name().to_string();
    let mut refs_alive = true;
    let verdict = loop {
        let event = if refs_alive {
            let next = std::pin::pin!(end.next());
            match futures::future::select(&mut verdict, next).await {
                Either::Left((verdict, _)) => break verdict,
                Either::Right((event, _)) => event,
            }
        } else {
            // Nobody can send any more, but monitors may still be waiting
            // for the exit.
            break (&mut verdict).await;
        };
        match event {
            None => refs_alive = false,
            Some(ProxyEvent::Stop) => {
                link.send(Outgoing::Frame(WireMessage::Stop {
                    target: target.clone(),
                }))
                .await;
            }
            Some(ProxyEvent::Tell(msg)) => match encode::<A>(&msg, max_payload) {
                Ok(payload) => {
                    link.send(Outgoing::Frame(WireMessage::Tell {
                        to: target.clone(),
                        payload,
                    }))
                    .await;
                }
                Err(e) => tracing::warn!(actor = %end.id(), "remote tell not sent: {e}"),
            },
            Some(ProxyEvent::Ask(msg, reply)) => match encode::<A>(&msg, max_payload) {
                Ok(payload) => {
                    let pending = Box::new(TypedPending::<A> {
                        actor: end.id().clone(),
                        reply,
                    });
                    link.send(Outgoing::Ask {
                        to: target.clone(),
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
    };
    let reason = exit_for(verdict, &end);
    end.exit(reason);
}

fn exit_for<A: Actor>(
    verdict: Result<Verdict, oneshot::Canceled>,
    end: &ProxyEnd<A>,
) -> ExitReason {
    match verdict {
        Ok(Verdict::Exited(notice)) => exit_reason(notice),
        // Canceled: the link is gone (the distribution shut down).
        Ok(Verdict::NodeDown) | Err(oneshot::Canceled) => {
            ExitReason::NodeDown(end.id().node().clone())
        }
    }
}

fn encode<A: RemoteActor>(msg: &A::Msg, max_payload: usize) -> Result<Vec<u8>, ActorError> {
    let bytes = postcard::to_allocvec(msg)
        .map_err(|e| ActorError::new(format!("cannot encode the message: {e}")))?;
    if bytes.len() > max_payload {
        return Err(ActorError::new(format!(
            "message of {} bytes exceeds the frame limit ({max_payload} bytes of payload)",
            bytes.len()
        )));
    }
    Ok(bytes)
}
