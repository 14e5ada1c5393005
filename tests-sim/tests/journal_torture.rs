//! Journal torture: a node appends from four tasks while the nemesis
//! crashes it and the disk loses, tears and refuses what a real disk may.
//! Oracle (`journal_workload::check`): the journal always reopens, and every
//! acknowledged entry is there, intact, after the storm.
//!
//! The same scenario runs deliberately broken journals (acknowledge before
//! sync, ignore a failed sync, skip the directory sync of a new segment) and
//! must catch each within its seed budget, while the correct journal passes
//! every seed.
#![cfg(madsim)]

use plexspaces::storage::journal::PlantedBug;
use plexspaces_sim::{
    Cluster, ClusterConfig, DiskFaults, FaultKinds, NemesisConfig, ReportOnPanic, Schedule,
};
use plexspaces_tests_sim::journal_workload::{self, Acked};
use plexspaces_tests_sim::liveness::{AFTER_HEALING, finish_within};
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, run_seeds};
use std::time::Duration;

#[derive(Debug, PartialEq)]
struct Outcome {
    acked: usize,
    crashes: u64,
    trace_hash: u64,
}

fn scenario(seed: u64, bug: Option<PlantedBug>) -> Result<Outcome, String> {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let mut config = journal_workload::journal_config();
        config.planted_bug = bug;
        let mut cluster = Cluster::new(ClusterConfig {
            disk_faults: DiskFaults {
                sync_error: 0.002,
                ..DiskFaults::recoverable()
            },
            ..ClusterConfig::new(seed)
        });
        let acked = Acked::default();
        let node = cluster.add_node("n1", {
            let (config, acked) = (config.clone(), acked.clone());
            move |env| journal_workload::node_main(env, config.clone(), acked.clone())
        });
        let schedule = Schedule::draw(
            seed,
            1,
            &NemesisConfig {
                active: Duration::from_secs(10),
                quiet: Duration::from_secs(2),
                mean_gap: Duration::from_millis(1500),
                max_fault: Duration::from_millis(500),
                kinds: FaultKinds::crashes(),
            },
        );
        let _report = ReportOnPanic::new(format!("seed {seed}, bug {bug:?}\n{schedule}"));
        cluster.set_disk_faults(true);
        schedule.run(&cluster).await;
        cluster.crash(node); // faults are off: this crash keeps everything
        let checked = journal_workload::check(cluster.disk(node).clone(), config, &acked);
        finish_within(
            seed,
            "reopening and reading the journal",
            AFTER_HEALING,
            checked,
        )
        .await?;
        let acked = acked.lock().unwrap().len();
        if acked < 100 {
            return Err(format!(
                "only {acked} entries acknowledged: the workload stalled"
            ));
        }
        Ok(Outcome {
            acked,
            crashes: cluster.disk(node).fault_counts().crashes,
            trace_hash: cluster.trace().hash(),
        })
    })
}

#[test]
fn the_correct_journal_loses_nothing_acknowledged() {
    let plan = SeedPlan::from_env(24).with_fresh("journal_torture", 100);
    let outcomes = run_seeds("journal_torture", &plan, |seed| {
        scenario(seed, None).unwrap_or_else(|violation| panic!("{violation}"))
    });
    let crashes: u64 = outcomes.iter().map(|o| o.crashes).sum();
    assert!(
        crashes >= 3 * outcomes.len() as u64,
        "the nemesis crashed the node {crashes} times"
    );
}

/// The seed budget each planted bug must be caught within.
const PLANTED_BUG_SEEDS: u64 = 24;

/// The oracle's failures: an acknowledged entry lost, altered or numbered
/// twice, or a journal that refuses to open over what the bug did to it.
const ORACLE_FAILURES: &[&str] = &[
    "acknowledged twice",
    "is lost or altered",
    "refuses to open",
];

fn caught_within(bug: PlantedBug) -> u64 {
    plexspaces_tests_sim::caught_within(
        &format!("{bug:?}"),
        PLANTED_BUG_SEEDS,
        ORACLE_FAILURES,
        |seed| {
            if let Err(violation) = scenario(seed, Some(bug)) {
                panic!("{violation}");
            }
        },
    )
}

#[test]
fn acknowledging_before_sync_is_caught() {
    caught_within(PlantedBug::AckBeforeSync);
}

#[test]
fn ignoring_a_failed_sync_is_caught() {
    caught_within(PlantedBug::IgnoreSyncError);
}

#[test]
fn skipping_the_directory_sync_of_a_new_segment_is_caught() {
    caught_within(PlantedBug::SkipSegmentDirSync);
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in [3, 11, 17, 29, 40, 41, 57, 64, 90, 123] {
        assert_deterministic(seed, |seed| scenario(seed, None).unwrap());
    }
    let a = scenario(1, None).unwrap();
    let b = scenario(2, None).unwrap();
    assert_ne!(
        a.trace_hash, b.trace_hash,
        "different seeds, different runs"
    );
}

/// The shrinker on a planted bug's failure: a schedule of fewer events that
/// still fails the same way, and replays.
#[test]
fn a_planted_bugs_failure_shrinks_to_a_few_events_and_replays() {
    use plexspaces_tests_sim::shrink::{shrink, signature};
    let run = |seed: u64| {
        if let Err(violation) = scenario(seed, Some(PlantedBug::AckBeforeSync)) {
            panic!("{violation}");
        }
    };
    let failure = match scenario(0, Some(PlantedBug::AckBeforeSync)) {
        Err(violation) => violation,
        Ok(_) => panic!("the planted bug is caught at seed 0"),
    };
    let shrunk = shrink(0, &failure, &run).expect("the scenario draws a schedule");
    println!("{}", shrunk.schedule);
    assert!(
        shrunk.events <= 10 && shrunk.events < shrunk.drawn_events,
        "shrunk to {} of {} events",
        shrunk.events,
        shrunk.drawn_events
    );
    plexspaces_sim::keep_only(Some(shrunk.kept.iter().copied().collect()));
    let again = scenario(0, Some(PlantedBug::AckBeforeSync));
    plexspaces_sim::keep_only(None);
    let again = again.expect_err("the shrunk schedule still fails");
    assert_eq!(signature(&again), signature(&failure));
}
