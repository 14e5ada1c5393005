//! Test helpers: a disk wrapper that counts syncs and reads and fails
//! syncs on demand.

#![allow(dead_code)]

use plexspaces_storage::disk::{Disk, DiskError, DiskErrorKind, DiskFile};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Shared switches and counters of a [`ProbeDisk`].
#[derive(Debug, Default)]
pub struct Probe {
    pub syncs: AtomicU64,
    pub fail_next_sync: AtomicBool,
    /// Fails the next `create` with an I/O error.
    pub fail_next_create: AtomicBool,
    /// Fails the next `open` with an I/O error.
    pub fail_next_open: AtomicBool,
    /// `read_at` calls, and the largest length one asked for.
    pub reads: AtomicU64,
    pub largest_read: AtomicU64,
}

impl Probe {
    /// Reads and the largest read since the last call.
    pub fn take_reads(&self) -> (u64, u64) {
        (
            self.reads.swap(0, Ordering::SeqCst),
            self.largest_read.swap(0, Ordering::SeqCst),
        )
    }
}

/// Wraps a disk: counts `sync_data` and `read_at` calls and fails a sync
/// when asked.
#[derive(Clone, Debug)]
pub struct ProbeDisk<D> {
    pub inner: D,
    pub probe: Arc<Probe>,
}

pub struct ProbeFile<F> {
    inner: F,
    probe: Arc<Probe>,
}

impl<D: Disk> ProbeDisk<D> {
    pub fn new(inner: D) -> Self {
        ProbeDisk {
            inner,
            probe: Arc::new(Probe::default()),
        }
    }
}

impl<D: Disk> Disk for ProbeDisk<D> {
    type File = ProbeFile<D::File>;
    async fn create(&self, name: &str) -> Result<Self::File, DiskError> {
        if self.probe.fail_next_create.swap(false, Ordering::SeqCst) {
            return Err(DiskError::new(DiskErrorKind::Io, "create", "injected"));
        }
        let inner = self.inner.create(name).await?;
        Ok(ProbeFile {
            inner,
            probe: self.probe.clone(),
        })
    }
    async fn open(&self, name: &str) -> Result<Self::File, DiskError> {
        if self.probe.fail_next_open.swap(false, Ordering::SeqCst) {
            return Err(DiskError::new(DiskErrorKind::Io, "open", "injected"));
        }
        let inner = self.inner.open(name).await?;
        Ok(ProbeFile {
            inner,
            probe: self.probe.clone(),
        })
    }
    async fn list(&self) -> Result<Vec<String>, DiskError> {
        self.inner.list().await
    }
    async fn rename(&self, from: &str, to: &str) -> Result<(), DiskError> {
        self.inner.rename(from, to).await
    }
    async fn remove(&self, name: &str) -> Result<(), DiskError> {
        self.inner.remove(name).await
    }
    async fn sync_dir(&self) -> Result<(), DiskError> {
        self.inner.sync_dir().await
    }
    async fn subdir(&self, name: &str) -> Result<Self, DiskError> {
        Ok(ProbeDisk {
            inner: self.inner.subdir(name).await?,
            probe: self.probe.clone(),
        })
    }
}

impl<F: DiskFile> DiskFile for ProbeFile<F> {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, DiskError> {
        self.probe.reads.fetch_add(1, Ordering::SeqCst);
        self.probe
            .largest_read
            .fetch_max(len as u64, Ordering::SeqCst);
        self.inner.read_at(offset, len).await
    }
    async fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        self.inner.write_at(offset, data).await
    }
    async fn append(&self, data: &[u8]) -> Result<u64, DiskError> {
        self.inner.append(data).await
    }
    async fn size(&self) -> Result<u64, DiskError> {
        self.inner.size().await
    }
    async fn set_len(&self, len: u64) -> Result<(), DiskError> {
        self.inner.set_len(len).await
    }
    async fn sync_data(&self) -> Result<(), DiskError> {
        self.probe.syncs.fetch_add(1, Ordering::SeqCst);
        if self.probe.fail_next_sync.swap(false, Ordering::SeqCst) {
            return Err(DiskError::new(DiskErrorKind::Io, "sync_data", "injected"));
        }
        self.inner.sync_data().await
    }
}
