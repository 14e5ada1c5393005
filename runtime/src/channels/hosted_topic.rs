//! The state of a durable topic and its operations: a durable actor hosted
//! as a virtual actor (see `durable_topic.rs` for the callers' side).
//!
//! A topic is a log of messages numbered from 1. Live subscribers read
//! from where they joined and hold nothing: the log keeps the newest
//! `retention` messages for them, and one that falls further behind is
//! told how many it missed. Durable subscriptions are named cursors kept
//! in the topic's state: the log keeps every message a durable
//! subscription has not acknowledged, up to `capacity`, past which
//! publishing waits (backpressure) rather than lose one.

use crate::actor::ActorError;
use crate::durability::ops::{self, Ops};
use crate::durability::{DurableActor, DurableContext};
use crate::env::Env;
use crate::wake::{Claim, HostWaker, WaitList, Wake};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Most bytes of payload one fetch returns (at least one message).
const FETCH_BYTES_MAX: usize = 1 << 20;

/// Where a fetch starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum From {
    /// After sequence number `.0` (a live subscriber).
    After(u64),
    /// After the durable subscription's acknowledged cursor, or after
    /// `after` if that is later (what this client already got).
    Subscription { name: String, after: Option<u64> },
}

/// A fetch (see [`TopicOp::Fetch`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct FetchOp {
    pub(crate) who: Claim,
    pub(crate) from: From,
    pub(crate) max: u32,
}

/// One operation on a topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum TopicOp {
    /// Appends a message (refused, unapplied, when the log is full).
    Publish(Vec<u8>),
    /// Messages after a position, or else registers the fetcher until
    /// one is published.
    Fetch(FetchOp),
    /// The fetcher `claim` gives up.
    Unfetch { claim: String },
    /// Creates durable subscription `name` at the head (if new); answers
    /// its cursor.
    Subscribe { name: String },
    /// Acknowledges everything up to `seq` for subscription `name`.
    Ack { name: String, seq: u64 },
    /// Removes durable subscription `name`.
    Unsubscribe { name: String },
    /// The newest sequence number (0 before the first message).
    Head,
}

/// The answer to a [`TopicOp`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum TopicReply {
    Published(u64),
    /// `lagged` messages after the position were dropped before this
    /// fetch; then `messages`, oldest first.
    Messages {
        lagged: u64,
        messages: Vec<(u64, Vec<u8>)>,
    },
    Waiting,
    Cursor(u64),
    Done,
    Full {
        capacity: u64,
    },
    TooLarge {
        bytes: u64,
        max: u64,
    },
    NoSuchSubscription,
    TooManySubscriptions {
        max: u64,
    },
    Head(u64),
}

/// The bounds of a topic (fixed when it is first used).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TopicPolicy {
    pub(crate) retention: u64,
    pub(crate) capacity: u64,
    pub(crate) payload_bytes_max: u64,
    pub(crate) subscriptions_max: u64,
}

/// A topic's log and durable subscriptions.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HostedTopic {
    policy: TopicPolicy,
    /// The sequence number of the newest message (0: none yet).
    head: u64,
    /// Kept messages, oldest first, numbered consecutively up to `head`.
    log: VecDeque<(u64, Vec<u8>)>,
    /// Durable subscriptions: the last sequence number each acknowledged.
    subscriptions: BTreeMap<String, u64>,
    /// Fetchers waiting for a message after the position they want.
    fetchers: WaitList<u64, ()>,
    /// Whether a message was published since the fetchers were last
    /// served (not state: reset by every operation).
    #[serde(skip)]
    published: bool,
}

impl HostedTopic {
    pub(crate) fn new(policy: TopicPolicy) -> Self {
        HostedTopic {
            policy,
            head: 0,
            log: VecDeque::new(),
            subscriptions: BTreeMap::new(),
            fetchers: WaitList::default(),
            published: false,
        }
    }

    /// The oldest sequence number still kept (`head + 1` if none).
    fn first_kept(&self) -> u64 {
        self.log.front().map_or(self.head + 1, |(seq, _)| *seq)
    }

    /// The lowest acknowledged cursor of the durable subscriptions.
    fn slowest(&self) -> Option<u64> {
        self.subscriptions.values().copied().min()
    }

    /// Whether the oldest kept message may go: every durable subscription
    /// acknowledged it.
    fn oldest_released(&self) -> bool {
        match (self.log.front(), self.slowest()) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some((seq, _)), Some(slowest)) => *seq <= slowest,
        }
    }

    /// Drops the messages past `retention` that no durable subscription
    /// still needs.
    fn trim(&mut self) {
        while self.log.len() as u64 > self.policy.retention && self.oldest_released() {
            self.log.pop_front();
        }
    }

    fn refusal(&self, payload: &[u8]) -> Option<TopicReply> {
        let bytes = payload.len() as u64;
        if bytes > self.policy.payload_bytes_max {
            return Some(TopicReply::TooLarge {
                bytes,
                max: self.policy.payload_bytes_max,
            });
        }
        (self.log.len() as u64 >= self.policy.capacity && !self.oldest_released()).then_some(
            TopicReply::Full {
                capacity: self.policy.capacity,
            },
        )
    }

    /// Where a fetch from `from` starts, or `None` for an unknown
    /// subscription.
    fn start(&self, from: &From) -> Option<u64> {
        match from {
            From::After(after) => Some(*after),
            From::Subscription { name, after } => {
                let cursor = *self.subscriptions.get(name)?;
                Some(after.map_or(cursor, |after| after.max(cursor)))
            }
        }
    }

    fn messages_after(&self, after: u64, max: u32) -> TopicReply {
        let first = self.first_kept();
        let lagged = first.saturating_sub(after.saturating_add(1));
        let skip = after.saturating_add(1).saturating_sub(first);
        let mut bytes = 0;
        let mut messages = Vec::new();
        for (seq, payload) in self
            .log
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        {
            if messages.len() as u32 >= max
                || (bytes > 0 && bytes + payload.len() > FETCH_BYTES_MAX)
            {
                break;
            }
            bytes += payload.len();
            messages.push((*seq, payload.clone()));
        }
        TopicReply::Messages { lagged, messages }
    }

    /// Marks the fetchers a new message is for; returns whom to wake.
    pub(crate) fn serve_fetchers(&mut self, now_ms: u64) -> Vec<Wake> {
        if !std::mem::take(&mut self.published) || self.fetchers.waiting() == 0 {
            return Vec::new();
        }
        let head = self.head;
        self.fetchers
            .serve(now_ms, |&after| (head > after).then_some(()))
    }

    pub(crate) fn apply(&mut self, op: TopicOp, now_ms: u64) -> TopicReply {
        match op {
            TopicOp::Publish(payload) => {
                if let Some(refused) = self.refusal(&payload) {
                    return refused;
                }
                if self.log.len() as u64 >= self.policy.capacity {
                    self.log.pop_front(); // released: checked by `refusal`
                }
                self.head += 1;
                self.log.push_back((self.head, payload));
                self.trim();
                self.published = true;
                TopicReply::Published(self.head)
            }
            TopicOp::Fetch(op) => {
                // A hand-over is only a signal: the fetch reads the log.
                let _ = self.fetchers.collect(&op.who.claim);
                let Some(after) = self.start(&op.from) else {
                    self.fetchers.forget(&op.who.claim);
                    return TopicReply::NoSuchSubscription;
                };
                let reply = self.messages_after(after, op.max.max(1));
                if matches!(&reply, TopicReply::Messages { lagged: 0, messages } if messages.is_empty())
                {
                    self.fetchers.register(&op.who, after, now_ms);
                    return TopicReply::Waiting;
                }
                self.fetchers.forget(&op.who.claim);
                reply
            }
            TopicOp::Unfetch { claim } => {
                self.fetchers.cancel(&claim);
                TopicReply::Done
            }
            TopicOp::Subscribe { name } => {
                if let Some(cursor) = self.subscriptions.get(&name) {
                    return TopicReply::Cursor(*cursor);
                }
                if self.subscriptions.len() as u64 >= self.policy.subscriptions_max {
                    return TopicReply::TooManySubscriptions {
                        max: self.policy.subscriptions_max,
                    };
                }
                self.subscriptions.insert(name, self.head);
                TopicReply::Cursor(self.head)
            }
            TopicOp::Ack { name, seq } => match self.subscriptions.get_mut(&name) {
                Some(cursor) => {
                    *cursor = (*cursor).max(seq.min(self.head));
                    self.trim();
                    TopicReply::Done
                }
                None => TopicReply::NoSuchSubscription,
            },
            TopicOp::Unsubscribe { name } => {
                self.subscriptions.remove(&name);
                self.trim();
                TopicReply::Done
            }
            read => ops::answer_read(self, &read),
        }
    }
}

impl DurableActor for HostedTopic {
    type Msg = TopicOp;
    type Reply = TopicReply;

    async fn handle(
        &mut self,
        ctx: &mut DurableContext<'_>,
        op: TopicOp,
    ) -> Result<TopicReply, ActorError> {
        self.published = false;
        // Registrations lapse on the host's journaled wall clock.
        let now_ms = if !self.fetchers.is_empty() || matches!(op, TopicOp::Fetch(_)) {
            crate::seams::unix_millis(ctx.now().await?)
        } else {
            0
        };
        drop(self.fetchers.lapsed(now_ms));
        let reply = self.apply(op, now_ms);
        let woken = self.serve_fetchers(now_ms);
        HostWaker::wake_from(ctx, woken);
        Ok(reply)
    }

    fn query(&self, env: &Env, op: &TopicOp) -> Option<TopicReply> {
        ops::query(self, env, op)
    }
}

impl Ops for HostedTopic {
    type Op = TopicOp;
    type Reply = TopicReply;

    fn read(&self, op: &TopicOp) -> Option<TopicReply> {
        match op {
            TopicOp::Head => Some(TopicReply::Head(self.head)),
            _ => None,
        }
    }

    fn unchanged(&self, _env: &Env, op: &TopicOp) -> Option<TopicReply> {
        match op {
            TopicOp::Publish(payload) => self.refusal(payload),
            TopicOp::Subscribe { name } => {
                self.subscriptions.get(name).map(|c| TopicReply::Cursor(*c))
            }
            TopicOp::Ack { name, .. } if !self.subscriptions.contains_key(name) => {
                Some(TopicReply::NoSuchSubscription)
            }
            TopicOp::Unfetch { claim } if !self.fetchers.knows(claim) => Some(TopicReply::Done),
            _ => None,
        }
    }
}

/// A topic's operations, replies and state, for [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    fn fetch(from: From) -> TopicOp {
        TopicOp::Fetch(FetchOp {
            who: Claim {
                claim: "0123456789abcdef0123456789abcdef:9".into(),
                node: "n3".into(),
                ttl_ms: 3_000,
            },
            from,
            max: 64,
        })
    }
    v.visit("channels::TopicOp", || {
        vec![
            TopicOp::Publish(b"price 42".to_vec()),
            fetch(From::After(17)),
            fetch(From::Subscription {
                name: "billing".into(),
                after: Some(3),
            }),
            TopicOp::Ack {
                name: "billing".into(),
                seq: 9,
            },
        ]
    });
    v.visit("channels::TopicReply", || {
        vec![
            TopicReply::Messages {
                lagged: 2,
                messages: vec![(5, b"a".to_vec()), (6, b"b".to_vec())],
            },
            TopicReply::Published(7),
            TopicReply::Full { capacity: 10 },
        ]
    });
    v.visit("channels::HostedTopic", || {
        let mut topic = HostedTopic::new(TopicPolicy {
            retention: 2,
            capacity: 10,
            payload_bytes_max: 64,
            subscriptions_max: 4,
        });
        topic.apply(
            TopicOp::Subscribe {
                name: "billing".into(),
            },
            0,
        );
        for n in 0..4u8 {
            topic.apply(TopicOp::Publish(vec![n]), 0);
        }
        topic.apply(fetch(From::After(4)), 0);
        vec![topic]
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(retention: u64, capacity: u64) -> HostedTopic {
        HostedTopic::new(TopicPolicy {
            retention,
            capacity,
            payload_bytes_max: 8,
            subscriptions_max: 2,
        })
    }

    fn fetch(claim: &str, from: From) -> TopicOp {
        TopicOp::Fetch(FetchOp {
            who: Claim {
                claim: claim.into(),
                node: format!("node-of-{claim}"),
                ttl_ms: 1_000,
            },
            from,
            max: 10,
        })
    }

    fn handle(t: &mut HostedTopic, op: TopicOp) -> (TopicReply, Vec<Wake>) {
        t.published = false;
        let reply = t.apply(op, 0);
        (reply, t.serve_fetchers(0))
    }

    fn seqs(reply: TopicReply) -> (u64, Vec<u64>) {
        match reply {
            TopicReply::Messages { lagged, messages } => {
                (lagged, messages.into_iter().map(|(s, _)| s).collect())
            }
            other => panic!("not messages: {other:?}"),
        }
    }

    #[test]
    fn live_fetchers_wait_are_woken_and_are_told_what_they_missed() {
        let mut t = topic(3, 10);
        assert_eq!(
            handle(&mut t, fetch("live", From::After(0))).0,
            TopicReply::Waiting
        );
        let (reply, woken) = handle(&mut t, TopicOp::Publish(b"1".to_vec()));
        assert_eq!(reply, TopicReply::Published(1));
        assert_eq!(
            woken,
            vec![("node-of-live".to_string(), "live".to_string())]
        );
        assert_eq!(
            seqs(handle(&mut t, fetch("live", From::After(0))).0),
            (0, vec![1])
        );
        for n in 2..=6u8 {
            handle(&mut t, TopicOp::Publish(vec![n]));
        }
        // Retention 3 and no durable subscription: 4, 5, 6 kept.
        assert_eq!(
            seqs(handle(&mut t, fetch("live", From::After(1))).0),
            (2, vec![4, 5, 6])
        );
        assert_eq!(
            seqs(handle(&mut t, fetch("late", From::After(5))).0),
            (0, vec![6])
        );
    }

    #[test]
    fn a_durable_subscription_holds_what_it_has_not_acknowledged() {
        let mut t = topic(1, 3);
        assert_eq!(
            handle(&mut t, TopicOp::Subscribe { name: "s".into() }).0,
            TopicReply::Cursor(0)
        );
        for n in 1..=3u8 {
            assert_eq!(
                handle(&mut t, TopicOp::Publish(vec![n])).0,
                TopicReply::Published(u64::from(n))
            );
        }
        assert_eq!(
            handle(&mut t, TopicOp::Publish(vec![4])).0,
            TopicReply::Full { capacity: 3 },
            "the subscription still needs all three"
        );
        let from = |after| From::Subscription {
            name: "s".into(),
            after,
        };
        assert_eq!(
            seqs(handle(&mut t, fetch("c", from(None))).0),
            (0, vec![1, 2, 3])
        );
        // Resumed without acknowledging: the same messages again.
        assert_eq!(
            seqs(handle(&mut t, fetch("c2", from(None))).0),
            (0, vec![1, 2, 3])
        );
        assert_eq!(
            seqs(handle(&mut t, fetch("c", from(Some(2)))).0),
            (0, vec![3])
        );
        handle(
            &mut t,
            TopicOp::Ack {
                name: "s".into(),
                seq: 2,
            },
        );
        assert_eq!(
            seqs(handle(&mut t, fetch("c3", from(None))).0),
            (0, vec![3])
        );
        assert_eq!(
            handle(&mut t, TopicOp::Publish(vec![4])).0,
            TopicReply::Published(4)
        );
        assert_eq!(
            handle(&mut t, TopicOp::Subscribe { name: "s".into() }).0,
            TopicReply::Cursor(2),
            "subscribing again resumes"
        );
        handle(&mut t, TopicOp::Subscribe { name: "t".into() });
        assert!(matches!(
            handle(&mut t, TopicOp::Subscribe { name: "u".into() }).0,
            TopicReply::TooManySubscriptions { max: 2 }
        ));
        assert_eq!(
            handle(
                &mut t,
                fetch(
                    "x",
                    From::Subscription {
                        name: "nope".into(),
                        after: None
                    }
                )
            )
            .0,
            TopicReply::NoSuchSubscription
        );
    }
}
