//! The state of a durable queue and its operations: a durable actor, so
//! it is journaled, checkpointed and replayed like any other, and hosted
//! as a virtual actor on whichever node placement picks (see
//! `durable_queue.rs` for the callers' side).
//!
//! A message is ready, in flight (delivered, its acknowledgement awaited
//! until its deadline), or dead (delivered `max_deliveries` times without
//! an acknowledgement). A delivery is named by the message id and its
//! delivery number, so an acknowledgement of a delivery that timed out
//! (and was delivered again) is refused: each delivery is acknowledged at
//! most once, and a message at most once.

use crate::actor::ActorError;
use crate::durability::ops::{self, Ops};
use crate::durability::{DurableActor, DurableContext};
use crate::env::Env;
use crate::seams::{Clock, unix_millis};
use crate::wake::{Claim, HostWaker, WaitList, Wake};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// One operation on a queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum QueueOp {
    /// Appends a message (refused, unapplied, when the queue is full).
    Send(Vec<u8>),
    /// Delivers the oldest ready message (or the one handed to the claim
    /// since), or else registers the claim as a receiver; the next send
    /// hands its message to the oldest receiver and wakes its node.
    Receive(ReceiveOp),
    /// The receiver `claim` gives up; a delivery already handed to it
    /// comes back in the reply.
    Unreceive { claim: String },
    /// Acknowledges delivery number `delivery` of message `id`.
    Ack { id: u64, delivery: u32 },
    /// Puts delivery `delivery` of message `id` back at the front now
    /// (it still counts as a delivery).
    Nack { id: u64, delivery: u32 },
    /// Counts.
    Stats,
    /// Copies of up to `max` dead letters, oldest first.
    DeadLetters { max: u32 },
    /// Moves up to `max` dead letters back to the queue, their delivery
    /// counts reset.
    Redrive { max: u32 },
}

/// A receive (see [`QueueOp::Receive`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReceiveOp {
    pub(crate) who: Claim,
    /// How long the delivery may go unacknowledged.
    pub(crate) ack_timeout_ms: u64,
}

/// One delivery of a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireDelivery {
    pub(crate) id: u64,
    /// 1 for the first delivery.
    pub(crate) delivery: u32,
    pub(crate) payload: Vec<u8>,
}

/// A queue's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Messages waiting for a receiver.
    pub ready: u64,
    /// Messages delivered and not yet acknowledged.
    pub in_flight: u64,
    /// Dead letters kept.
    pub dead: u64,
    /// Dead letters dropped because the dead-letter queue was full.
    pub dead_dropped: u64,
    /// Receivers waiting.
    pub receivers: u64,
}

/// The answer to a [`QueueOp`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum QueueReply {
    Sent,
    /// Ready and in-flight messages fill the queue.
    Full {
        capacity: u64,
    },
    /// The payload is larger than the queue takes.
    TooLarge {
        bytes: u64,
        max: u64,
    },
    Delivered(WireDelivery),
    /// Nothing ready: the receiver is registered.
    Waiting,
    Done,
    /// No such delivery awaits acknowledgement: acknowledged already, or
    /// its deadline passed (and the message was delivered again or died).
    UnknownDelivery,
    Stats(QueueStats),
    DeadLetters(Vec<WireDelivery>),
    /// How many dead letters went back.
    Redriven(u64),
}

/// The bounds and policy of a queue (fixed when it is first used).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QueuePolicy {
    pub(crate) capacity: u64,
    pub(crate) payload_bytes_max: u64,
    pub(crate) max_deliveries: u32,
    pub(crate) dead_letters_max: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Message {
    id: u64,
    payload: Vec<u8>,
    deliveries: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct InFlight {
    message: Message,
    /// Wall-clock milliseconds on the hosting node.
    expires_ms: u64,
}

/// A queue's contents.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HostedQueue {
    policy: QueuePolicy,
    next_id: u64,
    ready: VecDeque<Message>,
    in_flight: BTreeMap<u64, InFlight>,
    dead: VecDeque<Message>,
    dead_dropped: u64,
    /// Receivers waiting, and deliveries handed to them (by message id
    /// and number: the message itself is in flight meanwhile).
    receivers: WaitList<u64, (u64, u32)>,
    /// Whether a message became ready since the receivers were last
    /// served (not state: reset by every operation).
    #[serde(skip)]
    readied: bool,
}

impl HostedQueue {
    pub(crate) fn new(policy: QueuePolicy) -> Self {
        HostedQueue {
            policy,
            next_id: 1,
            ready: VecDeque::new(),
            in_flight: BTreeMap::new(),
            dead: VecDeque::new(),
            dead_dropped: 0,
            receivers: WaitList::default(),
            readied: false,
        }
    }

    fn held(&self) -> u64 {
        (self.ready.len() + self.in_flight.len()) as u64
    }

    fn refusal(&self, payload: &[u8]) -> Option<QueueReply> {
        let bytes = payload.len() as u64;
        if bytes > self.policy.payload_bytes_max {
            return Some(QueueReply::TooLarge {
                bytes,
                max: self.policy.payload_bytes_max,
            });
        }
        (self.held() >= self.policy.capacity).then_some(QueueReply::Full {
            capacity: self.policy.capacity,
        })
    }

    /// Back to the front of the queue, or to the dead letters once it was
    /// delivered `max_deliveries` times.
    fn give_back(&mut self, message: Message) {
        if let Some(message) = self.bury_if_spent(message) {
            self.ready.push_front(message);
            self.readied = true;
        }
    }

    /// Moves a message delivered `max_deliveries` times to the dead
    /// letters (dropping the oldest past their bound); gives any other
    /// back.
    fn bury_if_spent(&mut self, message: Message) -> Option<Message> {
        if message.deliveries < self.policy.max_deliveries {
            return Some(message);
        }
        self.dead.push_back(message);
        while self.dead.len() as u64 > self.policy.dead_letters_max {
            self.dead.pop_front();
            self.dead_dropped += 1;
        }
        None
    }

    /// Returns the messages whose acknowledgement deadline passed, oldest
    /// id nearest the front.
    fn expire(&mut self, now_ms: u64) {
        // Handed and never collected: the message is in flight, and comes
        // back when its deadline passes, like any unacknowledged one.
        drop(self.receivers.lapsed(now_ms));
        let expired: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.expires_ms <= now_ms)
            .map(|(&id, _)| id)
            .collect();
        let mut back = Vec::new();
        for id in expired {
            let flight = self
                .in_flight
                .remove(&id)
                .expect("the id was listed from the in-flight table just above");
            back.extend(self.bury_if_spent(flight.message));
        }
        for message in back.into_iter().rev() {
            self.ready.push_front(message);
            self.readied = true;
        }
    }

    fn any_expired(&self, now_ms: u64) -> bool {
        self.in_flight.values().any(|f| f.expires_ms <= now_ms) || self.receivers.any_lapsed(now_ms)
    }

    /// Delivers the oldest ready message, if any.
    fn deliver(&mut self, ack_timeout_ms: u64, now_ms: u64) -> Option<WireDelivery> {
        let mut message = self.ready.pop_front()?;
        message.deliveries = message.deliveries.saturating_add(1);
        let delivery = WireDelivery {
            id: message.id,
            delivery: message.deliveries,
            payload: message.payload.clone(),
        };
        let expires_ms = now_ms.saturating_add(ack_timeout_ms);
        self.in_flight.insert(
            message.id,
            InFlight {
                message,
                expires_ms,
            },
        );
        Some(delivery)
    }

    /// The in-flight delivery `id`/`delivery` collected by its receiver.
    fn handed(&self, (id, delivery): (u64, u32)) -> Option<WireDelivery> {
        let flight = self.in_flight.get(&id)?;
        (flight.message.deliveries == delivery).then(|| WireDelivery {
            id,
            delivery,
            payload: flight.message.payload.clone(),
        })
    }

    /// Hands ready messages to the oldest waiting receivers; returns whom
    /// to wake.
    pub(crate) fn serve_receivers(&mut self, now_ms: u64) -> Vec<Wake> {
        if !std::mem::take(&mut self.readied) || self.receivers.waiting() == 0 {
            return Vec::new();
        }
        let mut receivers = std::mem::take(&mut self.receivers);
        let woken = receivers.serve(now_ms, |&ack_timeout_ms| {
            self.deliver(ack_timeout_ms, now_ms)
                .map(|d| (d.id, d.delivery))
        });
        self.receivers = receivers;
        woken
    }

    fn matching_flight(&self, id: u64, delivery: u32) -> bool {
        self.in_flight
            .get(&id)
            .is_some_and(|f| f.message.deliveries == delivery)
    }

    fn stats(&self) -> QueueStats {
        QueueStats {
            ready: self.ready.len() as u64,
            in_flight: self.in_flight.len() as u64,
            dead: self.dead.len() as u64,
            dead_dropped: self.dead_dropped,
            receivers: self.receivers.waiting() as u64,
        }
    }

    /// Applies `op` at wall-clock time `now_ms` (deadlines already
    /// handled).
    pub(crate) fn apply(&mut self, op: QueueOp, now_ms: u64) -> QueueReply {
        match op {
            QueueOp::Send(payload) => {
                if let Some(refused) = self.refusal(&payload) {
                    return refused;
                }
                let id = self.next_id;
                self.next_id += 1;
                self.ready.push_back(Message {
                    id,
                    payload,
                    deliveries: 0,
                });
                self.readied = true;
                QueueReply::Sent
            }
            QueueOp::Receive(op) => {
                let handed = self.receivers.collect(&op.who.claim);
                if let Some(delivery) = handed.and_then(|h| self.handed(h)) {
                    return QueueReply::Delivered(delivery);
                }
                if let Some(delivery) = self.deliver(op.ack_timeout_ms, now_ms) {
                    self.receivers.forget(&op.who.claim);
                    return QueueReply::Delivered(delivery);
                }
                self.receivers.register(&op.who, op.ack_timeout_ms, now_ms);
                QueueReply::Waiting
            }
            QueueOp::Unreceive { claim } => match self.receivers.cancel(&claim) {
                Some(handed) => self
                    .handed(handed)
                    .map_or(QueueReply::Done, QueueReply::Delivered),
                None => QueueReply::Done,
            },
            QueueOp::Ack { id, delivery } => {
                if !self.matching_flight(id, delivery) {
                    return QueueReply::UnknownDelivery;
                }
                self.in_flight.remove(&id);
                QueueReply::Done
            }
            QueueOp::Nack { id, delivery } => {
                if !self.matching_flight(id, delivery) {
                    return QueueReply::UnknownDelivery;
                }
                let flight = self
                    .in_flight
                    .remove(&id)
                    .expect("matching_flight found it just above");
                self.give_back(flight.message);
                QueueReply::Done
            }
            QueueOp::Redrive { max } => {
                let mut moved = 0;
                while moved < u64::from(max)
                    && self.held() < self.policy.capacity
                    && let Some(mut message) = self.dead.pop_front()
                {
                    message.deliveries = 0;
                    self.ready.push_back(message);
                    self.readied = true;
                    moved += 1;
                }
                QueueReply::Redriven(moved)
            }
            read => ops::answer_read(self, &read),
        }
    }

    fn needs_time(&self, op: &QueueOp) -> bool {
        !self.in_flight.is_empty()
            || !self.receivers.is_empty()
            || matches!(op, QueueOp::Receive(_))
    }
}

impl DurableActor for HostedQueue {
    type Msg = QueueOp;
    type Reply = QueueReply;

    async fn handle(
        &mut self,
        ctx: &mut DurableContext<'_>,
        op: QueueOp,
    ) -> Result<QueueReply, ActorError> {
        self.readied = false;
        // The time is journaled (replay sees the same instant), and only
        // read when a deadline is involved.
        let now_ms = if self.needs_time(&op) {
            let now_ms = unix_millis(ctx.now().await?);
            self.expire(now_ms);
            now_ms
        } else {
            0
        };
        let reply = self.apply(op, now_ms);
        let woken = self.serve_receivers(now_ms);
        HostWaker::wake_from(ctx, woken);
        Ok(reply)
    }

    fn query(&self, env: &Env, op: &QueueOp) -> Option<QueueReply> {
        if !self.in_flight.is_empty() && self.any_expired(unix_millis(env.wall_clock())) {
            return None; // giving messages back is a change: journaled
        }
        ops::query(self, env, op)
    }
}

impl Ops for HostedQueue {
    type Op = QueueOp;
    type Reply = QueueReply;

    fn read(&self, op: &QueueOp) -> Option<QueueReply> {
        Some(match op {
            QueueOp::Stats => QueueReply::Stats(self.stats()),
            QueueOp::DeadLetters { max } => QueueReply::DeadLetters(
                self.dead
                    .iter()
                    .take(*max as usize)
                    .map(|m| WireDelivery {
                        id: m.id,
                        delivery: m.deliveries,
                        payload: m.payload.clone(),
                    })
                    .collect(),
            ),
            _ => return None,
        })
    }

    /// Operations that would find nothing to change: a refused send (so a
    /// retry under the same key is not answered `Full` from the dedupe
    /// table once there is room), an acknowledgement of nothing.
    fn unchanged(&self, _env: &Env, op: &QueueOp) -> Option<QueueReply> {
        match op {
            QueueOp::Send(payload) => self.refusal(payload),
            QueueOp::Ack { id, delivery } | QueueOp::Nack { id, delivery }
                if !self.matching_flight(*id, *delivery) =>
            {
                Some(QueueReply::UnknownDelivery)
            }
            QueueOp::Unreceive { claim } if !self.receivers.knows(claim) => Some(QueueReply::Done),
            QueueOp::Redrive { .. } if self.dead.is_empty() => Some(QueueReply::Redriven(0)),
            _ => None,
        }
    }
}

/// A queue's operations, replies and state, for [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    fn policy() -> QueuePolicy {
        QueuePolicy {
            capacity: 100,
            payload_bytes_max: 1024,
            max_deliveries: 3,
            dead_letters_max: 10,
        }
    }
    fn receive(claim: &str) -> QueueOp {
        QueueOp::Receive(ReceiveOp {
            who: Claim {
                claim: claim.into(),
                node: "n2".into(),
                ttl_ms: 3_000,
            },
            ack_timeout_ms: 30_000,
        })
    }
    v.visit("channels::QueueOp", || {
        vec![
            QueueOp::Send(b"order 17".to_vec()),
            receive("0123456789abcdef0123456789abcdef:3"),
            QueueOp::Ack {
                id: 17,
                delivery: 2,
            },
            QueueOp::Redrive { max: 10 },
        ]
    });
    v.visit("channels::QueueReply", || {
        vec![
            QueueReply::Delivered(WireDelivery {
                id: 17,
                delivery: 2,
                payload: b"order 17".to_vec(),
            }),
            QueueReply::Full { capacity: 100 },
            QueueReply::Stats(QueueStats {
                ready: 1,
                in_flight: 2,
                dead: 3,
                dead_dropped: 4,
                receivers: 5,
            }),
        ]
    });
    v.visit("channels::HostedQueue", || {
        let mut queue = HostedQueue::new(policy());
        queue.apply(QueueOp::Send(b"a".to_vec()), 0);
        queue.apply(QueueOp::Send(b"b".to_vec()), 0);
        queue.apply(receive("r1"), 10);
        queue.apply(receive("r2"), 10);
        queue.apply(receive("r3"), 10);
        queue.apply(QueueOp::Send(b"c".to_vec()), 20);
        queue.serve_receivers(20);
        vec![queue]
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(capacity: u64, max_deliveries: u32) -> HostedQueue {
        HostedQueue::new(QueuePolicy {
            capacity,
            payload_bytes_max: 16,
            max_deliveries,
            dead_letters_max: 2,
        })
    }

    fn receive(claim: &str, ack_timeout_ms: u64) -> QueueOp {
        QueueOp::Receive(ReceiveOp {
            who: Claim {
                claim: claim.into(),
                node: format!("node-of-{claim}"),
                ttl_ms: 1_000,
            },
            ack_timeout_ms,
        })
    }

    /// As the handler does: deadlines, the op, then the receivers.
    fn handle(q: &mut HostedQueue, op: QueueOp, now_ms: u64) -> (QueueReply, Vec<Wake>) {
        q.readied = false;
        q.expire(now_ms);
        let reply = q.apply(op, now_ms);
        (reply, q.serve_receivers(now_ms))
    }

    fn delivered(reply: QueueReply) -> WireDelivery {
        match reply {
            QueueReply::Delivered(d) => d,
            other => panic!("not a delivery: {other:?}"),
        }
    }

    #[test]
    fn a_message_comes_back_until_acknowledged_then_dies_after_max_deliveries() {
        let mut q = queue(10, 2);
        handle(&mut q, QueueOp::Send(b"m".to_vec()), 0);
        let first = delivered(handle(&mut q, receive("r", 100), 0).0);
        assert_eq!((first.id, first.delivery), (1, 1));
        assert_eq!(handle(&mut q, receive("s", 100), 50).0, QueueReply::Waiting);
        // The deadline passes: delivered again, to the waiting receiver.
        let (_, woken) = handle(&mut q, QueueOp::Stats, 100);
        assert_eq!(woken, vec![("node-of-s".to_string(), "s".to_string())]);
        let second = delivered(handle(&mut q, receive("s", 100), 110).0);
        assert_eq!((second.id, second.delivery), (1, 2));
        // The first delivery's acknowledgement is too late.
        assert_eq!(
            handle(&mut q, QueueOp::Ack { id: 1, delivery: 1 }, 120).0,
            QueueReply::UnknownDelivery
        );
        // Not acknowledged again: the second delivery was the last.
        handle(&mut q, QueueOp::Stats, 200);
        assert_eq!(
            q.stats(),
            QueueStats {
                dead: 1,
                ..QueueStats::default()
            }
        );
        assert_eq!(
            handle(&mut q, QueueOp::Ack { id: 1, delivery: 2 }, 210).0,
            QueueReply::UnknownDelivery,
            "a dead letter cannot be acknowledged"
        );
        // Redriven, it is delivered afresh.
        assert_eq!(
            handle(&mut q, QueueOp::Redrive { max: 5 }, 220).0,
            QueueReply::Redriven(1)
        );
        let again = delivered(handle(&mut q, receive("t", 100), 230).0);
        assert_eq!((again.id, again.delivery), (1, 1));
        assert_eq!(
            handle(&mut q, QueueOp::Ack { id: 1, delivery: 1 }, 240).0,
            QueueReply::Done
        );
        assert_eq!(
            handle(&mut q, QueueOp::Ack { id: 1, delivery: 1 }, 241).0,
            QueueReply::UnknownDelivery,
            "acknowledged once"
        );
        assert_eq!(q.stats(), QueueStats::default());
    }

    #[test]
    fn receivers_are_served_in_order_and_bounds_refuse_without_applying() {
        let mut q = queue(2, 5);
        for claim in ["a", "b"] {
            assert_eq!(
                handle(&mut q, receive(claim, 100), 0).0,
                QueueReply::Waiting
            );
        }
        let (_, woken) = handle(&mut q, QueueOp::Send(b"1".to_vec()), 10);
        assert_eq!(woken, vec![("node-of-a".to_string(), "a".to_string())]);
        assert_eq!(
            delivered(handle(&mut q, receive("a", 100), 11).0).payload,
            b"1"
        );
        handle(&mut q, QueueOp::Send(b"2".to_vec()), 12);
        assert_eq!(
            handle(&mut q, QueueOp::Send(b"3".to_vec()), 13).0,
            QueueReply::Full { capacity: 2 },
            "one in flight and one handed to b fill the queue"
        );
        assert_eq!(
            handle(&mut q, QueueOp::Send(vec![0; 17]), 13).0,
            QueueReply::TooLarge { bytes: 17, max: 16 }
        );
        // b gives up after it was handed "2": it gets it anyway.
        let (reply, _) = handle(&mut q, QueueOp::Unreceive { claim: "b".into() }, 14);
        assert_eq!(delivered(reply).payload, b"2");
        // A nack puts a message back at the front at once.
        handle(&mut q, QueueOp::Nack { id: 1, delivery: 1 }, 15);
        assert_eq!(delivered(handle(&mut q, receive("c", 100), 16).0).id, 1);
        // Dead letters are bounded: the oldest are dropped, and counted.
        let mut q = queue(10, 1);
        for n in 0..3u8 {
            handle(&mut q, QueueOp::Send(vec![n]), 0);
            handle(&mut q, receive("r", 10), 0);
        }
        handle(&mut q, QueueOp::Stats, 10);
        assert_eq!((q.stats().dead, q.stats().dead_dropped), (2, 1));
        let QueueReply::DeadLetters(dead) = q.read(&QueueOp::DeadLetters { max: 9 }).unwrap()
        else {
            panic!("a read");
        };
        assert_eq!(dead.iter().map(|d| d.id).collect::<Vec<_>>(), [2, 3]);
    }
}
