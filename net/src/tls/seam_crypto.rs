//! rustls's randomness, drawn from the node's `Rng` seam.
//!
//! A rustls [`CryptoProvider`] names its random source and key exchange
//! groups as `&'static` items, while each node has its own `Rng` (seeded in
//! the simulator, the OS in production). So the provider's items here are
//! statics that draw from *the random source in scope*: the TLS driver
//! ([`super::stream`]) puts its node's source in scope, for the current
//! thread only, around each synchronous rustls call that may draw
//! (building a connection, processing received records) and takes it out
//! again before it returns. Nothing stays set between calls, so no state
//! outlives a call (statics persist across seeds in one simulator process).
//!
//! A draw with no source in scope is refused (`GetRandomFailed`): that is a
//! bug in the driver, and failing the handshake shows it where falling back
//! to the OS would silently break a seed's replay.
//!
//! The key exchange is X25519 from `x25519-dalek`, whose secret is built
//! from drawn bytes (ring's own X25519 draws from the OS, not injectable).
//! Ciphers, hashes and signature checks are ring's; signing with an
//! Ed25519 key is deterministic, signing with ECDSA draws from the OS
//! inside ring (use Ed25519 node keys where a run must replay exactly).

use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, SecureRandom, SharedSecret,
    SupportedKxGroup,
};
use rustls::{Error, NamedGroup, PeerMisbehaved};
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

/// Fills a buffer with random bytes: the node's `Rng` seam.
pub type RandomSource = Arc<dyn Fn(&mut [u8]) + Send + Sync>;

thread_local! {
    static IN_SCOPE: RefCell<Option<RandomSource>> = const { RefCell::new(None) };
}

/// Runs `f` with `source` as rustls's random source on this thread.
pub(crate) fn with_random<T>(source: &RandomSource, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<RandomSource>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            IN_SCOPE.with(|slot| *slot.borrow_mut() = previous);
        }
    }
    let previous = IN_SCOPE.with(|slot| slot.borrow_mut().replace(source.clone()));
    let _restore = Restore(previous);
    f()
}

fn draw(buf: &mut [u8]) -> Result<(), GetRandomFailed> {
    IN_SCOPE.with(|slot| match slot.borrow().as_ref() {
        Some(source) => {
            source(buf);
            Ok(())
        }
        None => Err(GetRandomFailed),
    })
}

/// The random source in scope.
#[derive(Debug)]
struct ScopedRandom;

impl SecureRandom for ScopedRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        draw(buf)
    }
}

/// X25519 with its secret drawn from the random source in scope.
#[derive(Debug)]
struct ScopedX25519;

struct X25519Exchange {
    secret: x25519_dalek::StaticSecret,
    public: [u8; 32],
}

impl SupportedKxGroup for ScopedX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let mut bytes = [0u8; 32];
        draw(&mut bytes).map_err(|_| Error::FailedToGetRandomBytes)?;
        // `StaticSecret` clamps the scalar itself; the bytes are used once.
        let secret = x25519_dalek::StaticSecret::from(bytes);
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        Ok(Box::new(X25519Exchange { secret, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

impl ActiveKeyExchange for X25519Exchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, Error> {
        let peer: [u8; 32] = peer_pub_key
            .try_into()
            .map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer));
        // RFC 7748 section 6.1: an all-zero result means a small-order
        // point from the peer; refuse it as ring does.
        if !shared.was_contributory() {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        Ok(SharedSecret::from(&shared.as_bytes()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

impl fmt::Debug for X25519Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("X25519Exchange(<secret>)")
    }
}

static RANDOM: ScopedRandom = ScopedRandom;
static X25519: ScopedX25519 = ScopedX25519;

/// ring's TLS 1.3 cipher suites and signature checks, with randomness and
/// key exchange from the random source in scope.
pub(crate) fn provider() -> CryptoProvider {
    let ring = rustls::crypto::ring::default_provider();
    CryptoProvider {
        cipher_suites: vec![
            rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
            rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![&X25519],
        secure_random: &RANDOM,
        ..ring
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting() -> RandomSource {
        let next = std::sync::atomic::AtomicU8::new(1);
        Arc::new(move |buf: &mut [u8]| {
            for b in buf {
                *b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    }

    #[test]
    fn a_draw_outside_a_scope_is_refused() {
        let mut buf = [0u8; 8];
        assert!(RANDOM.fill(&mut buf).is_err());
        assert!(X25519.start().is_err());
    }

    #[test]
    fn draws_come_from_the_source_in_scope_and_the_scope_ends() {
        let source = counting();
        let mut buf = [0u8; 4];
        with_random(&source, || RANDOM.fill(&mut buf)).unwrap();
        assert_eq!(buf, [1, 2, 3, 4]);
        assert!(
            RANDOM.fill(&mut buf).is_err(),
            "the scope ended with the call"
        );
    }

    #[test]
    fn both_sides_of_an_exchange_agree_and_small_order_points_are_refused() {
        let source = counting();
        let (a, b) = with_random(&source, || {
            (X25519.start().unwrap(), X25519.start().unwrap())
        });
        let a_pub = a.pub_key().to_vec();
        let b_pub = b.pub_key().to_vec();
        assert_ne!(a_pub, b_pub);
        let ab = a.complete(&b_pub).unwrap();
        let ba = b.complete(&a_pub).unwrap();
        assert_eq!(ab.secret_bytes(), ba.secret_bytes());
        let c = with_random(&source, || X25519.start().unwrap());
        assert!(c.complete(&[0u8; 32]).is_err(), "the zero point is refused");
        let d = with_random(&source, || X25519.start().unwrap());
        assert!(d.complete(&[1u8; 31]).is_err(), "a short key is refused");
    }
}
