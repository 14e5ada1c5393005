//! Durable queues in the simulator: a producer on node 0 sends messages
//! into a queue shared by three nodes, each under its own key (retried
//! until the queue answers, also by its next run after a crash), while
//! receivers on every node receive, "work" 20–400 ms and acknowledge,
//! now and then give a message back or drop it unacknowledged, and the
//! nemesis crashes, pauses, partitions and isolates the nodes, resets
//! their connections and skews their clocks. The queue's journal lives on
//! a fourth, storage node (a journal server), cut off from one node at a
//! time, crashed, and failing syncs.
//!
//! Oracles, once the faults stop and the queue is drained:
//! - no acknowledged send lost: every message the queue acknowledged was
//!   acknowledged by a receiver or is a dead letter, and the queue holds
//!   nothing else;
//! - sent once: no message id carries a payload sent twice;
//! - each message acknowledged at most once (so each delivery too);
//! - a dead letter only after `MAX_DELIVERIES` deliveries, and an
//!   acknowledgement only of a delivery up to that number;
//! - the nemesis had an effect: some message was delivered again.
#![cfg(madsim)]

use plexspaces::Env;
use plexspaces::actor::ActorSystem;
use plexspaces::channels::{DurableQueue, DurableQueues, DurableQueuesConfig, QueueError};
use plexspaces::distribution::Distribution;
use plexspaces::seams::{Clock, Rng};
use plexspaces_tests_sim::cluster_setup::{
    STORM_CHECKPOINT_INTERVAL, StorageCluster, fast_distribution, shared_journal, wait_all_up,
};
use plexspaces_tests_sim::liveness::finish_within;
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, run_seeds};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PORT: u16 = 7000;
const JOURNAL_PORT: u16 = 7100;
const NODES: usize = 3;
const STORAGE: usize = NODES;
const RECEIVERS_PER_NODE: usize = 2;
const MESSAGES: u32 = 120;
const MAX_DELIVERIES: u32 = 4;
const ACK_TIMEOUT: Duration = Duration::from_secs(1);
const QUEUE: &str = "orders";

#[derive(Default)]
struct Shared {
    nodes: BTreeMap<usize, (Distribution, DurableQueues)>,
    /// Sends the queue acknowledged, by payload.
    sent: BTreeSet<u32>,
    /// Acknowledgements the queue accepted: message id → (payload,
    /// delivery number), every one.
    acked: BTreeMap<u64, Vec<(u32, u32)>>,
    /// Acknowledgements whose outcome is unknown, by message id and
    /// delivery (two receivers may acknowledge two deliveries of one
    /// message at once: one answer must not clear the other's doubt).
    unknown_acks: BTreeSet<(u64, u32)>,
    /// Highest delivery number any receiver saw.
    max_delivery_seen: u32,
    /// Each payload received, and its message id.
    received: BTreeMap<u32, u64>,
}

fn queue_config(env: &Env, storage: SocketAddr) -> DurableQueuesConfig {
    let journal = shared_journal(env, storage, Duration::from_millis(500));
    let mut config = DurableQueuesConfig::new(journal);
    config.hosting.attempt_timeout = Duration::from_millis(500);
    config.hosting.durability.checkpoint_interval = STORM_CHECKPOINT_INTERVAL;
    config.call_timeout = Duration::from_secs(2);
    config.max_deliveries = MAX_DELIVERIES;
    config
}

fn payload(n: u32) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

fn number(payload: &[u8]) -> u32 {
    u32::from_be_bytes(payload.try_into().expect("payloads are four bytes"))
}

/// The producer: each message under its own key, so a send retried (after
/// a failure, or by the producer's next run after a crash) is sent once.
async fn producer(queue: DurableQueue, env: Env, shared: Arc<Mutex<Shared>>) {
    for n in 0..MESSAGES {
        while queue
            .send_once(&format!("m-{n}"), payload(n))
            .await
            .is_err()
        {
            env.sleep(Duration::from_millis(100)).await;
        }
        shared.lock().unwrap().sent.insert(n);
        env.sleep(Duration::from_millis(env.gen_range(10..60)))
            .await;
    }
}

/// A receiver: receives, works, acknowledges; one in ten it gives the
/// message back, one in twenty it forgets it (a crash mid-work).
async fn receiver(queue: DurableQueue, env: Env, shared: Arc<Mutex<Shared>>) {
    loop {
        let delivery = match queue.receive(ACK_TIMEOUT, Duration::from_secs(1)).await {
            Ok(Some(delivery)) => delivery,
            Ok(None) => continue,
            Err(_) => {
                env.sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        {
            let mut shared = shared.lock().unwrap();
            shared.max_delivery_seen = shared.max_delivery_seen.max(delivery.delivery);
            let n = number(&delivery.payload);
            let id = *shared.received.entry(n).or_insert(delivery.id);
            assert_eq!(id, delivery.id, "payload {n} came as two messages");
        }
        env.sleep(Duration::from_millis(env.gen_range(20..400)))
            .await;
        match env.gen_range(0..20) {
            0 => continue,
            1 | 2 => {
                let _ = queue.nack(&delivery).await;
                continue;
            }
            _ => {}
        }
        // Unknown until answered: a crash of this node mid-call leaves it
        // so (the queue may have applied it).
        let named = (delivery.id, delivery.delivery);
        shared.lock().unwrap().unknown_acks.insert(named);
        let outcome = queue.ack(&delivery).await;
        let mut shared = shared.lock().unwrap();
        match outcome {
            Ok(()) => {
                shared.unknown_acks.remove(&named);
                shared
                    .acked
                    .entry(delivery.id)
                    .or_default()
                    .push((number(&delivery.payload), delivery.delivery));
            }
            Err(QueueError::UnknownDelivery) => {
                // Its deadline passed first: not applied.
                shared.unknown_acks.remove(&named);
            }
            Err(_) => {} // outcome unknown: stays listed
        }
    }
}

async fn run_node(env: Env, index: usize, addrs: Vec<SocketAddr>, shared: Arc<Mutex<Shared>>) {
    let system = ActorSystem::new(env.clone());
    let dist = system
        .start_distribution(fast_distribution(&addrs, index, NODES))
        .await
        .expect("distribution starts");
    let queues = DurableQueues::register(&system, queue_config(&env, addrs[STORAGE])).unwrap();
    shared
        .lock()
        .unwrap()
        .nodes
        .insert(index, (dist.clone(), queues.clone()));
    for _ in 0..RECEIVERS_PER_NODE {
        let queue = queues.queue(QUEUE).unwrap();
        drop(env.spawn(receiver(queue, env.clone(), shared.clone())));
    }
    if index == 0 {
        producer(queues.queue(QUEUE).unwrap(), env.clone(), shared.clone()).await;
    }
    std::future::pending::<()>().await;
}

#[derive(Debug, PartialEq)]
struct Outcome {
    storage_faults: (u64, u64),
    acked: usize,
    dead: usize,
    max_delivery_seen: u32,
    unknown_acks: usize,
    trace_hash: u64,
}

fn scenario(seed: u64) -> Outcome {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let storage = StorageCluster::start(seed, NODES, (PORT, JOURNAL_PORT), 0x0de5, |_| {}, {
            let shared = shared.clone();
            move |env, index, addrs| run_node(env, index, addrs, shared.clone())
        });
        let _report = storage
            .storm("durable queues", seed, 0x000d_e50f_7a5c)
            .await;
        let (cluster, clock) = (&storage.cluster, &storage.clock);
        finish_within(
            seed,
            "draining the queue after healing",
            Duration::from_secs(600),
            async {
                let nodes: Vec<(Distribution, DurableQueues)> =
                    shared.lock().unwrap().nodes.values().cloned().collect();
                wait_all_up(nodes.iter().map(|(d, _)| d), NODES, seed).await;
                let queue = nodes[0].1.queue(QUEUE).unwrap();
                // Healed: the producer finishes and the receivers drain.
                let drained = clock
                    .timeout(Duration::from_secs(90), async {
                        loop {
                            let all_sent = shared.lock().unwrap().sent.len() == MESSAGES as usize;
                            if let Ok(stats) = queue.stats().await
                                && all_sent
                                && stats.ready == 0
                                && stats.in_flight == 0
                            {
                                return stats;
                            }
                            clock.sleep(Duration::from_millis(200)).await;
                        }
                    })
                    .await;
                let stats = drained
                    .unwrap_or_else(|_| panic!("seed {seed}: not drained 90 s after healing"));
                let dead = queue
                    .dead_letters(MESSAGES)
                    .await
                    .expect("the queue answers after healing");
                let shared = shared.lock().unwrap();
                let mut payloads: BTreeMap<u32, u64> = BTreeMap::new();
                for (id, acks) in &shared.acked {
                    assert_eq!(
                        acks.len(),
                        1,
                        "seed {seed}: message {id} acknowledged more than once: {acks:?}"
                    );
                    let (n, delivery) = acks[0];
                    assert!(
                        delivery <= MAX_DELIVERIES,
                        "seed {seed}: {id} acked at delivery {delivery}"
                    );
                    assert!(
                        payloads.insert(n, *id).is_none(),
                        "seed {seed}: payload {n} sent twice (ids {} and {id})",
                        payloads[&n]
                    );
                }
                for letter in &dead {
                    assert_eq!(
                        letter.delivery, MAX_DELIVERIES,
                        "seed {seed}: {} died after {} deliveries",
                        letter.id, letter.delivery
                    );
                    assert!(
                        !shared.acked.contains_key(&letter.id),
                        "seed {seed}: {} is acknowledged and dead",
                        letter.id
                    );
                    let n = number(&letter.payload);
                    assert!(
                        payloads.insert(n, letter.id).is_none(),
                        "seed {seed}: payload {n} sent twice"
                    );
                }
                // What is neither acknowledged nor dead was received, and an
                // acknowledgement of it had an unknown outcome (the queue
                // applied it).
                let accounted: BTreeSet<u32> = payloads.keys().copied().collect();
                let unknown: BTreeSet<u64> = shared
                    .unknown_acks
                    .iter()
                    .map(|(id, _)| *id)
                    .filter(|id| !shared.acked.contains_key(id))
                    .collect();
                for n in shared.sent.difference(&accounted) {
                    let id = shared.received.get(n);
                    assert!(
                        id.is_some_and(|id| unknown.contains(id)),
                        "seed {seed}: acknowledged send {n} lost (message {id:?}; unknown acks {unknown:?})"
                    );
                }
                assert_eq!(stats.dead, dead.len() as u64);
                Outcome {
                    storage_faults: (storage.storage_crashes(), storage.storage_sync_errors()),
                    acked: shared.acked.len(),
                    dead: dead.len(),
                    max_delivery_seen: shared.max_delivery_seen,
                    unknown_acks: unknown.len(),
                    trace_hash: cluster.trace().hash(),
                }
            },
        )
        .await
    })
}

#[test]
fn every_acknowledged_send_is_received_and_acknowledged_once_under_the_nemesis() {
    let plan = SeedPlan::from_env(24).with_fresh("durable_queues", 40);
    let outcomes = run_seeds("durable_queues", &plan, scenario);
    assert!(
        outcomes.iter().any(|o| o.max_delivery_seen > 1),
        "no message was ever delivered again: {outcomes:?}"
    );
    assert!(
        outcomes.iter().any(|o| o.storage_faults.0 > 0),
        "no seed crashed the storage node: {outcomes:?}"
    );
    assert!(
        outcomes.iter().all(|o| o.unknown_acks <= 3),
        "acknowledgements of unknown outcome loosen the loss oracle too far: {outcomes:?}"
    );
    assert_deterministic(1, scenario);
}
