//! The registry's table on one node: the entries this node owns, a copy of
//! every live peer's, and the rule that picks one entry when two nodes
//! registered the same name.
//!
//! Each node is the only writer of its own entries; a peer's copy changes
//! only by that peer's numbered changes or by a whole snapshot of its
//! table (see `replication.rs`). Reads never leave the node.

use super::replication::{RegistryMsg, Replicator};
use super::{ObjectAddress, ObjectRegistration, RegistryError};
use crate::actor::{ActorId, ActorRef};
use crate::env::NodeName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most entries one node owns, and most kept from any one peer.
pub const REGISTRY_ENTRIES_MAX: usize = 100_000;
/// Longest service endpoint, in bytes.
pub const ENDPOINT_BYTES_MAX: usize = 1024;
/// Most bytes of metadata (keys and values together) on one entry.
pub const METADATA_BYTES_MAX: usize = 4096;

/// Tenant, namespace, object id.
pub(super) type Key = (String, String, String);

/// One registration with what orders it against a same-named one from
/// another node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) registration: ObjectRegistration,
    /// Wall-clock milliseconds since the Unix epoch on the registering
    /// node: the earlier registration of a name wins.
    pub(super) registered_ms: u64,
    /// Tells one node's registrations of a name apart over time.
    pub(super) serial: u64,
}

/// Which of two same-named entries wins: the earlier, then the node name,
/// then the serial, so every node picks the same one from the same
/// entries.
fn precedence<'a>(node: &'a str, entry: &Entry) -> (u64, &'a str, u64) {
    (entry.registered_ms, node, entry.serial)
}

/// Checks what a registration holds beyond its names (which the caller
/// checks): the endpoint and metadata bounds.
pub(super) fn check_registration(registration: &ObjectRegistration) -> Result<(), RegistryError> {
    let invalid = |why: String| Err(RegistryError::InvalidName(why));
    crate::names::check("namespace", &registration.namespace)
        .map_err(RegistryError::InvalidName)?;
    crate::names::check("object id", &registration.object_id)
        .map_err(RegistryError::InvalidName)?;
    match &registration.address {
        ObjectAddress::Actor(_) => {}
        ObjectAddress::Virtual { kind, id } => {
            crate::names::check_token("virtual actor kind", kind, crate::names::NAME_BYTES_MAX)
                .map_err(RegistryError::InvalidName)?;
            crate::names::check_free_form("virtual actor id", id, ActorId::NAME_LEN_MAX, &[])
                .map_err(RegistryError::InvalidName)?;
        }
        ObjectAddress::Endpoint(endpoint) => {
            crate::names::check_free_form("endpoint", endpoint, ENDPOINT_BYTES_MAX, &[])
                .map_err(RegistryError::InvalidName)?;
        }
    }
    let mut bytes = 0;
    for (key, value) in &registration.metadata {
        crate::names::check("metadata key", key).map_err(RegistryError::InvalidName)?;
        bytes += key.len() + value.len();
    }
    if bytes > METADATA_BYTES_MAX {
        return invalid(format!(
            "metadata of {bytes} bytes: at most {METADATA_BYTES_MAX}"
        ));
    }
    Ok(())
}

/// An address as it crosses the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireAddress {
    Actor { name: String, node: String },
    Virtual { kind: String, id: String },
    Endpoint(String),
}

/// An entry as it crosses the wire (its tenant travels beside it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireEntry {
    pub(crate) namespace: String,
    pub(crate) object_id: String,
    pub(crate) address: WireAddress,
    pub(crate) metadata: Vec<(String, String)>,
    pub(crate) registered_ms: u64,
    pub(crate) serial: u64,
}

impl Entry {
    pub(super) fn to_wire(&self) -> WireEntry {
        let r = &self.registration;
        WireEntry {
            namespace: r.namespace.clone(),
            object_id: r.object_id.clone(),
            address: match &r.address {
                ObjectAddress::Actor(id) => WireAddress::Actor {
                    name: id.name().to_string(),
                    node: id.node().to_string(),
                },
                ObjectAddress::Virtual { kind, id } => WireAddress::Virtual {
                    kind: kind.clone(),
                    id: id.clone(),
                },
                ObjectAddress::Endpoint(e) => WireAddress::Endpoint(e.clone()),
            },
            metadata: r
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            registered_ms: self.registered_ms,
            serial: self.serial,
        }
    }

    /// The entry a peer sent, checked as a local registration is: a peer
    /// running another version (or a bug) cannot plant what this node
    /// would refuse.
    pub(super) fn from_wire(tenant: &str, wire: WireEntry) -> Result<(Key, Entry), RegistryError> {
        crate::names::check_token("tenant", tenant, crate::names::NAME_BYTES_MAX)
            .map_err(RegistryError::InvalidName)?;
        let address = match wire.address {
            WireAddress::Actor { name, node } => {
                let node =
                    NodeName::new(&node).map_err(|e| RegistryError::InvalidName(e.to_string()))?;
                let id = ActorId::new(&name, node)
                    .map_err(|e| RegistryError::InvalidName(e.to_string()))?;
                ObjectAddress::Actor(id)
            }
            WireAddress::Virtual { kind, id } => ObjectAddress::Virtual { kind, id },
            WireAddress::Endpoint(e) => ObjectAddress::Endpoint(e),
        };
        let registration = ObjectRegistration {
            namespace: wire.namespace,
            object_id: wire.object_id,
            address,
            metadata: wire.metadata.into_iter().collect(),
        };
        check_registration(&registration)?;
        let key = (
            tenant.to_string(),
            registration.namespace.clone(),
            registration.object_id.clone(),
        );
        let entry = Entry {
            registration,
            registered_ms: wire.registered_ms,
            serial: wire.serial,
        };
        Ok((key, entry))
    }
}

/// What this node holds of one peer's table.
#[derive(Debug)]
struct PeerTable {
    /// The peer's run (a node restarted under the same name is a new run
    /// with a new table).
    run: u64,
    /// The last of the peer's changes applied.
    version: u64,
    entries: BTreeMap<Key, Entry>,
}

/// The registry table of one node.
pub(super) struct Directory {
    node: String,
    run: u64,
    /// Bumped by every change to `local`.
    version: u64,
    next_serial: u64,
    local: BTreeMap<Key, Entry>,
    peers: BTreeMap<String, PeerTable>,
    /// The replicator, once distribution runs.
    outbox: Option<ActorRef<Replicator>>,
}

impl Directory {
    pub(super) fn new(node: &NodeName, run: u64) -> Self {
        Directory {
            node: node.to_string(),
            run,
            version: 0,
            next_serial: 0,
            local: BTreeMap::new(),
            peers: BTreeMap::new(),
            outbox: None,
        }
    }

    pub(super) fn set_outbox(&mut self, outbox: ActorRef<Replicator>) {
        self.outbox = Some(outbox);
    }

    /// The entry `key` resolves to, and the node that owns it.
    pub(super) fn winner(&self, key: &Key) -> Option<(&str, &Entry)> {
        let mine = self.local.get(key).map(|e| (self.node.as_str(), e));
        let theirs = self
            .peers
            .iter()
            .filter_map(|(node, table)| table.entries.get(key).map(|e| (node.as_str(), e)));
        mine.into_iter()
            .chain(theirs)
            .min_by(|(a, x), (b, y)| precedence(a, x).cmp(&precedence(b, y)))
    }

    /// Every winning entry of `tenant`'s `namespace`, by object id.
    pub(super) fn list(&self, tenant: &str, namespace: &str) -> Vec<&Entry> {
        let from = (tenant.to_string(), namespace.to_string(), String::new());
        let in_scope = |((t, n, _), _): &(&Key, &Entry)| t == tenant && n == namespace;
        let mut winners: BTreeMap<&str, (&str, &Entry)> = BTreeMap::new();
        let tables = std::iter::once((self.node.as_str(), &self.local)).chain(
            self.peers
                .iter()
                .map(|(node, table)| (node.as_str(), &table.entries)),
        );
        for (node, table) in tables {
            for ((_, _, id), entry) in table.range(&from..).take_while(|kv| in_scope(kv)) {
                let better = winners
                    .get(id.as_str())
                    .is_none_or(|(n, e)| precedence(node, entry) < precedence(n, e));
                if better {
                    winners.insert(id, (node, entry));
                }
            }
        }
        winners.into_values().map(|(_, e)| e).collect()
    }

    /// Registers `registration` as this node's, unless the name is taken
    /// as far as this node knows; returns its serial.
    pub(super) fn insert_local(
        &mut self,
        key: Key,
        registration: ObjectRegistration,
        registered_ms: u64,
    ) -> Result<u64, RegistryError> {
        if self.winner(&key).is_some() {
            return Err(RegistryError::AlreadyRegistered {
                namespace: registration.namespace,
                object_id: registration.object_id,
            });
        }
        if self.local.len() >= REGISTRY_ENTRIES_MAX {
            return Err(RegistryError::Full(REGISTRY_ENTRIES_MAX));
        }
        self.next_serial += 1;
        let entry = Entry {
            registration,
            registered_ms,
            serial: self.next_serial,
        };
        self.version += 1;
        self.local.insert(key.clone(), entry);
        self.publish(&key);
        Ok(self.next_serial)
    }

    /// Removes this node's entry `key` (only if its serial is `serial`,
    /// when given).
    pub(super) fn remove_local(&mut self, key: &Key, serial: Option<u64>) -> Option<Entry> {
        let entry = self.local.get(key)?;
        if serial.is_some_and(|s| s != entry.serial) {
            return None;
        }
        let removed = self.local.remove(key)?;
        self.version += 1;
        self.publish(key);
        Some(removed)
    }

    /// Passes this node's latest change to the replicator. Called under
    /// the table's lock, so changes reach it in version order; one it
    /// cannot queue leaves a gap its peers notice (and then ask for the
    /// whole table).
    fn publish(&self, key: &Key) {
        if let Some(outbox) = &self.outbox {
            let _ = outbox.try_tell(RegistryMsg::Publish {
                version: self.version,
                key: key.clone(),
            });
        }
    }

    /// This node's run and the version of its table.
    pub(super) fn digest(&self) -> (u64, u64) {
        (self.run, self.version)
    }

    /// Whether this node's copy of `node`'s table is at `run`/`version`.
    pub(super) fn has_version(&self, node: &str, run: u64, version: u64) -> bool {
        self.peers
            .get(node)
            .is_some_and(|t| t.run == run && t.version == version)
    }

    /// Applies `node`'s numbered change. False if it does not follow what
    /// this node has of that table (a change lost, or a new run): the
    /// caller then asks for the whole table.
    pub(super) fn apply_change(
        &mut self,
        node: &str,
        run: u64,
        version: u64,
        key: Key,
        entry: Option<Entry>,
    ) -> bool {
        let Some(table) = self.peers.get_mut(node) else {
            return false;
        };
        if table.run != run {
            return false;
        }
        if version <= table.version {
            return true; // already in a snapshot this node applied
        }
        if version != table.version + 1 {
            return false;
        }
        table.version = version;
        match entry {
            Some(entry) if table.entries.len() < REGISTRY_ENTRIES_MAX => {
                table.entries.insert(key, entry);
            }
            Some(_) => {
                tracing::warn!("registry: {node} holds over {REGISTRY_ENTRIES_MAX} entries");
            }
            None => {
                table.entries.remove(&key);
            }
        }
        true
    }

    /// Replaces this node's copy of `node`'s table with a snapshot.
    pub(super) fn replace_peer(
        &mut self,
        node: String,
        run: u64,
        version: u64,
        entries: BTreeMap<Key, Entry>,
    ) {
        debug_assert_ne!(node, self.node, "a node's own table is never a peer's");
        self.peers.insert(
            node,
            PeerTable {
                run,
                version,
                entries,
            },
        );
    }

    /// Forgets the tables of nodes not in `live`.
    pub(super) fn retain_peers(&mut self, live: &std::collections::BTreeSet<String>) {
        self.peers.retain(|node, _| live.contains(node));
    }

    /// This node's own entry `key`.
    pub(super) fn local_entry(&self, key: &Key) -> Option<&Entry> {
        self.local.get(key)
    }

    /// This node's own entries, for a snapshot.
    pub(super) fn local_entries(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.local.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> Key {
        ("acme".into(), "ns".into(), id.into())
    }

    fn endpoint(id: &str, at: &str) -> ObjectRegistration {
        ObjectRegistration::new("ns", id, ObjectAddress::Endpoint(at.into()))
    }

    fn peer_entry(id: &str, at: &str, registered_ms: u64) -> Entry {
        Entry {
            registration: endpoint(id, at),
            registered_ms,
            serial: 1,
        }
    }

    fn directory(node: &str) -> Directory {
        Directory::new(&NodeName::new(node).unwrap(), 1)
    }

    #[test]
    fn the_earlier_registration_of_a_name_wins_on_every_node() {
        let mut b = directory("b");
        b.insert_local(key("svc"), endpoint("svc", "from-b"), 200)
            .unwrap();
        // Node a registered the same name earlier, out of b's sight.
        let mut theirs = BTreeMap::new();
        theirs.insert(key("svc"), peer_entry("svc", "from-a", 100));
        b.replace_peer("a".into(), 7, 1, theirs.clone());
        let (node, entry) = b.winner(&key("svc")).unwrap();
        assert_eq!((node, entry.registered_ms), ("a", 100));
        assert_eq!(b.list("acme", "ns").len(), 1, "one entry per name");
        // Node c sees both from the outside and picks the same one.
        let mut c = directory("c");
        c.replace_peer("a".into(), 7, 1, theirs);
        let mut bs = BTreeMap::new();
        bs.insert(key("svc"), b.local_entry(&key("svc")).unwrap().clone());
        c.replace_peer("b".into(), 3, 1, bs);
        assert_eq!(c.winner(&key("svc")).unwrap().0, "a");
        // Equal times: the node name decides, the same way everywhere.
        let mut tie = BTreeMap::new();
        tie.insert(key("svc"), peer_entry("svc", "from-0", 200));
        b.replace_peer("0".into(), 1, 1, tie);
        b.retain_peers(&["0".to_string()].into());
        assert_eq!(b.winner(&key("svc")).unwrap().0, "0");
        // The hidden local entry takes over when the winner goes.
        b.retain_peers(&Default::default());
        assert_eq!(b.winner(&key("svc")).unwrap().0, "b");
    }

    #[test]
    fn a_change_that_does_not_follow_the_copy_asks_for_the_table() {
        let mut d = directory("a");
        let put = |id: &str| Some(peer_entry(id, "x", 1));
        assert!(
            !d.apply_change("b", 5, 1, key("x"), put("x")),
            "no copy yet"
        );
        d.replace_peer("b".into(), 5, 3, BTreeMap::new());
        assert!(
            d.apply_change("b", 5, 2, key("old"), put("old")),
            "already had it"
        );
        assert!(
            d.winner(&key("old")).is_none(),
            "an old change is not reapplied"
        );
        assert!(d.apply_change("b", 5, 4, key("x"), put("x")));
        assert!(d.winner(&key("x")).is_some());
        assert!(
            !d.apply_change("b", 5, 6, key("y"), put("y")),
            "change 5 was lost"
        );
        assert!(
            !d.apply_change("b", 6, 5, key("y"), put("y")),
            "a new run of b"
        );
        assert!(d.has_version("b", 5, 4));
        assert!(d.apply_change("b", 5, 5, key("x"), None));
        assert!(d.winner(&key("x")).is_none());
    }

    #[test]
    fn a_peer_cannot_plant_what_this_node_would_refuse() {
        let good = peer_entry("svc", "http://x", 1).to_wire();
        assert!(Entry::from_wire("acme", good.clone()).is_ok());
        let mut bad_names = vec![
            WireEntry {
                namespace: String::new(),
                ..good.clone()
            },
            WireEntry {
                object_id: "a\u{0}b".into(),
                ..good.clone()
            },
            WireEntry {
                address: WireAddress::Actor {
                    name: "x@y".into(),
                    node: "n1".into(),
                },
                ..good.clone()
            },
            WireEntry {
                address: WireAddress::Endpoint("e".repeat(ENDPOINT_BYTES_MAX + 1)),
                ..good.clone()
            },
            WireEntry {
                metadata: vec![("k".into(), "v".repeat(METADATA_BYTES_MAX))],
                ..good.clone()
            },
        ];
        for bad in bad_names.drain(..) {
            assert!(Entry::from_wire("acme", bad.clone()).is_err(), "{bad:?}");
        }
        assert!(Entry::from_wire("ac/me", good).is_err());
    }

    #[test]
    fn a_node_owns_at_most_the_bound() {
        let mut d = directory("a");
        for i in 0..REGISTRY_ENTRIES_MAX {
            d.local.insert(key(&i.to_string()), peer_entry("x", "x", 1));
        }
        assert_eq!(
            d.insert_local(key("one-more"), endpoint("one-more", "x"), 1),
            Err(RegistryError::Full(REGISTRY_ENTRIES_MAX))
        );
    }
}
