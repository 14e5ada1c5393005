//! What an actor shares with its refs: id, status, the stop and control
//! signals that bypass the mailbox, and the exit broadcast.

use super::facet::{Facet, FacetChain, FacetConfig, FacetError, FacetInfo};
use super::{ActorId, ActorStatus, ExitReason};
use crate::observability::KindMetrics;
use futures::channel::oneshot;
use futures::task::AtomicWaker;
use plexspaces_storage::sync::LockExt;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

/// Operations on an actor's facet chain, sent from outside the actor.
pub(crate) enum ControlOp {
    Attach(Box<dyn Facet>, oneshot::Sender<Result<(), FacetError>>),
    /// Build a registered facet type on the actor's node and attach it.
    AttachNamed {
        type_name: String,
        config: FacetConfig,
        reply: oneshot::Sender<Result<(), FacetError>>,
    },
    Detach(String, oneshot::Sender<Result<bool, FacetError>>),
    List(oneshot::Sender<Result<Vec<FacetInfo>, FacetError>>),
    /// Run a closure on the chain between messages (local only).
    Inspect(Box<dyn FnOnce(&mut FacetChain) + Send>),
}

#[derive(Default)]
struct Signals {
    stop: Option<ExitReason>,
    control: VecDeque<ControlOp>,
    /// The actor has exited: control operations are refused (their reply
    /// channels dropped) instead of queued forever.
    closed: bool,
    /// Why it exited, once it has, and in which run of the cell. A local
    /// actor has one run; a remote ref's proxy starts a new run when its
    /// node comes back after being declared down (see [`Cell::reopen`]).
    exit: Option<(u64, ExitReason)>,
    /// The cell's current run.
    run: u64,
    /// Tasks waiting for the exit.
    exit_waiters: Vec<Waker>,
}

/// A signal for the actor's loop, taken before any mailbox message.
pub(crate) enum Signal {
    Stop(ExitReason),
    Control(ControlOp),
}

pub(crate) struct Cell {
    pub(crate) id: ActorId,
    status: AtomicU8,
    /// False for a proxy standing in for an actor on another node.
    pub(crate) local: bool,
    /// Set whenever a signal is queued, so the loop's per-message check is
    /// one atomic load instead of a lock.
    signalled: std::sync::atomic::AtomicBool,
    signals: Mutex<Signals>,
    pub(crate) waker: AtomicWaker,
    next_correlation: AtomicU64,
    /// The node's metrics of this actor's kind (local actors only): the
    /// live-actor gauges follow `set_status`, the message counters are
    /// fed by the loop.
    pub(crate) kind: Option<Arc<KindMetrics>>,
    /// The mailbox depth this actor last added to its kind's gauge, so it
    /// can be taken back (written only by the actor's own task).
    depth_reported: AtomicU64,
}

impl Cell {
    /// A local actor's cell, counted as starting in its kind's metrics.
    pub(crate) fn new(id: ActorId, kind: Arc<KindMetrics>) -> Arc<Self> {
        kind.starting.inc();
        Self::make(id, true, Some(kind))
    }

    /// The spawn that made this cell was refused before the actor ran:
    /// it leaves the kind's starting gauge, with no exit counted.
    pub(crate) fn abandon(&self) {
        let old = ActorStatus::from_u8(
            self.status
                .swap(ActorStatus::Terminated.to_u8(), Ordering::AcqRel),
        );
        debug_assert_eq!(
            old,
            ActorStatus::Creating,
            "only an unstarted cell is abandoned"
        );
        if let (Some(kind), ActorStatus::Creating) = (&self.kind, old) {
            kind.starting.dec();
        }
    }

    /// A proxy's cell (no metrics: the actor is counted on its node).
    pub(crate) fn with_locality(id: ActorId, local: bool) -> Arc<Self> {
        Self::make(id, local, None)
    }

    fn make(id: ActorId, local: bool, kind: Option<Arc<KindMetrics>>) -> Arc<Self> {
        Arc::new(Cell {
            id,
            local,
            status: AtomicU8::new(ActorStatus::Creating.to_u8()),
            signalled: std::sync::atomic::AtomicBool::new(false),
            signals: Mutex::new(Signals::default()),
            waker: AtomicWaker::new(),
            next_correlation: AtomicU64::new(1),
            kind,
            depth_reported: AtomicU64::new(0),
        })
    }

    pub(crate) fn status(&self) -> ActorStatus {
        ActorStatus::from_u8(self.status.load(Ordering::Acquire))
    }

    /// Moves to `status`; the kind's live gauges and exit counters follow
    /// the transition (each counted once: the swap tells what it left).
    pub(crate) fn set_status(&self, status: ActorStatus) {
        let old = ActorStatus::from_u8(self.status.swap(status.to_u8(), Ordering::AcqRel));
        let Some(kind) = &self.kind else { return };
        if old == status || old.is_finished() {
            return;
        }
        match old {
            ActorStatus::Creating => kind.starting.dec(),
            _ => kind.active.dec(),
        };
        match status {
            ActorStatus::Creating => {
                kind.starting.inc();
            }
            ActorStatus::Active => {
                kind.active.inc();
            }
            ActorStatus::Terminated => {
                kind.exits_normal.inc();
            }
            ActorStatus::Failed => {
                kind.exits_failed.inc();
            }
        }
        if status.is_finished() {
            self.report_depth(0);
        }
    }

    /// The actor's mailbox holds `depth` messages: its kind's depth gauge
    /// moves by the difference from what it last reported.
    pub(crate) fn report_depth(&self, depth: u64) {
        // Only the actor's task writes it: a load and a compare in the
        // common case of no change, no read-modify-write.
        let before = self.depth_reported.load(Ordering::Relaxed);
        if before == depth {
            return;
        }
        self.depth_reported.store(depth, Ordering::Relaxed);
        let Some(kind) = &self.kind else { return };
        if depth > before {
            kind.mailbox_depth.inc_by((depth - before) as i64);
        } else if depth < before {
            kind.mailbox_depth.dec_by((before - depth) as i64);
        }
    }

    /// Messages the actor had taken from its mailbox behind the one in
    /// hand when it last took a batch; 0 once it has handled them all.
    pub(crate) fn depth_reported(&self) -> u64 {
        self.depth_reported.load(Ordering::Relaxed)
    }

    fn signals(&self) -> std::sync::MutexGuard<'_, Signals> {
        self.signals.locked()
    }

    /// Asks the actor to stop with `reason` after its current message.
    /// The first request wins.
    pub(crate) fn request_stop(&self, reason: ExitReason) {
        let mut signals = self.signals();
        if signals.stop.is_none() {
            signals.stop = Some(reason);
        }
        self.signalled.store(true, Ordering::Release);
        drop(signals);
        self.waker.wake();
    }

    pub(crate) fn push_control(&self, op: ControlOp) {
        let mut signals = self.signals();
        if signals.closed {
            return; // dropping `op` drops its reply channel: the caller sees Stopped
        }
        signals.control.push_back(op);
        self.signalled.store(true, Ordering::Release);
        drop(signals);
        self.waker.wake();
    }

    /// The actor has exited: refuse further control operations and drop the
    /// queued ones.
    pub(crate) fn close(&self) {
        let mut signals = self.signals();
        signals.closed = true;
        signals.control.clear();
    }

    pub(crate) fn take_signal(&self) -> Option<Signal> {
        if !self.signalled.load(Ordering::Acquire) {
            return None;
        }
        let mut signals = self.signals();
        // Cleared under the lock that setters hold, so none is lost.
        self.signalled.store(
            signals.stop.is_some() as usize + signals.control.len() > 1,
            Ordering::Release,
        );
        if let Some(reason) = signals.stop.take() {
            return Some(Signal::Stop(reason));
        }
        signals.control.pop_front().map(Signal::Control)
    }

    /// Whether a signal waits (one atomic load).
    pub(crate) fn has_signal(&self) -> bool {
        self.signalled.load(Ordering::Acquire)
    }

    pub(crate) fn next_correlation(&self) -> u64 {
        self.next_correlation.fetch_add(1, Ordering::Relaxed)
    }

    /// Publishes the exit reason to everyone waiting for it (the first
    /// reason published in a run stays).
    pub(crate) fn publish_exit(&self, reason: ExitReason) {
        let mut signals = self.signals();
        let run = signals.run;
        if signals
            .exit
            .as_ref()
            .is_none_or(|(exited, _)| *exited < run)
        {
            signals.exit = Some((run, reason));
        }
        let waiters = std::mem::take(&mut signals.exit_waiters);
        drop(signals);
        for waker in waiters {
            waker.wake();
        }
    }

    /// Starts a new run of a proxy whose exit was published (its node was
    /// down and is back): watches made from now on wait for the next exit,
    /// while those made before have had theirs. Refused (false) once the
    /// cell is closed for good.
    pub(crate) fn reopen(&self) -> bool {
        debug_assert!(!self.local, "only a proxy comes back");
        let mut signals = self.signals();
        if signals.closed {
            return false;
        }
        if signals
            .exit
            .as_ref()
            .is_some_and(|(run, _)| *run == signals.run)
        {
            signals.run += 1;
        }
        drop(signals);
        self.set_status(ActorStatus::Active);
        true
    }

    /// Whether the cell is closed for good (its actor exited).
    pub(crate) fn is_closed(&self) -> bool {
        self.signals().closed
    }

    /// A handle to wait for the actor's exit reason: the exit of the run
    /// current now, or of a later one.
    pub(crate) fn exit_watch(self: &Arc<Self>) -> ExitWatch {
        let run = self.signals().run;
        ExitWatch(self.clone(), run)
    }
}

/// Waits for one actor's exit (cheaper per actor than a watch channel: the
/// reason and the waiters live in the cell's signal lock).
pub(crate) struct ExitWatch(Arc<Cell>, u64);

/// Resolves to the exit reason `watch` waits for.
pub(crate) async fn wait_exit(watch: ExitWatch) -> ExitReason {
    std::future::poll_fn(|cx| {
        let mut signals = watch.0.signals();
        if let Some((run, reason)) = &signals.exit
            && *run >= watch.1
        {
            return Poll::Ready(reason.clone());
        }
        if !signals.exit_waiters.iter().any(|w| w.will_wake(cx.waker())) {
            signals.exit_waiters.push(cx.waker().clone());
        }
        Poll::Pending
    })
    .await
}

/// The exit reason `watch` waits for, if the actor has exited already.
pub(crate) fn exited(watch: &ExitWatch) -> Option<ExitReason> {
    let signals = watch.0.signals();
    match &signals.exit {
        Some((run, reason)) if *run >= watch.1 => Some(reason.clone()),
        _ => None,
    }
}

/// A type-erased handle on an actor, for supervisors and links: its id,
/// status, exit and a way to stop it.
#[derive(Clone)]
pub(crate) struct ChildCell {
    cell: Arc<Cell>,
    /// The child's `ActorRef<A>`, for callers who know `A`.
    typed: Arc<dyn std::any::Any + Send + Sync>,
}

impl ChildCell {
    pub(crate) fn of<A: super::Actor>(actor: &super::ActorRef<A>) -> Self {
        ChildCell {
            cell: actor.cell.clone(),
            typed: Arc::new(actor.clone()),
        }
    }

    pub(crate) fn id(&self) -> &ActorId {
        &self.cell.id
    }

    pub(crate) fn stop(&self, reason: ExitReason) {
        self.cell.request_stop(reason);
    }

    pub(crate) fn exit_watch(&self) -> ExitWatch {
        self.cell.exit_watch()
    }

    /// The child's ref, if it is an `A`.
    pub(crate) fn actor_ref<A: super::Actor>(&self) -> Option<super::ActorRef<A>> {
        self.typed.downcast_ref::<super::ActorRef<A>>().cloned()
    }
}
