//! A run's durable record: a durable actor (journaled, checkpointed,
//! hosted as a virtual actor) holding the run's input, every step outcome
//! by position, the signals sent to it, its status, and which driver may
//! write to it (a lease, so two drivers never both make progress).
//!
//! Times in messages are the driver's wall clock in Unix milliseconds,
//! carried in the message so replay sees the same value without a journal
//! entry of its own.

use super::RunStatus;
use crate::actor::ActorError;
use crate::durability::ops::{self, Ops};
use crate::durability::{DurableActor, DurableContext};
use crate::env::Env;
use crate::wake::{HostWaker, Wake};
use plexspaces_storage::sync::LockExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A step's journaled outcome: its encoded value, or its error.
pub(crate) type Outcome = Result<Vec<u8>, String>;

/// One recorded step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct StepEntry {
    /// The step's name as the code called it (for divergence checks).
    pub name: String,
    pub outcome: Outcome,
}

/// What a driver learns when it takes a run over.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct History {
    pub input: Vec<u8>,
    /// Position (`<branch path>#<n>`) → step.
    pub steps: BTreeMap<String, StepEntry>,
    pub cancel_requested: bool,
    /// How many times the run continued as new (0: its first history).
    pub generation: u32,
    /// The last heartbeat details of steps not yet recorded, by position.
    pub heartbeats: BTreeMap<String, Vec<u8>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum RunOp {
    /// Starts the run with `input`, unless it started already.
    Start { input: Vec<u8> },
    /// Takes the driver lease, if free, run out, or already `token`'s.
    Acquire {
        token: u64,
        now_ms: u64,
        lease_ms: u64,
    },
    /// Extends `token`'s lease.
    Renew {
        token: u64,
        now_ms: u64,
        lease_ms: u64,
    },
    /// Records a step's outcome at `position` (the first record wins) and
    /// extends the lease.
    Record {
        token: u64,
        now_ms: u64,
        lease_ms: u64,
        position: String,
        step: StepEntry,
    },
    /// Gives the lease up (a driver going to sleep for longer than it).
    Release { token: u64 },
    /// Sets a value queries can read.
    Publish {
        token: u64,
        name: String,
        value: Vec<u8>,
    },
    /// Delivers a signal (kept until a wait takes it).
    Signal { name: String, data: Vec<u8> },
    /// Asks the run to stop (and compensate).
    Cancel,
    /// Ends the run.
    Finish {
        token: u64,
        status: RunStatus,
        output: Option<Vec<u8>>,
    },
    /// Read-only: status, output, published values.
    View,
    /// Read-only: the `index`-th signal called `name`, and whether the run
    /// was asked to cancel.
    SignalAt { name: String, index: usize },
    /// [`RunOp::Signal`] sent inside a sampled trace: its W3C
    /// `traceparent`, so the run's step that takes it links to the
    /// sender's span. (A variant of its own, last: journals written
    /// before it still decode.)
    SignalTraced {
        name: String,
        data: Vec<u8>,
        trace: String,
    },
    /// Starts the run with `input` unless it started, then delivers the
    /// signal: one step, so a crash cannot leave one without the other.
    SignalWithStart {
        input: Vec<u8>,
        name: String,
        data: Vec<u8>,
    },
    /// Ends the run's history and starts it afresh with `input`, under
    /// the same id and lease. `taken` says how many signals of each name
    /// the ended history consumed: the rest wait for the new one.
    ContinueAsNew {
        token: u64,
        input: Vec<u8>,
        taken: BTreeMap<String, usize>,
    },
    /// A long step's progress at `position`: kept for its next attempt
    /// (this driver's or another's) and extends the lease.
    Heartbeat {
        token: u64,
        now_ms: u64,
        lease_ms: u64,
        position: String,
        details: Vec<u8>,
    },
    /// [`RunOp::Start`] that also takes the driver lease for `token` if it
    /// is free (the starting node drives the run): `Acquired` then, else
    /// `Started` with the run's status.
    StartDriving {
        input: Vec<u8>,
        token: u64,
        now_ms: u64,
        lease_ms: u64,
    },
    /// Read-only: [`RunOp::View`] (`signal: None`) or [`RunOp::SignalAt`],
    /// registering `watcher` to be woken when the run ends, a signal
    /// arrives or cancellation is asked for. Registrations are not
    /// journaled: a record that moves forgets them, and watchers ask again
    /// every refresh.
    Watch {
        watcher: Wake,
        signal: Option<(String, usize)>,
    },
}

/// What a query of a run sees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunView {
    pub status: Option<RunStatus>,
    pub output: Option<Vec<u8>>,
    pub published: BTreeMap<String, Vec<u8>>,
    pub steps_recorded: usize,
    pub cancel_requested: bool,
    /// The run's `patched` decisions in its current history, by change id.
    pub patches: BTreeMap<String, bool>,
    pub generation: u32,
}

/// Where a `patched` decision is recorded: beside the context's positions,
/// not among them, so adding a `patched` call shifts no step.
pub(crate) const PATCH_MARK: &str = "@patch:";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum RunReply {
    Done,
    /// Start: the run's status (running if it just started).
    Started(RunStatus),
    NotStarted,
    Acquired(History),
    /// Another driver holds the lease.
    Held,
    /// The run ended; nothing more to drive.
    Finished(RunStatus),
    /// The recorded outcome at the position (maybe another driver's), and
    /// whether cancellation was asked for.
    Recorded {
        step: StepEntry,
        cancel_requested: bool,
    },
    /// The caller's lease is gone: it must stop driving.
    LostLease,
    View(RunView),
    Signal {
        data: Option<Vec<u8>>,
        cancel_requested: bool,
    },
    /// [`RunReply::Signal`] with the sender's `traceparent`, if it sent
    /// inside a sampled trace (last, so older journals still decode).
    SignalTraced {
        data: Option<Vec<u8>>,
        cancel_requested: bool,
        trace: Option<String>,
    },
    /// A heartbeat was kept; whether cancellation was asked for.
    Beat {
        cancel_requested: bool,
    },
}

/// The run's durable record.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct RunRecord {
    input: Option<Vec<u8>>,
    status: Option<RunStatus>,
    output: Option<Vec<u8>>,
    steps: BTreeMap<String, StepEntry>,
    signals: BTreeMap<String, Vec<Vec<u8>>>,
    published: BTreeMap<String, Vec<u8>>,
    cancel_requested: bool,
    /// (token, expiry in Unix ms).
    driver: Option<(u64, u64)>,
    generation: u32,
    heartbeats: BTreeMap<String, Vec<u8>>,
    /// Who to wake when the run ends, a signal arrives or cancellation is
    /// asked for (at most [`WATCHERS_MAX`]; not checkpointed).
    #[serde(skip)]
    watchers: Mutex<Vec<Wake>>,
    /// The senders' trace contexts of signals by name and index. Not
    /// checkpointed (best effort: a checkpoint keeps the signals, not the
    /// links to their senders' traces), at most [`SIGNAL_TRACES_MAX`].
    #[serde(skip)]
    signal_traces: BTreeMap<(String, usize), String>,
    /// Not checkpointed: lasts until the first checkpoint (1,000 messages),
    /// which covers the simulator's runs.
    #[cfg(feature = "planted-bugs")]
    #[serde(skip)]
    pub(crate) planted_bug: Option<crate::PlantedBug>,
}

/// Most signal trace contexts a run keeps in memory.
const SIGNAL_TRACES_MAX: usize = 1024;
/// Most watchers a run wakes; past it, a watcher finds out at its next
/// refresh.
const WATCHERS_MAX: usize = 1024;
/// Largest heartbeat details a run keeps per step.
pub(crate) const HEARTBEAT_BYTES_MAX: usize = 64 * 1024;

impl RunRecord {
    fn holds(&self, token: u64) -> bool {
        matches!(self.driver, Some((t, _)) if t == token)
    }

    fn signal(&mut self, name: String, data: Vec<u8>, trace: Option<String>) -> RunReply {
        #[cfg(feature = "planted-bugs")]
        if self.planted_bug == Some(crate::PlantedBug::DropEarlySignal) {
            let waiting = format!("signal-deadline:{name}");
            if !self.steps.values().any(|s| s.name == waiting) {
                return RunReply::Done;
            }
        }
        let queued = self.signals.entry(name.clone()).or_default();
        queued.push(data);
        let index = queued.len() - 1;
        if let Some(trace) = trace
            && self.signal_traces.len() < SIGNAL_TRACES_MAX
        {
            self.signal_traces.insert((name, index), trace);
        }
        RunReply::Done
    }

    fn finished(&self) -> Option<RunStatus> {
        self.status.clone().filter(|s| s.is_terminal())
    }

    fn apply(&mut self, op: RunOp) -> RunReply {
        match op {
            RunOp::Start { input } => {
                if self.input.is_none() {
                    self.input = Some(input);
                    self.status = Some(RunStatus::Running);
                }
                RunReply::Started(self.status.clone().unwrap_or(RunStatus::Running))
            }
            RunOp::StartDriving {
                input,
                token,
                now_ms,
                lease_ms,
            } => match self.apply(RunOp::Start { input }) {
                RunReply::Started(RunStatus::Running) => match self.apply(RunOp::Acquire {
                    token,
                    now_ms,
                    lease_ms,
                }) {
                    acquired @ RunReply::Acquired(_) => acquired,
                    _ => RunReply::Started(RunStatus::Running),
                },
                started => started,
            },
            RunOp::Acquire {
                token,
                now_ms,
                lease_ms,
            } => {
                if let Some(status) = self.finished() {
                    return RunReply::Finished(status);
                }
                let Some(input) = self.input.clone() else {
                    return RunReply::NotStarted;
                };
                match self.driver {
                    Some((holder, expires)) if holder != token && expires > now_ms => {
                        RunReply::Held
                    }
                    _ => {
                        self.driver = Some((token, now_ms.saturating_add(lease_ms)));
                        RunReply::Acquired(History {
                            input,
                            steps: self.steps.clone(),
                            cancel_requested: self.cancel_requested,
                            generation: self.generation,
                            heartbeats: self.heartbeats.clone(),
                        })
                    }
                }
            }
            RunOp::Renew {
                token,
                now_ms,
                lease_ms,
            } => {
                if !self.holds(token) || self.finished().is_some() {
                    return RunReply::LostLease;
                }
                self.driver = Some((token, now_ms.saturating_add(lease_ms)));
                RunReply::Done
            }
            RunOp::Record {
                token,
                now_ms,
                lease_ms,
                position,
                step,
            } => {
                if !self.holds(token) || self.finished().is_some() {
                    return RunReply::LostLease;
                }
                self.driver = Some((token, now_ms.saturating_add(lease_ms)));
                self.heartbeats.remove(&position);
                let step = self.steps.entry(position).or_insert(step).clone();
                RunReply::Recorded {
                    step,
                    cancel_requested: self.cancel_requested,
                }
            }
            RunOp::Release { token } => {
                if self.holds(token) {
                    self.driver = None;
                }
                RunReply::Done
            }
            RunOp::Publish { token, name, value } => {
                if !self.holds(token) {
                    return RunReply::LostLease;
                }
                self.published.insert(name, value);
                RunReply::Done
            }
            RunOp::Signal { name, data } => self.signal(name, data, None),
            RunOp::SignalWithStart { input, name, data } => {
                if self.input.is_none() {
                    self.input = Some(input);
                    self.status = Some(RunStatus::Running);
                }
                let status = self.status.clone().unwrap_or(RunStatus::Running);
                if !status.is_terminal() {
                    self.signal(name, data, None);
                }
                RunReply::Started(status)
            }
            RunOp::ContinueAsNew {
                token,
                input,
                taken,
            } => {
                if !self.holds(token) || self.finished().is_some() {
                    return RunReply::LostLease;
                }
                self.input = Some(input);
                self.steps.clear();
                self.heartbeats.clear();
                self.signal_traces.clear();
                for (name, n) in taken {
                    if let Some(queued) = self.signals.get_mut(&name) {
                        queued.drain(..n.min(queued.len()));
                        if queued.is_empty() {
                            self.signals.remove(&name);
                        }
                    }
                }
                self.generation = self.generation.saturating_add(1);
                RunReply::Done
            }
            RunOp::Heartbeat {
                token,
                now_ms,
                lease_ms,
                position,
                details,
            } => {
                if !self.holds(token) || self.finished().is_some() {
                    return RunReply::LostLease;
                }
                self.driver = Some((token, now_ms.saturating_add(lease_ms)));
                if !self.steps.contains_key(&position) && details.len() <= HEARTBEAT_BYTES_MAX {
                    self.heartbeats.insert(position, details);
                }
                RunReply::Beat {
                    cancel_requested: self.cancel_requested,
                }
            }
            RunOp::SignalTraced { name, data, trace } => self.signal(name, data, Some(trace)),
            RunOp::Cancel => {
                if self.finished().is_none() {
                    self.cancel_requested = true;
                }
                RunReply::Done
            }
            RunOp::Finish {
                token,
                status,
                output,
            } => {
                if let Some(status) = self.finished() {
                    return RunReply::Finished(status);
                }
                if !self.holds(token) {
                    return RunReply::LostLease;
                }
                self.status = Some(status);
                self.output = output;
                self.driver = None;
                RunReply::Done
            }
            read @ (RunOp::View | RunOp::SignalAt { .. } | RunOp::Watch { .. }) => {
                ops::answer_read(self, &read)
            }
        }
    }

    /// The answer to a read-only operation (`None`: it writes).
    pub(super) fn answer(&self, op: &RunOp) -> Option<RunReply> {
        Some(match op {
            RunOp::View => self.view(),
            RunOp::SignalAt { name, index } => self.signal_at(name, *index),
            RunOp::Watch { watcher, signal } => {
                let reply = match signal {
                    None => self.view(),
                    Some((name, index)) => self.signal_at(name, *index),
                };
                let settled = match &reply {
                    RunReply::View(view) => view.status.as_ref().is_some_and(|s| s.is_terminal()),
                    RunReply::SignalTraced {
                        data,
                        cancel_requested,
                        ..
                    } => data.is_some() || *cancel_requested,
                    _ => true,
                };
                if !settled {
                    let mut watchers = self.watchers.locked();
                    if watchers.len() < WATCHERS_MAX && !watchers.contains(watcher) {
                        watchers.push(watcher.clone());
                    }
                }
                reply
            }
            _ => return None,
        })
    }

    fn view(&self) -> RunReply {
        let patches = self
            .steps
            .iter()
            .filter_map(|(position, step)| {
                let (_, id) = position.split_once(PATCH_MARK)?;
                let taken = step.outcome.as_ref().ok()?;
                Some((id.to_string(), crate::codec::decode(taken, "patch").ok()?))
            })
            .collect();
        RunReply::View(RunView {
            status: self.status.clone(),
            output: self.output.clone(),
            published: self.published.clone(),
            steps_recorded: self.steps.len(),
            cancel_requested: self.cancel_requested,
            patches,
            generation: self.generation,
        })
    }

    fn signal_at(&self, name: &str, index: usize) -> RunReply {
        RunReply::SignalTraced {
            data: self.signals.get(name).and_then(|s| s.get(index)).cloned(),
            cancel_requested: self.cancel_requested,
            trace: self.signal_traces.get(&(name.to_string(), index)).cloned(),
        }
    }

    /// Whether `op` may settle what a watcher waits for.
    fn wakes_watchers(op: &RunOp) -> bool {
        matches!(
            op,
            RunOp::Signal { .. }
                | RunOp::SignalTraced { .. }
                | RunOp::SignalWithStart { .. }
                | RunOp::Cancel
                | RunOp::Finish { .. }
        )
    }
}

impl DurableActor for RunRecord {
    type Msg = RunOp;
    type Reply = RunReply;

    async fn handle(
        &mut self,
        ctx: &mut DurableContext<'_>,
        op: RunOp,
    ) -> Result<RunReply, ActorError> {
        let wakes = Self::wakes_watchers(&op);
        let reply = self.apply(op);
        if wakes {
            // Every watcher asks again: a spurious wake costs one query.
            let woken = std::mem::take(&mut *self.watchers.locked());
            HostWaker::wake_from(ctx, woken);
        }
        Ok(reply)
    }

    fn query(&self, env: &Env, op: &RunOp) -> Option<RunReply> {
        ops::query(self, env, op)
    }
}

impl Ops for RunRecord {
    type Op = RunOp;
    type Reply = RunReply;

    fn read(&self, op: &RunOp) -> Option<RunReply> {
        self.answer(op)
    }

    /// Answers that change nothing need no journal entry.
    fn unchanged(&self, _env: &Env, op: &RunOp) -> Option<RunReply> {
        match op {
            RunOp::Start { .. } if self.input.is_some() => Some(RunReply::Started(
                self.status.clone().unwrap_or(RunStatus::Running),
            )),
            RunOp::StartDriving { token, now_ms, .. } if self.input.is_some() => {
                let held = matches!(self.driver,
                    Some((holder, expires)) if holder != *token && expires > *now_ms);
                (held || self.finished().is_some())
                    .then(|| RunReply::Started(self.status.clone().unwrap_or(RunStatus::Running)))
            }
            RunOp::Acquire { .. } if self.input.is_none() => Some(RunReply::NotStarted),
            RunOp::Acquire { .. } | RunOp::Finish { .. } if self.finished().is_some() => {
                Some(RunReply::Finished(
                    self.finished()
                        .expect("the status was checked terminal just above"),
                ))
            }
            RunOp::Acquire { token, now_ms, .. } => match self.driver {
                Some((holder, expires)) if holder != *token && expires > *now_ms => {
                    Some(RunReply::Held)
                }
                _ => None,
            },
            RunOp::Release { token } if !self.holds(*token) => Some(RunReply::Done),
            RunOp::Renew { token, .. }
            | RunOp::Record { token, .. }
            | RunOp::Publish { token, .. }
            | RunOp::Heartbeat { token, .. }
            | RunOp::ContinueAsNew { token, .. }
                if !self.holds(*token) =>
            {
                Some(RunReply::LostLease)
            }
            _ => None,
        }
    }
}

/// A run's operations, replies and record, for [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(super) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    use crate::durability::Request;
    fn step() -> StepEntry {
        StepEntry {
            name: "charge".into(),
            outcome: Ok(vec![1, 0, 0]),
        }
    }
    fn ops() -> Vec<RunOp> {
        vec![
            RunOp::Start { input: vec![42, 7] },
            RunOp::Acquire {
                token: 5,
                now_ms: 1_000,
                lease_ms: 30_000,
            },
            RunOp::Record {
                token: 5,
                now_ms: 1_100,
                lease_ms: 30_000,
                position: "#0".into(),
                step: step(),
            },
            RunOp::Signal {
                name: "packed".into(),
                data: vec![1],
            },
            RunOp::Finish {
                token: 5,
                status: RunStatus::Failed {
                    error: "no courier".into(),
                    compensated: 1,
                },
                output: None,
            },
            // Appended last: the fuzz corpus names samples by index.
            RunOp::SignalTraced {
                name: "packed".into(),
                data: vec![2],
                trace: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            },
            RunOp::SignalWithStart {
                input: vec![1],
                name: "go".into(),
                data: vec![3],
            },
            RunOp::Heartbeat {
                token: 5,
                now_ms: 1_200,
                lease_ms: 30_000,
                position: "#1".into(),
                details: vec![4, 2],
            },
            RunOp::ContinueAsNew {
                token: 5,
                input: vec![8],
                taken: BTreeMap::from([("packed".into(), 1)]),
            },
            RunOp::Watch {
                watcher: ("node-a".into(), "c0ffee:1".into()),
                signal: Some(("packed".into(), 2)),
            },
            RunOp::StartDriving {
                input: vec![42, 7],
                token: 9,
                now_ms: 1_000,
                lease_ms: 30_000,
            },
        ]
    }
    fn history() -> History {
        let failed = StepEntry {
            name: "ship".into(),
            outcome: Err("no courier".into()),
        };
        History {
            input: vec![42, 7],
            steps: BTreeMap::from([("#0".into(), step()), ("undo/#0".into(), failed)]),
            cancel_requested: false,
            generation: 2,
            heartbeats: BTreeMap::from([("#1".into(), vec![9, 9])]),
        }
    }
    fn view() -> RunView {
        RunView {
            status: Some(RunStatus::Running),
            output: None,
            published: BTreeMap::from([("progress".into(), vec![50])]),
            steps_recorded: 1,
            cancel_requested: true,
            patches: BTreeMap::from([("new-pricing".into(), true)]),
            generation: 1,
        }
    }
    fn replies() -> Vec<RunReply> {
        vec![
            RunReply::Acquired(history()),
            RunReply::Recorded {
                step: step(),
                cancel_requested: false,
            },
            RunReply::View(view()),
            RunReply::Signal {
                data: Some(vec![1]),
                cancel_requested: false,
            },
            RunReply::SignalTraced {
                data: Some(vec![1]),
                cancel_requested: false,
                trace: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            },
            RunReply::Beat {
                cancel_requested: true,
            },
        ]
    }
    v.visit("workflow::StepEntry", || vec![step()]);
    v.visit("workflow::History", || vec![history()]);
    v.visit("workflow::RunView", || vec![view()]);
    v.visit("workflow::Request<RunOp>", || {
        vec![Request::new("start", RunOp::Start { input: vec![42, 7] })]
    });
    v.visit("workflow::RunOp", ops);
    v.visit("workflow::Result<RunReply>", || {
        vec![
            Ok(RunReply::Acquired(history())),
            Err("journal fenced".to_string()),
        ]
    });
    v.visit("workflow::RunReply", replies);
    v.visit("workflow::RunRecord", || {
        // Started, driven, one step recorded, a signal waiting.
        let mut record = RunRecord::default();
        for op in ops().into_iter().take(4) {
            record.apply(op);
        }
        vec![record]
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, value: u8) -> StepEntry {
        StepEntry {
            name: name.into(),
            outcome: Ok(vec![value]),
        }
    }

    fn record(token: u64, now_ms: u64, position: &str, entry: StepEntry) -> RunOp {
        RunOp::Record {
            token,
            now_ms,
            lease_ms: 100,
            position: position.into(),
            step: entry,
        }
    }

    #[test]
    fn one_driver_at_a_time_and_the_first_record_wins() {
        let mut run = RunRecord::default();
        let acquire = |token, now_ms| RunOp::Acquire {
            token,
            now_ms,
            lease_ms: 100,
        };
        assert_eq!(run.apply(acquire(1, 0)), RunReply::NotStarted);
        run.apply(RunOp::Start { input: vec![7] });
        assert!(matches!(run.apply(acquire(1, 0)), RunReply::Acquired(_)));
        assert_eq!(run.apply(acquire(2, 50)), RunReply::Held);
        let first = run.apply(record(1, 60, "#0", step("a", 1)));
        assert_eq!(
            first,
            RunReply::Recorded {
                step: step("a", 1),
                cancel_requested: false
            }
        );
        // The lease was extended to 160: driver 2 waits, then takes over
        // and sees driver 1's step; driver 1 is fenced out.
        assert_eq!(run.apply(acquire(2, 150)), RunReply::Held);
        let RunReply::Acquired(history) = run.apply(acquire(2, 160)) else {
            panic!("lease ran out");
        };
        assert_eq!(history.steps["#0"], step("a", 1));
        assert_eq!(
            run.apply(record(1, 170, "#1", step("b", 2))),
            RunReply::LostLease
        );
        let again = run.apply(record(2, 170, "#0", step("a", 9)));
        assert_eq!(
            again,
            RunReply::Recorded {
                step: step("a", 1),
                cancel_requested: false
            },
            "a position keeps its first outcome"
        );
    }

    #[test]
    fn signals_wait_in_order_and_a_finished_run_stays_finished() {
        let mut run = RunRecord::default();
        run.apply(RunOp::Start { input: vec![] });
        run.apply(RunOp::Signal {
            name: "go".into(),
            data: vec![1],
        });
        run.apply(RunOp::SignalTraced {
            name: "go".into(),
            data: vec![2],
            trace: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        });
        let at = |index| RunOp::SignalAt {
            name: "go".into(),
            index,
        };
        assert!(matches!(
            run.read(&at(0)),
            Some(RunReply::SignalTraced { data: Some(d), trace: None, .. }) if d == [1]
        ));
        assert!(matches!(
            run.read(&at(1)),
            Some(RunReply::SignalTraced { data: Some(d), trace: Some(_), .. }) if d == [2]
        ));
        assert!(matches!(
            run.read(&at(2)),
            Some(RunReply::SignalTraced { data: None, .. })
        ));
        run.apply(RunOp::Acquire {
            token: 1,
            now_ms: 0,
            lease_ms: 10,
        });
        run.apply(RunOp::Finish {
            token: 1,
            status: RunStatus::Completed,
            output: Some(vec![3]),
        });
        run.apply(RunOp::Cancel);
        let Some(RunReply::View(view)) = run.read(&RunOp::View) else {
            panic!()
        };
        assert_eq!(view.status, Some(RunStatus::Completed));
        assert!(!view.cancel_requested, "a finished run cannot be cancelled");
    }
}

#[cfg(test)]
mod continue_tests {
    use super::*;

    #[test]
    fn continuing_as_new_starts_a_fresh_history_keeping_untaken_signals() {
        let mut run = RunRecord::default();
        run.apply(RunOp::Start { input: vec![0] });
        for data in [1, 2, 3] {
            run.apply(RunOp::Signal {
                name: "add".into(),
                data: vec![data],
            });
        }
        let acquire = RunOp::Acquire {
            token: 7,
            now_ms: 0,
            lease_ms: 100,
        };
        assert!(matches!(run.apply(acquire.clone()), RunReply::Acquired(_)));
        run.apply(RunOp::Record {
            token: 7,
            now_ms: 1,
            lease_ms: 100,
            position: "#0".into(),
            step: StepEntry {
                name: "a".into(),
                outcome: Ok(vec![]),
            },
        });
        let next = RunOp::ContinueAsNew {
            token: 8,
            input: vec![9],
            taken: BTreeMap::from([("add".to_string(), 2)]),
        };
        assert_eq!(run.apply(next), RunReply::LostLease, "only the holder");
        let next = RunOp::ContinueAsNew {
            token: 7,
            input: vec![9],
            taken: BTreeMap::from([("add".to_string(), 2)]),
        };
        assert_eq!(run.apply(next), RunReply::Done);
        let RunReply::Acquired(history) = run.apply(acquire) else {
            panic!("the holder keeps its lease");
        };
        assert_eq!(history.input, [9]);
        assert_eq!(history.generation, 1);
        assert!(history.steps.is_empty());
        assert!(matches!(
            run.read(&RunOp::SignalAt { name: "add".into(), index: 0 }),
            Some(RunReply::SignalTraced { data: Some(d), .. }) if d == [3]
        ));
    }
}

#[cfg(test)]
mod start_driving_tests {
    use super::*;

    fn start_driving(token: u64, now_ms: u64) -> RunOp {
        RunOp::StartDriving {
            input: vec![token as u8],
            token,
            now_ms,
            lease_ms: 100,
        }
    }

    #[test]
    fn a_start_takes_the_lease_only_when_it_is_free() {
        let mut run = RunRecord::default();
        let RunReply::Acquired(history) = run.apply(start_driving(1, 0)) else {
            panic!("a fresh run's start takes its lease");
        };
        assert_eq!(history.input, [1]);
        // Another start: the first input stays, the lease is held.
        assert_eq!(
            run.apply(start_driving(2, 50)),
            RunReply::Started(RunStatus::Running)
        );
        // Once the lease ran out, a start takes it over, with the first input.
        let RunReply::Acquired(history) = run.apply(start_driving(3, 101)) else {
            panic!("an expired lease is free");
        };
        assert_eq!(history.input, [1]);
        run.apply(RunOp::Finish {
            token: 3,
            status: RunStatus::Completed,
            output: Some(vec![]),
        });
        assert_eq!(
            run.apply(start_driving(4, 500)),
            RunReply::Started(RunStatus::Completed)
        );
    }
}
