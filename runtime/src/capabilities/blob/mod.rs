//! The blob storage capability on the `object_store` crate: any
//! [`ObjectStore`] (its in-memory store; S3, GCS, Azure and local files
//! through `plexspaces-blob`; [`DiskObjectStore`] on the node's `Disk`
//! seam, which runs in the simulator with disk faults) behind the
//! [`BlobStorageFacet`] an actor reaches it through
//! (`ctx.facet::<BlobStorageFacet>()`), which confines every path to the
//! actor's tenant and namespace.

mod disk_store;
mod facet;
mod object_file;

pub use disk_store::DiskObjectStore;
pub use facet::{
    BLOB_FACET, BLOB_GET_BYTES_MAX, BLOB_LIST_MAX, BlobError, BlobMeta, BlobStorageFacet,
};
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use object_file::encoded_types;
pub use object_store::{ObjectMeta, ObjectStore, path::Path as ObjectPath};
