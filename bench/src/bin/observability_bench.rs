//! Observability benchmark: what the metrics and tracing facets cost on
//! ask and tell throughput, against the same actor with neither (which
//! still feeds the node's per-kind counters, as every actor does) and a
//! hand-written tokio mpsc + oneshot floor, in one run.
//!
//! - no facet;
//! - an empty facet (no hooks: what running an actor with facets costs);
//! - the metrics facet (per-actor counters, the kind's latency histogram
//!   on a sample of one message in 32);
//! - the tracing facet sampling 1% (`ratio 0.01`) and 100% (`always`),
//!   with a node tracer whose batch exporter discards the spans (the cost
//!   measured is the runtime's and the SDK's, not a collector's).
//!
//! Interleaved rounds, the median round reported. No counting allocator:
//! this is a timing.
//!
//! ```text
//! cargo run --release -p plexspaces-bench --bin observability_bench [-- --quick]
//! ```

#![allow(clippy::disallowed_methods, missing_docs)]

#[path = "../ask_floor.rs"]
mod ask_floor;
use ask_floor::{floor_round, median};
use plexspaces::actor::builtin_facets::{MetricsFacet, TracingFacet};
use plexspaces::actor::facet::{Facet, Hooks};
use plexspaces::actor::{Actor, ActorError, ActorRef, ActorSystem, Context, SpawnOptions};
use plexspaces::observability::Sampling;
use plexspaces::observability::traces::NodeTraces;
use plexspaces::{Env, NodeName};
use std::time::{Duration, Instant};

struct Counter(u64);

impl Actor for Counter {
    type Msg = u64;
    type Reply = u64;
    async fn handle(&mut self, _: &mut Context<Self>, n: u64) -> Result<u64, ActorError> {
        self.0 += n;
        Ok(self.0)
    }
}

/// Discards every span (the exporter's own cost is a collector's).
#[derive(Debug)]
struct Discard;

impl opentelemetry_sdk::trace::SpanExporter for Discard {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        std::hint::black_box(batch);
        Ok(())
    }
}

const CONFIGS: [&str; 5] = [
    "no facet",
    "empty facet",
    "metrics",
    "tracing 0.01",
    "tracing always",
];

/// A facet with no hooks and no timing: what entering the chain costs.
struct Empty;

impl Facet for Empty {
    fn name(&self) -> &str {
        "empty"
    }
    fn priority(&self) -> i32 {
        100
    }
    fn hooks(&self) -> Hooks {
        Hooks::NONE
    }
}

/// `--only NAME` (a configuration's name): profile one configuration
/// (with `--tells` or `--asks`, those alone, without the floor).
fn only() -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned())
}

fn facets(config: &str) -> Vec<Box<dyn Facet>> {
    match config {
        "empty facet" => vec![Box::new(Empty)],
        "metrics" => vec![Box::new(MetricsFacet::new().0)],
        "tracing 0.01" => vec![Box::new(TracingFacet::new().sampled(Sampling::Ratio(0.01)))],
        "tracing always" => vec![Box::new(TracingFacet::new().sampled(Sampling::Always))],
        _ => Vec::new(),
    }
}

async fn ask_round(actor: &ActorRef<Counter>, asks: u64) -> f64 {
    let t = Instant::now();
    for _ in 0..asks {
        actor.ask(1, Duration::from_secs(5)).await.unwrap();
    }
    t.elapsed().as_nanos() as f64 / asks as f64
}

async fn tell_round(actor: &ActorRef<Counter>, tells: u64) -> f64 {
    let t = Instant::now();
    for _ in 0..tells {
        actor.tell(1).await.unwrap();
    }
    // Every tell handled: the ask queues behind them.
    actor.ask(0, Duration::from_secs(30)).await.unwrap();
    t.elapsed().as_nanos() as f64 / tells as f64
}

struct Medians {
    floor: f64,
    ask: Vec<f64>,
    tell: Vec<f64>,
    /// Per configuration, the median over rounds of its time over the
    /// plain actor's in the same round (paired: drift between rounds
    /// cancels out).
    ask_ratio: Vec<f64>,
    tell_ratio: Vec<f64>,
}

/// The median over rounds of `samples[i][r] / samples[0][r]`, per `i`.
fn paired_ratios(samples: &[Vec<f64>]) -> Vec<f64> {
    samples
        .iter()
        .map(|mine| {
            let ratios = mine
                .iter()
                .zip(&samples[0])
                .map(|(m, base)| m / base)
                .collect();
            median(ratios)
        })
        .collect()
}

fn measure(rt: &tokio::runtime::Runtime, n: u64, rounds: usize) -> Medians {
    rt.block_on(async move {
        tokio::spawn(async move {
            let env = Env::tokio(NodeName::new("bench").unwrap());
            let provider = NodeTraces::provider_builder(&env, Sampling::Always)
                .with_batch_exporter(Discard)
                .build();
            env.traces()
                .install_provider(provider, Sampling::Always)
                .unwrap();
            let system = ActorSystem::new(env.clone());
            let only = only();
            let actors: Vec<ActorRef<Counter>> = CONFIGS
                .iter()
                .enumerate()
                .map(|(i, config)| {
                    let wanted = only.as_deref().is_none_or(|o| o == *config);
                    let options = SpawnOptions {
                        facets: if wanted { facets(config) } else { Vec::new() },
                        ..SpawnOptions::default()
                    };
                    system
                        .spawn_with(&format!("c{i}"), Counter(0), options)
                        .unwrap()
                })
                .collect();
            floor_round(n / 10).await;
            for actor in &actors {
                ask_round(actor, n / 10).await;
                tell_round(actor, n / 10).await;
            }
            let mut floor = Vec::new();
            let mut ask = vec![Vec::new(); CONFIGS.len()];
            let mut tell = vec![Vec::new(); CONFIGS.len()];
            let tells_only = std::env::args().any(|a| a == "--tells");
            let asks_only = std::env::args().any(|a| a == "--asks");
            for round in 0..rounds {
                if !tells_only && !asks_only {
                    floor.push(floor_round(n).await);
                }
                // Each round starts at another configuration, so none is
                // always the one measured first (or last) after the floor.
                for k in 0..CONFIGS.len() {
                    let i = (round + k) % CONFIGS.len();
                    if only.as_deref().is_some_and(|o| o != CONFIGS[i]) {
                        continue;
                    }
                    if !tells_only {
                        ask[i].push(ask_round(&actors[i], n).await);
                    }
                    if !asks_only {
                        tell[i].push(tell_round(&actors[i], n).await);
                    }
                }
            }
            system.shutdown().await;
            env.traces().flush();
            Medians {
                floor: median(floor),
                ask_ratio: paired_ratios(&ask),
                tell_ratio: paired_ratios(&tell),
                ask: ask.into_iter().map(median).collect(),
                tell: tell.into_iter().map(median).collect(),
            }
        })
        .await
        .unwrap()
    })
}

fn print_table(title: &str, m: &Medians) {
    println!("\n{title}\n");
    println!(
        "| configuration | ns/ask | ask vs no facet (paired) | ns/tell | tell vs no facet (paired) |"
    );
    println!("|---|---:|---:|---:|---:|");
    println!("| tokio floor (mpsc + oneshot) | {:.1} | | | |", m.floor);
    for (i, config) in CONFIGS.iter().enumerate() {
        println!(
            "| plexspaces, {config} | {:.1} | {:.2}x | {:.1} | {:.2}x |",
            m.ask[i], m.ask_ratio[i], m.tell[i], m.tell_ratio[i]
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (n, rounds) = if quick { (20_000, 3) } else { (200_000, 11) };
    println!(
        "observability benchmark: {n} asks and {n} tells per configuration x {rounds} interleaved rounds, median"
    );
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let m = measure(&single, n, rounds);
    drop(single);
    print_table("current-thread runtime", &m);
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let m = measure(&multi, n, rounds);
    print_table("multi-thread runtime, 2 workers", &m);
}
