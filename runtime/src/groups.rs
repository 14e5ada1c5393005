//! Process groups (Erlang `pg`-style, the design's Process Group Service):
//! named groups of actors, scoped by tenant and namespace, across nodes.
//!
//! - `join` / `leave` / `members` / `send_to_group` through
//!   [`ActorSystem::process_groups`](crate::actor::ActorSystem::process_groups).
//! - Each node keeps its own members and tells every other node of each
//!   change; on every membership change it sends each Up peer its whole
//!   local table and asks for theirs (so a node that joins, restarts or
//!   comes back from a partition catches up), resends it every 2 s (which
//!   repairs a change lost with a broken connection), and it forgets the
//!   members of nodes that are neither Up nor Suspect: the members of a
//!   node declared down leave their groups.
//! - A member leaves its groups when it exits.
//! - Views are eventually consistent, as in Erlang: right after a join on
//!   one node, another node may not list the new member yet.
//!
//! Members must be [`RemoteActor`]s (serde messages) so any node can
//! message them; with distribution running, `join` exports the actor.

use crate::actor::{Actor, ActorError, ActorId, ActorRef, ActorSystem, Context, SendError};
use crate::distribution::RemoteActor;
use crate::distribution::peers;
use crate::env::NodeName;
use crate::seams::Spawn;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// How often each node resends its whole table to every peer (repairs a
/// change lost with a broken connection while membership did not change).
const RESYNC_EVERY: Duration = Duration::from_secs(2);
/// The name of each node's group actor.
const GROUPS_ACTOR: &str = "pg";
/// Longest tenant, namespace or group name, in bytes.
pub const GROUP_NAME_BYTES_MAX: usize = crate::names::NAME_BYTES_MAX;

/// A group's full name: tenant, namespace, group.
type GroupKey = (String, String, String);

/// A process group operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupError {
    /// A tenant, namespace or group name is empty, too long or holds a
    /// control character.
    InvalidName(String),
    /// Only actors on this node can be joined (or left) here.
    NotLocal(ActorId),
    /// The node's group service did not answer.
    Unavailable(String),
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::InvalidName(why) => write!(f, "invalid group name: {why}"),
            GroupError::NotLocal(id) => write!(f, "{id} is not on this node"),
            GroupError::Unavailable(why) => write!(f, "process groups unavailable: {why}"),
        }
    }
}

impl std::error::Error for GroupError {}

fn check(what: &str, name: &str) -> Result<(), GroupError> {
    crate::names::check(what, name).map_err(GroupError::InvalidName)
}

fn key(tenant: &str, namespace: &str, group: &str) -> Result<GroupKey, GroupError> {
    check("tenant", tenant)?;
    check("namespace", namespace)?;
    check("group", group)?;
    Ok((tenant.to_string(), namespace.to_string(), group.to_string()))
}

/// A node's process groups. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProcessGroups {
    system: ActorSystem,
    actor: ActorRef<GroupsActor>,
}

/// How long a call to the node's own group actor may take.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(5);

impl ProcessGroups {
    pub(crate) fn new(system: ActorSystem, actor: ActorRef<GroupsActor>) -> Self {
        ProcessGroups { system, actor }
    }

    /// Starts the node's group actor (called once, by the actor system).
    pub(crate) fn start(system: &ActorSystem) -> Result<ActorRef<GroupsActor>, GroupError> {
        let actor = system
            .spawn(GROUPS_ACTOR, GroupsActor::default())
            .map_err(|e| GroupError::Unavailable(e.to_string()))?;
        if let Some(dist) = system.distribution() {
            dist.export(&actor)
                .map_err(|e| GroupError::Unavailable(e.to_string()))?;
            let listener = actor.clone();
            dist.on_view_change(std::sync::Arc::new(move || {
                let _ = listener.try_tell(GroupMsg::ViewChanged);
            }));
        }
        Ok(actor)
    }

    async fn call(&self, msg: GroupMsg) -> Result<GroupReply, GroupError> {
        self.actor
            .ask(msg, LOCAL_TIMEOUT)
            .await
            .map_err(|e| GroupError::Unavailable(e.to_string()))
    }

    /// Adds `actor` (on this node) to the group; it stays until it leaves
    /// or exits. Joining twice is one membership.
    pub async fn join<A: RemoteActor>(
        &self,
        tenant: &str,
        namespace: &str,
        group: &str,
        actor: &ActorRef<A>,
    ) -> Result<(), GroupError> {
        let key = key(tenant, namespace, group)?;
        if !actor.is_local() || actor.id().node() != self.system.node() {
            return Err(GroupError::NotLocal(actor.id().clone()));
        }
        if let Some(dist) = self.system.distribution() {
            dist.export(actor)
                .map_err(|e| GroupError::Unavailable(e.to_string()))?;
        }
        let name = actor.id().name().to_string();
        let joined = self
            .call(GroupMsg::Join {
                key: key.clone(),
                name: name.clone(),
            })
            .await?;
        if joined == GroupReply::Joined(true) {
            // Leaves every group it is in when it exits.
            let (watched, groups) = (actor.clone(), self.actor.clone());
            self.system.env().spawn_task(Box::pin(async move {
                watched.wait_exit().await;
                let _ = groups.tell(GroupMsg::Exited { name }).await;
            }));
        }
        Ok(())
    }

    /// Removes `actor` from the group; false if it was not a member.
    pub async fn leave<A: Actor>(
        &self,
        tenant: &str,
        namespace: &str,
        group: &str,
        actor: &ActorRef<A>,
    ) -> Result<bool, GroupError> {
        let key = key(tenant, namespace, group)?;
        if actor.id().node() != self.system.node() {
            return Err(GroupError::NotLocal(actor.id().clone()));
        }
        let name = actor.id().name().to_string();
        match self.call(GroupMsg::Leave { key, name }).await? {
            GroupReply::Left(was) => Ok(was),
            other => crate::invariant::wrong_reply("a group operation", &other),
        }
    }

    /// The group's members on every node this node knows of, sorted.
    pub async fn members(
        &self,
        tenant: &str,
        namespace: &str,
        group: &str,
    ) -> Result<Vec<ActorId>, GroupError> {
        let key = key(tenant, namespace, group)?;
        match self.call(GroupMsg::Members { key }).await? {
            GroupReply::Members(members) => Ok(members
                .into_iter()
                .filter_map(|(name, node)| {
                    NodeName::new(&node)
                        .ok()
                        .and_then(|node| ActorId::new(&name, node).ok())
                })
                .collect()),
            other => crate::invariant::wrong_reply("a group operation", &other),
        }
    }

    /// Tells `msg` to every member of the group that is an `A` (local or
    /// remote) and returns how many were sent it. Delivery is at most once
    /// per member, as any tell.
    pub async fn send_to_group<A: RemoteActor>(
        &self,
        tenant: &str,
        namespace: &str,
        group: &str,
        msg: A::Msg,
    ) -> Result<usize, GroupError>
    where
        A::Msg: Clone,
    {
        let mut sent = 0;
        for member in self.members(tenant, namespace, group).await? {
            let Ok(actor) = self.system.resolve::<A>(&member) else {
                continue; // another type, or gone
            };
            match actor.tell(msg.clone()).await {
                Ok(()) => sent += 1,
                Err(SendError::Stopped(_) | SendError::MailboxFull(_)) => {}
            }
        }
        Ok(sent)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum GroupMsg {
    Join {
        key: GroupKey,
        name: String,
    },
    Leave {
        key: GroupKey,
        name: String,
    },
    Members {
        key: GroupKey,
    },
    /// A local member exited: it leaves every group.
    Exited {
        name: String,
    },
    /// Membership changed: resync peers, forget the members of gone nodes.
    ViewChanged,
    /// From a peer: its whole local table (replaces what we had of it);
    /// with `reply`, the receiver sends its own table back.
    Sync {
        from: String,
        members: Vec<(GroupKey, String)>,
        reply: bool,
    },
    /// Every `RESYNC_EVERY`: send every peer the whole table again, which
    /// repairs changes lost with a broken connection.
    Resync,
    /// From a peer: one of its actors joined (`true`) or left a group.
    Changed {
        from: String,
        key: GroupKey,
        name: String,
        joined: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum GroupReply {
    /// Joined; true if it was not a member before.
    Joined(bool),
    Left(bool),
    Members(Vec<(String, String)>),
    Done,
}

/// One node's group table: its own members, and what peers told it.
#[derive(Default)]
pub(crate) struct GroupsActor {
    local: BTreeMap<GroupKey, BTreeSet<String>>,
    remote: BTreeMap<String, BTreeMap<GroupKey, BTreeSet<String>>>,
}

impl GroupsActor {
    fn tell_peer(ctx: &Context<Self>, peer: NodeName, msg: GroupMsg) {
        peers::tell_peer::<GroupsActor>(ctx.system(), GROUPS_ACTOR, peer, msg);
    }

    fn broadcast(&self, ctx: &Context<Self>, key: &GroupKey, name: &str, joined: bool) {
        let from = ctx.system().node().to_string();
        for peer in peers::up_peers(ctx.system()) {
            let msg = GroupMsg::Changed {
                from: from.clone(),
                key: key.clone(),
                name: name.to_string(),
                joined,
            };
            Self::tell_peer(ctx, peer, msg);
        }
    }

    fn local_members(&self) -> Vec<(GroupKey, String)> {
        self.local
            .iter()
            .flat_map(|(key, names)| names.iter().map(move |n| (key.clone(), n.clone())))
            .collect()
    }

    /// Sends every Up peer the whole local table, asking for theirs back
    /// if `reply` (a peer that never saw this node leave would otherwise
    /// not resend what this node forgot).
    fn sync_all(&self, ctx: &Context<Self>, reply: bool) {
        let members = self.local_members();
        let from = ctx.system().node().to_string();
        for peer in peers::up_peers(ctx.system()) {
            let msg = GroupMsg::Sync {
                from: from.clone(),
                members: members.clone(),
                reply,
            };
            Self::tell_peer(ctx, peer, msg);
        }
    }

    fn view_changed(&mut self, ctx: &Context<Self>) {
        let alive = peers::live_nodes(ctx.system());
        self.remote.retain(|node, _| alive.contains(node));
        self.sync_all(ctx, true);
    }
}

impl Actor for GroupsActor {
    type Msg = GroupMsg;
    type Reply = GroupReply;

    async fn pre_start(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        ctx.send_interval(RESYNC_EVERY, GroupMsg::Resync)
            .map_err(|e| ActorError::new(e.to_string()))?;
        Ok(())
    }

    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        msg: GroupMsg,
    ) -> Result<GroupReply, ActorError> {
        Ok(match msg {
            GroupMsg::Join { key, name } => {
                let new = self
                    .local
                    .entry(key.clone())
                    .or_default()
                    .insert(name.clone());
                if new {
                    self.broadcast(ctx, &key, &name, true);
                }
                GroupReply::Joined(new)
            }
            GroupMsg::Leave { key, name } => {
                let was = self
                    .local
                    .get_mut(&key)
                    .is_some_and(|names| names.remove(&name));
                self.local.retain(|_, names| !names.is_empty());
                if was {
                    self.broadcast(ctx, &key, &name, false);
                }
                GroupReply::Left(was)
            }
            GroupMsg::Members { key } => {
                let me = ctx.system().node().to_string();
                let mut members: Vec<(String, String)> = self
                    .local
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .map(|n| (n.clone(), me.clone()))
                    .collect();
                for (node, table) in &self.remote {
                    for name in table.get(&key).into_iter().flatten() {
                        members.push((name.clone(), node.clone()));
                    }
                }
                members.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
                GroupReply::Members(members)
            }
            GroupMsg::Exited { name } => {
                let groups: Vec<GroupKey> = self
                    .local
                    .iter_mut()
                    .filter_map(|(key, names)| names.remove(&name).then(|| key.clone()))
                    .collect();
                self.local.retain(|_, names| !names.is_empty());
                for key in groups {
                    self.broadcast(ctx, &key, &name, false);
                }
                GroupReply::Done
            }
            GroupMsg::ViewChanged => {
                self.view_changed(ctx);
                GroupReply::Done
            }
            GroupMsg::Sync {
                from,
                members,
                reply,
            } => {
                let mut table: BTreeMap<GroupKey, BTreeSet<String>> = BTreeMap::new();
                for (key, name) in members {
                    table.entry(key).or_default().insert(name);
                }
                if reply && let Ok(peer) = NodeName::new(&from) {
                    let answer = GroupMsg::Sync {
                        from: ctx.system().node().to_string(),
                        members: self.local_members(),
                        reply: false,
                    };
                    Self::tell_peer(ctx, peer, answer);
                }
                self.remote.insert(from, table);
                GroupReply::Done
            }
            GroupMsg::Resync => {
                self.sync_all(ctx, false);
                GroupReply::Done
            }
            GroupMsg::Changed {
                from,
                key,
                name,
                joined,
            } => {
                let table = self.remote.entry(from).or_default();
                if joined {
                    table.entry(key).or_default().insert(name);
                } else if let Some(names) = table.get_mut(&key) {
                    names.remove(&name);
                    if names.is_empty() {
                        table.remove(&key);
                    }
                }
                GroupReply::Done
            }
        })
    }
}

/// The group actors' messages (they cross the wire), for
/// [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    v.visit("groups::GroupMsg", || {
        let key: GroupKey = ("acme".into(), "chat".into(), "room-1".into());
        vec![
            GroupMsg::Join {
                key: key.clone(),
                name: "alice".into(),
            },
            GroupMsg::Sync {
                from: "n2".into(),
                members: vec![(key.clone(), "bob".into())],
                reply: true,
            },
            GroupMsg::Changed {
                from: "n2".into(),
                key,
                name: "bob".into(),
                joined: false,
            },
        ]
    });
    v.visit("groups::GroupReply", || {
        vec![
            GroupReply::Joined(true),
            GroupReply::Members(vec![("n1".into(), "alice".into())]),
        ]
    });
}

/// The node's group actor, once started (the system keeps the actor's ref,
/// not a `ProcessGroups`, which holds the system and would make a cycle).
#[derive(Default)]
struct NodeGroups(std::sync::Mutex<Option<ActorRef<GroupsActor>>>);

impl ActorSystem {
    /// The node's process groups (started on first use; start distribution
    /// first so they span the cluster).
    pub fn process_groups(&self) -> Result<ProcessGroups, GroupError> {
        use plexspaces_storage::sync::LockExt;
        let node_groups = self.service(NodeGroups::default);
        let mut groups = node_groups.0.locked();
        let actor = match groups.as_ref() {
            Some(actor) => actor.clone(),
            None => {
                let actor = ProcessGroups::start(self)?;
                *groups = Some(actor.clone());
                actor
            }
        };
        Ok(ProcessGroups::new(self.clone(), actor))
    }
}

impl<A: Actor> Context<A> {
    /// The process groups ([`ActorSystem::process_groups`]).
    pub fn process_groups(&self) -> Result<ProcessGroups, GroupError> {
        self.system().process_groups()
    }
}
