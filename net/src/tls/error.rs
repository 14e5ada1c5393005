//! Typed TLS failures.

use crate::NetError;
use std::fmt;

/// Why TLS could not be set up or a TLS connection was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// The configuration is unusable: a file that is not PEM, no
    /// certificate, no key, a key that does not match, a certificate that
    /// does not chain to the configured CA.
    Config(String),
    /// The TLS handshake failed: the peer's certificate is from another CA,
    /// expired or not yet valid, the peer spoke plaintext, or sent an alert.
    Handshake(String),
    /// The peer's certificate does not name the node it claims to be.
    WrongPeer {
        /// The node name the peer claimed.
        claimed: String,
        /// Why its certificate does not match.
        why: String,
    },
    /// The connection failed underneath.
    Net(NetError),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Config(why) => write!(f, "bad TLS configuration: {why}"),
            TlsError::Handshake(why) => write!(f, "TLS handshake failed: {why}"),
            TlsError::WrongPeer { claimed, why } => {
                write!(
                    f,
                    "the peer's certificate is not for node {claimed:?}: {why}"
                )
            }
            TlsError::Net(e) => write!(f, "TLS connection failed: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Net(e) => Some(e),
            _ => None,
        }
    }
}

impl From<NetError> for TlsError {
    fn from(e: NetError) -> Self {
        TlsError::Net(e)
    }
}
