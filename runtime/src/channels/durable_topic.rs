//! Durable topics shared by every node of a cluster.
//!
//! Each named topic is a virtual actor (kind [`DurableTopics::KIND`])
//! holding a numbered log of messages in a journal, so a published message
//! survives the crash of any node. Subscribers on every node read it:
//!
//! - a **live** subscriber ([`DurableTopic::subscribe`]) reads every
//!   message published after it subscribed, in order. It holds nothing:
//!   the topic keeps the newest `retention` messages for such readers,
//!   and one that falls further behind gets [`TopicError::Lagged`] with
//!   the count it missed, then goes on (as a tokio broadcast receiver);
//! - a **durable** subscription ([`DurableTopic::subscribe_durable`]) is
//!   a named cursor kept by the topic: it resumes after its last
//!   acknowledged message, from any node and after any crash, and the
//!   topic keeps every message it has not acknowledged, up to `capacity`
//!   messages, past which `publish` waits for room (backpressure). Its
//!   delivery is at least once: what was read and not acknowledged is
//!   read again by the next reader of the subscription.
//!
//! A reader with nothing to read is woken by the publish (see
//! `crate::wake`); a lost wake costs at most `wait_refresh`.

use super::hosted_topic::{FetchOp, From, HostedTopic, TopicOp, TopicPolicy, TopicReply};
use crate::actor::{ActorSystem, AskError};
use crate::durability::JournalBackend;
use crate::retry::Backoff;
use crate::seams::Clock;
use crate::virtual_actor::service_kind::ServiceKind;
use crate::virtual_actor::{VirtualConfig, VirtualError, VirtualRef};
use crate::wake;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Messages one fetch asks for.
const FETCH_MAX: u32 = 256;

/// How this node serves and reaches durable topics. Use the same journal
/// backend and bounds on every node.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DurableTopicsConfig {
    /// The hosting virtual actors (journal, activation, call retries).
    pub hosting: VirtualConfig,
    /// Newest messages kept for live subscribers.
    pub retention: u64,
    /// Most messages kept for durable subscriptions (at least
    /// `retention`).
    pub capacity: u64,
    /// Largest payload, in bytes.
    pub payload_bytes_max: u64,
    /// Most durable subscriptions of one topic.
    pub subscriptions_max: u64,
    /// The longest one call waits for its answer, retries included.
    pub call_timeout: Duration,
    /// How long `publish` waits for room.
    pub publish_timeout: Duration,
    /// How often a waiting reader renews its registration.
    pub wait_refresh: Duration,
}

impl DurableTopicsConfig {
    /// Defaults, journaling to `journal`: 1,000 messages kept for live
    /// subscribers, 10,000 for durable ones, payloads of at most 64 KiB,
    /// 100 durable subscriptions, calls of 10 s, publishes waiting 10 s
    /// for room, readers renewed every second.
    pub fn new(journal: JournalBackend) -> Self {
        DurableTopicsConfig {
            hosting: VirtualConfig::new(DurableTopics::KIND, journal),
            retention: 1_000,
            capacity: 10_000,
            payload_bytes_max: 64 << 10,
            subscriptions_max: 100,
            call_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(10),
            wait_refresh: Duration::from_secs(1),
        }
    }
}

/// Why a durable topic operation failed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TopicError {
    /// Durable subscriptions hold `capacity` unacknowledged messages and
    /// stayed so for the publish's whole wait (nothing published).
    Full {
        /// The topic's capacity.
        capacity: u64,
    },
    /// The payload is larger than the topic takes (nothing published).
    TooLarge {
        /// Its size.
        bytes: u64,
        /// The bound.
        max: u64,
    },
    /// This live subscriber fell behind the topic's retention: this many
    /// messages were dropped before it read them. The next read goes on
    /// with the oldest kept.
    Lagged(u64),
    /// The durable subscription does not exist (it was removed).
    NoSuchSubscription,
    /// A subscription name is empty, too long or holds a control
    /// character.
    InvalidName(String),
    /// The topic has its most durable subscriptions already.
    TooManySubscriptions {
        /// The bound.
        max: u64,
    },
    /// The topic did not answer within the call timeout.
    Call(AskError),
    /// The host answered with a reply this version does not expect.
    Protocol(String),
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::Full { capacity } => {
                write!(
                    f,
                    "durable subscriptions hold the topic's {capacity} messages"
                )
            }
            TopicError::TooLarge { bytes, max } => {
                write!(f, "a {bytes}-byte message is over the topic's {max} bytes")
            }
            TopicError::Lagged(n) => write!(f, "the subscriber missed {n} messages"),
            TopicError::NoSuchSubscription => write!(f, "no such durable subscription"),
            TopicError::InvalidName(why) => write!(f, "invalid subscription name: {why}"),
            TopicError::TooManySubscriptions { max } => {
                write!(f, "the topic has its {max} durable subscriptions")
            }
            TopicError::Call(e) => write!(f, "durable topic unreachable: {e}"),
            TopicError::Protocol(why) => write!(f, "durable topic: {why}"),
        }
    }
}

impl std::error::Error for TopicError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TopicError::Call(e) => Some(e),
            _ => None,
        }
    }
}

/// A message read from a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMessage {
    /// Its number in the topic (from 1, consecutive).
    pub seq: u64,
    /// The message.
    pub payload: Vec<u8>,
}

struct Shared {
    kind: ServiceKind<HostedTopic>,
    config: DurableTopicsConfig,
}

/// This node's door to the cluster's durable topics. Cheap to clone.
#[derive(Clone)]
pub struct DurableTopics {
    shared: Arc<Shared>,
}

impl fmt::Debug for DurableTopics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableTopics")
            .field("node", self.shared.kind.env.node())
            .finish_non_exhaustive()
    }
}

impl DurableTopics {
    /// The virtual actor kind hosting topics.
    pub const KIND: &'static str = "topic";

    /// Hosts and reaches durable topics on `system`'s node. In a cluster,
    /// start distribution first and register on every node.
    pub fn register(
        system: &ActorSystem,
        config: DurableTopicsConfig,
    ) -> Result<Self, VirtualError> {
        if config.retention == 0
            || config.capacity < config.retention
            || config.wait_refresh.is_zero()
        {
            return Err(VirtualError::InvalidConfig(
                "durable topics: retention and wait_refresh must be positive, capacity at least retention".into(),
            ));
        }
        let policy = TopicPolicy {
            retention: config.retention,
            capacity: config.capacity,
            payload_bytes_max: config.payload_bytes_max,
            subscriptions_max: config.subscriptions_max,
        };
        let kind = ServiceKind::register(
            system,
            config.hosting.clone(),
            config.call_timeout,
            (Duration::from_millis(1), Duration::from_millis(50)),
            move |_| HostedTopic::new(policy.clone()),
        )?;
        Ok(DurableTopics {
            shared: Arc::new(Shared { kind, config }),
        })
    }

    /// The topic `name` (created on first use).
    pub fn topic(&self, name: &str) -> Result<DurableTopic, VirtualError> {
        Ok(DurableTopic {
            target: self.shared.kind.actors.get(name)?,
            shared: self.shared.clone(),
        })
    }

    /// The node hosting topic `name`, as this node sees the cluster.
    pub fn host_of(&self, name: &str) -> Option<crate::env::NodeName> {
        self.shared.kind.actors.owner_of(name)
    }
}

/// One durable topic. Cheap to clone.
#[derive(Clone)]
pub struct DurableTopic {
    target: VirtualRef<HostedTopic>,
    shared: Arc<Shared>,
}

impl fmt::Debug for DurableTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DurableTopic({})", self.target.id())
    }
}

#[track_caller]
fn unexpected(reply: TopicReply) -> TopicError {
    TopicError::Protocol(crate::invariant::wrong_remote_reply(
        "a durable topic operation",
        &reply,
    ))
}

impl DurableTopic {
    /// The topic's name.
    pub fn name(&self) -> &str {
        self.target.id()
    }

    fn fresh_key(&self) -> String {
        self.shared.kind.fresh_key()
    }

    /// Calls `op` under `key` until its outcome is known (see
    /// [`ServiceKind::call_resolved`]); the topic's refusals as errors.
    async fn call(&self, key: String, op: TopicOp) -> Result<TopicReply, TopicError> {
        match self.shared.kind.call_resolved(&self.target, key, op).await {
            Ok(TopicReply::Full { capacity }) => Err(TopicError::Full { capacity }),
            Ok(TopicReply::TooLarge { bytes, max }) => Err(TopicError::TooLarge { bytes, max }),
            Ok(TopicReply::NoSuchSubscription) => Err(TopicError::NoSuchSubscription),
            Ok(TopicReply::TooManySubscriptions { max }) => {
                Err(TopicError::TooManySubscriptions { max })
            }
            Ok(reply) => Ok(reply),
            Err(e) => Err(TopicError::Call(e)),
        }
    }

    /// Publishes `payload` durably, once; returns its sequence number.
    /// Waits while durable subscriptions hold the topic full, up to the
    /// configured `publish_timeout` ([`TopicError::Full`] then).
    pub async fn publish(&self, payload: Vec<u8>) -> Result<u64, TopicError> {
        let env = &self.shared.kind.env;
        let deadline = env.now() + self.shared.config.publish_timeout;
        let key = self.fresh_key();
        let mut pauses = Backoff::new(Duration::from_millis(1), Duration::from_millis(100))
            .with_jitter(0.0)
            .pauses();
        loop {
            // A full topic refuses without applying (or remembering) it.
            match self
                .call(key.clone(), TopicOp::Publish(payload.clone()))
                .await
            {
                Ok(TopicReply::Published(seq)) => return Ok(seq),
                Ok(other) => return Err(unexpected(other)),
                Err(TopicError::Full { capacity }) => {
                    let left = deadline.saturating_duration_since(env.now());
                    if left.is_zero() {
                        return Err(TopicError::Full { capacity });
                    }
                    env.sleep(pauses.next(env).min(left)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The newest sequence number (0 before the first message).
    pub async fn head(&self) -> Result<u64, TopicError> {
        match self.call(self.fresh_key(), TopicOp::Head).await? {
            TopicReply::Head(head) => Ok(head),
            other => Err(unexpected(other)),
        }
    }

    /// A live subscriber: every message published from now on.
    pub async fn subscribe(&self) -> Result<TopicSubscriber, TopicError> {
        let after = self.head().await?;
        Ok(TopicSubscriber {
            reader: Reader::new(self.clone()),
            after,
        })
    }

    /// The durable subscription `name` (made at the current head if new):
    /// reads resume after its last acknowledged message.
    pub async fn subscribe_durable(&self, name: &str) -> Result<DurableSubscription, TopicError> {
        crate::names::check("subscription", name).map_err(TopicError::InvalidName)?;
        let op = TopicOp::Subscribe {
            name: name.to_string(),
        };
        match self.call(self.fresh_key(), op).await? {
            TopicReply::Cursor(_) => Ok(DurableSubscription {
                reader: Reader::new(self.clone()),
                name: name.to_string(),
                read_to: None,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// Removes durable subscription `name` (what only it held may go).
    pub async fn unsubscribe_durable(&self, name: &str) -> Result<(), TopicError> {
        let op = TopicOp::Unsubscribe {
            name: name.to_string(),
        };
        match self.call(self.fresh_key(), op).await? {
            TopicReply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

/// Fetches batches for one subscriber and hands them out one at a time.
struct Reader {
    topic: DurableTopic,
    buffered: VecDeque<TopicMessage>,
}

impl Reader {
    fn new(topic: DurableTopic) -> Self {
        Reader {
            topic,
            buffered: VecDeque::new(),
        }
    }

    /// The next message from `from`, waiting up to `timeout`; with the
    /// count dropped before it, if any.
    async fn next(
        &mut self,
        from: From,
        timeout: Duration,
    ) -> Result<Option<(u64, TopicMessage)>, TopicError> {
        if let Some(message) = self.buffered.pop_front() {
            return Ok(Some((0, message)));
        }
        let topic = &self.topic;
        let env = &topic.shared.kind.env;
        let refresh = topic.shared.config.wait_refresh;
        let (who, mut ticket) = topic.shared.kind.claim(refresh);
        let claim = who.claim.clone();
        let op = TopicOp::Fetch(FetchOp {
            who,
            from,
            max: FETCH_MAX,
        });
        let deadline = env.now() + timeout;
        let found = wake::wait_for(env, &mut ticket, refresh, Some(deadline), || async {
            match topic.call(topic.fresh_key(), op.clone()).await? {
                TopicReply::Waiting => Ok(None),
                TopicReply::Messages { lagged, messages } => Ok(Some((lagged, messages))),
                other => Err(unexpected(other)),
            }
        })
        .await?;
        let Some((lagged, messages)) = found else {
            // Nothing is handed over on a topic: just unregister.
            topic
                .call(topic.fresh_key(), TopicOp::Unfetch { claim })
                .await?;
            return Ok(None);
        };
        self.buffered.extend(
            messages
                .into_iter()
                .map(|(seq, payload)| TopicMessage { seq, payload }),
        );
        Ok(self.buffered.pop_front().map(|m| (lagged, m)))
    }
}

/// A live subscriber of a durable topic.
pub struct TopicSubscriber {
    reader: Reader,
    /// The last sequence number read (or skipped).
    after: u64,
}

impl fmt::Debug for TopicSubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicSubscriber")
            .field("topic", &self.reader.topic.name())
            .field("after", &self.after)
            .finish()
    }
}

impl TopicSubscriber {
    /// The next message, waiting up to `timeout` (`Ok(None)`); once after
    /// falling behind, [`TopicError::Lagged`] first.
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<TopicMessage>, TopicError> {
        let from = From::After(self.after);
        match self.reader.next(from, timeout).await? {
            None => Ok(None),
            Some((lagged, message)) => {
                self.after = message.seq;
                if lagged > 0 {
                    // Reported now; the message comes with the next call.
                    self.reader.buffered.push_front(message);
                    return Err(TopicError::Lagged(lagged));
                }
                Ok(Some(message))
            }
        }
    }
}

/// A durable subscription of a topic.
pub struct DurableSubscription {
    reader: Reader,
    name: String,
    /// The last sequence number this reader got.
    read_to: Option<u64>,
}

impl fmt::Debug for DurableSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableSubscription")
            .field("topic", &self.reader.topic.name())
            .field("name", &self.name)
            .finish()
    }
}

impl DurableSubscription {
    /// The subscription's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next message after the last one this reader got (after the
    /// subscription's acknowledged cursor for a new reader), waiting up
    /// to `timeout` (`Ok(None)`).
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<TopicMessage>, TopicError> {
        let from = From::Subscription {
            name: self.name.clone(),
            after: self.read_to,
        };
        let next = self.reader.next(from, timeout).await?;
        Ok(next.map(|(_, message)| {
            self.read_to = Some(message.seq);
            message
        }))
    }

    /// Acknowledges `message` and everything before it: a later reader of
    /// the subscription starts after it.
    pub async fn ack(&self, message: &TopicMessage) -> Result<(), TopicError> {
        let op = TopicOp::Ack {
            name: self.name.clone(),
            seq: message.seq,
        };
        let topic = &self.reader.topic;
        match topic.call(topic.fresh_key(), op).await? {
            TopicReply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}
