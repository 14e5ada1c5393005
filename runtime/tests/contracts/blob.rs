//! The blob contract: object_store's own conformance suite for a store,
//! and the facet's behaviour on any store. Included with `#[path]` by the
//! runtime's blob tests and by plexspaces-blob's (S3 and local files).

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::integration::*;
use plexspaces::capabilities::blob::{BLOB_GET_BYTES_MAX, BlobError, BlobStorageFacet};
use std::sync::Arc;

/// What a store supports beyond object_store's common ground.
#[derive(Clone, Copy)]
pub struct Supports {
    /// Attributes (content type, user metadata) kept with an object.
    pub attributes: bool,
    /// Put-if-ETag-matches.
    pub update: bool,
    /// Copy-if-absent (S3 needs it configured).
    pub copy_if_not_exists: bool,
}

/// Everything (the Disk-seam and in-memory stores).
pub const SUPPORTS_ALL: Supports = Supports {
    attributes: true,
    update: true,
    copy_if_not_exists: true,
};

/// object_store's conformance tests, those `supports` allows.
pub async fn conformance(store: &dyn ObjectStore, supports: Supports) {
    put_get_delete_list(store).await;
    // It expects an empty store, which the multipart tests do not leave.
    stream_get(store).await;
    if supports.attributes {
        put_get_attributes(store).await;
    }
    get_opts(store).await;
    put_opts(store, supports.update).await;
    list_uses_directories_correctly(store).await;
    list_with_delimiter(store).await;
    rename_and_copy(store).await;
    if supports.copy_if_not_exists {
        copy_if_not_exists(store).await;
        copy_rename_nonexistent_object(store).await;
    }
    multipart_race_condition(store, true).await;
    multipart_out_of_order(store).await;
}

/// The facet on `store`: confinement, whole and ranged reads, streamed
/// multipart writes, conditional puts, listing, bounds and bad paths.
pub async fn facet_contract(store: Arc<dyn ObjectStore>) {
    let acme = BlobStorageFacet::new(store.clone(), "acme", "receipts");
    let globex = BlobStorageFacet::new(store.clone(), "globex", "receipts");
    // A tenant named to look like another's path is one segment.
    let tricky = BlobStorageFacet::new(store.clone(), "acme/receipts", "x");

    acme.put("2026/r1", Bytes::from("acme-1")).await.unwrap();
    globex
        .put("2026/r1", Bytes::from("globex-1"))
        .await
        .unwrap();
    assert_eq!(acme.get("2026/r1").await.unwrap(), "acme-1");
    assert_eq!(globex.get("2026/r1").await.unwrap(), "globex-1");
    assert_eq!(
        tricky.get("2026/r1").await,
        Err(BlobError::NotFound("2026/r1".into()))
    );
    assert!(tricky.list("", 100).await.unwrap().is_empty());

    // Ranges and head.
    acme.put("doc", Bytes::from("0123456789")).await.unwrap();
    assert_eq!(acme.get_range("doc", 2..5).await.unwrap(), "234");
    let head = acme.head("doc").await.unwrap();
    assert_eq!((head.path.as_str(), head.size), ("doc", 10));

    // Conditional create.
    assert!(matches!(
        acme.put_if_absent("doc", Bytes::from("x")).await,
        Err(BlobError::AlreadyExists(_))
    ));
    acme.put_if_absent("fresh", Bytes::from("y")).await.unwrap();

    // A streamed multipart put of 5 MiB in 1 KiB chunks, read back by
    // stream and whole.
    let chunk = Bytes::from((0..1024).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let chunks = futures::stream::iter((0..5 * 1024).map(|_| Ok(chunk.clone()))).boxed();
    acme.put_stream("big", chunks, 5 * 1024 * 1024, 2)
        .await
        .unwrap();
    let (meta, mut stream) = acme.get_stream("big").await.unwrap();
    assert_eq!(meta.size, 5 * 1024 * 1024);
    let mut total = 0;
    while let Some(piece) = stream.next().await {
        let piece = piece.unwrap();
        assert!(piece.iter().enumerate().all(|(i, b)| {
            let at = total + i;
            *b == ((at % 1024) % 251) as u8
        }));
        total += piece.len();
    }
    assert_eq!(total, 5 * 1024 * 1024);
    assert_eq!(acme.get("big").await.unwrap().len(), 5 * 1024 * 1024);

    // A failing source aborts the upload: nothing is stored.
    let failing = futures::stream::iter([
        Ok(chunk.clone()),
        Err(BlobError::Unavailable("the source broke".into())),
    ])
    .boxed();
    assert!(acme.put_stream("broken", failing, 512, 2).await.is_err());
    assert!(matches!(
        acme.head("broken").await,
        Err(BlobError::NotFound(_))
    ));

    // Listing: by whole segments, sorted, bounded.
    acme.put("2026/r2", Bytes::from("acme-2")).await.unwrap();
    acme.put("20260", Bytes::from("not under 2026/"))
        .await
        .unwrap();
    let listed: Vec<String> = acme
        .list("2026", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.path)
        .collect();
    assert_eq!(listed, ["2026/r1", "2026/r2"]);
    assert_eq!(acme.list("", 2).await.unwrap().len(), 2);

    // Delete, twice.
    acme.delete("2026/r1").await.unwrap();
    acme.delete("2026/r1").await.unwrap();
    assert!(matches!(
        acme.get("2026/r1").await,
        Err(BlobError::NotFound(_))
    ));
    assert_eq!(globex.get("2026/r1").await.unwrap(), "globex-1");

    // Bad paths and bounds are typed errors.
    for bad in ["", "a//b", "../x", "a/./b"] {
        assert!(
            matches!(
                acme.put(bad, Bytes::new()).await,
                Err(BlobError::BadPath(_))
            ),
            "{bad:?} accepted"
        );
    }
    assert!(matches!(
        acme.get_range("doc", 0..BLOB_GET_BYTES_MAX + 1).await,
        Err(BlobError::TooLarge(_))
    ));
    assert!(matches!(
        acme.get_range("doc", 20..30).await,
        Err(BlobError::Unavailable(_) | BlobError::BadPath(_))
    ));
}
