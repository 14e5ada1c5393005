//! What a durable actor writes to its journal stream.

use super::DurabilityError;
use serde::{Deserialize, Serialize};

/// One journal entry of a durable actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Entry {
    /// A request was accepted.
    Message {
        /// Its idempotency key.
        key: String,
        /// The request, postcard-encoded.
        msg: Vec<u8>,
    },
    /// A side effect ran and gave this result.
    Effect {
        /// The name the handler gave it.
        name: String,
        /// The result, postcard-encoded.
        value: Vec<u8>,
    },
    /// The request was handled; its reply (Ok value or error text).
    Reply {
        /// The request's idempotency key.
        key: String,
        /// `Result<Reply, String>`, postcard-encoded.
        reply: Vec<u8>,
    },
    /// A side effect ran, and its result could not be encoded: replay gives
    /// the handler the same error instead of running the effect again.
    Unencodable {
        /// The name the handler gave it.
        name: String,
        /// Why it could not be encoded.
        error: String,
    },
}

impl Entry {
    pub(crate) fn encode(&self) -> Vec<u8> {
        crate::codec::encode_own(self)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DurabilityError> {
        decode(bytes, "journal entry")
    }
}

/// A durable actor's journal entry as a tool shows it (`plexspaces
/// journal dump`): what it is and its key or effect name; the payloads are
/// the actor's own types, shown by size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum EntryDescription {
    /// A request was accepted under idempotency key `key`.
    Message {
        /// Its idempotency key.
        key: String,
        /// The encoded request's size.
        bytes: usize,
    },
    /// Side effect `name` ran.
    Effect {
        /// The name the handler gave it.
        name: String,
        /// The encoded result's size.
        bytes: usize,
    },
    /// The request under `key` was answered.
    Reply {
        /// The request's idempotency key.
        key: String,
        /// Whether the handler answered `Ok` (`None`: not readable).
        ok: Option<bool>,
        /// The encoded reply's size.
        bytes: usize,
    },
    /// Side effect `name` ran and its result could not be encoded.
    Unencodable {
        /// The name the handler gave it.
        name: String,
        /// Why.
        error: String,
    },
}

/// Reads `bytes` as a durable actor's journal entry, if they are one.
pub fn describe_entry(bytes: &[u8]) -> Option<EntryDescription> {
    Some(match Entry::decode(bytes).ok()? {
        Entry::Message { key, msg } => EntryDescription::Message {
            key,
            bytes: msg.len(),
        },
        Entry::Effect { name, value } => EntryDescription::Effect {
            name,
            bytes: value.len(),
        },
        Entry::Reply { key, reply } => EntryDescription::Reply {
            key,
            // A `Result` encodes its variant first: 0 is Ok, 1 is Err.
            ok: reply.first().and_then(|tag| match tag {
                0 => Some(true),
                1 => Some(false),
                _ => None,
            }),
            bytes: reply.len(),
        },
        Entry::Unencodable { name, error } => EntryDescription::Unencodable { name, error },
    })
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, DurabilityError> {
    crate::codec::decode(bytes, what).map_err(DurabilityError::Undecodable)
}

/// The journal entry, for [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    use crate::codec::encode_own;
    v.visit("durability::Entry", || {
        vec![
            Entry::Message {
                key: "transfer-17".into(),
                msg: encode_own(&("debit", 40u64)),
            },
            Entry::Effect {
                name: "charge".into(),
                value: encode_own(&Some(12u32)),
            },
            Entry::Reply {
                key: "transfer-17".into(),
                reply: encode_own(&Ok::<u64, String>(60)),
            },
            Entry::Unencodable {
                name: "lookup".into(),
                error: "the side effect's result (Rates) cannot be encoded".into(),
            },
        ]
    });
}
