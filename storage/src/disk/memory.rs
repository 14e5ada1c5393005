//! An in-memory `Disk` that never fails and never loses anything: for tests
//! of code above the disk, and for backends that keep nothing. (The
//! simulator's disk, which does fail, lives in `plexspaces-sim`.)

use super::{Disk, DiskError, DiskErrorKind, DiskFile, validate_name, validate_read_len};
use crate::sync::LockExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A directory held in memory. Clones share it.
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    dir: Arc<Mutex<MemDir>>,
}

#[derive(Debug, Default)]
struct MemDir {
    files: BTreeMap<String, Arc<Mutex<Vec<u8>>>>,
    subdirs: BTreeMap<String, MemDisk>,
}

/// A file of a [`MemDisk`].
#[derive(Clone, Debug)]
pub struct MemFile {
    name: Arc<str>,
    data: Arc<Mutex<Vec<u8>>>,
}

impl MemDisk {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    fn dir(&self) -> MutexGuard<'_, MemDir> {
        self.dir.locked()
    }
}

impl Disk for MemDisk {
    type File = MemFile;

    async fn create(&self, name: &str) -> Result<MemFile, DiskError> {
        validate_name(name)?;
        let mut dir = self.dir();
        if dir.files.contains_key(name) || dir.subdirs.contains_key(name) {
            return Err(DiskError::new(DiskErrorKind::AlreadyExists, "create", name));
        }
        let data = Arc::new(Mutex::new(Vec::new()));
        dir.files.insert(name.to_string(), data.clone());
        Ok(MemFile {
            name: name.into(),
            data,
        })
    }

    async fn open(&self, name: &str) -> Result<MemFile, DiskError> {
        validate_name(name)?;
        let data = self.dir().files.get(name).cloned();
        let data = data.ok_or_else(|| DiskError::new(DiskErrorKind::NotFound, "open", name))?;
        Ok(MemFile {
            name: name.into(),
            data,
        })
    }

    async fn list(&self) -> Result<Vec<String>, DiskError> {
        Ok(self.dir().files.keys().cloned().collect())
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), DiskError> {
        validate_name(from)?;
        validate_name(to)?;
        let mut dir = self.dir();
        let data = dir
            .files
            .remove(from)
            .ok_or_else(|| DiskError::new(DiskErrorKind::NotFound, "rename", from))?;
        dir.files.insert(to.to_string(), data);
        Ok(())
    }

    async fn remove(&self, name: &str) -> Result<(), DiskError> {
        validate_name(name)?;
        match self.dir().files.remove(name) {
            Some(_) => Ok(()),
            None => Err(DiskError::new(DiskErrorKind::NotFound, "remove", name)),
        }
    }

    async fn sync_dir(&self) -> Result<(), DiskError> {
        Ok(())
    }

    async fn subdir(&self, name: &str) -> Result<MemDisk, DiskError> {
        validate_name(name)?;
        let mut dir = self.dir();
        if dir.files.contains_key(name) {
            return Err(DiskError::new(DiskErrorKind::AlreadyExists, "subdir", name));
        }
        Ok(dir.subdirs.entry(name.to_string()).or_default().clone())
    }
}

impl MemFile {
    fn data(&self) -> MutexGuard<'_, Vec<u8>> {
        self.data.locked()
    }
}

impl DiskFile for MemFile {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, DiskError> {
        validate_read_len(len, &self.name)?;
        let data = self.data();
        let start = (offset as usize).min(data.len());
        let end = start.saturating_add(len).min(data.len());
        Ok(data[start..end].to_vec())
    }

    async fn write_at(&self, offset: u64, bytes: &[u8]) -> Result<(), DiskError> {
        let mut data = self.data();
        let end = offset as usize + bytes.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset as usize..end].copy_from_slice(bytes);
        Ok(())
    }

    async fn append(&self, bytes: &[u8]) -> Result<u64, DiskError> {
        let mut data = self.data();
        let at = data.len() as u64;
        data.extend_from_slice(bytes);
        Ok(at)
    }

    async fn size(&self) -> Result<u64, DiskError> {
        Ok(self.data().len() as u64)
    }

    async fn set_len(&self, len: u64) -> Result<(), DiskError> {
        self.data().resize(len as usize, 0);
        Ok(())
    }

    async fn sync_data(&self) -> Result<(), DiskError> {
        Ok(())
    }
}
