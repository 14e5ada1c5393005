//! Property: for arbitrary step outcomes (success, retryable failures that
//! pass, retryable failures that never pass, terminal failures) and any
//! crash point (before a step's effect, or after it but before the step
//! is recorded), a run that crashes and resumes on a new node ends exactly
//! as the same run without a crash: same status, same output, and the
//! same effects applied (each once: the effects are keyed by the step's
//! idempotency key, as a durable actor's would be), compensations
//! included.

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

#[derive(Clone, Copy, Debug)]
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
}

struct Scripted {
    scripts: Vec<Script>,
    world: Arc<Mutex<World>>,
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

impl Workflow for Scripted {
    type Input = ();
    type Output = usize;

    async fn run(&self, ctx: WorkflowContext, _: ()) -> Result<usize, WorkflowError> {
        for (i, script) in self.scripts.iter().copied().enumerate() {
            let name = format!("s{i}");
            let world = self.world.clone();
            ctx.step_with(&name, &RetryPolicy::attempts(3), |key: StepKey| {
                effect(world.clone(), key.to_string(), script)
            })
            .await?;
            let world = self.world.clone();
            ctx.on_failure(&name, move |key: StepKey| {
                effect(world.clone(), format!("undo {key}"), Script::Succeeds)
            });
        }
        Ok(self.scripts.len())
    }
}

static CASE: AtomicU64 = AtomicU64::new(0);

async fn node(
    journal: &JournalBackend,
    scripts: &[Script],
    world: &Arc<Mutex<World>>,
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
    let workflow = Scripted {
        scripts: scripts.to_vec(),
        world: world.clone(),
    };
    let flows = Workflows::register(&system, config, workflow).unwrap();
    (system, flows)
}

/// What a run ended with: status, output, applied keys, and whether it
/// crashed on the way.
type Ending = (RunStatus, Option<usize>, BTreeSet<String>, bool);

/// Runs the scripts to the end, crashing once at `crash` if it is reached.
async fn run_to_end(scripts: &[Script], crash: Option<Crash>) -> Ending {
    let journal = JournalBackend::memory();
    let world = Arc::new(Mutex::new(World {
        crash,
        ..World::default()
    }));
    let run = RunId::new("t", "r").unwrap();
    let (system, flows) = node(&journal, scripts, &world).await;
    flows.start(&run, &()).await.unwrap();
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
            node(&journal, scripts, &world).await.1
        }
    };
    let output = match flows.result(&run, Duration::from_secs(120)).await {
        Ok(n) => Some(n),
        Err(WorkflowError::Ended(_)) => None,
        Err(e) => panic!("the run did not end: {e}"),
    };
    let status = flows.status(&run).await.unwrap();
    let world = world.lock().unwrap();
    (status, output, world.applied.clone(), world.crashed)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_crash_anywhere_ends_the_run_as_a_crash_free_run_would(
        scripts in prop::collection::vec(script(), 1..5),
        call in 1u64..14,
        after_apply in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let (expected, crashed) = runtime.block_on(async {
            let expected = run_to_end(&scripts, None).await;
            let crashed = run_to_end(&scripts, Some(Crash { call, after_apply })).await;
            (expected, crashed)
        });
        prop_assert_eq!(&crashed.0, &expected.0, "status");
        prop_assert_eq!(crashed.1, expected.1, "output");
        prop_assert_eq!(&crashed.2, &expected.2, "applied effects");
        prop_assert!(!expected.3);
    }
}

#[test]
fn the_crash_path_is_taken_and_a_refused_step_is_compensated_once() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let scripts = [Script::Succeeds, Script::Transient(1), Script::Refused];
    let (expected, crashed) = runtime.block_on(async {
        let expected = run_to_end(&scripts, None).await;
        // The second step's first attempt applies... then the node dies.
        let crash = Crash {
            call: 2,
            after_apply: true,
        };
        (expected, run_to_end(&scripts, Some(crash)).await)
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
