//! The state of a shared tuple space and its operations: a durable actor,
//! so it is journaled, checkpointed and replayed like any other, and hosted
//! as a virtual actor on whichever node placement picks.
//!
//! Every operation is non-blocking here; a blocked `take` is the client
//! asking again (see `shared.rs`). Operations that find nothing to change
//! are answered as queries, so an empty poll costs no journal write.

use super::index::TupleIndex;
use super::space::{TupleSpaceConfig, TupleSpaceError};
use super::value::{Pattern, Tuple};
use crate::actor::ActorError;
use crate::durability::ops::{self, Ops};
use crate::durability::{DurableActor, DurableContext};
use crate::env::Env;
use crate::seams::Clock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

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
    /// Not checkpointed: a planted bug lasts until the first checkpoint
    /// (1,000 operations by default), which covers the simulator's runs.
    #[cfg(feature = "planted-bugs")]
    #[serde(skip)]
    pub(crate) planted_bug: Option<crate::PlantedBug>,
}

fn unix_ms(at: SystemTime) -> u64 {
    let ms = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX)
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
            #[cfg(feature = "planted-bugs")]
            planted_bug: None,
        }
    }

    fn held(&self) -> usize {
        self.tuples.len() + self.leases.len()
    }

    fn store(&mut self, tuple: Tuple) {
        self.tuples.insert(tuple);
    }

    fn any_expired(&self, now_ms: u64) -> bool {
        self.leases.values().any(|l| l.expires_ms <= now_ms)
    }

    /// Puts the tuples of run-out leases back (as the newest tuples).
    fn expire(&mut self, now_ms: u64) {
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
                let found = self
                    .tuples
                    .find(&pattern)
                    .map(|slot| self.tuples.remove(&slot));
                match (found, lease_ms) {
                    (None, None) => SpaceReply::Tuple(None),
                    (None, Some(_)) => SpaceReply::Leased(None),
                    (Some(tuple), None) => SpaceReply::Tuple(Some(tuple)),
                    (Some(tuple), Some(ms)) => {
                        let token = self.next_token;
                        self.next_token += 1;
                        let expires_ms = now_ms.saturating_add(ms);
                        self.leases.insert(
                            token,
                            Lease {
                                tuple: tuple.clone(),
                                expires_ms,
                            },
                        );
                        SpaceReply::Leased(Some((tuple, token)))
                    }
                }
            }
            SpaceOp::TakeAll(pattern) => {
                // Removing one slot leaves the others valid: a slot names its
                // bucket and sequence number, which no other removal changes.
                let found = self.tuples.find_all(&pattern);
                SpaceReply::Tuples(found.iter().map(|slot| self.tuples.remove(slot)).collect())
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
                self.tuples.clear();
                self.leases.clear();
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
            _ => return None,
        })
    }

    /// Whether `op` needs the time: it takes a lease, or a lease might run
    /// out before it looks.
    fn needs_time(&self, op: &SpaceOp) -> bool {
        !self.leases.is_empty()
            || matches!(
                op,
                SpaceOp::Take {
                    lease_ms: Some(_),
                    ..
                }
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
        let now_ms = if self.needs_time(&op) {
            let now_ms = unix_ms(ctx.now().await?);
            self.expire(now_ms);
            now_ms
        } else {
            0
        };
        Ok(self.apply(op, now_ms))
    }

    fn query(&self, env: &Env, op: &SpaceOp) -> Option<SpaceReply> {
        if !self.leases.is_empty() && self.any_expired(unix_ms(env.wall_clock())) {
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
            _ => None,
        }
    }
}

/// A lease's length in whole milliseconds (at least 1).
pub(crate) fn lease_ms(lease: Duration) -> u64 {
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1)
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
            SpaceOp::Count(pattern),
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
