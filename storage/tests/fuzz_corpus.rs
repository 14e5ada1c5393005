//! Replays the committed fuzz corpus through the fuzz targets' checks, so
//! their properties hold on every `cargo test`, fuzzer or not. The corpus
//! files are real encoded segments (clean, torn, damaged, lying lengths).

// The corpus is test data in the repository, read directly.
#![allow(clippy::disallowed_methods)]

// The checks measure allocations through this allocator.
#[path = "../../fuzz/checks/alloc_limit.rs"]
mod alloc_limit;
#[global_allocator]
static ALLOC: alloc_limit::Tracking = alloc_limit::Tracking;

#[path = "../../fuzz/checks/journal_segment.rs"]
mod journal_segment;

#[path = "../../fuzz/checks/journal_mutation.rs"]
mod journal_mutation;

use plexspaces_storage::journal::scan::{ScanEnd, ScanError, scan_segment};
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect()
}

#[test]
fn the_journal_segment_corpus_keeps_its_properties() {
    let files = corpus("journal_segment");
    assert!(files.len() >= 4, "the seed corpus is committed");
    for (name, bytes) in &files {
        journal_segment::check(bytes);
        // The hand-made seeds also pin down what recovery says about them.
        let outcome = scan_segment(bytes, 1);
        match name.as_str() {
            "clean" => {
                let scan = outcome.unwrap();
                assert_eq!((scan.frames.len(), scan.end), (4, ScanEnd::Clean));
                assert_eq!(scan.frames[2].record.stream, "other@n1");
            }
            "torn_tail" => {
                let scan = outcome.unwrap();
                assert_eq!(scan.frames.len(), 3);
                assert!(matches!(scan.end, ScanEnd::TornTail { .. }));
            }
            "mid_log_flip" => {
                assert!(
                    matches!(outcome, Err(ScanError::Corrupt { offset: 48, .. })),
                    "{name}"
                );
            }
            "sealed" => {
                let scan = outcome.unwrap();
                assert_eq!(scan.frames.len(), 2);
                assert_eq!(scan.end, ScanEnd::Sealed { successor: 2 });
            }
            "huge_length" => {
                let scan = outcome.unwrap();
                assert_eq!(scan.frames.len(), 1, "the lying frame is a torn tail");
            }
            _ => {} // fuzzer-found inputs: the shared check is the oracle
        }
    }
}

#[test]
fn the_journal_mutation_corpus_keeps_its_properties() {
    let files = corpus("journal_mutation");
    assert!(files.len() >= 8, "the seed corpus is committed");
    for (_, bytes) in &files {
        journal_mutation::check(bytes);
    }
}

/// The `sealed` seed: a segment of two frames closed by its seal, built by
/// the encoders (`PLEXSPACES_WRITE_FUZZ_SEEDS=1` rewrites it).
#[test]
fn the_sealed_segment_seed_is_the_encoders_output() {
    use plexspaces_storage::journal::frame::{
        FrameHeader, Record, SegmentHeader, encode_frame, encode_seal,
    };
    let mut bytes = SegmentHeader {
        journal_id: 7,
        segment_id: 1,
        first_lsn: 1,
        commit_lsn: 0,
    }
    .encode()
    .to_vec();
    for lsn in 1..=2 {
        let header = FrameHeader {
            segment_id: 1,
            lsn,
            commit_lsn: lsn - 1,
        };
        let record = Record {
            stream: "acct@n1",
            seq: lsn,
            data: b"+10",
        };
        encode_frame(&mut bytes, header, &record);
    }
    encode_seal(&mut bytes, 1, 2, 2);
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/journal_segment/sealed");
    if std::env::var_os("PLEXSPACES_WRITE_FUZZ_SEEDS").is_some() {
        std::fs::write(&path, &bytes).unwrap();
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the sealed seed is stale"
    );
}
