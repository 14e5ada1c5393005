//! The real file `Disk` does real I/O: files written, synced, reopened and
//! read back; the directory operations a crash-safe log relies on. The same
//! contract checks run against the in-memory disk.

use plexspaces_storage::disk::{
    Disk, DiskErrorKind, DiskFile, DynDisk, FsDisk, MemDisk, READ_BYTES_MAX,
};
use std::path::PathBuf;

fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plexspaces-disk-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn written_and_synced_data_reads_back_after_reopening() {
    let path = scratch_dir("reopen");
    {
        let disk = FsDisk::open_dir(&path).await.unwrap();
        let file = disk.create("log").await.unwrap();
        assert_eq!(file.append(b"hello ").await.unwrap(), 0);
        assert_eq!(file.append(b"world").await.unwrap(), 6);
        file.write_at(0, b"H").await.unwrap();
        file.sync_data().await.unwrap();
        disk.sync_dir().await.unwrap();
    }
    check_reads_and_resizes(FsDisk::open_dir(&path).await.unwrap()).await;
    std::fs::remove_dir_all(&path).unwrap();
    let mem = MemDisk::new();
    let file = mem.create("log").await.unwrap();
    file.append(b"Hello world").await.unwrap();
    check_reads_and_resizes(mem).await;
}

async fn check_reads_and_resizes<D: Disk>(disk: D) {
    let file = disk.open("log").await.unwrap();
    assert_eq!(file.size().await.unwrap(), 11);
    assert_eq!(file.read_at(0, 100).await.unwrap(), b"Hello world");
    assert_eq!(file.read_at(6, 5).await.unwrap(), b"world");
    assert_eq!(
        file.read_at(11, 5).await.unwrap(),
        b"",
        "reading at the end returns nothing"
    );

    file.set_len(5).await.unwrap();
    assert_eq!(file.read_at(0, 100).await.unwrap(), b"Hello");
    file.set_len(8).await.unwrap();
    assert_eq!(
        file.read_at(0, 100).await.unwrap(),
        b"Hello\0\0\0",
        "extension reads as zeros"
    );
    file.write_at(10, b"!").await.unwrap();
    assert_eq!(
        file.size().await.unwrap(),
        11,
        "a write past the end grows the file"
    );
}

async fn check_directory_operations<D: Disk>(disk: D) {
    for name in ["b", "a", "c"] {
        disk.create(name).await.unwrap();
    }
    let sub = disk.subdir("nested").await.unwrap();
    sub.create("inner")
        .await
        .unwrap()
        .append(b"x")
        .await
        .unwrap();
    assert_eq!(
        disk.list().await.unwrap(),
        ["a", "b", "c"],
        "sorted, files only"
    );

    disk.open("a").await.unwrap().append(b"new").await.unwrap();
    disk.rename("a", "b").await.unwrap();
    disk.sync_dir().await.unwrap();
    assert_eq!(disk.list().await.unwrap(), ["b", "c"]);
    assert_eq!(
        disk.open("b").await.unwrap().read_at(0, 9).await.unwrap(),
        b"new",
        "rename replaces"
    );

    disk.remove("c").await.unwrap();
    assert_eq!(disk.list().await.unwrap(), ["b"]);
    let again = disk.subdir("nested").await.unwrap();
    assert_eq!(
        again.list().await.unwrap(),
        ["inner"],
        "subdir reopens an existing directory"
    );
}

#[tokio::test]
async fn directory_operations_list_rename_remove_and_nest() {
    let path = scratch_dir("dirops");
    check_directory_operations(FsDisk::open_dir(&path).await.unwrap()).await;
    std::fs::remove_dir_all(&path).unwrap();
    check_directory_operations(MemDisk::new()).await;
}

async fn check_failures_are_typed<D: Disk>(disk: D) {
    disk.create("x").await.unwrap();
    assert_eq!(
        disk.create("x").await.map(drop).unwrap_err().kind(),
        DiskErrorKind::AlreadyExists
    );
    let missing = disk.open("nope").await.map(drop).unwrap_err();
    assert!(missing.is_not_found());
    assert_eq!((missing.op(), missing.name()), ("open", "nope"));
    assert_eq!(
        disk.remove("nope").await.unwrap_err().kind(),
        DiskErrorKind::NotFound
    );
    assert_eq!(
        disk.open("../escape").await.map(drop).unwrap_err().kind(),
        DiskErrorKind::InvalidName
    );
    let file = disk.open("x").await.unwrap();
    let too_big = file.read_at(0, READ_BYTES_MAX + 1).await.unwrap_err();
    assert_eq!(too_big.kind(), DiskErrorKind::TooLarge);
}

#[tokio::test]
async fn failures_are_typed() {
    let path = scratch_dir("errors");
    check_failures_are_typed(FsDisk::open_dir(&path).await.unwrap()).await;
    std::fs::remove_dir_all(&path).unwrap();
    check_failures_are_typed(MemDisk::new()).await;
}

#[tokio::test]
async fn an_erased_disk_behaves_like_the_disk_it_wraps() {
    let path = scratch_dir("dyn");
    let disk = DynDisk::new(FsDisk::open_dir(&path).await.unwrap());
    let file = disk.create("f").await.unwrap();
    file.append(b"abc").await.unwrap();
    file.write_at(3, b"def").await.unwrap();
    file.sync_data().await.unwrap();
    file.set_len(5).await.unwrap();
    assert_eq!(file.size().await.unwrap(), 5);
    disk.rename("f", "g").await.unwrap();
    disk.sync_dir().await.unwrap();
    assert_eq!(
        disk.open("g").await.unwrap().read_at(0, 10).await.unwrap(),
        b"abcde"
    );
    let sub = disk.subdir("s").await.unwrap();
    sub.create("t").await.unwrap();
    assert_eq!(sub.list().await.unwrap(), ["t"]);
    disk.remove("g").await.unwrap();
    assert!(disk.list().await.unwrap().is_empty());
    std::fs::remove_dir_all(&path).unwrap();
}

async fn check_write_and_sync<D: Disk>(disk: D) {
    let file = disk.create("ws").await.unwrap();
    file.write_at_and_sync(0, b"durable").await.unwrap();
    file.write_at_and_sync(3, b"ABLE").await.unwrap();
    assert_eq!(
        disk.open("ws").await.unwrap().read_at(0, 16).await.unwrap(),
        b"durABLE"
    );
}

/// On a multi-threaded runtime the file disk writes and syncs in place
/// (no blocking-pool hop); the contract is the same, also for many
/// writers at once on the runtime's two workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The writers must run as tasks on both workers, as a node's would.
#[allow(clippy::disallowed_methods)]
async fn writes_and_syncs_in_place_keep_the_contract() {
    let path = scratch_dir("in-place");
    let disk = FsDisk::open_dir(&path).await.unwrap();
    check_write_and_sync(disk.clone()).await;
    let file = std::sync::Arc::new(disk.create("many").await.unwrap());
    let writers: Vec<_> = (0..8u8)
        .map(|w| {
            let file = file.clone();
            tokio::spawn(async move {
                for i in 0..4u64 {
                    let at = (u64::from(w) * 4 + i) * 2;
                    file.write_at(at, &[w, i as u8]).await.unwrap();
                    file.sync_data().await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let bytes = disk
        .open("many")
        .await
        .unwrap()
        .read_at(0, 64)
        .await
        .unwrap();
    let expected: Vec<u8> = (0..8u8)
        .flat_map(|w| (0..4u8).flat_map(move |i| [w, i]))
        .collect();
    assert_eq!(bytes, expected);
    std::fs::remove_dir_all(&path).unwrap();
}

#[tokio::test]
async fn a_write_and_its_sync_in_one_call() {
    let path = scratch_dir("write-sync");
    check_write_and_sync(FsDisk::open_dir(&path).await.unwrap()).await;
    std::fs::remove_dir_all(&path).unwrap();
    let path = scratch_dir("write-sync-dyn");
    check_write_and_sync(DynDisk::new(FsDisk::open_dir(&path).await.unwrap())).await;
    std::fs::remove_dir_all(&path).unwrap();
    check_write_and_sync(MemDisk::new()).await;
}
