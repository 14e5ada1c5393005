//! Driving runs: a driver takes a run's lease, replays its recorded steps
//! through the workflow's code and runs the rest live, compensates on
//! failure, and records the end. The resumer starts a driver for every
//! unfinished run placed on this node, so runs survive crashes and moves.

use super::context::StepMetrics;
use super::context::{RunShared, WorkflowContext, decode, encode};
use super::index::{IndexChange, IndexOp, IndexReply};
use super::record::History;
use super::record::{RunOp, RunReply};
use super::{Engine, RunStatus, Workflow, WorkflowError};
use crate::observability::metrics::WorkflowLabel;
use crate::seams::{Clock, Rng};
use futures::FutureExt;
use plexspaces_storage::sync::LockExt;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// This node's claim to drive a run: removes the run from the engine's
/// driven set when dropped (its driver ended, however it ended).
pub(crate) struct Driving<W: Workflow> {
    engine: Arc<Engine<W>>,
    run: String,
}

impl<W: Workflow> Drop for Driving<W> {
    fn drop(&mut self) {
        self.engine.driving().remove(&self.run);
    }
}

/// Claims `run` for a driver on this node, unless one runs it here.
pub(crate) fn claim<W: Workflow>(engine: &Arc<Engine<W>>, run: &str) -> Option<Driving<W>> {
    engine.driving().insert(run.to_string()).then(|| Driving {
        engine: engine.clone(),
        run: run.to_string(),
    })
}

/// A lease taken with the run's start (`RunOp::StartDriving`): the
/// driver's token, the history, and when the start was sent.
pub(crate) type Leased = (u64, History, crate::seams::Instant);

/// Starts a driver for `run` on this node unless one is running.
pub(crate) fn ensure_driver<W: Workflow>(engine: &Arc<Engine<W>>, run: &str) {
    if let Some(claimed) = claim(engine, run) {
        spawn_driver(claimed, None);
    }
}

/// Drives the claimed run, from `leased` if its start took the lease.
pub(crate) fn spawn_driver<W: Workflow>(claimed: Driving<W>, leased: Option<Leased>) {
    let env = claimed.engine.env.clone();
    drop(env.spawn(async move {
        let engine = claimed.engine.clone();
        drive(&engine, &claimed.run, leased).await;
        drop(claimed);
    }));
}

/// Takes the run's lease and drives its histories (one more each time it
/// continues as new) until it ends or this driver must stop.
async fn drive<W: Workflow>(engine: &Arc<Engine<W>>, run_name: &str, leased: Option<Leased>) {
    let token = leased.as_ref().map_or(engine.env.next_u64() | 1, |l| l.0);
    let mut leased = leased.map(|(_, history, sent)| (history, sent));
    let mut counted = false;
    // Keys of calls never retried (`fresh_key`) stay unique across the
    // histories this driver drives.
    let calls = Arc::new(AtomicU64::new(0));
    loop {
        let Some(shared) = shared_for(engine, run_name, token, calls.clone()) else {
            return;
        };
        if let Some((history, sent)) = leased.take() {
            shared.confirm_lease(sent);
            count_run(&engine.env, &engine.config.hosting.kind, "acquired");
            counted = true;
            if !drive_history(engine, run_name, shared, history).await {
                return;
            }
            continue;
        }
        let acquire = RunOp::Acquire {
            token,
            now_ms: shared.now_ms(),
            lease_ms: shared.lease_ms,
        };
        let sent = shared.env.now();
        let history = match shared.call(shared.fresh_key(), acquire).await {
            Ok(RunReply::Acquired(history)) => {
                shared.confirm_lease(sent);
                history
            }
            Ok(RunReply::Finished(status)) => {
                // Finished, but maybe not yet in the index (a crash between).
                mark_finished(engine, run_name, status).await;
                return;
            }
            // Held by another driver, not started, or unreachable: the
            // resumer tries again later.
            _ => return,
        };
        if !counted {
            count_run(&engine.env, &engine.config.hosting.kind, "acquired");
            counted = true;
        }
        if !drive_history(engine, run_name, shared, history).await {
            return;
        }
    }
}

/// A driver's view of `run_name` under `token`, for one history.
fn shared_for<W: Workflow>(
    engine: &Arc<Engine<W>>,
    run_name: &str,
    token: u64,
    calls: Arc<AtomicU64>,
) -> Option<Arc<RunShared>> {
    let run = engine.runs.get(run_name).ok()?;
    let config = &engine.config;
    Some(Arc::new(RunShared {
        env: engine.env.clone(),
        metrics: StepMetrics::of(&engine.env, &config.hosting.kind),
        run,
        runs: engine.runs.clone(),
        run_name: run_name.to_string(),
        token,
        lease_ms: u64::try_from(config.lease.as_millis()).unwrap_or(u64::MAX),
        call_timeout: config.call_timeout,
        wait_refresh: config.wait_refresh,
        cancel_check_every: config.cancel_check_every,
        room: engine.room.clone(),
        generation: AtomicU32::new(0),
        heartbeats: Mutex::new(BTreeMap::new()),
        children: Mutex::new(Vec::new()),
        child_names: Mutex::new(BTreeSet::new()),
        history: Mutex::new(BTreeMap::new()),
        visited: Mutex::new(BTreeSet::new()),
        cancel_requested: AtomicBool::new(false),
        compensating: AtomicBool::new(false),
        parked: AtomicBool::new(false),
        lost: AtomicBool::new(false),
        compensations: Mutex::new(Vec::new()),
        signals_taken: Mutex::new(BTreeMap::new()),
        lease_confirmed: Mutex::new(None),
        next_call: calls,
    }))
}

/// Runs the code over one history. True if the run continued as new (the
/// caller drives the next history), false once this driver is done.
async fn drive_history<W: Workflow>(
    engine: &Arc<Engine<W>>,
    run_name: &str,
    shared: Arc<RunShared>,
    history: History,
) -> bool {
    let config = &engine.config;
    let kind = &config.hosting.kind;
    let token = shared.token;
    // The history's number is set before the code runs (keys use it).
    shared
        .generation
        .store(history.generation, Ordering::SeqCst);
    *shared.history.locked() = history.steps;
    *shared.heartbeats.locked() = history.heartbeats;
    shared
        .cancel_requested
        .store(history.cancel_requested, Ordering::SeqCst);

    let done = Arc::new(AtomicBool::new(false));
    drop(engine.env.spawn(renew(shared.clone(), done.clone())));
    // However this driver ends (even dropped with its node), renewals stop.
    let _stop_renewing = SetOnDrop(done.clone());
    let ctx = WorkflowContext::root(shared.clone());
    // The run's span (a root, sampled as the node says): each step is a
    // child of it, replayed ones marked.
    let run_span = engine.env.traces().span(
        format!("workflow {kind}"),
        opentelemetry::trace::SpanKind::Internal,
        vec![
            opentelemetry::KeyValue::new("plexspaces.workflow.kind", kind.to_string()),
            opentelemetry::KeyValue::new("plexspaces.workflow.run", run_name.to_string()),
            opentelemetry::KeyValue::new("plexspaces.node", engine.env.node().to_string()),
        ],
        &opentelemetry::Context::new(),
    );
    let running = async {
        match decode::<W::Input>(&history.input, "the run's input") {
            Ok(input) => AssertUnwindSafe(engine.workflow.run(ctx.clone(), input))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(WorkflowError::Failed("the workflow's code panicked".into()))
                }),
            Err(e) => Err(e),
        }
    };
    let outcome = match &run_span {
        Some(cx) => opentelemetry::context::FutureExt::with_context(running, cx.clone()).await,
        None => running.await,
    };
    if let Some(cx) = run_span {
        use opentelemetry::trace::TraceContextExt;
        let span = cx.span();
        if let Err(e) = &outcome {
            span.set_status(opentelemetry::trace::Status::error(e.to_string()));
        }
        span.end();
    }
    // An output that cannot be encoded fails the run like any failure.
    let outcome = outcome.and_then(|output| encode(&output, "run's output"));
    // Whatever ends this history (but a lost lease: the next driver ends
    // it) ends its children started to be cancelled with it.
    if !matches!(
        outcome,
        Err(WorkflowError::LostLease | WorkflowError::Unavailable(_))
    ) && ctx.close_children().await.is_err()
    {
        return false;
    }
    if let Err(WorkflowError::ContinuedAsNew(next)) = outcome {
        if let Some(position) = ctx.unvisited() {
            // The ended history has steps the code no longer reaches: the
            // code changed under the run. Fail it loudly, as at its end.
            let status = RunStatus::Failed {
                error: format!(
                    "replay diverged: the journal has a step at {position} the code no longer reaches"
                ),
                compensated: 0,
            };
            finish(engine, run_name, &shared, status, None).await;
            return false;
        }
        let taken = shared.signals_taken.locked().clone();
        let op = RunOp::ContinueAsNew {
            token,
            input: next.0,
            taken,
        };
        let continued = shared.call(shared.driver_key("continue"), op).await;
        if matches!(continued, Ok(RunReply::Done)) {
            count_run(&engine.env, kind, "continued_as_new");
            return true;
        }
        return false;
    }
    let (status, output) = match outcome {
        Ok(output) => match ctx.unvisited() {
            Some(position) => (
                RunStatus::Failed {
                    error: format!(
                        "replay diverged: the journal has a step at {position} the code no longer reaches"
                    ),
                    compensated: 0,
                },
                None,
            ),
            None => (RunStatus::Completed, Some(output)),
        },
        // Another driver continues (or will): this one just stops.
        Err(WorkflowError::LostLease | WorkflowError::Unavailable(_)) => {
            return false;
        }
        // The code no longer matches its journal: compensating with it
        // could do more harm. Fail loudly, as it is.
        Err(diverged @ WorkflowError::Diverged { .. }) => (
            RunStatus::Failed {
                error: diverged.to_string(),
                compensated: 0,
            },
            None,
        ),
        Err(error) => {
            let cancelled = matches!(error, WorkflowError::Cancelled);
            match ctx.compensate(&config.compensation_retry).await {
                Ok(compensated) if cancelled => (RunStatus::Cancelled { compensated }, None),
                Ok(compensated) => (
                    RunStatus::Failed {
                        error: error.to_string(),
                        compensated,
                    },
                    None,
                ),
                Err((_, WorkflowError::LostLease | WorkflowError::Unavailable(_))) => {
                    return false;
                }
                Err((compensation, e)) => (
                    RunStatus::CompensationFailed {
                        error: error.to_string(),
                        compensation: format!("{compensation}: {e}"),
                    },
                    None,
                ),
            }
        }
    };
    finish(engine, run_name, &shared, status, output).await;
    false
}

/// Records the run's end (if this driver still holds it) and indexes it.
async fn finish<W: Workflow>(
    engine: &Arc<Engine<W>>,
    run_name: &str,
    shared: &RunShared,
    status: RunStatus,
    output: Option<Vec<u8>>,
) {
    let kind = &engine.config.hosting.kind;
    let finish = RunOp::Finish {
        token: shared.token,
        status: status.clone(),
        output,
    };
    let finished = shared.call(shared.driver_key("finish"), finish).await;
    match finished {
        Ok(RunReply::Done) => {
            // Only the driver whose finish was recorded counts the outcome.
            let outcome = match &status {
                RunStatus::Completed => "completed",
                RunStatus::Cancelled { .. } => "cancelled",
                RunStatus::CompensationFailed { .. } => "compensation_failed",
                _ => "failed",
            };
            count_run(&engine.env, kind, outcome);
            mark_finished(engine, run_name, status).await
        }
        Ok(RunReply::Finished(status)) => mark_finished(engine, run_name, status).await,
        _ => {} // fenced or unreachable: the next driver finishes it
    }
}

/// Counts a run of workflow kind `kind` reaching `status`.
fn count_run(env: &crate::Env, kind: &str, status: &'static str) {
    let label = WorkflowLabel {
        kind: kind.to_string(),
        status,
    };
    env.metrics()
        .services()
        .workflow_runs
        .get_or_create(&label)
        .inc();
}

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Keeps the lease while the driver runs (a third of the lease apart).
async fn renew(shared: Arc<RunShared>, done: Arc<AtomicBool>) {
    let every = std::time::Duration::from_millis(shared.lease_ms / 3)
        .max(std::time::Duration::from_millis(1));
    loop {
        shared.env.sleep(every).await;
        if done.load(Ordering::SeqCst) || shared.lost.load(Ordering::SeqCst) {
            return;
        }
        if shared.parked.load(Ordering::SeqCst) {
            continue;
        }
        let op = RunOp::Renew {
            token: shared.token,
            now_ms: shared.now_ms(),
            lease_ms: shared.lease_ms,
        };
        // A failed renewal is retried next time; a lost lease stops the
        // driver at its next step (`lost` is set by the call).
        let sent = shared.env.now();
        if let Ok(RunReply::Done) = shared.call(shared.fresh_key(), op).await {
            shared.confirm_lease(sent);
        }
    }
}

async fn mark_finished<W: Workflow>(engine: &Arc<Engine<W>>, run: &str, status: RunStatus) {
    let finished = IndexChange::Finished {
        run: run.to_string(),
        status,
        finished_ms: crate::seams::unix_millis(engine.env.wall_clock()),
    };
    // Failed: the resumer finds the run unfinished, and its next driver
    // finds it finished and marks it again.
    let _ = engine.index_writes.apply(run, finished).await;
}

/// Every `resume_every`: drives the unfinished runs placed on this node.
pub(crate) async fn resume_loop<W: Workflow>(engine: Weak<Engine<W>>) {
    loop {
        let Some(strong) = engine.upgrade() else {
            return;
        };
        let env = strong.env.clone();
        let every = strong.config.resume_every;
        resume_once(&strong).await;
        drop(strong);
        env.sleep(every).await;
    }
}

pub(crate) async fn resume_once<W: Workflow>(engine: &Arc<Engine<W>>) {
    let here = engine.system.node().clone();
    for shard in engine.index_shards() {
        // A read: the query path, no journal write.
        let Ok(IndexReply::Unfinished(runs)) = shard
            .query(IndexOp::Unfinished, engine.config.call_timeout)
            .await
        else {
            continue;
        };
        for run in runs {
            if engine.runs.owner_of(&run).as_ref() == Some(&here) {
                ensure_driver(engine, &run);
            }
        }
    }
}
