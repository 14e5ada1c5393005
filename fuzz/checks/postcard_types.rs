//! Postcard decoding of every type PlexSpaces journals or sends between
//! nodes: the input's first four bytes pick the type by the stable hash of
//! its name (`plexspaces::encoded_types::selector`: the type whose
//! selector is the next at or above them), the rest is decoded as it.
//! Besides the types of `plexspaces::encoded_types`, [`JOURNAL_RECORD`]
//! and [`JOURNAL_CHECKPOINT`] name the journal's own frame payload and
//! checkpoint body (given a valid checksum, so the decoder behind it is
//! reached). Shared by the fuzz target and by `cargo test` (which replays
//! the committed corpus and checks every type's sample values).
//!
//! For whatever decodes:
//! - decoding allocated no more than the frame limit at once, nor a length
//!   the input only claims;
//! - it used no more than the input;
//! - decode(encode(x)) == x, observed through the encoding (most of these
//!   types hold floats or JSON and have no `Eq`): x re-encodes, the
//!   encoding decodes whole and re-encodes to the same bytes;
//! - the canonical encoding is no longer than what was read (postcard
//!   accepts over-long varints; a re-encoding never grows), except for
//!   types carrying JSON text, which is re-spelled canonically.

use plexspaces::encoded_types::{self, EncodedTypes};
use plexspaces_net::wire::MAX_FRAME_LEN_DEFAULT;
use plexspaces_storage::journal::checkpoint::{
    CHECKPOINT_HEADER_BYTES, CHECKPOINT_MAGIC, decode_checkpoint_file, encode_checkpoint,
};
use plexspaces_storage::journal::frame::{FORMAT_VERSION, Record};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::OnceLock;

/// The journal frame's payload, [`Record`].
pub const JOURNAL_RECORD: &str = "journal::Record";
/// A checkpoint file's body (behind a valid header and checksum).
pub const JOURNAL_CHECKPOINT: &str = "journal::Checkpoint";

/// Every type an input can pick, by selector.
fn ring() -> &'static [(u32, &'static str)] {
    static RING: OnceLock<Vec<(u32, &'static str)>> = OnceLock::new();
    RING.get_or_init(|| {
        let mut ring: Vec<(u32, &'static str)> = encoded_types::names()
            .into_iter()
            .chain([JOURNAL_RECORD, JOURNAL_CHECKPOINT])
            .map(|name| (encoded_types::selector(name), name))
            .collect();
        ring.sort_unstable();
        for pair in ring.windows(2) {
            assert_ne!(
                pair[0].0, pair[1].0,
                "{} and {} share a selector",
                pair[0].1, pair[1].1
            );
        }
        ring
    })
}

/// The type the selector `at` picks: the next at or above it, wrapping.
pub fn picked(at: u32) -> &'static str {
    let ring = ring();
    let next = ring.partition_point(|&(selector, _)| selector < at);
    ring[next % ring.len()].1
}

/// Checks `bytes` (first four: the type) and returns the name of the type
/// it picked and whether the rest decoded as it.
pub fn check(bytes: &[u8]) -> Option<(&'static str, bool)> {
    let (head, body) = bytes.split_first_chunk::<4>()?;
    // These values arrive in frames: nothing larger reaches a decoder.
    if body.len() > MAX_FRAME_LEN_DEFAULT as usize {
        return None;
    }
    match picked(u32::from_le_bytes(*head)) {
        JOURNAL_RECORD => Some((JOURNAL_RECORD, record_round_trips(body))),
        JOURNAL_CHECKPOINT => Some((JOURNAL_CHECKPOINT, checkpoint_round_trips(body))),
        want => {
            let mut pick = Pick {
                want,
                body,
                outcome: None,
            };
            encoded_types::visit_all(&mut pick);
            pick.outcome
        }
    }
}

struct Pick<'a> {
    want: &'static str,
    body: &'a [u8],
    outcome: Option<(&'static str, bool)>,
}

impl EncodedTypes for Pick<'_> {
    fn visit<T: Serialize + DeserializeOwned>(&mut self, name: &'static str, _: fn() -> Vec<T>) {
        if name == self.want {
            self.outcome = Some((name, decodes_and_round_trips::<T>(name, self.body)));
        }
    }
}

/// Types whose encoding holds JSON text (re-spelled canonically, so a
/// re-encoding may be longer than the input it came from).
fn carries_json(name: &str) -> bool {
    name == "workflow::Json" || name == "workflow::DeclarativeInput"
}

fn encode<T: Serialize>(name: &str, value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).unwrap_or_else(|e| panic!("{name}: a decoded value encodes: {e}"))
}

/// Decodes `body` as `T`; if it decodes, checks the properties above.
fn decodes_and_round_trips<T: Serialize + DeserializeOwned>(name: &str, body: &[u8]) -> bool {
    let limit = crate::alloc_limit::decode_limit(MAX_FRAME_LEN_DEFAULT as usize, body.len());
    let decoded = crate::alloc_limit::within(limit, name, || postcard::take_from_bytes::<T>(body));
    let Ok((value, rest)) = decoded else {
        return false;
    };
    let used = body.len() - rest.len();
    let once = encode(name, &value);
    if !carries_json(name) {
        assert!(
            once.len() <= used,
            "{name}: re-encoding grew from {used} to {} bytes",
            once.len()
        );
    }
    assert_encoding_round_trips::<T>(name, &once);
    true
}

/// `encoding` (a value's canonical encoding) decodes whole, to a value
/// that encodes to the same bytes.
pub fn assert_encoding_round_trips<T: Serialize + DeserializeOwned>(name: &str, encoding: &[u8]) {
    let (again, rest) = postcard::take_from_bytes::<T>(encoding)
        .unwrap_or_else(|e| panic!("{name}: an encoding decodes: {e}"));
    assert!(
        rest.is_empty(),
        "{name}: decoding left {} bytes",
        rest.len()
    );
    assert_eq!(
        encode(name, &again),
        encoding,
        "{name}: decode(encode(x)) != x"
    );
}

/// `body` as a journal frame's payload: a record borrowing from it.
fn record_round_trips(body: &[u8]) -> bool {
    let name = JOURNAL_RECORD;
    let limit = crate::alloc_limit::decode_limit(MAX_FRAME_LEN_DEFAULT as usize, body.len());
    let decoded = crate::alloc_limit::within(limit, name, || {
        postcard::take_from_bytes::<Record<'_>>(body)
    });
    let Ok((record, rest)) = decoded else {
        return false;
    };
    let once = encode(name, &record);
    assert!(
        once.len() <= body.len() - rest.len(),
        "{name}: re-encoding grew"
    );
    let (again, left) = postcard::take_from_bytes::<Record<'_>>(&once)
        .unwrap_or_else(|e| panic!("{name}: an encoding decodes: {e}"));
    assert!(
        left.is_empty(),
        "{name}: decoding left {} bytes",
        left.len()
    );
    assert_eq!(again, record, "{name}: decode(encode(x)) != x");
    true
}

/// `body` as a checkpoint file's body, behind a header with the right
/// magic, version, length and checksum, for the journal named by its
/// first field.
fn checkpoint_round_trips(body: &[u8]) -> bool {
    let name = JOURNAL_CHECKPOINT;
    let Ok((journal_id, _)) = postcard::take_from_bytes::<u64>(body) else {
        return false;
    };
    let mut file = Vec::with_capacity(CHECKPOINT_HEADER_BYTES + body.len());
    file.extend_from_slice(&CHECKPOINT_MAGIC);
    file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(&[0, 0]);
    file.extend_from_slice(&(body.len() as u32).to_le_bytes());
    file.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    file.extend_from_slice(body);
    let limit = crate::alloc_limit::decode_limit(MAX_FRAME_LEN_DEFAULT as usize, file.len());
    let decoded =
        crate::alloc_limit::within(limit, name, || decode_checkpoint_file(journal_id, &file));
    let Ok(decoded) = decoded else {
        return false;
    };
    let checkpoint = &decoded.checkpoint;
    let log_lsn = decoded
        .log_lsn
        .expect("a version 2 checkpoint has its log position");
    let again = encode_checkpoint(
        journal_id,
        &checkpoint.stream,
        checkpoint.seq,
        log_lsn,
        &checkpoint.state,
    );
    assert!(again.len() <= file.len(), "{name}: re-encoding grew");
    assert_eq!(
        decode_checkpoint_file(journal_id, &again).as_ref(),
        Ok(&decoded),
        "{name}: decode(encode(x)) != x"
    );
    true
}
