//! postcard encoding of the values the runtime journals and sends: the one
//! place where a value that cannot be encoded, or bytes that do not decode,
//! become typed errors. Nothing else in the runtime calls postcard.
//!
//! Users' values (messages, states, replies, side-effect and step results,
//! workflow inputs and signals) go through [`encode`]: postcard refuses
//! some of them (a sequence or map serialized without a known length, a
//! type whose own `Serialize` fails), and the caller gets an
//! [`EncodeError`] instead of a panic. The runtime's own records hold only
//! strings, integers, byte vectors and containers of known length, which
//! postcard always encodes; [`encode_own`] states that invariant once.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;

/// A value could not be encoded (postcard): it serializes a sequence or
/// map without a known length, or its own `Serialize` implementation
/// failed. Nothing of the operation that needed it was journaled or sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError {
    /// What the value was for (a message, a side effect's result, ...).
    pub what: &'static str,
    /// Its Rust type.
    pub type_name: &'static str,
    /// What postcard said.
    pub reason: String,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} ({}) cannot be encoded: {}",
            self.what, self.type_name, self.reason
        )
    }
}

impl std::error::Error for EncodeError {}

/// Journaled or received bytes did not decode as the type the code
/// expects: damage, or a type changed under data written by older code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// What the bytes were (a message, a checkpoint, a journal entry, ...).
    pub what: String,
    /// The Rust type they should have decoded as.
    pub type_name: &'static str,
    /// What postcard said.
    pub reason: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} does not decode as {}: {}",
            self.what, self.type_name, self.reason
        )
    }
}

impl std::error::Error for DecodeError {}

/// Decodes `bytes` (a `what`) as a `T`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, DecodeError> {
    postcard::from_bytes(bytes).map_err(|e| DecodeError {
        what: what.to_string(),
        type_name: std::any::type_name::<T>(),
        reason: e.to_string(),
    })
}

/// Receives each type the runtime encodes, in turn, with sample values:
/// every module's `encoded_types` (built for tests and the `fuzzing`
/// feature) visits its own, and [`crate::encoded_types`] lists them all
/// for the decoding fuzz target. It lives here, a leaf, so the modules
/// that list their types depend on nothing above them.
#[cfg(any(test, feature = "fuzzing"))]
pub trait EncodedTypes {
    /// `T` is encoded under `name`; `samples` makes typical values of it
    /// (only when asked: the fuzz target visits every type per input).
    fn visit<T: Serialize + DeserializeOwned>(
        &mut self,
        name: &'static str,
        samples: fn() -> Vec<T>,
    );
}

/// Encodes a user's `value`, used as `what`.
pub(crate) fn encode<T: Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>, EncodeError> {
    postcard::to_allocvec(value).map_err(|e| EncodeError {
        what,
        type_name: std::any::type_name::<T>(),
        reason: e.to_string(),
    })
}

/// Encodes one of the runtime's own records.
pub(crate) fn encode_own<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect(
        "the runtime's records hold strings, integers, bytes and containers of known length, \
         which postcard always encodes",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sequence serialized without a length: postcard cannot write it.
    struct Unsized;

    impl Serialize for Unsized {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let mut seq = s.serialize_seq(None)?;
            seq.serialize_element(&1u8)?;
            seq.end()
        }
    }

    #[test]
    fn an_unencodable_value_is_a_typed_error() {
        let e = encode(&Unsized, "message").unwrap_err();
        assert_eq!(e.what, "message");
        assert!(e.type_name.ends_with("Unsized"), "{}", e.type_name);
        assert!(e.to_string().contains("cannot be encoded"));
        assert_eq!(encode(&7u8, "message").unwrap(), [7]);
    }
}
