//! What the node services that copy a table to every peer (process
//! groups, the object registry) share: which peers to tell, which nodes
//! still count as alive, and a tell that never blocks the table.

use super::{MemberStatus, RemoteActor};
use crate::actor::{ActorId, ActorSystem, SendError};
use crate::env::NodeName;
use crate::seams::Spawn;
use std::collections::BTreeSet;

/// The peers to tell: members this node sees Up, itself excluded.
pub(crate) fn up_peers(system: &ActorSystem) -> Vec<NodeName> {
    let Some(dist) = system.distribution() else {
        return Vec::new();
    };
    let me = system.node();
    dist.members()
        .into_iter()
        .filter(|m| m.status == MemberStatus::Up && &m.node != me)
        .map(|m| m.node)
        .collect()
}

/// The nodes whose tables are kept: Up or Suspect (a suspect may come
/// back). Everything else (Down, Leaving, Joining) is forgotten.
pub(crate) fn live_nodes(system: &ActorSystem) -> BTreeSet<String> {
    match system.distribution() {
        None => BTreeSet::new(),
        Some(dist) => dist
            .members()
            .into_iter()
            .filter(|m| matches!(m.status, MemberStatus::Up | MemberStatus::Suspect))
            .map(|m| m.node.to_string())
            .collect(),
    }
}

/// Tells `msg` to the actor `actor_name` on `peer`. A full link queue
/// makes the tell wait in a task of its own, never in the caller.
pub(crate) fn tell_peer<A: RemoteActor>(
    system: &ActorSystem,
    actor_name: &str,
    peer: NodeName,
    msg: A::Msg,
) where
    A::Msg: Clone,
{
    let Some(dist) = system.distribution() else {
        return;
    };
    let Ok(id) = ActorId::new(actor_name, peer) else {
        return;
    };
    match dist.remote_ref::<A>(&id) {
        Ok(peer) => {
            if let Err(SendError::MailboxFull(_)) = peer.try_tell(msg.clone()) {
                system.env().spawn_task(Box::pin(async move {
                    let _ = peer.tell(msg).await;
                }));
            }
        }
        Err(e) => tracing::debug!("cannot reach {id}: {e}"),
    }
}
