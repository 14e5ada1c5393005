//! TLS 1.3 with mutual authentication over the `Net` seam's byte streams.
//!
//! [`TlsMaterial`] is what an operator configures (the CA bundle, the
//! node's certificate and key, PEM); [`TlsContext`] is the rustls
//! configuration built from it and the node's seams; [`connect`] and
//! [`accept`] run the handshake over a connection's two halves and return
//! [`TlsReader`] and [`TlsWriter`], which are themselves a `ByteReader`
//! and a `ByteWriter`, so the framing and everything above it run
//! unchanged over TLS, on TCP and in the simulator alike.

mod config;
mod error;
mod https;
mod seam_crypto;
mod stream;
#[cfg(feature = "test-pki")]
pub mod test_pki;

pub use config::{TlsContext, TlsMaterial, WallClock};
pub use error::TlsError;
pub use https::{ServiceTls, ServiceTlsServer};
pub use rustls::pki_types::CertificateDer;
pub use seam_crypto::RandomSource;
pub use stream::{TlsReader, TlsStreams, TlsWriter, accept, connect};
