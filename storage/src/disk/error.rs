//! Typed disk errors: what went wrong, in which operation, on which file.

use std::fmt;
use std::io;

/// The class of a disk failure, for callers that react to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiskErrorKind {
    /// The file does not exist.
    NotFound,
    /// A file with that name exists already.
    AlreadyExists,
    /// The device is full.
    NoSpace,
    /// The name is not a plain file name (see [`super::validate_name`]).
    InvalidName,
    /// A read larger than [`super::READ_BYTES_MAX`] was asked for.
    TooLarge,
    /// Any other I/O failure (including a failed sync).
    Io,
}

/// A failed disk operation, with the operation and file it concerned.
#[derive(Debug)]
pub struct DiskError {
    kind: DiskErrorKind,
    op: &'static str,
    name: String,
    source: Option<io::Error>,
}

impl DiskError {
    /// An error of `kind` raised by operation `op` on file `name`.
    pub fn new(kind: DiskErrorKind, op: &'static str, name: impl Into<String>) -> Self {
        DiskError {
            kind,
            op,
            name: name.into(),
            source: None,
        }
    }

    /// Wraps an OS error, classifying it.
    pub fn from_io(err: io::Error, op: &'static str, name: impl Into<String>) -> Self {
        let kind = match err.kind() {
            io::ErrorKind::NotFound => DiskErrorKind::NotFound,
            io::ErrorKind::AlreadyExists => DiskErrorKind::AlreadyExists,
            io::ErrorKind::StorageFull => DiskErrorKind::NoSpace,
            _ => DiskErrorKind::Io,
        };
        DiskError {
            kind,
            op,
            name: name.into(),
            source: Some(err),
        }
    }

    /// The class of failure.
    pub fn kind(&self) -> DiskErrorKind {
        self.kind
    }

    /// The operation that failed (`"open"`, `"sync_data"`, ...).
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The file (or directory) the operation concerned.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the file was missing.
    pub fn is_not_found(&self) -> bool {
        self.kind == DiskErrorKind::NotFound
    }
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "disk {} of {:?} failed: {:?}",
            self.op, self.name, self.kind
        )?;
        if let Some(source) = &self.source {
            write!(f, " ({source})")?;
        }
        Ok(())
    }
}

impl std::error::Error for DiskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}
