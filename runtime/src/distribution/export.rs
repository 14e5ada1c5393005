//! Exported actors: the local actors other nodes may message, each behind a
//! type-erased handle that decodes payloads into the actor's own `Msg`.

use super::RemoteActor;
use crate::Env;
use crate::actor::cell::ControlOp;
use crate::actor::facet::Headers;
use crate::actor::{ActorErrorKind, ActorRef, AskError, Delivery, ExitReason};
use crate::env::NodeName;
use crate::seams::Spawn;
use futures::future::BoxFuture;
use plexspaces_net::wire::{ExitNotice, ReplyOutcome};
use std::sync::Arc;

/// Where the answer to a remote `Ask` goes (the connection it came on).
pub(crate) type ReplyTo = Box<dyn FnOnce(ReplyOutcome) -> BoxFuture<'static, ()> + Send>;

/// A local actor reachable from other nodes.
pub(crate) trait Exported: Send + Sync {
    /// Delivers an encoded message; waits for mailbox room (backpressure
    /// on the connection). With `reply`, the answer is sent there later.
    fn deliver(&self, env: &Env, inbound: Inbound, reply: Option<ReplyTo>) -> BoxFuture<'_, ()>;
    /// Queues a facet operation, as a local ref would.
    fn control(&self, op: ControlOp);
    /// Stops the actor, as `ActorRef::stop` does.
    fn stop(&self);
    /// Resolves when the actor exits.
    fn exited(&self) -> BoxFuture<'static, ExitReason>;
}

/// Makes actors exist on demand: virtual actors of one kind, reachable as
/// `kind:id` though nothing is exported under that name until a message
/// (or a monitor) arrives.
pub(crate) trait Activator: Send + Sync {
    /// The activation of `id` on this node, made now if needed; `None` if
    /// this node does not host `id` (placement chose another node).
    fn activate(&self, id: &str) -> Option<Arc<dyn Exported>>;
}

/// A message as it came off a connection.
pub(crate) struct Inbound {
    pub(crate) payload: Vec<u8>,
    pub(crate) headers: Headers,
    /// The connection's authenticated peer.
    pub(crate) source: NodeName,
    /// Whether it proved itself with a TLS certificate.
    pub(crate) certified: bool,
}

pub(crate) struct ExportedRef<A: RemoteActor>(pub(crate) ActorRef<A>);

impl<A: RemoteActor> Exported for ExportedRef<A> {
    fn deliver(&self, env: &Env, inbound: Inbound, reply: Option<ReplyTo>) -> BoxFuture<'_, ()> {
        let env = env.clone();
        Box::pin(async move {
            let Inbound {
                payload,
                headers,
                source,
                certified,
            } = inbound;
            let msg = match crate::codec::decode::<A::Msg>(&payload, "remote message") {
                Ok(msg) => msg,
                Err(e) => {
                    let why = e.to_string();
                    match reply {
                        Some(reply) => reply(ReplyOutcome::Undecodable(why)).await,
                        None => {
                            tracing::warn!(actor = %self.0.id(), "dropped a remote tell: {why}")
                        }
                    }
                    return;
                }
            };
            // The receiving actor's facets see who sent it, from where, and
            // its wire form.
            let delivery = Some(Box::new(Delivery {
                headers,
                source: Some(source),
                source_certified: certified,
                wire: Some(payload),
                principal: None,
                tick: None,
            }));
            let Some(reply) = reply else {
                // A stopped actor drops the tell, as locally.
                let _ = self.0.send_envelope(msg, None, delivery).await;
                return;
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            if self.0.send_envelope(msg, Some(tx), delivery).await.is_err() {
                reply(ReplyOutcome::Stopped).await;
                return;
            }
            // The handler may take long; its answer goes out from its own
            // task so the connection keeps reading.
            env.spawn_task(Box::pin(async move {
                let outcome = match rx.await {
                    Ok(Ok(value)) => match crate::codec::encode(&value, "reply") {
                        Ok(bytes) => ReplyOutcome::Replied(bytes),
                        Err(e) => ReplyOutcome::Failed(e.to_string()),
                    },
                    Ok(Err(AskError::Failed(e))) if e.is_unavailable() => {
                        ReplyOutcome::Unavailable(e.message().to_string())
                    }
                    Ok(Err(AskError::Failed(e))) if e.is_rejected() => {
                        let why = e.message().to_string();
                        match e.kind() {
                            ActorErrorKind::Unauthenticated => ReplyOutcome::Unauthenticated(why),
                            ActorErrorKind::Forbidden => ReplyOutcome::Forbidden(why),
                            _ => ReplyOutcome::Rejected(why),
                        }
                    }
                    Ok(Err(AskError::Failed(e))) => ReplyOutcome::Failed(e.message().to_string()),
                    Ok(Err(other)) => ReplyOutcome::Failed(other.to_string()),
                    Err(_dropped) => ReplyOutcome::Stopped,
                };
                reply(outcome).await;
            }));
        })
    }

    fn stop(&self) {
        self.0.stop();
    }

    fn control(&self, op: ControlOp) {
        self.0.cell.push_control(op);
    }

    fn exited(&self) -> BoxFuture<'static, ExitReason> {
        let actor = self.0.clone();
        Box::pin(async move { actor.wait_exit().await })
    }
}

/// How an exit is told to a remote monitor.
pub(crate) fn exit_notice(reason: &ExitReason) -> ExitNotice {
    match reason {
        ExitReason::Normal => ExitNotice::Normal,
        ExitReason::Shutdown => ExitNotice::Shutdown,
        failure => ExitNotice::Failed(failure.to_string()),
    }
}

/// How a remote monitor's notice becomes the proxy's exit reason.
pub(crate) fn exit_reason(notice: ExitNotice) -> ExitReason {
    match notice {
        ExitNotice::Normal => ExitReason::Normal,
        ExitNotice::Shutdown => ExitReason::Shutdown,
        ExitNotice::Failed(why) => ExitReason::Error(why),
        ExitNotice::NoSuchActor => ExitReason::Error("no such actor on its node".into()),
    }
}
