//! Events in the simulator: three nodes, each with a subscriber to one
//! topic; node 0's emitter emits while the nemesis crashes and restarts,
//! pauses, partitions and isolates nodes, resets connections and skews
//! clocks; then, healed, it emits a second batch.
//!
//! Oracle: no subscriber ever gets an event twice or out of order (per
//! emitter run, sequence numbers strictly increase), under any fault; and
//! once the cluster is healthy and the emitter's node lists every live
//! subscriber, each of them gets every event of the healthy batch, once,
//! in order.
#![cfg(madsim)]

use plexspaces::Env;
use plexspaces::actor::{Actor, ActorError, ActorId, ActorRef, ActorSystem, Context, SpawnOptions};
use plexspaces::events::{Event, EventEmitterFacet, SubscribeOptions, subscribe};
use plexspaces::groups::ProcessGroups;
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
const HEALTHY_BATCH: u64 = 50;

/// Emits `(phase, n)` on "ledger" for each message.
struct Teller;

impl Actor for Teller {
    type Msg = (u8, u64);
    type Reply = u64;
    async fn handle(&mut self, ctx: &mut Context<Self>, msg: (u8, u64)) -> Result<u64, ActorError> {
        let events = ctx
            .facet_mut::<EventEmitterFacet>()
            .ok_or_else(|| ActorError::new("no emitter"))?;
        events
            .emit("ledger", &msg)
            .map_err(|e| ActorError::new(e.to_string()))
    }
}

/// What one subscriber (one run of one node) received: (emitter run, seq,
/// phase, n).
type Received = Arc<Mutex<Vec<(u64, u64, u8, u64)>>>;

struct Collector(Received);

impl Actor for Collector {
    type Msg = Event;
    type Reply = ();
    async fn handle(&mut self, _: &mut Context<Self>, event: Event) -> Result<(), ActorError> {
        let (phase, n): (u8, u64) = event.decode().map_err(|e| ActorError::new(e.to_string()))?;
        self.0
            .lock()
            .unwrap()
            .push((event.run, event.seq, phase, n));
        Ok(())
    }
}

/// One run of one node, as the test sees it.
struct NodeRun {
    groups: ProcessGroups,
    relay: ActorId,
    received: Received,
}

#[derive(Default)]
struct Shared {
    /// Each node's current run.
    nodes: BTreeMap<usize, NodeRun>,
    /// Every run's receipts, for the no-duplicate oracle.
    all_received: Vec<Received>,
    /// Node 0's teller, in its current run.
    teller: Option<ActorRef<Teller>>,
    emitted: u64,
    /// Set once the faults healed: node 0 stops emitting on its own.
    frozen: bool,
}

async fn run_node(env: Env, index: usize, addrs: Vec<SocketAddr>, shared: Arc<Mutex<Shared>>) {
    let system = ActorSystem::new(env.clone());
    system
        .start_distribution(fast_distribution(&addrs, index, NODES))
        .await
        .expect("distribution starts");
    let groups = system.process_groups().expect("groups start");
    let received: Received = Arc::default();
    let collector = system
        .spawn("collector", Collector(received.clone()))
        .unwrap();
    let subscription = loop {
        match subscribe(
            &system,
            "ledger",
            &collector,
            |e| e,
            SubscribeOptions::default(),
        )
        .await
        {
            Ok(subscription) => break subscription,
            Err(_) => env.sleep(Duration::from_millis(50)).await,
        }
    };
    {
        let mut shared = shared.lock().unwrap();
        shared.all_received.push(received.clone());
        shared.nodes.insert(
            index,
            NodeRun {
                groups,
                relay: subscription.relay_id().clone(),
                received,
            },
        );
    }
    if index != 0 {
        return std::future::pending().await;
    }
    system.enable_events();
    let options = SpawnOptions {
        facets: vec![
            system
                .facet_types()
                .build("events", Default::default())
                .unwrap(),
        ],
        ..SpawnOptions::default()
    };
    let teller = system.spawn_with("teller", Teller, options).unwrap();
    shared.lock().unwrap().teller = Some(teller.clone());
    let mut n = 0;
    loop {
        env.sleep(Duration::from_millis(env.gen_range(20..200)))
            .await;
        if shared.lock().unwrap().frozen {
            continue;
        }
        n += 1;
        if teller.ask((1, n), Duration::from_secs(1)).await.is_ok() {
            shared.lock().unwrap().emitted += 1;
        }
    }
}

/// No subscriber got an event twice or out of order, per emitter run.
fn check_no_duplicates(seed: u64, shared: &Shared) {
    for received in &shared.all_received {
        let received = received.lock().unwrap();
        let mut last: BTreeMap<u64, u64> = BTreeMap::new();
        for (run, seq, _, _) in received.iter() {
            let before = last.insert(*run, *seq).unwrap_or(0);
            assert!(
                *seq > before,
                "seed {seed}: event {seq} of run {run:x} after {before}: {received:?}"
            );
        }
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    emitted: u64,
    faulty_received: usize,
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
        let _report = ReportOnPanic::new(format!("events seed {seed}\n{schedule}"));
        let clock = plexspaces_sim::SimClock::new(cluster.trace().clone(), Default::default());
        schedule.run(&cluster).await;
        shared.lock().unwrap().frozen = true;
        let faulty_received: usize = {
            let shared = shared.lock().unwrap();
            check_no_duplicates(seed, &shared);
            shared
                .all_received
                .iter()
                .map(|r| r.lock().unwrap().len())
                .sum()
        };

        finish_within(
            seed,
            "every live subscriber listed, then the healthy batch delivered",
            Duration::from_secs(300),
            async {
                // Healthy: wait until node 0 lists exactly the live runs'
                // relays.
                let deadline = clock.now() + Duration::from_secs(60);
                loop {
                    let (groups, want) = {
                        let shared = shared.lock().unwrap();
                        let want: Vec<ActorId> = shared
                            .nodes
                            .iter()
                            .filter(|(i, _)| cluster.is_up(**i))
                            .map(|(_, run)| run.relay.clone())
                            .collect();
                        (shared.nodes.get(&0).map(|r| r.groups.clone()), want)
                    };
                    if let Some(groups) = groups
                        && let Ok(mut listed) =
                            groups.members("plexspaces", "events", "ledger").await
                    {
                        listed.sort();
                        let mut want = want;
                        want.sort();
                        if listed == want && want.len() == NODES {
                            break;
                        }
                    }
                    assert!(
                        clock.now() < deadline,
                        "seed {seed}: the views never settled"
                    );
                    clock.sleep(Duration::from_millis(100)).await;
                }
                let teller = shared.lock().unwrap().teller.clone().expect("node 0 runs");
                for n in 1..=HEALTHY_BATCH {
                    teller
                        .ask((2, n), Duration::from_secs(5))
                        .await
                        .unwrap_or_else(|e| panic!("seed {seed}: healthy emit {n}: {e}"));
                }
                let expected: Vec<u64> = (1..=HEALTHY_BATCH).collect();
                let deadline = clock.now() + Duration::from_secs(30);
                loop {
                    let done = {
                        let shared = shared.lock().unwrap();
                        shared.nodes.values().all(|run| {
                            let got: Vec<u64> = run
                                .received
                                .lock()
                                .unwrap()
                                .iter()
                                .filter(|(_, _, phase, _)| *phase == 2)
                                .map(|(_, _, _, n)| *n)
                                .collect();
                            assert!(
                                expected.starts_with(&got),
                                "seed {seed}: healthy events out of order or twice: {got:?}"
                            );
                            got == expected
                        })
                    };
                    if done {
                        break;
                    }
                    assert!(
                        clock.now() < deadline,
                        "seed {seed}: a live subscriber lost a healthy event"
                    );
                    clock.sleep(Duration::from_millis(50)).await;
                }
                let shared = shared.lock().unwrap();
                check_no_duplicates(seed, &shared);
                Outcome {
                    emitted: shared.emitted,
                    faulty_received,
                    trace_hash: cluster.trace().hash(),
                }
            },
        )
        .await
    })
}

#[test]
fn events_reach_every_live_subscriber_once_and_in_order() {
    let plan = SeedPlan::from_env(16).with_fresh("events", 100);
    let outcomes = run_seeds("events", &plan, scenario);
    assert!(outcomes.iter().all(|o| o.emitted > 20), "{outcomes:?}");
    assert_deterministic(2, scenario);
}
