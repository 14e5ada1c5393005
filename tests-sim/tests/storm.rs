//! The storm scenario over the CI seeds, plus its determinism check.
#![cfg(madsim)]

use plexspaces_tests_sim::storm;
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, run_seeds};
use std::time::Duration;

const ACTIVE: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_secs(10);

#[test]
fn three_nodes_survive_every_fault_and_recover() {
    let plan = SeedPlan::from_env(8).with_fresh("storm", 8);
    let outcomes = run_seeds("storm", &plan, |seed| {
        storm::run(seed, ACTIVE, QUIET).unwrap_or_else(|violation| panic!("{violation}"))
    });
    for outcome in &outcomes {
        assert!(outcome.acked > 1000, "journals kept working: {outcome:?}");
        assert_eq!(outcome.pairs_reached, 6);
    }
}

#[test]
fn a_storm_replays_exactly_from_its_seed() {
    for seed in [5, 6] {
        assert_deterministic(seed, |seed| storm::run(seed, ACTIVE, QUIET).unwrap());
    }
}
