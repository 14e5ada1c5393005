//! A type-erased `Disk`, so a node's environment can hold "some disk"
//! without every type above it being generic over which one.
//!
//! Each call costs one boxed future; the journal batches its I/O, so that
//! is noise next to a system call.

use super::{Disk, DiskError, DiskFile};
use futures::future::BoxFuture;
use std::sync::Arc;

/// Any [`Disk`], behind a pointer.
#[derive(Clone)]
pub struct DynDisk(Arc<dyn ErasedDisk>);

/// A file of a [`DynDisk`].
#[derive(Clone)]
pub struct DynFile(Arc<dyn ErasedFile>);

impl DynDisk {
    /// Erases the type of `disk`.
    pub fn new<D: Disk>(disk: D) -> Self {
        DynDisk(Arc::new(disk))
    }
}

impl std::fmt::Debug for DynDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DynDisk")
    }
}

trait ErasedDisk: Send + Sync + 'static {
    fn create<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<DynFile, DiskError>>;
    fn open<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<DynFile, DiskError>>;
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, DiskError>>;
    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), DiskError>>;
    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), DiskError>>;
    fn sync_dir(&self) -> BoxFuture<'_, Result<(), DiskError>>;
    fn subdir<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<DynDisk, DiskError>>;
}

impl<D: Disk> ErasedDisk for D {
    fn create<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<DynFile, DiskError>> {
        Box::pin(async move { Ok(DynFile(Arc::new(Disk::create(self, name).await?))) })
    }
    fn open<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<DynFile, DiskError>> {
        Box::pin(async move { Ok(DynFile(Arc::new(Disk::open(self, name).await?))) })
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, DiskError>> {
        Box::pin(Disk::list(self))
    }
    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), DiskError>> {
        Box::pin(Disk::rename(self, from, to))
    }
    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), DiskError>> {
        Box::pin(Disk::remove(self, name))
    }
    fn sync_dir(&self) -> BoxFuture<'_, Result<(), DiskError>> {
        Box::pin(Disk::sync_dir(self))
    }
    fn subdir<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<DynDisk, DiskError>> {
        Box::pin(async move { Ok(DynDisk::new(Disk::subdir(self, name).await?)) })
    }
}

impl Disk for DynDisk {
    type File = DynFile;

    async fn create(&self, name: &str) -> Result<DynFile, DiskError> {
        self.0.create(name).await
    }
    async fn open(&self, name: &str) -> Result<DynFile, DiskError> {
        self.0.open(name).await
    }
    async fn list(&self) -> Result<Vec<String>, DiskError> {
        self.0.list().await
    }
    async fn rename(&self, from: &str, to: &str) -> Result<(), DiskError> {
        self.0.rename(from, to).await
    }
    async fn remove(&self, name: &str) -> Result<(), DiskError> {
        self.0.remove(name).await
    }
    async fn sync_dir(&self) -> Result<(), DiskError> {
        self.0.sync_dir().await
    }
    async fn subdir(&self, name: &str) -> Result<DynDisk, DiskError> {
        self.0.subdir(name).await
    }
}

trait ErasedFile: Send + Sync + 'static {
    fn read_at(&self, offset: u64, len: usize) -> BoxFuture<'_, Result<Vec<u8>, DiskError>>;
    fn write_at<'a>(&'a self, offset: u64, data: &'a [u8]) -> BoxFuture<'a, Result<(), DiskError>>;
    fn append<'a>(&'a self, data: &'a [u8]) -> BoxFuture<'a, Result<u64, DiskError>>;
    fn size(&self) -> BoxFuture<'_, Result<u64, DiskError>>;
    fn set_len(&self, len: u64) -> BoxFuture<'_, Result<(), DiskError>>;
    fn sync_data(&self) -> BoxFuture<'_, Result<(), DiskError>>;
    fn write_at_and_sync<'a>(
        &'a self,
        offset: u64,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<(), DiskError>>;
}

impl<F: DiskFile> ErasedFile for F {
    fn read_at(&self, offset: u64, len: usize) -> BoxFuture<'_, Result<Vec<u8>, DiskError>> {
        Box::pin(DiskFile::read_at(self, offset, len))
    }
    fn write_at<'a>(&'a self, offset: u64, data: &'a [u8]) -> BoxFuture<'a, Result<(), DiskError>> {
        Box::pin(DiskFile::write_at(self, offset, data))
    }
    fn append<'a>(&'a self, data: &'a [u8]) -> BoxFuture<'a, Result<u64, DiskError>> {
        Box::pin(DiskFile::append(self, data))
    }
    fn size(&self) -> BoxFuture<'_, Result<u64, DiskError>> {
        Box::pin(DiskFile::size(self))
    }
    fn set_len(&self, len: u64) -> BoxFuture<'_, Result<(), DiskError>> {
        Box::pin(DiskFile::set_len(self, len))
    }
    fn sync_data(&self) -> BoxFuture<'_, Result<(), DiskError>> {
        Box::pin(DiskFile::sync_data(self))
    }
    fn write_at_and_sync<'a>(
        &'a self,
        offset: u64,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<(), DiskError>> {
        Box::pin(DiskFile::write_at_and_sync(self, offset, data))
    }
}

impl DiskFile for DynFile {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, DiskError> {
        self.0.read_at(offset, len).await
    }
    async fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        self.0.write_at(offset, data).await
    }
    async fn append(&self, data: &[u8]) -> Result<u64, DiskError> {
        self.0.append(data).await
    }
    async fn size(&self) -> Result<u64, DiskError> {
        self.0.size().await
    }
    async fn set_len(&self, len: u64) -> Result<(), DiskError> {
        self.0.set_len(len).await
    }
    async fn sync_data(&self) -> Result<(), DiskError> {
        self.0.sync_data().await
    }
    async fn write_at_and_sync(&self, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        self.0.write_at_and_sync(offset, data).await
    }
}
