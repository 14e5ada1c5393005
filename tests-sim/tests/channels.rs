//! Channels in the simulator: producers send to a small queue (so they
//! wait for room), consumers receive with timeouts (cancelled waits), and
//! some consumers fail mid-message (they never acknowledge: the message
//! must come back after the ack timeout) or acknowledge late (after it
//! came back); a topic is published to subscribers that read at their own
//! pace. The seed draws every interleaving and delay. Channels live in one
//! node's memory (they are not durable): there are no crashes here, the
//! scheduler and the clock are the adversary.
//!
//! Oracles:
//! - every message sent is acknowledged exactly once (one `ack` succeeds
//!   per message, none is lost), carrying the payload it was sent with;
//! - a delivery's `redeliveries` counts the deliveries before it, and a
//!   message comes back no earlier than the ack timeout after it was last
//!   delivered;
//! - the queue never holds more than its capacity unacknowledged;
//! - every subscriber of the topic receives every message published while
//!   it was subscribed, once, in publishing order;
//! - everything drains after the producers stop (liveness).
#![cfg(madsim)]

use futures::StreamExt;
use plexspaces::Env;
use plexspaces::channels::{ChannelConfig, ChannelService};
use plexspaces::seams::{Clock, Instant, Rng};
use plexspaces_sim::{Cluster, ClusterConfig};
use plexspaces_tests_sim::liveness::finish_within;
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, run_seeds};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const QUEUE: &str = "work";
const TOPIC: &str = "news";
const PRODUCERS: u64 = 3;
const MESSAGES_EACH: u64 = 60;
const CONSUMERS: u64 = 3;
const SUBSCRIBERS: u64 = 2;
const PUBLISHED: u64 = 80;
const CAPACITY: usize = 8;
const ACK_TIMEOUT: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Book {
    /// Payload sent under each message id.
    sent: BTreeMap<u64, Vec<u8>>,
    /// Successful acks per message id.
    acked: BTreeMap<u64, u32>,
    /// Deliveries per message id, and when the last one happened.
    delivered: BTreeMap<u64, (u32, Instant)>,
    /// Sent and not yet acknowledged, at most.
    outstanding_max: usize,
    /// Failures of the oracle seen while running.
    violations: Vec<String>,
    producers_done: u64,
    dropped: u64,
    late_acks: u64,
}

fn payload(producer: u64, n: u64) -> Vec<u8> {
    format!("p{producer}-m{n}").into_bytes()
}

#[derive(Debug, PartialEq)]
struct Outcome {
    sent: usize,
    dropped: u64,
    late_acks: u64,
    outstanding_max: usize,
    trace_hash: u64,
}

async fn run(env: Env, seed: u64) -> Outcome {
    let channels = ChannelService::new(env.clone(), {
        let mut config = ChannelConfig::default();
        config.queue_capacity = CAPACITY;
        config.ack_timeout = ACK_TIMEOUT;
        config.subscriber_capacity = 4;
        config
    });
    let book = Arc::new(Mutex::new(Book::default()));
    let mut tasks = Vec::new();
    for producer in 0..PRODUCERS {
        let (env, channels, book) = (env.clone(), channels.clone(), book.clone());
        tasks.push(env.clone().spawn(async move {
            for n in 0..MESSAGES_EACH {
                env.sleep(Duration::from_millis(env.gen_range(0..15))).await;
                let data = payload(producer, n);
                let id = channels.send_to_queue(QUEUE, data.clone()).await;
                let mut book = book.lock().unwrap();
                let outstanding = book.sent.len() + 1 - book.acked.len();
                book.outstanding_max = book.outstanding_max.max(outstanding);
                if book.sent.insert(id, data).is_some() {
                    book.violations
                        .push(format!("message id {id} handed out twice"));
                }
            }
            book.lock().unwrap().producers_done += 1;
        }));
    }
    for consumer in 0..CONSUMERS {
        let (env, channels, book) = (env.clone(), channels.clone(), book.clone());
        tasks.push(env.clone().spawn(async move {
            loop {
                let done = {
                    let book = book.lock().unwrap();
                    book.producers_done == PRODUCERS && book.acked.len() == book.sent.len()
                };
                if done {
                    return;
                }
                let wait = Duration::from_millis(env.gen_range(1..60));
                let Some(delivery) = channels.receive_from_queue(QUEUE, Some(wait)).await else {
                    continue;
                };
                let now = env.now();
                {
                    let mut book = book.lock().unwrap();
                    let sent = book.sent.get(&delivery.id).cloned();
                    // A delivery can overtake the producer's bookkeeping.
                    if let Some(sent) = sent
                        && sent != delivery.payload
                    {
                        book.violations
                            .push(format!("message {} changed its payload", delivery.id));
                    }
                    let (before, last) = book
                        .delivered
                        .get(&delivery.id)
                        .copied()
                        .map_or((0, None), |(n, at)| (n, Some(at)));
                    if delivery.redeliveries != before {
                        book.violations.push(format!(
                            "message {} delivered with redeliveries {} after {before} deliveries",
                            delivery.id, delivery.redeliveries
                        ));
                    }
                    if let Some(last) = last
                        && now.saturating_duration_since(last) < ACK_TIMEOUT
                    {
                        book.violations.push(format!(
                            "message {} came back {:?} after its last delivery",
                            delivery.id,
                            now.saturating_duration_since(last)
                        ));
                    }
                    book.delivered.insert(delivery.id, (before + 1, now));
                }
                // Consumer 0 now and then fails mid-message: no ack.
                if consumer == 0 && env.gen_range(0..5) == 0 {
                    book.lock().unwrap().dropped += 1;
                    continue;
                }
                // Work, sometimes longer than the ack timeout.
                let slow = env.gen_range(0..8) == 0;
                let work = if slow {
                    ACK_TIMEOUT + Duration::from_millis(50)
                } else {
                    Duration::from_millis(env.gen_range(0..20))
                };
                env.sleep(work).await;
                let acked = channels.ack(QUEUE, delivery.id).is_ok();
                let mut book = book.lock().unwrap();
                if slow {
                    book.late_acks += 1;
                }
                if acked {
                    *book.acked.entry(delivery.id).or_default() += 1;
                }
            }
        }));
    }
    // The topic: subscribers first, then the publisher.
    let mut subscribers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut subscription = channels.subscribe_to_topic(TOPIC);
        let env2 = env.clone();
        subscribers.push(env.spawn(async move {
            let mut got = Vec::new();
            while (got.len() as u64) < PUBLISHED {
                let Some(message) = subscription.next().await else {
                    break;
                };
                got.push(message);
                env2.sleep(Duration::from_millis(env2.gen_range(0..10)))
                    .await;
            }
            got
        }));
    }
    let publisher = {
        let (env, channels) = (env.clone(), channels.clone());
        env.clone().spawn(async move {
            for n in 0..PUBLISHED {
                env.sleep(Duration::from_millis(env.gen_range(0..5))).await;
                let reached = channels
                    .publish_to_topic(TOPIC, n.to_le_bytes().to_vec())
                    .await;
                assert_eq!(reached, SUBSCRIBERS as usize, "every subscriber is reached");
            }
        })
    };

    finish_within(
        seed,
        "draining the queue and the topic",
        Duration::from_secs(120),
        async {
            for task in tasks {
                task.await.expect("a producer or consumer panicked");
            }
            publisher.await.expect("the publisher");
            let expected: Vec<Vec<u8>> = (0..PUBLISHED).map(|n| n.to_le_bytes().to_vec()).collect();
            for subscriber in subscribers {
                let got = subscriber.await.expect("a subscriber");
                assert_eq!(
                    got, expected,
                    "seed {seed}: a subscriber's messages, once each, in order"
                );
            }
        },
    )
    .await;

    let book = book.lock().unwrap();
    assert!(
        book.violations.is_empty(),
        "seed {seed}: {:?}",
        book.violations
    );
    assert_eq!(
        book.sent.len() as u64,
        PRODUCERS * MESSAGES_EACH,
        "seed {seed}: every send returned"
    );
    for id in book.sent.keys() {
        assert_eq!(
            book.acked.get(id),
            Some(&1),
            "seed {seed}: message {id} acknowledged once"
        );
    }
    assert!(
        book.outstanding_max <= CAPACITY,
        "seed {seed}: {} unacknowledged messages held, capacity {CAPACITY}",
        book.outstanding_max
    );
    Outcome {
        sent: book.sent.len(),
        dropped: book.dropped,
        late_acks: book.late_acks,
        outstanding_max: book.outstanding_max,
        trace_hash: 0,
    }
}

fn scenario(seed: u64) -> Outcome {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let mut cluster = Cluster::new(ClusterConfig::new(seed));
        let (tx, rx) = futures::channel::oneshot::channel();
        let tx = Arc::new(Mutex::new(Some(tx)));
        cluster.add_node("n1", move |env| {
            let tx = tx.clone();
            async move {
                let outcome = run(env, seed).await;
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(outcome);
                }
            }
        });
        let outcome = rx.await.expect("the node reports");
        Outcome {
            trace_hash: cluster.trace().hash(),
            ..outcome
        }
    })
}

#[test]
fn queues_deliver_until_acknowledged_and_topics_reach_every_subscriber() {
    let plan = SeedPlan::from_env(24).with_fresh("channels", 150);
    let outcomes = run_seeds("channels", &plan, scenario);
    assert!(
        outcomes.iter().all(|o| o.dropped > 0 && o.late_acks > 0),
        "every seed had dropped deliveries and late acknowledgements: {outcomes:?}"
    );
    assert!(
        outcomes.iter().any(|o| o.outstanding_max == CAPACITY),
        "producers filled the queue in some seed: {outcomes:?}"
    );
    assert_deterministic(4, scenario);
}
