//! Seeded randomness for simulated nodes: ChaCha8, one stream per node.

use crate::trace::{Event, Trace};
use plexspaces::seams::Rng;
use plexspaces_storage::sync::LockExt;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::sync::{Arc, Mutex};

/// A node's random numbers, fixed by the run's seed and the node's index.
///
/// Every node of a run draws from its own ChaCha stream, so adding draws on
/// one node does not shift the numbers another node sees; the whole run
/// still depends on the one seed.
#[derive(Debug)]
pub struct ChaChaRng {
    inner: Mutex<ChaCha8Rng>,
    trace: Option<Arc<Trace>>,
}

impl ChaChaRng {
    /// The stream of node `node_index` in the run seeded with `run_seed`.
    pub fn for_node(run_seed: u64, node_index: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(run_seed);
        rng.set_stream(node_index);
        ChaChaRng {
            inner: Mutex::new(rng),
            trace: None,
        }
    }

    /// Records every draw into `trace`.
    pub fn traced(mut self, trace: Arc<Trace>) -> Self {
        self.trace = Some(trace);
        self
    }
}

impl Rng for ChaChaRng {
    fn next_u64(&self) -> u64 {
        let value = self.inner.locked().next_u64();
        if let Some(trace) = &self.trace {
            trace.record(Event::RandomDraw, value);
        }
        value
    }

    fn fill_bytes(&self, dest: &mut [u8]) {
        self.inner.locked().fill_bytes(dest);
        if let Some(trace) = &self.trace {
            trace.record_bytes(Event::RandomDraw, dest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(rng: &ChaChaRng) -> Vec<u64> {
        (0..8).map(|_| rng.next_u64()).collect()
    }

    #[test]
    fn a_node_stream_is_fixed_by_seed_and_index() {
        let first = draws(&ChaChaRng::for_node(42, 1));
        assert_eq!(
            first,
            draws(&ChaChaRng::for_node(42, 1)),
            "same seed, same node"
        );
        assert_ne!(first, draws(&ChaChaRng::for_node(42, 2)), "another node");
        assert_ne!(first, draws(&ChaChaRng::for_node(43, 1)), "another seed");
    }

    #[test]
    fn a_traced_generator_records_every_draw() {
        let trace = Arc::new(Trace::new());
        let rng = ChaChaRng::for_node(1, 0).traced(trace.clone());
        rng.next_u64();
        let mut bytes = [0u8; 4];
        rng.fill_bytes(&mut bytes);
        assert_eq!(trace.events(), 2);
        let again = Arc::new(Trace::new());
        let same = ChaChaRng::for_node(1, 0).traced(again.clone());
        same.next_u64();
        same.fill_bytes(&mut bytes);
        assert_eq!(trace.hash(), again.hash(), "same draws, same hash");
    }

    #[test]
    fn fill_bytes_draws_from_the_same_stream() {
        let rng = ChaChaRng::for_node(7, 0);
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        let again = ChaChaRng::for_node(7, 0);
        let mut expect = again.next_u64().to_le_bytes().to_vec();
        expect.extend_from_slice(&again.next_u64().to_le_bytes());
        assert_eq!(bytes.to_vec(), expect);
    }
}
