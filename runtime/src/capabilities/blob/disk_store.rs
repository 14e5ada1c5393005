//! An [`ObjectStore`] on the node's [`Disk`] seam: real files in
//! production (a directory of the node's data directory), the simulated
//! disk with its faults under a seed. Times come from the `Clock` seam and
//! ETags and temporary names from the `Rng` seam, so a seeded run is
//! reproducible.
//!
//! Each object is one file (layout in `object_file`), named by its escaped
//! path. A put writes a temporary file, syncs it, then renames it over the
//! object's name and syncs the directory: a reader sees the old object or
//! the new one, never a mix, and an acknowledged put survives a crash.
//! Conditional writes (create-only, update-if-ETag, copy-if-absent) check
//! and rename under one lock, so racing writers cannot both win.
//! Multipart uploads write each part to its own synced file and assemble
//! them on `complete`; leftovers of a crash (temporary files, unfinished
//! uploads) are removed when the store is opened.

use super::object_file::{
    Header, TRAILER_LEN, attributes_to_pairs, decode_header, encode_tail, file_name,
    pairs_to_attributes, parse_trailer, path_of,
};
use crate::env::Env;
use crate::seams::{Clock, Rng};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use plexspaces_storage::disk::{Disk, DiskError, DiskFile, DynDisk, DynFile};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// Bytes read from a file per step of a streamed get or a copy.
const CHUNK: u64 = 1024 * 1024;

const STORE: &str = "DiskObjectStore";

/// Objects in a directory of the node's disk. Cheap to clone.
#[derive(Clone)]
pub struct DiskObjectStore {
    inner: Arc<Inner>,
}

struct Inner {
    env: Env,
    disk: DynDisk,
    dir: String,
    /// Held across a conditional write's check and rename, and across
    /// every rename or remove of an object's name.
    names: futures::lock::Mutex<()>,
}

impl fmt::Display for DiskObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DiskObjectStore({})", self.inner.dir)
    }
}

impl fmt::Debug for DiskObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn generic(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: e.into(),
    }
}

fn disk_error(e: DiskError) -> object_store::Error {
    generic(e)
}

fn not_found(path: &str) -> object_store::Error {
    object_store::Error::NotFound {
        path: path.to_string(),
        source: format!("no object at {path}").into(),
    }
}

/// An object's file, opened, with its header.
struct Opened {
    file: DynFile,
    header: Header,
}

impl Opened {
    fn meta(&self) -> Result<ObjectMeta, object_store::Error> {
        Ok(ObjectMeta {
            location: Path::parse(&self.header.path)?,
            last_modified: DateTime::<Utc>::from(self.header.modified_at()),
            size: self.header.size,
            e_tag: Some(self.header.e_tag.clone()),
            version: None,
        })
    }
}

impl DiskObjectStore {
    /// The store in subdirectory `dir` of `env`'s disk (created if
    /// missing), with a crash's leftovers removed.
    pub async fn open(env: &Env, dir: &str) -> Result<Self, object_store::Error> {
        let disk = env.disk().subdir(dir).await.map_err(disk_error)?;
        let leftovers: Vec<String> = disk
            .list()
            .await
            .map_err(disk_error)?
            .into_iter()
            .filter(|name| name.starts_with("t-") || name.starts_with("u-"))
            .collect();
        for name in &leftovers {
            disk.remove(name).await.map_err(disk_error)?;
        }
        if !leftovers.is_empty() {
            disk.sync_dir().await.map_err(disk_error)?;
        }
        Ok(DiskObjectStore {
            inner: Arc::new(Inner {
                env: env.clone(),
                disk,
                dir: dir.to_string(),
                names: futures::lock::Mutex::new(()),
            }),
        })
    }

    fn token(&self) -> String {
        format!("{:016x}", self.inner.env.next_u64())
    }

    /// Opens the object stored as `name`, reading and checking its header.
    async fn open_name(&self, name: &str) -> Result<Option<Opened>, object_store::Error> {
        let file = match self.inner.disk.open(name).await {
            Ok(file) => file,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(disk_error(e)),
        };
        let len = file.size().await.map_err(disk_error)?;
        let damaged = |why: String| generic(format!("{}/{name}: {why}", self.inner.dir));
        if len < TRAILER_LEN {
            return Err(damaged("shorter than a trailer".into()));
        }
        let trailer = file
            .read_at(len - TRAILER_LEN, TRAILER_LEN as usize)
            .await
            .map_err(disk_error)?;
        let (header_len, digest) = parse_trailer(&trailer).map_err(damaged)?;
        let header_at = (len - TRAILER_LEN)
            .checked_sub(header_len as u64)
            .ok_or_else(|| damaged("header longer than the file".into()))?;
        let bytes = file
            .read_at(header_at, header_len)
            .await
            .map_err(disk_error)?;
        let header = decode_header(&bytes, digest, len).map_err(damaged)?;
        Ok(Some(Opened { file, header }))
    }

    async fn open_path(&self, location: &Path) -> Result<Option<Opened>, object_store::Error> {
        let opened = self.open_name(&file_name(location.as_ref())).await?;
        // A hashed name holds the path it was written for: a collision
        // (or a stray file) is not this object.
        Ok(opened.filter(|o| o.header.path == location.as_ref()))
    }

    /// Writes `chunks` (streamed: one chunk in memory at a time) and then
    /// the header as a new synced temporary file; its name and the header.
    /// A failure removes the temporary file.
    async fn write_temporary(
        &self,
        location: &Path,
        chunks: BoxStream<'_, Result<Bytes, object_store::Error>>,
        attributes: Vec<(String, String)>,
    ) -> Result<(String, Header), object_store::Error> {
        let temporary = format!("t-{}", self.token());
        let written = self
            .write_file(&temporary, location, chunks, attributes)
            .await;
        if written.is_err() {
            let _ = self.inner.disk.remove(&temporary).await;
        }
        written.map(|header| (temporary, header))
    }

    async fn write_file(
        &self,
        temporary: &str,
        location: &Path,
        mut chunks: BoxStream<'_, Result<Bytes, object_store::Error>>,
        attributes: Vec<(String, String)>,
    ) -> Result<Header, object_store::Error> {
        let file = self
            .inner
            .disk
            .create(temporary)
            .await
            .map_err(disk_error)?;
        let mut size = 0u64;
        let mut digest = Sha256::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            digest.update(&chunk);
            file.write_at(size, &chunk).await.map_err(disk_error)?;
            size += chunk.len() as u64;
        }
        let modified = self
            .inner
            .env
            .wall_clock()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let header = Header {
            path: location.to_string(),
            size,
            modified,
            e_tag: self.token(),
            attributes,
            sha256: digest.finalize().into(),
        };
        let tail = encode_tail(&header).map_err(generic)?;
        file.write_at_and_sync(size, &tail)
            .await
            .map_err(disk_error)?;
        Ok(header)
    }

    /// Renames a finished temporary file over `location`'s name, if
    /// `mode` allows (checked under the names lock), and syncs the
    /// directory. A refused temporary file is removed.
    async fn publish(
        &self,
        location: &Path,
        temporary: &str,
        header: &Header,
        mode: &PutMode,
    ) -> Result<PutResult, object_store::Error> {
        let _names = self.inner.names.lock().await;
        let allowed = match mode {
            PutMode::Overwrite => Ok(()),
            PutMode::Create => match self.open_path(location).await? {
                Some(_) => Err(object_store::Error::AlreadyExists {
                    path: location.to_string(),
                    source: "create-only put of an existing object".into(),
                }),
                None => Ok(()),
            },
            PutMode::Update(version) => {
                let current = self.open_path(location).await?;
                match (current, &version.e_tag) {
                    (None, _) => Err(object_store::Error::Precondition {
                        path: location.to_string(),
                        source: "no object to update".into(),
                    }),
                    (Some(_), None) => Err(generic("an update needs an ETag")),
                    (Some(current), Some(expected)) if &current.header.e_tag != expected => {
                        Err(object_store::Error::Precondition {
                            path: location.to_string(),
                            source: format!("{} does not match {expected}", current.header.e_tag)
                                .into(),
                        })
                    }
                    (Some(_), Some(_)) => Ok(()),
                }
            }
        };
        if let Err(refused) = allowed {
            let _ = self.inner.disk.remove(temporary).await;
            return Err(refused);
        }
        let disk = &self.inner.disk;
        disk.rename(temporary, &file_name(location.as_ref()))
            .await
            .map_err(disk_error)?;
        disk.sync_dir().await.map_err(disk_error)?;
        Ok(PutResult {
            e_tag: Some(header.e_tag.clone()),
            version: None,
        })
    }

    /// Every object whose path starts with `prefix` (as a string).
    async fn scan(&self, prefix: &str) -> Result<Vec<ObjectMeta>, object_store::Error> {
        let mut found = Vec::new();
        for name in self.inner.disk.list().await.map_err(disk_error)? {
            let candidate = match path_of(&name) {
                Some(path) => path.starts_with(prefix),
                // A hashed name says nothing until its header is read;
                // temporary files and parts are not objects.
                None => name.starts_with("h-"),
            };
            if !candidate {
                continue;
            }
            if let Some(opened) = self.open_name(&name).await?
                && opened.header.path.starts_with(prefix)
            {
                found.push(opened.meta()?);
            }
        }
        found.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(found)
    }

    /// `len` bytes of `file` from `at`, in chunks, checking the data's
    /// digest if the whole object is read.
    fn stream(
        file: DynFile,
        range: Range<u64>,
        whole: Option<([u8; 32], String)>,
    ) -> BoxStream<'static, Result<Bytes, object_store::Error>> {
        struct State {
            file: DynFile,
            at: u64,
            end: u64,
            digest: Option<(Sha256, [u8; 32], String)>,
        }
        let state = State {
            file,
            at: range.start,
            end: range.end,
            digest: whole.map(|(expected, path)| (Sha256::new(), expected, path)),
        };
        futures::stream::unfold(Some(state), |state| async move {
            let mut state = state?;
            if state.at >= state.end {
                if let Some((digest, expected, path)) = state.digest.take()
                    && <[u8; 32]>::from(digest.finalize()) != expected
                {
                    return Some((
                        Err(generic(format!("{path}: data digest mismatch (damaged)"))),
                        None,
                    ));
                }
                return None;
            }
            let len = CHUNK.min(state.end - state.at) as usize;
            match state.file.read_at(state.at, len).await {
                Ok(bytes) if bytes.len() == len => {
                    state.at += len as u64;
                    if let Some((digest, _, _)) = &mut state.digest {
                        digest.update(&bytes);
                    }
                    Some((Ok(Bytes::from(bytes)), Some(state)))
                }
                Ok(_) => Some((
                    Err(generic("object file shorter than its header says")),
                    None,
                )),
                Err(e) => Some((Err(disk_error(e)), None)),
            }
        })
        // Callers may poll past the end (some of object_store's do).
        .fuse()
        .boxed()
    }

    /// Copies `from` to a temporary file (same data and attributes, a new
    /// ETag and time).
    async fn copy_to_temporary(
        &self,
        from: &Path,
        to: &Path,
    ) -> Result<(String, Header), object_store::Error> {
        let source = self
            .open_path(from)
            .await?
            .ok_or_else(|| not_found(from.as_ref()))?;
        let whole = Some((source.header.sha256, source.header.path.clone()));
        let data = Self::stream(source.file, 0..source.header.size, whole);
        self.write_temporary(to, data, source.header.attributes)
            .await
    }
}

#[async_trait]
impl ObjectStore for DiskObjectStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let attributes = attributes_to_pairs(&opts.attributes);
        let chunks = futures::stream::iter(payload.into_iter().map(Ok)).boxed();
        let (temporary, header) = self.write_temporary(location, chunks, attributes).await?;
        self.publish(location, &temporary, &header, &opts.mode)
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Ok(Box::new(DiskUpload {
            store: self.clone(),
            location: location.clone(),
            attributes: attributes_to_pairs(&opts.attributes),
            id: self.token(),
            parts: 0,
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let opened = self
            .open_path(location)
            .await?
            .ok_or_else(|| not_found(location.as_ref()))?;
        let meta = opened.meta()?;
        options.check_preconditions(&meta)?;
        let size = opened.header.size;
        let range = match &options.range {
            Some(range) => range.as_range(size).map_err(generic)?,
            None => 0..size,
        };
        let whole =
            (range == (0..size)).then(|| (opened.header.sha256, opened.header.path.clone()));
        let attributes = pairs_to_attributes(&opened.header.attributes);
        let payload = if options.head {
            futures::stream::empty().boxed()
        } else {
            Self::stream(opened.file, range.clone(), whole)
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(payload),
            meta,
            range,
            attributes,
        })
    }

    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        let _names = self.inner.names.lock().await;
        if self.open_path(location).await?.is_none() {
            return Ok(());
        }
        let disk = &self.inner.disk;
        disk.remove(&file_name(location.as_ref()))
            .await
            .map_err(disk_error)?;
        disk.sync_dir().await.map_err(disk_error)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let store = self.clone();
        let prefix = prefix.cloned().unwrap_or_default();
        futures::stream::once(async move {
            // A prefix names whole segments: `a/b` holds `a/b/c`, not `a/bc`.
            let raw = if prefix.as_ref().is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            };
            let found = store.scan(&raw).await;
            futures::stream::iter(match found {
                Ok(objects) => objects.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            })
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let prefix = prefix.cloned().unwrap_or_default();
        let raw = if prefix.as_ref().is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let mut common_prefixes = BTreeSet::new();
        let mut objects = Vec::new();
        for meta in self.scan(&raw).await? {
            // The segments past the prefix (already encoded: a segment's
            // own `/` is `%2F`, so they are taken whole, not re-encoded).
            let mut rest = meta.location.as_ref()[raw.len()..].split('/');
            let first = rest.next().unwrap_or_default();
            if rest.next().is_some() {
                let common = if raw.is_empty() {
                    first.to_string()
                } else {
                    format!("{raw}{first}")
                };
                common_prefixes.insert(Path::parse(common)?);
            } else {
                objects.push(meta);
            }
        }
        Ok(ListResult {
            common_prefixes: common_prefixes.into_iter().collect(),
            objects,
        })
    }

    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        let (temporary, header) = self.copy_to_temporary(from, to).await?;
        self.publish(to, &temporary, &header, &PutMode::Overwrite)
            .await
            .map(|_| ())
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        let (temporary, header) = self.copy_to_temporary(from, to).await?;
        self.publish(to, &temporary, &header, &PutMode::Create)
            .await
            .map(|_| ())
    }
}

/// One multipart upload: each part its own synced file
/// (`u-{id}-{index}`), assembled into the object on `complete`.
struct DiskUpload {
    store: DiskObjectStore,
    location: Path,
    attributes: Vec<(String, String)>,
    id: String,
    parts: usize,
}

impl fmt::Debug for DiskUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DiskUpload({}, {} parts)", self.location, self.parts)
    }
}

impl DiskUpload {
    fn part_name(&self, index: usize) -> String {
        format!("u-{}-{index:08}", self.id)
    }

    async fn remove_parts(&self) -> object_store::Result<()> {
        let disk = &self.store.inner.disk;
        for index in 0..self.parts {
            match disk.remove(&self.part_name(index)).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(disk_error(e)),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl MultipartUpload for DiskUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let name = self.part_name(self.parts);
        self.parts += 1;
        let disk = self.store.inner.disk.clone();
        Box::pin(async move {
            let file = disk.create(&name).await.map_err(disk_error)?;
            let mut at = 0u64;
            let chunks: Vec<Bytes> = data.into_iter().collect();
            let last = chunks.len().saturating_sub(1);
            for (i, chunk) in chunks.into_iter().enumerate() {
                if i == last {
                    file.write_at_and_sync(at, &chunk)
                        .await
                        .map_err(disk_error)?;
                } else {
                    file.write_at(at, &chunk).await.map_err(disk_error)?;
                }
                at += chunk.len() as u64;
            }
            if at == 0 {
                file.sync_data().await.map_err(disk_error)?;
            }
            Ok(())
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let disk = self.store.inner.disk.clone();
        let mut parts = Vec::with_capacity(self.parts);
        for index in 0..self.parts {
            let file = disk.open(&self.part_name(index)).await.map_err(|e| {
                if e.is_not_found() {
                    generic(format!("part {index} of the upload was never written"))
                } else {
                    disk_error(e)
                }
            })?;
            let size = file.size().await.map_err(disk_error)?;
            parts.push(DiskObjectStore::stream(file, 0..size, None));
        }
        let chunks = futures::stream::iter(parts).flatten().boxed();
        let (temporary, header) = self
            .store
            .write_temporary(&self.location, chunks, self.attributes.clone())
            .await?;
        let published = self
            .store
            .publish(&self.location, &temporary, &header, &PutMode::Overwrite)
            .await?;
        self.remove_parts().await?;
        Ok(published)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.remove_parts().await
    }
}
