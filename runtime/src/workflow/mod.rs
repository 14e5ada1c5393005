//! Durable workflows: long-running processes written as async functions
//! that survive crashes and run each step once.
//!
//! A workflow is a [`Workflow`]: `run(ctx, input)`. Its code does anything
//! that must happen once, or that must not change when it runs again,
//! through the [`WorkflowContext`]: [`step`](WorkflowContext::step) (with a
//! [`RetryPolicy`] in `step_with`), `now`, `random_u64`, `sleep` (a durable
//! timer), `wait_for_signal`, `send_signal`, `publish` (for queries) and
//! `on_failure` (a compensation). Everything else in the code must be
//! deterministic: a run is resumed by running its code again from the
//! start, returning journaled outcomes for the steps already recorded,
//! then running the rest live. A recorded step whose name differs from the
//! one the code asks for at that position fails the run loudly
//! ([`WorkflowError::Diverged`], naming both).
//!
//! # Built on durable actors
//!
//! Each run's record (input, step outcomes, signals, status) is a durable
//! actor hosted as a virtual actor of kind [`WorkflowConfig::hosting`]
//! (`kind:tenant/id`), journaled on the configured backend; a per-kind
//! index (`<kind>-runs`) lists the runs. A *driver* task runs the code and
//! writes to the record under a lease, so one driver makes progress at a
//! time; a driver fenced out (its lease taken by another after it
//! stalled) stops at its next step. Every node resumes, every
//! `resume_every`, the unfinished runs whose record placement puts on it:
//! after a crash, a restart or a move, the run continues where its journal
//! ends.
//!
//! # What "once" means
//!
//! A step's *outcome* is recorded once and every replay sees it. A step
//! cut short by a crash (run, not yet recorded) runs again under the same
//! [`StepKey`]: pass the key to what the step changes (a durable actor's
//! `call`, an API's idempotency key) and its effect applies once. The same
//! holds for compensations, which run newest first in the `undo/` branch
//! when the code fails or the run is cancelled.
//!
//! # Ids
//!
//! A run is named by tenant and id ([`RunId`]); ids are unique per tenant
//! and starting an existing run returns it. `kind:tenant/id` must fit an
//! actor name ([`ActorId::NAME_LEN_MAX`](crate::actor::ActorId::NAME_LEN_MAX),
//! 255 bytes), so a UUID serves as a run id.

mod activity;
mod children;
mod context;
mod declarative;
mod driver;
mod index;
mod index_batch;
mod listing;
mod record;

pub use activity::{Heartbeat, StepOptions};
pub use children::{ChildRun, ParentClose};
pub use context::{StepKey, WorkflowContext};
pub use declarative::{
    ChoiceCondition, Declarative, DeclarativeInput, Json, TaskHandler, TaskRegistry, WorkflowStep,
};
pub use index::StatusFilter;
pub use listing::{ListQuery, PatchUsage, RunPage, RunSummary};

/// This module's encoded types, for [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    use serde_json::json;
    v.visit("workflow::RunStatus", || {
        vec![
            RunStatus::Completed,
            RunStatus::CompensationFailed {
                error: "declined".into(),
                compensation: "undo-a: timeout".into(),
            },
        ]
    });
    v.visit("workflow::Json", || {
        vec![Json(json!([1, "two", null, {"x": -3}]))]
    });
    v.visit("workflow::DeclarativeInput", || {
        let task = WorkflowStep::ActorTask {
            name: "reserve".into(),
            task: "inventory.reserve".into(),
            params: json!({"sku": "A-1", "qty": 2, "price": 9.5}),
            attempts: 3,
            compensate: Some("inventory.release".into()),
        };
        let steps = vec![
            task.clone(),
            WorkflowStep::Parallel {
                name: "notify".into(),
                branches: vec![vec![task.clone()], vec![]],
            },
            WorkflowStep::Choice {
                name: "route".into(),
                conditions: vec![ChoiceCondition {
                    variable: "/input/express".into(),
                    equals: json!(true),
                    then: vec![WorkflowStep::Wait {
                        name: "cool-off".into(),
                        duration: Duration::from_secs(60),
                    }],
                }],
                otherwise: vec![task],
            },
        ];
        vec![DeclarativeInput {
            steps,
            input: json!({"express": true}),
        }]
    });
    record::encoded_types(v);
    index::encoded_types(v);
}

use crate::actor::{ActorSystem, AskError};
use crate::durability::JournalBackend;
use crate::env::Env;
use crate::retry::Backoff;
use crate::seams::{Clock, Rng};
use crate::virtual_actor::{VirtualActors, VirtualConfig, VirtualError, VirtualRef};
use crate::wake::{self, HostWaker, WaitRoom};
use context::{decode, encode};
use index::{IndexChange, RunIndex};
use plexspaces_storage::sync::LockExt;
use record::{RunOp, RunRecord, RunReply};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A workflow: its code, run once per run and again (replayed) whenever
/// the run resumes. Register it with [`Workflows::register`].
pub trait Workflow: Send + Sync + 'static {
    /// What a run starts with.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// What a completed run returns.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// The workflow's code. Anything non-deterministic goes through `ctx`.
    fn run(
        &self,
        ctx: WorkflowContext,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, WorkflowError>> + Send;
}

/// Why a step failed: retryable (tried again under its policy) or terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepError {
    /// What went wrong.
    pub message: String,
    /// Whether trying again may succeed.
    pub retryable: bool,
}

impl StepError {
    /// A failure worth trying again (a timeout, a busy service).
    pub fn retryable(message: impl Into<String>) -> Self {
        StepError {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure that will not go away (a refusal, bad input).
    pub fn terminal(message: impl Into<String>) -> Self {
        StepError {
            message: message.into(),
            retryable: false,
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StepError {}

/// How a step retries retryable errors.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (1: no retries).
    pub max_attempts: u32,
    /// The pauses between attempts (default: 100 ms doubling up to 10 s,
    /// ±50 % jitter).
    pub backoff: Backoff,
}

impl RetryPolicy {
    /// One attempt.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
                .with_jitter(0.5),
        }
    }

    /// `max_attempts` attempts, pausing from 100 ms up to 10 s.
    pub fn attempts(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            ..Self::none()
        }
    }

    /// The pause after failed attempt `attempt` (1-based), jittered.
    pub(crate) fn pause(&self, env: &Env, attempt: u32) -> Duration {
        self.backoff.delay(attempt, env)
    }
}

/// Where a run stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunStatus {
    /// Started, not finished.
    Running,
    /// The code returned its output.
    Completed,
    /// The code failed; `compensated` compensations ran (newest first).
    Failed {
        /// Why.
        error: String,
        /// How many compensations ran.
        compensated: u32,
    },
    /// Cancelled; `compensated` compensations ran.
    Cancelled {
        /// How many compensations ran.
        compensated: u32,
    },
    /// The code failed and a compensation then failed for good: the run
    /// needs a person.
    CompensationFailed {
        /// Why the run failed.
        error: String,
        /// Which compensation failed, and why.
        compensation: String,
    },
}

impl RunStatus {
    /// Whether the run is over.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, RunStatus::Running)
    }
}

/// A run's name: tenant and id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId {
    tenant: String,
    id: String,
}

impl RunId {
    /// Run `id` of `tenant`: each 1 to 128 bytes of `[A-Za-z0-9._-]` (a
    /// UUID is a run id).
    pub fn new(tenant: &str, id: &str) -> Result<Self, WorkflowError> {
        use crate::names::{NAME_BYTES_MAX, check_token};
        check_token("tenant", tenant, NAME_BYTES_MAX).map_err(WorkflowError::InvalidId)?;
        check_token("run id", id, NAME_BYTES_MAX).map_err(WorkflowError::InvalidId)?;
        Ok(RunId {
            tenant: tenant.into(),
            id: id.into(),
        })
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The id within the tenant.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn key(&self) -> String {
        format!("{}/{}", self.tenant, self.id)
    }

    fn parse(key: &str) -> Option<RunId> {
        let (tenant, id) = key.split_once('/')?;
        RunId::new(tenant, id).ok()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.id)
    }
}

/// Why a workflow operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkflowError {
    /// A step failed for good (after its retries).
    StepFailed {
        /// The step.
        step: String,
        /// Its error.
        error: String,
    },
    /// The workflow's code failed for a reason of its own.
    Failed(String),
    /// The run was cancelled.
    Cancelled,
    /// Replay found a different step at a recorded position: the code
    /// changed under a running run.
    Diverged {
        /// The position (`<branch path>#<n>`).
        position: String,
        /// The step the journal has there.
        journaled: String,
        /// The step the code asked for.
        requested: String,
    },
    /// This driver's lease was taken by another (which continues the run).
    LostLease,
    /// The run's record could not be reached in time.
    Unavailable(String),
    /// A journaled value does not decode as the code's type.
    Decode(String),
    /// A value (an input, output, signal, published value) cannot be
    /// encoded; nothing was sent or recorded.
    Encode(crate::EncodeError),
    /// A bad run id, kind or configuration.
    InvalidId(String),
    /// The run does not exist (never started).
    NotFound(String),
    /// The run ended without an output (failed or cancelled).
    Ended(RunStatus),
    /// A child run ended without an output (failed or cancelled).
    ChildEnded {
        /// The child's run id.
        child: String,
        /// How it ended.
        status: RunStatus,
    },
    /// Not a failure: the code asked to continue as new
    /// ([`WorkflowContext::continue_as_new`]); return it from `run`.
    ContinuedAsNew(NextInput),
    /// Waiting for a result took longer than asked.
    Timeout,
    /// A run's record or index answered with a reply this version does
    /// not expect (a bug, or a node running another version).
    Protocol(String),
}

impl WorkflowError {
    /// A failure of the workflow's own (for code returning early).
    pub fn failed(message: impl Into<String>) -> Self {
        WorkflowError::Failed(message.into())
    }
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkflowError::StepFailed { step, error } => write!(f, "step {step:?} failed: {error}"),
            WorkflowError::Failed(why) => write!(f, "workflow failed: {why}"),
            WorkflowError::Cancelled => write!(f, "the run was cancelled"),
            WorkflowError::Diverged {
                position,
                journaled,
                requested,
            } => write!(
                f,
                "replay diverged at {position}: the journal has step {journaled:?}, the code ran {requested:?}"
            ),
            WorkflowError::LostLease => write!(f, "another driver took the run over"),
            WorkflowError::Unavailable(why) => write!(f, "the run's record is unreachable: {why}"),
            WorkflowError::Decode(why) => write!(f, "undecodable workflow value: {why}"),
            WorkflowError::Encode(e) => write!(f, "workflow value: {e}"),
            WorkflowError::InvalidId(why) => write!(f, "invalid workflow id: {why}"),
            WorkflowError::NotFound(run) => write!(f, "no run {run}"),
            WorkflowError::Ended(status) => write!(f, "the run ended without output: {status:?}"),
            WorkflowError::ChildEnded { child, status } => {
                write!(f, "child run {child} ended without output: {status:?}")
            }
            WorkflowError::ContinuedAsNew(_) => write!(f, "the run continues as new"),
            WorkflowError::Timeout => write!(f, "timed out waiting for the run"),
            WorkflowError::Protocol(why) => write!(f, "workflow protocol error: {why}"),
        }
    }
}

impl std::error::Error for WorkflowError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WorkflowError::Encode(e) => Some(e),
            _ => None,
        }
    }
}

/// The input of a run's next history (see
/// [`WorkflowContext::continue_as_new`]), encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextInput(pub(crate) Vec<u8>);

/// A record or index reply of the wrong variant (see
/// [`crate::invariant::wrong_remote_reply`]).
#[track_caller]
pub(crate) fn protocol(op: &str, reply: &impl fmt::Debug) -> WorkflowError {
    WorkflowError::Protocol(crate::invariant::wrong_remote_reply(op, reply))
}

fn unavailable(e: AskError) -> WorkflowError {
    WorkflowError::Unavailable(e.to_string())
}

/// How one workflow kind runs on this node. Use the same on every node.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WorkflowConfig {
    /// The run records' virtual actors: `hosting.kind` is the workflow
    /// kind; its journal holds every run.
    pub hosting: VirtualConfig,
    /// How long a driver keeps a run without renewing (default 10 s): the
    /// longest a run stalls when its driver's node dies unnoticed.
    pub lease: Duration,
    /// The longest one call to a run's record may take (default 10 s).
    pub call_timeout: Duration,
    /// How often each node looks for unfinished runs to drive (default 1 s).
    pub resume_every: Duration,
    /// How often a wait for a signal or a result asks again (default
    /// 1 s). Waits are woken by the run's record; this bounds what a lost
    /// wake costs.
    pub wait_refresh: Duration,
    /// How often a sleeping run checks for cancellation (default 1 s).
    pub cancel_check_every: Duration,
    /// How compensations retry (default 10 attempts, 100 ms doubling).
    pub compensation_retry: RetryPolicy,
}

impl WorkflowConfig {
    /// Defaults for workflow kind `kind`, journaling to `journal`.
    pub fn new(kind: &str, journal: JournalBackend) -> Self {
        let mut hosting = VirtualConfig::new(kind, journal);
        // A run journals a handful of messages, never the 1,000 that bring
        // a periodic checkpoint: without a checkpoint when its record goes
        // idle and deactivates, a finished run's entries are never covered,
        // and no journal segment holding any of them is ever compacted (a
        // journal shared with workflows then kept every segment, open, and
        // indexed in memory: the soak benchmark found it).
        hosting.durability.checkpoint_on_stop = true;
        WorkflowConfig {
            hosting,
            lease: Duration::from_secs(10),
            call_timeout: Duration::from_secs(10),
            resume_every: Duration::from_secs(1),
            wait_refresh: Duration::from_secs(1),
            cancel_check_every: Duration::from_secs(1),
            compensation_retry: RetryPolicy::attempts(10),
        }
    }
}

pub(crate) struct Engine<W: Workflow> {
    system: ActorSystem,
    env: Env,
    config: WorkflowConfig,
    workflow: W,
    runs: VirtualActors<RunRecord>,
    index: VirtualActors<RunIndex>,
    /// Writes to the index, batched per shard.
    index_writes: Arc<index_batch::IndexBatcher>,
    room: Arc<WaitRoom>,
    driving: Mutex<BTreeSet<String>>,
    nonce: String,
    next_key: AtomicU64,
}

impl<W: Workflow> Engine<W> {
    fn driving(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.driving.locked()
    }

    /// Every index shard.
    fn index_shards(&self) -> Vec<VirtualRef<RunIndex>> {
        (0..index::INDEX_SHARDS)
            .filter_map(|n| self.index.get(&index::shard_name(n)).ok())
            .collect()
    }

    fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    fn fresh_key(&self, what: &str) -> String {
        format!("{}:{what}:{}", self.nonce, self.next_key())
    }
}

/// One workflow kind on this node: start, watch, signal, query, cancel
/// and list its runs. Cheap to clone.
pub struct Workflows<W: Workflow> {
    engine: Arc<Engine<W>>,
}

impl<W: Workflow> Clone for Workflows<W> {
    fn clone(&self) -> Self {
        Workflows {
            engine: self.engine.clone(),
        }
    }
}

impl<W: Workflow> fmt::Debug for Workflows<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflows")
            .field("kind", &self.engine.config.hosting.kind)
            .finish_non_exhaustive()
    }
}

impl<W: Workflow> Workflows<W> {
    /// Runs workflow `workflow` as kind `config.hosting.kind` on `system`'s
    /// node, and starts resuming its unfinished runs. In a cluster, start
    /// distribution first and register on every node.
    pub fn register(
        system: &ActorSystem,
        config: WorkflowConfig,
        workflow: W,
    ) -> Result<Self, WorkflowError> {
        let invalid = |e: VirtualError| WorkflowError::InvalidId(e.to_string());
        #[cfg(feature = "planted-bugs")]
        let planted_bug = config.hosting.planted_bug;
        let room = wake::wait_room(system).map_err(|e| WorkflowError::InvalidId(e.to_string()))?;
        // The records wake waiting drivers and callers through their node.
        let mut hosting = config.hosting.clone();
        hosting.facets.push(HostWaker::spec(system));
        let runs = VirtualActors::register(system, hosting, move |_| {
            #[allow(unused_mut)]
            let mut record = RunRecord::default();
            #[cfg(feature = "planted-bugs")]
            {
                record.planted_bug = planted_bug;
            }
            record
        })
        .map_err(invalid)?;
        let mut index_config = config.hosting.clone();
        index_config.kind = format!("{}-runs", config.hosting.kind);
        // The hosting's facets are the runs' (each run's record actor);
        // the index is the engine's own bookkeeping.
        index_config.facets.clear();
        let index = VirtualActors::register(system, index_config, |_| RunIndex::default())
            .map_err(invalid)?;
        let env = system.env().clone();
        let nonce = format!("{:016x}{:016x}", env.next_u64(), env.next_u64());
        let index_writes = index_batch::IndexBatcher::new(
            index.clone(),
            env.clone(),
            config.call_timeout,
            nonce.clone(),
        );
        let engine = Arc::new(Engine {
            system: system.clone(),
            env: env.clone(),
            config,
            workflow,
            runs,
            index_writes,
            index,
            room,
            driving: Mutex::new(BTreeSet::new()),
            nonce,
            next_key: AtomicU64::new(0),
        });
        drop(env.spawn(driver::resume_loop(Arc::downgrade(&engine))));
        Ok(Workflows { engine })
    }

    fn record(&self, run: &RunId) -> Result<VirtualRef<RunRecord>, WorkflowError> {
        self.engine
            .runs
            .get(&run.key())
            .map_err(|e| WorkflowError::InvalidId(e.to_string()))
    }

    async fn call(&self, run: &RunId, key: String, op: RunOp) -> Result<RunReply, WorkflowError> {
        self.record(run)?
            .call(key, op, self.engine.config.call_timeout)
            .await
            .map_err(unavailable)
    }

    async fn view(&self, run: &RunId) -> Result<record::RunView, WorkflowError> {
        // A read: the query path, no key and no journal write.
        let reply = self
            .record(run)?
            .query(RunOp::View, self.engine.config.call_timeout)
            .await
            .map_err(unavailable)?;
        match reply {
            RunReply::View(view) => Ok(view),
            other => Err(protocol("a run's view", &other)),
        }
    }

    /// Starts run `run` with `input` and returns its status. Starting a run
    /// that exists returns its status and leaves it (and its input) alone.
    pub async fn start(&self, run: &RunId, input: &W::Input) -> Result<RunStatus, WorkflowError> {
        self.start_encoded(run, encode(input, "run's input")?).await
    }

    pub(crate) async fn start_encoded(
        &self,
        run: &RunId,
        input: Vec<u8>,
    ) -> Result<RunStatus, WorkflowError> {
        self.start_with(run, RunOp::Start { input }).await
    }

    /// Indexes `run`, sends it `op` (a start) and drives it if it runs here.
    async fn start_with(&self, run: &RunId, op: RunOp) -> Result<RunStatus, WorkflowError> {
        let engine = &self.engine;
        let key = run.key();
        // Indexed first, so a crash after the start leaves a run the
        // resumers find.
        let added = IndexChange::Added {
            run: key.clone(),
            started_ms: crate::seams::unix_millis(engine.env.wall_clock()),
        };
        engine.index_writes.apply(&key, added).await?;
        // A run placed here, and driven by no one here: its start takes
        // the lease too (one message fewer per run).
        let here = engine.runs.owner_of(&key).as_ref() == Some(engine.system.node());
        let claimed = here.then(|| driver::claim(engine, &key)).flatten();
        let token = engine.env.next_u64() | 1;
        let op = match (op, &claimed) {
            (RunOp::Start { input }, Some(_)) => RunOp::StartDriving {
                input,
                token,
                now_ms: crate::seams::unix_millis(engine.env.wall_clock()),
                lease_ms: crate::seams::whole_millis(engine.config.lease),
            },
            (op, _) => op,
        };
        let sent = engine.env.now();
        // A fresh key: starting is idempotent by itself (the first input
        // stays), and the reply must be the run's status now.
        let status = match self.call(run, engine.fresh_key("start"), op).await? {
            RunReply::Started(status) => status,
            RunReply::Acquired(history) => {
                let claimed = claimed.ok_or_else(|| {
                    WorkflowError::Protocol("a lease taken by a plain start".into())
                })?;
                driver::spawn_driver(claimed, Some((token, history, sent)));
                return Ok(RunStatus::Running);
            }
            other => return Err(protocol("starting a run", &other)),
        };
        if !status.is_terminal() {
            match claimed {
                Some(claimed) => driver::spawn_driver(claimed, None),
                None if here => driver::ensure_driver(engine, &key),
                None => {}
            }
        }
        Ok(status)
    }

    /// Delivers signal `name` with `data` to run `run`, starting it with
    /// `input` first if it does not exist: one step on the run's record,
    /// so the run never starts without the signal. A run that ended is
    /// left alone (its status is returned, the signal dropped).
    pub async fn signal_with_start<T: Serialize>(
        &self,
        run: &RunId,
        input: &W::Input,
        name: &str,
        data: &T,
    ) -> Result<RunStatus, WorkflowError> {
        let op = RunOp::SignalWithStart {
            input: encode(input, "run's input")?,
            name: name.to_string(),
            data: encode(data, "signal's data")?,
        };
        self.start_with(run, op).await
    }

    /// The run's status (`NotFound` if it never started).
    pub async fn status(&self, run: &RunId) -> Result<RunStatus, WorkflowError> {
        self.view(run)
            .await?
            .status
            .ok_or_else(|| WorkflowError::NotFound(run.to_string()))
    }

    /// Waits up to `timeout` for the run to end and returns its output;
    /// `Ended` if it failed or was cancelled. A record that cannot be
    /// reached for a while is asked again until `timeout`; only then is it
    /// `Unavailable` (or `Timeout` if it was reachable and still running,
    /// or not started yet). Woken by the run's record when it ends, not
    /// polled: a wait costs one query per `wait_refresh`.
    pub async fn result(&self, run: &RunId, timeout: Duration) -> Result<W::Output, WorkflowError> {
        match self.outcome(run, timeout).await? {
            Ok(output) => decode(&output, "the run's output"),
            Err(status) => Err(WorkflowError::Ended(status)),
        }
    }

    /// Waits up to `timeout` for the run to end: its encoded output, or
    /// how it ended without one. Woken by the run's record when it ends;
    /// asked again every `wait_refresh` (a lost wake, a record that moved)
    /// and, while unreachable, until `timeout`.
    pub(crate) async fn outcome(
        &self,
        run: &RunId,
        timeout: Duration,
    ) -> Result<Result<Vec<u8>, RunStatus>, WorkflowError> {
        let engine = &self.engine;
        let env = &engine.env;
        let deadline = env.now() + timeout;
        let record = self.record(run)?;
        let claim = engine.fresh_key("result");
        let mut ticket = engine.room.enter(&claim);
        // Until the record first answers, quick retries; after, a wake
        // or a refresh.
        let mut first_asks = Backoff::new(Duration::from_millis(5), engine.config.wait_refresh)
            .with_jitter(0.0)
            .pauses();
        let mut reached = false;
        loop {
            let watch = RunOp::Watch {
                watcher: (env.node().to_string(), claim.clone()),
                signal: None,
            };
            // A record unreachable for a moment (its node moving, a
            // partition) is asked again until the caller's deadline.
            let unreachable = match record.query(watch, engine.config.call_timeout).await {
                Ok(RunReply::View(view)) => {
                    reached = true;
                    match view.status {
                        // Not started yet (a signal may have come first):
                        // its start is awaited like its end.
                        None => None,
                        Some(RunStatus::Completed) => {
                            return view.output.map(Ok).ok_or_else(|| {
                                WorkflowError::Decode("a completed run without output".into())
                            });
                        }
                        Some(status) if status.is_terminal() => return Ok(Err(status)),
                        Some(_) => None,
                    }
                }
                Ok(other) => return Err(protocol("watching a run", &other)),
                Err(e) => Some(unavailable(e)),
            };
            let left = deadline.saturating_duration_since(env.now());
            if left.is_zero() {
                return Err(unreachable.unwrap_or(WorkflowError::Timeout));
            }
            let woken = Box::pin(ticket.woken());
            let pause = match reached {
                true => engine.config.wait_refresh,
                false => first_asks.next(env),
            };
            let pause = Box::pin(env.sleep(pause.min(left)));
            futures::future::select(woken, pause).await;
        }
    }

    /// Asks the run to stop: its next step fails with `Cancelled`, its
    /// compensations run, and it ends `Cancelled`. No effect on a finished
    /// run.
    pub async fn cancel(&self, run: &RunId) -> Result<(), WorkflowError> {
        self.call(run, self.engine.fresh_key("cancel"), RunOp::Cancel)
            .await
            .map(drop)
    }

    /// Sends signal `name` with `data` to the run. Durable: kept until a
    /// `wait_for_signal(name)` takes it, even if sent before the run
    /// waits (or starts).
    pub async fn signal<T: Serialize>(
        &self,
        run: &RunId,
        name: &str,
        data: &T,
    ) -> Result<(), WorkflowError> {
        let key = self.engine.fresh_key("signal");
        self.signal_once(run, &key, name, data).await
    }

    /// [`Workflows::signal`] under the caller's idempotency key: sending it
    /// again with the same key (after an unknown outcome) delivers it once.
    pub async fn signal_once<T: Serialize>(
        &self,
        run: &RunId,
        key: &str,
        name: &str,
        data: &T,
    ) -> Result<(), WorkflowError> {
        let data = encode(data, "signal's data")?;
        self.deliver_signal(run, format!("signal:{key}"), name, data)
            .await
    }

    /// Delivers an encoded signal under the full idempotency key `key`.
    pub(crate) async fn deliver_signal(
        &self,
        run: &RunId,
        key: String,
        name: &str,
        data: Vec<u8>,
    ) -> Result<(), WorkflowError> {
        let name = name.to_string();
        // Sent inside a sampled trace: the run's step that takes it links
        // back to this span.
        let op = match crate::observability::traces::current_traceparent() {
            Some(trace) => RunOp::SignalTraced { name, data, trace },
            None => RunOp::Signal { name, data },
        };
        self.call(run, key, op).await.map(drop)
    }

    /// The value the run last published under `name` (read-only: answered
    /// from the run's record, not journaled).
    pub async fn query<T: DeserializeOwned>(
        &self,
        run: &RunId,
        name: &str,
    ) -> Result<Option<T>, WorkflowError> {
        let view = self.view(run).await?;
        view.published
            .get(name)
            .map(|bytes| decode(bytes, &format!("published {name:?}")))
            .transpose()
    }

    /// Looks for unfinished runs placed on this node now, instead of at
    /// the next `resume_every` tick.
    pub async fn resume_now(&self) {
        driver::resume_once(&self.engine).await;
    }

    /// The runs this node is driving now, sorted (`tenant/id`).
    pub fn driving(&self) -> Vec<String> {
        self.engine.driving().iter().cloned().collect()
    }
}
