//! Process groups in the simulator: three nodes whose actors join and
//! leave a group at random while the nemesis crashes and restarts, pauses,
//! partitions and isolates nodes, resets connections and skews clocks.
//!
//! Oracle: the groups stop changing when the faults stop; once healed,
//! every node lists exactly the members joined on the live nodes (the
//! union of each node's own joins), so members of crashed runs are gone
//! and every join made elsewhere is seen, including those whose change
//! messages a fault lost (only the resync can repair those).
#![cfg(madsim)]

use plexspaces::Env;
use plexspaces::actor::{Actor, ActorError, ActorId, ActorSystem, Context};
use plexspaces::groups::ProcessGroups;
use plexspaces::seams::{Clock, Rng};
use plexspaces_sim::{Cluster, ClusterConfig, ReportOnPanic};
use plexspaces_tests_sim::cluster_setup::{fast_distribution, network_nemesis, node_addr};
use plexspaces_tests_sim::liveness::finish_within;
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, run_seeds};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PORT: u16 = 7000;
const NODES: usize = 3;
const ACTORS_PER_NODE: usize = 4;

struct Member;

impl Actor for Member {
    type Msg = u64;
    type Reply = u64;
    async fn handle(&mut self, _: &mut Context<Self>, n: u64) -> Result<u64, ActorError> {
        Ok(n)
    }
}

#[derive(Default)]
struct Shared {
    /// Each node's current run: its group service and what it has joined.
    nodes: BTreeMap<usize, (ProcessGroups, BTreeSet<ActorId>)>,
    changes: u64,
    /// Set once the faults healed: the nodes stop changing their groups.
    frozen: bool,
}

async fn run_node(env: Env, index: usize, addrs: Vec<SocketAddr>, shared: Arc<Mutex<Shared>>) {
    let system = ActorSystem::new(env.clone());
    let config = fast_distribution(&addrs, index, NODES);
    system
        .start_distribution(config)
        .await
        .expect("distribution starts");
    let groups = system.process_groups().expect("groups start");
    let actors: Vec<_> = (0..ACTORS_PER_NODE)
        .map(|i| system.spawn(&format!("m{i}"), Member).unwrap())
        .collect();
    shared
        .lock()
        .unwrap()
        .nodes
        .insert(index, (groups.clone(), BTreeSet::new()));
    loop {
        env.sleep(Duration::from_millis(env.gen_range(50..400)))
            .await;
        let actor = &actors[env.gen_range(0..ACTORS_PER_NODE as u64) as usize];
        let (joined, frozen) = {
            let shared = shared.lock().unwrap();
            (shared.nodes[&index].1.contains(actor.id()), shared.frozen)
        };
        if frozen {
            continue;
        }
        let done = if joined {
            groups.leave("acme", "ns", "workers", actor).await.is_ok()
        } else {
            groups.join("acme", "ns", "workers", actor).await.is_ok()
        };
        if done {
            let mut shared = shared.lock().unwrap();
            shared.changes += 1;
            let mine = &mut shared.nodes.get_mut(&index).expect("registered").1;
            if joined {
                mine.remove(actor.id());
            } else {
                mine.insert(actor.id().clone());
            }
        }
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    changes: u64,
    members: usize,
    trace_hash: u64,
}

fn scenario(seed: u64) -> Outcome {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let mut cluster = Cluster::new(ClusterConfig::new(seed));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let addrs: Vec<SocketAddr> = (0..NODES).map(|i| node_addr(i, PORT)).collect();
        for index in 0..NODES {
            let (addrs, shared) = (addrs.clone(), shared.clone());
            cluster.add_node(&format!("n{index}"), move |env| {
                run_node(env, index, addrs.clone(), shared.clone())
            });
        }
        let schedule = network_nemesis(seed, NODES);
        let _report = ReportOnPanic::new(format!("groups seed {seed}\n{schedule}"));
        // The groups stop changing when the faults stop: from then on only
        // the resync on membership changes can repair what a fault lost.
        let clock = plexspaces_sim::SimClock::new(cluster.trace().clone(), Default::default());
        let freezer = {
            let (shared, clock) = (shared.clone(), clock.clone());
            madsim::task::spawn(async move {
                clock.sleep(Duration::from_secs(20)).await;
                shared.lock().unwrap().frozen = true;
            })
        };
        schedule.run(&cluster).await;

        // The liveness oracle: everything after healing ends in time.
        finish_within(
            seed,
            "group views converging after healing",
            Duration::from_secs(300),
            async {
                freezer.await.unwrap();

                // Every live node must list exactly the members joined on the live
                // nodes.
                let deadline = clock.now() + Duration::from_secs(10);
                loop {
                    let (truth, views) = {
                        let shared = shared.lock().unwrap();
                        let truth: BTreeSet<ActorId> = shared
                            .nodes
                            .iter()
                            .filter(|(i, _)| cluster.is_up(**i))
                            .flat_map(|(_, (_, mine))| mine.iter().cloned())
                            .collect();
                        let groups: Vec<(usize, ProcessGroups)> = shared
                            .nodes
                            .iter()
                            .filter(|(i, _)| cluster.is_up(**i))
                            .map(|(i, (g, _))| (*i, g.clone()))
                            .collect();
                        (truth, groups)
                    };
                    let mut agreed = true;
                    let mut seen = Vec::new();
                    for (i, groups) in &views {
                        let members: BTreeSet<ActorId> = groups
                            .members("acme", "ns", "workers")
                            .await
                            .unwrap()
                            .into_iter()
                            .collect();
                        agreed &= members == truth;
                        seen.push((i, members));
                    }
                    if agreed {
                        let shared = shared.lock().unwrap();
                        return Outcome {
                            changes: shared.changes,
                            members: truth.len(),
                            trace_hash: cluster.trace().hash(),
                        };
                    }
                    assert!(
                        clock.now() < deadline,
                        "seed {seed}: views never converged on {truth:?}: {seen:?}"
                    );
                    clock.sleep(Duration::from_millis(100)).await;
                }
            },
        )
        .await
    })
}

#[test]
fn group_views_converge_on_the_live_members_after_the_nemesis() {
    let plan = SeedPlan::from_env(24).with_fresh("groups", 100);
    let outcomes = run_seeds("groups", &plan, scenario);
    assert!(outcomes.iter().all(|o| o.changes > 50), "{outcomes:?}");
    assert_deterministic(2, scenario);
}
