//! Who is in the cluster and whether they are alive: a table updated by
//! what this node hears (handshakes, heartbeats, any frame) and by a
//! periodic check against the clock. Pure logic, no I/O.
//!
//! Status moves: Joining (known from gossip, never heard) → Up (heard
//! directly) → Suspect (silent for `suspect_after`) → Down (silent for
//! `down_after`). Hearing from a Suspect or Down node makes it Up again.
//! A larger incarnation means the node restarted: its old actors are gone.
//! A node shutting down gracefully says so (a `Leaving` frame): it is
//! Leaving from then on, hosts nothing placed, and nothing from the same
//! run makes it Up again; silence then makes it Down as usual.

use crate::NodeName;
use crate::seams::Instant;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// A member's liveness as this node judges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    /// Learned from another node's gossip; not heard from directly yet.
    Joining,
    /// Heard from recently.
    Up,
    /// Silent for longer than `suspect_after`.
    Suspect,
    /// Silent for longer than `down_after`; its actors' monitors fired.
    Down,
    /// Shutting down gracefully: still answering what it has, but placed
    /// work (virtual actors, shards) goes elsewhere.
    Leaving,
}

/// One member of the cluster, as [`super::Distribution::members`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// Its node name.
    pub node: NodeName,
    /// Where it accepts connections.
    pub addr: SocketAddr,
    /// Its run.
    pub incarnation: u64,
    /// Its liveness.
    pub status: MemberStatus,
}

/// A change the rest of the distribution layer must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// A node is (again) reachable.
    Up(NodeName),
    /// A node was declared down.
    Down(NodeName),
    /// A node came back with a new incarnation: its old actors are gone.
    Restarted(NodeName),
    /// A node was learned from gossip and should be dialed.
    Learned(NodeName),
    /// A node (or this one) announced a graceful shutdown: placed work
    /// moves off it now, not after `down_after`.
    Leaving(NodeName),
}

struct Entry {
    addr: SocketAddr,
    incarnation: u64,
    status: MemberStatus,
    /// When it was last heard from (or learned, for Joining).
    last_heard: Instant,
}

pub(crate) struct Membership {
    me: MemberInfo,
    others: BTreeMap<NodeName, Entry>,
    view: u64,
}

impl Membership {
    pub(crate) fn new(me: MemberInfo) -> Self {
        Membership {
            me,
            others: BTreeMap::new(),
            view: 1,
        }
    }

    /// Increases whenever the set of Up members changes.
    pub(crate) fn view(&self) -> u64 {
        self.view
    }

    /// Every member this node knows, itself first, then by name.
    pub(crate) fn members(&self) -> Vec<MemberInfo> {
        let mut all = vec![self.me.clone()];
        all.extend(self.others.iter().map(|(node, e)| MemberInfo {
            node: node.clone(),
            addr: e.addr,
            incarnation: e.incarnation,
            status: e.status,
        }));
        all
    }

    pub(crate) fn get(&self, node: &NodeName) -> Option<MemberInfo> {
        if *node == self.me.node {
            return Some(self.me.clone());
        }
        self.others.get(node).map(|e| MemberInfo {
            node: node.clone(),
            addr: e.addr,
            incarnation: e.incarnation,
            status: e.status,
        })
    }

    /// The node was heard from directly (handshake, heartbeat or traffic).
    /// `addr` is its listening address when known.
    pub(crate) fn heard_from(
        &mut self,
        node: &NodeName,
        addr: Option<SocketAddr>,
        incarnation: u64,
        now: Instant,
    ) -> Vec<Change> {
        if *node == self.me.node {
            return Vec::new();
        }
        let Some(entry) = self.others.get_mut(node) else {
            let Some(addr) = addr else {
                return Vec::new(); // nowhere to dial it back; wait for its Hello
            };
            self.others.insert(
                node.clone(),
                Entry {
                    addr,
                    incarnation,
                    status: MemberStatus::Up,
                    last_heard: now,
                },
            );
            self.view += 1;
            return vec![Change::Up(node.clone())];
        };
        if incarnation < entry.incarnation {
            return Vec::new(); // a stale connection of an earlier run
        }
        if entry.status == MemberStatus::Leaving && incarnation == entry.incarnation {
            // Still finishing its work: alive, but never Up again in this run.
            entry.last_heard = now;
            return Vec::new();
        }
        let mut changes = Vec::new();
        if let Some(addr) = addr {
            entry.addr = addr;
        }
        entry.last_heard = now;
        if incarnation > entry.incarnation {
            entry.incarnation = incarnation;
            if entry.status != MemberStatus::Joining {
                changes.push(Change::Restarted(node.clone()));
            }
        }
        if entry.status != MemberStatus::Up {
            if entry.status != MemberStatus::Suspect {
                changes.push(Change::Up(node.clone()));
            }
            entry.status = MemberStatus::Up;
        }
        if !changes.is_empty() {
            self.view += 1;
        }
        changes
    }

    /// A member another node gossiped about. Unknown nodes are added as
    /// Joining (and should be dialed); known ones are left to direct
    /// evidence.
    pub(crate) fn learn(
        &mut self,
        node: NodeName,
        addr: SocketAddr,
        incarnation: u64,
        now: Instant,
    ) -> Option<Change> {
        if node == self.me.node || self.others.contains_key(&node) {
            return None;
        }
        self.others.insert(
            node.clone(),
            Entry {
                addr,
                incarnation,
                status: MemberStatus::Joining,
                last_heard: now,
            },
        );
        Some(Change::Learned(node))
    }

    /// This node is leaving the cluster (a graceful shutdown).
    pub(crate) fn leave(&mut self) -> Vec<Change> {
        if self.me.status == MemberStatus::Leaving {
            return Vec::new();
        }
        self.me.status = MemberStatus::Leaving;
        self.view += 1;
        vec![Change::Leaving(self.me.node.clone())]
    }

    /// `node` said it is leaving (its run `incarnation`).
    pub(crate) fn left(&mut self, node: &NodeName, incarnation: u64, now: Instant) -> Vec<Change> {
        let Some(entry) = self.others.get_mut(node) else {
            return Vec::new();
        };
        if incarnation != entry.incarnation
            || matches!(entry.status, MemberStatus::Leaving | MemberStatus::Down)
        {
            return Vec::new();
        }
        entry.status = MemberStatus::Leaving;
        entry.last_heard = now;
        self.view += 1;
        vec![Change::Leaving(node.clone())]
    }

    /// Marks silent members Suspect or Down.
    pub(crate) fn check(
        &mut self,
        now: Instant,
        suspect_after: Duration,
        down_after: Duration,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        for (node, entry) in &mut self.others {
            let silent = now.saturating_duration_since(entry.last_heard);
            let next = match entry.status {
                MemberStatus::Down => continue,
                _ if silent >= down_after => MemberStatus::Down,
                MemberStatus::Up if silent >= suspect_after => MemberStatus::Suspect,
                status => status,
            };
            if next == MemberStatus::Down {
                let was_up = matches!(
                    entry.status,
                    MemberStatus::Up | MemberStatus::Suspect | MemberStatus::Leaving
                );
                entry.status = MemberStatus::Down;
                if was_up {
                    changes.push(Change::Down(node.clone()));
                }
            } else {
                entry.status = next;
            }
        }
        if !changes.is_empty() {
            self.view += 1;
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: &str) -> NodeName {
        NodeName::new(n).unwrap()
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn at(ms: u64) -> Instant {
        Instant::from_duration(Duration::from_millis(ms))
    }

    fn table() -> Membership {
        Membership::new(MemberInfo {
            node: node("me"),
            addr: addr(1),
            incarnation: 1,
            status: MemberStatus::Up,
        })
    }

    const SUSPECT: Duration = Duration::from_millis(100);
    const DOWN: Duration = Duration::from_millis(300);

    #[test]
    fn silence_makes_a_member_suspect_then_down_and_hearing_brings_it_back() {
        let mut m = table();
        assert_eq!(
            m.heard_from(&node("b"), Some(addr(2)), 7, at(0)),
            [Change::Up(node("b"))]
        );
        let view = m.view();
        assert!(m.check(at(99), SUSPECT, DOWN).is_empty());
        assert!(m.check(at(100), SUSPECT, DOWN).is_empty());
        assert_eq!(m.get(&node("b")).unwrap().status, MemberStatus::Suspect);
        assert_eq!(m.view(), view, "suspicion alone does not change the view");
        assert_eq!(m.check(at(300), SUSPECT, DOWN), [Change::Down(node("b"))]);
        assert!(
            m.check(at(900), SUSPECT, DOWN).is_empty(),
            "down is reported once"
        );
        assert_eq!(m.view(), view + 1);
        assert_eq!(
            m.heard_from(&node("b"), None, 7, at(1000)),
            [Change::Up(node("b"))]
        );
        assert_eq!(m.view(), view + 2);
    }

    #[test]
    fn a_new_incarnation_is_a_restart_and_an_old_one_is_ignored() {
        let mut m = table();
        m.heard_from(&node("b"), Some(addr(2)), 7, at(0));
        assert!(m.heard_from(&node("b"), Some(addr(3)), 6, at(1)).is_empty());
        assert_eq!(m.get(&node("b")).unwrap().addr, addr(2));
        assert_eq!(
            m.heard_from(&node("b"), Some(addr(3)), 8, at(2)),
            [Change::Restarted(node("b"))]
        );
        assert_eq!(m.get(&node("b")).unwrap().addr, addr(3));
    }

    #[test]
    fn gossip_adds_unknown_nodes_as_joining_and_silence_drops_them() {
        let mut m = table();
        assert_eq!(
            m.learn(node("c"), addr(4), 1, at(0)),
            Some(Change::Learned(node("c")))
        );
        assert_eq!(m.learn(node("c"), addr(4), 1, at(0)), None);
        assert_eq!(
            m.learn(node("me"), addr(9), 1, at(0)),
            None,
            "never learns itself"
        );
        assert_eq!(m.get(&node("c")).unwrap().status, MemberStatus::Joining);
        // Never up, so going down changes no view and fires nothing.
        assert!(m.check(at(300), SUSPECT, DOWN).is_empty());
        assert_eq!(m.get(&node("c")).unwrap().status, MemberStatus::Down);
        assert_eq!(
            m.heard_from(&node("c"), None, 1, at(400)),
            [Change::Up(node("c"))]
        );
        let names: Vec<_> = m
            .members()
            .into_iter()
            .map(|i| i.node.to_string())
            .collect();
        assert_eq!(names, ["me", "c"]);
    }

    #[test]
    fn a_leaving_node_stays_leaving_until_silent_or_restarted() {
        let mut m = table();
        m.heard_from(&node("b"), Some(addr(2)), 7, at(0));
        assert_eq!(
            m.left(&node("b"), 6, at(10)),
            [],
            "an earlier run's goodbye"
        );
        assert_eq!(m.left(&node("b"), 7, at(10)), [Change::Leaving(node("b"))]);
        assert_eq!(m.left(&node("b"), 7, at(11)), [], "said once");
        // Its last frames keep it alive, but never Up again in this run.
        assert_eq!(m.heard_from(&node("b"), None, 7, at(200)), []);
        assert_eq!(m.get(&node("b")).unwrap().status, MemberStatus::Leaving);
        assert!(m.check(at(250), SUSPECT, DOWN).is_empty());
        // Silence then makes it Down, which fires its monitors.
        assert_eq!(m.check(at(500), SUSPECT, DOWN), [Change::Down(node("b"))]);
        // A new run is a new member.
        assert_eq!(
            m.heard_from(&node("b"), None, 8, at(600)),
            [Change::Restarted(node("b")), Change::Up(node("b"))]
        );
        // This node leaving changes its own status once.
        assert_eq!(m.leave(), [Change::Leaving(node("me"))]);
        assert_eq!(m.leave(), []);
        assert_eq!(m.members()[0].status, MemberStatus::Leaving);
    }
}
