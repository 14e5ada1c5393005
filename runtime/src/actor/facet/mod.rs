//! Facets: capabilities attached to an actor at runtime, run around each
//! message in priority order (highest first), as the design's interceptor
//! chain shows: security (1000+), logging and tracing (900-999), metrics
//! (800-899), domain (100-500), persistence (1-99).
//!
//! A facet's [`before`](Facet::before) sees each message (its payload,
//! typed, and its [`MessageMeta`]) and may let it through, reject it with a
//! typed error, or answer in the actor's place; [`after`](Facet::after)
//! sees the reply and [`on_error`](Facet::on_error) the failure. Hooks are
//! synchronous unless they need to wait: a hook that awaits (a remote
//! check, the clock) returns [`Hook::wait`], and only that hook pays for a
//! boxed future, so a chain of plain hooks costs a few calls per message
//! and an actor without facets pays nothing.
//!
//! A facet also serves its actor: handlers reach an attached facet by type
//! with [`Context::facet`](crate::actor::Context::facet) (and durable
//! handlers with `DurableContext::facet`), so capabilities are called from
//! actor code.
//!
//! ```
//! use plexspaces::actor::facet::{Facet, Hook, Message, Rejection, Verdict};
//!
//! #[derive(Debug)]
//! struct Transfer { amount: u64 }
//!
//! /// The design's fraud check: reads the payload, refuses large transfers.
//! struct FraudCheck { limit: u64 }
//!
//! impl Facet for FraudCheck {
//!     fn name(&self) -> &str { "fraud" }
//!     fn priority(&self) -> i32 { 400 }
//!     fn before<'a>(&'a mut self, msg: &Message<'_>) -> Hook<'a, Verdict> {
//!         match msg.payload::<Transfer>() {
//!             Some(t) if t.amount > self.limit => {
//!                 Hook::ready(Verdict::Reject(Rejection::new(format!("{} is over the limit", t.amount))))
//!             }
//!             _ => Hook::ready(Verdict::Continue),
//!         }
//!     }
//! }
//! ```

mod chain;
mod config;
mod principal;
mod registry;
mod spec;

pub(crate) use chain::{Before, FacetChain};
pub use config::{ConfigValue, FacetConfig, FacetConfigError, parse_duration};
pub use registry::{
    FacetBuilder, FacetCategory, FacetDescriptor, FacetOption, FacetRegistry, MAX_FACET_TYPES,
    OptionKind, priority_in,
};
pub use spec::{FacetFactory, FacetSpec};

use super::{ActorError, ActorId};
use crate::env::{Env, NodeName};
use futures::future::BoxFuture;
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::time::Duration;

pub use crate::observability::trace_scope::{HandlerTrace, UnsampledTrace};
/// What travels with a message besides its payload (sender, tenant,
/// principal, trace context), locally and over the wire.
pub use plexspaces_net::wire::Headers;
pub use principal::{AuthMethod, Principal};

/// What a facet knows about a message, whatever its type.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct MessageMeta<'a> {
    /// The actor handling it.
    pub actor: &'a ActorId,
    /// The message's correlation id (unique per actor).
    pub correlation: u64,
    /// The message type's name.
    pub msg_type: &'static str,
    /// The actor's kind: its Rust type with module paths stripped, the
    /// `kind` label of its metrics.
    pub kind: &'a str,
    /// Messages still waiting in the mailbox behind this one.
    pub mailbox_len: usize,
    /// Whether the sender waits for a reply (`ask`).
    pub is_ask: bool,
    /// Sender, tenant, principal and trace context, as sent.
    pub headers: &'a Headers,
    /// The node the message came from, if it came over the network (the
    /// connection's authenticated peer, not a claim in the headers).
    pub source_node: Option<&'a NodeName>,
    /// Whether the source node proved itself with a TLS certificate (the
    /// cluster runs TLS), not only with the cluster secret.
    pub source_certified: bool,
    /// The caller, as an authentication facet before this one verified
    /// it (`None` before that, or without one).
    pub principal: Option<&'a Principal>,
    /// The node's seams: a hook that waits does so on this clock, so it
    /// runs under the simulator too.
    pub env: &'a Env,
}

/// A message as [`Facet::before`] sees it: its meta and its payload.
pub struct Message<'a> {
    /// What is known about it.
    pub meta: MessageMeta<'a>,
    pub(crate) payload: &'a (dyn Any + Send),
    /// The user's message inside a runtime wrapper (a durable actor's
    /// request carries the actor's own message).
    pub(crate) inner: Option<&'a (dyn Any + Send)>,
    pub(crate) wire: Option<&'a [u8]>,
}

impl<'a> Message<'a> {
    /// The payload as a `T`, if it is one: the actor's message type, or,
    /// for a durable actor, either its `Request<M>` or the `M` inside it.
    pub fn payload<T: Any>(&self) -> Option<&'a T> {
        self.payload
            .downcast_ref::<T>()
            .or_else(|| self.inner.and_then(|inner| inner.downcast_ref::<T>()))
    }

    /// The message as it came over the wire (its encoded bytes), if it
    /// came from another node.
    pub fn wire(&self) -> Option<&'a [u8]> {
        self.wire
    }
}

/// A facet refused a message: the handler does not run, nothing is
/// applied, and the asker gets an [`ActorError`] whose kind says why:
/// [`Rejected`](crate::actor::ActorErrorKind::Rejected) naming the facet,
/// [`Unauthenticated`](crate::actor::ActorErrorKind::Unauthenticated) or
/// [`Forbidden`](crate::actor::ActorErrorKind::Forbidden) naming the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Why, for the sender.
    pub reason: String,
    /// What kind of refusal.
    pub kind: RejectionKind,
}

/// What kind of refusal a [`Rejection`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// A facet's own rule (a rate limit, a fraud check).
    Refused,
    /// The message has no valid credentials.
    Unauthenticated,
    /// The verified caller may not do this; the rule that decided.
    Forbidden {
        /// The deciding rule (`rbac:default-deny`, a policy id, ...).
        rule: String,
    },
}

impl Rejection {
    /// A rejection for `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Rejection {
            reason: reason.into(),
            kind: RejectionKind::Refused,
        }
    }

    /// The message has no valid credentials, for `reason`.
    pub fn unauthenticated(reason: impl Into<String>) -> Self {
        Rejection {
            reason: reason.into(),
            kind: RejectionKind::Unauthenticated,
        }
    }

    /// The caller may not do this: `rule` decided, for `reason`.
    pub fn forbidden(rule: impl Into<String>, reason: impl Into<String>) -> Self {
        Rejection {
            reason: reason.into(),
            kind: RejectionKind::Forbidden { rule: rule.into() },
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// What [`Facet::before`] decides.
pub enum Verdict {
    /// The next facet, then the handler, sees the message.
    Continue,
    /// As `Continue`, and the message acts for this verified principal
    /// (an authentication facet's verdict): later facets see it in
    /// [`MessageMeta::principal`], the handler in
    /// [`Context::principal`](crate::actor::Context::principal).
    ContinueAs(std::sync::Arc<Principal>),
    /// The message is refused.
    Reject(Rejection),
    /// The facet answers in the actor's place (a cache, a stub): the value
    /// must be the actor's `Reply` type, or the asker gets an error saying
    /// which type was expected. The handler does not run; facets after
    /// this one are skipped, and every facet's `after` sees the answer.
    Answer(Box<dyn Any + Send>),
}

impl fmt::Debug for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Continue => f.write_str("Continue"),
            Verdict::ContinueAs(p) => write!(f, "ContinueAs({p})"),
            Verdict::Reject(r) => write!(f, "Reject({r:?})"),
            Verdict::Answer(_) => f.write_str("Answer(..)"),
        }
    }
}

/// A hook's result: ready now, or a future to await (boxed only then).
#[must_use = "a hook's result is its verdict"]
pub struct Hook<'a, T = ()>(HookState<'a, T>);

enum HookState<'a, T> {
    Ready(T),
    Waiting(BoxFuture<'a, T>),
}

impl<'a, T> Hook<'a, T> {
    /// A result available now.
    pub fn ready(value: T) -> Self {
        Hook(HookState::Ready(value))
    }

    /// A result the chain awaits (on the actor's task: the actor takes no
    /// other message meanwhile, as with an awaiting handler).
    pub fn wait(future: impl Future<Output = T> + Send + 'a) -> Self {
        Hook(HookState::Waiting(Box::pin(future)))
    }

    pub(crate) async fn resolve(self) -> T {
        match self.now_or_later() {
            Ok(value) => value,
            Err(waiting) => waiting.await,
        }
    }

    /// The value now, or the future to await for it (the chain's loops
    /// take the ready case without entering a future).
    pub(crate) fn now_or_later(self) -> Result<T, BoxFuture<'a, T>> {
        match self.0 {
            HookState::Ready(value) => Ok(value),
            HookState::Waiting(future) => Err(future),
        }
    }
}

impl Hook<'_, ()> {
    /// Nothing to wait for.
    pub fn done() -> Self {
        Hook::ready(())
    }
}

impl Hook<'_, Verdict> {
    /// Let the message through.
    pub fn proceed() -> Self {
        Hook::ready(Verdict::Continue)
    }
}

/// How a message failed, as [`Facet::on_error`] sees it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure<'a> {
    /// The handler returned this error.
    Handler(&'a ActorError),
    /// The facet named `by` rejected the message before the handler.
    Rejected {
        /// The rejecting facet.
        by: &'a str,
        /// Its reason.
        rejection: &'a Rejection,
    },
    /// The handler panicked (the actor is failing; its supervisor decides
    /// what happens next).
    Panicked(&'a str),
}

/// Which of a facet's per-message hooks the chain calls ([`Facet::hooks`]):
/// a hook left out is never called, and a hook no attached facet has
/// costs nothing per message (on a small handler, each dynamic call the
/// chain makes costs a noticeable share).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hooks(u8);

impl Hooks {
    /// No per-message hook.
    pub const NONE: Hooks = Hooks(0);
    /// [`Facet::before`].
    pub const BEFORE: Hooks = Hooks(1);
    /// [`Facet::after`].
    pub const AFTER: Hooks = Hooks(1 << 1);
    /// [`Facet::on_error`].
    pub const ON_ERROR: Hooks = Hooks(1 << 2);
    /// [`Facet::handler_span`].
    pub const SPAN: Hooks = Hooks(1 << 3);
    /// [`Facet::trace_context`].
    pub const TRACE: Hooks = Hooks(1 << 4);
    /// [`Facet::times`].
    pub const TIMES: Hooks = Hooks(1 << 5);
    /// Every hook (the default).
    pub const ALL: Hooks = Hooks((1 << 6) - 1);

    /// These hooks and `other`'s.
    pub const fn with(self, other: Hooks) -> Hooks {
        Hooks(self.0 | other.0)
    }

    /// Whether every hook of `other` is among these.
    pub const fn has(self, other: Hooks) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether some hook of `other` is among these.
    pub const fn meets(self, other: Hooks) -> bool {
        self.0 & other.0 != 0
    }
}

/// A capability attached to an actor. Facets keep state (`&mut self`) and
/// are `Send`; the actor's task runs them, one message at a time.
pub trait Facet: Any + Send {
    /// The facet's name, unique on one actor.
    fn name(&self) -> &str;

    /// Where it runs in the chain: higher first.
    fn priority(&self) -> i32;

    /// The per-message hooks the chain calls, read once when attached.
    /// Every hook unless the facet says otherwise; one that implements
    /// few hooks names them, and the others cost it nothing per message.
    fn hooks(&self) -> Hooks {
        Hooks::ALL
    }

    /// Called once when attached, before [`Facet::on_attach`], with the
    /// seams and metrics registry of the node the actor runs on.
    fn on_node(&mut self, env: &Env) {
        let _ = env;
    }

    /// Called once when attached to `actor`.
    fn on_attach(&mut self, actor: &ActorId) {
        let _ = actor;
    }

    /// Called once when detached, or when the actor stops.
    fn on_detach(&mut self, actor: &ActorId) {
        let _ = actor;
    }

    /// Runs before the handler, in chain order: continue, reject or answer.
    /// A hook that waits ([`Hook::wait`]) may keep `&mut self` in its
    /// future but not the message: it copies what it needs first (the
    /// payload need not be `Sync`).
    fn before<'a>(&'a mut self, msg: &Message<'_>) -> Hook<'a, Verdict> {
        let _ = msg;
        Hook::proceed()
    }

    /// Whether this facet wants the handler timed for the message about
    /// to run (asked of every facet after the `before` hooks let it
    /// through). The node reads its clock around the handler only when one
    /// says yes (a clock read costs about as much as a small handler), and
    /// then every facet's `after` or `on_error` gets the time. Yes unless
    /// a facet says otherwise; the metrics facet times a sample.
    fn times(&mut self) -> bool {
        true
    }

    /// Runs after the handler replied (or a facet answered), in chain
    /// order, with the reply as `&dyn Any` (the actor's `Reply` type) and
    /// the handler's time if a facet asked for it ([`Facet::times`]; never
    /// when a facet answered). Its future, if it waits, keeps only
    /// `&mut self` (as `before`).
    fn after<'a>(
        &'a mut self,
        meta: &MessageMeta<'_>,
        reply: &(dyn Any + Send),
        elapsed: Option<Duration>,
    ) -> Hook<'a> {
        let _ = (meta, reply, elapsed);
        Hook::done()
    }

    /// Runs instead of `after` when the handler failed, panicked, or a
    /// facet rejected the message (every facet but the rejecting one hears
    /// of a rejection). `elapsed` as for `after` (never for a rejection).
    /// Its future, if it waits, keeps only `&mut self`.
    fn on_error<'a>(
        &'a mut self,
        meta: &MessageMeta<'_>,
        failure: &Failure<'_>,
        elapsed: Option<Duration>,
    ) -> Hook<'a> {
        let _ = (meta, failure, elapsed);
        Hook::done()
    }

    /// A `tracing` span the handler runs inside (its events, and its
    /// logging, carry the span's fields). The first facet in chain order
    /// that gives one wins.
    fn handler_span(&self, meta: &MessageMeta<'_>) -> Option<tracing::Span> {
        let _ = meta;
        None
    }

    /// The trace the handler runs in: an OpenTelemetry context (current
    /// for its whole run, so the asks it makes carry it on) or an
    /// unsampled trace (carried on by what it sends, nothing recorded).
    /// The first facet in chain order that gives one wins.
    fn trace_context(&self) -> Option<HandlerTrace> {
        None
    }
}

/// A facet's name and priority, as listed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FacetInfo {
    /// Its name.
    pub name: String,
    /// Its priority.
    pub priority: i32,
}

/// Why a facet operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FacetError {
    /// A facet of this name is already attached to the actor (names are
    /// unique per actor: detach the old one first).
    NameTaken {
        /// The actor.
        actor: ActorId,
        /// The facet's name.
        name: String,
    },
    /// The actor has stopped.
    Stopped(ActorId),
    /// A facet value cannot travel to another node: attach a registered
    /// facet type by name ([`ActorRef::attach_facet_named`](crate::actor::ActorRef::attach_facet_named)).
    Remote(ActorId),
    /// The configuration was refused (by the actor's node registry).
    Config(FacetConfigError),
    /// The actor's node could not be reached or answered nonsense.
    Unreachable {
        /// The actor.
        actor: ActorId,
        /// What went wrong.
        reason: String,
    },
}

impl fmt::Display for FacetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FacetError::NameTaken { actor, name } => {
                write!(f, "a facet named {name:?} is already attached to {actor}")
            }
            FacetError::Stopped(actor) => write!(f, "{actor} has stopped"),
            FacetError::Remote(actor) => write!(
                f,
                "{actor} is on another node: attach a registered facet type by name"
            ),
            FacetError::Config(e) => write!(f, "facet configuration refused: {e}"),
            FacetError::Unreachable { actor, reason } => {
                write!(f, "facets of {actor}: {reason}")
            }
        }
    }
}

impl std::error::Error for FacetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FacetError::Config(e) => Some(e),
            _ => None,
        }
    }
}

impl From<FacetConfigError> for FacetError {
    fn from(e: FacetConfigError) -> Self {
        FacetError::Config(e)
    }
}
