//! PlexSpaces: an actor runtime whose every effect on the world goes through
//! small seams ([`Clock`](seams::Clock), [`Spawn`](seams::Spawn),
//! [`Rng`](seams::Rng), [`Disk`](seams::Disk), [`Net`](seams::Net)), so the
//! same code runs on tokio in production and inside a seeded simulator that
//! injects crashes, partitions and disk faults.
//!
//! A node sees the world through one [`Env`]:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use plexspaces::{Env, NodeName};
//! use plexspaces::seams::{Clock, Rng};
//! use std::time::Duration;
//!
//! let dir = std::env::temp_dir().join(format!("plexspaces-doc-env-{}", std::process::id()));
//! let env = Env::tokio(NodeName::new("node1")?).with_data_dir(&dir).await?;
//! let started = env.now();
//! let roll = env.gen_range(1..7);
//! let task = env.spawn({
//!     let env = env.clone();
//!     async move { env.sleep(Duration::from_millis(5)).await; roll * 10 }
//! });
//! assert_eq!(task.await?, roll * 10);
//! assert!(env.now() - started >= Duration::from_millis(5));
//! # Ok(()) }
//! ```

pub mod actor;
pub mod behavior;
pub mod capabilities;
pub mod channels;
mod codec;
pub mod distribution;
pub mod durability;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod encoded_types;
mod env;
pub mod events;
pub mod groups;
mod invariant;
pub mod names;
mod nesting;
pub mod observability;
pub mod prelude;
pub mod registry;
pub mod reminders;
pub mod retry;
pub mod seams;
pub mod security;
pub mod supervision;
#[cfg(feature = "tokio")]
pub mod tokio_backend;
pub mod tuplespace;
pub mod virtual_actor;
mod wake;
pub mod workflow;

/// Deliberate bugs the simulator's tests plant, to show the simulator
/// finds them: acted on only with the `planted-bugs` feature (tests only).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// The journal server applies writes without checking the writer's
    /// epoch or expected sequence number.
    SkipFencing,
    /// Virtual actor hosts keep activations placement moved elsewhere.
    SkipHandOff,
    /// A shared tuple space puts a run-out lease's tuple back but lets the
    /// lease still complete (so a task can be completed twice).
    LeaseOutlivesExpiry,
    /// A workflow run drops a signal that arrives before the run waits
    /// for it.
    DropEarlySignal,
    /// Durable actors run recorded side effects again when they replay
    /// (still using the recorded results).
    ReplaySideEffects,
    /// Supervisors restart temporary children.
    RestartTemporaryChild,
}

pub use codec::{DecodeError, EncodeError};
pub use env::{Env, InvalidNodeName, NodeName};

/// The storage crate: the `Disk` seam and the journal.
pub use plexspaces_storage as storage;

/// The net crate: the `Net` seam.
pub use plexspaces_net as net;

/// The README's code blocks, compiled as doc tests so the newcomer's page
/// cannot drift from the code.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
