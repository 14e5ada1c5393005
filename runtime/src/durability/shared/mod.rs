//! A journal several nodes share, so a durable actor that moves (a virtual
//! actor reactivated on another node) finds its history there.
//!
//! [`JournalServer`] serves any [`Journal`](plexspaces_storage::journal::Journal)
//! (the embedded file journal, typically) to the cluster over the `Net`
//! seam, behind the same authenticating handshake as node links (see
//! `net/PROTOCOL.md`). [`SharedJournal`] is the client every node uses; it
//! implements `Journal`, so a durable actor writes to it as to a local one.
//!
//! **Fencing.** Before recovering, a durable actor *claims* its stream:
//! the server durably bumps the stream's epoch. Every append and checkpoint
//! carries the epoch it was granted and the sequence number it expects to
//! write, and the server applies it only if both are current (a conditional
//! append under the stream's lock). So two activations of one actor can
//! never both append: the older one's next write fails with
//! [`JournalError::Fenced`](plexspaces_storage::journal::JournalError::Fenced),
//! which fails that activation (fail-stop) before it answers anyone.
//!
//! The server is one process; if it is unreachable, appends fail with
//! `Unavailable` and the actors that need it fail until it is back. It is
//! the simulator's model of a shared database (see the PostgreSQL gap in
//! ARCHITECTURE.md).

mod client;
mod server;

pub use client::{SharedJournal, SharedJournalConfig};
pub use server::{JournalServer, JournalServerConfig, JournalServerError, Reopen};

/// The prefix of the stream that holds a stream's epochs. `@` never starts
/// an actor id or a virtual actor's stream, so it cannot collide.
pub(crate) const FENCE_PREFIX: &str = "@fence ";
