//! The seeded simulator of PlexSpaces.
//!
//! Under `RUSTFLAGS="--cfg madsim"`, this crate implements the runtime's
//! seams on [madsim](https://docs.rs/madsim): virtual time that jumps to the
//! next timer, a scheduler that picks the next ready task from the run's
//! seed, and per-node randomness derived from that seed. The production
//! actors, journal and supervision code run on these unchanged, so a run is
//! a pure function of its seed.
//!
//! Without `--cfg madsim` only the mode-independent parts ([`ChaChaRng`])
//! are built; the workspace build stays fast and tokio-only.
//!
//! Build and test it in its own target directory so the two trees do not
//! evict each other:
//!
//! ```text
//! RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim cargo test -p plexspaces-sim
//! ```

mod rng;
#[cfg(madsim)]
mod seams;

pub use rng::ChaChaRng;
#[cfg(madsim)]
pub use seams::{SimClock, SimSpawner};
