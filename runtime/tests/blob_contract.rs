//! Blob storage: object_store's own conformance suite on the Disk-seam
//! store (on the memory disk and on real files) and on object_store's
//! in-memory store, the Disk-seam store's durability and damage checks,
//! and the facet's confinement, streaming, ranges and bounds.

#[path = "contracts/blob.rs"]
mod blob_suite;

use blob_suite::{SUPPORTS_ALL, conformance, facet_contract};
use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use plexspaces::capabilities::blob::DiskObjectStore;
use plexspaces::net::TcpNet;
use plexspaces::storage::disk::{Disk, DiskFile, MemDisk};
use plexspaces::tokio_backend::{OsRng, TokioClock, TokioSpawner};
use plexspaces::{Env, NodeName};
use std::sync::Arc;

fn memory_env() -> Env {
    Env::new(
        NodeName::new("blobs").unwrap(),
        TokioClock::new(),
        TokioSpawner::current(),
        OsRng::new(),
        MemDisk::new(),
        TcpNet::new(),
    )
}

async fn file_env(name: &str) -> (Env, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("plexspaces-blob-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let env = Env::tokio(NodeName::new("blobs").unwrap())
        .with_data_dir(&dir)
        .await
        .unwrap();
    (env, dir)
}

#[tokio::test]
async fn the_disk_store_passes_object_stores_conformance_suite_on_both_disks() {
    let store = DiskObjectStore::open(&memory_env(), "blobs").await.unwrap();
    conformance(&store, SUPPORTS_ALL).await;
    let (env, dir) = file_env("conformance").await;
    let store = DiskObjectStore::open(&env, "blobs").await.unwrap();
    conformance(&store, SUPPORTS_ALL).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_facet_keeps_its_contract_on_every_local_backend() {
    facet_contract(Arc::new(InMemory::new())).await;
    facet_contract(Arc::new(
        DiskObjectStore::open(&memory_env(), "facet").await.unwrap(),
    ))
    .await;
    let (env, dir) = file_env("facet").await;
    facet_contract(Arc::new(
        DiskObjectStore::open(&env, "facet").await.unwrap(),
    ))
    .await;
    let _ = std::fs::remove_dir_all(dir);
}

/// What a reopened store holds: every acknowledged put, no leftovers of
/// an unfinished upload, and a damaged object refused, not served.
#[tokio::test]
async fn the_disk_store_survives_reopening_and_refuses_damaged_objects() {
    let (env, dir) = file_env("reopen").await;
    let store = DiskObjectStore::open(&env, "b").await.unwrap();
    let kept = Path::from("receipts/1");
    store.put(&kept, Bytes::from("paid").into()).await.unwrap();
    let damaged = Path::from("receipts/2");
    store
        .put(&damaged, Bytes::from(vec![7u8; 10_000]).into())
        .await
        .unwrap();
    let mut unfinished = store.put_multipart(&Path::from("big")).await.unwrap();
    unfinished
        .put_part(Bytes::from(vec![1u8; 100]).into())
        .await
        .unwrap();
    drop(unfinished);
    drop(store);

    // Flip one byte of the second object's data, as a bad disk would.
    let disk = env.disk().subdir("b").await.unwrap();
    let file = disk.open("o-receipts%2F2").await.unwrap();
    let byte = file.read_at(5_000, 1).await.unwrap();
    file.write_at(5_000, &[byte[0] ^ 0x01]).await.unwrap();

    let store = DiskObjectStore::open(&env, "b").await.unwrap();
    let got = store.get(&kept).await.unwrap().bytes().await.unwrap();
    assert_eq!(got, Bytes::from("paid"));
    let read = store.get(&damaged).await.unwrap().bytes().await;
    assert!(read.is_err(), "a damaged object was served");
    let leftovers: Vec<_> = disk
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|name| !name.starts_with("o-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "leftovers after reopening: {leftovers:?}"
    );
    let listed: Vec<_> = store
        .list(None)
        .map(|meta| meta.unwrap().location.to_string())
        .collect()
        .await;
    assert_eq!(listed, ["receipts/1", "receipts/2"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_truncated_object_file_is_a_typed_error_not_a_panic() {
    let (env, dir) = file_env("truncated").await;
    let store = DiskObjectStore::open(&env, "b").await.unwrap();
    let path = Path::from("x");
    store
        .put(&path, Bytes::from(vec![3u8; 64]).into())
        .await
        .unwrap();
    let file = env
        .disk()
        .subdir("b")
        .await
        .unwrap()
        .open("o-x")
        .await
        .unwrap();
    let len = file.size().await.unwrap();
    let whole = file.read_at(0, len as usize).await.unwrap();
    for keep in [0, 3, 20, len - 1] {
        file.set_len(keep).await.unwrap();
        assert!(store.head(&path).await.is_err(), "kept {keep} bytes");
        assert!(store.get(&path).await.is_err(), "kept {keep} bytes");
        file.write_at(0, &whole).await.unwrap();
    }
    assert_eq!(store.head(&path).await.unwrap().size, 64);
    let _ = std::fs::remove_dir_all(dir);
}
