//! The journal's byte layout: segment headers and record frames.
//!
//! Pure functions over byte slices, so the recovery rules can be tested,
//! property-tested and fuzzed without a disk. `storage/FORMAT.md` documents
//! the layout; the constants here are its single source of truth.

use serde::{Deserialize, Serialize};

/// Identifies a segment file's first bytes.
pub const SEGMENT_MAGIC: [u8; 8] = *b"PLXJRNL\0";
/// The format version this code writes: 2 added seals (a sealed segment
/// names its successor) and the log position in checkpoints.
pub const FORMAT_VERSION: u16 = 2;
/// The oldest format version this code reads (version 1 segments simply
/// have no seals).
pub const FORMAT_VERSION_MIN_READ: u16 = 1;
/// The lsn field of a seal frame: record frames start at lsn 1.
pub const SEAL_LSN: u64 = 0;
/// Bytes of a segment header.
pub const SEGMENT_HEADER_BYTES: usize = 48;
/// Bytes of a frame header (before its payload).
pub const FRAME_HEADER_BYTES: usize = 32;
/// Largest frame payload the decoder accepts. Checked before anything is
/// allocated, so a corrupt length cannot make recovery allocate gigabytes.
pub const FRAME_PAYLOAD_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The header at the start of every segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The journal this segment belongs to (random, chosen at creation):
    /// a segment copied in from another journal is refused.
    pub journal_id: u64,
    /// This segment's id; also in every frame and in the file name.
    pub segment_id: u64,
    /// The log sequence number of the segment's first frame.
    pub first_lsn: u64,
    /// Every frame with an lsn up to this was durable when the segment was
    /// created.
    pub commit_lsn: u64,
}

/// Why a segment header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// Fewer bytes than a header.
    Short,
    /// Not a PlexSpaces segment.
    BadMagic,
    /// A format version this code does not read.
    UnsupportedVersion(u16),
    /// The checksum does not match.
    BadChecksum,
}

impl SegmentHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut out = [0u8; SEGMENT_HEADER_BYTES];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        // 10..12 reserved, zero.
        out[12..20].copy_from_slice(&self.journal_id.to_le_bytes());
        out[20..28].copy_from_slice(&self.segment_id.to_le_bytes());
        out[28..36].copy_from_slice(&self.first_lsn.to_le_bytes());
        out[36..44].copy_from_slice(&self.commit_lsn.to_le_bytes());
        let crc = crc32fast::hash(&out[0..44]);
        out[44..48].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses and checks a header from the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        let bytes = bytes
            .get(..SEGMENT_HEADER_BYTES)
            .ok_or(HeaderError::Short)?;
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        if crc32fast::hash(&bytes[0..44]) != le_u32(&bytes[44..48]) {
            return Err(HeaderError::BadChecksum);
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if !(FORMAT_VERSION_MIN_READ..=FORMAT_VERSION).contains(&version) {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        Ok(SegmentHeader {
            journal_id: le_u64(&bytes[12..20]),
            segment_id: le_u64(&bytes[20..28]),
            first_lsn: le_u64(&bytes[28..36]),
            commit_lsn: le_u64(&bytes[36..44]),
        })
    }
}

/// The postcard payload of a frame: one entry of one stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record<'a> {
    /// The stream (actor id) the entry belongs to.
    pub stream: &'a str,
    /// The entry's sequence number within its stream (1, 2, 3, ...).
    pub seq: u64,
    /// The entry itself, opaque to the journal.
    #[serde(serialize_with = "as_bytes")]
    pub data: &'a [u8],
}

/// Serialises a byte slice as one postcard byte string (length + bytes)
/// instead of serde's default element-by-element sequence. The bytes on the
/// wire are the same; encoding is many times faster.
fn as_bytes<S: serde::Serializer>(data: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(data)
}

/// A frame's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The segment the frame was written to.
    pub segment_id: u64,
    /// The frame's log sequence number (global, gap-free, from 1).
    pub lsn: u64,
    /// Every frame with an lsn up to this was durable (acknowledged) when
    /// this frame was written. Recovery uses it to tell a torn, never
    /// acknowledged tail from damage to acknowledged data.
    pub commit_lsn: u64,
}

/// Why the bytes at an offset are not a valid frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The input ends before the frame does.
    Truncated,
    /// The length field exceeds [`FRAME_PAYLOAD_BYTES_MAX`].
    TooLarge(u32),
    /// The checksum does not match.
    BadChecksum,
    /// The checksum matches but the payload is not a record.
    BadPayload,
}

/// Appends the frame of `record` to `out`.
///
/// # Panics
/// If the encoded record exceeds [`FRAME_PAYLOAD_BYTES_MAX`]; callers check
/// entry sizes first (a bug, not an operating error).
pub fn encode_frame(out: &mut Vec<u8>, header: FrameHeader, record: &Record<'_>) {
    let start = out.len();
    out.resize(start + FRAME_HEADER_BYTES, 0);
    let out_len_before_payload = out.len();
    let encoded = postcard::to_extend(record, std::mem::take(out))
        .expect("a record is a string, an integer and bytes, which postcard always encodes");
    *out = encoded;
    let payload_len = out.len() - out_len_before_payload;
    assert!(
        payload_len <= FRAME_PAYLOAD_BYTES_MAX,
        "record of {payload_len} bytes"
    );
    let frame = &mut out[start..];
    frame[4..8].copy_from_slice(&(payload_len as u32).to_le_bytes());
    frame[8..16].copy_from_slice(&header.segment_id.to_le_bytes());
    frame[16..24].copy_from_slice(&header.lsn.to_le_bytes());
    frame[24..32].copy_from_slice(&header.commit_lsn.to_le_bytes());
    let crc = crc32fast::hash(&frame[4..]);
    frame[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// Appends the seal of segment `segment_id`: the frame written last into a
/// segment once its successor `successor` exists durably, so that a
/// missing successor is seen as the loss it is. `last_lsn` is the lsn of
/// the segment's last record (everything up to it is durable).
///
/// A seal is a frame with lsn [`SEAL_LSN`], commit lsn `last_lsn`, and the
/// payload `Record { stream: "", seq: successor, data: [] }` (no stream
/// has an empty name, so it is never taken for a record).
pub fn encode_seal(out: &mut Vec<u8>, segment_id: u64, last_lsn: u64, successor: u64) {
    let header = FrameHeader {
        segment_id,
        lsn: SEAL_LSN,
        commit_lsn: last_lsn,
    };
    let record = Record {
        stream: "",
        seq: successor,
        data: &[],
    };
    encode_frame(out, header, &record);
}

/// The successor a decoded frame names, if it is a seal.
pub fn seal_successor(header: &FrameHeader, record: &Record<'_>) -> Option<u64> {
    let is_seal = header.lsn == SEAL_LSN && record.stream.is_empty() && record.data.is_empty();
    is_seal.then_some(record.seq)
}

/// The encoded size of `record`'s frame.
pub fn frame_len(record: &Record<'_>) -> usize {
    FRAME_HEADER_BYTES
        + postcard::experimental::serialized_size(record)
            .expect("a record is a string, an integer and bytes, which postcard always sizes")
}

/// Decodes the frame at the start of `bytes`: its header, its record and
/// its total length in bytes. Never reads past `bytes`, never allocates.
pub fn decode_frame(bytes: &[u8]) -> Result<(FrameHeader, Record<'_>, usize), FrameError> {
    let head = bytes
        .get(..FRAME_HEADER_BYTES)
        .ok_or(FrameError::Truncated)?;
    let payload_len = le_u32(&head[4..8]);
    if payload_len as usize > FRAME_PAYLOAD_BYTES_MAX {
        return Err(FrameError::TooLarge(payload_len));
    }
    let total = FRAME_HEADER_BYTES + payload_len as usize;
    let frame = bytes.get(..total).ok_or(FrameError::Truncated)?;
    if crc32fast::hash(&frame[4..]) != le_u32(&frame[0..4]) {
        return Err(FrameError::BadChecksum);
    }
    let record: Record<'_> = match postcard::from_bytes(&frame[FRAME_HEADER_BYTES..]) {
        Ok(record) => record,
        Err(_) => return Err(FrameError::BadPayload),
    };
    let header = FrameHeader {
        segment_id: le_u64(&frame[8..16]),
        lsn: le_u64(&frame[16..24]),
        commit_lsn: le_u64(&frame[24..32]),
    };
    Ok((header, record, total))
}

fn le_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().expect("a 4-byte slice"))
}

fn le_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("an 8-byte slice"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (FrameHeader, Vec<u8>) {
        let header = FrameHeader {
            segment_id: 3,
            lsn: 17,
            commit_lsn: 16,
        };
        let mut out = Vec::new();
        let record = Record {
            stream: "counter@n1",
            seq: 5,
            data: b"+1",
        };
        encode_frame(&mut out, header, &record);
        assert_eq!(out.len(), frame_len(&record));
        (header, out)
    }

    #[test]
    fn a_frame_round_trips() {
        let (header, bytes) = sample();
        let (h, record, len) = decode_frame(&bytes).unwrap();
        assert_eq!((h, len), (header, bytes.len()));
        assert_eq!(
            (record.stream, record.seq, record.data),
            ("counter@n1", 5, &b"+1"[..])
        );
    }

    #[test]
    fn every_truncation_is_truncated_and_every_bit_flip_is_caught() {
        let (_, bytes) = sample();
        for cut in 0..bytes.len() {
            assert_eq!(
                decode_frame(&bytes[..cut]).unwrap_err(),
                FrameError::Truncated,
                "{cut}"
            );
        }
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode_frame(&flipped).is_err(),
                "flip of bit {bit} went unseen"
            );
        }
    }

    #[test]
    fn only_a_frame_with_lsn_0_no_stream_and_no_data_is_a_seal() {
        let seal = FrameHeader {
            segment_id: 1,
            lsn: SEAL_LSN,
            commit_lsn: 9,
        };
        let record = |stream, data: &'static [u8]| Record {
            stream,
            seq: 2,
            data,
        };
        assert_eq!(seal_successor(&seal, &record("", &[])), Some(2));
        assert_eq!(seal_successor(&seal, &record("s", &[])), None);
        assert_eq!(seal_successor(&seal, &record("", b"x")), None);
        let frame = FrameHeader { lsn: 1, ..seal };
        assert_eq!(seal_successor(&frame, &record("", &[])), None);
    }

    #[test]
    fn a_frame_at_the_payload_limit_decodes_and_one_byte_more_is_refused() {
        let stream = "s";
        // postcard: 1 byte of string length, the string, 1 byte of seq, a
        // 4-byte varint of the data length (the data is over 2^21 bytes).
        let data = vec![1u8; FRAME_PAYLOAD_BYTES_MAX - 1 - stream.len() - 1 - 4];
        let header = FrameHeader {
            segment_id: 1,
            lsn: 1,
            commit_lsn: 0,
        };
        let mut out = Vec::new();
        let record = Record {
            stream,
            seq: 1,
            data: &data,
        };
        encode_frame(&mut out, header, &record);
        assert_eq!(out.len(), FRAME_HEADER_BYTES + FRAME_PAYLOAD_BYTES_MAX);
        let (_, decoded, len) = decode_frame(&out).unwrap();
        assert_eq!((decoded.data.len(), len), (data.len(), out.len()));
        let mut longer = out.clone();
        longer[4..8].copy_from_slice(&(FRAME_PAYLOAD_BYTES_MAX as u32 + 1).to_le_bytes());
        assert_eq!(
            decode_frame(&longer).unwrap_err(),
            FrameError::TooLarge(FRAME_PAYLOAD_BYTES_MAX as u32 + 1)
        );
    }

    #[test]
    fn a_huge_length_is_refused_before_reading_further() {
        let (_, mut bytes) = sample();
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_frame(&bytes).unwrap_err(),
            FrameError::TooLarge(u32::MAX)
        );
    }

    #[test]
    fn a_segment_header_round_trips_and_rejects_damage() {
        let header = SegmentHeader {
            journal_id: 0xfeed,
            segment_id: 2,
            first_lsn: 100,
            commit_lsn: 99,
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        assert_eq!(SegmentHeader::decode(&bytes[..47]), Err(HeaderError::Short));
        let mut bad = bytes;
        bad[0] = b'X';
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::BadMagic));
        let mut bad = bytes;
        bad[30] ^= 1;
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::BadChecksum));
        let mut future = bytes;
        future[8] = 9;
        let crc = crc32fast::hash(&future[0..44]);
        future[44..48].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            SegmentHeader::decode(&future),
            Err(HeaderError::UnsupportedVersion(9))
        );
        assert_eq!(
            SegmentHeader::decode(&[0u8; 48]),
            Err(HeaderError::BadMagic)
        );
    }
}
