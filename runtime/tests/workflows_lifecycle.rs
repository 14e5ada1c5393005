//! What workflows that live for months and run by the thousand rely on,
//! on tokio with paused time: versioned changes under running runs,
//! child workflows, continue-as-new, heartbeats and timeouts of long
//! steps, signals across kinds and signal-with-start, woken waits, and
//! lists by page, status and start time.

mod support;

use plexspaces::actor::ActorSystem;
use plexspaces::durability::JournalBackend;
use plexspaces::seams::Clock;
use plexspaces::workflow::{
    ListQuery, ParentClose, RetryPolicy, RunId, RunStatus, StatusFilter, StepError, StepOptions,
    Workflow, WorkflowContext, WorkflowError, Workflows,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use support::{Log, WAIT, fast_workflows as fast, paused_wall_env};

const HOUR: Duration = Duration::from_secs(3600);

/// A step that logs `entry` (with the run) and returns it.
async fn logged(ctx: &WorkflowContext, log: &Log, entry: &str) -> Result<String, WorkflowError> {
    let line = format!("{} {entry}", ctx.run_id());
    ctx.step(entry, |_| {
        let (log, line) = (log.clone(), line.clone());
        async move {
            log.push(line.clone());
            Ok(line)
        }
    })
    .await
}

/// Three versions of one workflow: v1 charges the old way; v2 charges the
/// new way behind `patched("new-charge")`; v3 removed the old branch.
struct Billing {
    version: u8,
    log: Log,
}

impl Workflow for Billing {
    type Input = ();
    type Output = String;

    async fn run(&self, ctx: WorkflowContext, _: ()) -> Result<String, WorkflowError> {
        logged(&ctx, &self.log, "open").await?;
        ctx.wait_for_signal::<()>("go", HOUR).await?;
        let new = match self.version {
            1 => false,
            2 => ctx.patched("new-charge").await?,
            _ => true,
        };
        let charged = if new {
            // The new code has two steps where the old had one.
            logged(&ctx, &self.log, "price").await?;
            logged(&ctx, &self.log, "charge-v2").await?
        } else {
            logged(&ctx, &self.log, "charge-v1").await?
        };
        ctx.wait_for_signal::<()>("close", HOUR).await?;
        logged(&ctx, &self.log, "close").await?;
        Ok(charged)
    }
}

/// Registers version `version` of `Billing` on a fresh node journaling
/// to `journal`.
async fn billing(
    name: &str,
    version: u8,
    journal: &JournalBackend,
    log: &Log,
) -> (ActorSystem, Workflows<Billing>) {
    let system = ActorSystem::new(paused_wall_env(name).await);
    let billing = Billing {
        version,
        log: log.clone(),
    };
    let flows = Workflows::register(&system, fast("billing", journal.clone()), billing).unwrap();
    (system, flows)
}

fn run(id: &str) -> RunId {
    RunId::new("acme", id).unwrap()
}

/// Lets the runs started get to their next wait.
async fn settle(env: &plexspaces::Env) {
    env.sleep(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_patched_change_replays_old_runs_on_the_old_branch_and_new_runs_on_the_new() {
    let journal = JournalBackend::memory();
    let log = Log::default();
    let (system, v1) = billing("patch-v1", 1, &journal, &log).await;
    let env = system.env().clone();
    // `past` goes past the change under v1; `before` waits short of it.
    v1.start(&run("past"), &()).await.unwrap();
    v1.start(&run("before"), &()).await.unwrap();
    v1.signal(&run("past"), "go", &()).await.unwrap();
    settle(&env).await;
    assert_eq!(log.count("acme/past charge-v1"), 1);
    system.shutdown().await;

    let (system, v2) = billing("patch-v2", 2, &journal, &log).await;
    v2.start(&run("fresh"), &()).await.unwrap();
    for id in ["before", "fresh"] {
        v2.signal(&run(id), "go", &()).await.unwrap();
    }
    settle(&env).await;
    let usage = v2.patch_usage("acme", "new-charge").await.unwrap();
    assert_eq!(usage.old_branch, [run("past")], "{usage:?}");
    assert_eq!(usage.new_branch, [run("before"), run("fresh")], "{usage:?}");
    assert!(usage.undecided.is_empty(), "{usage:?}");
    assert!(
        !usage.old_branch_removable(SystemTime::UNIX_EPOCH),
        "`past` still needs the old branch"
    );
    for id in ["past"] {
        v2.signal(&run(id), "close", &()).await.unwrap();
    }
    assert_eq!(
        v2.result(&run("past"), WAIT).await.unwrap(),
        "acme/past charge-v1",
        "the run that went past the change replayed its old branch"
    );
    assert_eq!(
        log.count("acme/past charge-v1"),
        1,
        "and did not run it again"
    );
    let usage = v2.patch_usage("acme", "new-charge").await.unwrap();
    assert!(usage.old_branch.is_empty() && usage.undecided.is_empty());
    assert!(usage.old_branch_removable(SystemTime::UNIX_EPOCH));
    system.shutdown().await;

    // The old branch and the `patched` call are gone; runs that took the
    // new branch replay without it.
    let (_system, v3) = billing("patch-v3", 3, &journal, &log).await;
    for id in ["before", "fresh"] {
        v3.signal(&run(id), "close", &()).await.unwrap();
        assert_eq!(
            v3.result(&run(id), WAIT).await.unwrap(),
            format!("acme/{id} charge-v2")
        );
        assert_eq!(log.count(&format!("acme/{id} price")), 1);
        assert_eq!(log.count(&format!("acme/{id} close")), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_change_without_patched_still_fails_replay_loudly() {
    let journal = JournalBackend::memory();
    let log = Log::default();
    let (system, v1) = billing("nopatch-v1", 1, &journal, &log).await;
    v1.start(&run("r"), &()).await.unwrap();
    v1.signal(&run("r"), "go", &()).await.unwrap();
    settle(system.env()).await;
    system.shutdown().await;
    // v3 asks for "price" where the journal has "charge-v1".
    let (_system, v3) = billing("nopatch-v3", 3, &journal, &log).await;
    let ended = v3.result(&run("r"), WAIT).await;
    let Err(WorkflowError::Ended(RunStatus::Failed { error, .. })) = ended else {
        panic!("{ended:?}");
    };
    assert!(
        error.contains("charge-v1") && error.contains("price"),
        "{error}"
    );
}

/// A child: logs its start, waits for "finish" (or fails when asked to).
struct Charge {
    log: Log,
}

impl Workflow for Charge {
    type Input = i64;
    type Output = i64;

    async fn run(&self, ctx: WorkflowContext, amount: i64) -> Result<i64, WorkflowError> {
        logged(&ctx, &self.log, "child-start").await?;
        let fail: Option<bool> = ctx.wait_for_signal("finish", HOUR).await?;
        if fail == Some(true) {
            return Err(WorkflowError::failed("declined"));
        }
        Ok(amount * 2)
    }
}

/// A parent: one child cancelled with it, one abandoned; awaits the first.
struct Checkout {
    charges: Workflows<Charge>,
    log: Log,
}

impl Workflow for Checkout {
    type Input = i64;
    type Output = i64;

    async fn run(&self, ctx: WorkflowContext, amount: i64) -> Result<i64, WorkflowError> {
        let charge = ctx
            .start_child(&self.charges, "charge", &amount, ParentClose::Cancel)
            .await?;
        ctx.start_child(&self.charges, "audit", &0, ParentClose::Abandon)
            .await?;
        logged(&ctx, &self.log, "children-started").await?;
        let doubled = charge.result().await?;
        logged(&ctx, &self.log, "done").await?;
        Ok(doubled)
    }
}

async fn checkout(
    name: &str,
    journal: &JournalBackend,
    log: &Log,
) -> (ActorSystem, Workflows<Checkout>, Workflows<Charge>) {
    let system = ActorSystem::new(paused_wall_env(name).await);
    let charges = Workflows::register(
        &system,
        fast("charge", journal.clone()),
        Charge { log: log.clone() },
    )
    .unwrap();
    let checkouts = Workflows::register(
        &system,
        fast("checkout", journal.clone()),
        Checkout {
            charges: charges.clone(),
            log: log.clone(),
        },
    )
    .unwrap();
    (system, checkouts, charges)
}

#[tokio::test(start_paused = true)]
async fn a_child_starts_once_across_a_crash_and_its_parent_awaits_it() {
    let journal = JournalBackend::memory();
    let log = Log::default();
    let (system, checkouts, charges) = checkout("child-a", &journal, &log).await;
    let parent = run("p1");
    checkouts.start(&parent, &21).await.unwrap();
    settle(system.env()).await;
    let child = run("p1.charge");
    assert_eq!(charges.status(&child).await.unwrap(), RunStatus::Running);
    // The parent's node dies while the parent waits for its child.
    system.shutdown().await;
    let (system, checkouts, charges) = checkout("child-b", &journal, &log).await;
    charges.signal(&child, "finish", &false).await.unwrap();
    assert_eq!(checkouts.result(&parent, WAIT).await.unwrap(), 42);
    assert_eq!(
        log.count("acme/p1.charge child-start"),
        1,
        "{:?}",
        log.entries()
    );
    assert_eq!(log.count("acme/p1 done"), 1);
    let children: Vec<RunId> = charges
        .list("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        children,
        [run("p1.audit"), run("p1.charge")],
        "one start each"
    );
    // The abandoned child outlives its completed parent.
    assert_eq!(
        charges.status(&run("p1.audit")).await.unwrap(),
        RunStatus::Running
    );
    // A child that fails fails its parent's wait with how it ended.
    checkouts.start(&run("p2"), &5).await.unwrap();
    settle(system.env()).await;
    charges
        .signal(&run("p2.charge"), "finish", &true)
        .await
        .unwrap();
    let ended = checkouts.result(&run("p2"), WAIT).await;
    let Err(WorkflowError::Ended(RunStatus::Failed { error, .. })) = ended else {
        panic!("{ended:?}");
    };
    assert!(
        error.contains("acme/p2.charge") && error.contains("declined"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_parent_cancels_its_children_unless_abandoned() {
    let journal = JournalBackend::memory();
    let log = Log::default();
    let (system, checkouts, charges) = checkout("child-cancel", &journal, &log).await;
    let parent = run("p3");
    checkouts.start(&parent, &1).await.unwrap();
    settle(system.env()).await;
    checkouts.cancel(&parent).await.unwrap();
    assert!(matches!(
        checkouts.result(&parent, WAIT).await,
        Err(WorkflowError::Ended(RunStatus::Cancelled { .. }))
    ));
    assert!(matches!(
        charges.result(&run("p3.charge"), WAIT).await,
        Err(WorkflowError::Ended(RunStatus::Cancelled { .. }))
    ));
    assert_eq!(
        charges.status(&run("p3.audit")).await.unwrap(),
        RunStatus::Running
    );
}

/// Adds the signals "add" it takes to its input, one history per signal,
/// until the total reaches 10.
struct Accumulate {
    log: Log,
}

impl Workflow for Accumulate {
    type Input = u32;
    type Output = (u32, u32);

    async fn run(&self, ctx: WorkflowContext, total: u32) -> Result<(u32, u32), WorkflowError> {
        let key = ctx
            .step("key", |key| async move { Ok(key.to_string()) })
            .await?;
        self.log.push(key);
        ctx.publish("total", &total).await?;
        if total >= 10 {
            return Ok((total, ctx.generation()));
        }
        let add: Option<u32> = ctx.wait_for_signal("add", HOUR).await?;
        Err(ctx.continue_as_new(&(total + add.unwrap_or(0))))
    }
}

#[tokio::test(start_paused = true)]
async fn continue_as_new_starts_a_fresh_history_and_keeps_unread_signals() {
    let system = ActorSystem::new(paused_wall_env("can").await);
    let log = Log::default();
    let flows = Workflows::register(
        &system,
        fast("accumulate", JournalBackend::memory()),
        Accumulate { log: log.clone() },
    )
    .unwrap();
    let id = run("acc");
    // Signals sent before the run starts and while it runs: each history
    // takes one; the rest wait for the next.
    for add in [3u32, 3] {
        flows.signal(&id, "add", &add).await.unwrap();
    }
    flows.start(&id, &0).await.unwrap();
    settle(system.env()).await;
    assert_eq!(flows.query::<u32>(&id, "total").await.unwrap(), Some(6));
    for add in [3u32, 3] {
        flows.signal(&id, "add", &add).await.unwrap();
    }
    assert_eq!(flows.result(&id, WAIT).await.unwrap(), (12, 4));
    // One step key per history, none repeated.
    assert_eq!(
        log.entries(),
        [
            "acme/acc/#0",
            "acme/acc/g1/#0",
            "acme/acc/g2/#0",
            "acme/acc/g3/#0",
            "acme/acc/g4/#0"
        ]
    );
    assert_eq!(flows.status(&id).await.unwrap(), RunStatus::Completed);
}

/// A long step: beats its progress, and on its first attempt hangs after
/// `hang_at` beats; later attempts resume from the last kept progress.
struct Upload {
    attempts: Arc<Mutex<Vec<Option<u32>>>>,
    hang_at: u32,
}

impl Workflow for Upload {
    type Input = ();
    type Output = u32;

    async fn run(&self, ctx: WorkflowContext, _: ()) -> Result<u32, WorkflowError> {
        let options =
            StepOptions::new(RetryPolicy::attempts(3)).heartbeat_timeout(Duration::from_secs(5));
        let (attempts, hang_at) = (self.attempts.clone(), self.hang_at);
        let env = ctx.env().clone();
        ctx.activity("upload", &options, move |_, heartbeat| {
            let (attempts, env) = (attempts.clone(), env.clone());
            async move {
                let resumed: Option<u32> = heartbeat.details();
                let first = {
                    let mut attempts = attempts.lock().unwrap();
                    attempts.push(resumed);
                    attempts.len() == 1
                };
                let mut chunk = resumed.unwrap_or(0);
                while chunk < 10 {
                    if first && chunk == hang_at {
                        futures::future::pending::<()>().await;
                    }
                    chunk += 1;
                    env.sleep(Duration::from_secs(1)).await;
                    heartbeat
                        .beat(&chunk)
                        .await
                        .map_err(|e| StepError::terminal(e.to_string()))?;
                }
                Ok(chunk)
            }
        })
        .await
    }
}

#[tokio::test(start_paused = true)]
async fn a_step_whose_heartbeat_stops_is_retried_from_its_last_progress() {
    let system = ActorSystem::new(paused_wall_env("heartbeat").await);
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let flows = Workflows::register(
        &system,
        fast("upload", JournalBackend::memory()),
        Upload {
            attempts: attempts.clone(),
            hang_at: 6,
        },
    )
    .unwrap();
    let started = system.env().now();
    flows.start(&run("u"), &()).await.unwrap();
    assert_eq!(flows.result(&run("u"), 4 * WAIT).await.unwrap(), 10);
    let attempts = attempts.lock().unwrap().clone();
    // Progress is kept at most every half heartbeat timeout (2.5 s): the
    // retry resumes from a chunk the first attempt reached, not from 0.
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0], None);
    assert!(matches!(attempts[1], Some(4..=6)), "{attempts:?}");
    let took = system.env().now() - started;
    assert!(
        took < Duration::from_secs(20),
        "the hung attempt was abandoned at its heartbeat timeout: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_whose_node_dies_resumes_on_another_from_its_last_progress() {
    let journal = JournalBackend::memory();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let upload = |hang_at| Upload {
        attempts: attempts.clone(),
        hang_at,
    };
    let first = ActorSystem::new(paused_wall_env("hb-a").await);
    let flows = Workflows::register(&first, fast("upload", journal.clone()), upload(100)).unwrap();
    flows.start(&run("u2"), &()).await.unwrap();
    first.env().sleep(Duration::from_secs(7)).await;
    first.shutdown().await;
    let second = ActorSystem::new(paused_wall_env("hb-b").await);
    let flows = Workflows::register(&second, fast("upload", journal), upload(100)).unwrap();
    assert_eq!(flows.result(&run("u2"), WAIT).await.unwrap(), 10);
    let attempts = attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(matches!(attempts[1], Some(4..=7)), "{attempts:?}");
}

/// A step that never finishes in time, under the given options.
struct Slow {
    options: StepOptions,
    attempts: Arc<Mutex<u32>>,
}

impl Workflow for Slow {
    type Input = ();
    type Output = ();

    async fn run(&self, ctx: WorkflowContext, _: ()) -> Result<(), WorkflowError> {
        let (attempts, env) = (self.attempts.clone(), ctx.env().clone());
        ctx.activity("slow", &self.options, move |_, _| {
            let (attempts, env) = (attempts.clone(), env.clone());
            async move {
                *attempts.lock().unwrap() += 1;
                env.sleep(Duration::from_secs(60)).await;
                Err::<(), _>(StepError::retryable("still slow"))
            }
        })
        .await
    }
}

#[tokio::test(start_paused = true)]
async fn start_to_close_bounds_attempts_and_schedule_to_close_the_step() {
    let system = ActorSystem::new(paused_wall_env("timeouts").await);
    let attempts = Arc::new(Mutex::new(0));
    let options = StepOptions::new(RetryPolicy::attempts(3)).start_to_close(Duration::from_secs(2));
    let flows = Workflows::register(
        &system,
        fast("slow-a", JournalBackend::memory()),
        Slow {
            options,
            attempts: attempts.clone(),
        },
    )
    .unwrap();
    flows.start(&run("s1"), &()).await.unwrap();
    let ended = flows.result(&run("s1"), WAIT).await;
    let Err(WorkflowError::Ended(RunStatus::Failed { error, .. })) = ended else {
        panic!("{ended:?}");
    };
    assert!(error.contains("start-to-close"), "{error}");
    assert_eq!(*attempts.lock().unwrap(), 3, "every attempt timed out");

    let attempts = Arc::new(Mutex::new(0));
    let options = StepOptions::new(RetryPolicy::attempts(1_000))
        .start_to_close(Duration::from_secs(2))
        .schedule_to_close(Duration::from_secs(30));
    let flows = Workflows::register(
        &system,
        fast("slow-b", JournalBackend::memory()),
        Slow {
            options,
            attempts: attempts.clone(),
        },
    )
    .unwrap();
    let started = system.env().now();
    flows.start(&run("s2"), &()).await.unwrap();
    let ended = flows.result(&run("s2"), Duration::from_secs(120)).await;
    let Err(WorkflowError::Ended(RunStatus::Failed { error, .. })) = ended else {
        panic!("{ended:?}");
    };
    assert!(error.contains("schedule-to-close"), "{error}");
    let took = system.env().now() - started;
    assert!(
        (Duration::from_secs(30)..Duration::from_secs(33)).contains(&took),
        "failed at its deadline: {took:?}"
    );
    let tried = *attempts.lock().unwrap();
    assert!((3..1_000).contains(&tried), "{tried} attempts");
}

/// Waits for "approve" and returns its data.
struct Approval;

impl Workflow for Approval {
    type Input = String;
    type Output = String;

    async fn run(&self, ctx: WorkflowContext, what: String) -> Result<String, WorkflowError> {
        let by: Option<String> = ctx.wait_for_signal("approve", HOUR).await?;
        Ok(format!("{what} approved by {}", by.unwrap_or_default()))
    }
}

/// Approves run `input` of the approval kind (another kind).
struct Approver {
    approvals: Workflows<Approval>,
}

impl Workflow for Approver {
    type Input = String;
    type Output = ();

    async fn run(&self, ctx: WorkflowContext, target: String) -> Result<(), WorkflowError> {
        let target =
            RunId::new("acme", &target).map_err(|e| WorkflowError::failed(e.to_string()))?;
        ctx.signal_run(&self.approvals, &target, "approve", &"bot".to_string())
            .await
    }
}

#[tokio::test(start_paused = true)]
async fn signals_reach_other_kinds_and_signal_with_start_starts_once() {
    let system = ActorSystem::new(paused_wall_env("signals").await);
    let mut config = fast("approval", JournalBackend::memory());
    // Waits are woken: an hour between asks changes nothing.
    config.wait_refresh = HOUR;
    let approvals = Workflows::register(&system, config, Approval).unwrap();
    let approvers = Workflows::register(
        &system,
        fast("approver", JournalBackend::memory()),
        Approver {
            approvals: approvals.clone(),
        },
    )
    .unwrap();
    approvals
        .start(&run("invoice"), &"invoice".to_string())
        .await
        .unwrap();
    settle(system.env()).await;
    let sent = system.env().now();
    approvers
        .start(&run("a1"), &"invoice".to_string())
        .await
        .unwrap();
    assert_eq!(
        approvals.result(&run("invoice"), WAIT).await.unwrap(),
        "invoice approved by bot"
    );
    let took = system.env().now() - sent;
    assert!(
        took < Duration::from_millis(100),
        "woken, not polled: {took:?}"
    );

    // Signal-with-start: the run starts with the signal already there; a
    // second one starts nothing and its signal waits in line.
    let id = run("po");
    let status = approvals
        .signal_with_start(&id, &"po".to_string(), "approve", &"alice".to_string())
        .await
        .unwrap();
    assert_eq!(status, RunStatus::Running);
    assert_eq!(
        approvals.result(&id, WAIT).await.unwrap(),
        "po approved by alice"
    );
    let again = approvals
        .signal_with_start(&id, &"other".to_string(), "approve", &"bob".to_string())
        .await
        .unwrap();
    assert_eq!(
        again,
        RunStatus::Completed,
        "an ended run is not started again"
    );
    assert_eq!(
        approvals.result(&id, WAIT).await.unwrap(),
        "po approved by alice"
    );
}

/// Fails when its input is odd.
struct Parity;

impl Workflow for Parity {
    type Input = u32;
    type Output = u32;

    async fn run(&self, ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
        let n: u32 = ctx.step("check", |_| async move { Ok(n) }).await?;
        if n % 2 == 1 {
            return Err(WorkflowError::failed("odd"));
        }
        Ok(n)
    }
}

#[tokio::test(start_paused = true)]
async fn lists_page_through_runs_by_id_and_filter_by_status_and_start_time() {
    let system = ActorSystem::new(paused_wall_env("lists").await);
    let flows =
        Workflows::register(&system, fast("parity", JournalBackend::memory()), Parity).unwrap();
    let env = system.env().clone();
    let ids: Vec<RunId> = (0..25).map(|n| run(&format!("r{n:02}"))).collect();
    for (n, id) in ids.iter().enumerate() {
        flows.start(id, &(n as u32)).await.unwrap();
        env.sleep(Duration::from_secs(1)).await;
    }
    let other_tenant = RunId::new("globex", "r00").unwrap();
    flows.start(&other_tenant, &0).await.unwrap();
    for id in &ids {
        let _ = flows.result(id, WAIT).await;
    }
    settle(&env).await;
    // Pages of 10 cover the tenant once, in id order.
    let mut seen = Vec::new();
    let mut query = ListQuery::new().limit(10);
    loop {
        let page = flows.list_page("acme", &query).await.unwrap();
        assert!(page.runs.len() <= 10);
        seen.extend(page.runs.into_iter().map(|s| s.run));
        match page.next {
            Some(next) => query = query.after(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let failed = flows
        .list_all("acme", &ListQuery::new().status(StatusFilter::Failed))
        .await
        .unwrap();
    assert_eq!(failed.len(), 12);
    assert!(
        failed
            .iter()
            .all(|s| matches!(s.status, Some(RunStatus::Failed { .. })))
    );
    let completed = flows
        .list_all("acme", &ListQuery::new().status(StatusFilter::Completed))
        .await
        .unwrap();
    assert_eq!(completed.len(), 13);
    // Runs started in a window of five seconds: r05..r09.
    let first = flows.list_all("acme", &ListQuery::new()).await.unwrap()[0].started;
    let window = ListQuery::new().started_between(
        first + Duration::from_secs(5),
        first + Duration::from_secs(10),
    );
    let started: Vec<RunId> = flows
        .list_all("acme", &window)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.run)
        .collect();
    assert_eq!(started, ids[5..10]);
    assert!(
        flows
            .list_all("acme", &ListQuery::new().status(StatusFilter::Running))
            .await
            .unwrap()
            .is_empty()
    );
}
