//! The PlexSpaces node host and operator CLI.
//!
//! A service's `main` becomes: read the configuration, register the
//! application's kinds, run until a signal.
//!
//! ```no_run
//! # use plexspaces::prelude::*;
//! # #[derive(Default, serde::Serialize, serde::Deserialize)] struct Cart(u64);
//! # impl DurableActor for Cart {
//! #     type Msg = u64; type Reply = u64;
//! #     async fn handle(&mut self, _: &mut DurableContext<'_>, n: u64) -> Result<u64, ActorError> { self.0 += n; Ok(self.0) }
//! # }
//! use plexspaces_node::Node;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Node::from_config_file("node.toml").await?;
//! let carts = VirtualActors::register(node.system(), VirtualConfig::new("cart", node.journal()), |_| Cart::default())?;
//! node.register_virtual(&carts)?; // `plexspaces virtual list` shows it
//! node.run().await?; // until SIGTERM or SIGINT, then a graceful shutdown
//! # Ok(()) }
//! ```
//!
//! The configuration's keys, each with its default, are in
//! `plexspaces-node.toml` beside this crate's manifest. The `plexspaces`
//! binary is the operator CLI (`plexspaces --help`).

pub mod admin;
pub mod config;
pub mod demo_bank;
mod host;
pub mod journal_tool;

pub use config::{ConfigError, NodeConfig};
pub use host::{Node, NodeError, ShutdownReport, operator_token};
