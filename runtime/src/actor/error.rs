//! Why actors stop, and why talking to one failed.

use super::ActorId;
use std::fmt;
use std::time::Duration;

/// A handler's failure: the actor keeps running, the caller of `ask` gets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorError {
    message: String,
    kind: ActorErrorKind,
}

/// What kind of failure an [`ActorError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActorErrorKind {
    /// The handler failed.
    Failed,
    /// The request was not applied and the actor cannot take requests now
    /// (see [`ActorError::unavailable`]).
    Unavailable,
    /// A value of the request could not be encoded for the journal (the
    /// message, a side effect's result, the reply): see
    /// [`ActorError::unencodable`].
    Unencodable,
    /// A durable actor was asked, as a query, a message its
    /// `DurableActor::query` does not answer (a command): nothing was
    /// applied.
    NotAQuery,
    /// A facet of the actor refused the message before its handler ran:
    /// nothing was applied (see [`ActorError::rejected`]).
    Rejected,
    /// The message had no valid credentials (an authentication facet
    /// refused it): nothing was applied.
    Unauthenticated,
    /// The verified caller may not do this (an authorization facet, or a
    /// tenant boundary, refused it; the message names the rule): nothing
    /// was applied.
    Forbidden,
}

impl ActorError {
    /// A failure described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        ActorError {
            message: message.into(),
            kind: ActorErrorKind::Failed,
        }
    }

    /// An error saying the request was *not* applied and the actor cannot
    /// take requests now (a durable actor whose journal failed or was
    /// fenced, and which stops): resending the request, with the same
    /// idempotency key, to the actor's next activation is safe.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ActorError {
            message: message.into(),
            kind: ActorErrorKind::Unavailable,
        }
    }

    /// A value could not be encoded: a durable actor's message (nothing
    /// was applied), a side effect's result (the effect ran; its failure to
    /// encode is journaled, so replay gives this error again instead of
    /// running it again) or a reply. Resending the same value fails the
    /// same way: change the type.
    pub fn unencodable(error: &crate::EncodeError) -> Self {
        ActorError {
            message: error.to_string(),
            kind: ActorErrorKind::Unencodable,
        }
    }

    /// A facet named `facet` refused the message for `reason`.
    pub fn rejected(facet: &str, reason: &str) -> Self {
        ActorError {
            message: format!("rejected by {facet}: {reason}"),
            kind: ActorErrorKind::Rejected,
        }
    }

    /// Whether a facet refused the message (for any reason: also true of
    /// `Unauthenticated` and `Forbidden`).
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.kind,
            ActorErrorKind::Rejected | ActorErrorKind::Unauthenticated | ActorErrorKind::Forbidden
        )
    }

    /// The error the asker gets when the facet `facet` refused a message.
    pub fn from_rejection(facet: &str, rejection: &crate::actor::facet::Rejection) -> Self {
        use crate::actor::facet::RejectionKind;
        match &rejection.kind {
            RejectionKind::Unauthenticated => ActorError {
                message: format!("unauthenticated ({facet}): {}", rejection.reason),
                kind: ActorErrorKind::Unauthenticated,
            },
            RejectionKind::Forbidden { rule } => ActorError {
                message: format!("forbidden by rule {rule} ({facet}): {}", rejection.reason),
                kind: ActorErrorKind::Forbidden,
            },
            _ => ActorError::rejected(facet, &rejection.reason),
        }
    }

    pub(crate) fn with_kind(message: impl Into<String>, kind: ActorErrorKind) -> Self {
        ActorError {
            message: message.into(),
            kind,
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ActorErrorKind {
        self.kind
    }

    /// Whether this is an [`ActorError::unavailable`] error.
    pub fn is_unavailable(&self) -> bool {
        self.kind == ActorErrorKind::Unavailable
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ActorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ActorError {}

/// Why an actor stopped. Normal and Shutdown are clean exits; the rest are
/// failures (a transient child is restarted after those only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// It stopped itself, or finished.
    Normal,
    /// It was told to stop (by `stop()` or its supervisor).
    Shutdown,
    /// A handler or hook panicked.
    Panic(String),
    /// `pre_start` failed, or the actor stopped itself with an error.
    Error(String),
    /// The remote actor's node was declared down (or restarted); seen
    /// through a remote ref.
    NodeDown(crate::NodeName),
    /// A linked actor failed.
    LinkDied {
        /// The linked actor.
        linked: ActorId,
        /// Why it exited.
        reason: String,
    },
}

impl ExitReason {
    /// Whether this is a failure (not Normal or Shutdown).
    pub fn is_failure(&self) -> bool {
        !matches!(self, ExitReason::Normal | ExitReason::Shutdown)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::Panic(msg) => write!(f, "panic: {msg}"),
            ExitReason::Error(msg) => write!(f, "error: {msg}"),
            ExitReason::NodeDown(node) => write!(f, "node {node} is down"),
            ExitReason::LinkDied { linked, reason } => {
                write!(f, "linked actor {linked} died: {reason}")
            }
        }
    }
}

/// A message could not be delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The mailbox is full (`try_tell` only; `tell` waits instead).
    MailboxFull(ActorId),
    /// The actor has stopped.
    Stopped(ActorId),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::MailboxFull(id) => write!(f, "mailbox of {id} is full"),
            SendError::Stopped(id) => write!(f, "actor {id} has stopped"),
        }
    }
}

impl std::error::Error for SendError {}

/// An `ask` got no reply.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AskError {
    /// No reply within the timeout. The request may still be handled.
    Timeout {
        /// The actor asked.
        actor: ActorId,
        /// How long the caller waited.
        after: Duration,
    },
    /// The actor stopped before replying.
    Stopped(ActorId),
    /// The mailbox was full (only from `try_ask`).
    MailboxFull(ActorId),
    /// The handler returned an error.
    Failed(ActorError),
    /// The connection to the actor's node was lost after the request was
    /// sent and before the reply came: it may or may not have been handled.
    ConnectionLost(ActorId),
    /// The actor's node is declared down: the request was not sent. The
    /// ref works again once the node is back (see
    /// [`crate::distribution`]).
    NodeDown(ActorId),
}

impl From<SendError> for AskError {
    fn from(err: SendError) -> Self {
        match err {
            SendError::MailboxFull(id) => AskError::MailboxFull(id),
            SendError::Stopped(id) => AskError::Stopped(id),
        }
    }
}

impl fmt::Display for AskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AskError::Timeout { actor, after } => {
                write!(f, "{actor} did not reply within {after:?}")
            }
            AskError::Stopped(id) => write!(f, "actor {id} stopped before replying"),
            AskError::MailboxFull(id) => write!(f, "mailbox of {id} is full"),
            AskError::Failed(e) => write!(f, "handler failed: {e}"),
            AskError::NodeDown(id) => {
                write!(f, "the node of {id} is down: the request was not sent")
            }
            AskError::ConnectionLost(id) => write!(
                f,
                "connection to {id}'s node lost before the reply (the request may have been handled)"
            ),
        }
    }
}

impl std::error::Error for AskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AskError::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// An actor could not be started.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpawnError {
    /// The name is not a valid actor name.
    InvalidName(String),
    /// An actor with that name is already running on this node.
    NameTaken(ActorId),
    /// A mailbox capacity of zero was asked for.
    ZeroCapacity,
    /// The system was shut down: it spawns nothing more.
    ShutDown,
    /// Two facets given at spawn have the same name; nothing was spawned.
    Facet(super::facet::FacetError),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::InvalidName(name) => write!(f, "invalid actor name {name:?}"),
            SpawnError::NameTaken(id) => write!(f, "an actor named {id} is already running"),
            SpawnError::ZeroCapacity => f.write_str("a mailbox needs a capacity of at least 1"),
            SpawnError::ShutDown => f.write_str("the actor system was shut down"),
            SpawnError::Facet(e) => write!(f, "not spawned: {e}"),
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpawnError::Facet(e) => Some(e),
            _ => None,
        }
    }
}
