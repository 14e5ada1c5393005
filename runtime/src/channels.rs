//! Channels: queues (each message to one consumer, acknowledged, and
//! redelivered if not acknowledged in time) and topics (each message to
//! every subscriber). Both are bounded: a full queue or a subscriber with a
//! full buffer makes senders wait (backpressure); `try_` forms fail instead.
//!
//! [`ChannelService`] is the fast option: in memory, per node, lost with
//! it. [`DurableQueues`] are queues shared by every node and kept in a
//! journal, with acknowledgements, redelivery, delivery counts and dead
//! letters (see `durable_queue.rs`); [`DurableTopics`] are topics whose
//! subscribers on every node read a journaled log, live or through
//! durable subscriptions that resume where they acknowledged (see
//! `durable_topic.rs`).

mod durable_queue;
mod durable_topic;
mod hosted_queue;
mod hosted_topic;

pub use durable_queue::{Delivery, DurableQueue, DurableQueues, DurableQueuesConfig, QueueError};
pub use durable_topic::{
    DurableSubscription, DurableTopic, DurableTopics, DurableTopicsConfig, TopicError,
    TopicMessage, TopicSubscriber,
};
pub use hosted_queue::QueueStats;

/// The durable queues' encoded types, for [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    hosted_queue::encoded_types(v);
    hosted_topic::encoded_types(v);
}

use crate::env::Env;
use crate::seams::{Clock, Instant};
use futures::Stream;
use plexspaces_storage::sync::LockExt;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Bounds of the channels of a [`ChannelService`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelConfig {
    /// Most messages a queue holds (ready and unacknowledged together).
    pub queue_capacity: usize,
    /// How long a received message may go unacknowledged before it is
    /// delivered again.
    pub ack_timeout: Duration,
    /// Most messages waiting for one topic subscriber.
    pub subscriber_capacity: usize,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            queue_capacity: 10_000,
            ack_timeout: Duration::from_secs(30),
            subscriber_capacity: 1024,
        }
    }
}

/// A channel operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelError {
    /// The queue is full (`try_send_to_queue` only).
    QueueFull(String),
    /// A subscriber's buffer is full (`try_publish_to_topic` only).
    SubscriberFull(String),
    /// No message with that id awaits acknowledgement (already acknowledged,
    /// or redelivered after its timeout).
    UnknownDelivery(u64),
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::QueueFull(q) => write!(f, "queue {q:?} is full"),
            ChannelError::SubscriberFull(t) => write!(f, "a subscriber of topic {t:?} is full"),
            ChannelError::UnknownDelivery(id) => {
                write!(f, "no delivery {id} awaits acknowledgement")
            }
        }
    }
}

impl std::error::Error for ChannelError {}

/// A message received from a queue; acknowledge it with
/// [`ChannelService::ack`] or it comes back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueDelivery {
    /// Identifies this delivery for `ack`.
    pub id: u64,
    /// The message.
    pub payload: Vec<u8>,
    /// How many times it was delivered before (0 the first time).
    pub redeliveries: u32,
}

struct Queued {
    id: u64,
    payload: Vec<u8>,
    redeliveries: u32,
}

#[derive(Default)]
struct Queue {
    ready: VecDeque<Queued>,
    unacked: BTreeMap<u64, (Queued, Instant)>,
    /// The unacknowledged deliveries by redelivery deadline, so finding the
    /// expired ones does not scan every outstanding delivery.
    deadlines: std::collections::BTreeSet<(Instant, u64)>,
    consumers: Vec<Waker>,
    senders: Vec<Waker>,
}

#[derive(Default)]
struct Subscriber {
    buffer: VecDeque<Vec<u8>>,
    reader: Option<Waker>,
}

#[derive(Default)]
struct Topic {
    subscribers: BTreeMap<u64, Subscriber>,
    publishers: Vec<Waker>,
}

#[derive(Default)]
struct State {
    queues: BTreeMap<String, Queue>,
    topics: BTreeMap<String, Topic>,
    next_id: u64,
}

/// A node's queues and topics. Cheap to clone; clones share them.
#[derive(Clone)]
pub struct ChannelService {
    env: Env,
    config: ChannelConfig,
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for ChannelService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The queue named `name`, made if new (without allocating its name on
/// every call).
fn queue_mut<'a>(queues: &'a mut BTreeMap<String, Queue>, name: &str) -> &'a mut Queue {
    if !queues.contains_key(name) {
        queues.insert(name.to_string(), Queue::default());
    }
    queues
        .get_mut(name)
        .expect("the queue was inserted above, under the same borrow")
}

fn wake_all(wakers: &mut Vec<Waker>) -> Vec<Waker> {
    std::mem::take(wakers)
}

impl ChannelService {
    /// Channels on the node of `env`, bounded by `config`.
    pub fn new(env: Env, config: ChannelConfig) -> Self {
        ChannelService {
            env,
            config,
            state: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.locked()
    }

    /// Puts expired unacknowledged messages of `queue` back at its front.
    fn redeliver_expired(queue: &mut Queue, now: Instant) {
        let mut expired = Vec::new();
        while let Some(&(at, id)) = queue.deadlines.first()
            && at <= now
        {
            queue.deadlines.pop_first();
            expired.push(id);
        }
        // Oldest message first at the front of the queue.
        expired.sort_unstable();
        for id in expired.into_iter().rev() {
            let (mut message, _) = queue
                .unacked
                .remove(&id)
                .expect("the id was listed from the unacknowledged table just above");
            message.redeliveries += 1;
            queue.ready.push_front(message);
        }
    }

    fn try_send(&self, queue_name: &str, payload: Vec<u8>) -> Result<u64, Vec<u8>> {
        let mut state = self.state();
        let id = state.next_id;
        let queue = queue_mut(&mut state.queues, queue_name);
        if queue.ready.len() + queue.unacked.len() >= self.config.queue_capacity {
            return Err(payload);
        }
        queue.ready.push_back(Queued {
            id,
            payload,
            redeliveries: 0,
        });
        let wake = wake_all(&mut queue.consumers);
        state.next_id += 1;
        drop(state);
        wake.into_iter().for_each(Waker::wake);
        Ok(id)
    }

    /// Sends to a queue if it has room; fails with `QueueFull` otherwise.
    pub fn try_send_to_queue(&self, queue: &str, payload: Vec<u8>) -> Result<u64, ChannelError> {
        self.try_send(queue, payload)
            .map_err(|_| ChannelError::QueueFull(queue.to_string()))
    }

    /// Sends to a queue, waiting for room; returns the message id.
    pub async fn send_to_queue(&self, queue: &str, payload: Vec<u8>) -> u64 {
        let mut slot = Some(payload);
        std::future::poll_fn(|cx| {
            match self.try_send(
                queue,
                slot.take()
                    .expect("the message is taken only by the poll that completes"),
            ) {
                Ok(id) => Poll::Ready(id),
                Err(payload) => {
                    slot = Some(payload);
                    let mut state = self.state();
                    queue_mut(&mut state.queues, queue)
                        .senders
                        .push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    fn try_receive(&self, queue_name: &str, cx: Option<&mut Context<'_>>) -> Option<QueueDelivery> {
        let now = self.env.now();
        let mut state = self.state();
        let queue = queue_mut(&mut state.queues, queue_name);
        Self::redeliver_expired(queue, now);
        match queue.ready.pop_front() {
            Some(message) => {
                let delivery = QueueDelivery {
                    id: message.id,
                    payload: message.payload.clone(),
                    redeliveries: message.redeliveries,
                };
                let deadline = now + self.config.ack_timeout;
                queue.deadlines.insert((deadline, message.id));
                queue.unacked.insert(message.id, (message, deadline));
                Some(delivery)
            }
            None => {
                if let Some(cx) = cx {
                    queue.consumers.push(cx.waker().clone());
                }
                None
            }
        }
    }

    /// Receives the next message of a queue (load-balanced: each message
    /// goes to one receiver), waiting up to `timeout` (forever if `None`).
    /// Unacknowledged deliveries come back after the ack timeout; a waiting
    /// receiver sees them when it next looks.
    pub async fn receive_from_queue(
        &self,
        queue: &str,
        timeout: Option<Duration>,
    ) -> Option<QueueDelivery> {
        // A message ready now needs no timer.
        if let Some(delivery) = self.try_receive(queue, None) {
            return Some(delivery);
        }
        // Re-check at least every ack timeout, so redeliveries are noticed
        // by a receiver that is already waiting.
        let recheck = self.config.ack_timeout;
        let wait = async {
            loop {
                let next = std::future::poll_fn(|cx| match self.try_receive(queue, Some(cx)) {
                    Some(delivery) => Poll::Ready(Some(delivery)),
                    None => Poll::Pending,
                });
                if let Ok(Some(delivery)) = self.env.timeout(recheck, next).await {
                    return delivery;
                }
            }
        };
        match timeout {
            Some(limit) => self.env.timeout(limit, wait).await.ok(),
            None => Some(wait.await),
        }
    }

    /// Acknowledges a delivery: the message is done and frees its place.
    pub fn ack(&self, queue: &str, id: u64) -> Result<(), ChannelError> {
        let mut state = self.state();
        let Some(q) = state.queues.get_mut(queue) else {
            return Err(ChannelError::UnknownDelivery(id));
        };
        let Some((_, deadline)) = q.unacked.remove(&id) else {
            return Err(ChannelError::UnknownDelivery(id));
        };
        q.deadlines.remove(&(deadline, id));
        let wake = wake_all(&mut q.senders);
        drop(state);
        wake.into_iter().for_each(Waker::wake);
        Ok(())
    }

    /// Messages waiting in a queue (not counting unacknowledged ones).
    pub fn queue_len(&self, queue: &str) -> usize {
        self.state().queues.get(queue).map_or(0, |q| q.ready.len())
    }

    fn try_publish(
        &self,
        topic: &str,
        payload: &[u8],
        cx: Option<&mut Context<'_>>,
    ) -> Option<usize> {
        let mut state = self.state();
        let t = state.topics.entry(topic.to_string()).or_default();
        if t.subscribers
            .values()
            .any(|s| s.buffer.len() >= self.config.subscriber_capacity)
        {
            if let Some(cx) = cx {
                t.publishers.push(cx.waker().clone());
            }
            return None;
        }
        let mut wake = Vec::new();
        for subscriber in t.subscribers.values_mut() {
            subscriber.buffer.push_back(payload.to_vec());
            wake.extend(subscriber.reader.take());
        }
        let reached = t.subscribers.len();
        drop(state);
        wake.into_iter().for_each(Waker::wake);
        Some(reached)
    }

    /// Publishes to every current subscriber of a topic, waiting while one
    /// of them has a full buffer; returns how many it reached.
    pub async fn publish_to_topic(&self, topic: &str, payload: Vec<u8>) -> usize {
        std::future::poll_fn(|cx| match self.try_publish(topic, &payload, Some(cx)) {
            Some(reached) => Poll::Ready(reached),
            None => Poll::Pending,
        })
        .await
    }

    /// Publishes if every subscriber has room; fails otherwise.
    pub fn try_publish_to_topic(
        &self,
        topic: &str,
        payload: Vec<u8>,
    ) -> Result<usize, ChannelError> {
        self.try_publish(topic, &payload, None)
            .ok_or_else(|| ChannelError::SubscriberFull(topic.to_string()))
    }

    /// Subscribes to a topic: a stream of every message published from now
    /// on. Dropping it unsubscribes.
    pub fn subscribe_to_topic(&self, topic: &str) -> TopicSubscription {
        let mut state = self.state();
        let id = state.next_id;
        state.next_id += 1;
        state
            .topics
            .entry(topic.to_string())
            .or_default()
            .subscribers
            .insert(id, Subscriber::default());
        TopicSubscription {
            service: self.clone(),
            topic: topic.to_string(),
            id,
        }
    }
}

/// A topic subscription: a `Stream` of payloads.
pub struct TopicSubscription {
    service: ChannelService,
    topic: String,
    id: u64,
}

impl Stream for TopicSubscription {
    type Item = Vec<u8>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        let mut state = self.service.state();
        let topic = state
            .topics
            .get_mut(&self.topic)
            .expect("a topic lives as long as a subscription to it");
        let subscriber = topic
            .subscribers
            .get_mut(&self.id)
            .expect("a subscriber stays in its topic until it is dropped");
        match subscriber.buffer.pop_front() {
            Some(payload) => {
                let wake = wake_all(&mut topic.publishers);
                drop(state);
                wake.into_iter().for_each(Waker::wake);
                Poll::Ready(Some(payload))
            }
            None => {
                subscriber.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for TopicSubscription {
    fn drop(&mut self) {
        let mut state = self.service.state();
        if let Some(topic) = state.topics.get_mut(&self.topic) {
            topic.subscribers.remove(&self.id);
            let wake = wake_all(&mut topic.publishers);
            drop(state);
            wake.into_iter().for_each(Waker::wake);
        }
    }
}

impl crate::actor::ActorSystem {
    /// The node's queues and topics (in memory, per node), made with the
    /// default configuration on first use.
    pub fn channels(&self) -> ChannelService {
        let env = self.env().clone();
        ChannelService::clone(&self.service(|| ChannelService::new(env, Default::default())))
    }
}

impl<A: crate::actor::Actor> crate::actor::Context<A> {
    /// This node's queues and topics ([`ActorSystem::channels`](crate::actor::ActorSystem::channels)).
    pub fn channels(&self) -> ChannelService {
        self.system().channels()
    }
}
