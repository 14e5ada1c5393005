//! The seams through which a node reaches time, tasks and randomness.
//! (The disk and network seams live in `plexspaces-storage` and
//! `plexspaces-net`, and are re-exported from here.)

mod clock;
mod rng;
mod spawn;

pub use clock::{Clock, DynClock, Elapsed, Instant};
pub(crate) use clock::{unix_millis, whole_millis};
pub use plexspaces_net::{ByteReader, ByteWriter, Connection, DynNet, Listener, Net, NetError};
pub use plexspaces_storage::disk::{Disk, DiskError, DiskFile, DynDisk};
pub use rng::{LocalRng, Rng, SeededRng};
pub use spawn::{JoinError, JoinHandle, Spawn, panic_message, spawn_on};
