//! Storage for PlexSpaces: the [`Disk`](disk::Disk) seam and the crash-safe
//! journal built on it.
//!
//! Nothing here opens a file except through [`disk::Disk`]; the production
//! implementation [`disk::FsDisk`] (feature `tokio`, on by default) is the
//! only module allowed to, so the simulator can substitute a disk that fails.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use plexspaces_storage::disk::{Disk, DiskFile, FsDisk};
//! let dir = std::env::temp_dir().join(format!("plexspaces-doc-{}", std::process::id()));
//! let disk = FsDisk::open_dir(&dir).await?;
//! let file = disk.create("hello.txt").await?;
//! file.append(b"hello").await?;
//! file.sync_data().await?;
//! disk.sync_dir().await?;
//! assert_eq!(disk.open("hello.txt").await?.read_at(0, 5).await?, b"hello");
//! # disk.remove("hello.txt").await?; Ok(()) }
//! ```

pub mod disk;
pub mod journal;
pub mod sync;
