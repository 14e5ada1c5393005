//! Scenario: tasks on one simulated node race on random virtual-time sleeps.
//! Oracle: every task finishes exactly once, no earlier than its sleep, and
//! the same seed always produces the same finishing order.
#![cfg(madsim)]

use plexspaces::seams::{Clock, Rng, Spawn};
use plexspaces_sim::{ChaChaRng, ClockSkew, SimClock, SimSpawner, Trace};
use plexspaces_tests_sim::liveness::finish_within;
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, run_seeds};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TASKS: u64 = 32;

fn scenario(seed: u64) -> Vec<u64> {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let trace = Arc::new(Trace::new());
        let clock = SimClock::new(trace.clone(), ClockSkew::default());
        let rng = Arc::new(ChaChaRng::for_node(seed, 0));
        let spawner = SimSpawner::new(trace);
        let finished = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..TASKS)
            .map(|task| {
                let (finished, rng, clock) = (finished.clone(), rng.clone(), clock.clone());
                spawner.spawn(async move {
                    let nap = Duration::from_millis(rng.gen_range(1..50));
                    let start = clock.now();
                    clock.sleep(nap).await;
                    assert!(clock.now() - start >= nap, "woke early");
                    finished.lock().unwrap().push(task);
                })
            })
            .collect();
        // The liveness oracle: the longest nap is 50 ms.
        let all = async {
            for handle in handles {
                handle.await.expect("task failed");
            }
        };
        finish_within(seed, "the racing tasks", Duration::from_secs(1), all).await;
        let order = finished.lock().unwrap().clone();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..TASKS).collect::<Vec<_>>(), "each task once");
        order
    })
}

#[test]
fn timer_race_over_seeds() {
    let plan = SeedPlan::from_env(50).with_fresh("timer_race", 400);
    let orders = run_seeds("timer_race", &plan, scenario);
    for seed in [0, 7, 99] {
        assert_deterministic(seed, scenario);
    }
    let distinct: std::collections::BTreeSet<_> = orders.iter().collect();
    assert!(
        distinct.len() * 2 > orders.len(),
        "seeds pick different interleavings"
    );
}
