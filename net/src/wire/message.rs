//! The messages nodes exchange, one per frame.
//!
//! Actor messages travel as opaque `payload` bytes: the runtime encodes an
//! actor's `Msg` and `Reply` types itself, so this crate knows nothing of
//! them. Names are plain strings here; the runtime validates them.

use super::journal::{JournalOp, JournalOutcome};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// A nonce or an HMAC-SHA256 proof.
pub type Bytes32 = [u8; 32];

/// One frame's content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WireMessage {
    /// Handshake, dialer → acceptor: who I am, where I listen, my nonce.
    Hello {
        /// The dialer's node name.
        node: String,
        /// Where the dialer accepts connections (for membership).
        listen: SocketAddr,
        /// Distinguishes this run of the node from earlier ones.
        incarnation: u64,
        /// Fresh random bytes the acceptor must prove the secret over.
        nonce: Bytes32,
    },
    /// Handshake, acceptor → dialer: who I am, my nonce, my proof.
    Challenge {
        /// The acceptor's node name.
        node: String,
        /// The acceptor's run.
        incarnation: u64,
        /// Fresh random bytes the dialer must prove the secret over.
        nonce: Bytes32,
        /// HMAC over both nonces and names, keyed by the cluster secret.
        proof: Bytes32,
    },
    /// Handshake, dialer → acceptor: the dialer's proof.
    Proof {
        /// HMAC over both nonces and names, keyed by the cluster secret.
        proof: Bytes32,
    },
    /// Handshake, acceptor → dialer: accepted.
    Welcome,
    /// Either side: the handshake is refused, and why.
    Refused {
        /// A human-readable reason (never the secret or a proof).
        reason: String,
    },
    /// Liveness plus gossip: the sender's view of the cluster.
    Heartbeat {
        /// Members the sender knows, itself included.
        members: Vec<Member>,
    },
    /// A message for actor `to` on the receiving node; no reply.
    Tell {
        /// The actor's name on the receiving node.
        to: String,
        /// Who sent it, on whose behalf, under which trace.
        headers: Headers,
        /// The encoded message.
        payload: Vec<u8>,
    },
    /// A request for actor `to`; the receiver answers with a `Reply`
    /// carrying the same `request` id on the same connection.
    Ask {
        /// The actor's name on the receiving node.
        to: String,
        /// The caller's id for this request, unique per connection.
        request: u64,
        /// Who sent it, on whose behalf, under which trace.
        headers: Headers,
        /// The encoded message.
        payload: Vec<u8>,
    },
    /// The answer to an `Ask`.
    Reply {
        /// The `Ask`'s request id.
        request: u64,
        /// What became of it.
        outcome: ReplyOutcome,
    },
    /// Tell me (with `Exited`) when actor `target` exits.
    Monitor {
        /// The actor's name on the receiving node.
        target: String,
    },
    /// Actor `target` (on the sender) has exited, or never existed.
    Exited {
        /// The actor's name on the sender.
        target: String,
        /// Why.
        reason: ExitNotice,
    },
    /// Stop actor `target` (as `ActorRef::stop` does locally).
    Stop {
        /// The actor's name on the receiving node.
        target: String,
    },
    /// A request to a journal server; answered by a `JournalResult` with
    /// the same `request` id on the same connection.
    JournalCall {
        /// The caller's id for this request, unique per connection.
        request: u64,
        /// What to do.
        op: JournalOp,
    },
    /// A journal server's answer.
    JournalResult {
        /// The `JournalCall`'s request id.
        request: u64,
        /// What became of it.
        outcome: JournalOutcome,
    },
    /// The sender is shutting down gracefully: place nothing more on it
    /// (its virtual actors move now); it finishes what it has and closes.
    Leaving,
}

impl WireMessage {
    /// The variant's name, for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            WireMessage::Hello { .. } => "Hello",
            WireMessage::Challenge { .. } => "Challenge",
            WireMessage::Proof { .. } => "Proof",
            WireMessage::Welcome => "Welcome",
            WireMessage::Refused { .. } => "Refused",
            WireMessage::Heartbeat { .. } => "Heartbeat",
            WireMessage::Tell { .. } => "Tell",
            WireMessage::Ask { .. } => "Ask",
            WireMessage::Reply { .. } => "Reply",
            WireMessage::Monitor { .. } => "Monitor",
            WireMessage::Exited { .. } => "Exited",
            WireMessage::Stop { .. } => "Stop",
            WireMessage::JournalCall { .. } => "JournalCall",
            WireMessage::JournalResult { .. } => "JournalResult",
            WireMessage::Leaving => "Leaving",
        }
    }
}

/// A cluster member as gossiped in heartbeats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its node name.
    pub node: String,
    /// Where it accepts connections.
    pub addr: SocketAddr,
    /// Its run; a larger one replaces a smaller.
    pub incarnation: u64,
}

/// What became of an `Ask`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ReplyOutcome {
    /// The handler answered; the encoded reply.
    Replied(Vec<u8>),
    /// The handler returned an error (its text).
    Failed(String),
    /// No exported actor of that name runs on the receiver.
    NoSuchActor,
    /// The actor stopped before answering.
    Stopped,
    /// The receiver could not decode the payload as the actor's message
    /// type (the two nodes disagree on the type).
    Undecodable(String),
    /// The actor did not apply the request and is stopping (its journal
    /// failed or was fenced): resending it elsewhere is safe.
    Unavailable(String),
    /// A facet of the actor refused the message before its handler ran
    /// (the facet's name and reason): nothing was applied.
    Rejected(String),
    /// The message had no valid credentials: nothing was applied.
    Unauthenticated(String),
    /// The caller may not do this (the message names the rule): nothing
    /// was applied.
    Forbidden(String),
}

/// What travels with a message besides its payload. The receiving node's
/// facets see it (with the node it came from, which the connection
/// proves); nothing here is trusted by the transport itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Headers {
    /// The sending actor's id (`name@node`), if an actor sent it.
    pub sender: Option<String>,
    /// The tenant the message is for.
    pub tenant: Option<String>,
    /// Who the message acts for (a user, a service), as the sender's
    /// security facet established.
    pub principal: Option<String>,
    /// The trace context (a W3C `traceparent`), if the message is traced.
    pub trace: Option<String>,
}

impl Headers {
    /// Headers carrying `token` as the caller's credentials
    /// (`Bearer <token>` in `principal`), for the receiver's
    /// authentication facet.
    pub fn bearer(token: &str) -> Self {
        Headers {
            principal: Some(format!("Bearer {token}")),
            ..Headers::default()
        }
    }

    /// These headers, saying the message is for `tenant`.
    pub fn for_tenant(mut self, tenant: &str) -> Self {
        self.tenant = Some(tenant.to_string());
        self
    }

    /// Whether nothing is set (the common case, sent as four zero bytes).
    pub fn is_empty(&self) -> bool {
        self.sender.is_none()
            && self.tenant.is_none()
            && self.principal.is_none()
            && self.trace.is_none()
    }
}

/// Why a monitored remote actor exited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitNotice {
    /// It finished or stopped itself.
    Normal,
    /// It was told to stop.
    Shutdown,
    /// It failed (panic, error, linked failure); the reason's text.
    Failed(String),
    /// No exported actor of that name ran when the monitor arrived.
    NoSuchActor,
}
