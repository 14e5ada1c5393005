//! Copies every node's registry entries to every other node.
//!
//! Each node owns its entries and numbers its changes (a version per run).
//! - A change goes to every Up peer as `Changed`; a peer applies it if it
//!   follows its copy of that node's table and otherwise asks (`SyncMe`)
//!   for the whole table, which comes back in pages (`SyncPage`).
//! - On every membership change and every [`RESYNC_EVERY`], each node
//!   sends every Up peer its run and version (`Digest`); a peer whose copy
//!   differs asks for the table. A change lost with a broken connection is
//!   so repaired within `RESYNC_EVERY` of the link working again, at the
//!   cost of one small frame per peer when nothing changed.
//! - On every membership change, the tables of nodes neither Up nor
//!   Suspect are dropped: the entries of a node declared down are gone.

use super::directory::{Directory, Entry, Key, WireEntry};
use crate::actor::{Actor, ActorError, ActorSystem, Context};
use crate::distribution::{Distribution, DistributionError, peers};
use crate::env::NodeName;
use plexspaces_storage::sync::LockExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The name of each node's replicator actor.
pub(super) const REPLICATOR: &str = "plexspaces.registry";
/// How often each node tells its peers its table's version.
pub const RESYNC_EVERY: Duration = Duration::from_secs(2);
/// Entries per snapshot page: well inside a frame at the entry bounds.
const PAGE_ENTRIES: usize = 256;

/// One change to an entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Change {
    Put(WireEntry),
    Remove {
        namespace: String,
        object_id: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum RegistryMsg {
    /// From this node's table: its entry `key` changed, making `version`;
    /// pass it on. (It carries no entry: the replicator sends what its
    /// own table holds, so this message, whoever sent it, can only make
    /// the node repeat itself.)
    Publish { version: u64, key: Key },
    /// From a peer: its change number `version` of run `run`.
    Changed {
        from: String,
        run: u64,
        version: u64,
        tenant: String,
        change: Change,
    },
    /// From a peer: its table is at `run`/`version`.
    Digest {
        from: String,
        run: u64,
        version: u64,
    },
    /// From a peer: send it this node's whole table.
    SyncMe { from: String },
    /// From a peer: a page of its table.
    SyncPage(SnapshotPage),
    /// Membership changed.
    ViewChanged,
    /// Every `RESYNC_EVERY`.
    Resync,
}

/// Page `page` of node `from`'s table at `run`/`version`: its entries,
/// each beside its tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SnapshotPage {
    from: String,
    run: u64,
    version: u64,
    page: u32,
    last: bool,
    entries: Vec<(String, WireEntry)>,
}

/// A peer's snapshot being received.
struct Assembly {
    run: u64,
    version: u64,
    next_page: u32,
    entries: BTreeMap<Key, Entry>,
}

/// Each node's replicator: the registry's side of the network.
pub(crate) struct Replicator {
    directory: Arc<Mutex<Directory>>,
    assembling: BTreeMap<String, Assembly>,
}

/// Starts this node's replicator (with distribution).
pub(super) fn start(
    system: &ActorSystem,
    dist: &Distribution,
    directory: Arc<Mutex<Directory>>,
) -> Result<(), DistributionError> {
    let service = |e: &dyn std::fmt::Display| {
        DistributionError::Service(format!("the object registry's replicator: {e}"))
    };
    let replicator = Replicator {
        directory: directory.clone(),
        assembling: BTreeMap::new(),
    };
    let actor = system
        .spawn(REPLICATOR, replicator)
        .map_err(|e| service(&e))?;
    dist.export(&actor).map_err(|e| service(&e))?;
    let listener = actor.clone();
    dist.on_view_change(Arc::new(move || {
        let _ = listener.try_tell(RegistryMsg::ViewChanged);
    }));
    directory.locked().set_outbox(actor);
    Ok(())
}

fn tell(ctx: &Context<Replicator>, peer: NodeName, msg: RegistryMsg) {
    peers::tell_peer::<Replicator>(ctx.system(), REPLICATOR, peer, msg);
}

impl Replicator {
    fn me(ctx: &Context<Self>) -> String {
        ctx.system().node().to_string()
    }

    fn send_digests(&self, ctx: &Context<Self>) {
        let (run, version) = self.directory.locked().digest();
        for peer in peers::up_peers(ctx.system()) {
            let from = Self::me(ctx);
            tell(ctx, peer, RegistryMsg::Digest { from, run, version });
        }
    }

    fn ask_for_table(ctx: &Context<Self>, node: &str) {
        if let Ok(peer) = NodeName::new(node) {
            tell(
                ctx,
                peer,
                RegistryMsg::SyncMe {
                    from: Self::me(ctx),
                },
            );
        }
    }

    fn publish(&self, ctx: &Context<Self>, version: u64, key: Key) {
        let (run, change) = {
            let directory = self.directory.locked();
            let change = match directory.local_entry(&key) {
                Some(entry) => Change::Put(entry.to_wire()),
                None => Change::Remove {
                    namespace: key.1.clone(),
                    object_id: key.2.clone(),
                },
            };
            (directory.digest().0, change)
        };
        let tenant = key.0;
        for peer in peers::up_peers(ctx.system()) {
            let msg = RegistryMsg::Changed {
                from: Self::me(ctx),
                run,
                version,
                tenant: tenant.clone(),
                change: change.clone(),
            };
            tell(ctx, peer, msg);
        }
    }

    fn send_table(&self, ctx: &Context<Self>, to: &str) {
        let Ok(peer) = NodeName::new(to) else {
            return;
        };
        // One consistent snapshot: taken under the lock, sent after.
        let (run, version, all) = {
            let directory = self.directory.locked();
            let (run, version) = directory.digest();
            let all: Vec<(String, WireEntry)> = directory
                .local_entries()
                .map(|(key, entry)| (key.0.clone(), entry.to_wire()))
                .collect();
            (run, version, all)
        };
        let pages = all.len().div_ceil(PAGE_ENTRIES).max(1);
        let mut entries = all.into_iter();
        for page in 0..pages {
            let msg = RegistryMsg::SyncPage(SnapshotPage {
                from: Self::me(ctx),
                run,
                version,
                page: u32::try_from(page).unwrap_or(u32::MAX),
                last: page + 1 == pages,
                entries: entries.by_ref().take(PAGE_ENTRIES).collect(),
            });
            tell(ctx, peer.clone(), msg);
        }
    }

    fn receive_page(&mut self, ctx: &Context<Self>, page: SnapshotPage) {
        let SnapshotPage {
            from,
            run,
            version,
            page,
            last,
            entries,
        } = page;
        if from == Self::me(ctx) {
            return;
        }
        if page == 0 {
            self.assembling.insert(
                from.clone(),
                Assembly {
                    run,
                    version,
                    next_page: 0,
                    entries: BTreeMap::new(),
                },
            );
        }
        let Some(assembly) = self.assembling.get_mut(&from) else {
            return; // the first page was lost: the next digest asks again
        };
        if (assembly.run, assembly.version, assembly.next_page) != (run, version, page) {
            self.assembling.remove(&from);
            return;
        }
        assembly.next_page += 1;
        for (tenant, wire) in entries {
            if assembly.entries.len() >= super::REGISTRY_ENTRIES_MAX {
                tracing::warn!(
                    "registry: {from} holds over {} entries",
                    super::REGISTRY_ENTRIES_MAX
                );
                break;
            }
            match Entry::from_wire(&tenant, wire) {
                Ok((key, entry)) => {
                    assembly.entries.insert(key, entry);
                }
                Err(e) => tracing::warn!("registry: refused an entry from {from}: {e}"),
            }
        }
        if last && let Some(done) = self.assembling.remove(&from) {
            // A node declared down since it sent this stays forgotten.
            if peers::live_nodes(ctx.system()).contains(&from) {
                self.directory
                    .locked()
                    .replace_peer(from, done.run, done.version, done.entries);
            }
        }
    }

    fn receive_change(
        &mut self,
        ctx: &Context<Self>,
        from: String,
        run: u64,
        version: u64,
        tenant: String,
        change: Change,
    ) {
        if from == Self::me(ctx) {
            return;
        }
        let (key, entry) = match change {
            Change::Put(wire) => match Entry::from_wire(&tenant, wire) {
                Ok((key, entry)) => (key, Some(entry)),
                Err(e) => {
                    tracing::warn!("registry: refused an entry from {from}: {e}");
                    return;
                }
            },
            Change::Remove {
                namespace,
                object_id,
            } => ((tenant, namespace, object_id), None),
        };
        let applied = self
            .directory
            .locked()
            .apply_change(&from, run, version, key, entry);
        if !applied {
            Self::ask_for_table(ctx, &from);
        }
    }
}

impl Actor for Replicator {
    type Msg = RegistryMsg;
    type Reply = ();

    async fn pre_start(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        ctx.send_interval(RESYNC_EVERY, RegistryMsg::Resync)
            .map_err(|e| ActorError::new(e.to_string()))?;
        Ok(())
    }

    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        msg: RegistryMsg,
    ) -> Result<(), ActorError> {
        match msg {
            RegistryMsg::Publish { version, key } => self.publish(ctx, version, key),
            RegistryMsg::Changed {
                from,
                run,
                version,
                tenant,
                change,
            } => self.receive_change(ctx, from, run, version, tenant, change),
            RegistryMsg::Digest { from, run, version } => {
                let current = from == Self::me(ctx)
                    || self.directory.locked().has_version(&from, run, version);
                if !current {
                    Self::ask_for_table(ctx, &from);
                }
            }
            RegistryMsg::SyncMe { from } => self.send_table(ctx, &from),
            RegistryMsg::SyncPage(page) => self.receive_page(ctx, page),
            RegistryMsg::ViewChanged => {
                let live = peers::live_nodes(ctx.system());
                self.directory.locked().retain_peers(&live);
                self.assembling.retain(|node, _| live.contains(node));
                self.send_digests(ctx);
            }
            RegistryMsg::Resync => self.send_digests(ctx),
        }
        Ok(())
    }
}

/// The replicators' messages (they cross the wire), for
/// [`crate::encoded_types`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    use super::directory::WireAddress;
    v.visit("registry::RegistryMsg", || {
        let entry = WireEntry {
            namespace: "billing".into(),
            object_id: "invoicer".into(),
            address: WireAddress::Actor {
                name: "echo".into(),
                node: "n1".into(),
            },
            metadata: vec![("version".into(), "2".into())],
            registered_ms: 1_700_000_000_000,
            serial: 3,
        };
        vec![
            RegistryMsg::Changed {
                from: "n1".into(),
                run: 7,
                version: 4,
                tenant: "acme".into(),
                change: Change::Put(entry.clone()),
            },
            RegistryMsg::Changed {
                from: "n1".into(),
                run: 7,
                version: 5,
                tenant: "acme".into(),
                change: Change::Remove {
                    namespace: "billing".into(),
                    object_id: "invoicer".into(),
                },
            },
            RegistryMsg::Digest {
                from: "n2".into(),
                run: 9,
                version: 12,
            },
            RegistryMsg::SyncPage(SnapshotPage {
                from: "n2".into(),
                run: 9,
                version: 12,
                page: 0,
                last: true,
                entries: vec![
                    ("acme".into(), entry),
                    (
                        "globex".into(),
                        WireEntry {
                            namespace: "svc".into(),
                            object_id: "api".into(),
                            address: WireAddress::Endpoint("https://api.example".into()),
                            metadata: Vec::new(),
                            registered_ms: 1,
                            serial: 1,
                        },
                    ),
                ],
            }),
        ]
    });
}
