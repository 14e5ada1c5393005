//! Workflow benchmark: the overhead per step of a durable workflow on the
//! embedded file journal against the same steps as plain function calls
//! and against the journal's own append (the physical floor of a durable
//! step); runs completed per second with 1, 100 and 10,000 concurrent runs
//! of a three-step workflow on the memory journal and on the file journal;
//! and, on the file journal, the journaled messages those runs make per
//! second against the journal's own group-commit ceiling (the same number
//! of appends from as many concurrent appenders, measured in the same run).
//!
//! ```text
//! cargo run --release -p plexspaces-bench --bin workflow_bench [-- --quick]
//! ```

// A benchmark measures real time.
#![allow(clippy::disallowed_methods, missing_docs)]

use plexspaces::actor::ActorSystem;
use plexspaces::durability::JournalBackend;
use plexspaces::storage::journal::{Journal, JournalConfig};
use plexspaces::workflow::{
    ListQuery, RunId, StatusFilter, Workflow, WorkflowConfig, WorkflowContext, WorkflowError,
    Workflows,
};
use plexspaces::{Env, NodeName};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `steps` steps, each adding its index.
struct Steps {
    steps: u64,
    finished: Arc<AtomicUsize>,
}

async fn plain_step(i: u64) -> u64 {
    black_box(i)
}

impl Workflow for Steps {
    type Input = ();
    type Output = u64;

    async fn run(&self, ctx: WorkflowContext, _: ()) -> Result<u64, WorkflowError> {
        let mut sum = 0;
        for i in 0..self.steps {
            sum += ctx
                .step(&format!("s{i}"), |_| async move { Ok(plain_step(i).await) })
                .await?;
        }
        self.finished.fetch_add(1, Ordering::Relaxed);
        Ok(sum)
    }
}

async fn env(name: &str) -> Env {
    let dir =
        std::env::temp_dir().join(format!("plexspaces-wfbench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Env::tokio(NodeName::new("bench").unwrap())
        .with_data_dir(dir)
        .await
        .unwrap()
}

fn config(kind: &str, journal: JournalBackend) -> WorkflowConfig {
    let mut config = WorkflowConfig::new(kind, journal);
    config.call_timeout = Duration::from_secs(120);
    config.hosting.attempt_timeout = Duration::from_secs(60);
    config.hosting.mailbox_capacity = 16_384;
    config
}

/// Journaled changes per run of the three-step workflow: index add, start
/// (which takes the lease: the run starts on the node that drives it),
/// three steps, finish, index finish (the two index changes share their
/// appends with other runs' under load).
const APPENDS_PER_RUN: usize = 7;

/// The file journal of `env`, or the memory journal.
async fn journal(env: &Env, file: bool) -> JournalBackend {
    if file {
        JournalBackend::file(env, JournalConfig::default())
            .await
            .unwrap()
    } else {
        JournalBackend::memory()
    }
}

/// Starts `runs` runs of `steps` steps at once; seconds until all finished.
async fn run_many(env: &Env, kind: &str, runs: usize, steps: u64, file: bool) -> f64 {
    let system = ActorSystem::new(env.clone());
    let journal = journal(env, file).await;
    let finished = Arc::new(AtomicUsize::new(0));
    let flows = Workflows::register(
        &system,
        config(kind, journal),
        Steps {
            steps,
            finished: finished.clone(),
        },
    )
    .unwrap();
    let started = Instant::now();
    let mut starts = Vec::with_capacity(runs);
    for i in 0..runs {
        let flows = flows.clone();
        starts.push(tokio::spawn(async move {
            flows
                .start(&RunId::new("b", &format!("r{i}")).unwrap(), &())
                .await
                .unwrap();
        }));
    }
    for s in starts {
        s.await.unwrap();
    }
    // Finished = the run's end indexed: wait for the code to end, then
    // for no run to be listed as running.
    while finished.load(Ordering::Relaxed) < runs {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let running = ListQuery::new().status(StatusFilter::Running).limit(1);
    while !flows
        .list_page("b", &running)
        .await
        .unwrap()
        .runs
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let completed = ListQuery::new().status(StatusFilter::Completed);
    assert_eq!(flows.list_all("b", &completed).await.unwrap().len(), runs);
    system.shutdown().await;
    seconds
}

/// The file journal's group-commit ceiling: `appenders` concurrent tasks,
/// each appending `per_appender` 128-byte records to a stream of its own;
/// appends per second.
async fn journal_ceiling(env: &Env, appenders: usize, per_appender: usize) -> f64 {
    let journal = journal(env, true).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|i| {
            let journal = journal.clone();
            tokio::spawn(async move {
                let stream = format!("ceiling-{i}");
                for _ in 0..per_appender {
                    journal.append(&stream, &[7u8; 128]).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (appenders * per_appender) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::spawn(async move {
            // Per step: one run of 1,000 steps, against plain calls and
            // against bare journal appends of the same count.
            let steps: u64 = if quick { 200 } else { 1_000 };
            let env = env("steps").await;
            let seconds = run_many(&env, "steps", 1, steps, true).await;
            let per_step = seconds / steps as f64 * 1e6;
            let t = Instant::now();
            let mut sum = 0;
            for i in 0..steps * 1000 {
                sum += plain_step(i).await;
            }
            black_box(sum);
            let plain = t.elapsed().as_secs_f64() / (steps * 1000) as f64 * 1e6;
            let floor_env = self::env("floor").await;
            let journal = JournalBackend::file(&floor_env, JournalConfig::default())
                .await
                .unwrap();
            let t = Instant::now();
            for i in 0..steps {
                journal.append("floor", &i.to_le_bytes()).await.unwrap();
            }
            let append = t.elapsed().as_secs_f64() / steps as f64 * 1e6;
            println!("Workflow benchmark (file journal)");
            println!();
            println!("| per step | µs |");
            println!("|---|---:|");
            println!("| durable workflow step ({steps} steps, one run) | {per_step:.1} |");
            println!("| plain async function call | {plain:.4} |");
            println!("| bare journal append (the floor) | {append:.1} |");
            println!("| step / append | {:.2}x |", per_step / append);
            println!();

            println!("| journal | concurrent runs (3 steps each) | runs/s | steps/s |");
            println!("|---|---:|---:|---:|");
            let sizes: &[usize] = if quick {
                &[1, 100, 1_000]
            } else {
                &[1, 100, 10_000]
            };
            let mut file_rate = 0.0;
            for file in [false, true] {
                let name = if file { "file" } else { "memory" };
                for &runs in sizes {
                    let env = self::env(&format!("many{name}{runs}")).await;
                    let seconds = run_many(&env, &format!("m{runs}"), runs, 3, file).await;
                    let rate = runs as f64 / seconds;
                    println!("| {name} | {runs} | {rate:.0} | {:.0} |", rate * 3.0);
                    file_rate = rate;
                }
            }
            let most = *sizes.last().unwrap();
            let env = self::env("ceiling").await;
            let ceiling = journal_ceiling(&env, most, APPENDS_PER_RUN).await;
            let journaled = file_rate * APPENDS_PER_RUN as f64;
            println!();
            println!("| file journal, {most} concurrent | appends/s |");
            println!("|---|---:|");
            println!(
                "| workflow runs ({APPENDS_PER_RUN} journaled changes each, index changes batched) | {journaled:.0} |"
            );
            println!(
                "| bare appends, {most} appenders (the group-commit ceiling) | {ceiling:.0} |"
            );
            println!("| runs / ceiling | {:.2}x |", journaled / ceiling);
        })
        .await
        .unwrap();
    });
}
