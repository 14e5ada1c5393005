//! Soak: a mixed workload on three loopback nodes in one process, sampled
//! at a fixed interval, checked for growth and drift after warm-up.
//!
//! Each node runs, at once and all the time: tells and asks to an actor on
//! the next node (over TCP), calls to a durable counter on a file journal,
//! calls to virtual actors drawn from a rolling window of ids (so they
//! activate, go idle and deactivate), and writes and takes on a tuple
//! space; node a also starts a three-step workflow (file journal) every
//! second. Every interval it prints resident memory, open files, live
//! tasks and the ask latency of that interval.
//!
//! The checks, on the samples after warm-up (the first fifth of the run,
//! at least 30 s), cut into an earlier and a later half: the highest
//! resident memory, heap in use, open files and live tasks of the later
//! half are within 5% of the earlier half's (plus a small absolute slack:
//! 1 MiB, 4 files, 16 tasks, for values that move by a few units while
//! work is in flight); the median ask latency p50 of the later half is
//! within 2x of the earlier's; under 1% of operations failed. A failed
//! check exits non-zero.
//!
//! ```text
//! cargo run --release --example soak -- --minutes 30   # the benchmark
//! cargo run --example soak -- --seconds 60             # the CI version
//! ```

// A benchmark reads the real clock, the process's own /proc entries, and
// drives its load from tokio tasks.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use plexspaces::actor::{Actor, ActorError, ActorId, ActorSystem, Context};
use plexspaces::distribution::{ClusterSecret, Distribution, DistributionConfig};
use plexspaces::durability::{
    DurabilityConfig, Durable, DurableActor, DurableContext, JournalBackend,
};
use plexspaces::storage::journal::JournalConfig;
use plexspaces::tuple;
use plexspaces::tuplespace::{Field, Kind, Pattern, TupleSpace, TupleSpaceConfig};
use plexspaces::virtual_actor::{VirtualActors, VirtualConfig};
use plexspaces::workflow::{
    RunId, Workflow, WorkflowConfig, WorkflowContext, WorkflowError, Workflows,
};
use plexspaces::{Env, NodeName};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);
const NODES: [&str; 3] = ["a", "b", "c"];

struct Echo;

impl Actor for Echo {
    type Msg = u64;
    type Reply = u64;
    async fn handle(&mut self, _: &mut Context<Self>, n: u64) -> Result<u64, ActorError> {
        Ok(n)
    }
}

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

struct ThreeSteps;

impl Workflow for ThreeSteps {
    type Input = ();
    type Output = u64;
    async fn run(&self, ctx: WorkflowContext, _: ()) -> Result<u64, WorkflowError> {
        let mut sum = 0;
        for i in 0..3u64 {
            sum += ctx.step(&format!("s{i}"), |_| async move { Ok(i) }).await?;
        }
        Ok(sum)
    }
}

/// What the load loops count and measure, shared by all nodes.
#[derive(Default)]
struct Load {
    ops: AtomicU64,
    errors: AtomicU64,
    ask_latencies_us: Mutex<Vec<f64>>,
    stop: AtomicBool,
}

struct Node {
    system: ActorSystem,
    dist: Distribution,
    env: Env,
}

struct Sample {
    at_s: f64,
    rss_bytes: u64,
    heap_bytes: u64,
    open_files: usize,
    tasks: usize,
    ops: u64,
    errors: u64,
    ask_p50_us: f64,
    ask_p99_us: f64,
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// glibc's `struct mallinfo2` (all `size_t`).
#[repr(C)]
struct MallInfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

#[allow(unsafe_code)]
unsafe extern "C" {
    fn mallinfo2() -> MallInfo2;
}

/// Bytes the allocator has handed out and not had back (glibc's count,
/// kept by malloc anyway: no counting allocator slows the run). Resident
/// memory also holds what malloc keeps cached; this is what is live.
#[allow(unsafe_code)]
fn heap_in_use() -> u64 {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct by
    // value; glibc 2.33 and later provide it (Debian 12 has 2.36).
    let info = unsafe { mallinfo2() };
    (info.uordblks + info.hblkhd) as u64
}

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn start_node(name: &str, root: &std::path::Path, seeds: &[std::net::SocketAddr]) -> Node {
    let env = Env::tokio(NodeName::new(name).unwrap())
        .with_data_dir(root.join(name))
        .await
        .unwrap();
    let system = ActorSystem::new(env.clone());
    let secret = ClusterSecret::new(*b"soak-cluster-secret-0123").unwrap();
    let config = DistributionConfig::new("127.0.0.1:0".parse().unwrap(), secret)
        .with_seeds(seeds.iter().copied());
    let dist = system.start_distribution(config).await.unwrap();
    let echo = system.spawn("echo", Echo).unwrap();
    dist.export(&echo).unwrap();
    Node { system, dist, env }
}

/// Runs `op` every `every` until told to stop, counting successes. With
/// `SOAK_ONLY` set (a comma-separated list of the load's names: tells,
/// asks, durable, virtual, space, workflow), only the loads it names run:
/// to find which one a growth comes from.
fn every<F, Fut>(
    load: &Arc<Load>,
    name: &str,
    every: Duration,
    mut op: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut(u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let load = load.clone();
    let enabled =
        std::env::var("SOAK_ONLY").map_or(true, |only| only.split(',').any(|n| n.trim() == name));
    tokio::spawn(async move {
        if !enabled {
            return;
        }
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 0u64;
        while !load.stop.load(Ordering::Relaxed) {
            tick.tick().await;
            n += 1;
            if op(n).await {
                load.ops.fetch_add(1, Ordering::Relaxed);
            } else {
                load.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
}

/// Starts every load loop of node `i`.
async fn start_load(
    nodes: &[Node],
    i: usize,
    load: &Arc<Load>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let node = &nodes[i];
    let next = NodeName::new(NODES[(i + 1) % NODES.len()]).unwrap();
    let remote = node
        .system
        .resolve::<Echo>(&ActorId::new("echo", next).unwrap())
        .unwrap();
    let mut loops = Vec::new();

    // Tells and asks over TCP to the next node's echo actor.
    let (tells, asks, record) = (remote.clone(), remote, load.clone());
    loops.push(every(load, "tells", Duration::from_millis(1), move |n| {
        let tells = tells.clone();
        async move {
            for k in 0..8 {
                if tells.tell(n + k).await.is_err() {
                    return false;
                }
            }
            true
        }
    }));
    loops.push(every(load, "asks", Duration::from_millis(2), move |n| {
        let (asks, record) = (asks.clone(), record.clone());
        async move {
            let started = Instant::now();
            let ok = asks.ask(n, TIMEOUT).await == Ok(n);
            let us = started.elapsed().as_secs_f64() * 1e6;
            record.ask_latencies_us.lock().unwrap().push(us);
            ok
        }
    }));

    // A durable counter on the node's file journal.
    // A journal's in-memory index holds a location per record of every
    // segment not yet compacted, so it grows until its oldest segments are
    // covered by checkpoints and removed. With the default 32 MiB segments
    // would take hours at this load (records are small: about 20 KB/s a
    // node); 256 KiB segments roll and compact every 10 to 15 s, so the
    // plateau comes within warm-up and what the checks see is a leak, not
    // the index filling.
    let mut journal_config = JournalConfig::default();
    journal_config.segment_bytes_max = 256 * 1024;
    let journal = JournalBackend::file(&node.env, journal_config)
        .await
        .unwrap();
    // Its idempotency keys are remembered up to a window; a small one
    // fills during warm-up, so a plateau is reached within the run.
    let mut durability = DurabilityConfig::default();
    durability.dedupe_window = 1000;
    let durable = Durable::new(Counter::default(), journal.clone(), durability);
    let counter = node.system.spawn("durable-counter", durable).unwrap();
    loops.push(every(load, "durable", Duration::from_millis(5), move |n| {
        let counter = counter.clone();
        async move { counter.call(format!("k{n}"), 1, TIMEOUT).await.is_ok() }
    }));

    // Virtual actors from a rolling window of ids: each group of 20 ids is
    // called for 4 s, then left to go idle and deactivate, and comes back
    // 40 s later (200 ids in all: the set of ids is bounded, so what grows
    // with their number levels off).
    let mut config = VirtualConfig::new("v", journal.clone());
    config.deactivation_timeout = Duration::from_secs(2);
    config.durability.checkpoint_on_stop = true;
    // Each id remembers its last keys: a window an id fills within its
    // first few seconds, so every activation carries the same amount.
    config.durability.dedupe_window = 50;
    let virtuals = VirtualActors::register(&node.system, config, |_| Counter(0)).unwrap();
    loops.push(every(load, "virtual", Duration::from_millis(4), move |n| {
        let virtuals = virtuals.clone();
        async move {
            let id = format!("v{}-{}", (n / 1000) % 10, n % 20);
            match virtuals.get(&id) {
                Ok(target) => target.call(format!("c{n}"), 1, TIMEOUT).await.is_ok(),
                Err(_) => false,
            }
        }
    }));

    // A tuple space: a write and a take.
    let space = TupleSpace::new("soak", node.env.clone(), TupleSpaceConfig::default());
    let pattern = Pattern::new(vec![Field::Exact("job".into()), Field::Typed(Kind::Int)]);
    loops.push(every(load, "space", Duration::from_millis(1), move |n| {
        let (space, pattern) = (space.clone(), pattern.clone());
        async move {
            space.write(tuple!["job", n as i64]).await.is_ok()
                && space.take_if_exists(&pattern).await.is_some()
        }
    }));

    // A workflow a second, on node a, on the same journal. A finished
    // run's record goes idle and deactivates after 3 s, checkpointing on
    // the way out; without that checkpoint no segment holding a run's
    // entries could ever be compacted, and this journal's open files and
    // index would grow with the run (the first soak runs found exactly
    // that; workflows now checkpoint on stop by default).
    if i == 0 {
        let mut config = WorkflowConfig::new("soak", journal);
        config.hosting.deactivation_timeout = Duration::from_secs(3);
        let flows = Workflows::register(&node.system, config, ThreeSteps).unwrap();
        loops.push(every(load, "workflow", Duration::from_secs(1), move |n| {
            let flows = flows.clone();
            async move {
                match RunId::new("soak", &format!("r{n}")) {
                    Ok(run) => flows.start(&run, &()).await.is_ok(),
                    Err(_) => false,
                }
            }
        }));
    }
    loops
}

fn sample(started: Instant, load: &Load) -> Sample {
    let mut latencies = std::mem::take(&mut *load.ask_latencies_us.lock().unwrap());
    latencies.sort_by(f64::total_cmp);
    Sample {
        at_s: started.elapsed().as_secs_f64(),
        rss_bytes: resident_bytes(),
        heap_bytes: heap_in_use(),
        open_files: open_files(),
        tasks: tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        ops: load.ops.swap(0, Ordering::Relaxed),
        errors: load.errors.swap(0, Ordering::Relaxed),
        ask_p50_us: percentile(&latencies, 0.5),
        ask_p99_us: percentile(&latencies, 0.99),
    }
}

/// The checks on the samples after warm-up; the failures, if any.
fn check(samples: &[Sample]) -> Vec<String> {
    // Warm-up: the first fifth of the run, and at least 30 s (at 12 s a
    // short run's allocator and journal indexes are still settling). The
    // samples after it are cut in two halves; each measure's highest value
    // in the later half must stay within 5% (plus a small absolute slack)
    // of its highest in the earlier half. Highs, not single samples: live
    // tasks and heap swing with the virtual actors' activation waves.
    let end = samples.last().map_or(0.0, |s| s.at_s);
    let warm_until = (end / 5.0).max(30.0).min(end);
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at_s >= warm_until).collect();
    if after.len() < 2 {
        return vec!["too few samples after warm-up to check (run longer)".into()];
    }
    let (earlier, later) = after.split_at(after.len() / 2);
    let high = |half: &[&Sample], of: fn(&Sample) -> f64| {
        half.iter().map(|s| of(s)).fold(f64::MIN, f64::max)
    };
    let median = |half: &[&Sample], of: fn(&Sample) -> f64| {
        let mut values: Vec<f64> = half.iter().map(|s| of(s)).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let mut failures = Vec::new();
    type Measure = (&'static str, fn(&Sample) -> f64, f64);
    let measures: [Measure; 4] = [
        ("resident bytes", |s| s.rss_bytes as f64, 1024.0 * 1024.0),
        (
            "heap bytes in use",
            |s| s.heap_bytes as f64,
            1024.0 * 1024.0,
        ),
        ("open files", |s| s.open_files as f64, 4.0),
        ("live tasks", |s| s.tasks as f64, 16.0),
    ];
    for (name, of, slack) in measures {
        let (from, to) = (high(earlier, of), high(later, of));
        if to > from * 1.05 + slack {
            failures.push(format!("{name} grew after warm-up: {from:.0} -> {to:.0}"));
        }
    }
    let (from, to) = (
        median(earlier, |s| s.ask_p50_us),
        median(later, |s| s.ask_p50_us),
    );
    if to > 2.0 * from {
        failures.push(format!(
            "ask latency drifted: p50 {from:.0} µs -> {to:.0} µs"
        ));
    }
    let ops: u64 = samples.iter().map(|s| s.ops).sum();
    let errors: u64 = samples.iter().map(|s| s.errors).sum();
    // A few operations fail while a virtual actor deactivates under a call
    // (the caller's retry is the user's), never a large share.
    if errors * 100 > ops {
        failures.push(format!("{errors} of {} operations failed", ops + errors));
    }
    failures
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse::<u64>().expect("a whole number"))
    };
    let duration = match (value("--minutes"), value("--seconds")) {
        (Some(m), _) => Duration::from_secs(m * 60),
        (None, Some(s)) => Duration::from_secs(s),
        (None, None) => Duration::from_secs(30 * 60),
    };
    // A minute per sample for the long run; twelve samples for a short one.
    let interval = Duration::from_secs(60)
        .min(duration / 12)
        .max(Duration::from_secs(1));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let failures = runtime.block_on(async move {
        tokio::spawn(async move { soak(duration, interval).await })
            .await
            .unwrap()
    });
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("soak check failed: {failure}");
        }
        std::process::exit(1);
    }
    println!("soak checks passed");
}

async fn soak(duration: Duration, interval: Duration) -> Vec<String> {
    let root = std::env::temp_dir().join(format!("plexspaces-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut nodes = Vec::new();
    let mut seeds = Vec::new();
    for name in NODES {
        let node = start_node(name, &root, &seeds).await;
        seeds.push(node.dist.local_addr());
        nodes.push(node);
    }
    for node in &nodes {
        node.dist
            .wait_for(TIMEOUT, |members| members.len() == NODES.len())
            .await
            .unwrap();
    }
    let load = Arc::new(Load::default());
    let mut loops = Vec::new();
    for i in 0..nodes.len() {
        loops.extend(start_load(&nodes, i, &load).await);
    }
    println!(
        "soak: 3 loopback nodes, {} s, a sample every {} s",
        duration.as_secs(),
        interval.as_secs()
    );
    println!(
        "| t s | resident MiB | heap in use MiB | open files | live tasks | ops | errors | ask p50 µs | ask p99 µs |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < duration {
        tokio::time::sleep(interval).await;
        let s = sample(started, &load);
        println!(
            "| {:.0} | {:.1} | {:.1} | {} | {} | {} | {} | {:.0} | {:.0} |",
            s.at_s,
            s.rss_bytes as f64 / (1024.0 * 1024.0),
            s.heap_bytes as f64 / (1024.0 * 1024.0),
            s.open_files,
            s.tasks,
            s.ops,
            s.errors,
            s.ask_p50_us,
            s.ask_p99_us
        );
        samples.push(s);
    }
    load.stop.store(true, Ordering::Relaxed);
    for l in loops {
        let _ = l.await;
    }
    for node in nodes {
        node.system.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&root);
    check(&samples)
}
