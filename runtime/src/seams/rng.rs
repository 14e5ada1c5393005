//! The `Rng` seam: randomness for ids, jitter and choices.
//!
//! In production it comes from the OS; in the simulator, from the run's
//! seed, so that every "random" choice replays. [`SeededRng`] is the
//! deterministic generator for tests and for users who want reproducible
//! choices of their own.

use plexspaces_storage::sync::LockExt;
use std::ops::Range;
use std::sync::Mutex;
use std::time::Duration;

/// A source of random numbers shared by a node's tasks.
pub trait Rng: Send + Sync + 'static {
    /// The next 64 random bits.
    fn next_u64(&self) -> u64;

    /// Fills `dest` with random bytes.
    fn fill_bytes(&self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// A uniform number in `range` (which must not be empty), without the
    /// modulo bias of `next_u64() % n` (Lemire's method).
    fn gen_range(&self, range: Range<u64>) -> u64 {
        assert!(
            range.start < range.end,
            "gen_range on an empty range {range:?}"
        );
        let span = range.end - range.start;
        let threshold = span.wrapping_neg() % span;
        loop {
            let wide = u128::from(self.next_u64()) * u128::from(span);
            if (wide as u64) >= threshold {
                return range.start + (wide >> 64) as u64;
            }
        }
    }

    /// `base` scaled by a uniform factor in `[1 - spread, 1 + spread]`, for
    /// retry backoff and timer jitter. `spread` is clamped to `[0, 1]`.
    fn jitter(&self, base: Duration, spread: f64) -> Duration {
        let spread = spread.clamp(0.0, 1.0);
        // 53 random bits give a uniform float in [0, 1).
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        base.mul_f64(1.0 - spread + 2.0 * spread * unit)
    }
}

/// A deterministic generator (xoshiro256++, seeded through SplitMix64):
/// fast, small, and the same sequence for the same seed on every machine.
/// Not for secrets.
#[derive(Debug)]
pub struct SeededRng {
    state: Mutex<[u64; 4]>,
}

impl SeededRng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut mix = seed;
        let mut splitmix = || {
            mix = mix.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = mix;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        SeededRng {
            state: Mutex::new([splitmix(), splitmix(), splitmix(), splitmix()]),
        }
    }
}

impl Rng for SeededRng {
    fn next_u64(&self) -> u64 {
        let mut guard = self.state.locked();
        let s = &mut *guard;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
}

/// A generator owned by one task (SplitMix64 on a `u64`, `&mut self`, no
/// lock), seeded from a node's [`Rng`]: for draws per message, such as
/// sampling decisions, where the shared generator's lock would cost more
/// than the work it decides about. Seeded from the seam, so a simulation
/// still replays from its seed. Not for secrets.
#[derive(Clone, Debug)]
pub struct LocalRng {
    state: u64,
}

impl LocalRng {
    /// A generator seeded with one draw from `rng`.
    pub fn from_rng(rng: &dyn Rng) -> Self {
        LocalRng {
            state: rng.next_u64(),
        }
    }

    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        LocalRng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_generator_replays_from_its_seed_and_spreads_its_bits() {
        let seq = |seed| {
            let mut rng = LocalRng::new(seed);
            (0..4096).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        let first = seq(3);
        assert_eq!(first, seq(3));
        assert_ne!(first, seq(4));
        // Every bit is set in about half the draws (a broken mixer leaves
        // low or high bits stuck).
        for bit in 0..64 {
            let ones = first.iter().filter(|v| *v >> bit & 1 == 1).count();
            assert!((1700..2400).contains(&ones), "bit {bit}: {ones} of 4096");
        }
        let seeded = LocalRng::from_rng(&SeededRng::new(9)).next_u64();
        assert_eq!(seeded, LocalRng::from_rng(&SeededRng::new(9)).next_u64());
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let (a, b, c) = (SeededRng::new(7), SeededRng::new(7), SeededRng::new(8));
        let seq = |r: &SeededRng| (0..16).map(|_| r.next_u64()).collect::<Vec<_>>();
        let first = seq(&a);
        assert_eq!(first, seq(&b));
        assert_ne!(first, seq(&c));
    }

    #[test]
    fn fill_bytes_covers_odd_lengths_with_the_stream() {
        let rng = SeededRng::new(1);
        let mut buf = [0u8; 13];
        rng.fill_bytes(&mut buf);
        let again = SeededRng::new(1);
        let mut expect = again.next_u64().to_le_bytes().to_vec();
        expect.extend_from_slice(&again.next_u64().to_le_bytes()[..5]);
        assert_eq!(buf.to_vec(), expect);
    }

    #[test]
    fn gen_range_stays_in_range_and_reaches_every_value() {
        let rng = SeededRng::new(3);
        let mut seen = [0u32; 6];
        for _ in 0..6000 {
            let v = rng.gen_range(10..16);
            assert!((10..16).contains(&v));
            seen[(v - 10) as usize] += 1;
        }
        // Each of six values expected ~1000 times; a biased or stuck draw fails.
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        assert_eq!(rng.gen_range(5..6), 5);
        assert!(rng.gen_range(0..u64::MAX) < u64::MAX);
    }

    #[test]
    #[should_panic(expected = "empty range")]
    fn gen_range_refuses_an_empty_range() {
        SeededRng::new(0).gen_range(4..4);
    }

    #[test]
    fn jitter_stays_within_its_spread() {
        let rng = SeededRng::new(9);
        let base = Duration::from_millis(100);
        let draws: Vec<Duration> = (0..1000).map(|_| rng.jitter(base, 0.2)).collect();
        assert!(
            draws
                .iter()
                .all(|d| *d >= Duration::from_millis(80) && *d <= Duration::from_millis(120))
        );
        assert!(draws.iter().any(|d| *d < Duration::from_millis(90)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(110)));
        assert_eq!(rng.jitter(base, 0.0), base, "no spread, no jitter");
        assert!(
            rng.jitter(base, 7.0) <= Duration::from_millis(200),
            "spread is clamped to 1"
        );
    }
}
