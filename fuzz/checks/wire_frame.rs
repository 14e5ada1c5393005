//! The properties of the wire frame decoder on arbitrary bytes, shared by
//! the fuzz target and by `cargo test` (which replays the committed corpus).

use plexspaces_net::wire::{HEADER_LEN, WireError, decode_frame, encode_frame};

/// The frame limit the checks use (small, so lying lengths are common).
pub const MAX: u32 = 1 << 16;

/// Decodes frames back to back from `bytes` and checks each: it lies inside
/// the input, its body is within the limit, and it re-encodes to exactly
/// the bytes it was decoded from (one meaning per accepted frame). Returns
/// how many frames decoded and how the input ended.
pub fn check(bytes: &[u8]) -> (usize, Option<WireError>) {
    let mut rest = bytes;
    let mut frames = 0;
    loop {
        match decode_frame(rest, MAX) {
            Ok(Some((msg, used))) => {
                assert!(used <= rest.len(), "a frame past the input");
                assert!(used >= HEADER_LEN && used - HEADER_LEN <= MAX as usize);
                let mut again = Vec::new();
                encode_frame(&msg, MAX, &mut again).expect("what decoded re-encodes");
                assert_eq!(&again[..], &rest[..used], "a frame with two encodings");
                rest = &rest[used..];
                frames += 1;
            }
            // Needs more bytes: a prefix of a frame is never misread.
            Ok(None) => return (frames, None),
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        WireError::Oversized { .. }
                            | WireError::UnsupportedVersion(_)
                            | WireError::Malformed(_)
                    ),
                    "unexpected error from bytes: {e}"
                );
                return (frames, Some(e));
            }
        }
    }
}
