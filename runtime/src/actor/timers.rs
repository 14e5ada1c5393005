//! Actor timers (the design's TimerFacet): one-shot and periodic messages
//! an actor sends itself, on the node's timer service and so on the
//! `Clock` seam.
//!
//! - A timer delivers its message through the mailbox like any other
//!   (`try_tell`; when the mailbox is full it waits for room on its own
//!   task, so a timer message is never dropped while the actor lives).
//! - Timers belong to one run of the actor: when it stops (or a virtual
//!   actor deactivates, or a supervisor restarts it) every timer it had is
//!   cancelled, as in Orleans and Dapr. Durable schedules are reminders.
//! - At most `max_timers` live at once per actor (default
//!   [`MAX_TIMERS_DEFAULT`]); one more is refused with [`TimerError::TooMany`].
//! - **Lateness**: a timer fires at or after its time, never before. A
//!   periodic timer that falls behind does not catch up: while one of its
//!   ticks waits in the mailbox (the actor is busy), later ticks are folded
//!   into it; after a pause of the node, the ticks it missed are one tick;
//!   and the next tick keeps the original phase (the first multiple of the
//!   period after now). So neither a busy actor nor a pause causes a burst.

use super::deadline::{Deadlines, TimerKey};
use super::{Actor, ActorRef};
use crate::seams::Instant;
use plexspaces_storage::sync::LockExt;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Live timers an actor may have by default.
pub const MAX_TIMERS_DEFAULT: usize = 1024;

/// Identifies one timer of one actor (for [`super::Context::cancel_timer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(u64);

/// A timer could not be started.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimerError {
    /// The actor already has `max` live timers.
    TooMany {
        /// The actor's bound.
        max: usize,
    },
    /// A periodic timer needs a positive period.
    ZeroPeriod,
}

impl fmt::Display for TimerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimerError::TooMany { max } => write!(f, "the actor already has {max} live timers"),
            TimerError::ZeroPeriod => f.write_str("a periodic timer needs a positive period"),
        }
    }
}

impl std::error::Error for TimerError {}

/// One timer's shared state: the driver's callback and the actor's table
/// both see it.
struct Slot {
    /// [`ARMED`], [`FIRED`] (a one-shot delivered) or [`CANCELLED`]; the
    /// one transition out of `ARMED` releases the timer's place.
    state: AtomicU8,
    /// The actor's count of live timers.
    live: Arc<AtomicUsize>,
    /// The entry currently scheduled on the timer service.
    key: Mutex<Option<TimerKey>>,
    /// A periodic timer's tick is in the mailbox, not yet taken.
    in_flight: Arc<AtomicBool>,
}

const ARMED: u8 = 0;
const FIRED: u8 = 1;
const CANCELLED: u8 = 2;

impl Slot {
    fn set_key(&self, key: TimerKey) {
        *self.key.locked() = Some(key);
    }

    /// Leaves `ARMED` for `to`; true for the one caller that did.
    fn finish(&self, to: u8) -> bool {
        let done = self
            .state
            .compare_exchange(ARMED, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if done {
            self.live.fetch_sub(1, Ordering::AcqRel);
        }
        done
    }

    fn cancel(&self, service: &Deadlines) -> bool {
        let was_live = self.finish(CANCELLED);
        if let Some(key) = self.key.locked().take() {
            service.cancel(key);
        }
        was_live
    }

    fn cancelled(&self) -> bool {
        self.state.load(Ordering::Acquire) == CANCELLED
    }

    fn live(&self) -> bool {
        self.state.load(Ordering::Acquire) == ARMED
    }
}

/// One actor run's timers.
pub(crate) struct ActorTimers {
    service: Arc<Deadlines>,
    /// Every timer not yet pruned (fired and cancelled ones leave lazily).
    slots: BTreeMap<u64, Arc<Slot>>,
    /// Timers live now (kept by the slots themselves, so counting is O(1)).
    live: Arc<AtomicUsize>,
    next_id: u64,
    max: usize,
}

impl ActorTimers {
    pub(crate) fn new(service: Arc<Deadlines>) -> Self {
        ActorTimers {
            service,
            slots: BTreeMap::new(),
            live: Arc::new(AtomicUsize::new(0)),
            next_id: 0,
            max: MAX_TIMERS_DEFAULT,
        }
    }

    pub(crate) fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    fn admit(&mut self) -> Result<(TimerId, Arc<Slot>), TimerError> {
        let live = self.live();
        if live >= self.max {
            return Err(TimerError::TooMany { max: self.max });
        }
        // Forget finished timers once they outnumber live ones: amortized
        // O(1) per timer, and the table stays within twice the live count.
        if self.slots.len() > 2 * live + 64 {
            self.slots.retain(|_, slot| slot.live());
        }
        self.live.fetch_add(1, Ordering::AcqRel);
        self.next_id += 1;
        let slot = Arc::new(Slot {
            state: AtomicU8::new(ARMED),
            live: self.live.clone(),
            key: Mutex::new(None),
            in_flight: Arc::new(AtomicBool::new(false)),
        });
        self.slots.insert(self.next_id, slot.clone());
        Ok((TimerId(self.next_id), slot))
    }

    pub(crate) fn send_after<A: Actor>(
        &mut self,
        actor: &ActorRef<A>,
        delay: Duration,
        msg: A::Msg,
    ) -> Result<TimerId, TimerError> {
        let (id, slot) = self.admit()?;
        let at = self.service.now() + delay;
        let (actor, fired) = (actor.clone(), slot.clone());
        let key = self.service.schedule(
            at,
            Box::new(move || {
                if fired.finish(FIRED) {
                    actor.deliver_timer(msg, None);
                }
            }),
        );
        slot.set_key(key);
        Ok(id)
    }

    pub(crate) fn send_interval<A: Actor>(
        &mut self,
        actor: &ActorRef<A>,
        period: Duration,
        msg: A::Msg,
    ) -> Result<TimerId, TimerError>
    where
        A::Msg: Clone,
    {
        if period.is_zero() {
            return Err(TimerError::ZeroPeriod);
        }
        let (id, slot) = self.admit()?;
        let first = self.service.now() + period;
        arm_periodic(
            Arc::downgrade(&self.service),
            slot,
            first,
            period,
            actor.clone(),
            msg,
        );
        Ok(id)
    }

    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        match self.slots.remove(&id.0) {
            Some(slot) => slot.cancel(&self.service),
            None => false,
        }
    }
}

/// Schedules the periodic timer's tick at `at`; each tick schedules the
/// next one, skipping ticks already missed (no catch-up burst).
fn arm_periodic<A: Actor>(
    service: Weak<Deadlines>,
    slot: Arc<Slot>,
    at: Instant,
    period: Duration,
    actor: ActorRef<A>,
    msg: A::Msg,
) where
    A::Msg: Clone,
{
    let Some(strong) = service.upgrade() else {
        return;
    };
    if slot.cancelled() {
        return;
    }
    let ticking = slot.clone();
    let key = strong.schedule(
        at,
        Box::new(move || {
            if ticking.cancelled() {
                return;
            }
            // A tick still waiting in the mailbox stands for this one too.
            if !ticking.in_flight.swap(true, Ordering::AcqRel) {
                actor.deliver_timer(msg.clone(), Some(ticking.in_flight.clone()));
            }
            let Some(now) = service.upgrade().map(|s| s.now()) else {
                return;
            };
            let behind = now.saturating_duration_since(at);
            let periods = (behind.as_nanos() / period.as_nanos()) as u32 + 1;
            let next = at + period * periods;
            arm_periodic(service, ticking, next, period, actor, msg);
        }),
    );
    slot.set_key(key);
}

impl Drop for ActorTimers {
    fn drop(&mut self) {
        for slot in self.slots.values() {
            slot.cancel(&self.service);
        }
    }
}
