//! A bound on connections that have not authenticated yet.
//!
//! Until a peer has proven the cluster secret it is a stranger, and each of
//! its connections costs a task, a buffer and a handshake deadline. Without
//! a bound, a stranger opening connections faster than handshakes time out
//! can make a node hold any number of them. [`Admission`] counts the
//! connections in their handshake, in total and per source address;
//! one more than either bound is closed before a byte of it is read.
//! Authenticated connections are not counted: a peer that finished its
//! handshake has left the stranger's budget.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

/// The bounds on connections in their handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Most connections in their handshake at once, from anyone.
    pub handshakes_max: usize,
    /// Most connections in their handshake at once from one IP address.
    pub handshakes_per_source_max: usize,
}

impl Default for AdmissionLimits {
    /// 256 in all, 32 per address: far more than a cluster's nodes dial at
    /// once (one connection each, re-dialed with backoff), far less than
    /// what hurts a node (each costs a read-ahead buffer of 16 KiB).
    fn default() -> Self {
        AdmissionLimits {
            handshakes_max: 256,
            handshakes_per_source_max: 32,
        }
    }
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdmissionRefused {
    /// [`AdmissionLimits::handshakes_max`] connections are in their handshake.
    TooManyHandshakes,
    /// [`AdmissionLimits::handshakes_per_source_max`] connections from this
    /// address are in their handshake.
    TooManyFromSource(IpAddr),
}

impl std::fmt::Display for AdmissionRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdmissionRefused::TooManyHandshakes => {
                f.write_str("too many connections in their handshake")
            }
            AdmissionRefused::TooManyFromSource(ip) => {
                write!(f, "too many connections from {ip} in their handshake")
            }
        }
    }
}

impl std::error::Error for AdmissionRefused {}

#[derive(Default)]
struct Counts {
    total: usize,
    per_source: BTreeMap<IpAddr, usize>,
}

/// Counts connections in their handshake against [`AdmissionLimits`].
/// Cheap to clone; clones share the counts.
#[derive(Clone)]
pub struct Admission {
    limits: AdmissionLimits,
    counts: Arc<Mutex<Counts>>,
}

impl Admission {
    /// An empty count under `limits`.
    pub fn new(limits: AdmissionLimits) -> Self {
        Admission {
            limits,
            counts: Arc::default(),
        }
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // The workspace's poisoned-lock policy (`plexspaces_storage::sync`,
        // which this crate does not depend on): take the guard and go on.
        // The counts are plain integers updated in one step each: a panic
        // elsewhere cannot leave them half-changed.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `peer` into its handshake, or refuses it.
    /// The returned ticket holds its place until it is dropped (handshake
    /// over, whichever way it ended).
    pub fn admit(&self, peer: SocketAddr) -> Result<Admitted, AdmissionRefused> {
        let source = peer.ip();
        let mut counts = self.counts();
        if counts.total >= self.limits.handshakes_max {
            return Err(AdmissionRefused::TooManyHandshakes);
        }
        let from_source = counts.per_source.get(&source).copied().unwrap_or(0);
        if from_source >= self.limits.handshakes_per_source_max {
            return Err(AdmissionRefused::TooManyFromSource(source));
        }
        counts.total += 1;
        counts.per_source.insert(source, from_source + 1);
        Ok(Admitted {
            admission: self.clone(),
            source,
        })
    }

    /// Connections in their handshake now.
    pub fn in_handshake(&self) -> usize {
        self.counts().total
    }
}

/// A connection's place among those in their handshake; dropping it frees
/// the place.
pub struct Admitted {
    admission: Admission,
    source: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.admission.counts();
        let from_source = counts
            .per_source
            .get_mut(&self.source)
            .expect("an admitted connection's source is counted until it leaves");
        *from_source -= 1;
        if *from_source == 0 {
            counts.per_source.remove(&self.source);
        }
        counts.total -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((ip, port))
    }

    #[test]
    fn admits_up_to_each_bound_and_frees_places_on_drop() {
        let admission = Admission::new(AdmissionLimits {
            handshakes_max: 3,
            handshakes_per_source_max: 2,
        });
        let a1 = admission.admit(addr([10, 0, 0, 1], 1)).unwrap();
        let _a2 = admission.admit(addr([10, 0, 0, 1], 2)).unwrap();
        assert_eq!(
            admission.admit(addr([10, 0, 0, 1], 3)).err(),
            Some(AdmissionRefused::TooManyFromSource([10, 0, 0, 1].into()))
        );
        let _b1 = admission.admit(addr([10, 0, 0, 2], 1)).unwrap();
        assert_eq!(
            admission.admit(addr([10, 0, 0, 3], 1)).err(),
            Some(AdmissionRefused::TooManyHandshakes)
        );
        assert_eq!(admission.in_handshake(), 3);
        drop(a1);
        assert_eq!(admission.in_handshake(), 2);
        let _a3 = admission.admit(addr([10, 0, 0, 1], 4)).unwrap();
        assert_eq!(admission.in_handshake(), 3);
    }
}
