//! Durable queues shared by every node of a cluster.
//!
//! Each named queue is a virtual actor (kind [`DurableQueues::KIND`]):
//! one node hosts it at a time, and its messages are a durable actor's
//! state, journaled on the configured backend (the journal server,
//! PostgreSQL, or the embedded log on one node). So:
//!
//! - A send the queue acknowledged survives the crash of any node,
//!   including the host: the next call activates the queue elsewhere from
//!   its journal.
//! - A received message is in flight until it is acknowledged; if it is
//!   not acknowledged within the receive's `ack_timeout`, it is delivered
//!   again, with its delivery count one higher. After `max_deliveries`
//!   deliveries without an acknowledgement it becomes a dead letter
//!   ([`DurableQueue::dead_letters`], [`DurableQueue::redrive`]).
//! - Each delivery is acknowledged at most once: an acknowledgement names
//!   the delivery, and one that comes after its deadline is refused
//!   ([`QueueError::UnknownDelivery`]); the message may then be delivered
//!   again. Processing is so at least once, acknowledging at most once.
//! - Every call carries an idempotency key and is retried under it until
//!   its outcome is known, so a send whose reply was lost is not sent
//!   twice, and a receive whose reply was lost gets the same delivery.
//! - Bounded: ready and in-flight messages together at most `capacity`;
//!   `send` waits for room (backpressure) up to its timeout, `try_send`
//!   refuses at once; dead letters at most `dead_letters_max` (the oldest
//!   dropped, counted).
//! - A receiver with nothing to receive registers with the queue and is
//!   woken by the send that hands it a message (the shared spaces'
//!   mechanism, `crate::wake`): oldest receiver first, across nodes.
//!
//! The in-memory [`ChannelService`](super::ChannelService) queues stay the
//! fast option for one node, lost with it.

use super::hosted_queue::{
    HostedQueue, QueueOp, QueuePolicy, QueueReply, QueueStats, ReceiveOp, WireDelivery,
};
use crate::actor::{ActorSystem, AskError};
use crate::durability::JournalBackend;
use crate::retry::Backoff;
use crate::seams::{Clock, whole_millis};
use crate::virtual_actor::service_kind::ServiceKind;
use crate::virtual_actor::{VirtualConfig, VirtualError, VirtualRef};
use crate::wake;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How this node serves and reaches durable queues. Use the same journal
/// backend and bounds on every node.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DurableQueuesConfig {
    /// The hosting virtual actors (journal, activation, call retries).
    pub hosting: VirtualConfig,
    /// Most ready and in-flight messages in one queue.
    pub capacity: u64,
    /// Largest payload, in bytes.
    pub payload_bytes_max: u64,
    /// Deliveries without an acknowledgement before a message is a dead
    /// letter.
    pub max_deliveries: u32,
    /// Most dead letters kept per queue.
    pub dead_letters_max: u64,
    /// The longest one call waits for its answer, retries included.
    pub call_timeout: Duration,
    /// How long `send` waits for room in a full queue.
    pub send_timeout: Duration,
    /// How often a waiting receiver renews its registration (and so the
    /// longest a lost wake delays it).
    pub wait_refresh: Duration,
}

impl DurableQueuesConfig {
    /// Defaults, journaling to `journal`: 10,000 messages of at most
    /// 1 MiB, 5 deliveries, 10,000 dead letters, calls of 10 s, sends
    /// waiting 10 s for room, receivers renewed every second.
    pub fn new(journal: JournalBackend) -> Self {
        DurableQueuesConfig {
            hosting: VirtualConfig::new(DurableQueues::KIND, journal),
            capacity: 10_000,
            payload_bytes_max: 1 << 20,
            max_deliveries: 5,
            dead_letters_max: 10_000,
            call_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            wait_refresh: Duration::from_secs(1),
        }
    }

    fn policy(&self) -> QueuePolicy {
        QueuePolicy {
            capacity: self.capacity,
            payload_bytes_max: self.payload_bytes_max,
            max_deliveries: self.max_deliveries,
            dead_letters_max: self.dead_letters_max,
        }
    }
}

/// Why a durable queue operation failed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue stayed full for the send's whole wait (nothing sent).
    Full {
        /// The queue's capacity.
        capacity: u64,
    },
    /// The payload is larger than the queue takes (nothing sent).
    TooLarge {
        /// Its size.
        bytes: u64,
        /// The bound.
        max: u64,
    },
    /// No such delivery awaits acknowledgement: acknowledged already, or
    /// its deadline passed (the message goes, or went, to a receiver
    /// again, or died).
    UnknownDelivery,
    /// The queue did not answer within the call timeout.
    Call(AskError),
    /// The host answered with a reply this version does not expect.
    Protocol(String),
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::Full { capacity } => write!(f, "the queue is full ({capacity} messages)"),
            QueueError::TooLarge { bytes, max } => {
                write!(f, "a {bytes}-byte message is over the queue's {max} bytes")
            }
            QueueError::UnknownDelivery => {
                write!(f, "no such delivery awaits acknowledgement")
            }
            QueueError::Call(e) => write!(f, "durable queue unreachable: {e}"),
            QueueError::Protocol(why) => write!(f, "durable queue: {why}"),
        }
    }
}

impl std::error::Error for QueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QueueError::Call(e) => Some(e),
            _ => None,
        }
    }
}

/// A message received from a durable queue: acknowledge it
/// ([`DurableQueue::ack`]) before its deadline, or it comes back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The message's id in its queue (the same on every delivery).
    pub id: u64,
    /// Which delivery of the message this is: 1 the first time.
    pub delivery: u32,
    /// The message.
    pub payload: Vec<u8>,
}

impl From<WireDelivery> for Delivery {
    fn from(d: WireDelivery) -> Self {
        Delivery {
            id: d.id,
            delivery: d.delivery,
            payload: d.payload,
        }
    }
}

struct Shared {
    kind: ServiceKind<HostedQueue>,
    config: DurableQueuesConfig,
}

/// This node's door to the cluster's durable queues. Cheap to clone.
#[derive(Clone)]
pub struct DurableQueues {
    shared: Arc<Shared>,
}

impl fmt::Debug for DurableQueues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableQueues")
            .field("node", self.shared.kind.env.node())
            .finish_non_exhaustive()
    }
}

impl DurableQueues {
    /// The virtual actor kind hosting queues.
    pub const KIND: &'static str = "queue";

    /// Hosts and reaches durable queues on `system`'s node. In a cluster,
    /// start distribution first and register on every node.
    pub fn register(
        system: &ActorSystem,
        config: DurableQueuesConfig,
    ) -> Result<Self, VirtualError> {
        if config.capacity == 0 || config.max_deliveries == 0 || config.wait_refresh.is_zero() {
            return Err(VirtualError::InvalidConfig(
                "durable queues: capacity, max_deliveries and wait_refresh must be positive".into(),
            ));
        }
        let policy = config.policy();
        let kind = ServiceKind::register(
            system,
            config.hosting.clone(),
            config.call_timeout,
            (Duration::from_millis(1), Duration::from_millis(50)),
            move |_| HostedQueue::new(policy.clone()),
        )?;
        Ok(DurableQueues {
            shared: Arc::new(Shared { kind, config }),
        })
    }

    /// The queue `name` (created on first use).
    pub fn queue(&self, name: &str) -> Result<DurableQueue, VirtualError> {
        Ok(DurableQueue {
            target: self.shared.kind.actors.get(name)?,
            shared: self.shared.clone(),
        })
    }

    /// The node hosting queue `name`, as this node sees the cluster.
    pub fn host_of(&self, name: &str) -> Option<crate::env::NodeName> {
        self.shared.kind.actors.owner_of(name)
    }
}

/// One durable queue. Cheap to clone.
#[derive(Clone)]
pub struct DurableQueue {
    target: VirtualRef<HostedQueue>,
    shared: Arc<Shared>,
}

impl fmt::Debug for DurableQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DurableQueue({})", self.target.id())
    }
}

#[track_caller]
fn unexpected(reply: QueueReply) -> QueueError {
    QueueError::Protocol(crate::invariant::wrong_remote_reply(
        "a durable queue operation",
        &reply,
    ))
}

impl DurableQueue {
    /// The queue's name.
    pub fn name(&self) -> &str {
        self.target.id()
    }

    fn fresh_key(&self) -> String {
        self.shared.kind.fresh_key()
    }

    /// Calls `op` under `key` until its outcome is known (see
    /// [`ServiceKind::call_resolved`]); the queue's refusals as errors.
    async fn call(&self, key: String, op: QueueOp) -> Result<QueueReply, QueueError> {
        match self.shared.kind.call_resolved(&self.target, key, op).await {
            Ok(QueueReply::Full { capacity }) => Err(QueueError::Full { capacity }),
            Ok(QueueReply::TooLarge { bytes, max }) => Err(QueueError::TooLarge { bytes, max }),
            Ok(QueueReply::UnknownDelivery) => Err(QueueError::UnknownDelivery),
            Ok(reply) => Ok(reply),
            Err(e) => Err(QueueError::Call(e)),
        }
    }

    fn done(reply: QueueReply) -> Result<(), QueueError> {
        match reply {
            QueueReply::Sent | QueueReply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `payload`, durably, once: waits while the queue is full, up
    /// to the configured `send_timeout` ([`QueueError::Full`] then).
    pub async fn send(&self, payload: Vec<u8>) -> Result<(), QueueError> {
        self.send_keyed(self.fresh_key(), payload).await
    }

    /// [`DurableQueue::send`] under the caller's idempotency key `key`:
    /// after a failure whose outcome is unknown (a timeout, a crash of
    /// the caller), sending again with the same key and payload sends it
    /// at most once (within the queue's dedupe window, 10,000 keys by
    /// default), even from another run of the caller.
    pub async fn send_once(&self, key: &str, payload: Vec<u8>) -> Result<(), QueueError> {
        // Generated keys are `<hex nonce>:<n>`; a caller's never collide.
        self.send_keyed(format!("caller/{key}"), payload).await
    }

    async fn send_keyed(&self, key: String, payload: Vec<u8>) -> Result<(), QueueError> {
        let env = &self.shared.kind.env;
        let deadline = env.now() + self.shared.config.send_timeout;
        let mut pauses = Backoff::new(Duration::from_millis(1), Duration::from_millis(100))
            .with_jitter(0.0)
            .pauses();
        loop {
            // A full queue refuses without applying (or remembering) the
            // send, so the same key is asked again.
            match self.call(key.clone(), QueueOp::Send(payload.clone())).await {
                Err(QueueError::Full { capacity }) => {
                    let left = deadline.saturating_duration_since(env.now());
                    if left.is_zero() {
                        return Err(QueueError::Full { capacity });
                    }
                    env.sleep(pauses.next(env).min(left)).await;
                }
                other => return Self::done(other?),
            }
        }
    }

    /// Sends `payload` if the queue has room now ([`QueueError::Full`]
    /// otherwise).
    pub async fn try_send(&self, payload: Vec<u8>) -> Result<(), QueueError> {
        Self::done(self.call(self.fresh_key(), QueueOp::Send(payload)).await?)
    }

    /// Receives the oldest ready message, waiting up to `timeout` for one
    /// (`Ok(None)`), woken by the send that hands it over. Acknowledge it
    /// within `ack_timeout` or it is delivered again.
    pub async fn receive(
        &self,
        ack_timeout: Duration,
        timeout: Duration,
    ) -> Result<Option<Delivery>, QueueError> {
        let env = &self.shared.kind.env;
        let deadline = env.now() + timeout;
        let refresh = self.shared.config.wait_refresh;
        let (who, mut ticket) = self.shared.kind.claim(refresh);
        let claim = who.claim.clone();
        let op = QueueOp::Receive(ReceiveOp {
            who,
            ack_timeout_ms: whole_millis(ack_timeout),
        });
        let found = wake::wait_for(env, &mut ticket, refresh, Some(deadline), || async {
            match self.call(self.fresh_key(), op.clone()).await? {
                QueueReply::Waiting => Ok(None),
                QueueReply::Delivered(d) => Ok(Some(d)),
                other => Err(unexpected(other)),
            }
        })
        .await?;
        if let Some(found) = found {
            return Ok(Some(found.into()));
        }
        // Giving up hands back a delivery made meanwhile, rather than
        // leaving it in flight to nobody until its deadline.
        match self
            .call(self.fresh_key(), QueueOp::Unreceive { claim })
            .await?
        {
            QueueReply::Done => Ok(None),
            QueueReply::Delivered(d) => Ok(Some(d.into())),
            other => Err(unexpected(other)),
        }
    }

    /// Acknowledges `delivery`: the message is done with.
    pub async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let op = QueueOp::Ack {
            id: delivery.id,
            delivery: delivery.delivery,
        };
        Self::done(self.call(self.fresh_key(), op).await?)
    }

    /// Gives `delivery` back at once, for another receiver (it counts as a
    /// delivery toward `max_deliveries`).
    pub async fn nack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let op = QueueOp::Nack {
            id: delivery.id,
            delivery: delivery.delivery,
        };
        Self::done(self.call(self.fresh_key(), op).await?)
    }

    /// The queue's counts.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        match self.call(self.fresh_key(), QueueOp::Stats).await? {
            QueueReply::Stats(stats) => Ok(stats),
            other => Err(unexpected(other)),
        }
    }

    /// Copies of up to `max` dead letters, oldest first (`delivery` is how
    /// often each was delivered).
    pub async fn dead_letters(&self, max: u32) -> Result<Vec<Delivery>, QueueError> {
        match self
            .call(self.fresh_key(), QueueOp::DeadLetters { max })
            .await?
        {
            QueueReply::DeadLetters(dead) => Ok(dead.into_iter().map(Delivery::from).collect()),
            other => Err(unexpected(other)),
        }
    }

    /// Moves up to `max` dead letters back to the end of the queue (as far
    /// as it has room), their delivery counts reset; returns how many.
    pub async fn redrive(&self, max: u32) -> Result<u64, QueueError> {
        match self
            .call(self.fresh_key(), QueueOp::Redrive { max })
            .await?
        {
            QueueReply::Redriven(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }
}
