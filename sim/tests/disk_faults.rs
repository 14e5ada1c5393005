//! Each disk fault class of the simulated disk does what it says, and the
//! journal's checksums see what the faults do to data at rest.
#![cfg(madsim)]

use plexspaces_sim::{DiskFaults, SECTOR_BYTES, SimDisk, Trace, WriteFault, WriteFaultHit};
use plexspaces_storage::disk::{Disk, DiskErrorKind, DiskFile};
use plexspaces_storage::journal::{FileJournal, Journal, JournalConfig, JournalError};
use std::sync::Arc;

fn disk(seed: u64, faults: DiskFaults) -> SimDisk {
    SimDisk::new(seed, faults, Arc::new(Trace::new()))
}

async fn contents(disk: &SimDisk, name: &str) -> Option<Vec<u8>> {
    let file = disk.open(name).await.ok()?;
    Some(file.read_at(0, 1 << 20).await.unwrap())
}

/// Writes `synced` and syncs it (file and directory), then writes
/// `unsynced` after it without syncing.
async fn prepare(disk: &SimDisk, synced: &[u8], unsynced: &[u8]) {
    let file = disk.create("f").await.unwrap();
    file.append(synced).await.unwrap();
    file.sync_data().await.unwrap();
    disk.sync_dir().await.unwrap();
    file.append(unsynced).await.unwrap();
}

#[madsim::test]
async fn without_faults_a_crash_loses_nothing() {
    let disk = disk(1, DiskFaults::none());
    prepare(&disk, b"synced", b"+unsynced").await;
    disk.create("unsynced-name").await.unwrap();
    disk.crash();
    assert_eq!(contents(&disk, "f").await.unwrap(), b"synced+unsynced");
    assert!(disk.open("unsynced-name").await.is_ok());
}

#[madsim::test]
async fn unsynced_writes_can_be_lost_and_synced_ones_stay() {
    let faults = DiskFaults {
        crash_lose_unsynced: 1.0,
        ..DiskFaults::none()
    };
    let disk = disk(2, faults);
    prepare(&disk, b"synced", b"+unsynced").await;
    assert_eq!(
        contents(&disk, "f").await.unwrap(),
        b"synced+unsynced",
        "reads see the cache"
    );
    disk.crash();
    assert_eq!(contents(&disk, "f").await.unwrap(), b"synced");
    assert_eq!(disk.fault_counts().lost_unsynced, 1);
}

#[madsim::test]
async fn unsynced_writes_can_be_torn_by_sector() {
    let faults = DiskFaults {
        crash_tear_unsynced: 1.0,
        ..DiskFaults::none()
    };
    let mut mixed = 0;
    for seed in 0..20 {
        let disk = disk(seed, faults.clone());
        let old = vec![b'o'; 8 * SECTOR_BYTES];
        prepare(&disk, &old, b"").await;
        let file = disk.open("f").await.unwrap();
        file.write_at(0, &vec![b'n'; 8 * SECTOR_BYTES])
            .await
            .unwrap();
        disk.crash();
        let after = contents(&disk, "f").await.unwrap();
        let sectors: Vec<u8> = after.chunks(SECTOR_BYTES).map(|s| s[0]).collect();
        for (i, sector) in after.chunks(SECTOR_BYTES).enumerate() {
            assert!(
                sector.iter().all(|&b| b == sectors[i]),
                "seed {seed}: a sector is whole"
            );
        }
        if sectors.contains(&b'o') && sectors.contains(&b'n') {
            mixed += 1;
        }
    }
    assert!(mixed > 10, "tearing mixes old and new sectors ({mixed}/20)");
}

#[madsim::test]
async fn a_grown_size_can_survive_without_its_data() {
    let faults = DiskFaults {
        crash_lose_unsynced: 1.0,
        crash_size_without_data: 1.0,
        ..DiskFaults::none()
    };
    let disk = disk(3, faults);
    prepare(&disk, b"head", b"tail").await;
    disk.crash();
    assert_eq!(contents(&disk, "f").await.unwrap(), b"head\0\0\0\0");
    assert_eq!(disk.fault_counts().size_without_data, 1);
}

#[madsim::test]
async fn names_survive_only_if_the_directory_was_synced() {
    let faults = DiskFaults {
        crash_lose_dir_changes: 1.0,
        ..DiskFaults::none()
    };
    let mut all_lost = 0;
    for seed in 0..20 {
        let disk = disk(seed, faults.clone());
        let kept = disk.create("kept").await.unwrap();
        kept.append(b"k").await.unwrap();
        kept.sync_data().await.unwrap();
        disk.sync_dir().await.unwrap();
        disk.rename("kept", "renamed").await.unwrap();
        let late = disk.create("late").await.unwrap();
        late.append(b"l").await.unwrap();
        late.sync_data().await.unwrap(); // data synced, name not
        disk.crash();
        let renamed = disk.open("renamed").await.is_ok();
        let late_kept = disk.open("late").await.is_ok();
        // A random suffix of the unsynced changes is lost, never a middle.
        assert!(
            !late_kept || renamed,
            "seed {seed}: a later change kept without an earlier"
        );
        let synced = if renamed { "renamed" } else { "kept" };
        assert_eq!(
            contents(&disk, synced).await.unwrap(),
            b"k",
            "seed {seed}: synced data stays"
        );
        if !renamed && !late_kept {
            all_lost += 1;
        }
    }
    assert!(all_lost > 0, "some crashes lose every unsynced change");
}

#[madsim::test]
async fn a_failed_sync_drops_the_dirty_data_and_a_retry_lies() {
    let faults = DiskFaults {
        sync_error: 1.0,
        ..DiskFaults::none()
    };
    let disk = disk(4, faults);
    let file = disk.create("f").await.unwrap();
    disk.sync_dir().await.unwrap();
    file.append(b"doomed").await.unwrap();
    let err = file.sync_data().await.unwrap_err();
    assert_eq!((err.kind(), err.op()), (DiskErrorKind::Io, "sync_data"));
    disk.set_faults(DiskFaults::none());
    file.sync_data().await.unwrap(); // "succeeds", writes nothing
    assert_eq!(
        contents(&disk, "f").await.unwrap(),
        b"doomed",
        "the cache still shows it"
    );
    disk.crash();
    assert_eq!(
        contents(&disk, "f").await.unwrap(),
        b"",
        "but it never reached the disk"
    );
}

#[madsim::test]
async fn reads_can_fail() {
    let disk = disk(
        5,
        DiskFaults {
            read_error: 1.0,
            ..DiskFaults::none()
        },
    );
    prepare(&disk, b"data", b"").await;
    let err = disk
        .open("f")
        .await
        .unwrap()
        .read_at(0, 4)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), DiskErrorKind::Io);
    assert_eq!(disk.fault_counts().read_errors, 1);
}

#[madsim::test]
async fn a_full_disk_refuses_writes_and_keeps_what_it_has() {
    let disk = disk(
        6,
        DiskFaults {
            capacity_bytes: Some(10),
            ..DiskFaults::none()
        },
    );
    prepare(&disk, b"12345678", b"").await;
    let file = disk.open("f").await.unwrap();
    let err = file.append(b"abc").await.unwrap_err();
    assert_eq!(err.kind(), DiskErrorKind::NoSpace);
    file.append(b"ab").await.unwrap();
    assert_eq!(contents(&disk, "f").await.unwrap(), b"12345678ab");
}

#[madsim::test]
async fn lost_and_misdirected_writes_show_only_after_a_crash() {
    let lost = disk(
        7,
        DiskFaults {
            lost_write: 1.0,
            ..DiskFaults::none()
        },
    );
    prepare(&lost, b"", b"").await;
    let file = lost.open("f").await.unwrap();
    file.append(b"acknowledged").await.unwrap();
    file.sync_data().await.unwrap();
    assert_eq!(contents(&lost, "f").await.unwrap(), b"acknowledged");
    lost.crash();
    assert_eq!(
        contents(&lost, "f").await.unwrap(),
        b"",
        "a lost write never landed"
    );

    let misdirected = disk(
        8,
        DiskFaults {
            misdirected_write: 1.0,
            ..DiskFaults::none()
        },
    );
    prepare(&misdirected, &[b'.'; 2 * SECTOR_BYTES], b"").await;
    let file = misdirected.open("f").await.unwrap();
    file.write_at(0, b"HERE").await.unwrap();
    file.sync_data().await.unwrap();
    misdirected.crash();
    let after = contents(&misdirected, "f").await.unwrap();
    assert_ne!(&after[..4], b"HERE", "the write went elsewhere");
    assert!(
        after.windows(4).any(|w| w == b"HERE"),
        "but it landed somewhere"
    );
}

/// An armed write fault hits exactly the next write in its directory,
/// whatever the probabilities, and reports the file by the name it ends
/// up with.
#[madsim::test]
async fn an_armed_write_fault_hits_the_next_write_in_its_directory_only() {
    let root = disk(9, DiskFaults::none());
    let dir = root.subdir("d").await.unwrap();
    root.sync_dir().await.unwrap();
    let outside = root.create("outside").await.unwrap();
    let tmp = dir.create("x.tmp").await.unwrap();
    dir.arm_write_fault(WriteFault::Lost);
    assert_eq!(dir.write_fault_hit(), None, "nothing written yet");
    outside.append(b"elsewhere").await.unwrap();
    assert_eq!(dir.write_fault_hit(), None, "another directory's write");
    tmp.append(b"first").await.unwrap();
    tmp.append(b"second").await.unwrap();
    tmp.sync_data().await.unwrap();
    outside.sync_data().await.unwrap();
    dir.rename("x.tmp", "x").await.unwrap();
    dir.sync_dir().await.unwrap();
    assert_eq!(
        dir.write_fault_hit(),
        Some(WriteFaultHit {
            fault: WriteFault::Lost,
            file: Some("x".to_string()),
            offset: 0,
        })
    );
    root.crash();
    let x = dir.open("x").await.unwrap();
    assert_eq!(
        x.read_at(0, 64).await.unwrap(),
        b"\0\0\0\0\0second",
        "only the first write was lost"
    );
    assert_eq!(contents(&root, "outside").await.unwrap(), b"elsewhere");
    assert_eq!(root.fault_counts().lost_writes, 1);

    let misdirected = disk(10, DiskFaults::none());
    prepare(&misdirected, &[b'.'; 2 * SECTOR_BYTES], b"").await;
    misdirected.arm_write_fault(WriteFault::Misdirected);
    let file = misdirected.open("f").await.unwrap();
    file.write_at(0, b"HERE").await.unwrap();
    file.write_at(8, b"NEXT").await.unwrap();
    file.sync_data().await.unwrap();
    misdirected.crash();
    let after = contents(&misdirected, "f").await.unwrap();
    assert_ne!(&after[..4], b"HERE", "the armed write went elsewhere");
    assert_eq!(&after[8..12], b"NEXT", "the next one did not");
    assert_eq!(
        misdirected.write_fault_hit().unwrap().file.as_deref(),
        Some("f")
    );
}

#[madsim::test]
async fn a_bit_flipped_at_rest_is_seen_by_the_journals_checksums() {
    for seed in 0..10 {
        let disk = disk(
            seed,
            DiskFaults {
                bit_flip_at_rest: 1.0,
                ..DiskFaults::none()
            },
        );
        let journal = FileJournal::open(disk.clone(), JournalConfig::default(), 1)
            .await
            .unwrap();
        let mut acked = Vec::new();
        for i in 0..50u32 {
            acked.push(journal.append("s", &i.to_le_bytes()).await.unwrap());
        }
        drop(journal);
        disk.crash();
        assert_eq!(disk.fault_counts().bit_flips, 1);
        match FileJournal::open(disk.clone(), JournalConfig::default(), 1).await {
            // Detected: damage to acknowledged data, or a damaged header.
            Err(JournalError::Corrupt { .. }) => {}
            // Or the flip hit the last batch, which recovery cuts as a torn
            // tail: what remains must be intact, never a different record.
            Ok(journal) => {
                let entries = journal.replay_from("s", 1).await.unwrap();
                assert!(
                    entries.len() >= 49,
                    "seed {seed}: only the last frame may go"
                );
                for (i, entry) in entries.iter().enumerate() {
                    assert_eq!(entry.data, (i as u32).to_le_bytes(), "seed {seed}");
                }
            }
            Err(other) => panic!("seed {seed}: {other}"),
        }
    }
}

#[test]
fn the_guard_switches_off_what_no_single_copy_survives() {
    let wild = DiskFaults {
        bit_flip_at_rest: 0.1,
        misdirected_write: 0.1,
        lost_write: 0.1,
        ..DiskFaults::recoverable()
    };
    let guarded = wild.clone().guarded(false);
    assert_eq!(
        (
            guarded.bit_flip_at_rest,
            guarded.misdirected_write,
            guarded.lost_write
        ),
        (0.0, 0.0, 0.0)
    );
    assert_eq!(guarded.crash_tear_unsynced, wild.crash_tear_unsynced);
    assert_eq!(wild.clone().guarded(true), wild, "asked for, they stay");
}

/// A checkpoint reported saved is the latest after a crash that loses
/// every directory change not synced and every unsynced write, whether or
/// not a compaction followed it (one segment: nothing to compact), and
/// whether the crash comes right after the save or after more appends.
#[madsim::test]
async fn a_saved_checkpoint_stays_the_latest_after_a_crash_losing_directory_changes() {
    let faults = DiskFaults {
        crash_lose_dir_changes: 1.0,
        crash_lose_unsynced: 0.5,
        crash_tear_unsynced: 0.5,
        ..DiskFaults::none()
    };
    for seed in 0..40u64 {
        let disk = disk(seed, faults.clone());
        let journal = FileJournal::open(disk.clone(), JournalConfig::default(), 7)
            .await
            .unwrap();
        let rounds = 1 + seed % 4;
        let mut saved = None;
        for round in 1..=rounds {
            let seq = journal.append("acct", &round.to_le_bytes()).await.unwrap();
            let state = format!("state after round {round}");
            journal
                .save_checkpoint("acct", seq, state.as_bytes())
                .await
                .unwrap();
            saved = Some((seq, state));
        }
        assert_eq!(
            journal.segment_ids().len(),
            1,
            "no compaction removed anything"
        );
        if seed % 2 == 1 {
            journal.append("acct", b"after").await.unwrap();
        }
        drop(journal);
        disk.crash();
        let reopened = FileJournal::open(disk.clone(), JournalConfig::default(), 7)
            .await
            .unwrap();
        let latest = reopened.latest_checkpoint("acct").await.unwrap().unwrap();
        let (seq, state) = saved.unwrap();
        assert_eq!(
            (latest.seq, latest.state),
            (seq, state.into_bytes()),
            "seed {seed}: the checkpoint reported saved"
        );
    }
}
