//! The `Actor` trait: private state, one message at a time.

use super::{ActorError, Context, ExitReason};
use std::future::Future;

/// An actor: state that only its own task touches, changed by one message
/// at a time.
///
/// Every actor is also an OTP-style GenServer: `Msg` is the request,
/// `Reply` the answer. [`ActorRef::ask`](super::ActorRef::ask) is a call
/// (waits for the reply, with a timeout); [`ActorRef::tell`](super::ActorRef::tell)
/// is a cast (the reply is dropped). An actor that never answers anything
/// uses `type Reply = ()`.
///
/// ```
/// use plexspaces::actor::{Actor, ActorError, Context};
///
/// struct Counter(u64);
///
/// enum CounterMsg { Add(u64), Get }
///
/// impl Actor for Counter {
///     type Msg = CounterMsg;
///     type Reply = u64;
///
///     async fn handle(&mut self, _ctx: &mut Context<Self>, msg: CounterMsg) -> Result<u64, ActorError> {
///         if let CounterMsg::Add(n) = msg {
///             self.0 += n;
///         }
///         Ok(self.0)
///     }
/// }
/// ```
pub trait Actor: Send + Sized + 'static {
    /// What the actor receives.
    type Msg: Send + 'static;
    /// What it answers to an `ask`.
    type Reply: Send + 'static;

    /// Handles one message. An `Err` goes back to the caller of `ask` and
    /// the actor carries on; a panic fails the actor (its supervisor
    /// decides what happens next).
    fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        msg: Self::Msg,
    ) -> impl Future<Output = Result<Self::Reply, ActorError>> + Send;

    /// Runs before the first message. An `Err` fails the actor at start.
    fn pre_start(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<(), ActorError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Runs after the last message, whatever the reason (except a panic in
    /// the handler, after which the state may be broken and is dropped).
    fn post_stop(
        &mut self,
        ctx: &mut Context<Self>,
        reason: &ExitReason,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ctx, reason);
        async {}
    }

    /// The user's message inside a runtime wrapper, for facets that read
    /// payloads ([`Message::payload`](super::facet::Message::payload)): a
    /// durable actor's `Request<M>` exposes its `M`. Others expose none.
    #[doc(hidden)]
    fn inner_message(msg: &Self::Msg) -> Option<&(dyn std::any::Any + Send)> {
        let _ = msg;
        None
    }
}

/// Where an actor is in its life (the design's state diagram).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActorStatus {
    /// Spawned; `pre_start` not finished.
    Creating,
    /// Taking messages.
    Active,
    /// Stopped cleanly (Normal or Shutdown).
    Terminated,
    /// Stopped by a failure (panic, error, linked failure).
    Failed,
}

impl ActorStatus {
    /// Whether the actor has stopped (cleanly or by failure) and takes no
    /// more messages.
    pub fn is_finished(self) -> bool {
        matches!(self, ActorStatus::Terminated | ActorStatus::Failed)
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            ActorStatus::Creating => 0,
            ActorStatus::Active => 1,
            ActorStatus::Terminated => 2,
            ActorStatus::Failed => 3,
        }
    }

    pub(crate) fn from_u8(value: u8) -> Self {
        match value {
            0 => ActorStatus::Creating,
            1 => ActorStatus::Active,
            2 => ActorStatus::Terminated,
            _ => ActorStatus::Failed,
        }
    }
}
