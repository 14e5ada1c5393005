//! The properties of the wire frame decoder on arbitrary bytes, shared by
//! the fuzz target and by `cargo test` (which replays the committed corpus).

use plexspaces_net::wire::{
    HEADER_LEN, MAX_FRAME_LEN_DEFAULT, WireError, decode_frame, encode_frame,
};

/// The frame limit the checks use (small, so lying lengths are common).
pub const MAX: u32 = 1 << 16;

/// Decodes frames back to back from `bytes` and checks each: it lies inside
/// the input, its body is within the limit, decoding allocated no more than
/// the production frame limit nor more than the input's worth (see
/// `alloc_limit::decode_limit`), and
/// decode(encode(msg)) == msg.
/// (Not byte equality: postcard accepts over-long varints, so one message
/// may arrive in several spellings; the fuzzer found one. Each still has
/// one meaning.) Returns how many frames decoded and how the input ended.
pub fn check(bytes: &[u8]) -> (usize, Option<WireError>) {
    let mut rest = bytes;
    let mut frames = 0;
    loop {
        let limit = crate::alloc_limit::decode_limit(MAX_FRAME_LEN_DEFAULT as usize, rest.len());
        match crate::alloc_limit::within(limit, "wire frame decoding", || decode_frame(rest, MAX)) {
            Ok(Some((msg, used))) => {
                assert!(used <= rest.len(), "a frame past the input");
                assert!(used >= HEADER_LEN && used - HEADER_LEN <= MAX as usize);
                let mut again = Vec::new();
                encode_frame(&msg, MAX, &mut again).expect("what decoded re-encodes");
                assert!(
                    again.len() <= used,
                    "the canonical spelling is the shortest"
                );
                let (back, len) = decode_frame(&again, MAX)
                    .expect("a re-encoded frame decodes")
                    .expect("a re-encoded frame is whole");
                assert_eq!((back, len), (msg, again.len()), "decode(encode(x)) == x");
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
