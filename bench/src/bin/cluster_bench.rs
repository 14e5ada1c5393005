//! Cluster-wide primitives on two loopback nodes in one process:
//!
//! - registry lookups of an entry this node owns and of one another node
//!   owns, against the floor of a `Mutex<BTreeMap>` lookup and clone of
//!   the same entry;
//! - how long a registration on node a takes to be seen on node b,
//!   against an ask round trip on the same link (the floor: one message
//!   each way);
//! - how long a blocked take on node b waits for a write on node a to a
//!   shared space hosted on a (the write, the wake to b, b's collecting
//!   call), against the same ask round trip;
//! - durable queue throughput: 8 producers and 8 consumers split across
//!   the two nodes, each message sent, received and acknowledged, on the
//!   file journal, against a PostgreSQL queue table worked the usual way
//!   (`INSERT`; receive = `UPDATE .. WHERE id = (SELECT .. FOR UPDATE SKIP
//!   LOCKED LIMIT 1)` setting a visibility deadline; ack = `DELETE`) with
//!   the same 16 workers in the same run (when `PLEXSPACES_PG` is set).
//!
//! ```text
//! cargo run --release -p plexspaces-bench --bin cluster_bench [-- --quick]
//! ```

// A benchmark measures real time.
#![allow(clippy::disallowed_methods, clippy::disallowed_types, missing_docs)]

use plexspaces::actor::{Actor, ActorError, ActorId, ActorSystem, Context};
use plexspaces::channels::{DurableQueues, DurableQueuesConfig};
use plexspaces::distribution::{ClusterSecret, Distribution, DistributionConfig, MemberStatus};
use plexspaces::durability::JournalBackend;
use plexspaces::registry::{ObjectAddress, ObjectRegistration};
use plexspaces::storage::journal::JournalConfig;
use plexspaces::tuple;
use plexspaces::tuplespace::{Field, Kind, Pattern, SharedSpaces, SharedSpacesConfig};
use plexspaces::{Env, NodeName};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Echo;

impl Actor for Echo {
    type Msg = u64;
    type Reply = u64;
    async fn handle(&mut self, _: &mut Context<Self>, n: u64) -> Result<u64, ActorError> {
        Ok(n)
    }
}

async fn node(name: &str, seeds: &[std::net::SocketAddr]) -> (ActorSystem, Distribution) {
    let dir = std::env::temp_dir().join(format!(
        "plexspaces-cluster-bench-{}-{name}",
        std::process::id()
    ));
    let system = ActorSystem::new(
        Env::tokio(NodeName::new(name).unwrap())
            .with_data_dir(dir)
            .await
            .unwrap(),
    );
    let secret = ClusterSecret::new(*b"benchmark-cluster-secret").unwrap();
    let config = DistributionConfig::new("127.0.0.1:0".parse().unwrap(), secret)
        .with_seeds(seeds.iter().copied());
    let dist = system.start_distribution(config).await.unwrap();
    (system, dist)
}

fn per_op_ns(start: Instant, n: usize) -> f64 {
    start.elapsed().as_secs_f64() * 1e9 / n as f64
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (lookups, propagations) = if quick {
        (100_000, 200)
    } else {
        (1_000_000, 2_000)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let (a, dist_a) = node("a", &[]).await;
        let (b, dist_b) = node("b", &[dist_a.local_addr()]).await;
        for d in [&dist_a, &dist_b] {
            d.wait_for(Duration::from_secs(10), |m| {
                m.iter().filter(|m| m.status == MemberStatus::Up).count() == 2
            })
            .await
            .unwrap();
        }
        let (ra, rb) = (a.registry("acme").unwrap(), b.registry("acme").unwrap());
        let echo = a.spawn("echo", Echo).unwrap();
        ra.register_actor("ns", "echo-a", &echo).unwrap();
        rb.register(ObjectRegistration::new(
            "ns",
            "owned-by-b",
            ObjectAddress::Actor(echo.id().clone()),
        ))
        .unwrap();
        while rb.lookup("ns", "echo-a", None).is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        println!("registry on two loopback nodes, 2 tokio workers");
        println!("{:<44} {:>12} {:>8}", "", "per op", "vs floor");
        let floor = {
            let table = Mutex::new(BTreeMap::new());
            let key = ("acme".to_string(), "ns".to_string(), "echo-a".to_string());
            let entry = ra.lookup("ns", "echo-a", None).unwrap();
            table.lock().unwrap().insert(key.clone(), entry);
            let start = Instant::now();
            for _ in 0..lookups {
                black_box(table.lock().unwrap().get(black_box(&key)).cloned());
            }
            per_op_ns(start, lookups)
        };
        println!(
            "{:<44} {:>9.0} ns",
            "floor: Mutex<BTreeMap> get + clone", floor
        );
        for (what, id) in [
            ("lookup on b of an entry b owns", "owned-by-b"),
            ("lookup on b of an entry a owns", "echo-a"),
        ] {
            let start = Instant::now();
            for _ in 0..lookups {
                black_box(rb.lookup("ns", black_box(id), None));
            }
            let ours = per_op_ns(start, lookups);
            println!("{what:<44} {ours:>9.0} ns {:>7.2}x", ours / floor);
        }
        let start = Instant::now();
        for _ in 0..lookups {
            black_box(rb.lookup_actor::<Echo>("ns", "echo-a").unwrap());
        }
        let ours = per_op_ns(start, lookups);
        println!(
            "{:<44} {ours:>9.0} ns {:>7.2}x",
            "lookup_actor on b (a remote ref to a's actor)",
            ours / floor
        );

        // Propagation: register on a, spin on b until it is seen.
        let remote = b
            .resolve::<Echo>(&ActorId::new("echo", NodeName::new("a").unwrap()).unwrap())
            .unwrap();
        remote.ask(0, Duration::from_secs(5)).await.unwrap();
        let mut asks = Vec::with_capacity(propagations);
        for i in 0..propagations as u64 {
            let start = Instant::now();
            remote.ask(i, Duration::from_secs(5)).await.unwrap();
            asks.push(start.elapsed().as_secs_f64() * 1e6);
        }
        let mut seen = Vec::with_capacity(propagations);
        for i in 0..propagations {
            let id = format!("p-{i}");
            let start = Instant::now();
            ra.register(ObjectRegistration::new(
                "prop",
                id.as_str(),
                ObjectAddress::Endpoint("x".into()),
            ))
            .unwrap();
            while rb.lookup("prop", &id, None).is_none() {
                tokio::task::yield_now().await;
            }
            seen.push(start.elapsed().as_secs_f64() * 1e6);
        }
        asks.sort_by(f64::total_cmp);
        seen.sort_by(f64::total_cmp);
        println!(
            "{:<44} {:>9.1} µs p50 {:>9.1} µs p99",
            "ask round trip b -> a (floor)",
            percentile(&asks, 0.5),
            percentile(&asks, 0.99)
        );
        println!(
            "{:<44} {:>9.1} µs p50 {:>9.1} µs p99  ({:.2}x the ask p50)",
            "registered on a, seen on b",
            percentile(&seen, 0.5),
            percentile(&seen, 0.99),
            percentile(&seen, 0.5) / percentile(&asks, 0.5)
        );

        // Shared space wake-up: hosted on a, the taker on b, the writer on a.
        let journal = JournalBackend::memory();
        let spaces_a =
            SharedSpaces::register(&a, SharedSpacesConfig::new(journal.clone())).unwrap();
        let spaces_b = SharedSpaces::register(&b, SharedSpacesConfig::new(journal)).unwrap();
        let name = (0..)
            .map(|i| format!("wake-{i}"))
            .find(|n| spaces_a.host_of(n).as_ref() == Some(a.node()))
            .unwrap();
        let (on_a, on_b) = (
            spaces_a.space(&name).unwrap(),
            spaces_b.space(&name).unwrap(),
        );
        let pattern = Pattern::new(vec![Field::Exact("wake".into()), Field::Typed(Kind::Int)]);
        on_a.write(tuple!["warm", 0]).await.unwrap();
        let mut woke = Vec::with_capacity(propagations);
        for i in 0..propagations as i64 {
            let (space, pattern) = (on_b.clone(), pattern.clone());
            let taker = tokio::spawn(async move {
                space.take(pattern).await.unwrap();
                Instant::now()
            });
            // Written once the take is registered with the space.
            while on_a.waiting().await.unwrap() == 0 {
                tokio::task::yield_now().await;
            }
            let sent = Instant::now();
            on_a.write(tuple!["wake", i]).await.unwrap();
            woke.push((taker.await.unwrap() - sent).as_secs_f64() * 1e6);
        }
        woke.sort_by(f64::total_cmp);
        println!(
            "{:<44} {:>9.1} µs p50 {:>9.1} µs p99  ({:.2}x the ask p50)",
            "blocked take on b woken by a write on a",
            percentile(&woke, 0.5),
            percentile(&woke, 0.99),
            percentile(&woke, 0.5) / percentile(&asks, 0.5)
        );

        queue_throughput(&a, &b, quick).await;
        dist_b.shutdown();
        dist_a.shutdown();
    });
}

const WORKERS_PER_SIDE: usize = 8;

/// 8 producers and 8 consumers (half on each node) move `per_producer`
/// messages each through one durable queue on the file journal.
async fn queue_throughput(a: &ActorSystem, b: &ActorSystem, quick: bool) {
    let per_producer: u32 = if quick { 50 } else { 250 };
    let total = per_producer as usize * WORKERS_PER_SIDE;
    let journal = JournalBackend::file(a.env(), JournalConfig::default())
        .await
        .unwrap();
    let queues = [
        DurableQueues::register(a, DurableQueuesConfig::new(journal.clone())).unwrap(),
        DurableQueues::register(b, DurableQueuesConfig::new(journal)).unwrap(),
    ];
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WORKERS_PER_SIDE {
        let queue = queues[w % 2].queue("bench").unwrap();
        tasks.push(tokio::spawn(async move {
            for n in 0..per_producer {
                queue.send(vec![n as u8; 64]).await.unwrap();
            }
            0
        }));
        let queue = queues[(w + 1) % 2].queue("bench").unwrap();
        let share = per_producer as usize;
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            while got < share {
                if let Some(d) = queue
                    .receive(Duration::from_secs(30), Duration::from_secs(30))
                    .await
                    .unwrap()
                {
                    queue.ack(&d).await.unwrap();
                    got += 1;
                }
            }
            got
        }));
    }
    let mut received = 0;
    for task in tasks {
        received += task.await.unwrap();
    }
    assert_eq!(received, total);
    let ours = total as f64 / start.elapsed().as_secs_f64();
    println!();
    println!(
        "durable queue, file journal, {WORKERS_PER_SIDE} producers + {WORKERS_PER_SIDE} consumers across two nodes, {total} messages of 64 B"
    );
    println!("{:<44} {:>9.0} msgs/s", "send + receive + ack", ours);
    match std::env::var("PLEXSPACES_PG") {
        Ok(url) => {
            let theirs = postgres_queue(&url, per_producer).await;
            println!(
                "{:<44} {:>9.0} msgs/s  (plexspaces {:.2}x)",
                "PostgreSQL SKIP LOCKED queue",
                theirs,
                ours / theirs
            );
        }
        Err(_) => println!("PostgreSQL SKIP LOCKED queue: skipped (PLEXSPACES_PG not set)"),
    }
}

/// The same workload on a PostgreSQL queue table: one connection per
/// worker; receive claims the oldest visible row with `SKIP LOCKED` and a
/// 30 s visibility deadline, ack deletes it.
async fn postgres_queue(url: &str, per_producer: u32) -> f64 {
    async fn connect(url: &str) -> tokio_postgres::Client {
        let (client, driver) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(driver);
        client
    }
    let setup = connect(url).await;
    setup
        .batch_execute(
            "DROP TABLE IF EXISTS bench_queue;
             CREATE TABLE bench_queue (id BIGSERIAL PRIMARY KEY, payload BYTEA NOT NULL,
                                       visible_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .unwrap();
    let total = per_producer as usize * WORKERS_PER_SIDE;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WORKERS_PER_SIDE {
        let producer = connect(url).await;
        tasks.push(tokio::spawn(async move {
            let insert = producer
                .prepare("INSERT INTO bench_queue (payload) VALUES ($1)")
                .await
                .unwrap();
            for n in 0..per_producer {
                producer
                    .execute(&insert, &[&vec![n as u8; 64]])
                    .await
                    .unwrap();
            }
            0
        }));
        let consumer = connect(url).await;
        let share = per_producer as usize;
        tasks.push(tokio::spawn(async move {
            let receive = consumer
                .prepare(
                    "UPDATE bench_queue SET visible_at = now() + interval '30 seconds'
                     WHERE id = (SELECT id FROM bench_queue WHERE visible_at <= now()
                                 ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
                     RETURNING id, payload",
                )
                .await
                .unwrap();
            let ack = consumer
                .prepare("DELETE FROM bench_queue WHERE id = $1")
                .await
                .unwrap();
            let mut got = 0;
            while got < share {
                match consumer.query_opt(&receive, &[]).await.unwrap() {
                    Some(row) => {
                        let id: i64 = row.get(0);
                        consumer.execute(&ack, &[&id]).await.unwrap();
                        got += 1;
                    }
                    // Nothing visible: the usual short poll.
                    None => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
            got
        }));
    }
    let mut received = 0;
    for task in tasks {
        received += task.await.unwrap();
    }
    assert_eq!(received, total);
    total as f64 / start.elapsed().as_secs_f64()
}
