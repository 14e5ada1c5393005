//! The ObjectRegistry: actors, virtual actors and services registered and
//! found by tenant, namespace and id.
//!
//! Every operation goes through a [`TenantRegistry`], a handle bound to one
//! tenant ([`ActorSystem::registry`]). Nothing in its API names a tenant,
//! so code holding one tenant's handle can neither see, look up, message
//! nor unregister another tenant's objects: the same namespace and id in
//! two tenants are two unrelated entries.
//!
//! An actor registration lasts until it is unregistered or the actor
//! exits (as a registered name in Erlang).
//!
//! # Across a cluster
//!
//! With distribution running, the registry is cluster-wide: a
//! registration made on any node is seen by lookups on every node, which
//! resolve it to a local or a remote ref. Each node owns the entries it
//! made and copies them to every peer (see `replication.rs`); a lookup
//! reads this node's copy and never leaves the node. The model is
//! Erlang's `pg` rather than `global`, eventually consistent:
//!
//! - right after a registration on node a, a lookup on node b may not
//!   find it yet (on a healthy link, one message later);
//! - the entries of a node declared down are gone from every view; while
//!   it is only suspect they stay, so a lookup during a partition may
//!   return an entry whose node cannot be reached, and does not see
//!   registrations made on the other side;
//! - `register` refuses a name this node sees taken, but two nodes that
//!   cannot see each other can both register it. Every node then resolves
//!   the name to the same entry, the earlier registration (by the
//!   registering nodes' wall clocks, then node name); the other is kept
//!   by its node, hidden, and takes over if the winner goes;
//! - only the owning node can unregister an entry
//!   ([`RegistryError::OwnedElsewhere`] names it).
//!
//! Isolation is enforced on names: the registry hands out refs only within
//! a tenant. Code that already holds an [`ActorId`] (a capability, like an
//! Erlang pid) can still resolve it directly with
//! [`ActorSystem::resolve`](crate::actor::ActorSystem::resolve).

mod directory;
pub(crate) mod replication;

pub use directory::{ENDPOINT_BYTES_MAX, METADATA_BYTES_MAX, REGISTRY_ENTRIES_MAX};
pub use replication::RESYNC_EVERY;

use crate::actor::{ActorId, ActorRef, ActorSystem};
use crate::distribution::{Distribution, DistributionError, RemoteActor, ResolveError};
use crate::env::NodeName;
use crate::seams::{Clock, Rng};
use directory::{Directory, Key};
use plexspaces_storage::sync::LockExt;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// Longest tenant id, namespace or object id, in bytes.
pub const REGISTRY_NAME_BYTES_MAX: usize = crate::names::NAME_BYTES_MAX;

/// What a registered object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectType {
    /// An actor, addressed by its id.
    Actor,
    /// A virtual actor, addressed by kind and id.
    VirtualActor,
    /// A service outside the actor system, addressed by an endpoint.
    Service,
}

/// Where a registered object is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectAddress {
    /// An actor on this or another node.
    Actor(ActorId),
    /// A virtual actor (see [`crate::virtual_actor`]).
    Virtual {
        /// Its kind.
        kind: String,
        /// Its id.
        id: String,
    },
    /// A service endpoint (a URL, a host:port...), opaque to the registry.
    Endpoint(String),
}

impl ObjectAddress {
    /// The object type this address stands for.
    pub fn object_type(&self) -> ObjectType {
        match self {
            ObjectAddress::Actor(_) => ObjectType::Actor,
            ObjectAddress::Virtual { .. } => ObjectType::VirtualActor,
            ObjectAddress::Endpoint(_) => ObjectType::Service,
        }
    }
}

/// One registered object, within its tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRegistration {
    /// The namespace within the tenant.
    pub namespace: String,
    /// The object's id within the namespace.
    pub object_id: String,
    /// Where it is reached.
    pub address: ObjectAddress,
    /// Free-form labels (version, region...), sorted by key.
    pub metadata: BTreeMap<String, String>,
}

impl ObjectRegistration {
    /// A registration of `address` as `namespace`/`object_id`, without
    /// metadata.
    pub fn new(
        namespace: impl Into<String>,
        object_id: impl Into<String>,
        address: ObjectAddress,
    ) -> Self {
        ObjectRegistration {
            namespace: namespace.into(),
            object_id: object_id.into(),
            address,
            metadata: BTreeMap::new(),
        }
    }

    /// Adds a metadata label.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Its object type.
    pub fn object_type(&self) -> ObjectType {
        self.address.object_type()
    }
}

/// A registry operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryError {
    /// A tenant id, namespace or object id is empty, too long, or holds a
    /// control character (tenant ids: `[A-Za-z0-9._-]` only).
    InvalidName(String),
    /// The namespace already holds this object id (in this tenant).
    AlreadyRegistered {
        /// The namespace.
        namespace: String,
        /// The object id.
        object_id: String,
    },
    /// No such object in this tenant.
    NotFound {
        /// The namespace.
        namespace: String,
        /// The object id.
        object_id: String,
    },
    /// The object is not of the type asked for.
    WrongType {
        /// What it is.
        found: ObjectType,
        /// What was asked for.
        wanted: ObjectType,
    },
    /// The registered actor could not be reached.
    Resolve(ResolveError),
    /// The entry belongs to another node; only that node can unregister
    /// it.
    OwnedElsewhere(NodeName),
    /// This node already owns the most entries it may
    /// ([`REGISTRY_ENTRIES_MAX`]).
    Full(usize),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::InvalidName(why) => write!(f, "invalid registry name: {why}"),
            RegistryError::AlreadyRegistered {
                namespace,
                object_id,
            } => write!(f, "{namespace}/{object_id} is already registered"),
            RegistryError::NotFound {
                namespace,
                object_id,
            } => write!(f, "{namespace}/{object_id} is not registered"),
            RegistryError::WrongType { found, wanted } => {
                write!(f, "the object is a {found:?}, not a {wanted:?}")
            }
            RegistryError::Resolve(e) => write!(f, "cannot reach the registered actor: {e}"),
            RegistryError::OwnedElsewhere(node) => {
                write!(f, "the entry belongs to node {node}; unregister it there")
            }
            RegistryError::Full(max) => write!(f, "this node already owns {max} entries"),
        }
    }
}

impl std::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RegistryError::Resolve(e) => Some(e),
            _ => None,
        }
    }
}

/// The node's registry of every tenant's objects. Reached only through
/// per-tenant handles.
#[derive(Clone)]
pub(crate) struct ObjectRegistry {
    directory: Arc<Mutex<Directory>>,
}

impl ObjectRegistry {
    fn new(system: &ActorSystem) -> Self {
        // A new run of a node is a new table to its peers.
        let run = system.env().next_u64();
        ObjectRegistry {
            directory: Arc::new(Mutex::new(Directory::new(system.node(), run))),
        }
    }

    fn directory(&self) -> MutexGuard<'_, Directory> {
        self.directory.locked()
    }
}

/// Starts copying the registry to the cluster (with distribution).
pub(crate) fn replicate(
    system: &ActorSystem,
    dist: &Distribution,
) -> Result<(), DistributionError> {
    let objects = system.service(|| ObjectRegistry::new(system));
    replication::start(system, dist, objects.directory.clone())
}

/// One tenant's view of the registry. Cheap to clone.
#[derive(Clone)]
pub struct TenantRegistry {
    tenant: String,
    registry: ObjectRegistry,
    system: ActorSystem,
}

impl fmt::Debug for TenantRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantRegistry")
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl TenantRegistry {
    pub(crate) fn new(
        tenant: &str,
        registry: ObjectRegistry,
        system: ActorSystem,
    ) -> Result<Self, RegistryError> {
        crate::names::check_token("tenant", tenant, crate::names::NAME_BYTES_MAX)
            .map_err(RegistryError::InvalidName)?;
        Ok(TenantRegistry {
            tenant: tenant.to_string(),
            registry,
            system,
        })
    }

    /// The tenant this handle is bound to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    fn key(&self, namespace: &str, object_id: &str) -> Key {
        (
            self.tenant.clone(),
            namespace.to_string(),
            object_id.to_string(),
        )
    }

    fn insert(&self, registration: ObjectRegistration) -> Result<u64, RegistryError> {
        directory::check_registration(&registration)?;
        let key = self.key(&registration.namespace, &registration.object_id);
        let registered_ms = crate::seams::unix_millis(self.system.env().wall_clock());
        self.registry
            .directory()
            .insert_local(key, registration, registered_ms)
    }

    /// Registers an object (an actor id, a virtual actor, a service
    /// endpoint), owned by this node. Fails if the namespace already holds
    /// its id, as far as this node knows (see the [module](self) on two
    /// nodes registering one name).
    pub fn register(&self, registration: ObjectRegistration) -> Result<(), RegistryError> {
        self.insert(registration).map(drop)
    }

    /// Registers a running actor of this node as `namespace`/`object_id`;
    /// the entry is removed when the actor exits. With distribution
    /// running, the actor is exported, so other nodes can message it.
    pub fn register_actor<A: RemoteActor>(
        &self,
        namespace: &str,
        object_id: &str,
        actor: &ActorRef<A>,
    ) -> Result<(), RegistryError> {
        if let Some(dist) = self.system.distribution() {
            dist.export(actor).map_err(RegistryError::Resolve)?;
        }
        let registration = ObjectRegistration::new(
            namespace,
            object_id,
            ObjectAddress::Actor(actor.id().clone()),
        );
        let serial = self.insert(registration)?;
        let (actor, registry) = (actor.clone(), self.registry.clone());
        let key = self.key(namespace, object_id);
        drop(self.system.env().spawn(async move {
            actor.wait_exit().await;
            registry.directory().remove_local(&key, Some(serial));
        }));
        Ok(())
    }

    /// The registration of `namespace`/`object_id`, if this tenant has one
    /// on any node this node knows of (and, with `object_type`, only if it
    /// is of that type). Reads this node's copy; never waits.
    pub fn lookup(
        &self,
        namespace: &str,
        object_id: &str,
        object_type: Option<ObjectType>,
    ) -> Option<ObjectRegistration> {
        let directory = self.registry.directory();
        let (_, entry) = directory.winner(&self.key(namespace, object_id))?;
        match object_type {
            Some(wanted) if entry.registration.object_type() != wanted => None,
            _ => Some(entry.registration.clone()),
        }
    }

    /// The node that owns the entry `namespace`/`object_id` resolves to.
    pub fn owner(&self, namespace: &str, object_id: &str) -> Option<NodeName> {
        let directory = self.registry.directory();
        let (node, _) = directory.winner(&self.key(namespace, object_id))?;
        NodeName::new(node).ok()
    }

    /// A ref to the actor registered as `namespace`/`object_id`: a local
    /// ref, or a remote one if it runs on another node.
    pub fn lookup_actor<A: RemoteActor>(
        &self,
        namespace: &str,
        object_id: &str,
    ) -> Result<ActorRef<A>, RegistryError> {
        let registration =
            self.lookup(namespace, object_id, None)
                .ok_or_else(|| RegistryError::NotFound {
                    namespace: namespace.to_string(),
                    object_id: object_id.to_string(),
                })?;
        match registration.address {
            ObjectAddress::Actor(id) => self
                .system
                .resolve::<A>(&id)
                .map_err(RegistryError::Resolve),
            other => Err(RegistryError::WrongType {
                found: other.object_type(),
                wanted: ObjectType::Actor,
            }),
        }
    }

    /// Removes this node's entry `namespace`/`object_id` and returns what
    /// it was. An entry another node owns is refused
    /// ([`RegistryError::OwnedElsewhere`]).
    pub fn unregister(
        &self,
        namespace: &str,
        object_id: &str,
    ) -> Result<ObjectRegistration, RegistryError> {
        let key = self.key(namespace, object_id);
        let mut directory = self.registry.directory();
        if let Some(entry) = directory.remove_local(&key, None) {
            return Ok(entry.registration);
        }
        match directory.winner(&key) {
            Some((node, _)) => Err(RegistryError::OwnedElsewhere(
                NodeName::new(node).map_err(|e| RegistryError::InvalidName(e.to_string()))?,
            )),
            None => Err(RegistryError::NotFound {
                namespace: namespace.to_string(),
                object_id: object_id.to_string(),
            }),
        }
    }

    /// Every registration in `namespace` on every node this node knows
    /// of, sorted by object id.
    pub fn list(&self, namespace: &str) -> Vec<ObjectRegistration> {
        self.registry
            .directory()
            .list(&self.tenant, namespace)
            .into_iter()
            .map(|e| e.registration.clone())
            .collect()
    }
}

impl ActorSystem {
    /// The ObjectRegistry as tenant `tenant` sees it: only that tenant's
    /// objects (see [`crate::registry`]).
    pub fn registry(&self, tenant: &str) -> Result<TenantRegistry, RegistryError> {
        let objects = ObjectRegistry::clone(&self.service(|| ObjectRegistry::new(self)));
        TenantRegistry::new(tenant, objects, self.clone())
    }
}
