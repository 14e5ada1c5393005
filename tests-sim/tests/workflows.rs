//! Durable workflows in the simulator: three nodes run twelve workflows
//! whose records and effects live on a fourth, storage node (a journal
//! server), while the nemesis crashes, pauses, partitions and isolates the
//! three nodes, resets their connections and skews their clocks, and the
//! storage node is cut off from one node at a time. Every node starts its
//! share of the runs and signals them (again after each restart: starting
//! is idempotent and signals are keyed).
//!
//! Each run applies effect "pre" and continues as new; its second history
//! applies "a" and "b" (registering their compensations), starts a child
//! run (of another kind) that applies "child" and awaits it, applies the
//! stamp of its code version, waits for its "go" signal, then applies "c"
//! — which odd runs refuse, so they compensate "b" then "a". Effects are
//! applied to a durable virtual actor under the step's key, which is how
//! a workflow makes an effect happen once. While the runs are under way
//! the code changes: drivers started after the change run version 2, whose
//! stamp ("stamp2") sits behind `patched`; earlier ones stamp "stamp1".
//!
//! Oracles, once the faults stop:
//! - every run reaches its terminal state: even runs complete (so their
//!   signal was not lost), odd runs fail with both steps compensated;
//! - each effect of a run is applied exactly once, and compensations in
//!   reverse order: even runs `pre a b child stampN c`, odd runs
//!   `pre a b child stampN undo-b undo-a`;
//! - each stamp was applied live only by its own version's code.
#![cfg(madsim)]

use plexspaces::actor::{ActorError, ActorSystem};
use plexspaces::distribution::Distribution;
use plexspaces::durability::{DurableActor, DurableContext};
use plexspaces::seams::{Clock, Rng};
use plexspaces::virtual_actor::{VirtualActors, VirtualConfig};
use plexspaces::workflow::{
    RunId, RunStatus, StepError, StepKey, Workflow, WorkflowContext, WorkflowError, Workflows,
};
use plexspaces::{Env, PlantedBug};
use plexspaces_tests_sim::cluster_setup::{
    STORM_CHECKPOINT_INTERVAL, StorageCluster, fast_distribution, patient_retry, shared_journal,
    storm_workflows, wait_all_up,
};
use plexspaces_tests_sim::liveness::finish_within;
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, caught_within, run_seeds};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PORT: u16 = 7000;
const JOURNAL_PORT: u16 = 7100;
const NODES: usize = 3;
const STORAGE: usize = NODES;
const RUNS: u32 = 12;

/// The outside world of one run: the effects applied to it, in order.
#[derive(Default, Serialize, Deserialize)]
struct Effects {
    applied: Vec<String>,
}

impl DurableActor for Effects {
    type Msg = Option<String>;
    type Reply = Vec<String>;

    async fn handle(
        &mut self,
        _ctx: &mut DurableContext<'_>,
        effect: Option<String>,
    ) -> Result<Vec<String>, ActorError> {
        self.applied.extend(effect);
        Ok(self.applied.clone())
    }
}

// What the world saw, outside the system, reset per seed (madsim runs a
// seed on the test's thread): each run's driver starts (its code entered
// from the top), and each step's or compensation's executions that
// succeeded, by run and effect.
thread_local! {
    static DRIVERS: std::cell::RefCell<BTreeMap<u32, u32>> = const { std::cell::RefCell::new(BTreeMap::new()) };
    static SUCCEEDED: std::cell::RefCell<BTreeMap<(u32, String), u32>> = const { std::cell::RefCell::new(BTreeMap::new()) };
    /// Whether the code changed to version 2 (drivers starting now run it).
    static VERSION_2: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Stamps applied live, by run, stamp and the version that ran it.
    static STAMPED: std::cell::RefCell<Vec<(u32, String, u8)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A run's second history starts at input `n + SECOND`.
const SECOND: u32 = 1_000;

/// Applies `effect` to run `n`'s world under `key`.
async fn apply(
    effects: VirtualActors<Effects>,
    n: u32,
    key: StepKey,
    effect: &str,
) -> Result<(), StepError> {
    let world = effects.get(&format!("w{n}")).expect("valid id");
    world
        .call(key, Some(effect.to_string()), Duration::from_secs(2))
        .await
        .map(drop)
        .map_err(|e| StepError::retryable(e.to_string()))?;
    SUCCEEDED.with(|s| *s.borrow_mut().entry((n, effect.to_string())).or_default() += 1);
    Ok(())
}

/// Run `n`'s child: applies "child" to its parent's world.
struct JobChild {
    effects: VirtualActors<Effects>,
}

impl Workflow for JobChild {
    type Input = u32;
    type Output = ();

    async fn run(&self, ctx: WorkflowContext, n: u32) -> Result<(), WorkflowError> {
        DRIVERS.with(|d| *d.borrow_mut().entry(n).or_default() += 1);
        let effects = self.effects.clone();
        ctx.step_with("child", &patient_retry(), |key| {
            apply(effects.clone(), n, key, "child")
        })
        .await
    }
}

struct Job {
    effects: VirtualActors<Effects>,
    children: Workflows<JobChild>,
}

impl Workflow for Job {
    type Input = u32;
    type Output = u32;

    async fn run(&self, ctx: WorkflowContext, input: u32) -> Result<u32, WorkflowError> {
        // The code version is fixed when the driver enters the code.
        let version = if VERSION_2.with(|v| v.get()) { 2 } else { 1 };
        let n = input % SECOND;
        DRIVERS.with(|d| *d.borrow_mut().entry(n).or_default() += 1);
        if input < SECOND {
            let effects = self.effects.clone();
            ctx.step_with("pre", &patient_retry(), |key| {
                apply(effects.clone(), n, key, "pre")
            })
            .await?;
            return Err(ctx.continue_as_new(&(n + SECOND)));
        }
        for label in ["a", "b"] {
            let effects = self.effects.clone();
            ctx.step_with(label, &patient_retry(), |key| {
                apply(effects.clone(), n, key, label)
            })
            .await?;
            let effects = self.effects.clone();
            ctx.on_failure(label, move |key| {
                let effects = effects.clone();
                async move { apply(effects, n, key, &format!("undo-{label}")).await }
            });
        }
        ctx.child(&self.children, "child", &n).await?;
        let stamp = if version == 2 && ctx.patched("stamp2").await? {
            "stamp2"
        } else {
            "stamp1"
        };
        let effects = self.effects.clone();
        ctx.step_with(stamp, &patient_retry(), |key| {
            STAMPED.with(|s| s.borrow_mut().push((n, stamp.to_string(), version)));
            apply(effects.clone(), n, key, stamp)
        })
        .await?;
        let go: Option<bool> = ctx.wait_for_signal("go", Duration::from_secs(600)).await?;
        if go != Some(true) {
            return Err(WorkflowError::failed("no go"));
        }
        if n % 2 == 1 {
            ctx.step("c", |_| async {
                Err::<(), _>(StepError::terminal("refused"))
            })
            .await?;
        }
        let effects = self.effects.clone();
        ctx.step_with("c", &patient_retry(), |key| {
            apply(effects.clone(), n, key, "c")
        })
        .await?;
        Ok(n)
    }
}

fn run_id(n: u32) -> RunId {
    RunId::new("t", &format!("r{n}")).unwrap()
}

#[derive(Default)]
struct Shared {
    nodes: BTreeMap<usize, (Distribution, Workflows<Job>, VirtualActors<Effects>)>,
}

async fn run_node(
    env: Env,
    index: usize,
    addrs: Vec<SocketAddr>,
    shared: Arc<Mutex<Shared>>,
    bug: Option<PlantedBug>,
) {
    let system = ActorSystem::new(env.clone());
    let dist = system
        .start_distribution(fast_distribution(&addrs, index, NODES))
        .await
        .expect("distribution starts");
    let journal = shared_journal(&env, addrs[STORAGE], Duration::from_millis(500));
    let mut hosting = VirtualConfig::new("fx", journal.clone());
    hosting.attempt_timeout = Duration::from_millis(500);
    hosting.durability.checkpoint_interval = STORM_CHECKPOINT_INTERVAL;
    let effects = VirtualActors::register(&system, hosting, |_| Effects::default()).unwrap();
    let children = Workflows::register(
        &system,
        storm_workflows("jobchild", journal.clone()),
        JobChild {
            effects: effects.clone(),
        },
    )
    .unwrap();
    let mut config = storm_workflows("job", journal);
    config.hosting.planted_bug = bug;
    let jobs = Workflows::register(
        &system,
        config,
        Job {
            effects: effects.clone(),
            children,
        },
    )
    .unwrap();
    shared
        .lock()
        .unwrap()
        .nodes
        .insert(index, (dist, jobs.clone(), effects));

    // This node's share of the runs: start each (until acknowledged),
    // then, a little later, send its "go" (keyed: sent once). Every fourth
    // run gets its "go" before it starts: a signal that arrives before the
    // run waits for it must be kept (the planted DropEarlySignal loses
    // exactly these).
    let mine = || (0..RUNS).filter(|n| *n as usize % NODES == index);
    let send_go = |n: u32| {
        let jobs = jobs.clone();
        let env = env.clone();
        async move {
            while jobs
                .signal_once(&run_id(n), &format!("go-{n}"), "go", &true)
                .await
                .is_err()
            {
                env.sleep(Duration::from_millis(100)).await;
            }
        }
    };
    for n in mine().filter(|n| n % 4 == 0) {
        send_go(n).await;
    }
    for n in mine() {
        while jobs.start(&run_id(n), &n).await.is_err() {
            env.sleep(Duration::from_millis(100)).await;
        }
    }
    for n in mine().filter(|n| n % 4 != 0) {
        env.sleep(Duration::from_millis(env.gen_range(100..2000)))
            .await;
        send_go(n).await;
    }
    std::future::pending::<()>().await;
}

#[derive(Debug, PartialEq)]
struct Outcome {
    /// Effects that succeeded more than once (each under the same key).
    reruns: u32,
    /// The storage node\'s crashes and failed syncs (each reopened its journal).
    storage_faults: (u64, u64),
    completed: u32,
    /// Runs stamped by version 1's branch and by version 2's.
    stamps: (u32, u32),
    trace_hash: u64,
}

fn scenario(seed: u64) -> Outcome {
    planted(seed, None)
}

fn planted(seed: u64, bug: Option<PlantedBug>) -> Outcome {
    DRIVERS.with(|d| d.borrow_mut().clear());
    SUCCEEDED.with(|s| s.borrow_mut().clear());
    STAMPED.with(|s| s.borrow_mut().clear());
    VERSION_2.with(|v| v.set(false));
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let storage = StorageCluster::start(seed, NODES, (PORT, JOURNAL_PORT), 0xf10, |_| {}, {
            let shared = shared.clone();
            move |env, index, addrs| run_node(env, index, addrs, shared.clone(), bug)
        });
        // The new code reaches every node while the runs are under way
        // (when, the seed says).
        let change_at = Duration::from_millis(300 + seed.wrapping_mul(7_919) % 3_000);
        drop(madsim::task::spawn(async move {
            madsim::time::sleep(change_at).await;
            VERSION_2.with(|v| v.set(true));
        }));
        let _report = storage.storm("workflows", seed, 0xf10_c0ffee).await;
        let cluster = &storage.cluster;
        // The liveness oracle: every run ends, and its effects are readable, in time.
        finish_within(
            seed,
            "the runs' results and effects after healing",
            Duration::from_secs(900),
            async {
                let nodes: Vec<(Distribution, Workflows<Job>, VirtualActors<Effects>)> =
                    shared.lock().unwrap().nodes.values().cloned().collect();
                wait_all_up(nodes.iter().map(|(d, _, _)| d), NODES, seed).await;
                let (_, jobs, effects) = &nodes[0];
                let mut completed = 0;
                let mut stamps_seen = (0, 0);
                for n in 0..RUNS {
                    let ended = jobs.result(&run_id(n), Duration::from_secs(90)).await;
                    let world = effects
                        .get(&format!("w{n}"))
                        .unwrap()
                        .call(format!("check-{n}"), None, Duration::from_secs(10))
                        .await
                        .unwrap_or_else(|e| {
                            panic!("seed {seed}: run {n}'s effects unreadable: {e}")
                        });
                    let stamps: Vec<&String> =
                        world.iter().filter(|e| e.starts_with("stamp")).collect();
                    assert_eq!(stamps.len(), 1, "seed {seed}: run {n}'s stamps: {world:?}");
                    let stamp = stamps[0].clone();
                    if stamp == "stamp1" {
                        stamps_seen.0 += 1;
                    } else {
                        stamps_seen.1 += 1;
                    }
                    if n % 2 == 0 {
                        assert_eq!(ended, Ok(n), "seed {seed}: run {n} did not complete");
                        assert_eq!(
                            world,
                            ["pre", "a", "b", "child", &stamp, "c"],
                            "seed {seed}: run {n}'s effects"
                        );
                        completed += 1;
                    } else {
                        assert_eq!(
                            ended,
                            Err(WorkflowError::Ended(RunStatus::Failed {
                                error: "step \"c\" failed: refused".into(),
                                compensated: 2
                            })),
                            "seed {seed}: run {n} did not end compensated"
                        );
                        assert_eq!(
                            world,
                            ["pre", "a", "b", "child", &stamp, "undo-b", "undo-a"],
                            "seed {seed}: run {n}'s effects and compensations"
                        );
                    }
                }
                assert!(
                    storage.checkpointed_streams().await > 0,
                    "seed {seed}: no checkpoint went through the shared journal"
                );
                // Each version stamps live only its own branch.
                STAMPED.with(|s| {
                    for (n, stamp, version) in s.borrow().iter() {
                        assert_eq!(
                            stamp == "stamp2",
                            *version == 2,
                            "seed {seed}: run {n}: version {version} ran {stamp} live"
                        );
                    }
                });
                // Outside the system: a step or compensation succeeded at
                // most once per driver of its run (a driver that ran it and
                // lost its lease before recording it makes the next one run
                // it again, under the same key, applied once).
                let drivers = DRIVERS.with(|d| d.borrow().clone());
                let mut reruns = 0;
                SUCCEEDED.with(|s| {
                    for ((n, effect), runs) in s.borrow().iter() {
                        let allowed = drivers.get(n).copied().unwrap_or(0);
                        assert!(
                            *runs <= allowed,
                            "seed {seed}: run {n}'s {effect} ran {runs} times with {allowed} drivers"
                        );
                        reruns += runs - 1;
                    }
                });
                Outcome {
                    reruns,
                    storage_faults: (storage.storage_crashes(), storage.storage_sync_errors()),
                    completed,
                    stamps: stamps_seen,
                    trace_hash: cluster.trace().hash(),
                }
            },
        )
        .await
    })
}

#[test]
fn every_run_ends_with_each_effect_once_under_the_nemesis() {
    // Seed 21 found superseded activations answering queries from stale
    // state (fixed by claim checks before queries).
    let plan = SeedPlan::from_env(12)
        .with_regressions(&[21, 6_000_000_294])
        .with_fresh("workflows", 60);
    let outcomes = run_seeds("workflows", &plan, scenario);
    let reruns: u32 = outcomes.iter().map(|o| o.reruns).sum();
    println!("workflows: {reruns} effects ran again after a driver lost its run");
    assert!(
        outcomes.iter().any(|o| o.storage_faults.0 > 0)
            && outcomes.iter().any(|o| o.storage_faults.1 > 0),
        "no seed crashed the storage node or failed its syncs: {outcomes:?}"
    );
    assert!(outcomes.iter().all(|o| o.completed == RUNS / 2));
    assert!(
        outcomes.iter().any(|o| o.stamps.0 > 0) && outcomes.iter().any(|o| o.stamps.1 > 0),
        "no seed had runs on both sides of the code change: {outcomes:?}"
    );
    assert_deterministic(1, scenario);
}

#[test]
fn a_run_that_drops_early_signals_is_caught() {
    caught_within(
        "DropEarlySignal",
        6,
        &["did not complete", "did not end compensated"],
        |seed| {
            planted(seed, Some(PlantedBug::DropEarlySignal));
        },
    );
}
