//! Virtual actors in the simulator: three nodes host counters whose
//! journals live on a fourth, storage node (a journal server reached over
//! the simulated network), while clients on every node add to random
//! counters and the nemesis crashes, pauses, partitions and isolates the
//! three nodes, resets their connections, skews their clocks, and cuts the
//! storage node off from one of them at a time.
//!
//! Oracles:
//! - no acknowledged update is lost and none is applied twice: after
//!   healing, every counter's applied keys include every key a client saw
//!   acknowledged, each once;
//! - no id is active on two nodes that see the same membership (sampled
//!   every 50 ms of simulated time: nodes whose eligible sets are equal
//!   host disjoint ids);
//! - every id is reachable again from every node after healing, and is
//!   then active on exactly one node;
//! - the nemesis had an effect: some calls failed over (were retried);
//! - migrations (clients pin random ids to random nodes, or release them,
//!   during the storm) all end, done or refused, within a bound; a node's
//!   view includes the placement version it has read, so "the same view"
//!   means the same members and the same overrides; after healing, an id
//!   pinned to a live node is active there.
#![cfg(madsim)]

use plexspaces::actor::{ActorError, ActorSystem};
use plexspaces::distribution::Distribution;
use plexspaces::durability::{DurableActor, DurableContext};
use plexspaces::seams::{Clock, Rng};
use plexspaces::virtual_actor::{MobilityConfig, VirtualActors, VirtualConfig};
use plexspaces::{Env, NodeName, PlantedBug};
use plexspaces_sim::Cluster;
use plexspaces_tests_sim::cluster_setup::{
    STORM_CHECKPOINT_INTERVAL, StorageCluster, fast_distribution, shared_journal, wait_all_up,
};
use plexspaces_tests_sim::liveness::finish_within;
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, caught_within, run_seeds};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PORT: u16 = 7000;
const JOURNAL_PORT: u16 = 7100;
const NODES: usize = 3;
const STORAGE: usize = NODES;
const IDS: u64 = 8;

/// Remembers the key of every addition it applied.
#[derive(Default, Serialize, Deserialize)]
struct Tally {
    keys: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize)]
enum TallyMsg {
    Add(String),
    Keys,
}

impl DurableActor for Tally {
    type Msg = TallyMsg;
    type Reply = Vec<String>;

    async fn handle(
        &mut self,
        _ctx: &mut DurableContext<'_>,
        msg: TallyMsg,
    ) -> Result<Vec<String>, ActorError> {
        match msg {
            TallyMsg::Add(key) => {
                self.keys.push(key);
                Ok(Vec::new())
            }
            TallyMsg::Keys => Ok(self.keys.clone()),
        }
    }
}

#[derive(Default)]
struct Shared {
    /// Each node's current run: its distribution and its counters.
    nodes: BTreeMap<usize, (Distribution, VirtualActors<Tally>)>,
    /// Keys acknowledged to a client, per id.
    acked: BTreeMap<String, Vec<String>>,
    failed: u64,
    /// Migrations and releases asked, answered Ok, answered Err, cut short
    /// by their node's crash; and those in flight now, per node.
    migrations: (u64, u64, u64, u64),
    in_flight: BTreeMap<usize, u64>,
    /// Set once the faults healed: clients stop migrating.
    frozen: bool,
    /// Distinct oracle violations.
    violations: BTreeSet<String>,
    max_view: u64,
}

fn id_name(i: u64) -> String {
    format!("c{i}")
}

async fn run_node(
    env: Env,
    index: usize,
    addrs: Vec<SocketAddr>,
    shared: Arc<Mutex<Shared>>,
    bug: Option<PlantedBug>,
) {
    let system = ActorSystem::new(env.clone());
    let config = fast_distribution(&addrs, index, NODES);
    let dist = system
        .start_distribution(config)
        .await
        .expect("distribution starts");
    let journal = shared_journal(&env, addrs[STORAGE], Duration::from_millis(500));
    let mut config = VirtualConfig::new("tally", journal);
    // Short enough that ids deactivate and reactivate during the run.
    config.deactivation_timeout = Duration::from_secs(2);
    config.attempt_timeout = Duration::from_millis(500);
    config.durability.checkpoint_interval = STORM_CHECKPOINT_INTERVAL;
    config.planted_bug = bug;
    let config =
        config.with_mobility(MobilityConfig::default().refresh_every(Duration::from_millis(200)));
    let tallies = VirtualActors::register(&system, config, |_| Tally::default()).unwrap();
    {
        // A crash ended the previous run's migration in flight, if any.
        let mut shared = shared.lock().unwrap();
        let cut = shared.in_flight.insert(index, 0).unwrap_or(0);
        shared.migrations.3 += cut;
    }
    shared
        .lock()
        .unwrap()
        .nodes
        .insert(index, (dist.clone(), tallies.clone()));

    // The client: additions to random counters, each under a fresh key.
    let run = env.next_u64();
    let mut seq = 0;
    loop {
        env.sleep(Duration::from_millis(env.gen_range(10..60)))
            .await;
        let id = id_name(env.gen_range(0..IDS));
        if env.gen_range(0..25) == 0 && !shared.lock().unwrap().frozen {
            migrate(&env, index, &tallies, &id, &shared).await;
            continue;
        }
        seq += 1;
        let key = format!("n{index}-{run:x}-{seq}");
        let tally = tallies.get(&id).unwrap();
        let outcome = tally
            .call(
                key.clone(),
                TallyMsg::Add(key.clone()),
                Duration::from_secs(2),
            )
            .await;
        let mut shared = shared.lock().unwrap();
        shared.max_view = shared.max_view.max(dist.view());
        match outcome {
            Ok(_) => shared.acked.entry(id).or_default().push(key),
            Err(_) => shared.failed += 1,
        }
    }
}

/// Pins `id` to a random node (one in four: releases it), and checks the
/// migration ends in bounded time.
async fn migrate(
    env: &Env,
    index: usize,
    tallies: &VirtualActors<Tally>,
    id: &str,
    shared: &Mutex<Shared>,
) {
    {
        let mut shared = shared.lock().unwrap();
        shared.migrations.0 += 1;
        *shared.in_flight.entry(index).or_default() += 1;
    }
    let started = env.now();
    let outcome = if env.gen_range(0..4) == 0 {
        tallies.release(id).await
    } else {
        let node = NodeName::new(&format!("n{}", env.gen_range(0..NODES as u64))).unwrap();
        tallies.migrate(id, &node).await
    };
    let took = env.now() - started;
    let mut shared = shared.lock().unwrap();
    *shared.in_flight.entry(index).or_default() -= 1;
    match outcome {
        Ok(()) => shared.migrations.1 += 1,
        Err(_) => shared.migrations.2 += 1,
    }
    if took > Duration::from_secs(30) {
        shared
            .violations
            .insert(format!("a migration of {id} on n{index} took {took:?}"));
    }
}

/// Nodes that see the same eligible members and the same placement
/// version must host disjoint ids.
fn check_single_activation(cluster: &Cluster, shared: &Mutex<Shared>) {
    let mut shared = shared.lock().unwrap();
    type View = (Vec<NodeName>, u64);
    let views: Vec<(usize, View, BTreeSet<String>)> = shared
        .nodes
        .iter()
        .filter(|(i, _)| cluster.is_up(**i))
        .map(|(i, (_, t))| {
            let view = (t.eligible_nodes(), t.placement_version());
            (*i, view, t.active_ids().into_iter().collect())
        })
        .collect();
    for (x, (i, view_i, ids_i)) in views.iter().enumerate() {
        for (j, view_j, ids_j) in &views[x + 1..] {
            if view_i == view_j
                && let Some(both) = ids_i.intersection(ids_j).next()
            {
                shared.violations.insert(format!(
                    "{both} active on n{i} and n{j}, both seeing {view_i:?}"
                ));
            }
        }
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    /// The storage node\'s crashes and failed syncs (each reopened its journal).
    storage_faults: (u64, u64),
    /// Migrations asked, done, refused, cut short by a crash.
    migrations: (u64, u64, u64, u64),
    acked: usize,
    failed: u64,
    max_view: u64,
    trace_hash: u64,
}

fn scenario(seed: u64) -> Outcome {
    planted(seed, None)
}

fn planted(seed: u64, bug: Option<PlantedBug>) -> Outcome {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let storage = StorageCluster::start(
            seed,
            NODES,
            (PORT, JOURNAL_PORT),
            0x5707,
            move |config| config.planted_bug = bug,
            {
                let shared = shared.clone();
                move |env, index, addrs| run_node(env, index, addrs, shared.clone(), bug)
            },
        );
        let (cluster, clock) = (&storage.cluster, &storage.clock);
        // The oracle's sampler, through the storm and after it.
        let sampler = {
            let (cluster, shared, clock) = (cluster.clone(), shared.clone(), clock.clone());
            madsim::task::spawn(async move {
                loop {
                    clock.sleep(Duration::from_millis(50)).await;
                    check_single_activation(&cluster, &shared);
                }
            })
        };
        let _report = storage.storm("virtual actors", seed, 0x5707_a6e5).await;
        // The liveness oracle: everything after healing ends in time.
        finish_within(
            seed,
            "reaching every id after healing",
            Duration::from_secs(300),
            async {
                // Healed: membership converges on every node...
                let nodes: Vec<(usize, Distribution, VirtualActors<Tally>)> = shared
                    .lock()
                    .unwrap()
                    .nodes
                    .iter()
                    .map(|(i, (d, t))| (*i, d.clone(), t.clone()))
                    .collect();
                wait_all_up(nodes.iter().map(|(_, d, _)| d), NODES, seed).await;
                // ...migrations stop and every one in flight ends, and every
                // node reads the same placement.
                shared.lock().unwrap().frozen = true;
                loop {
                    let settled = {
                        let shared = shared.lock().unwrap();
                        shared.in_flight.values().all(|n| *n == 0)
                    };
                    let versions: BTreeSet<u64> = nodes
                        .iter()
                        .map(|(_, _, t)| t.placement_version())
                        .collect();
                    if settled && versions.len() == 1 {
                        break;
                    }
                    clock.sleep(Duration::from_millis(50)).await;
                }
                // ...every id is reachable from every node, and has kept every
                // acknowledged key exactly once.
                let acked = shared.lock().unwrap().acked.clone();
                for i in 0..IDS {
                    let id = id_name(i);
                    for (index, _, tallies) in &nodes {
                        let keys = tallies
                            .get(&id)
                            .unwrap()
                            .call(
                                format!("check-{index}-{id}"),
                                TallyMsg::Keys,
                                Duration::from_secs(10),
                            )
                            .await
                            .unwrap_or_else(|e| {
                                panic!("seed {seed}: {id} unreachable from n{index}: {e}")
                            });
                        let applied: BTreeSet<&String> = keys.iter().collect();
                        assert_eq!(
                            applied.len(),
                            keys.len(),
                            "seed {seed}: {id} applied a key twice"
                        );
                        for key in acked.get(&id).into_iter().flatten() {
                            assert!(
                                applied.contains(key),
                                "seed {seed}: {id} lost acknowledged {key}"
                            );
                        }
                    }
                    let hosts: Vec<usize> = nodes
                        .iter()
                        .filter(|(_, _, t)| t.active_ids().contains(&id))
                        .map(|(i, _, _)| *i)
                        .collect();
                    assert_eq!(
                        hosts.len(),
                        1,
                        "seed {seed}: {id} active on {hosts:?} after healing"
                    );
                    if let Some(pinned) = nodes[0].2.pinned(&id) {
                        let host = format!("n{}", hosts[0]);
                        assert_eq!(
                            pinned.as_str(),
                            host,
                            "seed {seed}: {id} pinned to {pinned} but active on {host}"
                        );
                    }
                }
                sampler.abort();
                // Read out of the lock: the checks below await.
                let (acked, failed, max_view, migrations) = {
                    let shared = shared.lock().unwrap();
                    assert!(
                        shared.violations.is_empty(),
                        "seed {seed}: {:?}",
                        shared.violations
                    );
                    let acked: usize = shared.acked.values().map(Vec::len).sum();
                    (acked, shared.failed, shared.max_view, shared.migrations)
                };
                assert_eq!(
                    migrations.0,
                    migrations.1 + migrations.2 + migrations.3,
                    "seed {seed}: a migration never ended"
                );
                assert!(
                    acked > 200,
                    "seed {seed}: only {acked} additions acknowledged"
                );
                assert!(
                    storage.checkpointed_streams().await > 0,
                    "seed {seed}: no checkpoint went through the shared journal"
                );
                Outcome {
                    storage_faults: (storage.storage_crashes(), storage.storage_sync_errors()),
                    migrations,
                    acked,
                    failed,
                    max_view,
                    trace_hash: cluster.trace().hash(),
                }
            },
        )
        .await
    })
}

#[test]
fn virtual_actors_keep_every_acknowledged_update_and_one_activation_under_the_nemesis() {
    let plan = SeedPlan::from_env(24).with_fresh("virtual_actors", 40);
    let outcomes = run_seeds("virtual_actors", &plan, scenario);
    assert!(
        outcomes.iter().any(|o| o.storage_faults.0 > 0)
            && outcomes.iter().any(|o| o.storage_faults.1 > 0),
        "no seed crashed the storage node or failed its syncs: {outcomes:?}"
    );
    let failed: u64 = outcomes.iter().map(|o| o.failed).sum();
    assert!(
        failed > 0,
        "the nemesis never made a call fail: {outcomes:?}"
    );
    assert!(
        outcomes.iter().any(|o| o.max_view > 4),
        "no seed saw a node go down and come back: {outcomes:?}"
    );
    assert!(
        outcomes.iter().all(|o| o.migrations.1 > 0),
        "a seed migrated nothing: {outcomes:?}"
    );
    assert_deterministic(2, scenario);
}

/// Each planted bug must fail some seed within this budget.
const PLANTED_BUG_SEEDS: u64 = 6;

fn caught(bug: PlantedBug, expected: &[&str]) {
    caught_within(&format!("{bug:?}"), PLANTED_BUG_SEEDS, expected, |seed| {
        planted(seed, Some(bug));
    });
}

#[test]
fn a_journal_server_without_fencing_is_caught() {
    caught(
        PlantedBug::SkipFencing,
        &["applied a key twice", "lost acknowledged"],
    );
}

#[test]
fn hosts_that_never_hand_off_are_caught() {
    caught(PlantedBug::SkipHandOff, &["two activations", "active on"]);
}
