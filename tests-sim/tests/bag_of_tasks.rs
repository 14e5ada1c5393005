//! The design's bag-of-tasks in the simulator: a master on node 0 writes
//! tasks into a shared tuple space, workers on three nodes take them under
//! leases, "work" for a while and complete each by swapping the task for a
//! result tuple, while the nemesis crashes, pauses, partitions and isolates
//! the nodes, resets their connections and skews their clocks. The space's
//! journal lives on a fourth, storage node (a journal server), cut off from
//! one node at a time.
//!
//! Oracles, once the faults stop:
//! - every task is completed exactly once: one result per task, none left;
//! - no task lost: the master's writes (retried under their keys after a
//!   crash or an unknown outcome) put each task in the space once;
//! - a completion a worker saw acknowledged is the one in the space;
//! - the nemesis had an effect: some leases ran out and were re-taken.
#![cfg(madsim)]

use plexspaces::actor::ActorSystem;
use plexspaces::distribution::Distribution;
use plexspaces::seams::{Clock, Rng};
use plexspaces::tuplespace::{
    Field, Kind, Pattern, SharedSpaceError, SharedSpaces, SharedSpacesConfig, Tuple, Value,
};
use plexspaces::{Env, PlantedBug, tuple};
use plexspaces_tests_sim::cluster_setup::{
    STORM_CHECKPOINT_INTERVAL, StorageCluster, fast_distribution, shared_journal, wait_all_up,
};
use plexspaces_tests_sim::liveness::finish_within;
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, caught_within, run_seeds};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PORT: u16 = 7000;
const JOURNAL_PORT: u16 = 7100;
const NODES: usize = 3;
const STORAGE: usize = NODES;
const WORKERS_PER_NODE: usize = 3;
const TASKS: i64 = 120;
const BATCH: i64 = 10;
const SPACE: &str = "bag";

fn tasks() -> Pattern {
    Pattern::new(vec![Field::Exact("task".into()), Field::Typed(Kind::Int)])
}

fn results() -> Pattern {
    Pattern::new(vec![
        Field::Exact("done".into()),
        Field::Typed(Kind::Int),
        Field::Typed(Kind::Str),
    ])
}

fn int(tuple: &Tuple, at: usize) -> i64 {
    match &tuple.fields()[at] {
        Value::Int(n) => *n,
        other => panic!("not an int: {other:?}"),
    }
}

#[derive(Default)]
struct Shared {
    nodes: BTreeMap<usize, (Distribution, SharedSpaces)>,
    /// Completions acknowledged to a worker: task → the worker's tag.
    acked: BTreeMap<i64, Vec<String>>,
    /// Completions refused because the lease had run out.
    lease_lost: u64,
    /// Batches the master saw acknowledged.
    batches_acked: BTreeMap<i64, u32>,
}

fn space_config(env: &Env, storage: SocketAddr, bug: Option<PlantedBug>) -> SharedSpacesConfig {
    let journal = shared_journal(env, storage, Duration::from_millis(500));
    let mut config = SharedSpacesConfig::new(journal);
    config.hosting.attempt_timeout = Duration::from_millis(500);
    config.hosting.durability.checkpoint_interval = STORM_CHECKPOINT_INTERVAL;
    config.hosting.planted_bug = bug;
    config.call_timeout = Duration::from_secs(2);
    config.poll_max = Duration::from_millis(100);
    config
}

/// The master: writes the tasks in batches, each under its own key, so a
/// batch retried (after a failure, or by the master's next run after a
/// crash) is written once.
async fn master(
    space: plexspaces::tuplespace::SharedTupleSpace,
    env: Env,
    shared: Arc<Mutex<Shared>>,
) {
    for batch in 0..TASKS / BATCH {
        let tuples: Vec<Tuple> = (batch * BATCH..(batch + 1) * BATCH)
            .map(|i| tuple!("task", i))
            .collect();
        while space
            .write_all_once(&format!("batch-{batch}"), tuples.clone())
            .await
            .is_err()
        {
            env.sleep(Duration::from_millis(100)).await;
        }
        *shared
            .lock()
            .unwrap()
            .batches_acked
            .entry(batch)
            .or_default() += 1;
        env.sleep(Duration::from_millis(200)).await;
    }
}

/// A worker: takes a task under a 1 s lease, works 20–400 ms, completes
/// it with a result naming itself.
async fn worker(
    space: plexspaces::tuplespace::SharedTupleSpace,
    env: Env,
    tag: String,
    shared: Arc<Mutex<Shared>>,
) {
    loop {
        let leased = match space
            .take_leased(tasks(), Duration::from_secs(1), Duration::from_secs(1))
            .await
        {
            Ok(Some(leased)) => leased,
            Ok(None) => continue,
            Err(_) => {
                env.sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let task = int(&leased.tuple, 1);
        env.sleep(Duration::from_millis(env.gen_range(20..400)))
            .await;
        let outcome = space
            .complete(leased.token, vec![tuple!("done", task, tag.as_str())])
            .await;
        let mut shared = shared.lock().unwrap();
        match outcome {
            Ok(()) => shared.acked.entry(task).or_default().push(tag.clone()),
            Err(SharedSpaceError::LeaseLost) => shared.lease_lost += 1,
            Err(_) => {} // outcome unknown: the space is the judge
        }
    }
}

async fn run_node(
    env: Env,
    index: usize,
    addrs: Vec<SocketAddr>,
    shared: Arc<Mutex<Shared>>,
    bug: Option<PlantedBug>,
) {
    let system = ActorSystem::new(env.clone());
    let dist = system
        .start_distribution(fast_distribution(&addrs, index, NODES))
        .await
        .expect("distribution starts");
    let spaces = SharedSpaces::register(&system, space_config(&env, addrs[STORAGE], bug)).unwrap();
    shared
        .lock()
        .unwrap()
        .nodes
        .insert(index, (dist.clone(), spaces.clone()));
    let run = env.next_u64();
    for w in 0..WORKERS_PER_NODE {
        let space = spaces.space(SPACE).unwrap();
        let tag = format!("n{index}w{w}-{:x}", run & 0xffff);
        drop(env.spawn(worker(space, env.clone(), tag, shared.clone())));
    }
    if index == 0 {
        master(spaces.space(SPACE).unwrap(), env.clone(), shared.clone()).await;
    }
    std::future::pending::<()>().await;
}

#[derive(Debug, PartialEq)]
struct Outcome {
    /// The storage node\'s crashes and failed syncs (each reopened its journal).
    storage_faults: (u64, u64),
    completed_acked: usize,
    lease_lost: u64,
    trace_hash: u64,
}

fn scenario(seed: u64) -> Outcome {
    planted(seed, None)
}

fn planted(seed: u64, bug: Option<PlantedBug>) -> Outcome {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let storage = StorageCluster::start(seed, NODES, (PORT, JOURNAL_PORT), 0xba6, |_| {}, {
            let shared = shared.clone();
            move |env, index, addrs| run_node(env, index, addrs, shared.clone(), bug)
        });
        let _report = storage.storm("bag of tasks", seed, 0x000b_a60f_7a5c).await;
        let (cluster, clock) = (&storage.cluster, &storage.clock);
        // The liveness oracle: the checks after healing end in time.
        finish_within(seed, "finishing and reading the bag after healing", Duration::from_secs(600), async {
        let nodes: Vec<(usize, Distribution, SharedSpaces)> = shared
            .lock()
            .unwrap()
            .nodes
            .iter()
            .map(|(i, (d, s))| (*i, d.clone(), s.clone()))
            .collect();
        wait_all_up(nodes.iter().map(|(_, d, _)| d), NODES, seed).await;
        // Healed: the workers finish the bag (the master's last batches may
        // still be going in).
        let space = nodes[0].2.space(SPACE).unwrap();
        let finished = clock
            .timeout(Duration::from_secs(60), async {
                loop {
                    let done = space.count(&results()).await.unwrap_or(0);
                    let left = space.count(&tasks()).await.unwrap_or(1);
                    if done >= TASKS as usize && left == 0 {
                        return;
                    }
                    clock.sleep(Duration::from_millis(200)).await;
                }
            })
            .await;
        let found = space
            .read_all_if_exists(&results())
            .await
            .expect("the space answers after healing");
        let mut per_task: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for result in &found {
            let Value::Str(tag) = &result.fields()[2] else {
                unreachable!("the pattern types it")
            };
            per_task
                .entry(int(result, 1))
                .or_default()
                .push(tag.clone());
        }
        for (task, tags) in &per_task {
            assert_eq!(
                tags.len(),
                1,
                "seed {seed}: task {task} completed by {tags:?}"
            );
        }
        assert!(
            finished.is_ok(),
            "seed {seed}: not finished 60 s after healing: {} of {TASKS} done, tasks left {:?}",
            per_task.len(),
            space.read_all_if_exists(&tasks()).await
        );
        assert_eq!(
            per_task.keys().copied().collect::<Vec<_>>(),
            (0..TASKS).collect::<Vec<_>>(),
            "seed {seed}: tasks lost"
        );
        // Copied out of the lock: the checks below await.
        let (acked, lease_lost) = {
            let shared = shared.lock().unwrap();
            (shared.acked.clone(), shared.lease_lost)
        };
        for (task, acked) in &acked {
            assert_eq!(
                acked, &per_task[task],
                "seed {seed}: task {task}: acknowledged completions differ from the space's"
            );
        }
        assert!(
            storage.checkpointed_streams().await > 0,
            "seed {seed}: no checkpoint went through the shared journal"
        );
        Outcome {
            storage_faults: (storage.storage_crashes(), storage.storage_sync_errors()),
            completed_acked: acked.len(),
            lease_lost,
            trace_hash: cluster.trace().hash(),
        }
        })
        .await
    })
}

#[test]
fn every_task_is_completed_exactly_once_under_the_nemesis() {
    let plan = SeedPlan::from_env(24).with_fresh("bag_of_tasks", 40);
    let outcomes = run_seeds("bag_of_tasks", &plan, scenario);
    assert!(
        outcomes.iter().any(|o| o.storage_faults.0 > 0)
            && outcomes.iter().any(|o| o.storage_faults.1 > 0),
        "no seed crashed the storage node or failed its syncs: {outcomes:?}"
    );
    assert!(
        outcomes.iter().any(|o| o.lease_lost > 0),
        "no lease ever ran out: the faults never hit a worker mid-task: {outcomes:?}"
    );
    assert_deterministic(1, scenario);
}

#[test]
fn leases_that_still_complete_after_running_out_are_caught() {
    caught_within("LeaseOutlivesExpiry", 24, &["completed by"], |seed| {
        planted(seed, Some(PlantedBug::LeaseOutlivesExpiry));
    });
}
