//! Durable workflows on tokio (paused time, a wall clock that follows it):
//! steps run once and replay from the journal; retries, compensation in
//! reverse order, cancellation; durable signals, queries, timeouts; a run
//! sleeping a day survives a restart and wakes on time; a changed code
//! fails loudly; declarative steps with parallel branches and choices.

mod support;

use plexspaces::actor::ActorSystem;
use plexspaces::durability::JournalBackend;
use plexspaces::seams::Clock;
use plexspaces::storage::disk::FsDisk;
use plexspaces::tokio_backend::{OsRng, TokioClock, TokioSpawner};
use plexspaces::workflow::{
    ChoiceCondition, Declarative, DeclarativeInput, Json, RetryPolicy, RunId, RunStatus, StepError,
    TaskRegistry, Workflow, WorkflowContext, WorkflowError, WorkflowStep, Workflows,
};
use plexspaces::{Env, NodeName};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use support::{Log, fast_workflows as fast};

const WAIT: Duration = Duration::from_secs(30);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

async fn env_at(test: &str, fresh: bool, wall: SystemTime) -> Env {
    let dir = std::env::temp_dir().join(format!("plexspaces-wf-{}-{test}", std::process::id()));
    if fresh {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Env::new(
        NodeName::new("n1").unwrap(),
        TokioClock::with_wall_from(wall),
        TokioSpawner::current(),
        OsRng::new(),
        FsDisk::open_dir(dir).await.unwrap(),
        plexspaces::net::TcpNet::new(),
    )
}

/// Reserve, charge (fails as told), ship; each undone on failure.
struct Order {
    log: Log,
    /// How the charge fails: retryable failures before success, or terminal.
    charge_flaky: u32,
    charge_refused: bool,
    attempts: Arc<Mutex<u32>>,
}

impl Workflow for Order {
    type Input = u32;
    type Output = String;

    async fn run(&self, ctx: WorkflowContext, amount: u32) -> Result<String, WorkflowError> {
        let log = self.log.clone();
        let reservation: String = ctx
            .step("reserve", |key| {
                let log = log.clone();
                async move {
                    log.push(format!("reserve {key}"));
                    Ok(format!("r-{amount}"))
                }
            })
            .await?;
        let undo_log = log.clone();
        ctx.on_failure("reserve", move |_| {
            let log = undo_log.clone();
            async move {
                log.push("release");
                Ok(())
            }
        });
        ctx.publish("stage", &"reserved").await?;
        let (flaky, refused, attempts) = (
            self.charge_flaky,
            self.charge_refused,
            self.attempts.clone(),
        );
        let charge: u32 = ctx
            .step_with("charge", &RetryPolicy::attempts(4), |_| {
                let (log, attempts) = (log.clone(), attempts.clone());
                async move {
                    let attempt = {
                        let mut n = attempts.lock().unwrap();
                        *n += 1;
                        *n
                    };
                    if refused {
                        return Err(StepError::terminal("card refused"));
                    }
                    if attempt <= flaky {
                        return Err(StepError::retryable("gateway busy"));
                    }
                    log.push("charge");
                    Ok(amount)
                }
            })
            .await?;
        let undo_log = log.clone();
        ctx.on_failure("charge", move |_| {
            let log = undo_log.clone();
            async move {
                log.push("refund");
                Ok(())
            }
        });
        let express: Option<bool> = ctx
            .wait_for_signal("express", Duration::from_secs(5))
            .await?;
        let shipped: String = ctx
            .step("ship", |_| {
                let log = log.clone();
                async move {
                    log.push("ship");
                    Ok(if express == Some(true) {
                        "express"
                    } else {
                        "ground"
                    }
                    .to_string())
                }
            })
            .await?;
        ctx.publish("stage", &"shipped").await?;
        Ok(format!("{reservation} charged {charge} shipped {shipped}"))
    }
}

fn order(log: &Log, flaky: u32, refused: bool) -> Order {
    Order {
        log: log.clone(),
        charge_flaky: flaky,
        charge_refused: refused,
        attempts: Arc::new(Mutex::new(0)),
    }
}

#[tokio::test(start_paused = true)]
async fn steps_run_once_retries_succeed_and_signals_sent_early_are_kept() {
    let env = env_at("happy", true, epoch()).await;
    let system = ActorSystem::new(env.clone());
    let log = Log::default();
    let flow = Workflows::register(
        &system,
        fast("order", JournalBackend::memory()),
        order(&log, 2, false),
    )
    .unwrap();
    let run = RunId::new("acme", "o1").unwrap();
    // The signal comes before the run even starts: it is kept.
    flow.signal(&run, "express", &true).await.unwrap();
    assert_eq!(flow.start(&run, &30).await.unwrap(), RunStatus::Running);
    let output = flow.result(&run, WAIT).await.unwrap();
    assert_eq!(output, "r-30 charged 30 shipped express");
    assert_eq!(
        log.entries(),
        ["reserve acme/o1/#0", "charge", "ship"],
        "each step ran once; the charge after two retryable failures"
    );
    // Starting it again returns the finished run and runs nothing.
    assert_eq!(flow.start(&run, &99).await.unwrap(), RunStatus::Completed);
    assert_eq!(flow.result(&run, WAIT).await.unwrap(), output);
    assert_eq!(log.entries().len(), 3);
    assert_eq!(
        flow.query::<String>(&run, "stage")
            .await
            .unwrap()
            .as_deref(),
        Some("shipped")
    );
    assert_eq!(
        flow.list("acme").await.unwrap(),
        vec![(run.clone(), Some(RunStatus::Completed))]
    );
    assert!(
        flow.list("globex").await.unwrap().is_empty(),
        "tenants see their own runs"
    );
    assert!(matches!(
        flow.status(&RunId::new("acme", "never").unwrap()).await,
        Err(WorkflowError::NotFound(_))
    ));
    assert!(matches!(
        RunId::new("acme", "bad/id"),
        Err(WorkflowError::InvalidId(_))
    ));
    // A UUID is a run id, under a long tenant name: the record's name
    // (`order:tenant/uuid`) is too long for a journal stream and is hashed
    // into one; the run keeps its id for lookups and lists.
    let uuid = RunId::new(
        "acme-corporation.europe-west.production.billing-and-invoicing",
        "3f2b8c1e-9d4a-4f6b-8e2c-7a1d5b9c0e34",
    )
    .unwrap();
    assert_eq!(flow.start(&uuid, &5).await.unwrap(), RunStatus::Running);
    assert!(
        flow.result(&uuid, WAIT)
            .await
            .unwrap()
            .starts_with("r-5 charged 5 shipped")
    );
    assert_eq!(flow.status(&uuid).await.unwrap(), RunStatus::Completed);
    assert_eq!(
        flow.list(uuid.tenant()).await.unwrap(),
        vec![(uuid.clone(), Some(RunStatus::Completed))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_terminal_failure_compensates_completed_steps_in_reverse_order() {
    let env = env_at("saga", true, epoch()).await;
    let system = ActorSystem::new(env.clone());
    let log = Log::default();
    let flow = Workflows::register(
        &system,
        fast("order", JournalBackend::memory()),
        order(&log, 0, true),
    )
    .unwrap();
    let run = RunId::new("acme", "o2").unwrap();
    flow.start(&run, &10).await.unwrap();
    let ended = flow.result(&run, WAIT).await;
    let Err(WorkflowError::Ended(RunStatus::Failed { error, compensated })) = ended else {
        panic!("{ended:?}");
    };
    assert!(error.contains("card refused"), "{error}");
    assert_eq!(compensated, 1);
    assert_eq!(log.entries(), ["reserve acme/o2/#0", "release"]);

    // A charge that succeeds, then a cancel while the run waits for its
    // signal: both completed steps are undone, newest first.
    let log2 = Log::default();
    let system2 = ActorSystem::new(env_at("saga2", true, epoch()).await);
    let flow2 = Workflows::register(
        &system2,
        fast("order", JournalBackend::memory()),
        order(&log2, 0, false),
    )
    .unwrap();
    let run2 = RunId::new("acme", "o3").unwrap();
    flow2.start(&run2, &10).await.unwrap();
    env.sleep(Duration::from_secs(1)).await;
    flow2.cancel(&run2).await.unwrap();
    let ended = flow2.result(&run2, WAIT).await;
    assert_eq!(
        ended,
        Err(WorkflowError::Ended(RunStatus::Cancelled {
            compensated: 2
        }))
    );
    assert_eq!(
        log2.entries(),
        ["reserve acme/o3/#0", "charge", "refund", "release"]
    );
}

/// A step that logs `name` and returns the wall clock in seconds.
async fn stamp(ctx: &WorkflowContext, name: &str, log: &Log) -> Result<u64, WorkflowError> {
    let env = ctx.env().clone();
    ctx.step(name, |_| {
        let (log, env) = (log.clone(), env.clone());
        let name = name.to_string();
        async move {
            log.push(name);
            Ok(env
                .wall_clock()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs())
        }
    })
    .await
}

/// Sleeps a day between two steps.
struct Reminder {
    log: Log,
}

impl Workflow for Reminder {
    type Input = ();
    type Output = u64;

    async fn run(&self, ctx: WorkflowContext, _: ()) -> Result<u64, WorkflowError> {
        let started = stamp(&ctx, "before", &self.log).await?;
        ctx.sleep("a day", DAY).await?;
        let woke = stamp(&ctx, "after", &self.log).await?;
        Ok(woke - started)
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_sleeping_a_day_survives_a_restart_and_wakes_on_time() {
    let env = env_at("day", true, epoch()).await;
    let journal = JournalBackend::file(&env, Default::default())
        .await
        .unwrap();
    let system = ActorSystem::new(env.clone());
    let log = Log::default();
    let mut config = fast("remind", journal);
    // A simulated day on tokio's paused clock visits every timer: keep
    // the periodic ones coarse.
    config.cancel_check_every = Duration::from_secs(600);
    config.resume_every = Duration::from_secs(60);
    config.lease = Duration::from_secs(60);
    let flow = Workflows::register(&system, config, Reminder { log: log.clone() }).unwrap();
    let run = RunId::new("acme", "r1").unwrap();
    flow.start(&run, &()).await.unwrap();
    env.sleep(Duration::from_secs(3600)).await;
    assert_eq!(log.entries(), ["before"]);
    // The node goes down an hour into the day...
    system.shutdown().await;
    drop(flow);

    // ...and comes back on the same disk two hours later (its wall clock
    // continues from there).
    let restarted = env_at("day", false, epoch() + Duration::from_secs(3 * 3600)).await;
    let journal = JournalBackend::file(&restarted, Default::default())
        .await
        .unwrap();
    let system = ActorSystem::new(restarted.clone());
    let mut config = fast("remind", journal);
    // A simulated day on tokio's paused clock visits every timer: keep
    // the periodic ones coarse.
    config.cancel_check_every = Duration::from_secs(600);
    config.resume_every = Duration::from_secs(60);
    config.lease = Duration::from_secs(60);
    let flow = Workflows::register(&system, config, Reminder { log: log.clone() }).unwrap();
    // (Polling `result` all day would visit every 100 ms of it.)
    restarted.sleep(DAY - Duration::from_secs(3 * 3600)).await;
    let slept = flow.result(&run, WAIT).await.unwrap();
    assert_eq!(
        log.entries(),
        ["before", "after"],
        "the first step did not run again"
    );
    assert!(
        (DAY.as_secs()..DAY.as_secs() + 5).contains(&slept),
        "woke {slept} s after the first step, not a day"
    );
}

/// Version 1 records "a"; version 2 asks for "b" at the same position.
struct Versioned {
    step: &'static str,
}

impl Workflow for Versioned {
    type Input = ();
    type Output = ();

    async fn run(&self, ctx: WorkflowContext, _: ()) -> Result<(), WorkflowError> {
        ctx.step(self.step, |_| async { Ok(1u8) }).await?;
        ctx.wait_for_signal::<()>("go", Duration::from_secs(3600))
            .await?;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn code_that_changed_under_a_running_run_fails_it_loudly() {
    let env = env_at("diverge", true, epoch()).await;
    let journal = JournalBackend::memory();
    let system = ActorSystem::new(env.clone());
    let v1 = Workflows::register(
        &system,
        fast("ver", journal.clone()),
        Versioned { step: "a" },
    )
    .unwrap();
    let run = RunId::new("acme", "v").unwrap();
    v1.start(&run, &()).await.unwrap();
    env.sleep(Duration::from_secs(1)).await;
    system.shutdown().await;
    drop(v1);

    let system = ActorSystem::new(env_at("diverge2", true, epoch()).await);
    let v2 = Workflows::register(&system, fast("ver", journal), Versioned { step: "b" }).unwrap();
    let ended = v2.result(&run, WAIT).await;
    let Err(WorkflowError::Ended(RunStatus::Failed { error, .. })) = ended else {
        panic!("{ended:?}");
    };
    assert!(
        error.contains("#0") && error.contains("\"a\"") && error.contains("\"b\""),
        "the error names the position and both steps: {error}"
    );
}

#[tokio::test(start_paused = true)]
async fn declarative_steps_run_branches_choices_and_waits() {
    let env = env_at("declarative", true, epoch()).await;
    let system = ActorSystem::new(env.clone());
    let calls = Log::default();
    let mut tasks = TaskRegistry::new();
    for name in [
        "reserve",
        "charge",
        "ship-express",
        "ship-ground",
        "release",
    ] {
        let calls = calls.clone();
        tasks.register(
            name,
            move |key: plexspaces::workflow::StepKey, params: serde_json::Value| {
                let calls = calls.clone();
                async move {
                    calls.push(format!("{name} {params}"));
                    Ok(json!({ "ok": true, "by": name, "key": key.to_string() }))
                }
            },
        );
    }
    let flow = Workflows::register(
        &system,
        fast("decl", JournalBackend::memory()),
        Declarative::new(tasks),
    )
    .unwrap();
    let task = |name: &str, task: &str, params: serde_json::Value| WorkflowStep::ActorTask {
        name: name.into(),
        task: task.into(),
        params,
        attempts: 1,
        compensate: None,
    };
    let input = DeclarativeInput {
        steps: vec![
            WorkflowStep::Parallel {
                name: "prepare".into(),
                branches: vec![
                    vec![task("reserve", "reserve", json!({"sku": "A1"}))],
                    vec![task("charge", "charge", json!({"amount": 30}))],
                ],
            },
            WorkflowStep::Wait {
                name: "cool-off".into(),
                duration: Duration::from_secs(60),
            },
            WorkflowStep::Choice {
                name: "shipping".into(),
                conditions: vec![ChoiceCondition {
                    variable: "/input/express".into(),
                    equals: json!(true),
                    then: vec![task("ship", "ship-express", json!({}))],
                }],
                otherwise: vec![task("ship", "ship-ground", json!({}))],
            },
        ],
        input: json!({"express": true}),
    };
    let run = RunId::new("acme", "d1").unwrap();
    let started = env.now();
    flow.start(&run, &input).await.unwrap();
    let Json(state) = flow.result(&run, 4 * WAIT).await.unwrap();
    assert!(env.now().saturating_duration_since(started) >= Duration::from_secs(60));
    assert_eq!(state["reserve"]["ok"], json!(true));
    assert_eq!(state["charge"]["by"], json!("charge"));
    assert_eq!(state["ship"]["by"], json!("ship-express"));
    let mut seen = calls.entries();
    seen.sort();
    assert_eq!(
        seen,
        [
            "charge {\"amount\":30}",
            "reserve {\"sku\":\"A1\"}",
            "ship-express {}"
        ]
    );
    // Branch steps have their own positions (and so their own keys).
    let keys: BTreeMap<&str, &str> = ["reserve", "charge"]
        .into_iter()
        .map(|s| (s, state[s]["key"].as_str().unwrap()))
        .collect();
    assert_eq!(keys["reserve"], "acme/d1/prepare.0/#0");
    assert_eq!(keys["charge"], "acme/d1/prepare.1/#0");
}

/// Counts the messages a run's record actor takes; refuses them all once
/// `closed` is set (a security facet on the runs of one workflow kind).
struct RunGuard {
    seen: Arc<Mutex<u32>>,
    closed: Arc<Mutex<bool>>,
}

impl plexspaces::actor::facet::Facet for RunGuard {
    fn name(&self) -> &str {
        "run-guard"
    }
    fn priority(&self) -> i32 {
        1000
    }
    fn before<'a>(
        &'a mut self,
        _msg: &plexspaces::actor::facet::Message<'_>,
    ) -> plexspaces::actor::facet::Hook<'a, plexspaces::actor::facet::Verdict> {
        use plexspaces::actor::facet::{Hook, Rejection, Verdict};
        *self.seen.lock().unwrap() += 1;
        if *self.closed.lock().unwrap() {
            return Hook::ready(Verdict::Reject(Rejection::new("closed for maintenance")));
        }
        Hook::proceed()
    }
}

#[tokio::test(start_paused = true)]
async fn the_hostings_facets_run_on_every_workflow_runs_record_actor() {
    use plexspaces::actor::facet::FacetSpec;
    let env = env_at("facets", true, epoch()).await;
    let system = ActorSystem::new(env.clone());
    let (seen, closed) = (Arc::new(Mutex::new(0)), Arc::new(Mutex::new(false)));
    let mut config = fast("order", JournalBackend::memory());
    let (seen_by, closed_by) = (seen.clone(), closed.clone());
    config.hosting = config.hosting.with_facet(FacetSpec::factory(move |_| {
        Box::new(RunGuard {
            seen: seen_by.clone(),
            closed: closed_by.clone(),
        })
    }));
    let log = Log::default();
    let flow = Workflows::register(&system, config, order(&log, 0, false)).unwrap();
    let run = RunId::new("acme", "o1").unwrap();
    flow.signal(&run, "express", &false).await.unwrap();
    flow.start(&run, &5).await.unwrap();
    flow.result(&run, WAIT).await.unwrap();
    assert!(
        *seen.lock().unwrap() >= 3,
        "the run's record took its start, steps and result through the facet"
    );
    *closed.lock().unwrap() = true;
    let refused = flow
        .start(&RunId::new("acme", "o2").unwrap(), &5)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("closed for maintenance"),
        "{refused}"
    );
}
