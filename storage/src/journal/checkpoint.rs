//! Checkpoint files: one actor's state as of a sequence number, written to a
//! temporary file, synced, renamed into place and made durable by a
//! directory sync, so a crash leaves either the old checkpoint or the new
//! one, never a mixture.

use serde::{Deserialize, Serialize};

/// Identifies a checkpoint file's first bytes.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"PLXCKPT\0";
/// Bytes before the body: magic, version, reserved, body length, crc.
pub const CHECKPOINT_HEADER_BYTES: usize = 20;
/// Largest state a checkpoint holds.
pub const CHECKPOINT_STATE_BYTES_MAX: usize = 32 * 1024 * 1024;

/// A stream's saved state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The stream (actor id).
    pub stream: String,
    /// The state reflects every entry up to and including this sequence number.
    pub seq: u64,
    /// The serialized state, opaque to the journal.
    pub state: Vec<u8>,
}

/// A checkpoint as its file holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointFile {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The log's last durable lsn when the checkpoint was saved (format
    /// version 2; `None` in a version 1 file). A log that ends before it
    /// after a restart has lost durable records.
    pub log_lsn: Option<u64>,
}

/// The body of a format version 1 checkpoint.
#[derive(Serialize, Deserialize)]
struct BodyV1<'a> {
    journal_id: u64,
    stream: &'a str,
    seq: u64,
    #[serde(with = "serde_bytes_compat")]
    state: &'a [u8],
}

/// The body of a format version 2 checkpoint: version 1 plus the log's
/// durable lsn at the save.
#[derive(Serialize, Deserialize)]
struct Body<'a> {
    journal_id: u64,
    stream: &'a str,
    seq: u64,
    log_lsn: u64,
    #[serde(with = "serde_bytes_compat")]
    state: &'a [u8],
}

/// Byte strings as one length-prefixed run (see `frame::as_bytes`).
mod serde_bytes_compat {
    pub fn serialize<S: serde::Serializer>(data: &&[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(data)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'de [u8], D::Error> {
        serde::Deserialize::deserialize(d)
    }
}

/// Why checkpoint bytes were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointDecodeError {
    /// Not a checkpoint file, or a version this code does not read.
    BadHeader,
    /// Length or checksum wrong: damaged at rest.
    BadChecksum,
    /// Written by another journal.
    ForeignJournal,
}

/// The bytes of a checkpoint file (format version 2). `log_lsn` is the
/// log's last durable lsn when it is saved.
pub fn encode_checkpoint(
    journal_id: u64,
    stream: &str,
    seq: u64,
    log_lsn: u64,
    state: &[u8],
) -> Vec<u8> {
    let body = postcard::to_allocvec(&Body {
        journal_id,
        stream,
        seq,
        log_lsn,
        state,
    })
    .expect("a body of strings, integers and bytes always encodes into a Vec");
    let mut out = Vec::with_capacity(CHECKPOINT_HEADER_BYTES + body.len());
    out.extend_from_slice(&CHECKPOINT_MAGIC);
    out.extend_from_slice(&super::frame::FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Parses checkpoint bytes written by journal `journal_id`.
pub fn decode_checkpoint(
    journal_id: u64,
    bytes: &[u8],
) -> Result<Checkpoint, CheckpointDecodeError> {
    decode_checkpoint_file(journal_id, bytes).map(|file| file.checkpoint)
}

/// Parses checkpoint bytes written by journal `journal_id`, with the log
/// position they record (format version 1 or 2).
pub fn decode_checkpoint_file(
    journal_id: u64,
    bytes: &[u8],
) -> Result<CheckpointFile, CheckpointDecodeError> {
    let header = bytes
        .get(..CHECKPOINT_HEADER_BYTES)
        .ok_or(CheckpointDecodeError::BadHeader)?;
    let version = u16::from_le_bytes([header[8], header[9]]);
    let readable = super::frame::FORMAT_VERSION_MIN_READ..=super::frame::FORMAT_VERSION;
    if header[..8] != CHECKPOINT_MAGIC || !readable.contains(&version) || header[10..12] != [0, 0] {
        return Err(CheckpointDecodeError::BadHeader);
    }
    let len = u32::from_le_bytes(header[12..16].try_into().expect("a 4-byte slice")) as usize;
    let crc = u32::from_le_bytes(header[16..20].try_into().expect("a 4-byte slice"));
    let body = &bytes[CHECKPOINT_HEADER_BYTES..];
    if body.len() != len || crc32fast::hash(body) != crc {
        return Err(CheckpointDecodeError::BadChecksum);
    }
    let body: Body<'_> = if version == 1 {
        let v1: BodyV1<'_> =
            postcard::from_bytes(body).map_err(|_| CheckpointDecodeError::BadChecksum)?;
        Body {
            journal_id: v1.journal_id,
            stream: v1.stream,
            seq: v1.seq,
            log_lsn: 0,
            state: v1.state,
        }
    } else {
        postcard::from_bytes(body).map_err(|_| CheckpointDecodeError::BadChecksum)?
    };
    if body.journal_id != journal_id {
        return Err(CheckpointDecodeError::ForeignJournal);
    }
    Ok(CheckpointFile {
        checkpoint: Checkpoint {
            stream: body.stream.to_string(),
            seq: body.seq,
            state: body.state.to_vec(),
        },
        log_lsn: (version >= 2).then_some(body.log_lsn),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_checkpoint_still_reads_without_a_log_position() {
        let body = postcard::to_allocvec(&BodyV1 {
            journal_id: 9,
            stream: "acct@n1",
            seq: 3,
            state: b"old",
        })
        .unwrap();
        let mut bytes = CHECKPOINT_MAGIC.to_vec();
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        let file = decode_checkpoint_file(9, &bytes).unwrap();
        assert_eq!((file.checkpoint.seq, file.log_lsn), (3, None));
        assert_eq!(file.checkpoint.state, b"old");
    }

    #[test]
    fn a_checkpoint_round_trips_and_damage_is_refused() {
        let bytes = encode_checkpoint(9, "acct@n1", 42, 77, b"balance=10");
        assert_eq!(decode_checkpoint_file(9, &bytes).unwrap().log_lsn, Some(77));
        let ckpt = decode_checkpoint(9, &bytes).unwrap();
        assert_eq!(
            (ckpt.stream.as_str(), ckpt.seq, &ckpt.state[..]),
            ("acct@n1", 42, &b"balance=10"[..])
        );
        assert_eq!(
            decode_checkpoint(8, &bytes),
            Err(CheckpointDecodeError::ForeignJournal)
        );
        for cut in 0..bytes.len() {
            assert!(decode_checkpoint(9, &bytes[..cut]).is_err(), "cut at {cut}");
        }
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_checkpoint(9, &flipped).is_err(), "bit {bit}");
        }
    }
}
