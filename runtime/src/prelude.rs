//! What nearly every program using PlexSpaces needs, in one import:
//!
//! ```
//! use plexspaces::prelude::*;
//! ```
//!
//! The actor layer (actors, refs, the system, errors), the seam traits
//! (so `env.now()`, `env.sleep(d)`, `env.spawn(f)` and `env.next_u64()`
//! work on an [`Env`] without naming the trait), supervision, durable and
//! virtual actors, workflows, and the journal's configuration. Behaviors,
//! tuple spaces, channels, distribution and the journal itself stay in
//! their modules: fewer programs need them, and their names would crowd
//! this one.

pub use crate::actor::{
    Actor, ActorError, ActorId, ActorRef, ActorSystem, AskError, Context, SendError, SpawnError,
};
pub use crate::durability::{
    DurabilityConfig, Durable, DurableActor, DurableContext, JournalBackend,
};
pub use crate::env::{Env, NodeName};
pub use crate::seams::{Clock, Rng, Spawn};
pub use crate::storage::journal::JournalConfig;
pub use crate::supervision::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
pub use crate::virtual_actor::{VirtualActors, VirtualConfig, VirtualRef};
pub use crate::workflow::{
    ListQuery, ParentClose, RetryPolicy, RunId, RunStatus, StatusFilter, StepError, StepOptions,
    Workflow, WorkflowConfig, WorkflowContext, WorkflowError, Workflows,
};
