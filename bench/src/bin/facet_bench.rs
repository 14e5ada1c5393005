//! Facet benchmark: the cost of the facet chain on a sequential ask
//! round-trip, against the same actor with no facet and a hand-written
//! tokio mpsc + oneshot floor, in one run.
//!
//! - no facet (the fast path: no chain consulted, nothing timed);
//! - 1 and 4 no-op facets (every hook runs and does nothing);
//! - the design's fraud check (reads the payload, lets it through).
//!
//! Each configuration is measured in interleaved rounds and the median
//! round is reported, so a noisy moment does not land on one row. No
//! counting allocator: this is a timing.
//!
//! ```text
//! cargo run --release -p plexspaces-bench --bin facet_bench [-- --quick]
//! ```

#![allow(clippy::disallowed_methods, missing_docs)]

#[path = "../ask_floor.rs"]
mod ask_floor;
use ask_floor::{floor_round, median};
use plexspaces::actor::facet::{Facet, Hook, Message, Rejection, Verdict};
use plexspaces::actor::{Actor, ActorError, ActorRef, ActorSystem, Context, SpawnOptions};
use plexspaces::{Env, NodeName};
use std::time::{Duration, Instant};

enum Msg {
    Transfer(u64),
    Get,
}

struct Account(u64);

impl Actor for Account {
    type Msg = Msg;
    type Reply = u64;
    async fn handle(&mut self, _: &mut Context<Self>, msg: Msg) -> Result<u64, ActorError> {
        if let Msg::Transfer(n) = msg {
            self.0 += n;
        }
        Ok(self.0)
    }
}

/// Does nothing in every hook.
struct NoOp(String);

impl Facet for NoOp {
    fn name(&self) -> &str {
        &self.0
    }
    fn priority(&self) -> i32 {
        100
    }
}

/// The design's fraud check: refuses transfers over a limit.
struct Fraud;

impl Facet for Fraud {
    fn name(&self) -> &str {
        "fraud"
    }
    fn priority(&self) -> i32 {
        400
    }
    fn before<'a>(&'a mut self, msg: &Message<'_>) -> Hook<'a, Verdict> {
        match msg.payload::<Msg>() {
            Some(Msg::Transfer(n)) if *n > 1_000_000 => {
                Hook::ready(Verdict::Reject(Rejection::new("over the limit")))
            }
            _ => Hook::proceed(),
        }
    }
}

fn facets(config: &str) -> Vec<Box<dyn Facet>> {
    match config {
        "1 no-op facet" => vec![Box::new(NoOp("n0".into()))],
        "4 no-op facets" => (0..4)
            .map(|i| Box::new(NoOp(format!("n{i}"))) as Box<dyn Facet>)
            .collect(),
        "fraud facet" => vec![Box::new(Fraud)],
        _ => Vec::new(),
    }
}

const CONFIGS: [&str; 4] = ["no facet", "1 no-op facet", "4 no-op facets", "fraud facet"];

async fn plex_round(actor: &ActorRef<Account>, asks: u64) -> f64 {
    let t = Instant::now();
    for _ in 0..asks {
        actor.ask(Msg::Get, Duration::from_secs(5)).await.unwrap();
    }
    t.elapsed().as_nanos() as f64 / asks as f64
}

/// Runs every configuration on `rt`; returns the floor's and each
/// configuration's median ns/ask.
fn measure(rt: &tokio::runtime::Runtime, asks: u64, rounds: usize) -> (f64, Vec<f64>) {
    rt.block_on(async move {
        tokio::spawn(async move {
            let dir =
                std::env::temp_dir().join(format!("plexspaces-facet-bench-{}", std::process::id()));
            let env = Env::tokio(NodeName::new("bench").unwrap())
                .with_data_dir(dir)
                .await
                .unwrap();
            let system = ActorSystem::new(env);
            let actors: Vec<ActorRef<Account>> = CONFIGS
                .iter()
                .enumerate()
                .map(|(i, config)| {
                    let options = SpawnOptions {
                        facets: facets(config),
                        ..SpawnOptions::default()
                    };
                    system
                        .spawn_with(&format!("acct{i}"), Account(0), options)
                        .unwrap()
                })
                .collect();
            // Warm up every path once; the fraud facet sees transfers too.
            floor_round(asks / 10).await;
            for actor in &actors {
                actor.tell(Msg::Transfer(1)).await.unwrap();
                plex_round(actor, asks / 10).await;
            }
            let mut floor = Vec::new();
            let mut plex = vec![Vec::new(); CONFIGS.len()];
            for _ in 0..rounds {
                floor.push(floor_round(asks).await);
                for (i, actor) in actors.iter().enumerate() {
                    plex[i].push(plex_round(actor, asks).await);
                }
            }
            system.shutdown().await;
            (median(floor), plex.into_iter().map(median).collect())
        })
        .await
        .unwrap()
    })
}

fn print_table(title: &str, floor: f64, plex: &[f64]) {
    println!("\n{title}\n");
    println!("| configuration | ns/ask | vs tokio floor | vs no facet | ns per facet |");
    println!("|---|---:|---:|---:|---:|");
    println!("| tokio floor (mpsc + oneshot) | {floor:.1} | 1.00x | | |");
    let bare = plex[0];
    for (config, ns) in CONFIGS.iter().zip(plex) {
        let count = match *config {
            "1 no-op facet" | "fraud facet" => 1.0,
            "4 no-op facets" => 4.0,
            _ => 0.0,
        };
        let per_facet = if count > 0.0 {
            format!("{:.1}", (ns - bare) / count)
        } else {
            String::new()
        };
        println!(
            "| plexspaces, {config} | {ns:.1} | {:.2}x | {:.2}x | {per_facet} |",
            ns / floor,
            ns / bare
        );
    }
    let marginal = (plex[2] - plex[1]) / 3.0;
    println!("\nmarginal cost of a no-op facet (4 facets - 1 facet, / 3): {marginal:.1} ns");
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (asks, rounds) = if quick { (20_000, 3) } else { (200_000, 7) };
    println!(
        "facet benchmark: sequential ask round-trip, {asks} asks x {rounds} interleaved rounds, median"
    );
    // One thread: the asker and the actor share it, so the table shows
    // the chain's own CPU cost.
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (floor, plex) = measure(&single, asks, rounds);
    drop(single);
    print_table(
        "current-thread runtime (the chain's CPU cost)",
        floor,
        &plex,
    );
    // Two workers, as the actor benchmark runs: a slower handler also
    // changes how often a worker parks between asks.
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (floor, plex) = measure(&multi, asks, rounds);
    print_table("multi-thread runtime, 2 workers", floor, &plex);
}
