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

#[derive(Serialize, Deserialize)]
struct Body<'a> {
    journal_id: u64,
    stream: &'a str,
    seq: u64,
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
pub enum CheckpointDecodeError {
    /// Not a checkpoint file, or a version this code does not read.
    BadHeader,
    /// Length or checksum wrong: damaged at rest.
    BadChecksum,
    /// Written by another journal.
    ForeignJournal,
}

/// The bytes of a checkpoint file.
pub fn encode_checkpoint(journal_id: u64, stream: &str, seq: u64, state: &[u8]) -> Vec<u8> {
    let body = postcard::to_allocvec(&Body {
        journal_id,
        stream,
        seq,
        state,
    })
    .expect("encoding into a Vec cannot fail");
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
    let header = bytes
        .get(..CHECKPOINT_HEADER_BYTES)
        .ok_or(CheckpointDecodeError::BadHeader)?;
    let version = u16::from_le_bytes([header[8], header[9]]);
    if header[..8] != CHECKPOINT_MAGIC
        || version != super::frame::FORMAT_VERSION
        || header[10..12] != [0, 0]
    {
        return Err(CheckpointDecodeError::BadHeader);
    }
    let len = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[16..20].try_into().expect("4 bytes"));
    let body = &bytes[CHECKPOINT_HEADER_BYTES..];
    if body.len() != len || crc32fast::hash(body) != crc {
        return Err(CheckpointDecodeError::BadChecksum);
    }
    let body: Body<'_> =
        postcard::from_bytes(body).map_err(|_| CheckpointDecodeError::BadChecksum)?;
    if body.journal_id != journal_id {
        return Err(CheckpointDecodeError::ForeignJournal);
    }
    Ok(Checkpoint {
        stream: body.stream.to_string(),
        seq: body.seq,
        state: body.state.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_and_damage_is_refused() {
        let bytes = encode_checkpoint(9, "acct@n1", 42, b"balance=10");
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
