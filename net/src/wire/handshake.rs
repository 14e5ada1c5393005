//! The node handshake: both sides prove they hold the cluster secret
//! without sending it (HMAC-SHA256 challenge/response, mutual).
//!
//! ```text
//! dialer                                   acceptor
//!   Hello { node, listen, incarnation, nonce_d }  →
//!        ← Challenge { node, incarnation, nonce_a, proof_a }
//!   (checks proof_a)
//!   Proof { proof_d }                               →
//!                                      (checks proof_d)
//!        ← Welcome            (or Refused, then close)
//! ```
//!
//! Each proof is an HMAC, keyed by the secret, over a role label, both
//! nonces, both names and both incarnations. The role label keeps a proof
//! from being reflected back; fresh nonces on both sides keep a recorded
//! handshake from being replayed. Nonces come from the caller (the `Rng`
//! seam), so simulated handshakes are deterministic.

use super::message::Bytes32;
use super::{FrameReader, FrameWriter, WireError, WireMessage};
use crate::{ByteReader, ByteWriter};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::net::SocketAddr;

/// The shared secret every node of one cluster holds.
///
/// A node proves the current secret and accepts a peer's proof of the
/// current one or of any it was told to still accept
/// ([`ClusterSecret::also_accepting`]), so a cluster rotates its secret
/// without a moment when two nodes cannot talk: first every node accepts
/// the new secret too, then every node proves the new one (still accepting
/// the old), then the old is dropped.
#[derive(Clone)]
pub struct ClusterSecret {
    current: Vec<u8>,
    accepted: Vec<Vec<u8>>,
}

impl ClusterSecret {
    /// Fewest bytes a secret may have.
    pub const LEN_MIN: usize = 16;

    /// Wraps `bytes`; refuses a secret shorter than [`Self::LEN_MIN`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, WireError> {
        let bytes = bytes.into();
        if bytes.len() < Self::LEN_MIN {
            return Err(WireError::AuthFailed(format!(
                "a cluster secret needs at least {} bytes, got {}",
                Self::LEN_MIN,
                bytes.len()
            )));
        }
        Ok(ClusterSecret {
            current: bytes,
            accepted: Vec::new(),
        })
    }

    /// This secret, also accepting proofs of `other` (a secret being
    /// rotated in or out); at most [`Self::ACCEPTED_MAX`] others.
    pub fn also_accepting(mut self, other: &ClusterSecret) -> Result<Self, WireError> {
        if self.accepted.len() >= Self::ACCEPTED_MAX {
            return Err(WireError::AuthFailed(format!(
                "at most {} secrets besides the current one",
                Self::ACCEPTED_MAX
            )));
        }
        self.accepted.push(other.current.clone());
        Ok(self)
    }

    /// Most other secrets accepted at once (a rotation needs one).
    pub const ACCEPTED_MAX: usize = 4;

    fn mac_with(key: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; this cannot fail.
        Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length")
    }

    fn mac(&self) -> Hmac<Sha256> {
        Self::mac_with(&self.current)
    }

    /// Every secret whose proof is accepted, the current one first.
    fn accepted(&self) -> impl Iterator<Item = Hmac<Sha256>> + '_ {
        std::iter::once(&self.current)
            .chain(&self.accepted)
            .map(|key| Self::mac_with(key))
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

/// What a node says about itself in a handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Its node name.
    pub node: String,
    /// Where it accepts connections.
    pub listen: SocketAddr,
    /// Its run (a restarted node has a larger one).
    pub incarnation: u64,
}

/// The authenticated peer, as the handshake learned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its node name.
    pub node: String,
    /// Where it accepts connections; `None` when this node dialed it (the
    /// dialer knows the address already and the acceptor does not send it).
    pub listen: Option<SocketAddr>,
    /// Its run.
    pub incarnation: u64,
}

struct Transcript<'a> {
    dialer: (&'a str, u64, &'a Bytes32),
    acceptor: (&'a str, u64, &'a Bytes32),
}

impl Transcript<'_> {
    fn mac(&self, secret: &ClusterSecret, role: &[u8]) -> Hmac<Sha256> {
        self.mac_keyed(secret.mac(), role)
    }

    fn mac_keyed(&self, mut mac: Hmac<Sha256>, role: &[u8]) -> Hmac<Sha256> {
        mac.update(b"plexspaces/1 ");
        mac.update(role);
        for (name, incarnation, nonce) in [self.dialer, self.acceptor] {
            mac.update(&(name.len() as u64).to_le_bytes());
            mac.update(name.as_bytes());
            mac.update(&incarnation.to_le_bytes());
            mac.update(nonce);
        }
        mac
    }

    fn proof(&self, secret: &ClusterSecret, role: &[u8]) -> Bytes32 {
        self.mac(secret, role).finalize().into_bytes().into()
    }

    fn verify(&self, secret: &ClusterSecret, role: &[u8], proof: &Bytes32) -> bool {
        // Each comparison in constant time, so a forger learns nothing from
        // timing; every accepted secret is tried, whichever matches.
        secret
            .accepted()
            .map(|mac| self.mac_keyed(mac, role).verify_slice(proof).is_ok())
            .fold(false, |any, ok| any | ok)
    }
}

/// Tells the peer why (so its log says it too), then returns the error for
/// this side: `node` could not prove the secret.
async fn refuse<W: ByteWriter>(writer: &mut FrameWriter<W>, reason: &str, node: &str) -> WireError {
    let refused = WireMessage::Refused {
        reason: reason.into(),
    };
    // Best effort: the connection is closed right after either way.
    let _ = writer.send(&refused).await;
    WireError::AuthFailed(format!("node {node:?} could not prove the cluster secret"))
}

/// The largest frame body either side reads during the handshake. Its
/// messages are small (the largest, `Hello`, is a node name of at most 64
/// bytes, an address, a number and a nonce: about 130 bytes), so a
/// stranger who has proven nothing can make this node buffer no more than
/// this per frame, whatever limit the connection uses afterwards.
pub const HANDSHAKE_FRAME_LEN_MAX: u32 = 1024;

/// Lowers the reader's limit to [`HANDSHAKE_FRAME_LEN_MAX`] for the
/// handshake; returns the connection's own limit, to put back after.
fn lower_limit<R: ByteReader>(reader: &mut FrameReader<R>) -> u32 {
    let limit = reader.max();
    reader.set_max(limit.min(HANDSHAKE_FRAME_LEN_MAX));
    limit
}

const DIALER: &[u8] = b"dialer";
const ACCEPTOR: &[u8] = b"acceptor";

/// Runs the dialer's side on a fresh connection. `nonce` must be fresh
/// random bytes. Frames read before `Welcome` may have at most
/// [`HANDSHAKE_FRAME_LEN_MAX`] body bytes.
pub async fn dial<R: ByteReader, W: ByteWriter>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    secret: &ClusterSecret,
    me: &Identity,
    nonce: Bytes32,
) -> Result<Peer, WireError> {
    let limit = lower_limit(reader);
    let result = dial_limited(reader, writer, secret, me, nonce).await;
    reader.set_max(limit);
    result
}

async fn dial_limited<R: ByteReader, W: ByteWriter>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    secret: &ClusterSecret,
    me: &Identity,
    nonce: Bytes32,
) -> Result<Peer, WireError> {
    writer
        .send(&WireMessage::Hello {
            node: me.node.clone(),
            listen: me.listen,
            incarnation: me.incarnation,
            nonce,
        })
        .await?;
    let (node, incarnation, their_nonce, proof) = match reader.read_frame().await? {
        WireMessage::Challenge {
            node,
            incarnation,
            nonce,
            proof,
        } => (node, incarnation, nonce, proof),
        WireMessage::Refused { reason } => return Err(WireError::AuthFailed(reason)),
        other => {
            return Err(WireError::Unexpected {
                expected: "Challenge",
                got: other.kind(),
            });
        }
    };
    let transcript = Transcript {
        dialer: (&me.node, me.incarnation, &nonce),
        acceptor: (&node, incarnation, &their_nonce),
    };
    if !transcript.verify(secret, ACCEPTOR, &proof) {
        let why = "the acceptor's proof is wrong (different cluster secret?)";
        return Err(refuse(writer, why, &node).await);
    }
    let proof = transcript.proof(secret, DIALER);
    writer.send(&WireMessage::Proof { proof }).await?;
    match reader.read_frame().await? {
        WireMessage::Welcome => Ok(Peer {
            node,
            listen: None,
            incarnation,
        }),
        WireMessage::Refused { reason } => Err(WireError::AuthFailed(reason)),
        other => Err(WireError::Unexpected {
            expected: "Welcome",
            got: other.kind(),
        }),
    }
}

/// Runs the acceptor's side on a fresh connection. `nonce` must be fresh
/// random bytes. Frames read before `Welcome` is sent may have at most
/// [`HANDSHAKE_FRAME_LEN_MAX`] body bytes: a stranger cannot make this node
/// reserve the connection's own, larger limit.
pub async fn accept<R: ByteReader, W: ByteWriter>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    secret: &ClusterSecret,
    me: &Identity,
    nonce: Bytes32,
) -> Result<Peer, WireError> {
    let limit = lower_limit(reader);
    let result = accept_limited(reader, writer, secret, me, nonce).await;
    reader.set_max(limit);
    result
}

async fn accept_limited<R: ByteReader, W: ByteWriter>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    secret: &ClusterSecret,
    me: &Identity,
    nonce: Bytes32,
) -> Result<Peer, WireError> {
    let (node, listen, incarnation, their_nonce) = match reader.read_frame().await? {
        WireMessage::Hello {
            node,
            listen,
            incarnation,
            nonce,
        } => (node, listen, incarnation, nonce),
        other => {
            return Err(WireError::Unexpected {
                expected: "Hello",
                got: other.kind(),
            });
        }
    };
    let transcript = Transcript {
        dialer: (&node, incarnation, &their_nonce),
        acceptor: (&me.node, me.incarnation, &nonce),
    };
    writer
        .send(&WireMessage::Challenge {
            node: me.node.clone(),
            incarnation: me.incarnation,
            nonce,
            proof: transcript.proof(secret, ACCEPTOR),
        })
        .await?;
    let proof = match reader.read_frame().await? {
        WireMessage::Proof { proof } => proof,
        WireMessage::Refused { reason } => return Err(WireError::AuthFailed(reason)),
        other => {
            return Err(WireError::Unexpected {
                expected: "Proof",
                got: other.kind(),
            });
        }
    };
    if !transcript.verify(secret, DIALER, &proof) {
        return Err(refuse(writer, "authentication failed", &node).await);
    }
    writer.send(&WireMessage::Welcome).await?;
    Ok(Peer {
        node,
        listen: Some(listen),
        incarnation,
    })
}
