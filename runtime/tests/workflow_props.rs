//! Property: for arbitrary step outcomes (success, retryable failures that
//! pass, retryable failures that never pass, terminal failures) and any
//! crash point (before a step's effect, or after it but before the step
//! is recorded), a run that crashes and resumes on a new node ends exactly
//! as the same run without a crash: same status, same output, and the
//! same effects applied (each once: the effects are keyed by the step's
//! idempotency key, as a durable actor's would be), compensations
//! included.
//!
//! The runs also start children (of another kind, whose steps are effects
//! too), continue as new, and pass `patched` changes: the node that takes
//! over after the crash runs the next version of the code, with the
//! change behind `patched`. A run that went past a change under the old
//! code replays its old branch; one that had not takes the new one; the
//! old code never takes the new branch, the new code never runs the old
//! branch live, and the run still ends as it would have without a crash.

use plexspaces::actor::ActorSystem;
use plexspaces::durability::JournalBackend;
use plexspaces::storage::disk::FsDisk;
use plexspaces::tokio_backend::{OsRng, TokioClock, TokioSpawner};
use plexspaces::workflow::{
    RetryPolicy, RunId, RunStatus, StepError, StepKey, Workflow, WorkflowConfig, WorkflowContext,
    WorkflowError, Workflows,
};
use plexspaces::{Env, NodeName};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
enum Script {
    Succeeds,
    /// Fails retryably this many times (fewer than the attempts), then
    /// succeeds.
    Transient(u32),
    /// Fails retryably every time.
    Exhausts,
    /// Fails terminally.
    Refused,
}

fn script() -> impl Strategy<Value = Script> {
    prop_oneof![
        4 => Just(Script::Succeeds),
        2 => (1u32..=2).prop_map(Script::Transient),
        1 => Just(Script::Exhausts),
        1 => Just(Script::Refused),
    ]
}

/// One item of a run's code.
#[derive(Clone, Copy, Debug)]
enum Item {
    /// A step running the script.
    Step(Script),
    /// A child run (another kind) whose one step runs the script; awaited.
    Child(Script),
    /// A change: version 1 runs the script as step `old<i>`, version 2
    /// behind `patched` as `new<i>` (the same effect key: the same
    /// position).
    Patched(Script),
    /// Continues as new (once: the next history starts after it).
    Continue,
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        4 => script().prop_map(Item::Step),
        1 => script().prop_map(Item::Child),
        2 => script().prop_map(Item::Patched),
        1 => Just(Item::Continue),
    ]
}

/// Where the run crashes: at the `call`-th effect attempt, before or after
/// the effect applies.
#[derive(Clone, Copy, Debug)]
struct Crash {
    call: u64,
    after_apply: bool,
}

/// The outside world the steps change: applied keys (a set: a key applied
/// twice is one effect), attempts per key, and the crash trigger.
#[derive(Default)]
struct World {
    applied: BTreeSet<String>,
    attempts: std::collections::BTreeMap<String, u32>,
    calls: u64,
    crash: Option<Crash>,
    crashed: bool,
    /// Branch steps executed live, by the code version that ran them.
    branches: Vec<(u8, String)>,
}

struct Scripted {
    items: Vec<Item>,
    world: Arc<Mutex<World>>,
    version: u8,
    children: Workflows<ChildRun>,
}

/// A child: one step running its script.
struct ChildRun {
    world: Arc<Mutex<World>>,
}

impl Workflow for ChildRun {
    type Input = Script;
    type Output = ();

    async fn run(&self, ctx: WorkflowContext, script: Script) -> Result<(), WorkflowError> {
        let world = self.world.clone();
        ctx.step_with("child-step", &RetryPolicy::attempts(3), |key: StepKey| {
            effect(world.clone(), key.to_string(), script)
        })
        .await
    }
}

/// One effect attempt under `key`, as `script` says; never returns if the
/// crash point is here.
async fn effect(world: Arc<Mutex<World>>, key: String, script: Script) -> Result<(), StepError> {
    let crash_now = {
        let mut w = world.lock().unwrap();
        w.calls += 1;
        let attempt = {
            let n = w.attempts.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        let result = match script {
            Script::Succeeds => Ok(()),
            Script::Transient(fails) if attempt > fails => Ok(()),
            Script::Transient(_) | Script::Exhausts => Err(StepError::retryable("busy")),
            Script::Refused => Err(StepError::terminal("refused")),
        };
        let crash = w.crash.filter(|c| c.call == w.calls && !w.crashed);
        let applies = crash.is_none_or(|c| c.after_apply);
        if applies && result.is_ok() {
            w.applied.insert(key);
        }
        if crash.is_some() {
            w.crashed = true;
            None
        } else {
            Some(result)
        }
    };
    match crash_now {
        Some(result) => result,
        None => std::future::pending().await,
    }
}

impl Scripted {
    async fn step(
        &self,
        ctx: &WorkflowContext,
        name: &str,
        script: Script,
    ) -> Result<(), WorkflowError> {
        let world = self.world.clone();
        let version = self.version;
        let branch = name.starts_with("old") || name.starts_with("new");
        let label = name.to_string();
        ctx.step_with(name, &RetryPolicy::attempts(3), |key: StepKey| {
            if branch {
                world
                    .lock()
                    .unwrap()
                    .branches
                    .push((version, label.clone()));
            }
            effect(world.clone(), key.to_string(), script)
        })
        .await?;
        let world = self.world.clone();
        ctx.on_failure(name, move |key: StepKey| {
            effect(world.clone(), format!("undo {key}"), Script::Succeeds)
        });
        Ok(())
    }
}

impl Workflow for Scripted {
    /// The item this history starts at.
    type Input = usize;
    type Output = usize;

    async fn run(&self, ctx: WorkflowContext, start: usize) -> Result<usize, WorkflowError> {
        for (i, item) in self.items.iter().copied().enumerate().skip(start) {
            match item {
                Item::Step(script) => self.step(&ctx, &format!("s{i}"), script).await?,
                Item::Child(script) => {
                    ctx.child(&self.children, &format!("c{i}"), &script).await?;
                }
                Item::Patched(script) => {
                    let new = self.version >= 2 && ctx.patched(&format!("p{i}")).await?;
                    let name = if new {
                        format!("new{i}")
                    } else {
                        format!("old{i}")
                    };
                    self.step(&ctx, &name, script).await?;
                }
                Item::Continue => return Err(ctx.continue_as_new(&(i + 1))),
            }
        }
        Ok(self.items.len())
    }
}

static CASE: AtomicU64 = AtomicU64::new(0);

async fn node(
    journal: &JournalBackend,
    items: &[Item],
    world: &Arc<Mutex<World>>,
    version: u8,
) -> (ActorSystem, Workflows<Scripted>) {
    let case = CASE.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("plexspaces-wfprop-{}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Leases run on the wall clock: one that follows the paused clock.
    let env = Env::new(
        NodeName::new("n").unwrap(),
        TokioClock::with_wall_from(
            std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30),
        ),
        TokioSpawner::current(),
        OsRng::new(),
        FsDisk::open_dir(dir).await.unwrap(),
        plexspaces::net::TcpNet::new(),
    );
    let system = ActorSystem::new(env);
    let mut config = WorkflowConfig::new("prop", journal.clone());
    config.resume_every = Duration::from_millis(50);
    config.lease = Duration::from_secs(1);
    config.compensation_retry = RetryPolicy::attempts(3);
    let mut child_config = config.clone();
    child_config.hosting.kind = "prop-child".into();
    let child = ChildRun {
        world: world.clone(),
    };
    let children = Workflows::register(&system, child_config, child).unwrap();
    let workflow = Scripted {
        items: items.to_vec(),
        world: world.clone(),
        version,
        children,
    };
    let flows = Workflows::register(&system, config, workflow).unwrap();
    (system, flows)
}

/// What a run ended with: status, output, applied keys, whether it
/// crashed on the way, and the branch steps executed live by version.
type Ending = (
    RunStatus,
    Option<usize>,
    BTreeSet<String>,
    bool,
    Vec<(u8, String)>,
);

/// Runs the items to the end under version 1, crashing once at `crash` if
/// it is reached; version 2 takes over after the crash.
async fn run_to_end(items: &[Item], crash: Option<Crash>) -> Ending {
    let journal = JournalBackend::memory();
    let world = Arc::new(Mutex::new(World {
        crash,
        ..World::default()
    }));
    let run = RunId::new("t", "r").unwrap();
    let (system, flows) = node(&journal, items, &world, 1).await;
    flows.start(&run, &0).await.unwrap();
    let env = system.env().clone();
    let first = plexspaces::seams::Clock::timeout(&env, Duration::from_secs(60), async {
        loop {
            if world.lock().unwrap().crashed {
                return None;
            }
            match flows.status(&run).await {
                Ok(status) if status.is_terminal() => return Some(status),
                _ => plexspaces::seams::Clock::sleep(&env, Duration::from_millis(5)).await,
            }
        }
    })
    .await
    .expect("the run neither ended nor crashed");
    let flows = match first {
        Some(_) => flows,
        None => {
            // The node dies mid-effect; another takes over from the journal.
            system.shutdown().await;
            drop(flows);
            node(&journal, items, &world, 2).await.1
        }
    };
    let output = match flows.result(&run, Duration::from_secs(120)).await {
        Ok(n) => Some(n),
        Err(WorkflowError::Ended(_)) => None,
        Err(e) => panic!("the run did not end: {e}"),
    };
    let status = flows.status(&run).await.unwrap();
    let world = world.lock().unwrap();
    (
        status,
        output,
        world.applied.clone(),
        world.crashed,
        world.branches.clone(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_crash_anywhere_ends_the_run_as_a_crash_free_run_would(
        items in prop::collection::vec(item(), 1..6),
        call in 1u64..16,
        after_apply in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let (expected, crashed) = runtime.block_on(async {
            let expected = run_to_end(&items, None).await;
            let crashed = run_to_end(&items, Some(Crash { call, after_apply })).await;
            (expected, crashed)
        });
        // A status names its failed step: the two branches of a change
        // name theirs apart.
        let same_branch = |status: &RunStatus| format!("{status:?}").replace("\\\"new", "\\\"old");
        prop_assert_eq!(same_branch(&crashed.0), same_branch(&expected.0), "status");
        prop_assert_eq!(crashed.1, expected.1, "output");
        prop_assert_eq!(&crashed.2, &expected.2, "applied effects");
        prop_assert!(!expected.3);
        // Each version runs only its own branches live.
        for (version, step) in &crashed.4 {
            prop_assert!(
                (*version == 1) == step.starts_with("old"),
                "version {} ran {} live: {:?}", version, step, crashed.4
            );
        }
    }
}

#[test]
fn the_crash_path_is_taken_and_a_refused_step_is_compensated_once() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let items = [
        Item::Step(Script::Succeeds),
        Item::Step(Script::Transient(1)),
        Item::Step(Script::Refused),
    ];
    let (expected, crashed) = runtime.block_on(async {
        let expected = run_to_end(&items, None).await;
        // The second step's first attempt applies... then the node dies.
        let crash = Crash {
            call: 2,
            after_apply: true,
        };
        (expected, run_to_end(&items, Some(crash)).await)
    });
    assert!(crashed.3, "the crash point was reached");
    assert_eq!(
        expected.0,
        RunStatus::Failed {
            error: "step \"s2\" failed: refused".into(),
            compensated: 2
        }
    );
    assert_eq!(crashed.0, expected.0);
    assert_eq!(crashed.2, expected.2);
    assert_eq!(
        expected.2,
        ["t/r/#0", "t/r/#1", "undo t/r/undo/#0", "undo t/r/undo/#1"]
            .into_iter()
            .map(String::from)
            .collect::<BTreeSet<_>>()
    );
}
