//! Tuple spaces shared by every node of a cluster, with `take` atomic
//! across them.
//!
//! Each named space is a virtual actor (kind [`SharedSpaces::KIND`]): one
//! node hosts it at a time, chosen by placement, and its contents are a
//! durable actor's state, journaled on the configured backend (the journal
//! server, PostgreSQL, or the embedded log on a single node). So:
//!
//! - Two takers never get the same tuple: one activation applies takes one
//!   at a time, and on a shared backend fencing stops an older activation
//!   (the other side of a partition) from writing once a newer one claims
//!   the space.
//! - Every operation carries an idempotency key, and a retry after a lost
//!   reply gets the original answer: a tuple whose take was applied but
//!   whose reply was lost is handed to the retry, not lost. A take (plain
//!   or leased, blocking or not) whose outcome is unknown when its call
//!   gives up is asked again under the same key until it is answered, so
//!   it returns the tuple it took, never a second one and never none; it
//!   may therefore return later than its timeout while the space cannot
//!   be reached. (Dropping a take future while it is being asked can still
//!   leave a tuple taken by nobody: hold leases for work that may be
//!   abandoned.)
//! - A node that hosts a space can die: the next call activates the space
//!   elsewhere from its journal.
//! - `take_leased` takes a tuple for a while: `complete` removes it for
//!   good and writes its results in one step, `release` puts it back, and a
//!   lease that runs out (on the hosting node's wall clock) puts it back by
//!   itself, where another taker can get it. Since a completion after the
//!   lease ran out is refused, each leased tuple is completed at most once
//!   — the bag-of-tasks pattern with workers that crash mid-task.
//!
//! A blocked `take` or `read` that finds nothing registers with the space
//! (journaled, so the registration moves with the space): the next
//! matching write hands its tuple to the oldest matching waiter on any
//! node, in the same journaled step, and wakes that waiter's node, which
//! collects it with one more call (see `waiters.rs`). So waiters are
//! served first come first served across the cluster, as in memory, and
//! see a write about one round trip after it, with no polling. A waiter
//! renews its registration every [`SharedSpacesConfig::wait_refresh`]; a
//! registration not renewed for three of those (its node died, its future
//! was dropped) lapses, and a tuple handed to it and not collected in
//! that time goes back to the space. A lost wake costs at most one
//! `wait_refresh` of latency. A query that finds nothing to change (an
//! empty take, a read, a count) costs the host no journal write.

use super::hosted::{HostedSpace, SpaceOp, SpaceReply, SpaceWant, WaitOp};
use super::hosted_events::EventsOp;
use super::space::{Action, TupleEvent};
use super::space::{TupleSpaceConfig, TupleSpaceError};
use super::value::{Pattern, Tuple};
use crate::actor::{ActorSystem, AskError};
use crate::durability::JournalBackend;
use crate::seams::{Clock, whole_millis};
use crate::virtual_actor::service_kind::ServiceKind;
use crate::virtual_actor::{VirtualConfig, VirtualError, VirtualRef};
use crate::wake::{self, Claim, Ticket};
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How this node serves and reaches shared spaces. Use the same journal
/// backend and bounds on every node.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SharedSpacesConfig {
    /// The hosting virtual actors (journal, activation, call retries).
    pub hosting: VirtualConfig,
    /// Bounds of each space (fixed when a space is first used).
    pub space: TupleSpaceConfig,
    /// The longest one operation waits for its answer, retries included.
    pub call_timeout: Duration,
    /// First pause before a call whose outcome is unknown is asked again.
    pub poll_min: Duration,
    /// Longest pause between its attempts.
    pub poll_max: Duration,
    /// How often a blocked take or read renews its registration with the
    /// space (and so the longest a lost wake delays it).
    pub wait_refresh: Duration,
}

impl SharedSpacesConfig {
    /// Defaults, journaling to `journal`: call timeout 10 s, retries from
    /// 1 ms to 50 ms, waiters renewed every second.
    pub fn new(journal: JournalBackend) -> Self {
        SharedSpacesConfig {
            hosting: VirtualConfig::new(SharedSpaces::KIND, journal),
            space: TupleSpaceConfig::default(),
            call_timeout: Duration::from_secs(10),
            poll_min: Duration::from_millis(1),
            poll_max: Duration::from_millis(50),
            wait_refresh: Duration::from_secs(1),
        }
    }
}

/// Why a shared space operation failed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SharedSpaceError {
    /// The space refused it (full, tuple too large); nothing was written.
    Space(TupleSpaceError),
    /// The lease ran out before it was completed or released (its tuple
    /// went back to the space), or it never existed.
    LeaseLost,
    /// The space did not answer within the call timeout. The operation may
    /// or may not have been applied.
    Call(AskError),
    /// The space's host answered with a reply this version does not
    /// expect (a bug, or a node running another version).
    Protocol(String),
    /// A subscriber fell this many events behind the ones the space keeps
    /// ([`SUBSCRIPTION_EVENTS_KEPT`]); it goes on with the oldest kept.
    Lagged(u64),
    /// A subscription was not renewed in time (its reader stopped asking
    /// for three `wait_refresh` periods): it goes on from the newest
    /// event, and what came between is unknown to it.
    SubscriptionLapsed,
    /// The space has its most subscriptions
    /// ([`SUBSCRIPTIONS_MAX`]).
    TooManySubscriptions,
}

/// Most events a shared space keeps for its subscribers.
pub const SUBSCRIPTION_EVENTS_KEPT: usize = super::hosted_events::EVENTS_KEPT;
/// Most live subscriptions of one shared space.
pub const SUBSCRIPTIONS_MAX: usize = super::hosted_events::SUBSCRIPTIONS_MAX;

impl fmt::Display for SharedSpaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharedSpaceError::Space(e) => e.fmt(f),
            SharedSpaceError::LeaseLost => write!(f, "the lease ran out or does not exist"),
            SharedSpaceError::Call(e) => write!(f, "shared tuple space unreachable: {e}"),
            SharedSpaceError::Protocol(why) => write!(f, "shared tuple space: {why}"),
            SharedSpaceError::Lagged(n) => write!(f, "the subscriber missed {n} events"),
            SharedSpaceError::SubscriptionLapsed => {
                write!(f, "the subscription lapsed; events may have been missed")
            }
            SharedSpaceError::TooManySubscriptions => {
                write!(f, "the space has its {SUBSCRIPTIONS_MAX} subscriptions")
            }
        }
    }
}

impl std::error::Error for SharedSpaceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SharedSpaceError::Space(e) => Some(e),
            SharedSpaceError::Call(e) => Some(e),
            SharedSpaceError::LeaseLost
            | SharedSpaceError::Protocol(_)
            | SharedSpaceError::Lagged(_)
            | SharedSpaceError::SubscriptionLapsed
            | SharedSpaceError::TooManySubscriptions => None,
        }
    }
}

/// A tuple taken under a lease.
#[derive(Clone, Debug, PartialEq)]
pub struct Leased {
    /// The tuple.
    pub tuple: Tuple,
    /// What [`SharedTupleSpace::complete`] and `release` name it by.
    pub token: LeaseToken,
}

/// Names one lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseToken(u64);

struct Shared {
    kind: ServiceKind<HostedSpace>,
    config: SharedSpacesConfig,
}

/// This node's door to the cluster's shared spaces. Cheap to clone.
#[derive(Clone)]
pub struct SharedSpaces {
    shared: Arc<Shared>,
}

impl fmt::Debug for SharedSpaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSpaces")
            .field("node", self.shared.kind.env.node())
            .finish_non_exhaustive()
    }
}

impl SharedSpaces {
    /// The virtual actor kind hosting spaces.
    pub const KIND: &'static str = "space";

    /// Hosts and reaches shared spaces on `system`'s node. In a cluster,
    /// start distribution first and register on every node.
    pub fn register(
        system: &ActorSystem,
        config: SharedSpacesConfig,
    ) -> Result<Self, VirtualError> {
        let bounds = config.space.clone();
        #[cfg(feature = "planted-bugs")]
        let planted_bug = config.hosting.planted_bug;
        let kind = ServiceKind::register(
            system,
            config.hosting.clone(),
            config.call_timeout,
            (config.poll_min, config.poll_max),
            move |name| {
                #[allow(unused_mut)]
                let mut space = HostedSpace::new(name, &bounds);
                #[cfg(feature = "planted-bugs")]
                {
                    space.planted_bug = planted_bug;
                }
                space
            },
        )?;
        Ok(SharedSpaces {
            shared: Arc::new(Shared { kind, config }),
        })
    }

    /// The space `name` (created on first use; 1 to 26 bytes, no `@`).
    pub fn space(&self, name: &str) -> Result<SharedTupleSpace, VirtualError> {
        Ok(SharedTupleSpace {
            target: self.shared.kind.actors.get(name)?,
            shared: self.shared.clone(),
        })
    }

    /// The node hosting space `name`, as this node sees the cluster.
    pub fn host_of(&self, name: &str) -> Option<crate::env::NodeName> {
        self.shared.kind.actors.owner_of(name)
    }
}

/// One shared space. Cheap to clone.
#[derive(Clone)]
pub struct SharedTupleSpace {
    target: VirtualRef<HostedSpace>,
    shared: Arc<Shared>,
}

impl fmt::Debug for SharedTupleSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedTupleSpace({})", self.target.id())
    }
}

#[track_caller]
fn unexpected(reply: SpaceReply) -> SharedSpaceError {
    SharedSpaceError::Protocol(crate::invariant::wrong_remote_reply(
        "a shared tuple space operation",
        &reply,
    ))
}

impl SharedTupleSpace {
    /// The space's name.
    pub fn name(&self) -> &str {
        self.target.id()
    }

    /// Sends one operation under a fresh key (retried under that key).
    async fn call(&self, op: SpaceOp) -> Result<SpaceReply, SharedSpaceError> {
        self.call_keyed(self.fresh_key(), op).await
    }

    /// Calls `op` under `key`, once.
    async fn call_keyed(&self, key: String, op: SpaceOp) -> Result<SpaceReply, SharedSpaceError> {
        Self::check(&op)?;
        let called = self.shared.kind.call_once(&self.target, key, op, false);
        Self::answer(called.await)
    }

    /// Calls `op` under `key` until its outcome is known
    /// ([`ServiceKind::call_resolved`]). For takes, whose tuple would
    /// otherwise be taken by nobody.
    async fn call_resolved(
        &self,
        key: String,
        op: SpaceOp,
    ) -> Result<SpaceReply, SharedSpaceError> {
        Self::check(&op)?;
        Self::answer(self.shared.kind.call_resolved(&self.target, key, op).await)
    }

    /// A tuple the hosting node could not decode is refused here, with
    /// the error the host would give, rather than failing in transit.
    fn check(op: &SpaceOp) -> Result<(), SharedSpaceError> {
        if let SpaceOp::Write(tuples) | SpaceOp::Complete { write: tuples, .. } = op {
            for tuple in tuples {
                tuple.check_depth().map_err(SharedSpaceError::Space)?;
            }
        }
        Ok(())
    }

    /// The space's refusals as errors.
    fn answer(called: Result<SpaceReply, AskError>) -> Result<SpaceReply, SharedSpaceError> {
        match called {
            Ok(SpaceReply::Refused(e)) => Err(SharedSpaceError::Space(e)),
            Ok(SpaceReply::LeaseLost) => Err(SharedSpaceError::LeaseLost),
            Ok(reply) => Ok(reply),
            Err(e) => Err(SharedSpaceError::Call(e)),
        }
    }

    /// A fresh idempotency key for one operation.
    fn fresh_key(&self) -> String {
        self.shared.kind.fresh_key()
    }

    /// Waits for a tuple matching `pattern` (taken, under a lease if
    /// `lease_ms`, or read), until `timeout` passes: registers with the
    /// space and is woken by the write that hands it a tuple (see the
    /// [module](self)). Each call is resolved
    /// ([`SharedTupleSpace::call_resolved`]) before the next.
    async fn wait(
        &self,
        pattern: Pattern,
        lease_ms: Option<u64>,
        read: bool,
        timeout: Option<Duration>,
    ) -> Result<Option<SpaceReply>, SharedSpaceError> {
        let env = &self.shared.kind.env;
        let deadline = timeout.map(|t| env.now() + t);
        let refresh = self.shared.config.wait_refresh;
        let (who, mut ticket) = self.shared.kind.claim(refresh);
        let claim = who.claim.clone();
        let op = SpaceOp::Wait(WaitOp {
            who,
            want: SpaceWant {
                pattern,
                lease_ms,
                read,
            },
        });
        let found = wake::wait_for(env, &mut ticket, refresh, deadline, || async {
            match self.call_resolved(self.fresh_key(), op.clone()).await? {
                SpaceReply::Waiting => Ok(None),
                found @ (SpaceReply::Tuple(Some(_)) | SpaceReply::Leased(Some(_))) => {
                    Ok(Some(found))
                }
                other => Err(unexpected(other)),
            }
        })
        .await?;
        match found {
            Some(found) => Ok(Some(found)),
            None => self.give_up(claim).await,
        }
    }

    /// Ends the wait `claim`; a tuple handed to it meanwhile is returned,
    /// not lost.
    async fn give_up(&self, claim: String) -> Result<Option<SpaceReply>, SharedSpaceError> {
        match self
            .call_resolved(self.fresh_key(), SpaceOp::Unwait { claim })
            .await?
        {
            SpaceReply::Done => Ok(None),
            found @ (SpaceReply::Tuple(Some(_)) | SpaceReply::Leased(Some(_))) => Ok(Some(found)),
            other => Err(unexpected(other)),
        }
    }

    fn tuple(reply: Option<SpaceReply>) -> Result<Option<Tuple>, SharedSpaceError> {
        match reply {
            None => Ok(None),
            Some(SpaceReply::Tuple(found)) => Ok(found),
            Some(other) => Err(unexpected(other)),
        }
    }

    fn done(reply: SpaceReply) -> Result<(), SharedSpaceError> {
        match reply {
            SpaceReply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn tuples(reply: SpaceReply) -> Result<Vec<Tuple>, SharedSpaceError> {
        match reply {
            SpaceReply::Tuples(found) => Ok(found),
            other => Err(unexpected(other)),
        }
    }

    /// Writes a tuple, durably.
    pub async fn write(&self, tuple: Tuple) -> Result<(), SharedSpaceError> {
        self.write_all(vec![tuple]).await
    }

    /// Writes all the tuples in one step, or none if one is refused.
    pub async fn write_all(&self, tuples: Vec<Tuple>) -> Result<(), SharedSpaceError> {
        Self::done(self.call(SpaceOp::Write(tuples)).await?)
    }

    /// [`SharedTupleSpace::write_all`] under the caller's idempotency key
    /// `key`: after a failure whose outcome is unknown (a call timeout, a
    /// crash), calling again with the same key and tuples writes them at
    /// most once (within the space's dedupe window, 10,000 keys by
    /// default), even from another run of the caller.
    pub async fn write_all_once(
        &self,
        key: &str,
        tuples: Vec<Tuple>,
    ) -> Result<(), SharedSpaceError> {
        // Generated keys are `<hex nonce>:<n>`; a caller's never collide.
        let key = format!("caller/{key}");
        Self::done(self.call_keyed(key, SpaceOp::Write(tuples)).await?)
    }

    /// Waits for a matching tuple and removes it.
    pub async fn take(&self, pattern: Pattern) -> Result<Tuple, SharedSpaceError> {
        let reply = self.wait(pattern, None, false, None).await?;
        Self::tuple(reply)?.ok_or_else(|| unexpected(SpaceReply::Tuple(None)))
    }

    /// [`SharedTupleSpace::take`], giving up after `timeout` (`Ok(None)`).
    pub async fn take_with_timeout(
        &self,
        pattern: Pattern,
        timeout: Duration,
    ) -> Result<Option<Tuple>, SharedSpaceError> {
        Self::tuple(self.wait(pattern, None, false, Some(timeout)).await?)
    }

    /// A matching tuple, removed, if there is one now.
    pub async fn take_if_exists(
        &self,
        pattern: &Pattern,
    ) -> Result<Option<Tuple>, SharedSpaceError> {
        let op = SpaceOp::Take {
            pattern: pattern.clone(),
            lease_ms: None,
        };
        Self::tuple(Some(self.call_resolved(self.fresh_key(), op).await?))
    }

    /// Every matching tuple, removed.
    pub async fn take_all_if_exists(
        &self,
        pattern: &Pattern,
    ) -> Result<Vec<Tuple>, SharedSpaceError> {
        let op = SpaceOp::TakeAll(pattern.clone());
        Self::tuples(self.call_resolved(self.fresh_key(), op).await?)
    }

    /// Waits up to `timeout` for a matching tuple and takes it under a
    /// lease of `lease`: finish with [`SharedTupleSpace::complete`] or
    /// [`SharedTupleSpace::release`] before it runs out, or the tuple goes
    /// back to the space.
    pub async fn take_leased(
        &self,
        pattern: Pattern,
        lease: Duration,
        timeout: Duration,
    ) -> Result<Option<Leased>, SharedSpaceError> {
        let lease = Some(whole_millis(lease));
        match self.wait(pattern, lease, false, Some(timeout)).await? {
            None => Ok(None),
            Some(SpaceReply::Leased(Some((tuple, token)))) => Ok(Some(Leased {
                tuple,
                token: LeaseToken(token),
            })),
            Some(other) => Err(unexpected(other)),
        }
    }

    /// Ends a lease: its tuple is gone for good and `results` are written,
    /// in one step. `LeaseLost` if the lease ran out first (nothing
    /// written; the tuple is back in the space for another taker).
    pub async fn complete(
        &self,
        token: LeaseToken,
        results: Vec<Tuple>,
    ) -> Result<(), SharedSpaceError> {
        let op = SpaceOp::Complete {
            token: token.0,
            write: results,
        };
        Self::done(self.call(op).await?)
    }

    /// Ends a lease by putting its tuple back.
    pub async fn release(&self, token: LeaseToken) -> Result<(), SharedSpaceError> {
        Self::done(self.call(SpaceOp::Release { token: token.0 }).await?)
    }

    /// Waits for a matching tuple and returns a copy (it stays).
    pub async fn read(&self, pattern: Pattern) -> Result<Tuple, SharedSpaceError> {
        Self::tuple(self.wait(pattern, None, true, None).await?)?
            .ok_or_else(|| unexpected(SpaceReply::Tuple(None)))
    }

    /// [`SharedTupleSpace::read`], giving up after `timeout` (`Ok(None)`).
    pub async fn read_with_timeout(
        &self,
        pattern: Pattern,
        timeout: Duration,
    ) -> Result<Option<Tuple>, SharedSpaceError> {
        Self::tuple(self.wait(pattern, None, true, Some(timeout)).await?)
    }

    /// A copy of a matching tuple, if there is one now.
    pub async fn read_if_exists(
        &self,
        pattern: &Pattern,
    ) -> Result<Option<Tuple>, SharedSpaceError> {
        Self::tuple(Some(self.call(SpaceOp::Read(pattern.clone())).await?))
    }

    /// Copies of every matching tuple (leased tuples are not visible).
    pub async fn read_all_if_exists(
        &self,
        pattern: &Pattern,
    ) -> Result<Vec<Tuple>, SharedSpaceError> {
        Self::tuples(self.call(SpaceOp::ReadAll(pattern.clone())).await?)
    }

    /// How many tuples match (leased tuples are not counted).
    pub async fn count(&self, pattern: &Pattern) -> Result<usize, SharedSpaceError> {
        match self.call(SpaceOp::Count(pattern.clone())).await? {
            SpaceReply::Count(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// How many blocked takes and reads, from every node, are registered
    /// with the space now (lapsed registrations included until the next
    /// write drops them).
    pub async fn waiting(&self) -> Result<usize, SharedSpaceError> {
        match self.call(SpaceOp::Waiters).await? {
            SpaceReply::Count(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// Whether a tuple matches now.
    pub async fn exists(&self, pattern: &Pattern) -> Result<bool, SharedSpaceError> {
        Ok(self.read_if_exists(pattern).await?.is_some())
    }

    /// Subscribes to the writes and takes (`actions`) of tuples matching
    /// `pattern` on this space, from now on, as seen from any node. Read
    /// them with [`SharedSubscription::next`] at least every
    /// `wait_refresh` or so: a subscription unread for three of those
    /// lapses. While a space has a subscription it keeps its newest
    /// [`SUBSCRIPTION_EVENTS_KEPT`] events (journaled with the space).
    pub async fn subscribe(
        &self,
        pattern: Pattern,
        actions: &[Action],
    ) -> Result<SharedSubscription, SharedSpaceError> {
        let (who, ticket) = self.shared.kind.claim(self.shared.config.wait_refresh);
        let op = SpaceOp::Subscribe { who: who.clone() };
        match self.call_resolved(self.fresh_key(), op).await? {
            SpaceReply::Subscribed(after) => Ok(SharedSubscription {
                space: self.clone(),
                who,
                ticket,
                after,
                pattern,
                actions: actions.to_vec(),
                buffered: VecDeque::new(),
            }),
            SpaceReply::SubscriptionsFull => Err(SharedSpaceError::TooManySubscriptions),
            other => Err(unexpected(other)),
        }
    }

    /// Waits until a matching tuple exists (woken by the write, as a
    /// blocked read is).
    pub async fn wait_until_exists(&self, pattern: Pattern) -> Result<(), SharedSpaceError> {
        self.read(pattern).await.map(drop)
    }

    /// Removes every tuple and ends every lease.
    pub async fn clear(&self) -> Result<(), SharedSpaceError> {
        Self::done(self.call(SpaceOp::Clear).await?)
    }
}

/// A subscription to a shared space's events (see
/// [`SharedTupleSpace::subscribe`]).
pub struct SharedSubscription {
    space: SharedTupleSpace,
    who: Claim,
    ticket: Ticket,
    /// The number of the last event looked at.
    after: u64,
    pattern: Pattern,
    actions: Vec<Action>,
    buffered: VecDeque<TupleEvent>,
}

impl fmt::Debug for SharedSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSubscription")
            .field("space", &self.space.name())
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl SharedSubscription {
    /// The next matching event, in the order they happened, waiting up to
    /// `timeout` (`Ok(None)`), woken by the write or take. Once after
    /// falling behind, [`SharedSpaceError::Lagged`] first; after a lapse,
    /// [`SharedSpaceError::SubscriptionLapsed`].
    pub async fn next(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<TupleEvent>, SharedSpaceError> {
        if let Some(event) = self.buffered.pop_front() {
            return Ok(Some(event));
        }
        let space = &self.space;
        let env = &space.shared.kind.env;
        let refresh = space.shared.config.wait_refresh;
        let deadline = env.now() + timeout;
        loop {
            let op = SpaceOp::Events(EventsOp {
                who: self.who.clone(),
                after: self.after,
                pattern: self.pattern.clone(),
                actions: self.actions.clone(),
            });
            let found = wake::wait_for(env, &mut self.ticket, refresh, Some(deadline), || async {
                match space.call_resolved(space.fresh_key(), op.clone()).await? {
                    SpaceReply::Waiting => Ok(None),
                    other => Ok(Some(other)),
                }
            })
            .await?;
            match found {
                None => return Ok(None),
                Some(SpaceReply::Events(fetched)) => {
                    self.after = fetched.last;
                    self.buffered.extend(
                        fetched
                            .events
                            .into_iter()
                            .map(|(action, tuple)| TupleEvent { action, tuple }),
                    );
                    if fetched.lagged > 0 {
                        return Err(SharedSpaceError::Lagged(fetched.lagged));
                    }
                    if let Some(event) = self.buffered.pop_front() {
                        return Ok(Some(event));
                    }
                    // Only events that do not match: look further.
                }
                Some(SpaceReply::Lapsed(from)) => {
                    self.after = from;
                    return Err(SharedSpaceError::SubscriptionLapsed);
                }
                Some(other) => return Err(unexpected(other)),
            }
        }
    }

    /// Ends the subscription.
    pub async fn unsubscribe(self) -> Result<(), SharedSpaceError> {
        let op = SpaceOp::Unsubscribe {
            id: self.who.claim.clone(),
        };
        SharedTupleSpace::done(self.space.call_resolved(self.space.fresh_key(), op).await?)
    }
}
