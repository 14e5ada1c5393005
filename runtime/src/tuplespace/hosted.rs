//! The state of a shared tuple space and its operations: a durable actor,
//! so it is journaled, checkpointed and replayed like any other, and hosted
//! as a virtual actor on whichever node placement picks.
//!
//! Every operation is non-blocking here; a blocked `take` is the client
//! asking again (see `shared.rs`). Operations that find nothing to change
//! are answered as queries, so an empty poll costs no journal write.

use super::hosted_events::{EventsOp, Fetch, Fetched, SpaceEvents};
use super::index::TupleIndex;
use super::space::Action;
use super::space::{TupleSpaceConfig, TupleSpaceError};
use super::value::{Pattern, Tuple};
use crate::actor::ActorError;
use crate::durability::ops::{self, Ops};
use crate::durability::{DurableActor, DurableContext};
use crate::env::Env;
use crate::seams::{Clock, unix_millis};
use crate::wake::{Claim, HostWaker, WaitList, Wake};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One operation on a shared space.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum SpaceOp {
    /// Writes all the tuples or, if one is refused, none.
    Write(Vec<Tuple>),
    /// Removes the oldest matching tuple; with a lease, holds it until the
    /// lease is completed, released or runs out.
    Take {
        pattern: Pattern,
        lease_ms: Option<u64>,
    },
    /// Removes every matching tuple.
    TakeAll(Pattern),
    /// A copy of the oldest matching tuple.
    Read(Pattern),
    /// Copies of every matching tuple.
    ReadAll(Pattern),
    /// How many tuples match.
    Count(Pattern),
    /// Ends a lease: its tuple is gone for good and `write` is written, in
    /// one step.
    Complete { token: u64, write: Vec<Tuple> },
    /// Ends a lease by putting its tuple back.
    Release { token: u64 },
    /// Removes every tuple (and every lease).
    Clear,
    /// A blocked take or read: takes (or reads) a matching tuple now, or
    /// hands over the one a write handed to `claim` since, or else
    /// registers `claim` as a waiter (or renews it) for `ttl_ms`: the
    /// next matching write hands its tuple to the oldest matching waiter
    /// and wakes the waiter's node.
    Wait(WaitOp),
    /// The waiter `claim` gives up: its registration goes, and a tuple
    /// already handed to it comes back in the reply.
    Unwait { claim: String },
    /// How many blocked takes and reads are registered.
    Waiters,
    /// Starts a subscription to the space's events.
    Subscribe { who: Claim },
    /// A subscriber's fetch of the events after a number (renewing its
    /// subscription), or a registration for a wake.
    Events(EventsOp),
    /// Ends a subscription.
    Unsubscribe { id: String },
}

/// A blocked take or read (see [`SpaceOp::Wait`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct WaitOp {
    pub(crate) who: Claim,
    pub(crate) want: SpaceWant,
}

/// What a blocked operation waits for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SpaceWant {
    pub(crate) pattern: Pattern,
    /// A take under a lease of this length; `None`: a plain take.
    pub(crate) lease_ms: Option<u64>,
    /// A read (a copy handed over; the tuple stays).
    pub(crate) read: bool,
}

/// A tuple handed to a waiter, until it collects it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct HandedTuple {
    /// What the waiter's `Wait` will answer.
    reply: SpaceReply,
    /// A copy for a read (nothing goes back if it is not collected).
    read: bool,
}

/// The answer to a [`SpaceOp`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum SpaceReply {
    Done,
    Refused(TupleSpaceError),
    Tuple(Option<Tuple>),
    Leased(Option<(Tuple, u64)>),
    Tuples(Vec<Tuple>),
    Count(usize),
    /// The lease ran out (its tuple is back in the space) or never was.
    LeaseLost,
    /// Nothing matched: the waiter is registered.
    Waiting,
    /// A subscription starts after event number `.0`.
    Subscribed(u64),
    /// The space has its most subscriptions.
    SubscriptionsFull,
    Events(Fetched),
    /// The subscription had lapsed: made again, after event `.0`.
    Lapsed(u64),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Lease {
    tuple: Tuple,
    /// Wall-clock milliseconds since the Unix epoch on the hosting node.
    expires_ms: u64,
}

/// A shared space's contents. Leased tuples count toward the bound.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HostedSpace {
    name: String,
    tuples_max: usize,
    tuple_bytes_max: usize,
    /// The tuples not leased, indexed as in memory. (Its encoding is the
    /// three fields this struct had here before the index was shared, so
    /// older checkpoints still decode.)
    tuples: TupleIndex<Tuple>,
    leases: BTreeMap<u64, Lease>,
    next_token: u64,
    /// Blocked takes and reads, oldest first, and the tuples handed to
    /// them.
    #[serde(default)]
    waiters: WaitList<SpaceWant, HandedTuple>,
    /// Subscriptions and the recent events they read.
    #[serde(default)]
    events: SpaceEvents,
    /// Whether a tuple entered the space since the waiters were last
    /// served (not state: reset by every operation).
    #[serde(skip)]
    stored: bool,
    /// Not checkpointed: a planted bug lasts until the first checkpoint
    /// (1,000 operations by default), which covers the simulator's runs.
    #[cfg(feature = "planted-bugs")]
    #[serde(skip)]
    pub(crate) planted_bug: Option<crate::PlantedBug>,
}

impl HostedSpace {
    pub(crate) fn new(name: &str, config: &TupleSpaceConfig) -> Self {
        HostedSpace {
            name: name.to_string(),
            tuples_max: config.tuples_max,
            tuple_bytes_max: config.tuple_bytes_max,
            tuples: TupleIndex::default(),
            leases: BTreeMap::new(),
            next_token: 1,
            waiters: WaitList::default(),
            events: SpaceEvents::default(),
            stored: false,
            #[cfg(feature = "planted-bugs")]
            planted_bug: None,
        }
    }

    fn held(&self) -> usize {
        self.tuples.len() + self.leases.len()
    }

    fn store(&mut self, tuple: Tuple) {
        self.events.record(Action::Write, &tuple);
        self.tuples.insert(tuple);
        self.stored = true;
    }

    /// Takes the tuple at `slot` out of the space.
    fn remove(&mut self, slot: &super::index::Slot) -> Tuple {
        let tuple = self.tuples.remove(slot);
        self.events.record(Action::Take, &tuple);
        tuple
    }

    fn any_expired(&self, now_ms: u64) -> bool {
        self.leases.values().any(|l| l.expires_ms <= now_ms) || self.waiters.any_lapsed(now_ms)
    }

    /// Takes (or, for a read, copies) the oldest tuple matching `op`'s
    /// pattern, under its lease if it asks for one.
    fn take_for(&mut self, op: &SpaceWant, now_ms: u64) -> Option<SpaceReply> {
        let slot = self.tuples.find(&op.pattern)?;
        if op.read {
            return Some(SpaceReply::Tuple(Some(self.tuples.get(&slot).clone())));
        }
        let tuple = self.remove(&slot);
        Some(match op.lease_ms {
            None => SpaceReply::Tuple(Some(tuple)),
            Some(ms) => SpaceReply::Leased(Some((tuple.clone(), self.lease(tuple, ms, now_ms)))),
        })
    }

    fn lease(&mut self, tuple: Tuple, ms: u64, now_ms: u64) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        let expires_ms = now_ms.saturating_add(ms);
        self.leases.insert(token, Lease { tuple, expires_ms });
        token
    }

    /// Hands each tuple that entered the space to the oldest matching
    /// waiters (registration order, as the in-memory space serves its
    /// waiters); returns whom to wake.
    pub(crate) fn serve_waiters(&mut self, now_ms: u64) -> Vec<Wake> {
        if !std::mem::take(&mut self.stored) || self.waiters.waiting() == 0 {
            return Vec::new();
        }
        let mut waiters = std::mem::take(&mut self.waiters);
        let woken = waiters.serve(now_ms, |want| {
            let reply = self.take_for(want, now_ms)?;
            Some(HandedTuple {
                reply,
                read: want.read,
            })
        });
        self.waiters = waiters;
        woken
    }

    fn wait(&mut self, op: WaitOp, now_ms: u64) -> SpaceReply {
        if let Some(handed) = self.waiters.collect(&op.who.claim) {
            return handed.reply;
        }
        if let Some(reply) = self.take_for(&op.want, now_ms) {
            self.waiters.forget(&op.who.claim);
            return reply;
        }
        self.waiters.register(&op.who, op.want, now_ms);
        SpaceReply::Waiting
    }

    fn unwait(&mut self, claim: &str) -> SpaceReply {
        self.waiters
            .cancel(claim)
            .map_or(SpaceReply::Done, |handed| handed.reply)
    }

    /// Puts the tuples of run-out leases, and of plain takes handed to
    /// waiters that never collected them, back (as the newest tuples).
    fn expire(&mut self, now_ms: u64) {
        for handed in self.waiters.lapsed(now_ms) {
            // A read's copy is just dropped; a leased tuple comes back
            // when its lease runs out.
            if let SpaceReply::Tuple(Some(tuple)) = handed.reply
                && !handed.read
            {
                self.store(tuple);
            }
        }
        self.expire_leases(now_ms);
    }

    fn expire_leases(&mut self, now_ms: u64) {
        let expired: Vec<u64> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires_ms <= now_ms)
            .map(|(&token, _)| token)
            .collect();
        for token in expired {
            #[cfg(feature = "planted-bugs")]
            if self.planted_bug == Some(crate::PlantedBug::LeaseOutlivesExpiry) {
                let lease = self
                    .leases
                    .get_mut(&token)
                    .expect("the token was listed from the lease table just above");
                lease.expires_ms = u64::MAX;
                let tuple = lease.tuple.clone();
                self.store(tuple);
                continue;
            }
            let lease = self
                .leases
                .remove(&token)
                .expect("the token was listed from the lease table just above");
            self.store(lease.tuple);
        }
    }

    /// Checks `tuples` against the bounds, with `freed` tuples about to go.
    fn admit(&self, tuples: &[Tuple], freed: usize) -> Result<(), TupleSpaceError> {
        for tuple in tuples {
            tuple.check_bounds(self.tuple_bytes_max)?;
        }
        if self.held() - freed + tuples.len() > self.tuples_max {
            return Err(TupleSpaceError::Full {
                space: self.name.clone(),
                tuples_max: self.tuples_max,
            });
        }
        Ok(())
    }

    fn write(&mut self, tuples: Vec<Tuple>, freed: usize) -> SpaceReply {
        match self.admit(&tuples, freed) {
            Ok(()) => {
                tuples.into_iter().for_each(|t| self.store(t));
                SpaceReply::Done
            }
            Err(e) => SpaceReply::Refused(e),
        }
    }

    /// Applies `op` at wall-clock time `now_ms` (run-out leases already
    /// returned).
    fn apply(&mut self, op: SpaceOp, now_ms: u64) -> SpaceReply {
        match op {
            SpaceOp::Write(tuples) => self.write(tuples, 0),
            SpaceOp::Take { pattern, lease_ms } => {
                let found = self.tuples.find(&pattern).map(|slot| self.remove(&slot));
                match (found, lease_ms) {
                    (None, None) => SpaceReply::Tuple(None),
                    (None, Some(_)) => SpaceReply::Leased(None),
                    (Some(tuple), None) => SpaceReply::Tuple(Some(tuple)),
                    (Some(tuple), Some(ms)) => {
                        let token = self.lease(tuple.clone(), ms, now_ms);
                        SpaceReply::Leased(Some((tuple, token)))
                    }
                }
            }
            SpaceOp::TakeAll(pattern) => {
                // Removing one slot leaves the others valid: a slot names its
                // bucket and sequence number, which no other removal changes.
                let found = self.tuples.find_all(&pattern);
                SpaceReply::Tuples(found.iter().map(|slot| self.remove(slot)).collect())
            }
            SpaceOp::Complete { token, write } => {
                if !self.leases.contains_key(&token) {
                    return SpaceReply::LeaseLost;
                }
                // The leased tuple makes room for what replaces it.
                let reply = self.write(write, 1);
                if reply == SpaceReply::Done {
                    self.leases.remove(&token);
                }
                reply
            }
            SpaceOp::Release { token } => match self.leases.remove(&token) {
                Some(lease) => {
                    self.store(lease.tuple);
                    SpaceReply::Done
                }
                None => SpaceReply::LeaseLost,
            },
            SpaceOp::Clear => {
                // Waiters stay: they wait for what is written next.
                self.tuples.clear();
                self.leases.clear();
                SpaceReply::Done
            }
            SpaceOp::Wait(op) => self.wait(op, now_ms),
            SpaceOp::Unwait { claim } => self.unwait(&claim),
            SpaceOp::Subscribe { who } => match self.events.subscribe(&who, now_ms) {
                Some(from) => SpaceReply::Subscribed(from),
                None => SpaceReply::SubscriptionsFull,
            },
            SpaceOp::Events(op) => match self.events.fetch(&op, now_ms) {
                Fetch::Found(fetched) => SpaceReply::Events(fetched),
                Fetch::Waiting => SpaceReply::Waiting,
                Fetch::Lapsed { from } => SpaceReply::Lapsed(from),
            },
            SpaceOp::Unsubscribe { id } => {
                self.events.unsubscribe(&id);
                SpaceReply::Done
            }
            // Reads change nothing: normally answered by `query`.
            read => ops::answer_read(self, &read),
        }
    }

    /// The answer to a read-only operation (`None`: it writes).
    fn answer(&self, op: &SpaceOp) -> Option<SpaceReply> {
        let tuples = &self.tuples;
        Some(match op {
            SpaceOp::Read(pattern) => {
                SpaceReply::Tuple(tuples.find(pattern).map(|slot| tuples.get(&slot).clone()))
            }
            SpaceOp::ReadAll(pattern) => SpaceReply::Tuples(
                tuples
                    .find_all(pattern)
                    .iter()
                    .map(|slot| tuples.get(slot).clone())
                    .collect(),
            ),
            SpaceOp::Count(pattern) => SpaceReply::Count(tuples.find_all(pattern).len()),
            SpaceOp::Waiters => SpaceReply::Count(self.waiters.waiting()),
            _ => return None,
        })
    }

    /// Whether `op` needs the time: it takes a lease, or a lease might run
    /// out before it looks.
    fn needs_time(&self, op: &SpaceOp) -> bool {
        !self.leases.is_empty()
            || !self.waiters.is_empty()
            || !self.events.is_idle()
            || matches!(
                op,
                SpaceOp::Take {
                    lease_ms: Some(_),
                    ..
                } | SpaceOp::Wait(_)
                    | SpaceOp::Subscribe { .. }
                    | SpaceOp::Events(_)
            )
    }
}

impl DurableActor for HostedSpace {
    type Msg = SpaceOp;
    type Reply = SpaceReply;

    async fn handle(
        &mut self,
        ctx: &mut DurableContext<'_>,
        op: SpaceOp,
    ) -> Result<SpaceReply, ActorError> {
        // The time is journaled (replay sees the same instant), and only
        // read when a lease is involved.
        self.stored = false;
        let now_ms = if self.needs_time(&op) {
            let now_ms = unix_millis(ctx.now().await?);
            self.expire(now_ms);
            self.events.expire(now_ms);
            now_ms
        } else {
            0
        };
        let reply = self.apply(op, now_ms);
        let mut woken = self.serve_waiters(now_ms);
        woken.extend(self.events.serve(now_ms));
        HostWaker::wake_from(ctx, woken);
        Ok(reply)
    }

    fn query(&self, env: &Env, op: &SpaceOp) -> Option<SpaceReply> {
        if (!self.leases.is_empty() || !self.waiters.is_empty())
            && self.any_expired(unix_millis(env.wall_clock()))
        {
            return None; // returning the tuples is a change: journaled
        }
        ops::query(self, env, op)
    }
}

impl Ops for HostedSpace {
    type Op = SpaceOp;
    type Reply = SpaceReply;

    fn read(&self, op: &SpaceOp) -> Option<SpaceReply> {
        self.answer(op)
    }

    /// Operations that would find nothing to change.
    fn unchanged(&self, _env: &Env, op: &SpaceOp) -> Option<SpaceReply> {
        match op {
            SpaceOp::Take { pattern, lease_ms } if self.tuples.find(pattern).is_none() => {
                Some(match lease_ms {
                    None => SpaceReply::Tuple(None),
                    Some(_) => SpaceReply::Leased(None),
                })
            }
            SpaceOp::TakeAll(pattern) if self.tuples.find(pattern).is_none() => {
                Some(SpaceReply::Tuples(Vec::new()))
            }
            SpaceOp::Complete { token, .. } | SpaceOp::Release { token }
                if !self.leases.contains_key(token) =>
            {
                Some(SpaceReply::LeaseLost)
            }
            SpaceOp::Unwait { claim } if !self.waiters.knows(claim) => Some(SpaceReply::Done),
            SpaceOp::Unsubscribe { id } if !self.events.is_subscribed(id) => Some(SpaceReply::Done),
            _ => None,
        }
    }
}

/// A shared space's operations, replies and state, for
/// [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(super) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    use super::encoded_sample as sample;
    use super::{Field, Kind, Value};
    use crate::durability::{Request, RequestKind};
    fn ops() -> Vec<SpaceOp> {
        let pattern = Pattern::new(vec![
            Field::Exact(Value::from("task")),
            Field::Any,
            Field::Typed(Kind::Float),
            Field::Any,
            Field::Any,
            Field::Nested(Pattern::new(vec![Field::Any])),
        ]);
        vec![
            SpaceOp::Write(vec![sample()]),
            SpaceOp::Take {
                pattern: pattern.clone(),
                lease_ms: Some(30_000),
            },
            SpaceOp::Complete {
                token: 4,
                write: vec![sample()],
            },
            SpaceOp::Count(pattern.clone()),
            SpaceOp::Wait(WaitOp {
                who: Claim {
                    claim: "0123456789abcdef0123456789abcdef:7".into(),
                    node: "n2".into(),
                    ttl_ms: 3_000,
                },
                want: SpaceWant {
                    pattern,
                    lease_ms: Some(30_000),
                    read: false,
                },
            }),
            SpaceOp::Unwait {
                claim: "0123456789abcdef0123456789abcdef:7".into(),
            },
            SpaceOp::Events(EventsOp {
                who: Claim {
                    claim: "0123456789abcdef0123456789abcdef:8".into(),
                    node: "n2".into(),
                    ttl_ms: 3_000,
                },
                after: 41,
                pattern: Pattern::new(vec![Field::Any]),
                actions: vec![Action::Write, Action::Take],
            }),
        ]
    }
    fn replies() -> Vec<SpaceReply> {
        vec![
            SpaceReply::Leased(Some((sample(), 4))),
            SpaceReply::Refused(TupleSpaceError::Full {
                space: "jobs".into(),
                tuples_max: 10,
            }),
            SpaceReply::Count(3),
            SpaceReply::Waiting,
            SpaceReply::Events(Fetched {
                last: 44,
                lagged: 1,
                events: vec![(Action::Take, sample())],
            }),
        ]
    }
    v.visit("tuplespace::Request<SpaceOp>", || {
        ops()
            .into_iter()
            .enumerate()
            .map(|(i, msg)| Request {
                kind: [
                    RequestKind::Command,
                    RequestKind::RetriedCommand,
                    RequestKind::Query,
                ][i % 3],
                ..Request::new(format!("op-{i}"), msg)
            })
            .collect()
    });
    v.visit("tuplespace::SpaceOp", ops);
    v.visit("tuplespace::Result<SpaceReply>", || {
        vec![Ok(SpaceReply::Count(3)), Err("journal fenced".to_string())]
    });
    v.visit("tuplespace::SpaceReply", replies);
    v.visit("tuplespace::HostedSpace", || {
        // Two tuples, one of them leased.
        let mut space = HostedSpace::new("jobs", &TupleSpaceConfig::default());
        space.apply(SpaceOp::Write(vec![sample(), sample()]), 1_000);
        space.apply(
            SpaceOp::Take {
                pattern: Pattern::new(vec![Field::Any; 6]),
                lease_ms: Some(5_000),
            },
            1_000,
        );
        // A waiter, and a tuple handed to another.
        for claim in ["w1", "w2"] {
            space.apply(
                SpaceOp::Wait(WaitOp {
                    who: Claim {
                        claim: claim.into(),
                        node: "n2".into(),
                        ttl_ms: 3_000,
                    },
                    want: SpaceWant {
                        pattern: Pattern::new(vec![Field::Any]),
                        lease_ms: None,
                        read: false,
                    },
                }),
                1_000,
            );
        }
        space.apply(
            SpaceOp::Write(vec![Tuple::new(vec![Value::from("x")])]),
            1_000,
        );
        space.serve_waiters(1_000);
        vec![space]
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple;
    use crate::tuplespace::{Field, Kind};

    fn space(max: usize) -> HostedSpace {
        HostedSpace::new(
            "t",
            &TupleSpaceConfig {
                tuples_max: max,
                tuple_bytes_max: 64,
            },
        )
    }

    fn tasks() -> Pattern {
        Pattern(vec![Field::Exact("task".into()), Field::Typed(Kind::Int)])
    }

    #[test]
    fn takes_are_oldest_first_and_leases_return_when_they_run_out() {
        let mut s = space(10);
        s.apply(
            SpaceOp::Write(vec![tuple!("task", 1), tuple!("task", 2)]),
            0,
        );
        let taken = s.apply(
            SpaceOp::Take {
                pattern: tasks(),
                lease_ms: Some(100),
            },
            1_000,
        );
        assert_eq!(taken, SpaceReply::Leased(Some((tuple!("task", 1), 1))));
        assert_eq!(s.read(&SpaceOp::Count(tasks())), Some(SpaceReply::Count(1)));
        s.expire(1_099);
        assert_eq!(s.leases.len(), 1, "not run out yet");
        s.expire(1_100);
        assert!(s.leases.is_empty());
        // Back, as the newest tuple.
        let all = s.read(&SpaceOp::ReadAll(tasks())).unwrap();
        assert_eq!(
            all,
            SpaceReply::Tuples(vec![tuple!("task", 2), tuple!("task", 1)])
        );
        let late = s.apply(
            SpaceOp::Complete {
                token: 1,
                write: vec![tuple!("done", 1)],
            },
            1_200,
        );
        assert_eq!(
            late,
            SpaceReply::LeaseLost,
            "a run-out lease cannot complete"
        );
    }

    #[test]
    fn completing_swaps_the_leased_tuple_for_its_results_within_the_bound() {
        let mut s = space(2);
        s.apply(
            SpaceOp::Write(vec![tuple!("task", 1), tuple!("task", 2)]),
            0,
        );
        assert!(matches!(
            s.apply(SpaceOp::Write(vec![tuple!("x")]), 0),
            SpaceReply::Refused(TupleSpaceError::Full { .. })
        ));
        let SpaceReply::Leased(Some((_, token))) = s.apply(
            SpaceOp::Take {
                pattern: tasks(),
                lease_ms: Some(10),
            },
            0,
        ) else {
            panic!("a task was there");
        };
        let done = SpaceOp::Complete {
            token,
            write: vec![tuple!("done", 1)],
        };
        assert_eq!(s.apply(done, 5), SpaceReply::Done);
        assert_eq!(s.held(), 2);
        assert_eq!(
            s.apply(SpaceOp::Release { token }, 6),
            SpaceReply::LeaseLost
        );
    }

    fn wait_op(claim: &str, read: bool, lease_ms: Option<u64>) -> SpaceOp {
        SpaceOp::Wait(WaitOp {
            who: Claim {
                claim: claim.into(),
                node: format!("node-of-{claim}"),
                ttl_ms: 3_000,
            },
            want: SpaceWant {
                pattern: tasks(),
                lease_ms,
                read,
            },
        })
    }

    /// Applies `op` and serves the waiters, as the handler does.
    fn handle(s: &mut HostedSpace, op: SpaceOp, now_ms: u64) -> (SpaceReply, Vec<Wake>) {
        s.stored = false;
        s.expire(now_ms);
        let reply = s.apply(op, now_ms);
        (reply, s.serve_waiters(now_ms))
    }

    #[test]
    fn a_write_hands_its_tuples_to_the_oldest_matching_waiters() {
        let mut s = space(10);
        for (claim, read) in [("r", true), ("t1", false), ("t2", false)] {
            assert_eq!(
                handle(&mut s, wait_op(claim, read, None), 0).0,
                SpaceReply::Waiting
            );
        }
        let (reply, woken) = handle(&mut s, SpaceOp::Write(vec![tuple!("task", 1)]), 10);
        assert_eq!(reply, SpaceReply::Done);
        // The read got a copy, the oldest take the tuple; t2 waits on.
        let names: Vec<&str> = woken.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(names, ["r", "t1"]);
        assert_eq!(woken[0].0, "node-of-r");
        assert_eq!(s.read(&SpaceOp::Count(tasks())), Some(SpaceReply::Count(0)));
        assert_eq!(s.read(&SpaceOp::Waiters), Some(SpaceReply::Count(1)));
        // Each collects what it was handed, once.
        let t1 = SpaceReply::Tuple(Some(tuple!("task", 1)));
        assert_eq!(handle(&mut s, wait_op("t1", false, None), 20).0, t1);
        assert_eq!(handle(&mut s, wait_op("r", true, None), 20).0, t1);
        assert_eq!(
            handle(&mut s, wait_op("t1", false, None), 30).0,
            SpaceReply::Waiting,
            "collected once; asking again is a new wait"
        );
        // A leased wait gets a lease that counts from the hand-over.
        let (_, woken) = handle(&mut s, SpaceOp::Unwait { claim: "t1".into() }, 30);
        assert!(woken.is_empty());
        assert_eq!(
            handle(&mut s, SpaceOp::Unwait { claim: "t2".into() }, 30).0,
            SpaceReply::Done
        );
        handle(&mut s, wait_op("l", false, Some(500)), 40);
        handle(&mut s, SpaceOp::Write(vec![tuple!("task", 2)]), 100);
        assert_eq!(
            handle(&mut s, wait_op("l", false, Some(500)), 120).0,
            SpaceReply::Leased(Some((tuple!("task", 2), 1)))
        );
        assert_eq!(s.leases[&1].expires_ms, 600);
    }

    #[test]
    fn lapsed_waiters_take_nothing_and_uncollected_tuples_come_back() {
        let mut s = space(10);
        handle(&mut s, wait_op("gone", false, None), 0);
        handle(&mut s, wait_op("late", false, None), 2_000);
        // "gone" lapsed at 3,000: the write at 3,500 goes to "late".
        let (_, woken) = handle(&mut s, SpaceOp::Write(vec![tuple!("task", 1)]), 3_500);
        assert_eq!(
            woken,
            vec![("node-of-late".to_string(), "late".to_string())]
        );
        // "late" never collects: the tuple is back at 6,500 and goes to
        // the next waiter.
        handle(&mut s, wait_op("next", false, None), 6_000);
        let (_, woken) = handle(&mut s, SpaceOp::Count(tasks()), 6_500);
        assert_eq!(
            woken,
            vec![("node-of-next".to_string(), "next".to_string())]
        );
        assert_eq!(
            handle(&mut s, wait_op("late", false, None), 6_600).0,
            SpaceReply::Waiting,
            "the lapsed claim's tuple went to another"
        );
        assert_eq!(
            handle(
                &mut s,
                SpaceOp::Unwait {
                    claim: "next".into()
                },
                6_700
            )
            .0,
            SpaceReply::Tuple(Some(tuple!("task", 1))),
            "giving up hands over what was handed"
        );
        // A read's uncollected copy is dropped, not put back twice.
        handle(&mut s, wait_op("reader", true, None), 7_000);
        handle(&mut s, SpaceOp::Write(vec![tuple!("task", 2)]), 7_000);
        handle(
            &mut s,
            SpaceOp::Unwait {
                claim: "late".into(),
            },
            20_000,
        );
        assert_eq!(s.read(&SpaceOp::Count(tasks())), Some(SpaceReply::Count(1)));
    }

    #[test]
    fn a_refused_write_writes_nothing() {
        let mut s = space(10);
        let big = tuple!("x".repeat(100));
        let reply = s.apply(SpaceOp::Write(vec![tuple!("a"), big]), 0);
        assert!(matches!(
            reply,
            SpaceReply::Refused(TupleSpaceError::TupleTooLarge { .. })
        ));
        assert_eq!(s.held(), 0);
    }
}
