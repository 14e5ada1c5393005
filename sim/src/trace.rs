//! The determinism check: every seam call that can affect behaviour feeds a
//! rolling 64-bit hash. Two runs of one seed must end with the same hash; if
//! they do not, something reached outside the seams (a real clock, OS
//! randomness, a `HashMap`'s random order) and the run is not reproducible.

use std::sync::atomic::{AtomicU64, Ordering};

/// What kind of event was recorded; part of the hash, so two different
/// events with the same value hash differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Event {
    /// A monotonic or wall-clock time read.
    TimeRead = 1,
    /// A random draw.
    RandomDraw = 2,
    /// A task spawned.
    Spawn = 3,
    /// Bytes sent on a connection.
    NetSend = 4,
    /// Bytes received on a connection.
    NetRecv = 5,
    /// A connection opened or accepted.
    NetConnect = 6,
    /// A disk operation (read, write, sync, directory change).
    DiskOp = 7,
    /// A fault injected by the simulator.
    Fault = 8,
}

/// A run's rolling trace hash, shared by every simulated seam of the run.
#[derive(Debug)]
pub struct Trace {
    hash: AtomicU64,
    events: AtomicU64,
}

impl Default for Trace {
    fn default() -> Self {
        Trace {
            hash: AtomicU64::new(0xcbf2_9ce4_8422_2325),
            events: AtomicU64::new(0),
        }
    }
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one event into the hash. The simulator runs one task at a
    /// time, so the order of calls is itself part of what is checked.
    pub fn record(&self, event: Event, value: u64) {
        let mixed = mix(value ^ ((event as u64) << 56));
        let previous = self.hash.load(Ordering::Relaxed);
        self.hash
            .store(mix(previous.rotate_left(5) ^ mixed), Ordering::Relaxed);
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    /// Folds bytes into the hash (a cheap digest of them, then the event).
    pub fn record_bytes(&self, event: Event, bytes: &[u8]) {
        let digest = bytes.chunks(8).fold(bytes.len() as u64, |acc, chunk| {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            mix(acc ^ u64::from_le_bytes(word))
        });
        self.record(event, digest);
    }

    /// The hash so far.
    pub fn hash(&self) -> u64 {
        self.hash.load(Ordering::Relaxed)
    }

    /// How many events were recorded.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }
}

/// SplitMix64's finaliser: a cheap, well-spread 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_depends_on_events_values_and_order() {
        let run = |events: &[(Event, u64)]| {
            let trace = Trace::new();
            for &(e, v) in events {
                trace.record(e, v);
            }
            trace.hash()
        };
        let base = run(&[(Event::TimeRead, 1), (Event::RandomDraw, 2)]);
        assert_eq!(base, run(&[(Event::TimeRead, 1), (Event::RandomDraw, 2)]));
        assert_ne!(
            base,
            run(&[(Event::RandomDraw, 2), (Event::TimeRead, 1)]),
            "order"
        );
        assert_ne!(
            base,
            run(&[(Event::TimeRead, 1), (Event::RandomDraw, 3)]),
            "value"
        );
        assert_ne!(
            base,
            run(&[(Event::TimeRead, 1), (Event::Spawn, 2)]),
            "event"
        );
        let trace = Trace::new();
        trace.record_bytes(Event::NetSend, b"hello world");
        let other = Trace::new();
        other.record_bytes(Event::NetSend, b"hello worle");
        assert_ne!(trace.hash(), other.hash());
        assert_eq!(trace.events(), 1);
    }
}
