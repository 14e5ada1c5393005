//! Recovery of one segment from its bytes: which frames are good, and
//! whether what follows the last good frame is a torn tail (never
//! acknowledged, safe to cut) or damage to acknowledged data (refuse).
//!
//! The rule, for a bad frame at offset `X` where lsn `E` was expected:
//! if some later, checksum-valid frame of this segment says (in its
//! `commit_lsn`) that `E` was already durable when it was written, then `E`
//! was acknowledged and is now damaged: [`ScanError::Corrupt`]. Otherwise the
//! bytes from `X` on were never acknowledged (a write cut by a crash, or
//! sectors of an unsynced batch that landed out of order): a torn tail.

use super::frame::{
    FRAME_HEADER_BYTES, FrameError, FrameHeader, Record, SEGMENT_HEADER_BYTES, SegmentHeader,
    decode_frame, seal_successor,
};

/// A good frame found by the scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedFrame<'a> {
    /// Where the frame starts in the segment file.
    pub offset: u64,
    /// Its total length (header and payload).
    pub len: u32,
    /// Its header.
    pub header: FrameHeader,
    /// Its record.
    pub record: Record<'a>,
}

/// How a segment's good frames end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// The last good frame ends exactly at the end of the file.
    Clean,
    /// Bytes from `offset` on are not good frames and were never
    /// acknowledged; the file should be cut there.
    TornTail {
        /// Where the good frames end.
        offset: u64,
    },
    /// The good frames end with the segment's seal, at the end of the
    /// file: the segment was closed once segment `successor` existed
    /// durably, so that segment must exist.
    Sealed {
        /// The segment the seal names as the next one.
        successor: u64,
    },
}

/// A scanned segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentScan<'a> {
    /// The segment's header.
    pub header: SegmentHeader,
    /// Its good frames, in order.
    pub frames: Vec<ScannedFrame<'a>>,
    /// How they end.
    pub end: ScanEnd,
}

impl SegmentScan<'_> {
    /// The lsn the next frame after this segment's good frames must carry.
    pub fn next_lsn(&self) -> u64 {
        self.frames
            .last()
            .map_or(self.header.first_lsn, |f| f.header.lsn + 1)
    }
}

/// Why a segment cannot be recovered.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScanError {
    /// The header is missing or damaged.
    BadHeader(super::frame::HeaderError),
    /// The header names another segment id than the file name.
    WrongSegment {
        /// The id in the header.
        found: u64,
    },
    /// Acknowledged data is damaged at `offset`.
    Corrupt {
        /// Offset of the first bad frame.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Scans segment `segment_id` held entirely in `bytes`, collecting its
/// good frames.
pub fn scan_segment(bytes: &[u8], segment_id: u64) -> Result<SegmentScan<'_>, ScanError> {
    let mut frames = Vec::new();
    let summary = scan_segment_with(bytes, segment_id, |frame| {
        frames.push(frame.clone());
        Ok(())
    })?;
    Ok(SegmentScan {
        header: summary.header,
        frames,
        end: summary.end,
    })
}

/// What a scan found, apart from the frames themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanSummary {
    /// The segment's header.
    pub header: SegmentHeader,
    /// How its good frames end.
    pub end: ScanEnd,
    /// The lsn the next frame after the good ones must carry.
    pub next_lsn: u64,
}

/// Scans segment `segment_id` held entirely in `bytes`, handing each good
/// frame to `visit` in order (recovery indexes them without collecting).
/// A frame `visit` refuses (`Err(reason)`) is reported as corruption there.
pub fn scan_segment_with<'a>(
    bytes: &'a [u8],
    segment_id: u64,
    mut visit: impl FnMut(&ScannedFrame<'a>) -> Result<(), String>,
) -> Result<ScanSummary, ScanError> {
    let header = SegmentHeader::decode(bytes).map_err(ScanError::BadHeader)?;
    if header.segment_id != segment_id {
        return Err(ScanError::WrongSegment {
            found: header.segment_id,
        });
    }
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut expected_lsn = header.first_lsn;
    let mut end = ScanEnd::Clean;
    while offset < bytes.len() {
        match frame_at(bytes, offset, segment_id, expected_lsn) {
            Ok((frame_header, record, len)) => {
                let frame = ScannedFrame {
                    offset: offset as u64,
                    len: len as u32,
                    header: frame_header,
                    record,
                };
                visit(&frame).map_err(|reason| ScanError::Corrupt {
                    offset: offset as u64,
                    reason,
                })?;
                offset += len;
                expected_lsn += 1;
            }
            Err(reason) => {
                if let Some((successor, len)) = seal_at(bytes, offset, segment_id, expected_lsn) {
                    if offset + len != bytes.len() {
                        // Nothing is ever written after a seal.
                        return Err(ScanError::Corrupt {
                            offset: (offset + len) as u64,
                            reason: format!(
                                "{} bytes after the segment's seal",
                                bytes.len() - offset - len
                            ),
                        });
                    }
                    end = ScanEnd::Sealed { successor };
                    break;
                }
                if let Some(proof) = later_durable_frame(bytes, offset, segment_id, expected_lsn) {
                    return Err(ScanError::Corrupt {
                        offset: offset as u64,
                        reason: format!(
                            "{reason}; lsn {expected_lsn} was expected here, and the frame at \
                             offset {proof} was written after it was durable"
                        ),
                    });
                }
                end = ScanEnd::TornTail {
                    offset: offset as u64,
                };
                break;
            }
        }
    }
    Ok(ScanSummary {
        header,
        end,
        next_lsn: expected_lsn,
    })
}

/// The frame at `offset` if it is good *in place*: intact, of this segment,
/// and carrying the lsn that belongs here.
fn frame_at(
    bytes: &[u8],
    offset: usize,
    segment_id: u64,
    expected_lsn: u64,
) -> Result<(FrameHeader, Record<'_>, usize), String> {
    let (header, record, len) = decode_frame(&bytes[offset..]).map_err(|e| match e {
        FrameError::Truncated => "frame cut short".to_string(),
        FrameError::TooLarge(n) => format!("frame claims {n} payload bytes"),
        FrameError::BadChecksum => "checksum mismatch".to_string(),
        FrameError::BadPayload => "payload is not a record".to_string(),
    })?;
    if header.segment_id != segment_id {
        return Err(format!("frame of segment {} found here", header.segment_id));
    }
    if header.lsn != expected_lsn {
        return Err(format!("frame with lsn {} found here", header.lsn));
    }
    Ok((header, record, len))
}

/// The successor named by the seal at `offset` and the seal's length, if
/// a seal of this segment sits there right after the last record
/// (`next_lsn - 1`, which its commit lsn must name).
fn seal_at(bytes: &[u8], offset: usize, segment_id: u64, next_lsn: u64) -> Option<(u64, usize)> {
    let (header, record, len) = decode_frame(&bytes[offset..]).ok()?;
    let successor = seal_successor(&header, &record)?;
    let in_place =
        header.segment_id == segment_id && header.commit_lsn.checked_add(1) == Some(next_lsn);
    in_place.then_some((successor, len))
}

/// Offset of a valid frame at or after `from` proving `lsn` was durable.
/// The frame at `from` itself counts: an intact frame found where `lsn`
/// belongs, written after `lsn` was durable, proves `lsn` was overwritten.
fn later_durable_frame(bytes: &[u8], from: usize, segment_id: u64, lsn: u64) -> Option<usize> {
    let id = segment_id.to_le_bytes();
    (from..bytes.len().saturating_sub(FRAME_HEADER_BYTES - 1)).find(|&at| {
        // Cheap filter first: the segment id sits at bytes 8..16 of a frame.
        bytes[at + 8..at + 16] == id
            && matches!(decode_frame(&bytes[at..]),
                Ok((h, _, _)) if h.segment_id == segment_id && h.commit_lsn >= lsn)
    })
}

#[cfg(test)]
mod tests {
    use super::super::frame::encode_frame;
    use super::*;

    /// A segment of `n` frames, each written (and synced) in its own batch.
    fn segment(n: u64) -> Vec<u8> {
        let mut bytes = SegmentHeader {
            journal_id: 1,
            segment_id: 4,
            first_lsn: 10,
            commit_lsn: 9,
        }
        .encode()
        .to_vec();
        for i in 0..n {
            let lsn = 10 + i;
            let header = FrameHeader {
                segment_id: 4,
                lsn,
                commit_lsn: lsn - 1,
            };
            encode_frame(
                &mut bytes,
                header,
                &Record {
                    stream: "s",
                    seq: i + 1,
                    data: &[7; 40],
                },
            );
        }
        bytes
    }

    #[test]
    fn a_clean_segment_yields_every_frame() {
        let bytes = segment(5);
        let scan = scan_segment(&bytes, 4).unwrap();
        assert_eq!(scan.frames.len(), 5);
        assert_eq!(scan.end, ScanEnd::Clean);
        assert_eq!(scan.next_lsn(), 15);
        assert_eq!(scan.frames[2].record.seq, 3);
    }

    #[test]
    fn a_seal_ends_a_segment_and_names_its_successor() {
        let mut bytes = segment(3);
        super::super::frame::encode_seal(&mut bytes, 4, 12, 5);
        let scan = scan_segment(&bytes, 4).unwrap();
        assert_eq!(scan.frames.len(), 3, "a seal is not a record");
        assert_eq!(scan.end, ScanEnd::Sealed { successor: 5 });
        assert_eq!(scan.next_lsn(), 13);

        // Anything after a seal is damage: nothing is written after one.
        let mut after = bytes.clone();
        after.extend_from_slice(&[0; 10]);
        assert!(matches!(
            scan_segment(&after, 4),
            Err(ScanError::Corrupt { offset, .. }) if offset == bytes.len() as u64
        ));
        // A seal naming the wrong last lsn, or another segment, is no seal:
        // nothing proves it was written after the frames, so a torn tail.
        for (segment_id, last_lsn) in [(4, 11), (9, 12)] {
            let mut wrong = segment(3);
            let end = wrong.len() as u64;
            super::super::frame::encode_seal(&mut wrong, segment_id, last_lsn, 5);
            let scan = scan_segment(&wrong, 4).unwrap();
            assert_eq!(scan.end, ScanEnd::TornTail { offset: end });
        }
        // A half-written seal is a torn tail.
        let cut = &bytes[..bytes.len() - 3];
        let scan = scan_segment(cut, 4).unwrap();
        assert!(matches!(scan.end, ScanEnd::TornTail { .. }));
    }

    #[test]
    fn a_cut_last_frame_is_a_torn_tail() {
        let bytes = segment(3);
        let frame_two_end = scan_segment(&bytes, 4).unwrap().frames[1].clone();
        let end = frame_two_end.offset + u64::from(frame_two_end.len);
        let scan = scan_segment(&bytes[..bytes.len() - 5], 4).unwrap();
        assert_eq!(scan.frames.len(), 2);
        assert_eq!(scan.end, ScanEnd::TornTail { offset: end });
    }

    #[test]
    fn damage_before_a_later_durable_frame_is_corruption() {
        let mut bytes = segment(3);
        let first = SEGMENT_HEADER_BYTES + 3;
        bytes[first + 40] ^= 0x10;
        match scan_segment(&bytes, 4) {
            Err(ScanError::Corrupt { offset, .. }) => {
                assert_eq!(offset, SEGMENT_HEADER_BYTES as u64)
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn an_unsynced_batch_landing_out_of_order_is_a_torn_tail() {
        // Frames 2 and 3 were written together in one batch (same commit
        // point); the crash kept frame 3's sectors but not frame 2's.
        let mut bytes = segment(1);
        let batch_start = bytes.len();
        for lsn in [11, 12] {
            let header = FrameHeader {
                segment_id: 4,
                lsn,
                commit_lsn: 10,
            };
            encode_frame(
                &mut bytes,
                header,
                &Record {
                    stream: "s",
                    seq: lsn - 9,
                    data: &[1; 40],
                },
            );
        }
        bytes[batch_start + 35] ^= 0xff;
        let scan = scan_segment(&bytes, 4).unwrap();
        assert_eq!(scan.frames.len(), 1);
        assert_eq!(
            scan.end,
            ScanEnd::TornTail {
                offset: batch_start as u64
            }
        );
    }

    #[test]
    fn a_frame_of_another_segment_or_lsn_is_not_good_in_place() {
        let bytes = segment(2);
        assert_eq!(
            scan_segment(&bytes, 5).unwrap_err(),
            ScanError::WrongSegment { found: 4 }
        );
        // Swap the two frames: each is intact but out of place.
        let scan = scan_segment(&bytes, 4).unwrap();
        let (a, b) = (&scan.frames[0], &scan.frames[1]);
        let mut swapped = bytes[..SEGMENT_HEADER_BYTES].to_vec();
        swapped
            .extend_from_slice(&bytes[b.offset as usize..(b.offset + u64::from(b.len)) as usize]);
        swapped
            .extend_from_slice(&bytes[a.offset as usize..(a.offset + u64::from(a.len)) as usize]);
        assert!(matches!(
            scan_segment(&swapped, 4),
            Err(ScanError::Corrupt { .. })
        ));
    }

    #[test]
    fn zeros_after_the_last_frame_are_a_torn_tail() {
        let mut bytes = segment(2);
        let end = bytes.len() as u64;
        bytes.extend_from_slice(&[0; 4096]);
        let scan = scan_segment(&bytes, 4).unwrap();
        assert_eq!(
            (scan.frames.len(), scan.end),
            (2, ScanEnd::TornTail { offset: end })
        );
    }
}
