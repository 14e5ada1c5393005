//! Virtual actor benchmark: first-message activation latency (placement,
//! spawn, journal claim and recovery, the message journaled and answered)
//! against the floors measured in the same run: a call to an id that is
//! already active (same path, no activation), and spawning a plain actor
//! and asking it once (activation without placement or journal).
//!
//! Three setups: one node with the in-memory journal; two nodes on
//! loopback with the journal on a journal server (ids placed on the other
//! node, so activation crosses the network); and, if `PLEXSPACES_PG` is
//! set, one node with the PostgreSQL journal.
//!
//! ```text
//! cargo run --release -p plexspaces-bench --bin virtual_bench [-- --quick]
//! ```

// A benchmark measures real time.
#![allow(clippy::disallowed_methods, missing_docs)]

use plexspaces::actor::{Actor, ActorError, ActorSystem, Context};
use plexspaces::distribution::{ClusterSecret, DistributionConfig, MemberStatus};
use plexspaces::durability::shared::{
    JournalServer, JournalServerConfig, SharedJournal, SharedJournalConfig,
};
use plexspaces::durability::{DurableActor, DurableContext, JournalBackend};
use plexspaces::storage::journal::MemoryJournal;
use plexspaces::virtual_actor::{VirtualActors, VirtualConfig};
use plexspaces::{Env, NodeName};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);
const SECRET: &[u8] = b"a-cluster-secret-of-some-length";

#[derive(Default, Serialize, Deserialize)]
struct Counter(u64);

impl DurableActor for Counter {
    type Msg = u64;
    type Reply = u64;
    async fn handle(&mut self, _: &mut DurableContext<'_>, n: u64) -> Result<u64, ActorError> {
        self.0 += n;
        Ok(self.0)
    }
}

struct Plain(u64);

impl Actor for Plain {
    type Msg = u64;
    type Reply = u64;
    async fn handle(&mut self, _: &mut Context<Self>, n: u64) -> Result<u64, ActorError> {
        self.0 += n;
        Ok(self.0)
    }
}

async fn env(name: &str) -> Env {
    let dir = std::env::temp_dir().join(format!(
        "plexspaces-virtual-bench-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    Env::tokio(NodeName::new(name).unwrap())
        .with_data_dir(dir)
        .await
        .unwrap()
}

struct Stats {
    p50: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(setup: &str, first: Stats, warm: Stats, plain: Option<&Stats>) {
    println!(
        "{setup:<34} first message p50 {:>8.1} µs  p99 {:>8.1} µs | warm call p50 {:>7.1} µs  p99 {:>7.1} µs | first/warm p50 {:>5.1}x",
        us(first.p50),
        us(first.p99),
        us(warm.p50),
        us(warm.p99),
        us(first.p50) / us(warm.p50)
    );
    if let Some(plain) = plain {
        println!(
            "{:<34} spawn + first ask of a plain actor p50 {:>7.1} µs  p99 {:>7.1} µs | first/plain p50 {:>5.1}x",
            "",
            us(plain.p50),
            us(plain.p99),
            us(first.p50) / us(plain.p50)
        );
    }
}

/// First calls to `ids` fresh ids, then a warm call to each.
async fn measure(counters: &VirtualActors<Counter>, ids: &[String]) -> (Stats, Stats) {
    let mut first = Vec::with_capacity(ids.len());
    for id in ids {
        let target = counters.get(id).unwrap();
        let start = Instant::now();
        target.call(format!("{id}-1"), 1, TIMEOUT).await.unwrap();
        first.push(start.elapsed());
    }
    let mut warm = Vec::with_capacity(ids.len());
    for id in ids {
        let target = counters.get(id).unwrap();
        let start = Instant::now();
        target.call(format!("{id}-2"), 1, TIMEOUT).await.unwrap();
        warm.push(start.elapsed());
    }
    (stats(first), stats(warm))
}

async fn plain_spawn_and_ask(system: &ActorSystem, n: usize) -> Stats {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let actor = system.spawn(&format!("plain-{i}"), Plain(0)).unwrap();
        actor.ask(1, TIMEOUT).await.unwrap();
        samples.push(start.elapsed());
        actor.stop();
    }
    stats(samples)
}

async fn one_node_memory(n: usize) {
    let system = ActorSystem::new(env("mem").await);
    let journal = JournalBackend::Memory(Arc::new(MemoryJournal::new()));
    let counters =
        VirtualActors::register(&system, VirtualConfig::new("c", journal), |_| Counter(0)).unwrap();
    let ids: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    let (first, warm) = measure(&counters, &ids).await;
    let plain = plain_spawn_and_ask(&system, n).await;
    report("one node, memory journal", first, warm, Some(&plain));
    system.shutdown().await;
}

async fn two_nodes_journal_server(n: usize) {
    let secret = ClusterSecret::new(SECRET).unwrap();
    let storage = env("storage").await;
    let store = plexspaces::storage::journal::FileJournal::open(
        storage.disk().clone(),
        Default::default(),
        1,
    )
    .await
    .unwrap();
    let server = JournalServer::start(
        storage,
        JournalServerConfig::new("127.0.0.1:0".parse().unwrap(), secret.clone()),
        store,
    )
    .await
    .unwrap();
    let mut nodes = Vec::new();
    let mut seeds = Vec::new();
    for name in ["va", "vb"] {
        let env = env(name).await;
        let system = ActorSystem::new(env.clone());
        let dist = system
            .start_distribution(
                DistributionConfig::new("127.0.0.1:0".parse().unwrap(), secret.clone())
                    .with_seeds(seeds.clone()),
            )
            .await
            .unwrap();
        seeds.push(dist.local_addr());
        let journal = JournalBackend::Shared(SharedJournal::new(
            env,
            SharedJournalConfig::new(server.local_addr(), secret.clone()),
        ));
        let counters =
            VirtualActors::register(&system, VirtualConfig::new("c", journal), |_| Counter(0))
                .unwrap();
        nodes.push((system, dist, counters));
    }
    for (_, dist, _) in &nodes {
        dist.wait_for(TIMEOUT, |m| {
            m.iter().filter(|m| m.status == MemberStatus::Up).count() == 2
        })
        .await
        .unwrap();
    }
    let (caller, other) = (&nodes[0].2, nodes[1].1.node().clone());
    let ids: Vec<String> = (0..n * 4)
        .map(|i| format!("r{i}"))
        .filter(|id| caller.owner_of(id).as_ref() == Some(&other))
        .take(n)
        .collect();
    let (first, warm) = measure(caller, &ids).await;
    report("two nodes, journal server (remote)", first, warm, None);
    for (system, dist, _) in nodes {
        dist.shutdown();
        system.shutdown().await;
    }
    server.shutdown();
}

async fn one_node_postgres(n: usize) {
    let Ok(connection) = std::env::var("PLEXSPACES_PG") else {
        println!("PostgreSQL: skipped (set PLEXSPACES_PG)");
        return;
    };
    let env = env("pg").await;
    let system = ActorSystem::new(env.clone());
    let journal = plexspaces_postgres::PgJournal::connect(
        env,
        plexspaces_postgres::PgJournalConfig::new(connection),
    )
    .await
    .unwrap();
    let kind = format!("b{}", std::process::id() % 100_000);
    let counters = VirtualActors::register(
        &system,
        VirtualConfig::new(kind, JournalBackend::custom(journal)),
        |_| Counter(0),
    )
    .unwrap();
    let ids: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    let (first, warm) = measure(&counters, &ids).await;
    report("one node, PostgreSQL journal", first, warm, None);
    system.shutdown().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 200 } else { 2000 };
    println!("virtual actor activation, {n} ids per setup");
    one_node_memory(n).await;
    two_nodes_journal_server(n).await;
    one_node_postgres(n).await;
}
