//! Long steps: heartbeats and timeouts, as Temporal's activities have.
//!
//! A step run with [`StepOptions`] gets a [`Heartbeat`]: it reports
//! progress, which is kept in the run's record (so the next attempt, on
//! this node or on the one that takes the run over after this one died,
//! reads it) and renews the driver's lease. An attempt is abandoned and
//! retried under the step's policy when its heartbeat stops for
//! `heartbeat_timeout` or it runs past `start_to_close`; the step fails for
//! good once `schedule_to_close` has passed since it was first scheduled
//! (a journaled deadline, so it holds across crashes).

use super::context::{RunShared, WorkflowContext, decode, encode};
use super::record::{HEARTBEAT_BYTES_MAX, RunOp, RunReply};
use super::{RetryPolicy, StepError, StepKey, WorkflowError};
use crate::seams::{Clock, Instant};
use futures::future::Either;
use plexspaces_storage::sync::LockExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a long step retries and when its attempts time out.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StepOptions {
    /// Retries of retryable errors (timeouts are retryable).
    pub retry: RetryPolicy,
    /// The longest one attempt may run.
    pub start_to_close: Option<Duration>,
    /// The longest the step may take from its first attempt to its last,
    /// pauses included.
    pub schedule_to_close: Option<Duration>,
    /// The longest an attempt may go without a heartbeat.
    pub heartbeat_timeout: Option<Duration>,
}

impl StepOptions {
    /// `retry`, no timeouts.
    pub fn new(retry: RetryPolicy) -> Self {
        StepOptions {
            retry,
            start_to_close: None,
            schedule_to_close: None,
            heartbeat_timeout: None,
        }
    }

    /// Bounds each attempt.
    pub fn start_to_close(mut self, limit: Duration) -> Self {
        self.start_to_close = Some(limit);
        self
    }

    /// Bounds the whole step.
    pub fn schedule_to_close(mut self, limit: Duration) -> Self {
        self.schedule_to_close = Some(limit);
        self
    }

    /// Abandons an attempt whose heartbeat stops for `limit`.
    pub fn heartbeat_timeout(mut self, limit: Duration) -> Self {
        self.heartbeat_timeout = Some(limit);
        self
    }
}

/// One attempt's way to report progress. Cheap to clone.
#[derive(Clone)]
pub struct Heartbeat {
    shared: Arc<RunShared>,
    position: String,
    /// Locally, when the attempt last beat; in the record, at most every
    /// `write_every`.
    beats: Arc<Mutex<Beats>>,
    write_every: Duration,
}

struct Beats {
    last: Instant,
    written: Option<Instant>,
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeat")
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl Heartbeat {
    /// Reports progress with `details` (at most 64 KiB encoded; larger
    /// details keep the attempt alive but are not kept). Kept in the
    /// record at most every half heartbeat timeout (or third of the
    /// lease), where the next attempt finds it. `Cancelled` or `LostLease`
    /// tell the attempt to stop: the run was cancelled, or another driver
    /// took it over.
    pub async fn beat<T: Serialize>(&self, details: &T) -> Result<(), WorkflowError> {
        let bytes = encode(details, "heartbeat details")?;
        let now = self.shared.env.now();
        let write = {
            let mut beats = self.beats.locked();
            beats.last = now;
            let due = beats
                .written
                .is_none_or(|at| now.saturating_duration_since(at) >= self.write_every);
            if due {
                beats.written = Some(now);
            }
            due
        };
        if bytes.len() <= HEARTBEAT_BYTES_MAX {
            self.shared
                .heartbeats
                .locked()
                .insert(self.position.clone(), bytes.clone());
        }
        if write {
            let sent = self.shared.env.now();
            let op = RunOp::Heartbeat {
                token: self.shared.token,
                now_ms: self.shared.now_ms(),
                lease_ms: self.shared.lease_ms,
                position: self.position.clone(),
                details: bytes,
            };
            if let RunReply::Beat { cancel_requested } =
                self.shared.call(self.shared.fresh_key(), op).await?
            {
                self.shared.confirm_lease(sent);
                self.shared.note_cancel(cancel_requested);
            }
        }
        self.shared.check_live()
    }

    /// The details of the last heartbeat of this step: this attempt's, or
    /// an earlier attempt's (maybe on another node).
    pub fn details<T: DeserializeOwned>(&self) -> Option<T> {
        let bytes = self
            .shared
            .heartbeats
            .locked()
            .get(&self.position)
            .cloned()?;
        decode(&bytes, "heartbeat details").ok()
    }

    fn last(&self) -> Instant {
        self.beats.locked().last
    }
}

impl WorkflowContext {
    /// A long step: [`WorkflowContext::step_with`] with heartbeats and
    /// timeouts (see [`StepOptions`]). `f` gets the step's key and this
    /// attempt's [`Heartbeat`]; an attempt abandoned at a timeout is
    /// dropped at its next await.
    pub async fn activity<T, F, Fut>(
        &self,
        name: &str,
        options: &StepOptions,
        mut f: F,
    ) -> Result<T, WorkflowError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(StepKey, Heartbeat) -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let deadline_ms: Option<u64> = match options.schedule_to_close {
            Some(limit) => {
                let now_ms = self.shared.now_ms();
                let limit_ms = crate::seams::whole_millis(limit);
                Some(
                    self.step(&format!("deadline:{name}"), |_| async move {
                        Ok(now_ms.saturating_add(limit_ms))
                    })
                    .await?,
                )
            }
            None => None,
        };
        let shared = self.shared.clone();
        let outcome = self
            .journaled(name, |key, position| async move {
                let env = shared.env.clone();
                let write_every = options
                    .heartbeat_timeout
                    .map(|t| t / 2)
                    .unwrap_or(Duration::MAX)
                    .min(Duration::from_millis(shared.lease_ms / 3))
                    .max(Duration::from_millis(1));
                let mut attempt = 1;
                loop {
                    let heartbeat = Heartbeat {
                        shared: shared.clone(),
                        position: position.clone(),
                        beats: Arc::new(Mutex::new(Beats {
                            last: env.now(),
                            written: None,
                        })),
                        write_every,
                    };
                    let work = Box::pin(f(key.clone(), heartbeat.clone()));
                    let watch = Box::pin(watchdog(&shared, options, deadline_ms, &heartbeat));
                    let error = match futures::future::select(work, watch).await {
                        Either::Left((Ok(value), _)) => {
                            return Ok(encode(&value, "step's result").map_err(|e| e.to_string()));
                        }
                        Either::Left((Err(e), _)) => e,
                        Either::Right((timeout, _)) => timeout,
                    };
                    // Cancelled or fenced out meanwhile, or cut off from
                    // the record for a whole lease (another driver may
                    // hold the run): stop, unrecorded.
                    if shared.lease_lapsed() {
                        shared.lost.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    shared.check_live()?;
                    let left = deadline_ms.map(|d| d.saturating_sub(shared.now_ms()));
                    if !error.retryable || attempt >= options.retry.max_attempts || left == Some(0)
                    {
                        return Ok(Err(error.message));
                    }
                    let pause = options.retry.pause(&env, attempt);
                    let pause = left.map_or(pause, |ms| pause.min(Duration::from_millis(ms)));
                    env.sleep(pause).await;
                    attempt += 1;
                }
            })
            .await?;
        Self::value(name, outcome)
    }
}

/// Ends, with the error the attempt fails with, when the attempt runs out of time: its start-to-close, its
/// heartbeat timeout, or the step's schedule-to-close deadline.
async fn watchdog(
    shared: &RunShared,
    options: &StepOptions,
    deadline_ms: Option<u64>,
    heartbeat: &Heartbeat,
) -> StepError {
    let env = &shared.env;
    let started = env.now();
    loop {
        let now = env.now();
        let mut next = Duration::MAX;
        if let Some(limit) = options.start_to_close {
            let left = limit.saturating_sub(now.saturating_duration_since(started));
            if left.is_zero() {
                return StepError::retryable("start-to-close timeout");
            }
            next = next.min(left);
        }
        if let Some(limit) = options.heartbeat_timeout {
            let quiet = now.saturating_duration_since(heartbeat.last());
            let left = limit.saturating_sub(quiet);
            if left.is_zero() {
                return StepError::retryable("heartbeat timeout");
            }
            next = next.min(left);
        }
        if let Some(deadline_ms) = deadline_ms {
            let left = deadline_ms.saturating_sub(shared.now_ms());
            if left == 0 {
                return StepError::terminal("schedule-to-close timeout");
            }
            next = next.min(Duration::from_millis(left));
        }
        if next == Duration::MAX {
            return futures::future::pending().await;
        }
        env.sleep(next).await;
    }
}
