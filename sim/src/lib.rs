//! The seeded simulator of PlexSpaces.
//!
//! Under `RUSTFLAGS="--cfg madsim"`, this crate implements every seam of the
//! runtime on [madsim](https://docs.rs/madsim): virtual time that jumps to
//! the next timer, a scheduler that picks the next ready task from the run's
//! seed, per-node randomness derived from that seed, madsim's network (with
//! connection resets added), and a disk of our own that fails the way real
//! disks do ([`SimDisk`]). The production actors, journal and supervision
//! code run on these unchanged, so a run is a pure function of its seed.
//!
//! [`Cluster`] starts nodes and pulls the levers (crash, restart, pause,
//! partition, reset, skew, disk faults); a [`Schedule`] drawn from the seed
//! pulls them over time; [`Trace`] hashes every seam call so two runs of one
//! seed can be compared.
//!
//! Without `--cfg madsim` only the mode-independent parts ([`ChaChaRng`],
//! [`Trace`], the fault schedule) are built; the workspace build stays fast
//! and tokio-only.
//!
//! Build and test it in its own target directory so the two trees do not
//! evict each other:
//!
//! ```text
//! RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim cargo test --profile sim -p plexspaces-sim
//! ```

#[cfg(madsim)]
mod cluster;
#[cfg(madsim)]
mod disk;
#[cfg(madsim)]
mod nemesis;
#[cfg(madsim)]
mod net;
mod rng;
#[cfg(madsim)]
mod seams;
mod trace;

#[cfg(madsim)]
pub use cluster::{Cluster, ClusterConfig, ReportOnPanic, quiet_reports};
#[cfg(madsim)]
pub use disk::{
    DiskFaults, DiskLatency, FaultCounts, SECTOR_BYTES, SimDisk, SimFile, WriteFault, WriteFaultHit,
};
#[cfg(madsim)]
pub use nemesis::{
    Fault, FaultKinds, NemesisConfig, Schedule, ScheduledFault, keep_only, last_drawn,
};
#[cfg(madsim)]
pub use net::{SimConnection, SimListener, SimNet, SimReader, SimWriter};
pub use rng::ChaChaRng;
#[cfg(madsim)]
pub use seams::{ClockSkew, SimClock, SimSpawner};
pub use trace::{Event, Trace};
