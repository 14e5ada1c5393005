//! The wire protocol between nodes: length-prefixed, versioned postcard
//! frames with a hard size limit, and an authenticating handshake.
//! `net/PROTOCOL.md` documents the bytes.
//!
//! This module knows frames and messages, not actors: the runtime's
//! distribution layer decides what the messages mean.

mod admission;
mod error;
mod frame;
pub mod handshake;
mod journal;
mod message;

pub use admission::{Admission, AdmissionLimits, AdmissionRefused, Admitted};
pub use error::WireError;
pub use frame::{
    FrameReader, FrameWriter, HEADER_LEN, MAX_FRAME_LEN_DEFAULT, PROTOCOL_VERSION,
    READ_AHEAD_BYTES, decode_frame, encode_frame,
};
pub use handshake::{ClusterSecret, HANDSHAKE_FRAME_LEN_MAX, Identity, Peer};
pub use journal::{JournalOp, JournalOutcome};
pub use message::{Bytes32, ExitNotice, Headers, Member, ReplyOutcome, WireMessage};
