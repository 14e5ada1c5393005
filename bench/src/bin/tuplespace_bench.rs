//! TupleSpace benchmark: write/take/read throughput with many resident
//! tuples, and blocked-take wake-up latency, against the baseline the issue
//! names: std collections behind a mutex with a tokio `Notify`, matching by
//! scanning.
//!
//! ```text
//! cargo run --release -p plexspaces-bench --bin tuplespace_bench [-- --quick]
//! ```

// A benchmark measures real time and spawns on tokio directly.
#![allow(clippy::disallowed_methods, missing_docs)]

use plexspaces::actor::ActorSystem;
use plexspaces::durability::JournalBackend;
use plexspaces::storage::journal::JournalConfig;
use plexspaces::tuple;
use plexspaces::tuplespace::{
    DurableTupleSpace, Field, Kind, Pattern, SharedSpaces, SharedSpacesConfig, Tuple, TupleSpace,
    TupleSpaceConfig,
};
use plexspaces::{Env, NodeName};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The baseline: a vector behind a mutex, scanned for a match.
#[derive(Default)]
struct Baseline {
    tuples: Mutex<Vec<Tuple>>,
    notify: Notify,
}

impl Baseline {
    fn write(&self, tuple: Tuple) {
        self.tuples.lock().unwrap().push(tuple);
        self.notify.notify_waiters();
    }

    fn try_take(&self, pattern: &Pattern) -> Option<Tuple> {
        let mut tuples = self.tuples.lock().unwrap();
        let at = tuples.iter().position(|t| pattern.matches(t))?;
        Some(tuples.remove(at))
    }

    fn read(&self, pattern: &Pattern) -> Option<Tuple> {
        self.tuples
            .lock()
            .unwrap()
            .iter()
            .find(|t| pattern.matches(t))
            .cloned()
    }

    async fn take(&self, pattern: &Pattern) -> Tuple {
        loop {
            let notified = self.notify.notified();
            if let Some(t) = self.try_take(pattern) {
                return t;
            }
            notified.await;
        }
    }
}

fn head(n: i64) -> Pattern {
    Pattern::new(vec![
        Field::Exact(format!("h{n}").into()),
        Field::Typed(Kind::Int),
    ])
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let ops: i64 = if quick { 20_000 } else { 200_000 };
    let resident: i64 = 10_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::spawn(async move {
            let dir = std::env::temp_dir().join(format!("plexspaces-tsbench-{}", std::process::id()));
            let env = Env::tokio(NodeName::new("bench").unwrap()).with_data_dir(dir).await.unwrap();
            let config = {
    let mut config = TupleSpaceConfig::default();
    config.tuples_max = 1_000_000;
    config
};
            let space = TupleSpace::new("bench", env.clone(), config);
            let baseline = Baseline::default();
            for n in 0..resident {
                space.write(tuple![format!("h{}", n % 100), n]).await.unwrap();
                baseline.write(tuple![format!("h{}", n % 100), n]);
            }
            println!("TupleSpace benchmark: {resident} resident tuples over 100 first-field values, {ops} operations");
            println!();
            println!("| operation | plexspaces ops/s | baseline ops/s | speedup |");
            println!("|---|---:|---:|---:|");

            let t = Instant::now();
            for n in 0..ops {
                let taken = space.take_if_exists(&head(n % 100)).await.unwrap();
                space.write(taken).await.unwrap();
            }
            let ours = 2.0 * ops as f64 / t.elapsed().as_secs_f64();
            let t = Instant::now();
            for n in 0..ops {
                let taken = baseline.try_take(&head(n % 100)).unwrap();
                baseline.write(taken);
            }
            let theirs = 2.0 * ops as f64 / t.elapsed().as_secs_f64();
            println!("| take + write (exact first field) | {ours:.0} | {theirs:.0} | {:.1}x |", ours / theirs);

            let t = Instant::now();
            for n in 0..ops {
                assert!(space.read_if_exists(&head(n % 100)).await.is_some());
            }
            let ours = ops as f64 / t.elapsed().as_secs_f64();
            let t = Instant::now();
            for n in 0..ops {
                assert!(baseline.read(&head(n % 100)).is_some());
            }
            let theirs = ops as f64 / t.elapsed().as_secs_f64();
            println!("| read (exact first field) | {ours:.0} | {theirs:.0} | {:.1}x |", ours / theirs);

            // Wake-up latency: a taker blocks, the writer writes, time to the taker.
            let rounds = if quick { 2_000 } else { 20_000 };
            let wake = Pattern::new(vec![Field::Exact("wake".into()), Field::Typed(Kind::Int)]);
            let mut ours = Vec::with_capacity(rounds);
            let mut theirs = Vec::with_capacity(rounds);
            let baseline = Arc::new(baseline);
            for i in 0..rounds as i64 {
                let (space2, pattern) = (space.clone(), wake.clone());
                let taker = tokio::spawn(async move { space2.take(pattern).await; Instant::now() });
                tokio::task::yield_now().await;
                let sent = Instant::now();
                space.write(tuple!["wake", i]).await.unwrap();
                ours.push(taker.await.unwrap() - sent);

                let (base2, pattern) = (baseline.clone(), wake.clone());
                let taker = tokio::spawn(async move { base2.take(&pattern).await; Instant::now() });
                tokio::task::yield_now().await;
                let sent = Instant::now();
                baseline.write(tuple!["wake", i]);
                theirs.push(taker.await.unwrap() - sent);
            }
            let pct = |v: &mut Vec<Duration>, p: f64| {
                v.sort_unstable();
                v[((v.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6
            };
            println!();
            println!("| blocked take wake-up | p50 µs | p99 µs |");
            println!("|---|---:|---:|");
            println!("| plexspaces | {:.1} | {:.1} |", pct(&mut ours, 0.5), pct(&mut ours, 0.99));
            println!("| baseline (mutex + Notify) | {:.1} | {:.1} |", pct(&mut theirs, 0.5), pct(&mut theirs, 0.99));

            shared_spaces(&env, quick).await;
        })
        .await
        .unwrap();
    });
}

/// A shared space (a durable virtual actor) on one node, against the
/// in-memory space (memory journal: the price of the actor, the journal
/// entry and the dedupe table) and against the durable space on the same
/// file journal (both pay an fsync per change).
async fn shared_spaces(env: &Env, quick: bool) {
    let ops: i64 = if quick { 1_000 } else { 10_000 };
    let resident: i64 = 1_000;
    let system = ActorSystem::new(env.clone());
    let memory = SharedSpaces::register(&system, SharedSpacesConfig::new(JournalBackend::memory()))
        .unwrap()
        .space("mem")
        .unwrap();
    let local = TupleSpace::new("local", env.clone(), TupleSpaceConfig::default());
    let file_journal = JournalBackend::file(env, JournalConfig::default())
        .await
        .unwrap();
    let mut on_file = SharedSpacesConfig::new(file_journal.clone());
    on_file.hosting.kind = "fspace".into();
    let file = SharedSpaces::register(&system, on_file)
        .unwrap()
        .space("file")
        .unwrap();
    let durable = DurableTupleSpace::open(
        "dur",
        env.clone(),
        TupleSpaceConfig::default(),
        file_journal,
    )
    .await
    .unwrap();
    let batch: Vec<Tuple> = (0..resident)
        .map(|n| tuple![format!("h{}", n % 100), n])
        .collect();
    memory.write_all(batch.clone()).await.unwrap();
    file.write_all(batch.clone()).await.unwrap();
    for t in batch {
        local.write(t.clone()).await.unwrap();
        durable.write(t).await.unwrap();
    }
    let rate = |t: Instant, n: i64| 2.0 * n as f64 / t.elapsed().as_secs_f64();

    println!();
    println!("Shared space on one node: {resident} resident tuples, {ops} take + write pairs");
    println!();
    println!("| take + write | shared ops/s | peer ops/s | ratio |");
    println!("|---|---:|---:|---:|");
    let t = Instant::now();
    for n in 0..ops {
        let taken = memory
            .take_if_exists(&head(n % 100))
            .await
            .unwrap()
            .unwrap();
        memory.write(taken).await.unwrap();
    }
    let ours = rate(t, ops);
    let t = Instant::now();
    for n in 0..ops {
        let taken = local.take_if_exists(&head(n % 100)).await.unwrap();
        local.write(taken).await.unwrap();
    }
    let theirs = rate(t, ops);
    println!(
        "| memory journal vs in-memory `TupleSpace` | {ours:.0} | {theirs:.0} | {:.3}x |",
        ours / theirs
    );
    let file_ops = ops / 10;
    let t = Instant::now();
    for n in 0..file_ops {
        let taken = file.take_if_exists(&head(n % 100)).await.unwrap().unwrap();
        file.write(taken).await.unwrap();
    }
    let ours = rate(t, file_ops);
    let t = Instant::now();
    for n in 0..file_ops {
        let taken = durable
            .take_if_exists(&head(n % 100))
            .await
            .unwrap()
            .unwrap();
        durable.write(taken).await.unwrap();
    }
    let theirs = rate(t, file_ops);
    println!(
        "| file journal vs `DurableTupleSpace` (same journal) | {ours:.0} | {theirs:.0} | {:.2}x |",
        ours / theirs
    );

    // Wake-up: a blocked take registers with the space and is woken by
    // the write that hands it the tuple.
    let rounds = if quick { 50 } else { 300 };
    let wake = Pattern::new(vec![Field::Exact("wake".into()), Field::Typed(Kind::Int)]);
    let mut woke = Vec::with_capacity(rounds);
    for i in 0..rounds as i64 {
        let (space, pattern) = (memory.clone(), wake.clone());
        let taker = tokio::spawn(async move {
            space.take(pattern).await.unwrap();
            Instant::now()
        });
        // Let the taker register first (a varying wait).
        tokio::time::sleep(Duration::from_millis(1 + (i % 40) as u64)).await;
        let sent = Instant::now();
        memory.write(tuple!["wake", i]).await.unwrap();
        woke.push(taker.await.unwrap() - sent);
    }
    woke.sort_unstable();
    let pct = |p: f64| woke[((woke.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    println!();
    println!("| shared space blocked take wake-up (pushed) | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|");
    println!(
        "| memory journal, writer and taker on one node | {:.2} | {:.2} | {:.2} |",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}
