//! Property tests of the journal's format and recovery rules, and of the
//! file journal against the memory journal as a model.

use plexspaces_storage::disk::MemDisk;
use plexspaces_storage::journal::frame::{
    FrameHeader, Record, SEGMENT_HEADER_BYTES, SegmentHeader, decode_frame, encode_frame,
};
use plexspaces_storage::journal::scan::{ScanEnd, ScanError, scan_segment};
use plexspaces_storage::journal::{FileJournal, Journal, JournalConfig, MemoryJournal};
use proptest::prelude::*;

const SEGMENT: u64 = 3;

/// One record of a generated log: its stream, and its data.
type Gen = (u8, Vec<u8>);

/// Encodes `batches` of records into a segment, each batch written after
/// the previous one was durable. Returns the bytes and each frame's
/// (start, end, stream, seq, data).
#[allow(clippy::type_complexity)]
fn build_log(batches: &[Vec<Gen>]) -> (Vec<u8>, Vec<(usize, usize, String, u64, Vec<u8>)>) {
    let mut bytes = SegmentHeader {
        journal_id: 1,
        segment_id: SEGMENT,
        first_lsn: 1,
        commit_lsn: 0,
    }
    .encode()
    .to_vec();
    let mut frames = Vec::new();
    let mut seqs = [0u64; 4];
    let mut lsn = 0;
    for batch in batches {
        let commit_lsn = lsn;
        for (stream, data) in batch {
            lsn += 1;
            let name = format!("stream-{}", stream % 4);
            seqs[*stream as usize % 4] += 1;
            let seq = seqs[*stream as usize % 4];
            let start = bytes.len();
            let header = FrameHeader {
                segment_id: SEGMENT,
                lsn,
                commit_lsn,
            };
            encode_frame(
                &mut bytes,
                header,
                &Record {
                    stream: &name,
                    seq,
                    data,
                },
            );
            frames.push((start, bytes.len(), name, seq, data.clone()));
        }
    }
    (bytes, frames)
}

fn batches() -> impl Strategy<Value = Vec<Vec<Gen>>> {
    let record = (any::<u8>(), prop::collection::vec(any::<u8>(), 0..48));
    prop::collection::vec(prop::collection::vec(record, 1..4), 1..6)
}

proptest! {
    #[test]
    fn frames_round_trip(
        stream in "[a-z0-9@._-]{1,100}",
        seq in any::<u64>(),
        lsn in any::<u64>(),
        commit_lsn in any::<u64>(),
        segment_id in any::<u64>(),
        data in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let header = FrameHeader { segment_id, lsn, commit_lsn };
        let mut bytes = vec![0xAA; 3]; // frames append to what is there
        encode_frame(&mut bytes, header, &Record { stream: &stream, seq, data: &data });
        let (h, record, len) = decode_frame(&bytes[3..]).unwrap();
        prop_assert_eq!(h, header);
        prop_assert_eq!(len, bytes.len() - 3);
        prop_assert_eq!((record.stream, record.seq, record.data), (stream.as_str(), seq, &data[..]));
    }

    /// Cutting a log anywhere recovers exactly the frames written in full,
    /// ending clean or torn, never "corrupt".
    #[test]
    fn every_truncation_recovers_exactly_the_whole_frames(batches in batches()) {
        let (bytes, frames) = build_log(&batches);
        for cut in SEGMENT_HEADER_BYTES..=bytes.len() {
            let scan = scan_segment(&bytes[..cut], SEGMENT).unwrap();
            let whole: Vec<_> = frames.iter().filter(|f| f.1 <= cut).collect();
            prop_assert_eq!(scan.frames.len(), whole.len(), "cut at {}", cut);
            for (got, want) in scan.frames.iter().zip(&whole) {
                prop_assert_eq!(
                    (got.record.stream, got.record.seq, got.record.data),
                    (want.2.as_str(), want.3, &want.4[..])
                );
            }
            let boundary = whole.last().map_or(SEGMENT_HEADER_BYTES, |f| f.1);
            let expected = if boundary == cut {
                ScanEnd::Clean
            } else {
                ScanEnd::TornTail { offset: boundary as u64 }
            };
            prop_assert_eq!(scan.end, expected, "cut at {}", cut);
        }
    }

    /// A flipped bit in a frame is never returned as data. In a batch that
    /// a later batch followed (so it was durable), it is corruption; in the
    /// last batch, it is indistinguishable from a torn write and is cut.
    #[test]
    fn every_bit_flip_is_detected(
        batches in batches(),
        pick in any::<prop::sample::Index>(),
        byte in any::<prop::sample::Index>(),
        bit in 0usize..8,
    ) {
        let (bytes, frames) = build_log(&batches);
        let victim = pick.index(frames.len());
        let (start, end, ..) = frames[victim];
        let mut damaged = bytes.clone();
        let at = start + byte.index(end - start);
        damaged[at] ^= 1 << bit;
        let last_batch_start = frames.len() - batches.last().unwrap().len();
        match scan_segment(&damaged, SEGMENT) {
            Ok(scan) => {
                prop_assert!(victim >= last_batch_start, "damage to a durable frame was cut, not reported");
                prop_assert_eq!(scan.frames.len(), victim);
                prop_assert_eq!(scan.end, ScanEnd::TornTail { offset: start as u64 });
            }
            Err(ScanError::Corrupt { offset, .. }) => {
                prop_assert!(victim < last_batch_start, "a torn last batch was called corrupt");
                prop_assert_eq!(offset, start as u64);
            }
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Append(u8, Vec<u8>),
    /// Checkpoint a stream this many entries behind its last one.
    Checkpoint(u8, u8),
    Reopen,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        6 => (0u8..3, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(s, d)| Op::Append(s, d)),
        2 => (0u8..3, 0u8..4).prop_map(|(s, b)| Op::Checkpoint(s, b)),
        1 => Just(Op::Reopen),
    ];
    prop::collection::vec(op, 1..80)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The file journal, reopened at random points and compacting small
    /// segments, answers like the memory journal.
    #[test]
    fn the_file_journal_behaves_like_the_model(ops in ops()) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let config = {
    let mut config = JournalConfig::default();
    config.segment_bytes_max = 256;
    config
};
            let disk = MemDisk::new();
            let mut file = FileJournal::open(disk.clone(), config.clone(), 1).await.unwrap();
            let model = MemoryJournal::new();
            for op in ops {
                match op {
                    Op::Append(s, data) => {
                        let stream = format!("s{s}");
                        let got = file.append(&stream, &data).await.unwrap();
                        assert_eq!(got, model.append(&stream, &data).await.unwrap());
                    }
                    Op::Checkpoint(s, back) => {
                        let stream = format!("s{s}");
                        let current = model.latest_checkpoint(&stream).await.unwrap().map_or(0, |c| c.seq);
                        let seq = model.last_seq(&stream).saturating_sub(u64::from(back)).max(current);
                        let state = format!("state@{seq}");
                        file.save_checkpoint(&stream, seq, state.as_bytes()).await.unwrap();
                        model.save_checkpoint(&stream, seq, state.as_bytes()).await.unwrap();
                    }
                    Op::Reopen => {
                        drop(file);
                        file = FileJournal::open(disk.clone(), config.clone(), 1).await.unwrap();
                    }
                }
                for s in 0..3 {
                    let stream = format!("s{s}");
                    assert_eq!(file.last_seq(&stream), model.last_seq(&stream));
                    let checkpoint = model.latest_checkpoint(&stream).await.unwrap();
                    assert_eq!(file.latest_checkpoint(&stream).await.unwrap(), checkpoint);
                    let from = checkpoint.map_or(1, |c| c.seq + 1);
                    assert_eq!(
                        file.replay_from(&stream, from).await.unwrap(),
                        model.replay_from(&stream, from).await.unwrap()
                    );
                }
                // All streams in one pass, each from its own point (one a
                // step past its first replayable entry), give each stream
                // what replaying it alone gives.
                let mut wanted = Vec::new();
                for s in 0..3u64 {
                    let stream = format!("s{s}");
                    let checkpoint = model.latest_checkpoint(&stream).await.unwrap();
                    wanted.push((stream, checkpoint.map_or(1, |c| c.seq + 1) + s % 2));
                }
                let asked: Vec<(&str, u64)> = wanted.iter().map(|(s, f)| (s.as_str(), *f)).collect();
                let mut got: Vec<Vec<(u64, Vec<u8>)>> = vec![Vec::new(); 3];
                let count = file
                    .replay_streams_each(&asked, |stream, seq, data| {
                        let at = asked.iter().position(|(s, _)| *s == stream).unwrap();
                        got[at].push((seq, data.to_vec()));
                    })
                    .await
                    .unwrap();
                let mut expected_count = 0;
                for (at, (stream, from)) in asked.iter().enumerate() {
                    let expected: Vec<(u64, Vec<u8>)> = model
                        .replay_from(stream, *from)
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|e| (e.seq, e.data))
                        .collect();
                    expected_count += expected.len() as u64;
                    assert_eq!(got[at], expected, "{stream} from {from}");
                }
                assert_eq!(count, expected_count);
            }
        });
    }
}
