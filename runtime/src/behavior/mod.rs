//! OTP behaviors on top of [`Actor`](crate::actor::Actor).
//!
//! - GenServer: every actor is one (`Msg` request, `Reply` answer; `ask` is
//!   a call, `tell` a cast). See the `kv_server` example.
//! - [`GenFsm`] (as Erlang's `gen_statem`): state + event → next state, with
//!   state timeouts; run it as the actor [`Fsm`].
//! - [`EventManager`] (as Erlang's `gen_event`): handlers added and removed
//!   at runtime, each notified of every event.

mod event;
mod fsm;

pub use event::{EventHandler, EventManager, EventMsg, EventReply, HandlerId};
pub use fsm::{Fsm, FsmInput, FsmMsg, GenFsm, TimerToken, Transition};
