//! Facet control through a remote ref: attach (a registered type, by name,
//! with its configuration), detach and list travel as an `Ask` to the
//! node's facet service, which applies them to the exported actor as a
//! local ref would. A facet value never travels; its type name does.

use super::export::Exported;
use super::link::PendingReply;
use crate::actor::facet::{FacetConfig, FacetConfigError, FacetError, FacetInfo};
use crate::actor::{ActorId, cell::ControlOp};
use futures::channel::oneshot;
use plexspaces_net::wire::ReplyOutcome;
use serde::{Deserialize, Serialize};

/// The name asks to the facet service are addressed to: no exported actor
/// can have it, since actor names (and virtual actor ids) hold no `@`.
pub(crate) const FACET_SERVICE: &str = "@facets";

/// A facet operation on actor `target` of the receiving node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct FacetCall {
    /// The exported actor's name (or `kind:id` of a virtual actor).
    pub(crate) target: String,
    /// What to do.
    pub(crate) op: FacetOp,
}

/// A facet operation, as sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum FacetOp {
    /// Build the registered type and attach it.
    Attach {
        /// The registered type's name.
        type_name: String,
        /// Its settings.
        config: FacetConfig,
    },
    /// Detach the facet of this name.
    Detach(String),
    /// List the facets.
    List,
}

/// The facet service's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum FacetAnswer {
    /// Attached.
    Attached,
    /// Detached (or there was none of that name).
    Detached(bool),
    /// The facets, in chain order.
    Listed(Vec<FacetInfo>),
    /// A facet of that name is attached already.
    NameTaken(String),
    /// The configuration was refused.
    Config(FacetConfigError),
    /// No such actor is exported there, or it stopped.
    Stopped,
}

/// Applies `op` to `actor` (on this node) and says what became of it.
pub(crate) async fn apply(actor: &dyn Exported, op: FacetOp) -> FacetAnswer {
    match op {
        FacetOp::Attach { type_name, config } => {
            let (reply, answer) = oneshot::channel();
            actor.control(ControlOp::AttachNamed {
                type_name,
                config,
                reply,
            });
            match answer.await {
                Ok(Ok(())) => FacetAnswer::Attached,
                Ok(Err(FacetError::NameTaken { name, .. })) => FacetAnswer::NameTaken(name),
                Ok(Err(FacetError::Config(e))) => FacetAnswer::Config(e),
                Ok(Err(_)) | Err(oneshot::Canceled) => FacetAnswer::Stopped,
            }
        }
        FacetOp::Detach(name) => {
            let (reply, answer) = oneshot::channel();
            actor.control(ControlOp::Detach(name, reply));
            match answer.await {
                Ok(Ok(detached)) => FacetAnswer::Detached(detached),
                _ => FacetAnswer::Stopped,
            }
        }
        FacetOp::List => {
            let (reply, answer) = oneshot::channel();
            actor.control(ControlOp::List(reply));
            match answer.await {
                Ok(Ok(list)) => FacetAnswer::Listed(list),
                _ => FacetAnswer::Stopped,
            }
        }
    }
}

/// Splits a control operation sent through a proxy into what travels and
/// where its answer goes; `None` (after answering) for one that cannot
/// travel (a facet value, an inspection).
pub(crate) fn remote_op(actor: &ActorId, op: ControlOp) -> Option<(FacetOp, FacetPending)> {
    let actor = actor.clone();
    match op {
        ControlOp::AttachNamed {
            type_name,
            config,
            reply,
        } => Some((
            FacetOp::Attach { type_name, config },
            FacetPending {
                actor,
                reply: Waiting::Attach(reply),
            },
        )),
        ControlOp::Detach(name, reply) => Some((
            FacetOp::Detach(name),
            FacetPending {
                actor,
                reply: Waiting::Detach(reply),
            },
        )),
        ControlOp::List(reply) => Some((
            FacetOp::List,
            FacetPending {
                actor,
                reply: Waiting::List(reply),
            },
        )),
        ControlOp::Attach(_, reply) => {
            let _ = reply.send(Err(FacetError::Remote(actor)));
            None
        }
        // Its closure (and reply) dropped: `with_facet` refuses remote refs
        // before it gets here.
        ControlOp::Inspect(_) => None,
    }
}

enum Waiting {
    Attach(oneshot::Sender<Result<(), FacetError>>),
    Detach(oneshot::Sender<Result<bool, FacetError>>),
    List(oneshot::Sender<Result<Vec<FacetInfo>, FacetError>>),
}

/// Where a remote facet operation's answer goes.
pub(crate) struct FacetPending {
    actor: ActorId,
    reply: Waiting,
}

impl FacetPending {
    /// Answers the caller with `error` (the operation never left).
    pub(crate) fn fail(self, error: FacetError) {
        match self.reply {
            Waiting::Attach(tx) => drop(tx.send(Err(error))),
            Waiting::Detach(tx) => drop(tx.send(Err(error))),
            Waiting::List(tx) => drop(tx.send(Err(error))),
        }
    }
}

impl PendingReply for FacetPending {
    fn abandoned(&self) -> bool {
        match &self.reply {
            Waiting::Attach(tx) => tx.is_canceled(),
            Waiting::Detach(tx) => tx.is_canceled(),
            Waiting::List(tx) => tx.is_canceled(),
        }
    }

    fn complete(self: Box<Self>, outcome: Option<ReplyOutcome>) {
        let actor = self.actor.clone();
        let unreachable = |reason: String| FacetError::Unreachable {
            actor: actor.clone(),
            reason,
        };
        let answer = match outcome {
            None => Err(unreachable("the connection was lost".into())),
            Some(ReplyOutcome::Replied(bytes)) => {
                crate::codec::decode::<FacetAnswer>(&bytes, "facet answer")
                    .map_err(|e| unreachable(e.to_string()))
            }
            Some(ReplyOutcome::NoSuchActor | ReplyOutcome::Stopped) => {
                Err(FacetError::Stopped(actor.clone()))
            }
            Some(other) => Err(unreachable(format!("unexpected answer {other:?}"))),
        };
        let answer = answer.and_then(|answer| match answer {
            FacetAnswer::NameTaken(name) => Err(FacetError::NameTaken {
                actor: actor.clone(),
                name,
            }),
            FacetAnswer::Config(e) => Err(FacetError::Config(e)),
            FacetAnswer::Stopped => Err(FacetError::Stopped(actor.clone())),
            answer => Ok(answer),
        });
        let wrong = |answer: &FacetAnswer| {
            unreachable(crate::invariant::wrong_remote_reply(
                "a facet operation",
                answer,
            ))
        };
        match (self.reply, answer) {
            (Waiting::Attach(tx), Ok(FacetAnswer::Attached)) => drop(tx.send(Ok(()))),
            (Waiting::Detach(tx), Ok(FacetAnswer::Detached(d))) => drop(tx.send(Ok(d))),
            (Waiting::List(tx), Ok(FacetAnswer::Listed(l))) => drop(tx.send(Ok(l))),
            (Waiting::Attach(tx), Ok(a)) => drop(tx.send(Err(wrong(&a)))),
            (Waiting::Detach(tx), Ok(a)) => drop(tx.send(Err(wrong(&a)))),
            (Waiting::List(tx), Ok(a)) => drop(tx.send(Err(wrong(&a)))),
            (Waiting::Attach(tx), Err(e)) => drop(tx.send(Err(e))),
            (Waiting::Detach(tx), Err(e)) => drop(tx.send(Err(e))),
            (Waiting::List(tx), Err(e)) => drop(tx.send(Err(e))),
        }
    }
}
