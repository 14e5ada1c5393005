//! Postcard decoding of every type PlexSpaces journals or sends between
//! nodes (`plexspaces::encoded_types`): the input's first byte picks the
//! type, the rest is decoded as it. Shared by the fuzz target and by
//! `cargo test` (which replays the committed corpus and checks every
//! type's sample values).
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
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Checks `bytes` (first byte: the type) and returns the name of the type
/// it picked and whether the rest decoded as it.
pub fn check(bytes: &[u8]) -> Option<(&'static str, bool)> {
    let (&selector, body) = bytes.split_first()?;
    // These values arrive in frames: nothing larger reaches a decoder.
    if body.len() > MAX_FRAME_LEN_DEFAULT as usize {
        return None;
    }
    let mut pick = Pick {
        want: usize::from(selector) % encoded_types::count(),
        seen: 0,
        body,
        outcome: None,
    };
    encoded_types::visit_all(&mut pick);
    pick.outcome
}

struct Pick<'a> {
    want: usize,
    seen: usize,
    body: &'a [u8],
    outcome: Option<(&'static str, bool)>,
}

impl EncodedTypes for Pick<'_> {
    fn visit<T: Serialize + DeserializeOwned>(&mut self, name: &'static str, _: fn() -> Vec<T>) {
        if self.seen == self.want {
            self.outcome = Some((name, decodes_and_round_trips::<T>(name, self.body)));
        }
        self.seen += 1;
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
