//! The facet an actor reaches its blob store through.

use crate::actor::facet::{
    Facet, FacetCategory, FacetConfig, FacetConfigError, FacetDescriptor, FacetOption,
    FacetRegistry, Hooks, OptionKind,
};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::{Path, PathPart};
use object_store::{
    GetOptions, GetRange, ObjectMeta, ObjectStore, PutMode, PutOptions, PutPayload,
};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// Its name in the chain and the registry.
pub const BLOB_FACET: &str = "blob_storage";
/// Largest object [`BlobStorageFacet::get`] reads into memory (larger:
/// [`BlobStorageFacet::get_stream`] or a range).
pub const BLOB_GET_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Most objects one [`BlobStorageFacet::list`] returns.
pub const BLOB_LIST_MAX: usize = 10_000;

/// Why a blob call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobError {
    /// No object at the path.
    NotFound(String),
    /// A create-only put found an object there.
    AlreadyExists(String),
    /// A conditional call's condition (an ETag) did not hold.
    Precondition(String),
    /// A path that is empty, has an empty or relative segment, or is not
    /// valid for object stores.
    BadPath(String),
    /// An object larger than a whole-object read allows (its size).
    TooLarge(u64),
    /// The store failed (its text); the call may not have been applied.
    Unavailable(String),
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobError::NotFound(path) => write!(f, "no object at {path}"),
            BlobError::AlreadyExists(path) => write!(f, "an object exists at {path}"),
            BlobError::Precondition(why) => write!(f, "precondition failed: {why}"),
            BlobError::BadPath(why) => write!(f, "bad path: {why}"),
            BlobError::TooLarge(n) => write!(
                f,
                "an object of {n} bytes (whole reads take at most {BLOB_GET_BYTES_MAX}; stream it)"
            ),
            BlobError::Unavailable(why) => write!(f, "blob store unavailable: {why}"),
        }
    }
}

impl std::error::Error for BlobError {}

impl BlobError {
    fn from_store(e: object_store::Error, path: &str) -> Self {
        match e {
            object_store::Error::NotFound { .. } => BlobError::NotFound(path.to_string()),
            object_store::Error::AlreadyExists { .. } => BlobError::AlreadyExists(path.to_string()),
            object_store::Error::Precondition { source, .. } => {
                BlobError::Precondition(source.to_string())
            }
            object_store::Error::InvalidPath { source } => BlobError::BadPath(source.to_string()),
            other => BlobError::Unavailable(other.to_string()),
        }
    }
}

/// One object's description, with the path as the facet's caller names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    /// Its path within the namespace.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its ETag (changes with every write).
    pub e_tag: Option<String>,
    /// When it was last written.
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// A tenant's namespace of one blob store: every path is confined under
/// `{tenant}/{namespace}/` as two path segments (a `/` inside either is
/// escaped into its segment), so no path one facet accepts reaches
/// another tenant's or namespace's objects. A clone is a handle to the
/// same store and namespace (take one out of a durable handler's context
/// to call inside `ctx.run`).
#[derive(Clone)]
pub struct BlobStorageFacet {
    store: Arc<dyn ObjectStore>,
    root: Path,
}

impl BlobStorageFacet {
    /// `store`, confined to `tenant` and `namespace`.
    pub fn new(store: Arc<dyn ObjectStore>, tenant: &str, namespace: &str) -> Self {
        let root = Path::from_iter([PathPart::from(tenant), PathPart::from(namespace)]);
        BlobStorageFacet { store, root }
    }

    /// What it is, for the registry: `tenant` and `namespace`, both
    /// required (the store is the one it was registered with).
    pub fn descriptor() -> FacetDescriptor {
        FacetDescriptor::new(
            BLOB_FACET,
            FacetCategory::Domain,
            "a blob store confined to one tenant and namespace (put, streamed and multipart put, get with ranges and streaming, head, delete, list)",
        )
        .option(
            FacetOption::new("tenant", OptionKind::Str, "the tenant whose objects it reaches")
                .required(),
        )
        .option(
            FacetOption::new("namespace", OptionKind::Str, "the namespace within the tenant")
                .required(),
        )
    }

    /// Registers [`BLOB_FACET`] on `registry`, building facets on `store`.
    pub fn register(
        registry: &FacetRegistry,
        store: Arc<dyn ObjectStore>,
    ) -> Result<(), FacetConfigError> {
        registry.register(Self::descriptor(), move |config| {
            Ok(Box::new(Self::from_config(store.clone(), config)?) as Box<dyn Facet>)
        })
    }

    /// Builds one on `store` from configuration.
    pub fn from_config(
        store: Arc<dyn ObjectStore>,
        config: FacetConfig,
    ) -> Result<Self, FacetConfigError> {
        let (tenant, namespace) =
            crate::capabilities::tenant_and_namespace(Self::descriptor(), config, BLOB_FACET)?;
        Ok(Self::new(store, &tenant, &namespace))
    }

    /// The store path of the caller's `path`, refused if it is not a
    /// clean relative path.
    fn confine(&self, path: &str) -> Result<Path, BlobError> {
        let parsed = Path::parse(path).map_err(|e| BlobError::BadPath(e.to_string()))?;
        if parsed.as_ref().is_empty() {
            return Err(BlobError::BadPath("an empty path".into()));
        }
        Ok(self.root.parts().chain(parsed.parts()).collect())
    }

    /// A listed object's description, its path relative to the namespace
    /// (`None`: not under it).
    fn unconfine(&self, meta: ObjectMeta) -> Option<BlobMeta> {
        let rest: Vec<String> = meta
            .location
            .prefix_match(&self.root)?
            .map(|p| p.as_ref().to_string())
            .collect();
        Some(described(&rest.join("/"), meta))
    }

    /// Stores `data` at `path`, replacing any object there; its ETag.
    pub async fn put(&self, path: &str, data: Bytes) -> Result<Option<String>, BlobError> {
        self.put_with(path, data, PutMode::Overwrite).await
    }

    /// Stores `data` at `path` only if no object is there.
    pub async fn put_if_absent(
        &self,
        path: &str,
        data: Bytes,
    ) -> Result<Option<String>, BlobError> {
        self.put_with(path, data, PutMode::Create).await
    }

    async fn put_with(
        &self,
        path: &str,
        data: Bytes,
        mode: PutMode,
    ) -> Result<Option<String>, BlobError> {
        let location = self.confine(path)?;
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        let put = self
            .store
            .put_opts(&location, PutPayload::from(data), options)
            .await
            .map_err(|e| BlobError::from_store(e, path))?;
        Ok(put.e_tag)
    }

    /// Stores what `chunks` yields at `path` as a multipart upload (parts
    /// of at least `part_bytes`, up to `concurrency` in flight), so an
    /// object larger than memory is never held whole. A failed chunk or
    /// part aborts the upload: nothing is stored.
    pub async fn put_stream(
        &self,
        path: &str,
        mut chunks: BoxStream<'_, Result<Bytes, BlobError>>,
        part_bytes: usize,
        concurrency: usize,
    ) -> Result<(), BlobError> {
        let location = self.confine(path)?;
        let failed = |e| BlobError::from_store(e, path);
        let mut upload = self.store.put_multipart(&location).await.map_err(failed)?;
        let pumped = pump_parts(upload.as_mut(), &mut chunks, part_bytes, concurrency).await;
        match pumped {
            Ok(()) => upload.complete().await.map(|_| ()).map_err(failed),
            Err(e) => {
                let _ = upload.abort().await;
                Err(match e {
                    Pumped::Chunk(e) => e,
                    Pumped::Part(e) => failed(e),
                })
            }
        }
    }

    /// The whole object at `path` (at most [`BLOB_GET_BYTES_MAX`] bytes).
    pub async fn get(&self, path: &str) -> Result<Bytes, BlobError> {
        let location = self.confine(path)?;
        let failed = |e| BlobError::from_store(e, path);
        let got = self.store.get(&location).await.map_err(failed)?;
        if got.meta.size > BLOB_GET_BYTES_MAX {
            return Err(BlobError::TooLarge(got.meta.size));
        }
        got.bytes().await.map_err(failed)
    }

    /// Bytes `range` of the object at `path`.
    pub async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, BlobError> {
        if range.end.saturating_sub(range.start) > BLOB_GET_BYTES_MAX {
            return Err(BlobError::TooLarge(range.end - range.start));
        }
        let location = self.confine(path)?;
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let failed = |e| BlobError::from_store(e, path);
        let got = self
            .store
            .get_opts(&location, options)
            .await
            .map_err(failed)?;
        got.bytes().await.map_err(failed)
    }

    /// The object at `path` as a stream of chunks, and its description.
    pub async fn get_stream(
        &self,
        path: &str,
    ) -> Result<(BlobMeta, BoxStream<'static, Result<Bytes, BlobError>>), BlobError> {
        let location = self.confine(path)?;
        let got = self
            .store
            .get(&location)
            .await
            .map_err(|e| BlobError::from_store(e, path))?;
        let meta = described(path, got.meta.clone());
        let owned = path.to_string();
        let stream = got
            .into_stream()
            .map_err(move |e| BlobError::from_store(e, &owned))
            .boxed();
        Ok((meta, stream))
    }

    /// The description of the object at `path`.
    pub async fn head(&self, path: &str) -> Result<BlobMeta, BlobError> {
        let location = self.confine(path)?;
        let meta = self
            .store
            .head(&location)
            .await
            .map_err(|e| BlobError::from_store(e, path))?;
        Ok(described(path, meta))
    }

    /// Deletes the object at `path`. Nothing there is not an error, on
    /// every store (object_store's local file store says `NotFound`, S3
    /// does not: the facet makes both idempotent, so a retried delete
    /// succeeds).
    pub async fn delete(&self, path: &str) -> Result<(), BlobError> {
        let location = self.confine(path)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(BlobError::from_store(e, path)),
        }
    }

    /// The objects under `prefix` (whole segments; empty: the whole
    /// namespace), by path, at most `limit` (and [`BLOB_LIST_MAX`]).
    pub async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<BlobMeta>, BlobError> {
        let location = if prefix.is_empty() {
            self.root.clone()
        } else {
            self.confine(prefix)?
        };
        let mut found: Vec<BlobMeta> = self
            .store
            .list(Some(&location))
            .map_err(|e| BlobError::from_store(e, prefix))
            .try_filter_map(|meta| futures::future::ready(Ok(self.unconfine(meta))))
            .take(limit.min(BLOB_LIST_MAX))
            .try_collect()
            .await?;
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }
}

/// An object's description under the caller's name for it (not the
/// store's location, which wrapping stores such as a prefix store report
/// differently).
fn described(path: &str, meta: ObjectMeta) -> BlobMeta {
    BlobMeta {
        path: path.to_string(),
        size: meta.size,
        e_tag: meta.e_tag,
        last_modified: meta.last_modified,
    }
}

/// Why feeding a multipart upload stopped.
enum Pumped {
    Chunk(BlobError),
    Part(object_store::Error),
}

/// Feeds `chunks` to `upload` in parts of at least `part_bytes` (the last
/// may be smaller), with up to `concurrency` parts in flight, awaited here
/// rather than spawned (object_store's `WriteMultipart` spawns on tokio,
/// which the simulator does not run).
async fn pump_parts(
    upload: &mut dyn object_store::MultipartUpload,
    chunks: &mut BoxStream<'_, Result<Bytes, BlobError>>,
    part_bytes: usize,
    concurrency: usize,
) -> Result<(), Pumped> {
    let part_bytes = part_bytes.max(1);
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut part: Vec<Bytes> = Vec::new();
    let mut buffered = 0usize;
    let mut ended = false;
    while !ended {
        match chunks.next().await {
            Some(chunk) => {
                let chunk = chunk.map_err(Pumped::Chunk)?;
                buffered += chunk.len();
                part.push(chunk);
            }
            None => ended = true,
        }
        if buffered >= part_bytes || (ended && buffered > 0) {
            let payload: PutPayload = std::mem::take(&mut part).into_iter().collect();
            buffered = 0;
            in_flight.push(upload.put_part(payload));
            while in_flight.len() >= concurrency.max(1) {
                if let Some(done) = in_flight.next().await {
                    done.map_err(Pumped::Part)?;
                }
            }
        }
    }
    while let Some(done) = in_flight.next().await {
        done.map_err(Pumped::Part)?;
    }
    Ok(())
}

impl Facet for BlobStorageFacet {
    fn name(&self) -> &str {
        BLOB_FACET
    }

    fn priority(&self) -> i32 {
        // A capability with no per-message hook: its place costs nothing.
        100
    }

    fn hooks(&self) -> Hooks {
        Hooks::NONE
    }
}
