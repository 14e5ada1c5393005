//! Plain (not leased) takes from a shared tuple space while replies are
//! lost: a writer on node 0 puts tuples in (each batch under its own key,
//! so a retried write applies once), takers on every node take them with
//! `take`, while the nemesis partitions, isolates, pauses and resets the
//! nodes and skews their clocks (no node crashes: a taker that dies with a
//! tuple in hand loses it by design; that is what leases are for), and the
//! storage node is cut off, crashed and restarted.
//!
//! Oracle: every tuple written is taken exactly once, and none vanishes —
//! a take whose reply was lost is asked again under the same key, which
//! hands out the same tuple instead of a second one or none.
#![cfg(madsim)]

use plexspaces::actor::ActorSystem;
use plexspaces::distribution::Distribution;
use plexspaces::seams::{Clock, Rng};
use plexspaces::tuplespace::{
    Field, Kind, Pattern, SharedSpaces, SharedSpacesConfig, SharedTupleSpace, Tuple, Value,
};
use plexspaces::{Env, tuple};
use plexspaces_sim::FaultKinds;
use plexspaces_tests_sim::cluster_setup::{
    STORM_CHECKPOINT_INTERVAL, StorageCluster, fast_distribution, nemesis_of, shared_journal,
    wait_all_up,
};
use plexspaces_tests_sim::liveness::finish_within;
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, run_seeds};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PORT: u16 = 7000;
const JOURNAL_PORT: u16 = 7100;
const NODES: usize = 3;
const STORAGE: usize = NODES;
const TAKERS_PER_NODE: usize = 2;
const TUPLES: i64 = 90;
const BATCH: i64 = 10;
const SPACE: &str = "plain";

fn items() -> Pattern {
    Pattern::new(vec![Field::Exact("item".into()), Field::Typed(Kind::Int)])
}

fn int(tuple: &Tuple) -> i64 {
    match &tuple.fields()[1] {
        Value::Int(n) => *n,
        other => panic!("not an int: {other:?}"),
    }
}

#[derive(Default)]
struct Shared {
    nodes: BTreeMap<usize, (Distribution, SharedSpaces)>,
    /// Each item handed to a take, with the taker that got it.
    taken: BTreeMap<i64, Vec<String>>,
    /// Batches the writer saw acknowledged.
    written: i64,
}

fn space_config(env: &Env, storage: SocketAddr) -> SharedSpacesConfig {
    let journal = shared_journal(env, storage, Duration::from_millis(500));
    let mut config = SharedSpacesConfig::new(journal);
    config.hosting.attempt_timeout = Duration::from_millis(500);
    config.hosting.durability.checkpoint_interval = STORM_CHECKPOINT_INTERVAL;
    config.call_timeout = Duration::from_secs(1);
    config.poll_max = Duration::from_millis(100);
    config
}

async fn writer(space: SharedTupleSpace, env: Env, shared: Arc<Mutex<Shared>>) {
    for batch in 0..TUPLES / BATCH {
        let tuples: Vec<Tuple> = (batch * BATCH..(batch + 1) * BATCH)
            .map(|i| tuple!("item", i))
            .collect();
        while space
            .write_all_once(&format!("batch-{batch}"), tuples.clone())
            .await
            .is_err()
        {
            env.sleep(Duration::from_millis(100)).await;
        }
        shared.lock().unwrap().written += BATCH;
        env.sleep(Duration::from_millis(env.gen_range(100..600)))
            .await;
    }
}

async fn taker(space: SharedTupleSpace, env: Env, tag: String, shared: Arc<Mutex<Shared>>) {
    loop {
        match space.take(items()).await {
            Ok(item) => shared
                .lock()
                .unwrap()
                .taken
                .entry(int(&item))
                .or_default()
                .push(tag.clone()),
            Err(_) => env.sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn run_node(env: Env, index: usize, addrs: Vec<SocketAddr>, shared: Arc<Mutex<Shared>>) {
    let system = ActorSystem::new(env.clone());
    let dist = system
        .start_distribution(fast_distribution(&addrs, index, NODES))
        .await
        .expect("distribution starts");
    let spaces = SharedSpaces::register(&system, space_config(&env, addrs[STORAGE])).unwrap();
    shared
        .lock()
        .unwrap()
        .nodes
        .insert(index, (dist.clone(), spaces.clone()));
    for t in 0..TAKERS_PER_NODE {
        let space = spaces.space(SPACE).unwrap();
        let tag = format!("n{index}t{t}");
        drop(env.spawn(taker(space, env.clone(), tag, shared.clone())));
    }
    if index == 0 {
        writer(spaces.space(SPACE).unwrap(), env.clone(), shared.clone()).await;
    }
    std::future::pending::<()>().await;
}

#[derive(Debug, PartialEq)]
struct Outcome {
    taken: usize,
    storage_faults: (u64, u64),
    trace_hash: u64,
}

fn scenario(seed: u64) -> Outcome {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let storage = StorageCluster::start(seed, NODES, (PORT, JOURNAL_PORT), 0x91a1, |_| {}, {
            let shared = shared.clone();
            move |env, index, addrs| run_node(env, index, addrs, shared.clone())
        });
        // Everything that loses replies, nothing that kills a taker.
        let kinds = FaultKinds {
            crash: false,
            disk: false,
            ..FaultKinds::all()
        };
        let schedule = nemesis_of(seed, NODES, kinds);
        let _report = storage
            .storm_of("plain takes", seed, 0x91a1_7a4e, schedule)
            .await;
        let clock = &storage.clock;
        finish_within(
            seed,
            "taking every item after healing",
            Duration::from_secs(300),
            async {
                let nodes: Vec<Distribution> = shared
                    .lock()
                    .unwrap()
                    .nodes
                    .values()
                    .map(|(d, _)| d.clone())
                    .collect();
                wait_all_up(nodes.iter(), NODES, seed).await;
                // Until everything was written and the space is empty; then
                // the takes in flight land (each is asked until it is answered).
                let space = shared.lock().unwrap().nodes[&0].1.space(SPACE).unwrap();
                loop {
                    let written = shared.lock().unwrap().written;
                    if written == TUPLES && matches!(space.count(&items()).await, Ok(0)) {
                        break;
                    }
                    clock.sleep(Duration::from_millis(200)).await;
                }
                clock.sleep(Duration::from_secs(5)).await;
            },
        )
        .await;
        let shared = shared.lock().unwrap();
        for (item, takers) in &shared.taken {
            assert_eq!(
                takers.len(),
                1,
                "seed {seed}: item {item} was taken by {takers:?}"
            );
        }
        assert_eq!(
            shared.taken.keys().copied().collect::<Vec<_>>(),
            (0..TUPLES).collect::<Vec<_>>(),
            "seed {seed}: items vanished"
        );
        Outcome {
            taken: shared.taken.len(),
            storage_faults: (storage.storage_crashes(), storage.storage_sync_errors()),
            trace_hash: storage.cluster.trace().hash(),
        }
    })
}

#[test]
fn plain_takes_hand_out_each_tuple_once_while_replies_are_lost() {
    let plan = SeedPlan::from_env(16).with_fresh("plain_takes", 40);
    let outcomes = run_seeds("plain_takes", &plan, scenario);
    assert!(
        outcomes.iter().any(|o| o.storage_faults.0 > 0),
        "no seed crashed the storage node: {outcomes:?}"
    );
    assert_deterministic(1, scenario);
}
