//! Pushed wake-ups for operations blocked on a durable host anywhere in
//! the cluster (a take or read on a shared tuple space, a receive on a
//! durable queue).
//!
//! A blocked operation registers its claim with the host (in the host's
//! [`WaitList`], journaled) and, on its own node, in the [`WaitRoom`].
//! When the host hands it a value, the host's [`HostWaker`] (a facet of
//! the hosting kind, so the durable handler can reach its node) tells the
//! waiter's node, whose wake actor wakes the claim's ticket; the waiter
//! then collects the value with one more call. A lost wake costs latency,
//! never the value: the waiter renews its registration periodically
//! ([`wait_for`]), and the renewal collects what was handed to it.

mod list;

pub(crate) use list::{Claim, WaitList, Wake};

use crate::actor::facet::{Facet, Hooks};
use crate::actor::{Actor, ActorError, ActorSystem, Context, WeakSystem};
use crate::distribution::peers;
use futures::channel::mpsc;
use plexspaces_storage::sync::LockExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The name of each node's wake actor.
const WAKE_ACTOR: &str = "plexspaces.wake";
/// Most blocked operations one node tracks for wake-ups; past it, a
/// blocked operation still completes, on its renewals.
pub(crate) const TICKETS_MAX: usize = 100_000;

/// The blocked operations of this node, by claim.
#[derive(Default)]
pub(crate) struct WaitRoom {
    tickets: Mutex<BTreeMap<String, mpsc::Sender<()>>>,
}

/// One blocked operation's registration in its node's [`WaitRoom`];
/// leaves it when dropped.
pub(crate) struct Ticket {
    room: Arc<WaitRoom>,
    claim: String,
    wakes: Option<mpsc::Receiver<()>>,
}

impl WaitRoom {
    /// Registers `claim` for wake-ups.
    pub(crate) fn enter(self: &Arc<Self>, claim: &str) -> Ticket {
        let mut tickets = self.tickets.locked();
        let wakes = (tickets.len() < TICKETS_MAX).then(|| {
            // One pending wake is enough: a waiter asks once per wake.
            let (tx, rx) = mpsc::channel(0);
            tickets.insert(claim.to_string(), tx);
            rx
        });
        Ticket {
            room: self.clone(),
            claim: claim.to_string(),
            wakes,
        }
    }

    /// Wakes the blocked operation `claim`, if this node has it.
    pub(crate) fn wake(&self, claim: &str) {
        if let Some(tx) = self.tickets.locked().get_mut(claim) {
            let _ = tx.try_send(()); // full: a wake is already pending
        }
    }
}

impl Ticket {
    /// Waits for a wake (forever if this node tracks too many tickets:
    /// the caller races it against its renewal).
    pub(crate) async fn woken(&mut self) {
        use futures::StreamExt;
        match &mut self.wakes {
            Some(wakes) => {
                if wakes.next().await.is_none() {
                    futures::future::pending::<()>().await;
                }
            }
            None => futures::future::pending::<()>().await,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.room.tickets.locked().remove(&self.claim);
    }
}

/// Claims a host woke on this node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct WakeMsg(pub(crate) Vec<String>);

/// Each node's wake actor: wakes the claims a space's host names.
pub(crate) struct WakeActor(Arc<WaitRoom>);

impl Actor for WakeActor {
    type Msg = WakeMsg;
    type Reply = ();

    async fn handle(&mut self, _: &mut Context<Self>, msg: WakeMsg) -> Result<(), ActorError> {
        for claim in &msg.0 {
            self.0.wake(claim);
        }
        Ok(())
    }
}

/// This node's wait room, its wake actor started (and exported) on first
/// use. Start distribution first, so peers can wake this node.
pub(crate) fn wait_room(system: &ActorSystem) -> Result<Arc<WaitRoom>, ActorError> {
    #[derive(Default)]
    struct Slot(Mutex<Option<Arc<WaitRoom>>>);
    let slot = system.service(Slot::default);
    let mut room = slot.0.locked();
    if let Some(room) = room.as_ref() {
        return Ok(room.clone());
    }
    let made = Arc::new(WaitRoom::default());
    let actor = system
        .spawn(WAKE_ACTOR, WakeActor(made.clone()))
        .map_err(|e| ActorError::new(format!("shared space wake-ups: {e}")))?;
    if let Some(dist) = system.distribution() {
        dist.export(&actor)
            .map_err(|e| ActorError::new(format!("wake-ups: {e}")))?;
    }
    *room = Some(made.clone());
    Ok(made)
}

/// The hosting kind's facet through which a host's durable handler wakes
/// waiters on any node. No per-message hook.
pub(crate) struct HostWaker {
    system: WeakSystem,
}

impl HostWaker {
    pub(crate) fn new(system: WeakSystem) -> Self {
        HostWaker { system }
    }

    /// Wakes each claim on its node: this node's directly, others' with
    /// one message per node.
    pub(crate) fn wake(&self, woken: Vec<Wake>) {
        let Some(system) = self.system.upgrade() else {
            return;
        };
        let mut by_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (node, claim) in woken {
            by_node.entry(node).or_default().push(claim);
        }
        for (node, claims) in by_node {
            if node == system.node().as_str() {
                if let Ok(room) = wait_room(&system) {
                    claims.iter().for_each(|claim| room.wake(claim));
                }
            } else if let Ok(peer) = crate::env::NodeName::new(&node) {
                peers::tell_peer::<WakeActor>(&system, WAKE_ACTOR, peer, WakeMsg(claims));
            }
        }
    }
}

impl Facet for HostWaker {
    fn name(&self) -> &str {
        "host-waker"
    }

    fn priority(&self) -> i32 {
        // No per-message hook, so its place in the chain costs nothing.
        100
    }

    fn hooks(&self) -> Hooks {
        Hooks::NONE
    }
}

impl HostWaker {
    /// Wakes `woken` through the facet attached to the handler of `ctx`:
    /// only for a live message (replay hands the same values to the same
    /// claims, whose renewals collect them).
    pub(crate) fn wake_from(ctx: &crate::durability::DurableContext<'_>, woken: Vec<Wake>) {
        if !woken.is_empty()
            && ctx.is_live()
            && let Some(waker) = ctx.facet::<HostWaker>()
        {
            waker.wake(woken);
        }
    }

    /// The facet to declare on a hosting kind whose handlers wake waiters.
    pub(crate) fn spec(system: &ActorSystem) -> crate::actor::facet::FacetSpec {
        let node = system.downgrade();
        crate::actor::facet::FacetSpec::factory(move |_| Box::new(HostWaker::new(node.clone())))
    }
}

/// Asks `ask` until it finds a value or `deadline` passes (`Ok(None)`:
/// the caller then gives its claim up, collecting anything handed to it
/// meanwhile). Between asks it waits for `ticket`'s wake or `refresh`,
/// whichever comes first: each ask renews the registration and collects
/// what was handed over.
pub(crate) async fn wait_for<R, E, Fut>(
    env: &crate::env::Env,
    ticket: &mut Ticket,
    refresh: std::time::Duration,
    deadline: Option<crate::seams::Instant>,
    mut ask: impl FnMut() -> Fut,
) -> Result<Option<R>, E>
where
    Fut: std::future::Future<Output = Result<Option<R>, E>>,
{
    use crate::seams::Clock;
    loop {
        if let Some(found) = ask().await? {
            return Ok(Some(found));
        }
        let pause = match deadline {
            None => refresh,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(env.now());
                if left.is_zero() {
                    return Ok(None);
                }
                refresh.min(left)
            }
        };
        let woken = Box::pin(ticket.woken());
        futures::future::select(woken, Box::pin(env.sleep(pause))).await;
    }
}

/// The wake actors' message (it crosses the wire), for
/// [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    v.visit("wake::WakeMsg", || {
        vec![WakeMsg(vec!["0123456789abcdef0123456789abcdef:17".into()])]
    });
}
