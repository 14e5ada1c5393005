//! The distribution's background loops: heartbeats and silence checks,
//! and joining through the seeds.

use super::*;

/// Heartbeats out, silence checks in, every `heartbeat_interval`.
pub(super) async fn tick(dist: Arc<Dist>) {
    loop {
        dist.env.sleep(dist.config.heartbeat_interval).await;
        let (changes, links, gossip) = {
            let mut state = dist.state();
            let changes = state.membership.check(
                dist.env.now(),
                dist.config.suspect_after,
                dist.config.down_after,
            );
            let gossip: Vec<Member> = state
                .membership
                .members()
                .into_iter()
                .filter(|m| matches!(m.status, MemberStatus::Up | MemberStatus::Suspect))
                .map(|m| Member {
                    node: m.node.to_string(),
                    addr: m.addr,
                    incarnation: m.incarnation,
                })
                .collect();
            let links: Vec<Arc<Link>> = state.links.values().cloned().collect();
            (changes, links, gossip)
        };
        dist.apply(changes);
        for link in links {
            link.heartbeat(gossip.clone());
        }
    }
}

/// Dials a seed until it answers: the handshake names it, and from then on
/// it is a member with its own link.
pub(super) async fn join_through(dist: Arc<Dist>, seed: SocketAddr) {
    let config = &dist.config;
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max).pauses();
    loop {
        match dist.dial(seed).await {
            Ok((_, mut writer, peer)) => {
                let _ = writer.close().await;
                match NodeName::new(&peer.node) {
                    Ok(node) if &node != dist.env.node() => {
                        dist.heard_from(&node, Some(seed), peer.incarnation);
                        return;
                    }
                    _ => {
                        tracing::warn!(%seed, node = peer.node, "seed is this node or misnamed");
                        return;
                    }
                }
            }
            Err(e) => tracing::debug!(%seed, "seed not reachable yet: {e}"),
        }
        dist.env.sleep(backoff.next(&dist.env)).await;
    }
}
