//! The events of a shared space for its subscribers: each write and take
//! numbered, kept (the newest [`EVENTS_KEPT`]) only while some
//! subscription is live, and read by subscribers on any node after the
//! number they saw, woken when a new event comes.
//!
//! Part of the space's journaled state, so numbers survive a move of the
//! space. A subscription lapses unless its reader fetches within its
//! `ttl_ms`; with none left, nothing is recorded.

use super::space::Action;
use super::value::{Pattern, Tuple};
use crate::wake::{Claim, WaitList, Wake};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Most events kept for subscribers; one that falls further behind is
/// told how many it missed.
pub(crate) const EVENTS_KEPT: usize = 1_000;
/// Most live subscriptions of one space.
pub(crate) const SUBSCRIPTIONS_MAX: usize = 1_000;
/// Most events one fetch returns.
const FETCH_MAX: usize = 256;

/// A subscriber's fetch (see `SpaceOp::Events`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct EventsOp {
    pub(crate) who: Claim,
    /// Events after this number.
    pub(crate) after: u64,
    pub(crate) pattern: Pattern,
    pub(crate) actions: Vec<Action>,
}

/// What a fetch found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Fetched {
    /// The number of the last event looked at (the next fetch starts
    /// after it), matching or not.
    pub(crate) last: u64,
    /// Events after `after` no longer kept.
    pub(crate) lagged: u64,
    pub(crate) events: Vec<(Action, Tuple)>,
}

/// A space's subscriptions and recent events.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct SpaceEvents {
    /// Live subscriptions: their lapse time (host wall-clock ms).
    subscriptions: BTreeMap<String, u64>,
    /// The number of the newest event (0: none yet).
    last: u64,
    kept: VecDeque<(u64, Action, Tuple)>,
    /// Subscribers waiting for an event after a number.
    watchers: WaitList<u64, ()>,
}

/// The outcome of a fetch.
pub(crate) enum Fetch {
    Found(Fetched),
    /// Nothing new: the subscriber is registered for a wake.
    Waiting,
    /// The subscription had lapsed; it is made again from the newest
    /// event (whatever came between is unknown to it).
    Lapsed {
        from: u64,
    },
}

impl SpaceEvents {
    /// Whether nothing needs the time (no subscription, no watcher).
    pub(crate) fn is_idle(&self) -> bool {
        self.subscriptions.is_empty() && self.watchers.is_empty()
    }

    /// Records an event, if anyone subscribes.
    pub(crate) fn record(&mut self, action: Action, tuple: &Tuple) {
        if self.subscriptions.is_empty() {
            return;
        }
        self.last += 1;
        self.kept.push_back((self.last, action, tuple.clone()));
        if self.kept.len() > EVENTS_KEPT {
            self.kept.pop_front();
        }
    }

    /// Drops lapsed subscriptions (and, with none left, the events).
    pub(crate) fn expire(&mut self, now_ms: u64) {
        self.subscriptions.retain(|_, expires| *expires > now_ms);
        drop(self.watchers.lapsed(now_ms));
        if self.subscriptions.is_empty() {
            self.kept.clear();
        }
    }

    /// Starts subscription `who` after the newest event; `None` if the
    /// space has its most subscriptions.
    pub(crate) fn subscribe(&mut self, who: &Claim, now_ms: u64) -> Option<u64> {
        if !self.subscriptions.contains_key(&who.claim)
            && self.subscriptions.len() >= SUBSCRIPTIONS_MAX
        {
            return None;
        }
        self.subscriptions
            .insert(who.claim.clone(), now_ms.saturating_add(who.ttl_ms));
        Some(self.last)
    }

    pub(crate) fn is_subscribed(&self, id: &str) -> bool {
        self.subscriptions.contains_key(id)
    }

    pub(crate) fn unsubscribe(&mut self, id: &str) {
        self.subscriptions.remove(id);
        self.watchers.cancel(id);
        if self.subscriptions.is_empty() {
            self.kept.clear();
        }
    }

    /// The events after `op.after` that match, renewing the subscription;
    /// or a registration for a wake if there are none.
    pub(crate) fn fetch(&mut self, op: &EventsOp, now_ms: u64) -> Fetch {
        let _ = self.watchers.collect(&op.who.claim);
        let expires = now_ms.saturating_add(op.who.ttl_ms);
        match self.subscriptions.get_mut(&op.who.claim) {
            Some(lapse) => *lapse = expires,
            None => {
                return match self.subscribe(&op.who, now_ms) {
                    Some(from) => Fetch::Lapsed { from },
                    // Full: told it lapsed, from where it asked.
                    None => Fetch::Lapsed { from: op.after },
                };
            }
        }
        if self.last <= op.after {
            self.watchers.register(&op.who, op.after, now_ms);
            return Fetch::Waiting;
        }
        self.watchers.forget(&op.who.claim);
        let first = self.kept.front().map_or(self.last + 1, |(seq, _, _)| *seq);
        let lagged = first.saturating_sub(op.after.saturating_add(1));
        let mut last = op.after.max(first.saturating_sub(1));
        let mut events = Vec::new();
        for (seq, action, tuple) in self.kept.iter().filter(|(seq, _, _)| *seq > op.after) {
            if events.len() >= FETCH_MAX {
                break;
            }
            last = *seq;
            if op.actions.contains(action) && op.pattern.matches(tuple) {
                events.push((*action, tuple.clone()));
            }
        }
        Fetch::Found(Fetched {
            last,
            lagged,
            events,
        })
    }

    /// Wakes the watchers an event came for.
    pub(crate) fn serve(&mut self, now_ms: u64) -> Vec<Wake> {
        if self.watchers.waiting() == 0 {
            return Vec::new();
        }
        let last = self.last;
        self.watchers
            .serve(now_ms, |&after| (last > after).then_some(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple;
    use crate::tuplespace::{Field, Kind};

    fn who(id: &str) -> Claim {
        Claim {
            claim: id.into(),
            node: "n1".into(),
            ttl_ms: 100,
        }
    }

    fn tasks() -> Pattern {
        Pattern::new(vec![Field::Exact("task".into()), Field::Typed(Kind::Int)])
    }

    fn op(id: &str, after: u64, actions: &[Action]) -> EventsOp {
        EventsOp {
            who: who(id),
            after,
            pattern: tasks(),
            actions: actions.to_vec(),
        }
    }

    #[test]
    fn subscribers_read_matching_events_in_order_and_lapse_when_silent() {
        let mut e = SpaceEvents::default();
        e.record(Action::Write, &tuple!("task", 0));
        assert_eq!(e.last, 0, "nothing recorded without a subscription");
        assert_eq!(e.subscribe(&who("s"), 0), Some(0));
        assert!(matches!(
            e.fetch(&op("s", 0, &[Action::Write]), 10),
            Fetch::Waiting
        ));
        e.record(Action::Write, &tuple!("task", 1));
        e.record(Action::Write, &tuple!("other"));
        e.record(Action::Take, &tuple!("task", 1));
        assert_eq!(e.serve(20), vec![("n1".to_string(), "s".to_string())]);
        let Fetch::Found(found) = e.fetch(&op("s", 0, &[Action::Write]), 30) else {
            panic!("events were recorded");
        };
        assert_eq!(found.last, 3);
        assert_eq!(found.events, vec![(Action::Write, tuple!("task", 1))]);
        // Silent past its ttl: lapsed, and made again from the newest.
        e.expire(200);
        assert!(e.is_idle());
        assert!(matches!(
            e.fetch(&op("s", 3, &[Action::Take]), 200),
            Fetch::Lapsed { from: 3 }
        ));
    }

    #[test]
    fn a_subscriber_behind_the_kept_events_is_told_how_many_it_missed() {
        let mut e = SpaceEvents::default();
        e.subscribe(&who("s"), 0);
        for n in 0..(EVENTS_KEPT as i64 + 5) {
            e.record(Action::Write, &tuple!("task", n));
        }
        let Fetch::Found(found) = e.fetch(&op("s", 0, &[Action::Write]), 1) else {
            panic!("events were recorded");
        };
        assert_eq!(found.lagged, 5);
        assert_eq!(found.events.len(), FETCH_MAX);
        assert_eq!(found.events[0].1, tuple!("task", 5));
        assert_eq!(found.last, 5 + FETCH_MAX as u64);
    }
}
