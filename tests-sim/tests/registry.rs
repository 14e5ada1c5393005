//! The cluster-wide object registry in the simulator: three nodes register
//! and unregister a small set of names at random (so two nodes often want
//! the same name, and a partition lets both have it) while the nemesis
//! crashes and restarts, pauses, partitions and isolates nodes, resets
//! connections and skews clocks.
//!
//! Oracle: the registrations stop changing when the faults stop; once
//! healed, for every name, every live node's lookup returns the same entry
//! and owner, that entry is one its owner's current run registered and
//! still holds, and a name no live node holds resolves nowhere. So entries
//! of crashed runs are gone, changes a fault lost are repaired, and a name
//! taken on both sides of a partition resolves the same way everywhere.
#![cfg(madsim)]

use plexspaces::Env;
use plexspaces::actor::ActorSystem;
use plexspaces::registry::{ObjectAddress, ObjectRegistration, RegistryError, TenantRegistry};
use plexspaces::seams::{Clock, Rng};
use plexspaces_sim::{Cluster, ClusterConfig, ReportOnPanic};
use plexspaces_tests_sim::cluster_setup::{fast_distribution, network_nemesis, node_addr};
use plexspaces_tests_sim::liveness::finish_within;
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, run_seeds};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PORT: u16 = 7000;
const NODES: usize = 3;
const NAMES: u64 = 8;

#[derive(Default)]
struct Shared {
    /// Each node's current run: its registry and the entries it holds,
    /// by name.
    nodes: BTreeMap<usize, (TenantRegistry, BTreeMap<String, String>)>,
    runs: u64,
    changes: u64,
    /// Registrations refused because another node held the name.
    refused: u64,
    /// Set once the faults healed: the nodes stop changing the registry.
    frozen: bool,
}

async fn run_node(env: Env, index: usize, addrs: Vec<SocketAddr>, shared: Arc<Mutex<Shared>>) {
    let system = ActorSystem::new(env.clone());
    let config = fast_distribution(&addrs, index, NODES);
    system
        .start_distribution(config)
        .await
        .expect("distribution starts");
    let registry = system.registry("acme").expect("a valid tenant");
    let run = {
        let mut shared = shared.lock().unwrap();
        shared.runs += 1;
        shared
            .nodes
            .insert(index, (registry.clone(), BTreeMap::new()));
        shared.runs
    };
    loop {
        env.sleep(Duration::from_millis(env.gen_range(50..400)))
            .await;
        let name = format!("svc-{}", env.gen_range(0..NAMES));
        let mut shared = shared.lock().unwrap();
        if shared.frozen {
            continue;
        }
        let held = shared.nodes[&index].1.contains_key(&name);
        if held {
            registry
                .unregister("ns", &name)
                .expect("the owner unregisters");
            shared.nodes.get_mut(&index).unwrap().1.remove(&name);
            shared.changes += 1;
            continue;
        }
        let endpoint = format!("n{index}/run{run}/{}", env.next_u64() % 1000);
        let registration = ObjectRegistration::new(
            "ns",
            name.as_str(),
            ObjectAddress::Endpoint(endpoint.clone()),
        );
        match registry.register(registration) {
            Ok(()) => {
                shared
                    .nodes
                    .get_mut(&index)
                    .unwrap()
                    .1
                    .insert(name, endpoint);
                shared.changes += 1;
            }
            Err(RegistryError::AlreadyRegistered { .. }) => shared.refused += 1,
            Err(e) => panic!("node {index}: register failed: {e}"),
        }
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    changes: u64,
    refused: u64,
    held: usize,
    trace_hash: u64,
}

/// What every live node must agree on, or why not.
fn check_views(
    seed: u64,
    views: &[(usize, TenantRegistry)],
    holdings: &BTreeMap<usize, BTreeMap<String, String>>,
) -> Result<(), String> {
    for n in 0..NAMES {
        let name = format!("svc-{n}");
        let seen: Vec<(usize, Option<(String, String)>)> = views
            .iter()
            .map(|(i, registry)| {
                let entry = registry.lookup("ns", &name, None).map(|r| {
                    let owner = registry
                        .owner("ns", &name)
                        .expect("a found entry has an owner");
                    let ObjectAddress::Endpoint(at) = r.address else {
                        panic!("seed {seed}: only endpoints are registered: {r:?}");
                    };
                    (owner.to_string(), at)
                });
                (*i, entry)
            })
            .collect();
        if seen.windows(2).any(|w| w[0].1 != w[1].1) {
            return Err(format!("{name}: nodes disagree: {seen:?}"));
        }
        let holders: Vec<(usize, &String)> = holdings
            .iter()
            .filter_map(|(i, held)| held.get(&name).map(|at| (*i, at)))
            .collect();
        match &seen[0].1 {
            None if holders.is_empty() => {}
            None => return Err(format!("{name}: held by {holders:?}, found nowhere")),
            Some((owner, at)) => {
                let real = holders
                    .iter()
                    .any(|(i, held)| owner == &format!("n{i}") && *held == at);
                if !real {
                    return Err(format!(
                        "{name}: resolves to {owner}/{at}, which no live run holds: {holders:?}"
                    ));
                }
            }
        }
    }
    Ok(())
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
        let _report = ReportOnPanic::new(format!("registry seed {seed}\n{schedule}"));
        let clock = plexspaces_sim::SimClock::new(cluster.trace().clone(), Default::default());
        let freezer = {
            let (shared, clock) = (shared.clone(), clock.clone());
            madsim::task::spawn(async move {
                clock.sleep(Duration::from_secs(20)).await;
                shared.lock().unwrap().frozen = true;
            })
        };
        schedule.run(&cluster).await;

        finish_within(
            seed,
            "registry views converging after healing",
            Duration::from_secs(300),
            async {
                freezer.await.unwrap();
                // Convergence within a few resync periods of healing.
                let deadline = clock.now() + Duration::from_secs(10);
                loop {
                    let (views, holdings) = {
                        let shared = shared.lock().unwrap();
                        let live = shared.nodes.iter().filter(|(i, _)| cluster.is_up(**i));
                        let views: Vec<(usize, TenantRegistry)> =
                            live.clone().map(|(i, (r, _))| (*i, r.clone())).collect();
                        let holdings: BTreeMap<usize, BTreeMap<String, String>> =
                            live.map(|(i, (_, held))| (*i, held.clone())).collect();
                        (views, holdings)
                    };
                    match check_views(seed, &views, &holdings) {
                        Ok(()) => {
                            let shared = shared.lock().unwrap();
                            return Outcome {
                                changes: shared.changes,
                                refused: shared.refused,
                                held: holdings.values().map(BTreeMap::len).sum(),
                                trace_hash: cluster.trace().hash(),
                            };
                        }
                        Err(why) => assert!(
                            clock.now() < deadline,
                            "seed {seed}: registry views never converged: {why}"
                        ),
                    }
                    clock.sleep(Duration::from_millis(100)).await;
                }
            },
        )
        .await
    })
}

#[test]
fn registry_views_agree_on_the_live_registrations_after_the_nemesis() {
    let plan = SeedPlan::from_env(24).with_fresh("registry", 100);
    let outcomes = run_seeds("registry", &plan, scenario);
    assert!(outcomes.iter().all(|o| o.changes > 50), "{outcomes:?}");
    assert!(
        outcomes.iter().any(|o| o.refused > 0),
        "no node ever found a name taken: {outcomes:?}"
    );
    assert_deterministic(2, scenario);
}
