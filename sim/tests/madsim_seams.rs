//! The simulated seams under madsim: virtual time, node-local tasks, and
//! runs that are a pure function of their seed.
#![cfg(madsim)]

use futures::channel::oneshot;
use plexspaces::seams::{Clock, Instant, JoinError, Rng, Spawn};
use plexspaces_sim::{ChaChaRng, ClockSkew, SimClock, SimSpawner, Trace};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[madsim::test]
async fn a_simulated_day_passes_at_once_on_the_virtual_clock() {
    let skew = ClockSkew::default();
    let clock = SimClock::new(Arc::new(Trace::new()), skew.clone());
    let wall_before = clock.wall_clock();
    assert_eq!(clock.now(), Instant::ZERO);
    clock.sleep(Duration::from_secs(86_400)).await;
    // madsim wakes timers a few random microseconds late, like a real OS.
    let day = Duration::from_secs(86_400);
    let slept = clock.now() - Instant::ZERO;
    assert!(
        slept >= day && slept < day + Duration::from_millis(10),
        "{slept:?}"
    );
    let wall_gap = clock.wall_clock().duration_since(wall_before).unwrap();
    assert!(
        wall_gap >= day && wall_gap < day + Duration::from_millis(10),
        "{wall_gap:?}"
    );

    let before = clock.now();
    let slow = clock.timeout(Duration::from_secs(5), clock.sleep(Duration::from_secs(60)));
    assert_eq!(slow.await.unwrap_err().after, Duration::from_secs(5));
    let waited = clock.now() - before;
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
}

#[madsim::test]
async fn simulated_tasks_return_output_panics_and_aborts() {
    let trace = Arc::new(Trace::new());
    let spawner = SimSpawner::new(trace.clone());
    assert_eq!(spawner.spawn(async { 6 * 7 }).await, Ok(42));
    let panicked = spawner.spawn(async { panic!("sim boom") }).await;
    assert_eq!(
        panicked,
        Err::<(), _>(JoinError::Panicked("sim boom".into()))
    );
    let (_keep, rx) = oneshot::channel::<()>();
    let stuck = spawner.spawn(rx);
    stuck.abort();
    assert_eq!(stuck.await, Err(JoinError::Aborted));
    assert_eq!(trace.events(), 3, "every spawn is traced");
}

/// Runs a little race between tasks that sleep random amounts, and returns
/// the order in which they finished.
fn race(seed: u64) -> Vec<u64> {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let trace = Arc::new(Trace::new());
        let clock = SimClock::new(trace.clone(), ClockSkew::default());
        let rng = Arc::new(ChaChaRng::for_node(seed, 0));
        let spawner = SimSpawner::new(trace);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for task in 0..8u64 {
            let (order, rng, clock) = (order.clone(), rng.clone(), clock.clone());
            handles.push(spawner.spawn(async move {
                clock
                    .sleep(Duration::from_millis(rng.gen_range(1..4)))
                    .await;
                order.lock().unwrap().push(task);
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
        order.lock().unwrap().clone()
    })
}

#[test]
fn the_same_seed_replays_the_same_interleaving() {
    let runs: Vec<Vec<u64>> = (0..20).map(race).collect();
    for (seed, run) in runs.iter().enumerate() {
        assert_eq!(*run, race(seed as u64), "seed {seed} replays");
    }
    let distinct: std::collections::BTreeSet<_> = runs.into_iter().collect();
    assert!(
        distinct.len() > 5,
        "seeds pick different interleavings: {}",
        distinct.len()
    );
}
