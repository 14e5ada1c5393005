//! What the runtime's own cluster-wide services built on a durable virtual
//! kind share (shared tuple spaces, durable queues, durable topics): the
//! kind registered with the [`HostWaker`] facet, this node's wait room,
//! idempotency keys no other node or run uses, and calls asked again under
//! their key until their outcome is known.

use super::{VirtualActors, VirtualConfig, VirtualError, VirtualRef, not_applied_or_unknown};
use crate::actor::{ActorSystem, AskError};
use crate::durability::DurableActor;
use crate::env::Env;
use crate::retry::Backoff;
use crate::seams::{Clock, Rng, whole_millis};
use crate::wake::{self, Claim, HostWaker, Ticket, WaitRoom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A node's side of one runtime service kind.
pub(crate) struct ServiceKind<A: DurableActor> {
    pub(crate) actors: VirtualActors<A>,
    pub(crate) env: Env,
    /// Keys are `<nonce>:<n>`: the 128-bit nonce keeps this node's keys
    /// apart from every other node's and from its own earlier runs'.
    nonce: String,
    next_key: AtomicU64,
    room: Arc<WaitRoom>,
    call_timeout: Duration,
    retry_min: Duration,
    retry_max: Duration,
}

impl<A: DurableActor> ServiceKind<A>
where
    A::Msg: Clone,
{
    /// Registers the kind of `hosting` on `system` (with the waker facet,
    /// so hosts wake waiters through their node). Calls wait up to
    /// `call_timeout` per attempt; unknown outcomes are asked again after
    /// pauses from `retry_min` doubling to `retry_max`.
    pub(crate) fn register(
        system: &ActorSystem,
        mut hosting: VirtualConfig,
        call_timeout: Duration,
        (retry_min, retry_max): (Duration, Duration),
        factory: impl Fn(&str) -> A + Send + Sync + 'static,
    ) -> Result<Self, VirtualError> {
        let room =
            wake::wait_room(system).map_err(|e| VirtualError::InvalidConfig(e.to_string()))?;
        hosting.facets.push(HostWaker::spec(system));
        let actors = VirtualActors::register(system, hosting, factory)?;
        let env = system.env().clone();
        let nonce = format!("{:016x}{:016x}", env.next_u64(), env.next_u64());
        Ok(ServiceKind {
            actors,
            env,
            nonce,
            next_key: AtomicU64::new(0),
            room,
            call_timeout,
            retry_min,
            retry_max,
        })
    }

    /// A fresh idempotency key for one operation.
    pub(crate) fn fresh_key(&self) -> String {
        let n = self.next_key.fetch_add(1, Ordering::Relaxed);
        format!("{}:{n}", self.nonce)
    }

    /// A claim for one blocked operation, renewed every `refresh` (it
    /// lapses after three), and its ticket in this node's wait room.
    pub(crate) fn claim(&self, refresh: Duration) -> (Claim, Ticket) {
        let claim = self.fresh_key();
        let ticket = self.room.enter(&claim);
        let ttl = refresh.saturating_mul(3);
        let who = Claim {
            claim,
            node: self.env.node().to_string(),
            ttl_ms: whole_millis(ttl),
        };
        (who, ticket)
    }

    /// The pauses between asks of an unknown outcome (no jitter).
    pub(crate) fn retry_pauses(&self) -> Backoff {
        Backoff::new(self.retry_min, self.retry_max).with_jitter(0.0)
    }

    /// Calls `msg` on `target` under `key`; `retried` if this key was
    /// sent before with an unknown outcome.
    pub(crate) async fn call_once(
        &self,
        target: &VirtualRef<A>,
        key: String,
        msg: A::Msg,
        retried: bool,
    ) -> Result<A::Reply, AskError> {
        if retried {
            target.call_again(key, msg, self.call_timeout).await
        } else {
            target.call(key, msg, self.call_timeout).await
        }
    }

    /// Calls `msg` under `key` until its outcome is known: a failure that
    /// may or may not have applied it (a timeout, a lost connection, an
    /// unreachable host) is asked again under the same key, which the
    /// host answers with the original answer if it did apply.
    pub(crate) async fn call_resolved(
        &self,
        target: &VirtualRef<A>,
        key: String,
        msg: A::Msg,
    ) -> Result<A::Reply, AskError> {
        let mut pauses = self.retry_pauses().pauses();
        let mut retried = false;
        loop {
            match self
                .call_once(target, key.clone(), msg.clone(), retried)
                .await
            {
                Err(e) if not_applied_or_unknown(&e) => {
                    self.env.sleep(pauses.next(&self.env)).await;
                    retried = true;
                }
                answered => return answered,
            }
        }
    }
}
