//! Typed failures of the wire protocol.

use crate::NetError;
use std::fmt;

/// Why a frame could not be read or written, or a handshake failed.
///
/// Every variant but [`WireError::Net`] means the peer sent something this
/// node will not accept; the connection that carried it is closed and
/// nothing else is affected.
#[derive(Debug)]
#[non_exhaustive]
pub enum WireError {
    /// The connection failed underneath.
    Net(NetError),
    /// The stream ended cleanly between frames (the peer closed).
    Closed,
    /// The stream ended inside a frame: `got` of `expected` bytes arrived.
    Truncated {
        /// Bytes of the frame (header included) that arrived.
        got: usize,
        /// Bytes the frame should have had.
        expected: usize,
    },
    /// A frame announced more bytes than the limit; nothing was allocated.
    Oversized {
        /// The length the header announced.
        len: u64,
        /// The limit in force.
        max: u32,
    },
    /// A frame of a protocol version this node does not speak.
    UnsupportedVersion(u8),
    /// The frame's body is not a valid message (postcard refused it, or
    /// bytes were left over after it).
    Malformed(String),
    /// A message arrived that the protocol does not allow at this point
    /// (a `Tell` before the handshake, say).
    Unexpected {
        /// What the protocol expected.
        expected: &'static str,
        /// What came instead.
        got: &'static str,
    },
    /// The handshake failed: wrong cluster secret, bad proof, or refused.
    AuthFailed(String),
    /// TLS refused the peer: its certificate (another CA, expired, not for
    /// the node it claims to be), plaintext where TLS is required, or a
    /// TLS protocol failure.
    Tls(crate::tls::TlsError),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Net(e) => write!(f, "connection failed: {e}"),
            WireError::Closed => f.write_str("the peer closed the connection"),
            WireError::Truncated { got, expected } => {
                write!(f, "truncated frame: {got} of {expected} bytes")
            }
            WireError::Oversized { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max}")
            }
            WireError::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v}"),
            WireError::Malformed(why) => write!(f, "malformed frame: {why}"),
            WireError::Unexpected { expected, got } => {
                write!(f, "protocol violation: expected {expected}, got {got}")
            }
            WireError::AuthFailed(why) => write!(f, "handshake failed: {why}"),
            WireError::Tls(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for WireError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WireError::Net(e) => Some(e),
            WireError::Tls(e) => Some(e),
            _ => None,
        }
    }
}

impl From<NetError> for WireError {
    fn from(e: NetError) -> Self {
        WireError::Net(e)
    }
}

impl From<crate::tls::TlsError> for WireError {
    fn from(e: crate::tls::TlsError) -> Self {
        WireError::Tls(e)
    }
}
