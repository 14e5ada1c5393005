//! The journal's contract, on the file journal (real files and memory) and
//! the memory journal alike, plus what only the file journal promises:
//! recovery, group commit, fail-stop, compaction and refusing bad input.

// The group-commit test runs appenders as real tokio tasks.
#![allow(clippy::disallowed_methods)]

mod common;

use common::ProbeDisk;
use plexspaces_storage::disk::{Disk, DiskErrorKind, DiskFile, FsDisk, MemDisk};
use plexspaces_storage::journal::frame::SEGMENT_HEADER_BYTES;
use plexspaces_storage::journal::{
    FileJournal, Journal, JournalConfig, JournalError, MemoryJournal, STREAM_NAME_BYTES_MAX,
};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

const ID: u64 = 0x0123_4567_89ab_cdef;

fn scratch_dir(test: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("plexspaces-journal-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn small_segments() -> JournalConfig {
    let mut config = JournalConfig::default();
    config.segment_bytes_max = 512;
    config
}

async fn data_of<J: Journal>(journal: &J, stream: &str, from: u64) -> Vec<(u64, String)> {
    journal
        .replay_from(stream, from)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, String::from_utf8(e.data).unwrap()))
        .collect()
}

/// What every journal promises.
async fn check_contract<J: Journal>(journal: J) {
    assert_eq!(journal.last_seq("a"), 0);
    assert!(journal.replay_from("a", 1).await.unwrap().is_empty());
    for i in 1..=5 {
        assert_eq!(
            journal
                .append("a", format!("a{i}").as_bytes())
                .await
                .unwrap(),
            i
        );
    }
    assert_eq!(
        journal.append("b", b"b1").await.unwrap(),
        1,
        "streams number separately"
    );
    assert_eq!(journal.last_seq("a"), 5);
    assert_eq!(
        data_of(&journal, "a", 4).await,
        [(4, "a4".into()), (5, "a5".into())]
    );
    assert_eq!(data_of(&journal, "a", 0).await.len(), 5);
    let mut seen = Vec::new();
    let count = journal
        .replay_each("a", 2, |seq, data| seen.push((seq, data.to_vec())))
        .await;
    assert_eq!(count.unwrap(), 4);
    assert_eq!(
        seen[0],
        (2, b"a2".to_vec()),
        "replay_each borrows the same entries"
    );

    assert!(journal.latest_checkpoint("a").await.unwrap().is_none());
    journal.save_checkpoint("a", 3, b"state@3").await.unwrap();
    let ckpt = journal.latest_checkpoint("a").await.unwrap().unwrap();
    assert_eq!(
        (ckpt.stream.as_str(), ckpt.seq, &ckpt.state[..]),
        ("a", 3, &b"state@3"[..])
    );
    assert_eq!(
        data_of(&journal, "a", 4).await.len(),
        2,
        "entries after a checkpoint stay"
    );
    assert!(matches!(
        journal.save_checkpoint("a", 9, b"").await,
        Err(JournalError::CheckpointAhead {
            seq: 9,
            last: 5,
            ..
        })
    ));
    assert!(matches!(
        journal.save_checkpoint("a", 2, b"").await,
        Err(JournalError::CheckpointBehind {
            seq: 2,
            current: 3,
            ..
        })
    ));
    assert_eq!(journal.append("a", b"a6").await.unwrap(), 6);

    assert!(matches!(
        journal.append("", b"x").await,
        Err(JournalError::InvalidStream { .. })
    ));
    let long = "s".repeat(STREAM_NAME_BYTES_MAX + 1);
    assert!(matches!(
        journal.append(&long, b"x").await,
        Err(JournalError::InvalidStream { .. })
    ));
    let huge = vec![0u8; JournalConfig::default().entry_bytes_max + 1];
    assert!(matches!(
        journal.append("a", &huge).await,
        Err(JournalError::TooLarge { .. })
    ));
    assert_eq!(
        journal.last_seq("a"),
        6,
        "refused appends take no sequence number"
    );
}

#[tokio::test]
async fn the_memory_journal_keeps_the_contract() {
    check_contract(MemoryJournal::new()).await;
    let journal = MemoryJournal::new();
    journal.append("s", b"1").await.unwrap();
    journal.append("s", b"2").await.unwrap();
    journal.save_checkpoint("s", 2, b"").await.unwrap();
    assert!(matches!(
        journal.replay_from("s", 1).await,
        Err(JournalError::Truncated {
            first_available: 3,
            ..
        })
    ));
}

#[tokio::test]
async fn the_file_journal_keeps_the_contract() {
    check_contract(
        FileJournal::open(MemDisk::new(), JournalConfig::default(), ID)
            .await
            .unwrap(),
    )
    .await;
    let path = scratch_dir("contract");
    let disk = FsDisk::open_dir(&path).await.unwrap();
    check_contract(FileJournal::open(disk, small_segments(), ID).await.unwrap()).await;
    std::fs::remove_dir_all(&path).unwrap();
}

#[tokio::test]
async fn entries_and_checkpoints_survive_reopening_real_files() {
    let path = scratch_dir("reopen");
    let disk = FsDisk::open_dir(&path).await.unwrap();
    {
        let journal = FileJournal::open(disk.clone(), small_segments(), ID)
            .await
            .unwrap();
        for i in 1..=40 {
            journal
                .append("acct@n1", format!("deposit {i}").as_bytes())
                .await
                .unwrap();
            journal.append("other@n1", b"x").await.unwrap();
        }
        assert!(journal.segment_ids().len() > 3, "small segments roll");
        journal
            .save_checkpoint("other@n1", 40, b"other")
            .await
            .unwrap();
    }
    let journal = FileJournal::open(disk.clone(), small_segments(), 999)
        .await
        .unwrap();
    assert_eq!(journal.journal_id(), ID, "an existing journal keeps its id");
    let replayed = data_of(&journal, "acct@n1", 1).await;
    assert_eq!(replayed.len(), 40);
    assert_eq!(replayed[39], (40, "deposit 40".into()));
    assert_eq!(journal.last_seq("other@n1"), 40);
    assert_eq!(
        journal.append("acct@n1", b"after").await.unwrap(),
        41,
        "numbering continues"
    );
    assert_eq!(journal.append("other@n1", b"y").await.unwrap(), 41);
    std::fs::remove_dir_all(&path).unwrap();
}

#[tokio::test]
async fn checkpoints_let_old_segments_go() {
    let disk = MemDisk::new();
    let journal = FileJournal::open(disk.clone(), small_segments(), ID)
        .await
        .unwrap();
    for i in 0..60 {
        journal
            .append("s", format!("entry {i:04}").as_bytes())
            .await
            .unwrap();
    }
    let before = journal.segment_ids();
    assert!(before.len() >= 4);
    journal.save_checkpoint("s", 30, b"half").await.unwrap();
    let after = journal.segment_ids();
    assert!(
        after.len() < before.len(),
        "segments wholly below the checkpoint are removed"
    );
    assert_eq!(after.last(), before.last(), "the active segment stays");
    let Err(JournalError::Truncated {
        first_available, ..
    }) = journal.replay_from("s", 1).await
    else {
        panic!("replay below a compacted checkpoint must say so");
    };
    assert!(first_available > 1 && first_available <= 31);
    assert_eq!(
        data_of(&journal, "s", 31).await.len(),
        30,
        "what the checkpoint needs stays"
    );

    // A stream without a checkpoint pins every segment it has entries in.
    let pinned = FileJournal::open(MemDisk::new(), small_segments(), ID)
        .await
        .unwrap();
    pinned.append("keep", b"first").await.unwrap();
    for _ in 0..60 {
        pinned.append("s", b"0123456789").await.unwrap();
    }
    pinned.save_checkpoint("s", 60, b"").await.unwrap();
    assert_eq!(pinned.compact().await.unwrap(), 0);
    assert_eq!(data_of(&pinned, "keep", 1).await, [(1, "first".into())]);

    // After reopening, the compacted journal still knows where streams are.
    let reopened = FileJournal::open(disk, small_segments(), ID).await.unwrap();
    assert_eq!(reopened.last_seq("s"), 60);
    assert_eq!(data_of(&reopened, "s", 31).await.len(), 30);
    assert_eq!(reopened.append("s", b"next").await.unwrap(), 61);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_share_syncs_and_get_gap_free_numbers() {
    let path = scratch_dir("group");
    let disk = ProbeDisk::new(FsDisk::open_dir(&path).await.unwrap());
    let probe = disk.probe.clone();
    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    let syncs_before = probe.syncs.load(Ordering::SeqCst);
    let appenders: Vec<_> = (0..64)
        .map(|task| {
            let journal = journal.clone();
            tokio::spawn(async move {
                let stream = format!("s{}", task % 4);
                let mut seqs = Vec::new();
                for i in 0..20 {
                    let data = format!("{task}:{i}");
                    seqs.push(journal.append(&stream, data.as_bytes()).await.unwrap());
                }
                seqs
            })
        })
        .collect();
    for appender in appenders {
        let seqs = appender.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "one appender's entries stay in order"
        );
    }
    let syncs = probe.syncs.load(Ordering::SeqCst) - syncs_before;
    assert!(
        syncs < 1280 / 2,
        "1280 appends took {syncs} syncs: no group commit"
    );
    for s in 0..4 {
        let entries = journal.replay_from(&format!("s{s}"), 1).await.unwrap();
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=320).collect::<Vec<_>>(), "gap-free per stream");
    }
    std::fs::remove_dir_all(&path).unwrap();
}

#[tokio::test]
async fn a_failed_sync_stops_the_journal_and_acknowledges_nothing_after() {
    let disk = ProbeDisk::new(MemDisk::new());
    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    journal.append("s", b"durable").await.unwrap();
    disk.probe.fail_next_sync.store(true, Ordering::SeqCst);
    let failed = journal.append("s", b"lost").await.unwrap_err();
    assert!(failed.is_stopped(), "{failed}");
    // The next sync would succeed (the lying retry); the journal must not try.
    let after = journal.append("s", b"later").await.unwrap_err();
    assert!(after.is_stopped());
    assert_eq!(data_of(&journal, "s", 1).await, [(1, "durable".into())]);

    let reopened = FileJournal::open(disk, JournalConfig::default(), ID)
        .await
        .unwrap();
    let recovered = data_of(&reopened, "s", 1).await;
    assert_eq!(recovered[0], (1, "durable".into()));
    // The unacknowledged entry may or may not have reached the disk; if it
    // did, it is whole and numbered in order.
    assert!(recovered.len() <= 2);
    let next = reopened.append("s", b"fresh").await.unwrap();
    assert_eq!(next, recovered.len() as u64 + 1);
}

async fn last_segment<D: Disk>(disk: &D) -> D::File {
    let names = disk.list().await.unwrap();
    let last = names.iter().rfind(|n| n.starts_with("seg-")).unwrap();
    disk.open(last).await.unwrap()
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_appends_continue() {
    let path = scratch_dir("torn");
    let disk = FsDisk::open_dir(&path).await.unwrap();
    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    for i in 1..=10 {
        journal
            .append("s", format!("{i}").as_bytes())
            .await
            .unwrap();
    }
    drop(journal);
    // A crash in the middle of writing the next frame left half of it.
    let segment = last_segment(&disk).await;
    let good_len = segment.size().await.unwrap();
    let frame = segment
        .read_at(SEGMENT_HEADER_BYTES as u64, 20)
        .await
        .unwrap();
    segment.write_at(good_len, &frame).await.unwrap();

    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    assert_eq!(
        last_segment(&disk).await.size().await.unwrap(),
        good_len,
        "tail cut"
    );
    assert_eq!(data_of(&journal, "s", 1).await.len(), 10);
    assert_eq!(journal.append("s", b"11").await.unwrap(), 11);
    drop(journal);
    let journal = FileJournal::open(disk, JournalConfig::default(), ID)
        .await
        .unwrap();
    assert_eq!(data_of(&journal, "s", 11).await, [(11, "11".into())]);
    std::fs::remove_dir_all(&path).unwrap();
}

#[tokio::test]
async fn damage_to_acknowledged_data_refuses_to_open() {
    let disk = MemDisk::new();
    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    for i in 1..=10 {
        journal
            .append("s", format!("entry {i}").as_bytes())
            .await
            .unwrap();
    }
    drop(journal);
    let segment = last_segment(&disk).await;
    let at = SEGMENT_HEADER_BYTES as u64 + 40; // inside the first frame
    let byte = segment.read_at(at, 1).await.unwrap()[0];
    segment.write_at(at, &[byte ^ 0x04]).await.unwrap();
    match FileJournal::open(disk, JournalConfig::default(), ID)
        .await
        .map(drop)
    {
        Err(JournalError::Corrupt {
            segment, offset, ..
        }) => {
            assert_eq!(segment, 1);
            assert_eq!(
                offset, SEGMENT_HEADER_BYTES as u64,
                "the damaged frame's offset"
            );
        }
        other => panic!("expected mid-log corruption, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_directories_give_typed_errors_or_clean_recovery() {
    // Garbage files with names the journal does not use are left alone.
    let disk = MemDisk::new();
    disk.create("notes.txt")
        .await
        .unwrap()
        .append(b"hello")
        .await
        .unwrap();
    disk.create("seg-zz.log")
        .await
        .unwrap()
        .append(b"junk")
        .await
        .unwrap();
    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    journal.append("s", b"1").await.unwrap();
    assert!(
        disk.list()
            .await
            .unwrap()
            .contains(&"notes.txt".to_string())
    );

    // An empty segment file (a creation cut by a crash) is cleared away.
    let disk = MemDisk::new();
    disk.create("seg-0000000000000001.log").await.unwrap();
    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    assert_eq!(journal.append("s", b"1").await.unwrap(), 1);

    // A frame claiming 4 GiB at the tail is a torn tail, not an allocation.
    let segment = last_segment(&disk).await;
    let end = segment.size().await.unwrap();
    let mut liar = vec![0u8; 32];
    liar[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    segment.write_at(end, &liar).await.unwrap();
    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    assert_eq!(journal.last_seq("s"), 1);
    assert_eq!(last_segment(&disk).await.size().await.unwrap(), end);

    // A segment from another journal is refused by name.
    let other = MemDisk::new();
    let foreign = FileJournal::open(other.clone(), small_segments(), 7)
        .await
        .unwrap();
    for _ in 0..40 {
        foreign.append("s", b"foreign data").await.unwrap();
    }
    let stolen = last_segment(&other)
        .await
        .read_at(0, 1 << 20)
        .await
        .unwrap();
    drop(journal);
    disk.create("seg-0000000000000002.log")
        .await
        .unwrap()
        .append(&stolen)
        .await
        .unwrap();
    match FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .map(drop)
    {
        Err(JournalError::ForeignSegment {
            segment: 2,
            expected: ID,
            found: 7,
        }) => {}
        other => panic!("expected a foreign segment, got {other:?}"),
    }

    // A damaged checkpoint is reported, not used.
    let disk = MemDisk::new();
    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    journal.append("s", b"1").await.unwrap();
    journal.save_checkpoint("s", 1, b"state").await.unwrap();
    drop(journal);
    let name = disk
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.starts_with("ckpt-"))
        .unwrap();
    disk.open(&name)
        .await
        .unwrap()
        .write_at(25, b"X")
        .await
        .unwrap();
    match FileJournal::open(disk, JournalConfig::default(), ID)
        .await
        .map(drop)
    {
        Err(JournalError::CorruptCheckpoint { file, .. }) => assert_eq!(file, name),
        other => panic!("expected a corrupt checkpoint, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_append_keeps_every_acknowledged_entry() {
    let path = scratch_dir("crash");
    let disk = FsDisk::open_dir(&path).await.unwrap();
    let journal = FileJournal::open(disk.clone(), small_segments(), ID)
        .await
        .unwrap();
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
    let appenders: Vec<_> = (0..16)
        .map(|task| {
            let (journal, acked) = (journal.clone(), acked_tx.clone());
            tokio::spawn(async move {
                let stream = format!("s{}", task % 3);
                for i in 0.. {
                    let data = format!("{task}:{i}");
                    let seq = journal.append(&stream, data.as_bytes()).await.unwrap();
                    acked.send((stream.clone(), seq, data)).unwrap();
                }
            })
        })
        .collect();
    let mut acked = Vec::new();
    while acked.len() < 300 {
        acked.push(acked_rx.recv().await.unwrap());
    }
    // The crash: every appender stops wherever it is, some mid-batch, and
    // the journal is dropped without another sync.
    for appender in &appenders {
        appender.abort();
    }
    for appender in appenders {
        let _ = appender.await;
    }
    while let Ok(late) = acked_rx.try_recv() {
        acked.push(late);
    }
    drop(journal);

    let journal = FileJournal::open(disk, small_segments(), ID).await.unwrap();
    for stream in ["s0", "s1", "s2"] {
        let entries = journal.replay_from(stream, 1).await.unwrap();
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "gap-free after the crash"
        );
        for (s, seq, data) in acked.iter().filter(|a| a.0 == stream) {
            let found = entries.get(*seq as usize - 1).map(|e| e.data.as_slice());
            assert_eq!(found, Some(data.as_bytes()), "acknowledged {s}#{seq} lost");
        }
    }
    std::fs::remove_dir_all(&path).unwrap();
}

#[tokio::test]
async fn a_batch_of_entries_is_appended_in_order_with_one_wait() {
    let journal = FileJournal::open(MemDisk::new(), JournalConfig::default(), ID)
        .await
        .unwrap();
    assert_eq!(
        journal.append_all("s", &[b"a", b"b", b"c"]).await.unwrap(),
        3
    );
    assert_eq!(
        journal.append_all("s", &[]).await.unwrap(),
        3,
        "nothing appended"
    );
    assert_eq!(journal.append("s", b"d").await.unwrap(), 4);
    let big = vec![0u8; JournalConfig::default().entry_bytes_max + 1];
    assert!(matches!(
        journal.append_all("s", &[b"e", &big]).await,
        Err(JournalError::TooLarge { .. })
    ));
    assert_eq!(journal.last_seq("s"), 4, "a refused batch appends nothing");
    let data: Vec<_> = data_of(&journal, "s", 1)
        .await
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert_eq!(data, ["a", "b", "c", "d"]);
    let memory = MemoryJournal::new();
    assert_eq!(memory.append_all("s", &[b"x", b"y"]).await.unwrap(), 2);
    assert_eq!(data_of(&memory, "s", 2).await, [(2, "y".to_string())]);
}

/// A journal on `disk` with `entries` entries of stream "s" across several
/// small segments; returns the segment file names, oldest first.
async fn rolled_journal(disk: &MemDisk, entries: u64) -> Vec<String> {
    let journal = FileJournal::open(disk.clone(), small_segments(), ID)
        .await
        .unwrap();
    for i in 1..=entries {
        journal
            .append("s", format!("entry {i}").as_bytes())
            .await
            .unwrap();
    }
    let mut segments: Vec<String> = disk
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("seg-"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "the journal rolled: {segments:?}");
    segments
}

#[tokio::test]
async fn a_deleted_tail_segment_is_refused_naming_the_file() {
    let disk = MemDisk::new();
    let segments = rolled_journal(&disk, 60).await;
    let active = segments.last().unwrap();
    let saved = disk
        .open(active)
        .await
        .unwrap()
        .read_at(0, 1 << 20)
        .await
        .unwrap();
    disk.remove(active).await.unwrap();
    match FileJournal::open(disk.clone(), small_segments(), ID)
        .await
        .map(drop)
    {
        Err(JournalError::MissingSegment { file, named_by }) => {
            assert_eq!(&file, active);
            assert_eq!(&named_by, &segments[segments.len() - 2]);
        }
        other => panic!("expected the missing segment named, got {other:?}"),
    }
    // Refusing changed nothing: with the file restored, it opens whole.
    disk.create(active)
        .await
        .unwrap()
        .append(&saved)
        .await
        .unwrap();
    let journal = FileJournal::open(disk, small_segments(), ID).await.unwrap();
    assert_eq!(data_of(&journal, "s", 1).await.len(), 60);
}

#[tokio::test]
async fn a_journal_whose_every_segment_is_gone_is_refused_not_started_afresh() {
    let disk = MemDisk::new();
    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    for i in 1..=10 {
        journal
            .append("s", format!("{i}").as_bytes())
            .await
            .unwrap();
    }
    drop(journal);
    for name in disk.list().await.unwrap() {
        if name.starts_with("seg-") {
            disk.remove(&name).await.unwrap();
        }
    }
    match FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .map(drop)
    {
        Err(JournalError::SegmentsMissing { marker }) => assert_eq!(marker, "JOURNAL"),
        other => panic!("expected the lost log reported, got {other:?}"),
    }
    // A new directory still starts a new journal.
    let fresh = MemDisk::new();
    let journal = FileJournal::open(fresh.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    assert_eq!(journal.append("s", b"1").await.unwrap(), 1);
    assert!(fresh.list().await.unwrap().contains(&"JOURNAL".to_string()));
}

/// Frame boundaries of the last segment: where each good frame ends.
async fn frame_ends<D: Disk>(disk: &D) -> Vec<u64> {
    let bytes = last_segment(disk).await.read_at(0, 1 << 20).await.unwrap();
    let name = disk
        .list()
        .await
        .unwrap()
        .into_iter()
        .rfind(|n| n.starts_with("seg-"))
        .unwrap();
    let id = u64::from_str_radix(&name[4..20], 16).unwrap();
    let scan = plexspaces_storage::journal::scan::scan_segment(&bytes, id).unwrap();
    scan.frames
        .iter()
        .map(|f| f.offset + u64::from(f.len))
        .collect()
}

#[tokio::test]
async fn a_tail_cut_at_a_frame_boundary_is_refused_when_a_checkpoint_saw_it() {
    let disk = MemDisk::new();
    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    for i in 1..=20 {
        journal
            .append("s", format!("{i}").as_bytes())
            .await
            .unwrap();
    }
    // Another stream's checkpoint, saved after all 20 were durable.
    journal.append("c", b"x").await.unwrap();
    journal.save_checkpoint("c", 1, b"state").await.unwrap();
    drop(journal);
    let ends = frame_ends(&disk).await;
    // Ten frames cut off exactly at a frame boundary.
    last_segment(&disk)
        .await
        .set_len(ends[ends.len() - 11])
        .await
        .unwrap();
    match FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .map(drop)
    {
        Err(JournalError::LostTail {
            checkpoint,
            checkpoint_lsn,
            log_end_lsn,
        }) => {
            assert!(checkpoint.starts_with("ckpt-"), "{checkpoint}");
            assert_eq!((checkpoint_lsn, log_end_lsn), (21, 11));
        }
        other => panic!("expected the lost tail reported, got {other:?}"),
    }
}

#[tokio::test]
async fn a_checkpoint_past_its_streams_entries_is_refused() {
    let disk = MemDisk::new();
    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    for i in 1..=10 {
        journal
            .append("s", format!("{i}").as_bytes())
            .await
            .unwrap();
    }
    journal.save_checkpoint("s", 10, b"ten").await.unwrap();
    drop(journal);
    let ends = frame_ends(&disk).await;
    last_segment(&disk)
        .await
        .set_len(ends[ends.len() - 3])
        .await
        .unwrap();
    assert!(matches!(
        FileJournal::open(disk, JournalConfig::default(), ID)
            .await
            .map(drop),
        Err(JournalError::LostTail { .. })
    ));
}

/// The limit FORMAT.md names: with no later evidence (no checkpoint saved
/// after them, no later segment), frames cut off exactly at a boundary of
/// the last segment look like appends a crash prevented. This test pins
/// the documented limit down, so a change in it is noticed.
#[tokio::test]
async fn a_tail_cut_at_a_frame_boundary_without_later_evidence_is_undetectable() {
    let disk = MemDisk::new();
    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    for i in 1..=10 {
        journal
            .append("s", format!("{i}").as_bytes())
            .await
            .unwrap();
    }
    drop(journal);
    let ends = frame_ends(&disk).await;
    last_segment(&disk).await.set_len(ends[6]).await.unwrap();
    let journal = FileJournal::open(disk, JournalConfig::default(), ID)
        .await
        .unwrap();
    assert_eq!(journal.last_seq("s"), 7);
}

#[tokio::test]
async fn a_roll_cut_before_the_seal_recovers_and_seals() {
    use plexspaces_storage::journal::frame::{decode_frame, seal_successor};
    use plexspaces_storage::journal::scan::{ScanEnd, scan_segment};
    for cut_inside_seal in [false, true] {
        let disk = MemDisk::new();
        let journal = FileJournal::open(disk.clone(), small_segments(), ID)
            .await
            .unwrap();
        let mut seq = 0;
        while journal.segment_ids().len() < 2 {
            seq += 1;
            let entry = format!("entry {seq}");
            journal.append("s", entry.as_bytes()).await.unwrap();
        }
        drop(journal);
        let mut names: Vec<String> = disk.list().await.unwrap();
        names.retain(|n| n.starts_with("seg-"));
        names.sort();
        let first = disk.open(&names[0]).await.unwrap();
        let second = disk.open(&names[1]).await.unwrap();
        let size = first.size().await.unwrap();
        let first_bytes = first.read_at(0, size as usize).await.unwrap();
        let scan = scan_segment(&first_bytes, 1).unwrap();
        assert_eq!(scan.end, ScanEnd::Sealed { successor: 2 });
        let sealed_at = scan
            .frames
            .last()
            .map(|f| f.offset + u64::from(f.len))
            .unwrap();
        let (h, r, seal_len) = decode_frame(&first_bytes[sealed_at as usize..]).unwrap();
        assert_eq!(seal_successor(&h, &r), Some(2));
        // The state a crash leaves between creating a segment and sealing
        // the one before it: the new segment holds only its header (its
        // frames are dropped here; only the first segment's records are
        // expected back) and the old one has no seal, or half of one.
        second.set_len(SEGMENT_HEADER_BYTES as u64).await.unwrap();
        let cut = if cut_inside_seal {
            sealed_at + seal_len as u64 / 2
        } else {
            sealed_at
        };
        first.set_len(cut).await.unwrap();

        let journal = FileJournal::open(disk.clone(), small_segments(), ID)
            .await
            .unwrap();
        let kept = scan.frames.len() as u64;
        assert_eq!(
            journal.last_seq("s"),
            kept,
            "cut inside the seal: {cut_inside_seal}"
        );
        assert_eq!(first.size().await.unwrap(), size, "sealed again");
        assert_eq!(journal.append("s", b"after").await.unwrap(), kept + 1);
        drop(journal);
        // And once sealed, losing the new segment is seen.
        disk.remove(&names[1]).await.unwrap();
        assert!(matches!(
            FileJournal::open(disk, small_segments(), ID)
                .await
                .map(drop),
            Err(JournalError::MissingSegment { .. })
        ));
    }
}

#[tokio::test]
async fn appends_past_the_pending_bound_are_refused_and_queue_nothing() {
    let mut config = JournalConfig::default();
    config.pending_records_max = 4;
    let journal = FileJournal::open(MemDisk::new(), config, ID).await.unwrap();
    let five: Vec<&[u8]> = vec![b"1", b"2", b"3", b"4", b"5"];
    match journal.append_all("s", &five).await {
        Err(JournalError::Overloaded { pending: 0, max: 4 }) => {}
        other => panic!("expected Overloaded, got {other:?}"),
    }
    assert_eq!(journal.last_seq("s"), 0, "nothing was queued");
    assert_eq!(journal.append_all("s", &five[..4]).await.unwrap(), 4);
    assert_eq!(
        journal.append("s", b"5").await.unwrap(),
        5,
        "no sequence number was lost"
    );
    assert_eq!(data_of(&journal, "s", 1).await.len(), 5);
}

#[tokio::test]
async fn bounds_are_inclusive_a_name_an_entry_and_a_checkpoint_at_their_limit_are_taken() {
    use plexspaces_storage::journal::checkpoint::CHECKPOINT_STATE_BYTES_MAX;
    let mut config = JournalConfig::default();
    config.entry_bytes_max = 1000;
    let journal = FileJournal::open(MemDisk::new(), config, ID).await.unwrap();
    let longest = "s".repeat(STREAM_NAME_BYTES_MAX);
    assert_eq!(journal.append(&longest, &[7; 1000]).await.unwrap(), 1);
    assert!(matches!(
        journal.append(&format!("{longest}x"), b"x").await,
        Err(JournalError::InvalidStream { .. })
    ));
    assert!(matches!(
        journal.append("s", &[7; 1001]).await,
        Err(JournalError::TooLarge {
            len: 1001,
            max: 1000
        })
    ));
    // The documented capacity (FORMAT.md), written out rather than read
    // from the constant, so a changed constant fails here.
    assert_eq!(CHECKPOINT_STATE_BYTES_MAX, 32 << 20);
    let state = vec![9u8; 32 << 20];
    journal.save_checkpoint(&longest, 1, &state).await.unwrap();
    let saved = journal.latest_checkpoint(&longest).await.unwrap().unwrap();
    assert_eq!(saved.state.len(), 32 << 20);
    let too_big = vec![9u8; CHECKPOINT_STATE_BYTES_MAX + 1];
    assert!(matches!(
        journal.save_checkpoint(&longest, 1, &too_big).await,
        Err(JournalError::TooLarge { .. })
    ));
}

/// Segments larger than one disk read (64 MiB) are recovered in pieces
/// of 8 MiB (not one read per frame, nor one huge allocation), and
/// entries of several MiB (frames up to the 16 MiB payload limit) are
/// taken.
#[tokio::test]
async fn a_segment_larger_than_one_read_is_recovered_whole() {
    let mut config = JournalConfig::default();
    config.segment_bytes_max = 128 << 20;
    config.entry_bytes_max = 4 << 20;
    let disk = ProbeDisk::new(MemDisk::new());
    let journal = FileJournal::open(disk.clone(), config.clone(), ID)
        .await
        .unwrap();
    let entry = vec![5u8; 2 << 20];
    for _ in 0..35 {
        journal.append("big", &entry).await.unwrap();
    }
    assert_eq!(journal.segment_ids().len(), 1);
    drop(journal);
    disk.probe.take_reads();
    let journal = FileJournal::open(disk.clone(), config, ID).await.unwrap();
    let (reads, largest) = disk.probe.take_reads();
    // 70 MiB of frames: nine 8 MiB pieces, plus the marker and header.
    assert_eq!(largest, 8 << 20, "recovery reads in 8 MiB pieces");
    assert!(reads <= 12, "recovery took {reads} reads");
    let mut count = 0;
    journal
        .replay_each("big", 1, |_, data| {
            assert_eq!(data.len(), 2 << 20);
            count += 1;
        })
        .await
        .unwrap();
    assert_eq!(count, 35);
    let (reads, largest) = disk.probe.take_reads();
    assert!(largest <= 8 << 20, "replay read {largest} bytes at once");
    // Three 2 MiB frames fit in an 8 MiB read: 12 reads for 35.
    assert!(reads <= 12, "replay took {reads} reads for 35 frames");
}

/// Replaying one stream whose frames sit between another stream's reads
/// the segment in a few large pieces, skipping the other stream's frames,
/// rather than one read per frame.
#[tokio::test]
async fn replay_of_an_interleaved_stream_reads_across_the_other_streams_frames() {
    let disk = ProbeDisk::new(MemDisk::new());
    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    let other = vec![1u8; 4 << 10];
    for i in 0..200u32 {
        journal.append("mine", &i.to_le_bytes()).await.unwrap();
        journal.append("theirs", &other).await.unwrap();
    }
    disk.probe.take_reads();
    let mut seen = Vec::new();
    journal
        .replay_each("mine", 1, |seq, data| seen.push((seq, data.to_vec())))
        .await
        .unwrap();
    let expected: Vec<_> = (0..200u32)
        .map(|i| (u64::from(i) + 1, i.to_le_bytes().to_vec()))
        .collect();
    assert_eq!(seen, expected);
    let (reads, _) = disk.probe.take_reads();
    // ~820 KiB from the first frame to the last, gaps of ~4 KiB: one read.
    assert!(reads <= 2, "replay took {reads} reads for 200 frames");
}

/// A checkpoint save cut short leaves a `.tmp` file: open removes it and
/// the saved checkpoints stand.
#[tokio::test]
async fn a_checkpoint_save_cut_short_is_cleared_and_the_saved_one_stands() {
    let disk = MemDisk::new();
    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    journal.append("s", b"1").await.unwrap();
    journal.save_checkpoint("s", 1, b"saved").await.unwrap();
    drop(journal);
    let names = disk.list().await.unwrap();
    let saved = names.iter().find(|n| n.starts_with("ckpt-")).unwrap();
    let cut_short = disk.create(&format!("{saved}.tmp")).await.unwrap();
    cut_short.append(b"half a checkpoint").await.unwrap();
    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    assert_eq!(disk.list().await.unwrap(), names, "the .tmp is gone");
    let checkpoint = journal.latest_checkpoint("s").await.unwrap().unwrap();
    assert_eq!((checkpoint.seq, checkpoint.state), (1, b"saved".to_vec()));
}

/// A segment that cannot be created fails the roll, and the journal,
/// with the disk's own error (not a confusing one from a fallback).
#[tokio::test]
async fn a_roll_whose_create_fails_reports_the_disks_error() {
    let disk = ProbeDisk::new(MemDisk::new());
    let journal = FileJournal::open(disk.clone(), small_segments(), ID)
        .await
        .unwrap();
    let before = journal.segment_ids().len();
    disk.probe.fail_next_create.store(true, Ordering::SeqCst);
    let mut failure = None;
    for i in 0..200 {
        if let Err(e) = journal
            .append("s", format!("entry {i:04}").as_bytes())
            .await
        {
            failure = Some(e);
            break;
        }
    }
    assert_eq!(journal.segment_ids().len(), before, "no segment was added");
    match failure {
        Some(JournalError::Stopped { cause }) => {
            assert_eq!(
                (cause.kind(), cause.op()),
                (DiskErrorKind::Io, "create"),
                "{cause}"
            )
        }
        other => panic!("expected a stop caused by the create's I/O error, got {other:?}"),
    }
}

/// Replay reads frames that sit close together in one piece up to 8 MiB
/// exactly, and frames far apart (other streams' megabytes between them)
/// in pieces of their own rather than reading the gap.
#[tokio::test]
async fn replay_reads_near_frames_together_up_to_8_mib_and_far_ones_apart() {
    use plexspaces_storage::journal::frame::{Record, frame_len};
    let mut config = JournalConfig::default();
    config.segment_bytes_max = 64 << 20;
    config.entry_bytes_max = 4 << 20;
    // Two adjacent frames of "near" spanning exactly 8 MiB.
    let sample = vec![0u8; 4 << 20];
    let overhead = frame_len(&Record {
        stream: "near",
        seq: 1,
        data: &sample[..(4 << 20) - 64],
    }) - ((4 << 20) - 64);
    let half = (4 << 20) - overhead;
    let disk = ProbeDisk::new(MemDisk::new());
    let journal = FileJournal::open(disk.clone(), config, ID).await.unwrap();
    journal.append("near", &sample[..half]).await.unwrap();
    journal.append("near", &sample[..half]).await.unwrap();
    // Two frames of "far" with 300 KiB of another stream between them.
    journal.append("far", b"first").await.unwrap();
    journal.append("other", &[1u8; 300 << 10]).await.unwrap();
    journal.append("far", b"second").await.unwrap();
    disk.probe.take_reads();
    let mut near = 0;
    journal
        .replay_each("near", 1, |_, data| {
            assert_eq!(data.len(), half);
            near += 1;
        })
        .await
        .unwrap();
    assert_eq!(near, 2);
    assert_eq!(
        disk.probe.take_reads(),
        (1, 8 << 20),
        "two frames spanning 8 MiB exactly: one read"
    );
    let mut far = Vec::new();
    journal
        .replay_each("far", 1, |_, data| far.push(data.to_vec()))
        .await
        .unwrap();
    assert_eq!(far, [b"first".to_vec(), b"second".to_vec()]);
    let (reads, largest) = disk.probe.take_reads();
    assert_eq!(reads, 2, "a 300 KiB gap is not read across");
    assert!(largest < 64, "read {largest} bytes for a small frame");
}

/// A stream compacted away whole under its checkpoint: replay from before
/// the checkpoint says where the entries start again.
#[tokio::test]
async fn replay_of_a_stream_compacted_whole_names_the_first_seq_after_its_checkpoint() {
    let disk = MemDisk::new();
    let journal = FileJournal::open(disk.clone(), small_segments(), ID)
        .await
        .unwrap();
    for i in 0..40 {
        journal
            .append("gone", format!("entry {i:04}").as_bytes())
            .await
            .unwrap();
    }
    journal
        .save_checkpoint("gone", 40, b"all of it")
        .await
        .unwrap();
    for i in 0..40 {
        journal
            .append("filler", format!("entry {i:04}").as_bytes())
            .await
            .unwrap();
    }
    assert!(journal.compact().await.unwrap() > 0);
    // Before and after reopening (which knows the stream only from its
    // checkpoint).
    for journal in [
        journal,
        FileJournal::open(disk.clone(), small_segments(), ID)
            .await
            .unwrap(),
    ] {
        match journal.replay_from("gone", 1).await {
            Err(JournalError::Truncated {
                stream,
                requested,
                first_available,
            }) => assert_eq!(
                (stream.as_str(), requested, first_available),
                ("gone", 1, 41)
            ),
            other => panic!("expected Truncated, got {other:?}"),
        }
        assert!(journal.replay_from("gone", 41).await.unwrap().is_empty());
        assert_eq!(journal.last_seq("gone"), 40);
    }
}

/// A checkpoint that cannot be read is an error, never "no checkpoint"
/// (which would send the caller to replay from a log compacted under it).
#[tokio::test]
async fn a_checkpoint_that_cannot_be_opened_is_an_error_not_none() {
    let disk = ProbeDisk::new(MemDisk::new());
    let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
        .await
        .unwrap();
    journal.append("s", b"1").await.unwrap();
    journal.save_checkpoint("s", 1, b"state").await.unwrap();
    disk.probe.fail_next_open.store(true, Ordering::SeqCst);
    match journal.latest_checkpoint("s").await {
        Err(JournalError::Disk(e)) => assert_eq!(e.kind(), DiskErrorKind::Io),
        other => panic!("expected the disk's error, got {other:?}"),
    }
    assert!(journal.latest_checkpoint("never").await.unwrap().is_none());
}

/// Replay checks each frame it reads against what recovery indexed: a
/// frame replaced on disk after open by another stream's, or by a later
/// one of the same stream (same length, valid checksum), is refused, not
/// returned as the entry asked for.
#[tokio::test]
async fn replay_refuses_a_frame_replaced_after_open() {
    for (replacement, what) in [(3, "another stream's frame"), (4, "a later frame")] {
        let disk = MemDisk::new();
        let journal = FileJournal::open(disk.clone(), JournalConfig::default(), ID)
            .await
            .unwrap();
        // Frames in order: a1 b1 a2 b2 a3, all the same length.
        for (stream, data) in [
            ("a", b"1"),
            ("b", b"1"),
            ("a", b"2"),
            ("b", b"2"),
            ("a", b"3"),
        ] {
            journal.append(stream, data).await.unwrap();
        }
        let segment = last_segment(&disk).await;
        let size = segment.size().await.unwrap();
        let frame = (size as usize - SEGMENT_HEADER_BYTES) / 5;
        let at = |i: usize| (SEGMENT_HEADER_BYTES + i * frame) as u64;
        let bytes = segment.read_at(at(replacement), frame).await.unwrap();
        segment.write_at(at(2), &bytes).await.unwrap();
        match journal.replay_from("a", 1).await {
            Err(JournalError::Corrupt { reason, .. }) => {
                assert!(reason.contains("differs"), "{what}: {reason}")
            }
            other => panic!("{what} in place of a2 was not refused: {other:?}"),
        }
    }
}

#[tokio::test]
async fn batches_keep_their_record_and_byte_bounds() {
    async fn journal(
        records: usize,
        bytes: usize,
    ) -> (FileJournal<ProbeDisk<MemDisk>>, ProbeDisk<MemDisk>) {
        let disk = ProbeDisk::new(MemDisk::new());
        let mut config = JournalConfig::default();
        config.batch_records_max = records;
        config.batch_bytes_max = bytes;
        (
            FileJournal::open(disk.clone(), config, ID).await.unwrap(),
            disk,
        )
    }
    let syncs = |disk: &ProbeDisk<MemDisk>| disk.probe.syncs.load(Ordering::SeqCst);
    // Ten small entries in one call: batches of three records.
    let (by_records, disk) = journal(3, 1 << 20).await;
    let before = syncs(&disk);
    by_records.append_all("s", &[&b"x"[..]; 10]).await.unwrap();
    assert_eq!(syncs(&disk) - before, 4, "ten records, three a batch");
    assert_eq!(data_of_bytes(&by_records, "s").await.len(), 10);
    // Six entries of 40 bytes (76-byte frames, headers included): a batch
    // of at most 200 bytes written takes two, of at most 228 exactly three.
    let forty = [7u8; 40];
    let (two_a_batch, disk) = journal(1000, 200).await;
    let before = syncs(&disk);
    two_a_batch.append_all("s", &[&forty[..]; 6]).await.unwrap();
    assert_eq!(syncs(&disk) - before, 3, "two 76-byte frames a batch");
    let (by_bytes, disk) = journal(1000, 3 * 76).await;
    let before = syncs(&disk);
    by_bytes.append_all("s", &[&forty[..]; 6]).await.unwrap();
    assert_eq!(syncs(&disk) - before, 2, "three 76-byte frames a batch");
    // An entry larger than a batch still goes, alone.
    let before = syncs(&disk);
    by_bytes.append("s", &[1u8; 500]).await.unwrap();
    assert_eq!(syncs(&disk) - before, 1);
    assert_eq!(data_of_bytes(&by_bytes, "s").await.len(), 7);
}

async fn data_of_bytes<J: Journal>(journal: &J, stream: &str) -> Vec<Vec<u8>> {
    journal
        .replay_from(stream, 1)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.data)
        .collect()
}

#[tokio::test]
async fn a_roll_reuses_a_segment_file_a_cut_roll_left_behind() {
    let disk = MemDisk::new();
    let journal = FileJournal::open(disk.clone(), small_segments(), ID)
        .await
        .unwrap();
    // A roll cancelled after creating the next segment's file.
    disk.create("seg-0000000000000002.log").await.unwrap();
    for i in 0..40 {
        journal
            .append("s", format!("entry {i}").as_bytes())
            .await
            .unwrap();
    }
    assert!(
        journal.segment_ids().len() >= 3,
        "{:?}",
        journal.segment_ids()
    );
    drop(journal);
    let reopened = FileJournal::open(disk, small_segments(), ID).await.unwrap();
    assert_eq!(data_of(&reopened, "s", 1).await.len(), 40);
}

#[tokio::test]
async fn compaction_counts_what_it_removes_and_replay_knows_where_streams_start() {
    let disk = MemDisk::new();
    let journal = FileJournal::open(disk.clone(), small_segments(), ID)
        .await
        .unwrap();
    for i in 0..60 {
        journal
            .append("s", format!("entry {i:04}").as_bytes())
            .await
            .unwrap();
    }
    journal.save_checkpoint("s", 40, b"forty").await.unwrap();
    drop(journal);
    // The save compacted already: nothing more to remove after reopening.
    let journal = FileJournal::open(disk.clone(), small_segments(), ID)
        .await
        .unwrap();
    assert_eq!(journal.compact().await.unwrap(), 0);
    let segments = journal.segment_ids().len();
    match journal.replay_from("s", 1).await {
        Err(JournalError::Truncated {
            requested: 1,
            first_available,
            ..
        }) => {
            let held = data_of(&journal, "s", first_available).await;
            assert_eq!(held[0].0, first_available);
            assert_eq!(held.len() as u64, 60 - first_available + 1);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    journal.save_checkpoint("s", 60, b"sixty").await.unwrap();
    assert!(journal.segment_ids().len() < segments);
    assert_eq!(journal.compact().await.unwrap(), 0);
    assert_eq!(journal.last_seq("s"), 60);
    // A stream with nothing left in the log but a checkpoint: replay below
    // it names the first entry not in the checkpoint.
    let fresh = FileJournal::open(MemDisk::new(), small_segments(), ID)
        .await
        .unwrap();
    for _ in 0..40 {
        fresh.append("t", b"0123456789").await.unwrap();
    }
    fresh.append("u", b"pin").await.unwrap();
    fresh.save_checkpoint("u", 1, b"u").await.unwrap();
    for _ in 0..40 {
        fresh.append("u", b"0123456789").await.unwrap();
    }
    fresh.save_checkpoint("t", 40, b"t").await.unwrap();
    fresh.save_checkpoint("u", 41, b"u").await.unwrap();
    let removed_t = fresh.replay_from("t", 1).await;
    assert!(
        matches!(
            removed_t,
            Err(JournalError::Truncated {
                first_available: 41,
                ..
            })
        ),
        "{removed_t:?}"
    );
    assert!(fresh.replay_from("t", 41).await.unwrap().is_empty());
}

#[tokio::test]
async fn compact_returns_how_many_segments_went() {
    use plexspaces_storage::journal::checkpoint::encode_checkpoint;
    let disk = MemDisk::new();
    let journal = FileJournal::open(disk.clone(), small_segments(), ID)
        .await
        .unwrap();
    journal.append("pin", b"first").await.unwrap();
    for i in 0..60 {
        journal
            .append("s", format!("entry {i:04}").as_bytes())
            .await
            .unwrap();
    }
    // "pin" has no checkpoint: the oldest segment stays, and so do all.
    journal.save_checkpoint("s", 60, b"all").await.unwrap();
    let before = journal.segment_ids().len();
    assert!(before >= 4);
    drop(journal);
    // A checkpoint of "pin" lands (as if saved by a run that crashed
    // before compacting): opening does not compact; compact() does, and
    // says how many segments went.
    let hex: String = "pin".bytes().map(|b| format!("{b:02x}")).collect();
    let file = disk.create(&format!("ckpt-{hex}")).await.unwrap();
    file.append(&encode_checkpoint(ID, "pin", 1, 2, b"p"))
        .await
        .unwrap();
    let reopened = FileJournal::open(disk, small_segments(), ID).await.unwrap();
    assert_eq!(reopened.segment_ids().len(), before);
    let removed = reopened.compact().await.unwrap();
    assert_eq!(removed, before - reopened.segment_ids().len());
    assert!(removed > 0);
    assert_eq!(
        reopened.compact().await.unwrap(),
        0,
        "nothing more to remove"
    );
    assert_eq!(reopened.last_seq("s"), 60);
    assert!(matches!(
        reopened.replay_from("pin", 1).await,
        Err(JournalError::Truncated {
            first_available: 2,
            ..
        })
    ));
}

#[tokio::test]
async fn a_torn_tail_before_a_segment_with_frames_is_corruption() {
    let disk = MemDisk::new();
    let segments = rolled_journal(&disk, 60).await;
    // Unlike a roll cut short, a torn end before a segment with frames is
    // damage.
    assert_torn_second_segment_is_corruption(disk, &segments).await;
}

/// Cuts the seal (and one more byte) off the second of `segments` and
/// checks the journal refuses to open, naming it.
async fn assert_torn_second_segment_is_corruption(disk: MemDisk, segments: &[String]) {
    let victim = disk.open(&segments[1]).await.unwrap();
    let size = victim.size().await.unwrap();
    victim.set_len(size - 5).await.unwrap();
    assert!(matches!(
        FileJournal::open(disk, small_segments(), ID)
            .await
            .map(drop),
        Err(JournalError::Corrupt { segment: 2, .. })
    ));
}

/// Only the segment just before an empty last one may end torn (a roll cut
/// short); an earlier segment ending torn is damage even then.
#[tokio::test]
async fn a_torn_tail_far_before_an_empty_last_segment_is_corruption() {
    let disk = MemDisk::new();
    let segments = rolled_journal(&disk, 60).await;
    assert!(segments.len() >= 4, "{segments:?}");
    let last = disk.open(segments.last().unwrap()).await.unwrap();
    last.set_len(SEGMENT_HEADER_BYTES as u64).await.unwrap();
    assert_torn_second_segment_is_corruption(disk, &segments).await;
}

#[tokio::test]
async fn a_deleted_middle_segment_is_named_by_its_predecessors_seal() {
    let disk = MemDisk::new();
    let segments = rolled_journal(&disk, 60).await;
    disk.remove(&segments[1]).await.unwrap();
    match FileJournal::open(disk, small_segments(), ID)
        .await
        .map(drop)
    {
        Err(JournalError::MissingSegment { file, named_by }) => {
            assert_eq!((file, named_by), (segments[1].clone(), segments[0].clone()));
        }
        other => panic!("expected the missing middle segment named, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stream_starting_past_one_without_a_checkpoint_is_refused() {
    let disk = MemDisk::new();
    let journal = FileJournal::open(disk.clone(), small_segments(), ID)
        .await
        .unwrap();
    for i in 0..60 {
        journal
            .append("s", format!("entry {i:04}").as_bytes())
            .await
            .unwrap();
    }
    journal.save_checkpoint("s", 30, b"half").await.unwrap();
    drop(journal);
    // The checkpoint that covered the compacted entries is deleted.
    let checkpoint = disk
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.starts_with("ckpt-"))
        .unwrap();
    disk.remove(&checkpoint).await.unwrap();
    match FileJournal::open(disk, small_segments(), ID)
        .await
        .map(drop)
    {
        Err(JournalError::Corrupt { reason, .. }) => {
            assert!(reason.contains("starts at seq"), "{reason}")
        }
        other => panic!("expected the gap refused, got {other:?}"),
    }
}

/// Replay coalesces a stream's nearby frames into one read; with other
/// streams' frames between them (small gaps, gaps past the coalescing
/// bound, frames spanning segments, and runs longer than one read), every
/// stream still replays exactly its own entries, from any point.
#[tokio::test]
async fn interleaved_streams_replay_exactly_from_any_point() {
    let mut config = JournalConfig::default();
    config.segment_bytes_max = 16 << 20;
    let disk = MemDisk::new();
    let journal = FileJournal::open(disk.clone(), config.clone(), ID)
        .await
        .unwrap();
    let mut model: std::collections::BTreeMap<&str, Vec<Vec<u8>>> = Default::default();
    let mut put = |stream: &'static str, len: usize, tag: u8| {
        let data: Vec<u8> = (0..len).map(|i| tag ^ (i as u8)).collect();
        model.entry(stream).or_default().push(data.clone());
        (stream, data)
    };
    let mut writes = Vec::new();
    for round in 0..30u8 {
        writes.push(put("a", 100 + round as usize, round));
        writes.push(put("b", 300 * 1024, round)); // a gap past the bound for "a"
        writes.push(put("a", 50, round.wrapping_add(1)));
        writes.push(put("c", 10, round));
    }
    // A long run of one stream: more than one read's worth back to back.
    for round in 0..40u8 {
        writes.push(put("d", 300 * 1024, round));
    }
    for (stream, data) in &writes {
        journal.append(stream, data).await.unwrap();
    }
    for (name, entries) in &model {
        for from in [1u64, 2, entries.len() as u64 / 2, entries.len() as u64] {
            let got = journal.replay_from(name, from).await.unwrap();
            let want = &entries[(from - 1) as usize..];
            assert_eq!(got.len(), want.len(), "{name} from {from}");
            for (i, entry) in got.iter().enumerate() {
                assert_eq!(entry.seq, from + i as u64);
                assert_eq!(&entry.data, &want[i], "{name} #{}", entry.seq);
            }
        }
    }
}
