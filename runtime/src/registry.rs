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
//! exits (as a registered name in Erlang). Registrations are kept by the
//! node they were made on; a registration may point at an actor on another
//! node, and [`TenantRegistry::lookup_actor`] then returns a remote ref.
//!
//! Isolation is enforced on names: the registry hands out refs only within
//! a tenant. Code that already holds an [`ActorId`] (a capability, like an
//! Erlang pid) can still resolve it directly with
//! [`ActorSystem::resolve`](crate::actor::ActorSystem::resolve).

use crate::actor::{Actor, ActorId, ActorRef, ActorSystem};
use crate::distribution::{RemoteActor, ResolveError};
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

type Key = (String, String, String);

struct Entry {
    registration: ObjectRegistration,
    /// Distinguishes registrations of one name over time, so an exiting
    /// actor's watcher never removes its successor's entry.
    serial: u64,
}

#[derive(Default)]
struct Table {
    entries: BTreeMap<Key, Entry>,
    next_serial: u64,
}

/// The node's registry of every tenant's objects. Reached only through
/// per-tenant handles.
#[derive(Clone, Default)]
pub(crate) struct ObjectRegistry {
    table: Arc<Mutex<Table>>,
}

impl ObjectRegistry {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.locked()
    }
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

fn check_name(what: &str, name: &str) -> Result<(), RegistryError> {
    crate::names::check(what, name).map_err(RegistryError::InvalidName)
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
        check_name("namespace", &registration.namespace)?;
        check_name("object id", &registration.object_id)?;
        let key = self.key(&registration.namespace, &registration.object_id);
        let mut table = self.registry.table();
        if table.entries.contains_key(&key) {
            return Err(RegistryError::AlreadyRegistered {
                namespace: registration.namespace,
                object_id: registration.object_id,
            });
        }
        table.next_serial += 1;
        let serial = table.next_serial;
        table.entries.insert(
            key,
            Entry {
                registration,
                serial,
            },
        );
        Ok(serial)
    }

    /// Registers an object (an actor id, a virtual actor, a service
    /// endpoint). Fails if the namespace already holds its id.
    pub fn register(&self, registration: ObjectRegistration) -> Result<(), RegistryError> {
        self.insert(registration).map(drop)
    }

    /// Registers a running actor as `namespace`/`object_id`; the entry is
    /// removed when the actor exits.
    pub fn register_actor<A: Actor>(
        &self,
        namespace: &str,
        object_id: &str,
        actor: &ActorRef<A>,
    ) -> Result<(), RegistryError> {
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
            let mut table = registry.table();
            if table.entries.get(&key).is_some_and(|e| e.serial == serial) {
                table.entries.remove(&key);
            }
        }));
        Ok(())
    }

    /// The registration of `namespace`/`object_id`, if this tenant has one
    /// (and, with `object_type`, only if it is of that type).
    pub fn lookup(
        &self,
        namespace: &str,
        object_id: &str,
        object_type: Option<ObjectType>,
    ) -> Option<ObjectRegistration> {
        let table = self.registry.table();
        let entry = table.entries.get(&self.key(namespace, object_id))?;
        match object_type {
            Some(wanted) if entry.registration.object_type() != wanted => None,
            _ => Some(entry.registration.clone()),
        }
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

    /// Removes `namespace`/`object_id` and returns what it was.
    pub fn unregister(
        &self,
        namespace: &str,
        object_id: &str,
    ) -> Result<ObjectRegistration, RegistryError> {
        self.registry
            .table()
            .entries
            .remove(&self.key(namespace, object_id))
            .map(|e| e.registration)
            .ok_or_else(|| RegistryError::NotFound {
                namespace: namespace.to_string(),
                object_id: object_id.to_string(),
            })
    }

    /// Every registration in `namespace`, sorted by object id.
    pub fn list(&self, namespace: &str) -> Vec<ObjectRegistration> {
        let table = self.registry.table();
        let from = self.key(namespace, "");
        table
            .entries
            .range(from..)
            .take_while(|((t, n, _), _)| t == &self.tenant && n == namespace)
            .map(|(_, e)| e.registration.clone())
            .collect()
    }
}

impl ActorSystem {
    /// The ObjectRegistry as tenant `tenant` sees it: only that tenant's
    /// objects (see [`crate::registry`]).
    pub fn registry(&self, tenant: &str) -> Result<TenantRegistry, RegistryError> {
        let objects = ObjectRegistry::clone(&self.service(ObjectRegistry::default));
        TenantRegistry::new(tenant, objects, self.clone())
    }
}
