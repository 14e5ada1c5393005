//! `WorkflowContext`: the one door through which a workflow's code does
//! anything that must happen once or read anything that must not change
//! on replay.
//!
//! Every operation takes the next *position* of its context (`#0`, `#1`,
//! ... on the root; `<branch>#0`, ... in a branch). A position already in
//! the run's record returns its recorded outcome without running; the
//! first position not recorded runs live and is recorded before the code
//! sees its outcome. A recorded position whose step name differs from the
//! name the code asks for is a divergence: the run fails with both names.

use super::record::{Outcome, PATCH_MARK, RunOp, RunRecord, RunReply, StepEntry};
use super::{RetryPolicy, StepError, WorkflowError};
use crate::env::Env;
use crate::observability::metrics::{KindLabel, seconds};
use crate::seams::{Clock, Rng};
use crate::virtual_actor::{VirtualActors, VirtualRef};
use crate::wake::{Ticket, WaitRoom};
use futures::future::BoxFuture;
use opentelemetry::trace::TraceContextExt;
use plexspaces_storage::sync::LockExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The idempotency key of one step of one run (`<tenant>/<id>/<position>`):
/// the same on every attempt and every replay of that step. Pass it to
/// what the step calls (a durable actor's `call`, a payment API), and the
/// effect applies once even when the step runs again after a crash.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StepKey(pub(crate) String);

impl StepKey {
    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<StepKey> for String {
    fn from(key: StepKey) -> String {
        key.0
    }
}

type Undo = Box<dyn FnMut(StepKey) -> BoxFuture<'static, Result<(), StepError>> + Send>;

/// A compensation registered by the code, run if the run fails.
pub(crate) struct Compensation {
    pub name: String,
    pub undo: Undo,
}

/// Cancels a child run (of any kind) when its parent's history ends.
pub(crate) type CancelChild =
    Box<dyn Fn() -> BoxFuture<'static, Result<(), WorkflowError>> + Send + Sync>;

/// How a driver reaches its run, and what it learned while driving.
pub(crate) struct RunShared {
    pub env: Env,
    /// The kind's step metrics (looked up once per driver).
    pub metrics: StepMetrics,
    pub run: VirtualRef<RunRecord>,
    pub runs: VirtualActors<RunRecord>,
    /// `tenant/id`.
    pub run_name: String,
    pub token: u64,
    pub lease_ms: u64,
    pub call_timeout: Duration,
    /// How often a woken wait asks again (a lost wake costs at most this).
    pub wait_refresh: Duration,
    pub cancel_check_every: Duration,
    /// This node's wait room, where the run's record wakes this driver.
    pub room: Arc<WaitRoom>,
    /// How many times the run continued as new (part of its step keys and
    /// its children's ids).
    pub generation: AtomicU32,
    /// Heartbeat details of steps not yet recorded, by position.
    pub heartbeats: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Children to cancel when this history ends (`ParentClose::Cancel`).
    pub children: Mutex<Vec<CancelChild>>,
    /// Child names started in this history (each names one child).
    pub child_names: Mutex<BTreeSet<String>>,
    /// Recorded steps by position (replayed from here).
    pub history: Mutex<BTreeMap<String, StepEntry>>,
    /// Positions the code reached (to find recorded steps it skipped).
    pub visited: Mutex<BTreeSet<String>>,
    pub cancel_requested: AtomicBool,
    /// Compensating: cancellation no longer stops steps.
    pub compensating: AtomicBool,
    /// Asleep without the lease (see `park`).
    pub parked: AtomicBool,
    pub lost: AtomicBool,
    pub compensations: Mutex<Vec<Compensation>>,
    /// Per signal name, how many waits received one.
    pub signals_taken: Mutex<BTreeMap<String, usize>>,
    /// When the last call that extended this driver's lease was sent.
    pub lease_confirmed: Mutex<Option<crate::seams::Instant>>,
    /// Shared by the histories one driver drives.
    pub next_call: Arc<AtomicU64>,
}

/// A workflow kind's step metrics.
pub(crate) struct StepMetrics {
    /// Latency of steps executed (not replayed).
    pub executed: prometheus_client::metrics::histogram::Histogram,
    /// Steps answered from the journal.
    pub replayed: prometheus_client::metrics::counter::Counter,
}

impl StepMetrics {
    pub(crate) fn of(env: &Env, kind: &str) -> Self {
        let services = env.metrics().services();
        let label = KindLabel {
            kind: kind.to_string(),
        };
        StepMetrics {
            executed: services.workflow_steps.get_or_create_owned(&label),
            replayed: services.workflow_steps_replayed.get_or_create_owned(&label),
        }
    }
}

impl RunShared {
    pub(crate) fn now_ms(&self) -> u64 {
        let ms = self
            .env
            .wall_clock()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    /// Sends `op` to the run's record under `key`.
    pub(crate) async fn call(&self, key: String, op: RunOp) -> Result<RunReply, WorkflowError> {
        match self.run.call(key, op, self.call_timeout).await {
            Ok(RunReply::LostLease) => {
                self.lost.store(true, Ordering::SeqCst);
                Err(WorkflowError::LostLease)
            }
            Ok(reply) => Ok(reply),
            Err(e) => Err(WorkflowError::Unavailable(e.to_string())),
        }
    }

    /// A key for a call that is never retried by the code (a query, a
    /// renewal): unique per driver.
    pub(crate) fn fresh_key(&self) -> String {
        let n = self.next_call.fetch_add(1, Ordering::Relaxed);
        format!("{:x}:c{n}", self.token)
    }

    /// Reads the record under a watch: `signal` (or the view, if `None`),
    /// and, unless that settles it, registers `ticket`'s claim to be woken
    /// by the next signal, cancellation or end.
    async fn watch(
        &self,
        claim: &str,
        signal: Option<(String, usize)>,
    ) -> Result<RunReply, WorkflowError> {
        let op = RunOp::Watch {
            watcher: (self.env.node().to_string(), claim.to_string()),
            signal,
        };
        self.run
            .query(op, self.call_timeout)
            .await
            .map_err(|e| WorkflowError::Unavailable(e.to_string()))
    }

    /// A claim and its ticket in this node's wait room.
    fn ticket(&self) -> (String, Ticket) {
        let claim = self.fresh_key();
        let ticket = self.room.enter(&claim);
        (claim, ticket)
    }

    /// Waits for `ticket`'s wake or `pause`, whichever comes first. (Not
    /// `wake::wait_for`: a run's deadlines are journaled wall-clock
    /// milliseconds, checked against the wall clock on every round.)
    async fn pause(&self, ticket: &mut Ticket, pause: Duration) {
        let woken = Box::pin(ticket.woken());
        futures::future::select(woken, Box::pin(self.env.sleep(pause))).await;
    }

    /// This driver's idempotency key for `what` in this history (a driver
    /// drives every history of a run that continues as new).
    pub(crate) fn driver_key(&self, what: &str) -> String {
        match self.generation.load(Ordering::SeqCst) {
            0 => format!("{:x}:{what}", self.token),
            g => format!("{:x}:g{g}:{what}", self.token),
        }
    }

    /// The idempotency key of the step at `position` of this history.
    pub(crate) fn step_key(&self, position: &str) -> StepKey {
        match self.generation.load(Ordering::SeqCst) {
            0 => StepKey(format!("{}/{position}", self.run_name)),
            g => StepKey(format!("{}/g{g}/{position}", self.run_name)),
        }
    }

    pub(crate) fn note_cancel(&self, requested: bool) {
        if requested {
            self.cancel_requested.store(true, Ordering::SeqCst);
        }
    }

    /// Notes that a call sent at `sent` extended this driver's lease.
    pub(crate) fn confirm_lease(&self, sent: crate::seams::Instant) {
        let mut confirmed = self.lease_confirmed.locked();
        if confirmed.is_none_or(|at| at < sent) {
            *confirmed = Some(sent);
        }
    }

    /// Whether this driver's lease has surely run out: nothing extended it
    /// for a whole lease (its node cannot reach the record). Another
    /// driver may hold the run; work here would be a ghost's.
    pub(crate) fn lease_lapsed(&self) -> bool {
        if self.parked.load(Ordering::SeqCst) {
            return false;
        }
        let lease = Duration::from_millis(self.lease_ms);
        self.lease_confirmed
            .locked()
            .is_some_and(|at| self.env.now().saturating_duration_since(at) > lease)
    }

    /// Err if the code must stop making progress: cancelled or fenced out.
    pub(crate) fn check_live(&self) -> Result<(), WorkflowError> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(WorkflowError::LostLease);
        }
        if self.cancel_requested.load(Ordering::SeqCst) && !self.compensating.load(Ordering::SeqCst)
        {
            return Err(WorkflowError::Cancelled);
        }
        Ok(())
    }

    /// Before a wait longer than the lease: gives the lease up, so a long
    /// sleep costs no renewals (each a journal write). Another driver may
    /// take the run meanwhile; `unpark` then fences this one out.
    async fn park(&self) -> Result<(), WorkflowError> {
        self.parked.store(true, Ordering::SeqCst);
        let op = RunOp::Release { token: self.token };
        self.call(self.fresh_key(), op).await.map(drop)
    }

    /// After a parked wait: takes the lease back, unless another driver
    /// holds it.
    async fn unpark(&self) -> Result<(), WorkflowError> {
        let op = RunOp::Acquire {
            token: self.token,
            now_ms: self.now_ms(),
            lease_ms: self.lease_ms,
        };
        let sent = self.env.now();
        match self.call(self.fresh_key(), op).await? {
            RunReply::Acquired(history) => {
                self.confirm_lease(sent);
                self.note_cancel(history.cancel_requested);
                self.parked.store(false, Ordering::SeqCst);
                Ok(())
            }
            _ => {
                self.lost.store(true, Ordering::SeqCst);
                Err(WorkflowError::LostLease)
            }
        }
    }

    /// Whether a wait until `deadline_ms` outlasts the lease.
    fn worth_parking(&self, deadline_ms: u64) -> bool {
        deadline_ms.saturating_sub(self.now_ms()) > self.lease_ms
    }

    /// Asks for the `index`-th signal `name` until it comes or the wall
    /// clock reaches `deadline_ms`: the journaled outcome (`None` at the
    /// deadline).
    async fn poll_signal(
        &self,
        name: &str,
        index: usize,
        deadline_ms: u64,
    ) -> Result<Outcome, WorkflowError> {
        let (claim, mut ticket) = self.ticket();
        loop {
            let signal = Some((name.to_string(), index));
            let (data, cancel_requested, trace) = match self.watch(&claim, signal).await? {
                RunReply::Signal {
                    data,
                    cancel_requested,
                } => (data, cancel_requested, None),
                RunReply::SignalTraced {
                    data,
                    cancel_requested,
                    trace,
                } => (data, cancel_requested, trace),
                _ => (None, false, None),
            };
            if data.is_some() {
                link_to_sender(trace.as_deref());
                return Ok(Ok(crate::codec::encode_own(&data)));
            }
            self.note_cancel(cancel_requested);
            self.check_live()?;
            let now_ms = self.now_ms();
            if now_ms >= deadline_ms {
                return Ok(Ok(crate::codec::encode_own(&None::<Vec<u8>>)));
            }
            let left = Duration::from_millis(deadline_ms - now_ms);
            self.pause(&mut ticket, self.wait_refresh.min(left)).await;
        }
    }

    /// Asks the record whether the run was cancelled.
    pub(crate) async fn refresh_cancel(&self) -> Result<(), WorkflowError> {
        let reply = self
            .run
            .query(RunOp::View, self.call_timeout)
            .await
            .map_err(|e| WorkflowError::Unavailable(e.to_string()))?;
        if let RunReply::View(view) = reply {
            self.note_cancel(view.cancel_requested);
        }
        self.check_live()
    }

    /// Records `step` at `position` and returns what the record keeps
    /// there (another driver's outcome if it recorded first).
    pub(crate) async fn record(
        &self,
        position: &str,
        step: StepEntry,
    ) -> Result<StepEntry, WorkflowError> {
        let op = RunOp::Record {
            token: self.token,
            now_ms: self.now_ms(),
            lease_ms: self.lease_ms,
            position: position.to_string(),
            step,
        };
        let sent = self.env.now();
        match self.call(self.driver_key(position), op).await? {
            RunReply::Recorded {
                step,
                cancel_requested,
            } => {
                self.confirm_lease(sent);
                self.note_cancel(cancel_requested);
                self.history
                    .locked()
                    .insert(position.to_string(), step.clone());
                Ok(step)
            }
            other => Err(super::protocol("recording a step", &other)),
        }
    }
}

/// Encodes a workflow value of the user's (input, output, step result,
/// signal, published value).
pub(crate) fn encode<T: Serialize>(
    value: &T,
    what: &'static str,
) -> Result<Vec<u8>, WorkflowError> {
    crate::codec::encode(value, what).map_err(WorkflowError::Encode)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, WorkflowError> {
    crate::codec::decode(bytes, what)
        .map_err(|e| WorkflowError::Decode(format!("{e} (changed its type?)")))
}

/// What a workflow's code runs against. Cheap to clone; a clone shares the
/// same positions, a [`WorkflowContext::branch`] has its own.
#[derive(Clone)]
pub struct WorkflowContext {
    pub(super) shared: Arc<RunShared>,
    path: String,
    counter: Arc<AtomicU64>,
}

impl fmt::Debug for WorkflowContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowContext")
            .field("run", &self.shared.run_name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl WorkflowContext {
    pub(crate) fn root(shared: Arc<RunShared>) -> Self {
        Self::at(shared, String::new())
    }

    pub(crate) fn at(shared: Arc<RunShared>, path: String) -> Self {
        WorkflowContext {
            shared,
            path,
            counter: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The run: `tenant/id`.
    pub fn run_id(&self) -> &str {
        &self.shared.run_name
    }

    /// The node's seams. Reading time or randomness here directly makes
    /// replay diverge: use [`WorkflowContext::now`],
    /// [`WorkflowContext::random_u64`] or a step.
    pub fn env(&self) -> &Env {
        &self.shared.env
    }

    /// A context for one parallel branch: its positions are its own, so
    /// branches may run concurrently (join them with
    /// `futures::future::try_join_all` or `join!`) and replay the same
    /// whichever finished first. Give each branch a distinct name.
    pub fn branch(&self, name: &str) -> WorkflowContext {
        Self::at(self.shared.clone(), format!("{}{name}/", self.path))
    }

    fn next_position(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let position = format!("{}#{n}", self.path);
        self.shared.visited.locked().insert(position.clone());
        position
    }

    /// The core of every operation: the recorded outcome at the next
    /// position, or `live`'s, recorded first.
    pub(crate) async fn journaled<F, Fut>(
        &self,
        name: &str,
        live: F,
    ) -> Result<Outcome, WorkflowError>
    where
        F: FnOnce(StepKey, String) -> Fut,
        Fut: Future<Output = Result<Outcome, WorkflowError>>,
    {
        let position = self.next_position();
        let recorded = self.shared.history.locked().get(&position).cloned();
        if let Some(step) = recorded {
            self.shared.metrics.replayed.inc();
            if let Some(cx) = self.step_span(name, position.as_str(), true) {
                cx.span().end();
            }
            if step.name != name {
                return Err(WorkflowError::Diverged {
                    position,
                    journaled: step.name,
                    requested: name.to_string(),
                });
            }
            return Ok(step.outcome);
        }
        self.shared.check_live()?;
        let key = self.shared.step_key(&position);
        let started = self.shared.env.now();
        // Run inside the step's span, so what the step calls is traced
        // under it.
        let step = self.step_span(name, position.as_str(), false);
        let outcome = match &step {
            Some(cx) => {
                let live = live(key, position.clone());
                opentelemetry::context::FutureExt::with_context(live, cx.clone()).await
            }
            None => live(key, position.clone()).await,
        };
        if let Some(cx) = step {
            let span = cx.span();
            if let Err(e) = &outcome {
                span.set_status(opentelemetry::trace::Status::error(e.to_string()));
            }
            span.end();
        }
        let outcome = outcome?;
        self.shared
            .metrics
            .executed
            .observe(seconds(self.shared.env.now() - started));
        let step = StepEntry {
            name: name.to_string(),
            outcome,
        };
        let kept = self.shared.record(&position, step).await?;
        Ok(kept.outcome)
    }

    /// A span for step `name` under the run's (none outside a trace).
    fn step_span(
        &self,
        name: &str,
        position: &str,
        replayed: bool,
    ) -> Option<opentelemetry::Context> {
        use opentelemetry::KeyValue;
        self.shared.env.traces().child_span(
            "workflow.step",
            opentelemetry::trace::SpanKind::Internal,
            vec![
                KeyValue::new("plexspaces.step", name.to_string()),
                KeyValue::new("plexspaces.step.position", position.to_string()),
                KeyValue::new("plexspaces.replayed", replayed),
            ],
        )
    }

    pub(crate) fn value<T: DeserializeOwned>(
        name: &str,
        outcome: Outcome,
    ) -> Result<T, WorkflowError> {
        match outcome {
            Ok(bytes) => decode(&bytes, &format!("the result of step {name:?}")),
            Err(error) => Err(WorkflowError::StepFailed {
                step: name.to_string(),
                error,
            }),
        }
    }

    /// Runs step `name` once (no retries) and journals its result; on
    /// replay, returns the journaled result without running it. `f` gets
    /// the step's idempotency key. A failed step's error is journaled too:
    /// replay fails it the same way.
    ///
    /// A step cut short by a crash (run, but not yet recorded) runs again
    /// on the next driver, under the same key.
    pub async fn step<T, F, Fut>(&self, name: &str, f: F) -> Result<T, WorkflowError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(StepKey) -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        self.step_with(name, &RetryPolicy::none(), f).await
    }

    /// [`WorkflowContext::step`] with retries: a retryable error is tried
    /// again after a jittered, doubling pause (drawn from the `Rng` seam)
    /// until `policy.max_attempts`; a terminal error, or the last attempt's,
    /// is journaled as the step's outcome.
    pub async fn step_with<T, F, Fut>(
        &self,
        name: &str,
        policy: &RetryPolicy,
        mut f: F,
    ) -> Result<T, WorkflowError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(StepKey) -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let env = self.shared.env.clone();
        let outcome = self
            .journaled(name, |key, _| async move {
                let mut attempt = 1;
                loop {
                    match f(key.clone()).await {
                        // A result that cannot be encoded fails the step
                        // for good, journaled, so replay fails it the same.
                        Ok(value) => {
                            return Ok(encode(&value, "step's result").map_err(|e| e.to_string()));
                        }
                        Err(e) if e.retryable && attempt < policy.max_attempts => {
                            env.sleep(policy.pause(&env, attempt)).await;
                            attempt += 1;
                        }
                        Err(e) => return Ok(Err(e.message)),
                    }
                }
            })
            .await?;
        Self::value(name, outcome)
    }

    /// Registers `undo` to compensate step `name` if the run fails or is
    /// cancelled later: compensations run in reverse order of registration,
    /// each journaled and run once (retried under its own key by
    /// [`super::WorkflowConfig::compensation_retry`]). Register right after
    /// the step succeeds; replay registers it again the same way.
    pub fn on_failure<F, Fut>(&self, name: &str, mut undo: F)
    where
        F: FnMut(StepKey) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), StepError>> + Send + 'static,
    {
        self.shared.compensations.locked().push(Compensation {
            name: name.to_string(),
            undo: Box::new(move |key| Box::pin(undo(key))),
        });
    }

    /// The wall-clock time, journaled (replay sees the same instant).
    pub async fn now(&self) -> Result<SystemTime, WorkflowError> {
        let now_ms = self.shared.now_ms();
        let ms: u64 = self.step("now", |_| async move { Ok(now_ms) }).await?;
        Ok(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// A random number, journaled (replay sees the same number).
    pub async fn random_u64(&self) -> Result<u64, WorkflowError> {
        let env = self.shared.env.clone();
        self.step("random", |_| {
            let n = env.next_u64();
            async move { Ok(n) }
        })
        .await
    }

    /// A durable timer: waits until `duration` after the first time this
    /// position ran. The deadline is journaled (wall clock), so a run that
    /// restarts mid-wait resumes it and wakes on time; cancellation is
    /// noticed within `cancel_check_every`.
    pub async fn sleep(&self, name: &str, duration: Duration) -> Result<(), WorkflowError> {
        let now_ms = self.shared.now_ms();
        let wait_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let deadline_ms: u64 = self
            .step(&format!("sleep:{name}"), |_| async move {
                Ok(now_ms.saturating_add(wait_ms))
            })
            .await?;
        self.until(deadline_ms).await
    }

    /// Sleeps until the wall clock reaches `deadline_ms`, checking for
    /// cancellation now and then.
    async fn until(&self, deadline_ms: u64) -> Result<(), WorkflowError> {
        let shared = &self.shared;
        let parked = shared.worth_parking(deadline_ms);
        if parked {
            shared.park().await?;
        }
        // Woken by a cancellation; asking again every `cancel_check_every`
        // covers a lost wake.
        let (claim, mut ticket) = shared.ticket();
        loop {
            let now_ms = shared.now_ms();
            if now_ms >= deadline_ms {
                if parked {
                    shared.unpark().await?;
                }
                return Ok(());
            }
            if let RunReply::View(view) = shared.watch(&claim, None).await? {
                shared.note_cancel(view.cancel_requested);
            }
            shared.check_live()?;
            let left = Duration::from_millis(deadline_ms.saturating_sub(shared.now_ms()));
            shared
                .pause(&mut ticket, left.min(shared.cancel_check_every))
                .await;
        }
    }

    /// Waits up to `timeout` for the next signal called `name` and returns
    /// its data (`None` at the timeout). Signals are durable: one sent
    /// before the run waits for it is kept and returned by the next wait.
    /// The timeout is a durable deadline, as [`WorkflowContext::sleep`].
    pub async fn wait_for_signal<T: DeserializeOwned>(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<T>, WorkflowError> {
        let now_ms = self.shared.now_ms();
        let wait_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let deadline_ms: u64 = self
            .step(&format!("signal-deadline:{name}"), |_| async move {
                Ok(now_ms.saturating_add(wait_ms))
            })
            .await?;
        let index = *self.shared.signals_taken.locked().get(name).unwrap_or(&0);
        let shared = self.shared.clone();
        let signal = name.to_string();
        let outcome = self
            .journaled(&format!("signal:{name}"), |_, _| async move {
                let parked = shared.worth_parking(deadline_ms);
                if parked {
                    shared.park().await?;
                }
                let outcome = shared.poll_signal(&signal, index, deadline_ms).await;
                if parked {
                    shared.unpark().await?;
                }
                outcome
            })
            .await?;
        let data: Option<Vec<u8>> = Self::value(name, outcome)?;
        match data {
            Some(bytes) => {
                *self
                    .shared
                    .signals_taken
                    .locked()
                    .entry(name.to_string())
                    .or_default() += 1;
                decode(&bytes, &format!("signal {name:?}")).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Whether this run takes the new code of change `id`, as Temporal's
    /// `patched`: write `if ctx.patched("id").await? { new } else { old }`.
    ///
    /// A run that reaches this point for the first time takes the new
    /// branch; a run that went past it under the old code (its journal
    /// goes on beyond this point) replays the old one. The decision is
    /// recorded beside the run's steps (it shifts no position), so it
    /// never changes for the run, and [`super::Workflows::patch_usage`]
    /// tells which runs still need the old branch. Once none does, remove
    /// the old branch and the call: recorded decisions no run asks for are
    /// ignored. Changes made without `patched` still fail replay loudly
    /// ([`WorkflowError::Diverged`]).
    pub async fn patched(&self, id: &str) -> Result<bool, WorkflowError> {
        use crate::names::{NAME_BYTES_MAX, check_token};
        check_token("patch id", id, NAME_BYTES_MAX).map_err(WorkflowError::InvalidId)?;
        let position = format!("{}{PATCH_MARK}{id}", self.path);
        let name = format!("patched:{id}");
        self.shared.visited.locked().insert(position.clone());
        let recorded = self.shared.history.locked().get(&position).cloned();
        let step = match recorded {
            Some(step) => step,
            None => {
                self.shared.check_live()?;
                let new = !self.went_past();
                let decision = StepEntry {
                    name: name.clone(),
                    outcome: Ok(encode(&new, "patch decision")?),
                };
                self.shared.record(&position, decision).await?
            }
        };
        Self::value(&name, step.outcome)
    }

    /// Whether this context's journal holds steps the code has not reached
    /// yet: the run went past this point before, under other code.
    fn went_past(&self) -> bool {
        let visited = self.shared.visited.locked();
        self.shared
            .history
            .locked()
            .keys()
            .any(|p| p.starts_with(&self.path) && !p.contains(PATCH_MARK) && !visited.contains(p))
    }

    /// Ends this run's history and starts it again with `input`, under the
    /// same id: return it from the code (`return Err(ctx.continue_as_new(&next))`).
    /// The journal holds only the new history, so a run that loops forever
    /// stays bounded. Signals the ended history did not take wait for the
    /// new one; published values stay; registered compensations are
    /// dropped (the history they belong to succeeded); children started
    /// with [`super::ParentClose::Cancel`] are cancelled. Step keys and
    /// child ids carry the history's number, so none repeats.
    pub fn continue_as_new<T: Serialize>(&self, input: &T) -> WorkflowError {
        match encode(input, "continued run's input") {
            Ok(bytes) => WorkflowError::ContinuedAsNew(super::NextInput(bytes)),
            Err(e) => e,
        }
    }

    /// How many times this run continued as new.
    pub fn generation(&self) -> u32 {
        self.shared.generation.load(Ordering::SeqCst)
    }

    /// Sends signal `name` with `data` to run `run` of workflow kind
    /// `kind` (any kind registered on this node), once: a journaled step
    /// whose key makes the delivery idempotent.
    pub async fn signal_run<X: super::Workflow, T: Serialize>(
        &self,
        kind: &super::Workflows<X>,
        run: &super::RunId,
        name: &str,
        data: &T,
    ) -> Result<(), WorkflowError> {
        let data = encode(data, "signal's data")?;
        self.reach(&format!("send-signal:{name}"), |key| async move {
            kind.deliver_signal(run, format!("signal:{key}"), name, data)
                .await
        })
        .await
    }

    /// Sends signal `name` with `data` to run `run_id` (`tenant/id`) of this
    /// workflow kind, once (a journaled step, keyed).
    pub async fn send_signal<T: Serialize>(
        &self,
        run_id: &str,
        name: &str,
        data: &T,
    ) -> Result<(), WorkflowError> {
        let target = self
            .shared
            .runs
            .get(run_id)
            .map_err(|e| WorkflowError::InvalidId(e.to_string()))?;
        let op = RunOp::Signal {
            name: name.to_string(),
            data: encode(data, "signal's data")?,
        };
        let timeout = self.shared.call_timeout;
        self.reach(&format!("send-signal:{name}"), move |key| async move {
            target
                .call(key, op, timeout)
                .await
                .map(drop)
                .map_err(|e| WorkflowError::Unavailable(format!("signal not delivered: {e}")))
        })
        .await
    }

    /// A journaled step whose live part reaches another run (starts,
    /// signals or cancels it, all idempotent under the step's key). An
    /// unreachable run or a lost lease stops this driver with the step
    /// unrecorded: the next driver runs it again, under the same key.
    /// Any other error is the step's journaled failure.
    pub(crate) async fn reach<T, F, Fut>(&self, name: &str, live: F) -> Result<T, WorkflowError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(StepKey) -> Fut,
        Fut: Future<Output = Result<T, WorkflowError>>,
    {
        let outcome = self
            .journaled(name, |key, _| async move {
                match live(key).await {
                    Ok(value) => Ok(encode(&value, "step's result").map_err(|e| e.to_string())),
                    Err(e @ (WorkflowError::Unavailable(_) | WorkflowError::LostLease)) => Err(e),
                    Err(e) => Ok(Err(e.to_string())),
                }
            })
            .await?;
        Self::value(name, outcome)
    }

    /// Publishes `value` under `name` for [`super::Workflows::query`]
    /// (read-only, answered from the run's record without running code).
    pub async fn publish<T: Serialize>(&self, name: &str, value: &T) -> Result<(), WorkflowError> {
        let shared = self.shared.clone();
        let op = RunOp::Publish {
            token: shared.token,
            name: name.to_string(),
            value: encode(value, "published value")?,
        };
        let outcome = self
            .journaled(&format!("publish:{name}"), |key, _| async move {
                shared.call(format!("{:x}:{key}", shared.token), op).await?;
                Ok(Ok(Vec::new()))
            })
            .await?;
        outcome
            .map(drop)
            .map_err(|error| WorkflowError::StepFailed {
                step: name.to_string(),
                error,
            })
    }

    /// Runs the registered compensations, newest first, each journaled in
    /// the `undo/` branch. Returns how many ran, or the first that failed
    /// for good.
    pub(crate) async fn compensate(
        &self,
        policy: &RetryPolicy,
    ) -> Result<u32, (String, WorkflowError)> {
        self.shared.compensating.store(true, Ordering::SeqCst);
        let undo = self.branch("undo");
        let mut compensations: Vec<Compensation> =
            std::mem::take(&mut *self.shared.compensations.locked());
        let mut done = 0;
        while let Some(mut compensation) = compensations.pop() {
            let name = format!("undo:{}", compensation.name);
            undo.step_with(&name, policy, |key| (compensation.undo)(key))
                .await
                .map_err(|e| (compensation.name.clone(), e))?;
            done += 1;
        }
        Ok(done)
    }

    /// Recorded positions the code never reached (it changed), if any.
    pub(crate) fn unvisited(&self) -> Option<String> {
        let visited = self.shared.visited.locked().clone();
        self.shared
            .history
            .locked()
            .keys()
            .find(|p| !visited.contains(*p) && !p.contains(PATCH_MARK))
            .cloned()
    }
}

/// Links the current span (the step taking a signal) to the span that
/// sent the signal, if it sent inside a sampled trace: a signal is a
/// message between traces, which OpenTelemetry joins with a link.
fn link_to_sender(trace: Option<&str>) {
    use opentelemetry::trace::TraceContextExt;
    let Some(trace) = trace else { return };
    let sender = crate::observability::traces::parent_from(Some(trace));
    let sender = sender.span().span_context().clone();
    if !sender.is_valid() {
        return;
    }
    opentelemetry::Context::map_current(|cx| {
        cx.span().add_link(
            sender,
            vec![opentelemetry::KeyValue::new("plexspaces.link", "signal")],
        )
    });
}
