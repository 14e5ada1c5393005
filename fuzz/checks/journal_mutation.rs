//! Structure-aware journal recovery: the input describes a log (records of
//! three streams, each frame written and synced in its own batch, as the
//! journal writes them) and one mutation of its bytes (truncate, flip a
//! bit, zero or garble a 512-byte sector, duplicate a frame at the end,
//! swap two frames). Recovery of the mutated log must give exactly:
//!
//! - a truncation: the frames wholly inside the prefix, ending clean at a
//!   frame boundary or torn there (a prefix of a valid log is a valid log);
//! - damage in place: if an intact frame after the first damaged one
//!   remains (it proves the damaged one was acknowledged), a corruption
//!   report at the damaged frame; otherwise the frames before it and a
//!   torn tail there. Never a different record than was written;
//! - a duplicate appended at the end: every frame, and a torn tail where
//!   the duplicate starts (it proves nothing);
//! - a swap: a corruption report where the first moved frame was.
//!
//! Shared by the fuzz target and by `cargo test` (which replays the
//! committed corpus).

use plexspaces_storage::journal::frame::FRAME_PAYLOAD_BYTES_MAX;
use plexspaces_storage::journal::frame::{
    FrameHeader, Record, SEGMENT_HEADER_BYTES, SegmentHeader, encode_frame,
};
use plexspaces_storage::journal::scan::{ScanEnd, ScanError, SegmentScan, scan_segment};

const SEGMENT: u64 = 3;
const SECTOR: usize = 512;

/// Recovers `bytes` as the segment, allocating no more than the limit.
fn recover(bytes: &[u8]) -> Result<SegmentScan<'_>, ScanError> {
    let limit = crate::alloc_limit::decode_limit(FRAME_PAYLOAD_BYTES_MAX, bytes.len());
    crate::alloc_limit::within(limit, "segment recovery", || scan_segment(bytes, SEGMENT))
}

/// Reads the input a byte at a time (zeros once it runs out).
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> usize {
        usize::from(self.byte()) | usize::from(self.byte()) << 8
    }
}

/// One written frame: where it starts and ends, and what it holds.
struct Written {
    start: usize,
    end: usize,
    stream: String,
    seq: u64,
    data: Vec<u8>,
}

/// The log the input describes: its bytes and frames.
fn build(input: &mut Input<'_>) -> (Vec<u8>, Vec<Written>) {
    let first_lsn = 1;
    let mut bytes = SegmentHeader {
        journal_id: 0x5eed,
        segment_id: SEGMENT,
        first_lsn,
        commit_lsn: first_lsn - 1,
    }
    .encode()
    .to_vec();
    let count = usize::from(input.byte() % 12) + 1;
    let mut seqs = [0u64; 3];
    let mut frames = Vec::with_capacity(count);
    for i in 0..count {
        let stream = usize::from(input.byte() % 3);
        seqs[stream] += 1;
        let len = usize::from(input.byte() % 200);
        let fill = input.byte();
        let data: Vec<u8> = (0..len).map(|j| fill.wrapping_add(j as u8)).collect();
        let lsn = first_lsn + i as u64;
        let header = FrameHeader {
            segment_id: SEGMENT,
            lsn,
            // Each frame synced in its own batch: everything before it
            // was acknowledged when it was written.
            commit_lsn: lsn - 1,
        };
        let name = format!("s{stream}");
        let start = bytes.len();
        let record = Record {
            stream: &name,
            seq: seqs[stream],
            data: &data,
        };
        encode_frame(&mut bytes, header, &record);
        frames.push(Written {
            start,
            end: bytes.len(),
            stream: name,
            seq: seqs[stream],
            data,
        });
    }
    (bytes, frames)
}

/// Checks that recovery kept exactly `frames[..keep]`, ending as `end`.
fn expect_prefix(mutated: &[u8], frames: &[Written], keep: usize, end: ScanEnd) {
    let scan = recover(mutated).expect("recovers");
    assert_eq!(scan.frames.len(), keep, "frames recovered");
    for (got, want) in scan.frames.iter().zip(frames) {
        assert_eq!(got.offset as usize, want.start);
        assert_eq!(got.record.stream, want.stream);
        assert_eq!(got.record.seq, want.seq);
        assert_eq!(
            got.record.data,
            want.data.as_slice(),
            "never a different record"
        );
    }
    assert_eq!(scan.end, end);
}

fn expect_corrupt(mutated: &[u8], at: usize) {
    match recover(mutated) {
        Err(ScanError::Corrupt { offset, .. }) => {
            assert_eq!(offset as usize, at, "corruption reported where it is")
        }
        other => panic!("damage to acknowledged frames at {at} not reported: {other:?}"),
    }
}

/// Builds the log the input describes, mutates it as the input says, and
/// checks what recovery makes of it.
pub fn check(bytes: &[u8]) {
    let mut input = Input(bytes);
    let (log, frames) = build(&mut input);
    let op = input.byte() % 6;
    let param = input.u16();
    let mut mutated = log.clone();
    match op {
        0 => {
            let cut = param % (log.len() + 1);
            mutated.truncate(cut);
            if cut < SEGMENT_HEADER_BYTES {
                assert!(matches!(recover(&mutated), Err(ScanError::BadHeader(_))));
                return;
            }
            let keep = frames.iter().take_while(|f| f.end <= cut).count();
            let boundary = frames[..keep]
                .last()
                .map_or(SEGMENT_HEADER_BYTES, |f| f.end);
            let end = if boundary == cut {
                ScanEnd::Clean
            } else {
                ScanEnd::TornTail {
                    offset: boundary as u64,
                }
            };
            expect_prefix(&mutated, &frames, keep, end);
        }
        1..=3 => {
            match op {
                1 => {
                    let at = param % log.len();
                    mutated[at] ^= 1 << (input.byte() % 8);
                }
                _ => {
                    let sectors = log.len().div_ceil(SECTOR);
                    let start = (param % sectors) * SECTOR;
                    let end = (start + SECTOR).min(log.len());
                    for b in &mut mutated[start..end] {
                        *b = if op == 2 { 0 } else { *b ^ 0x5a };
                    }
                }
            }
            let changed = |f: &Written| log[f.start..f.end] != mutated[f.start..f.end];
            if log[..SEGMENT_HEADER_BYTES] != mutated[..SEGMENT_HEADER_BYTES] {
                assert!(matches!(recover(&mutated), Err(ScanError::BadHeader(_))));
                return;
            }
            match frames.iter().position(changed) {
                None => expect_prefix(&mutated, &frames, frames.len(), ScanEnd::Clean),
                Some(first) => {
                    let proven = frames[first + 1..].iter().any(|f| !changed(f));
                    if proven {
                        expect_corrupt(&mutated, frames[first].start);
                    } else {
                        let end = ScanEnd::TornTail {
                            offset: frames[first].start as u64,
                        };
                        expect_prefix(&mutated, &frames, first, end);
                    }
                }
            }
        }
        4 => {
            let copy = &frames[param % frames.len()];
            mutated.extend_from_slice(&log[copy.start..copy.end]);
            let end = ScanEnd::TornTail {
                offset: log.len() as u64,
            };
            expect_prefix(&mutated, &frames, frames.len(), end);
        }
        _ => {
            if frames.len() < 2 {
                return;
            }
            let j = param % (frames.len() - 1);
            let k = j + 1 + usize::from(input.byte()) % (frames.len() - 1 - j);
            let (a, b) = (&frames[j], &frames[k]);
            let mut swapped = log[..a.start].to_vec();
            swapped.extend_from_slice(&log[b.start..b.end]);
            swapped.extend_from_slice(&log[a.end..b.start]);
            swapped.extend_from_slice(&log[a.start..a.end]);
            swapped.extend_from_slice(&log[b.end..]);
            expect_corrupt(&swapped, a.start);
        }
    }
}
