//! The `Disk` seam: a directory of files, and nothing else.
//!
//! Everything PlexSpaces keeps on a disk (the journal's segments, checkpoints,
//! key-value and reminder stores) goes through this trait, so the simulator
//! can hand the same code a disk that loses unsynced writes, tears sectors,
//! flips bits and runs out of space. The contract is the one POSIX gives a
//! careful program, stated so that a fake can honour it exactly:
//!
//! - data written to a file is durable only after [`DiskFile::sync_data`]
//!   returns `Ok`; a crash may keep, lose or tear anything written since;
//! - a file's existence and name (after [`Disk::create`], [`Disk::rename`],
//!   [`Disk::remove`]) are durable only after [`Disk::sync_dir`] returns `Ok`;
//! - an error from `sync_data` means the unsynced data may be gone for good,
//!   even if a later sync succeeds.

mod dynamic;
mod error;
#[cfg(feature = "tokio")]
mod fs;
mod memory;

pub use dynamic::{DynDisk, DynFile};
pub use error::{DiskError, DiskErrorKind};
#[cfg(feature = "tokio")]
pub use fs::{FsDisk, FsFile};
pub use memory::{MemDisk, MemFile};

use std::future::Future;

/// Largest single read the seam serves; a caller wanting more reads in pieces.
///
/// It bounds the memory a corrupt length field can make a reader allocate.
pub const READ_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A directory of files: the unit of storage a node owns.
///
/// Names are flat (no `/`); use [`Disk::subdir`] for nesting. Cloning is
/// cheap and yields a handle to the same directory.
pub trait Disk: Clone + Send + Sync + 'static {
    /// An open file of this disk.
    type File: DiskFile;

    /// Creates a new, empty file; fails with [`DiskErrorKind::AlreadyExists`]
    /// if the name is taken. The name is durable only after [`Disk::sync_dir`].
    fn create(&self, name: &str) -> impl Future<Output = Result<Self::File, DiskError>> + Send;

    /// Opens an existing file for reading and writing.
    fn open(&self, name: &str) -> impl Future<Output = Result<Self::File, DiskError>> + Send;

    /// Names of the files (not subdirectories) in this directory, sorted.
    fn list(&self) -> impl Future<Output = Result<Vec<String>, DiskError>> + Send;

    /// Atomically renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &str, to: &str) -> impl Future<Output = Result<(), DiskError>> + Send;

    /// Removes a file.
    fn remove(&self, name: &str) -> impl Future<Output = Result<(), DiskError>> + Send;

    /// Makes every create, rename and remove in this directory durable.
    fn sync_dir(&self) -> impl Future<Output = Result<(), DiskError>> + Send;

    /// A subdirectory, created (and made durable in this one) if missing.
    fn subdir(&self, name: &str) -> impl Future<Output = Result<Self, DiskError>> + Send;
}

/// An open file. Offsets are bytes from the start of the file.
pub trait DiskFile: Send + Sync + 'static {
    /// Reads up to `len` bytes at `offset`; fewer only at the end of the file.
    fn read_at(
        &self,
        offset: u64,
        len: usize,
    ) -> impl Future<Output = Result<Vec<u8>, DiskError>> + Send;

    /// Writes all of `data` at `offset`, growing the file if needed.
    fn write_at(
        &self,
        offset: u64,
        data: &[u8],
    ) -> impl Future<Output = Result<(), DiskError>> + Send;

    /// Writes `data` at the end of the file and returns the offset it landed at.
    fn append(&self, data: &[u8]) -> impl Future<Output = Result<u64, DiskError>> + Send;

    /// The file's current size in bytes.
    fn size(&self) -> impl Future<Output = Result<u64, DiskError>> + Send;

    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> impl Future<Output = Result<(), DiskError>> + Send;

    /// Makes the file's data and size durable (`fdatasync`).
    fn sync_data(&self) -> impl Future<Output = Result<(), DiskError>> + Send;

    /// [`DiskFile::write_at`] then [`DiskFile::sync_data`], in one call
    /// where the implementation can do better than two (the real file disk
    /// does both in place, with no thread hop at all).
    fn write_at_and_sync(
        &self,
        offset: u64,
        data: &[u8],
    ) -> impl Future<Output = Result<(), DiskError>> + Send {
        async move {
            self.write_at(offset, data).await?;
            self.sync_data().await
        }
    }
}

/// Checks that `name` is a plain file name: non-empty, no separators, not a
/// relative component. Every `Disk` implementation calls this first, so the
/// real and the simulated disk refuse the same names.
pub fn validate_name(name: &str) -> Result<(), DiskError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name.contains(['/', '\\', '\0']);
    if bad {
        return Err(DiskError::new(DiskErrorKind::InvalidName, "validate", name));
    }
    Ok(())
}

/// Checks a read's length against [`READ_BYTES_MAX`]; every `Disk`
/// implementation calls this first, so all refuse the same reads.
pub fn validate_read_len(len: usize, name: &str) -> Result<(), DiskError> {
    if len > READ_BYTES_MAX {
        return Err(DiskError::new(DiskErrorKind::TooLarge, "read_at", name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_separators_or_relative_parts_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\\b", "nul\0"] {
            let err = validate_name(bad).unwrap_err();
            assert_eq!(err.kind(), DiskErrorKind::InvalidName, "{bad:?}");
        }
        assert!(validate_name(&"x".repeat(256)).is_err());
        for good in ["segment-00000001.log", "a", "checkpoint.tmp", ".hidden"] {
            validate_name(good).unwrap();
        }
    }
}
