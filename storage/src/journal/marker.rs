//! The journal's marker file, `JOURNAL`: written once the first segment
//! is durable, it says "this directory holds a journal". Compaction always
//! keeps one segment, so a directory with the marker and no segment has
//! lost its log, and opening it must not quietly start a new one.

/// The marker's file name.
pub const MARKER_NAME: &str = "JOURNAL";
/// Identifies a marker file's first bytes.
pub const MARKER_MAGIC: [u8; 8] = *b"PLXJMARK";
/// Bytes of a marker file.
pub const MARKER_BYTES: usize = 24;

/// The marker's bytes: magic, format version, reserved zeros, the journal
/// id, and a CRC-32 of the 20 bytes before it. Only the file's existence
/// is relied on; the content tells tools whose journal it is.
pub fn encode_marker(journal_id: u64) -> [u8; MARKER_BYTES] {
    let mut out = [0u8; MARKER_BYTES];
    out[0..8].copy_from_slice(&MARKER_MAGIC);
    out[8..10].copy_from_slice(&super::frame::FORMAT_VERSION.to_le_bytes());
    out[12..20].copy_from_slice(&journal_id.to_le_bytes());
    let crc = crc32fast::hash(&out[0..20]);
    out[20..24].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The journal id a marker names, if its bytes check out.
pub fn decode_marker(bytes: &[u8]) -> Option<u64> {
    let bytes = bytes.get(..MARKER_BYTES)?;
    let crc = u32::from_le_bytes(bytes[20..24].try_into().expect("a 4-byte slice"));
    let good = bytes[0..8] == MARKER_MAGIC && crc32fast::hash(&bytes[0..20]) == crc;
    good.then(|| u64::from_le_bytes(bytes[12..20].try_into().expect("an 8-byte slice")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_round_trips_and_damage_is_seen() {
        let bytes = encode_marker(0xfeed);
        assert_eq!(decode_marker(&bytes), Some(0xfeed));
        for bit in 0..MARKER_BYTES * 8 {
            let mut flipped = bytes;
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode_marker(&flipped), None, "bit {bit}");
        }
        assert_eq!(decode_marker(&bytes[..23]), None);
    }
}
