//! Durable actor benchmark: what journaling costs per message against the
//! same actor without it, with group commit on and off, and how long
//! recovery of 1,000,000 journaled messages takes with and without
//! checkpoints.
//!
//! ```text
//! cargo run --release -p plexspaces-bench --bin durable_bench [-- --quick]
//! ```

// A benchmark measures real time.
#![allow(clippy::disallowed_methods, missing_docs)]

use plexspaces::actor::{Actor, ActorError, ActorSystem, Context};
use plexspaces::durability::{
    DurabilityConfig, Durable, DurableActor, DurableContext, JournalBackend,
};
use plexspaces::storage::journal::JournalConfig;
use plexspaces::{Env, NodeName};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);

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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn env(name: &str) -> Env {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench-durable")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    Env::tokio(NodeName::new("bench").unwrap())
        .with_data_dir(dir)
        .await
        .unwrap()
}

/// `callers` actors, one caller each, `per_caller` sequential calls each.
/// Returns (messages/s, p50 µs, p99 µs).
async fn calls(
    system: &ActorSystem,
    journal: Option<JournalBackend>,
    callers: usize,
    per_caller: u64,
) -> (f64, f64, f64) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let system = system.clone();
            let journal = journal.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_caller as usize);
                match journal {
                    None => {
                        let actor = system.spawn(&format!("plain{c}"), Plain(0)).unwrap();
                        for _ in 0..per_caller {
                            let t = Instant::now();
                            actor.ask(1, TIMEOUT).await.unwrap();
                            latencies.push(t.elapsed());
                        }
                    }
                    Some(journal) => {
                        let durable =
                            Durable::new(Counter::default(), journal, DurabilityConfig::default());
                        let actor = system.spawn(&format!("durable{c}"), durable).unwrap();
                        for i in 0..per_caller {
                            let t = Instant::now();
                            actor.call(format!("k{i}"), 1, TIMEOUT).await.unwrap();
                            latencies.push(t.elapsed());
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let rate = latencies.len() as f64 / start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    (rate, at(0.5), at(0.99))
}

/// Journals `messages` messages through one durable actor on a memory
/// journal, restarts it, and times recovery to the first answered call.
async fn recovery(
    system: &ActorSystem,
    messages: u64,
    checkpoint_interval: u64,
) -> (Duration, u64) {
    let journal = JournalBackend::memory();
    let mut config = DurabilityConfig::default();
    config.checkpoint_interval = checkpoint_interval;
    config.dedupe_window = 1000;
    let name = format!("recover{checkpoint_interval}");
    let actor = system
        .spawn(
            &name,
            Durable::new(Counter::default(), journal.clone(), config.clone()),
        )
        .unwrap();
    for i in 0..messages {
        actor
            .tell(plexspaces::durability::Request::new(format!("m{i}"), 1))
            .await
            .unwrap();
    }
    assert_eq!(actor.call("flush", 0, TIMEOUT).await.unwrap(), messages);
    actor.stop();
    actor.wait_exit().await;
    let start = Instant::now();
    let actor = system
        .spawn(&name, Durable::new(Counter::default(), journal, config))
        .unwrap();
    let total = actor.call("after", 0, TIMEOUT).await.unwrap();
    (start.elapsed(), total)
}

/// One appender on the bare journal: `ops` appends of a 64-byte record,
/// each waiting for its fsync. Returns appends/s.
async fn bare_appends(journal: &JournalBackend, ops: u64) -> f64 {
    use plexspaces::storage::journal::Journal;
    let record = [7u8; 64];
    let start = Instant::now();
    for _ in 0..ops {
        journal.append("bare@bench", &record).await.unwrap();
    }
    ops as f64 / start.elapsed().as_secs_f64()
}

/// A durable actor with one caller against the journal's one-appender
/// rate, on one file journal, alternated round by round so both see the
/// same disk weather; the median round's ratio is the figure.
fn durable_vs_one_appender(rt: &tokio::runtime::Runtime, scale: u64) {
    const ROUNDS: usize = 7;
    let ops = (1_000 / scale).max(50);
    println!(
        "| round | journal, 1 appender, appends/s | durable actor, 1 caller, calls/s | ratio |"
    );
    println!("|---|---:|---:|---:|");
    let ratios = rt.block_on(async move {
        tokio::spawn(async move {
            let env = env("durable-vs-appender").await;
            let journal = JournalBackend::file(&env, JournalConfig::default())
                .await
                .unwrap();
            let system = ActorSystem::new(env.clone());
            let durable = Durable::new(
                Counter::default(),
                journal.clone(),
                DurabilityConfig::default(),
            );
            let actor = system.spawn("durable-round", durable).unwrap();
            let mut ratios = Vec::with_capacity(ROUNDS);
            let mut key = 0u64;
            for round in 0..ROUNDS {
                let bare = bare_appends(&journal, ops).await;
                let start = Instant::now();
                for _ in 0..ops {
                    key += 1;
                    actor.call(format!("k{key}"), 1, TIMEOUT).await.unwrap();
                }
                let durable = ops as f64 / start.elapsed().as_secs_f64();
                println!(
                    "| {round} | {bare:.0} | {durable:.0} | {:.2}x |",
                    durable / bare
                );
                ratios.push(durable / bare);
            }
            ratios
        })
        .await
        .unwrap()
    });
    let mut ratios = ratios;
    ratios.sort_by(f64::total_cmp);
    println!();
    println!(
        "durable actor vs one appender, median of {ROUNDS} alternated rounds: {:.2}x",
        ratios[ROUNDS / 2]
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    let rt = runtime();
    if std::env::args().any(|a| a == "--rounds-only") {
        durable_vs_one_appender(&rt, scale);
        return;
    }
    println!("durable actor benchmark (2 tokio worker threads; files under target/bench-durable)");
    println!();
    println!("| case | msgs/s | p50 µs | p99 µs | cost vs plain |");
    println!("|---|---:|---:|---:|---:|");
    let cases: Vec<(&str, usize, u64, Option<JournalConfig>, bool)> = vec![
        ("plain actor, 1 caller", 1, 20_000, None, false),
        ("durable, memory journal, 1 caller", 1, 20_000, None, true),
        (
            "durable, file journal, group commit, 1 caller",
            1,
            2_000,
            Some(JournalConfig::default()),
            true,
        ),
        (
            "durable, file journal, group commit, 64 callers",
            64,
            300,
            Some(JournalConfig::default()),
            true,
        ),
        (
            "durable, file journal, no group commit, 64 callers",
            64,
            60,
            Some({
                let mut config = JournalConfig::default();
                config.batch_records_max = 1;
                config
            }),
            true,
        ),
    ];
    let mut plain_rate = 0.0;
    for (label, callers, per_caller, file, durable) in cases {
        let (rate, p50, p99) = rt.block_on(async {
            tokio::spawn(async move {
                let env = env(&label.replace([' ', ','], "_")).await;
                let system = ActorSystem::new(env.clone());
                let journal = match (durable, file) {
                    (false, _) => None,
                    (true, None) => Some(JournalBackend::memory()),
                    (true, Some(config)) => Some(JournalBackend::file(&env, config).await.unwrap()),
                };
                calls(&system, journal, callers, (per_caller / scale).max(10)).await
            })
            .await
            .unwrap()
        });
        if plain_rate == 0.0 {
            plain_rate = rate;
        }
        println!(
            "| {label} | {rate:.0} | {p50:.1} | {p99:.1} | {:.1}x |",
            plain_rate / rate
        );
    }
    println!();
    durable_vs_one_appender(&rt, scale);
    println!();
    println!("| recovery of journaled messages | time | messages/s |");
    println!("|---|---:|---:|");
    let messages = 1_000_000 / scale;
    for (label, interval) in [
        ("no checkpoint", u64::MAX),
        ("checkpoint every 1000 messages", 1000),
    ] {
        let (elapsed, total) = rt.block_on(async move {
            tokio::spawn(async move {
                let system = ActorSystem::new(env("recovery").await);
                recovery(&system, messages, interval).await
            })
            .await
            .unwrap()
        });
        assert_eq!(total, messages);
        println!(
            "| {messages} messages, {label} | {:.3} s | {:.2} M |",
            elapsed.as_secs_f64(),
            messages as f64 / elapsed.as_secs_f64() / 1e6
        );
    }
    let _ = std::fs::remove_dir_all(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-durable"),
    );
}
