//! Supervision, as in Erlang/OTP: a supervisor starts its children, watches
//! them, and restarts them by its strategy when they exit; too many restarts
//! too quickly and it gives up and fails itself, so its own supervisor (a
//! supervisor can be a child) decides what happens next.
//!
//! A supervisor is an actor ([`Supervisor`]); children are registered by
//! name on the node, so after a restart they are found again with
//! [`ActorSystem::lookup`](crate::actor::ActorSystem::lookup).

mod spec;
mod supervisor;

pub use spec::{ChildSpec, Intensity, Restart, RestartDelay, Strategy, SupervisorSpec};
pub use supervisor::{
    ChildStats, RunningChild, Supervisor, SupervisorError, SupervisorMsg, SupervisorReply,
    SupervisorStats,
};
