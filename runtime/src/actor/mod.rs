//! Actors: private state, one message at a time, bounded mailboxes,
//! `tell` and `ask`, lifecycle hooks, monitors and links, facets; and the
//! behaviors and supervision built on them.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use plexspaces::actor::{Actor, ActorError, ActorSystem, Context};
//! use plexspaces::{Env, NodeName};
//! use std::time::Duration;
//!
//! struct Greeter;
//! impl Actor for Greeter {
//!     type Msg = String;
//!     type Reply = String;
//!     async fn handle(&mut self, ctx: &mut Context<Self>, name: String) -> Result<String, ActorError> {
//!         Ok(format!("hello {name}, from {}", ctx.id()))
//!     }
//! }
//!
//! let dir = std::env::temp_dir().join(format!("plexspaces-doc-actor-{}", std::process::id()));
//! let system = ActorSystem::new(Env::tokio(NodeName::new("node1")?).with_data_dir(dir).await?);
//! let greeter = system.spawn("greeter", Greeter)?;
//! let reply = greeter.ask("ada".into(), Duration::from_secs(1)).await?;
//! assert_eq!(reply, "hello ada, from greeter@node1");
//! # Ok(()) }
//! ```

#[allow(clippy::module_inception)]
mod actor;
mod actor_ref;
/// The facets that come with the runtime (logging, metrics), attachable
/// by type name.
pub mod builtin_facets;
pub(crate) mod cell;
mod context;
pub(crate) mod deadline;
mod error;
/// The facet mechanism: the `Facet` trait, the chain run around each
/// message, the registry of facet types.
pub mod facet;
mod id;
pub(crate) mod mailbox;
pub(crate) mod proxy;
mod system;
mod timer_wheel;
pub mod timers;

pub use actor::{Actor, ActorStatus};
pub use actor_ref::ActorRef;
pub(crate) use actor_ref::{Delivery, ReplySender};
pub(crate) use cell::{ChildCell, exited, wait_exit};
pub use context::Context;
pub use error::{ActorError, ActorErrorKind, AskError, ExitReason, SendError, SpawnError};
pub use id::{ActorId, InvalidActorName};
pub use system::WeakSystem;
pub use system::{ActorSystem, SpawnOptions};
pub use timers::{TimerError, TimerId};
