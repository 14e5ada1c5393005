//! The facet an actor reaches its key-value store through.

use super::{KvError, KvStore};
use crate::actor::facet::{
    Facet, FacetCategory, FacetConfig, FacetConfigError, FacetDescriptor, FacetOption,
    FacetRegistry, Hooks, OptionKind,
};
use crate::env::Env;
use crate::seams::Clock;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Its name in the chain (and, later, the registry).
pub const KV_FACET: &str = "key_value";

/// A tenant's namespace of one key-value store. Every key is confined
/// under a prefix naming both with their lengths (`5:acme/6:orders/`), so
/// no key one facet accepts can reach another tenant's or namespace's.
/// A clone is a handle to the same store and namespace (take one out of a
/// durable handler's context to call inside `ctx.run`).
#[derive(Clone)]
pub struct KeyValueFacet {
    store: Arc<dyn KvStore>,
    prefix: String,
    env: Option<Env>,
}

impl KeyValueFacet {
    /// `store`, confined to `tenant` and `namespace`.
    pub fn new(store: Arc<dyn KvStore>, tenant: &str, namespace: &str) -> Self {
        KeyValueFacet {
            store,
            prefix: format!("{}:{tenant}/{}:{namespace}/", tenant.len(), namespace.len()),
            env: None,
        }
    }

    /// What it is, for the registry: `tenant` and `namespace` (both
    /// required; the store is the one it was registered with).
    pub fn descriptor() -> FacetDescriptor {
        FacetDescriptor::new(
            KV_FACET,
            FacetCategory::Domain,
            "a key-value store confined to one tenant and namespace (get, set with TTL, delete, compare-and-set, increment, list)",
        )
        .option(
            FacetOption::new("tenant", OptionKind::Str, "the tenant whose keys it reaches").required(),
        )
        .option(
            FacetOption::new("namespace", OptionKind::Str, "the namespace within the tenant")
                .required(),
        )
    }

    /// Registers [`KV_FACET`] on `registry`, building facets on `store`,
    /// so actor kinds attach it by configuration
    /// (`tenant = "acme"`, `namespace = "orders"`).
    pub fn register(
        registry: &FacetRegistry,
        store: Arc<dyn KvStore>,
    ) -> Result<(), FacetConfigError> {
        registry.register(Self::descriptor(), move |config| {
            Ok(Box::new(Self::from_config(store.clone(), config)?) as Box<dyn Facet>)
        })
    }

    /// Builds one on `store` from configuration.
    pub fn from_config(
        store: Arc<dyn KvStore>,
        config: FacetConfig,
    ) -> Result<Self, FacetConfigError> {
        let (tenant, namespace) =
            crate::capabilities::tenant_and_namespace(Self::descriptor(), config, KV_FACET)?;
        Ok(Self::new(store, &tenant, &namespace))
    }

    /// Attached to `env` (its clock judges expiry) without an actor: for
    /// a workflow step or any code outside an actor. An actor's facet is
    /// attached when the actor starts.
    pub fn on(mut self, env: &Env) -> Self {
        self.env = Some(env.clone());
        self
    }

    fn now(&self) -> Result<SystemTime, KvError> {
        self.env
            .as_ref()
            .map(|env| env.wall_clock())
            .ok_or_else(|| KvError::Unavailable("the facet is not attached to an actor".into()))
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The value at `key`, if any and not expired.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let now = self.now()?;
        Ok(self.store.get(&self.key(key), now).await?.map(|e| e.value))
    }

    /// Sets `key` to `value`, expiring after `ttl` (none: never).
    pub async fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        let now = self.now()?;
        let expires = ttl.map(|ttl| now + ttl);
        self.store.set(&self.key(key), value, expires, now).await
    }

    /// Deletes `key`; whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, KvError> {
        let now = self.now()?;
        self.store.delete(&self.key(key), now).await
    }

    /// Sets `key` to `new` only if it holds `expected` (`None`: absent).
    pub async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool, KvError> {
        let now = self.now()?;
        let expires = ttl.map(|ttl| now + ttl);
        self.store
            .compare_and_set(&self.key(key), expected, new, expires, now)
            .await
    }

    /// Adds `by` to the counter at `key`; the new value.
    pub async fn increment(&self, key: &str, by: i64) -> Result<i64, KvError> {
        let now = self.now()?;
        self.store.increment(&self.key(key), by, now).await
    }

    /// This namespace's keys under `prefix`, in byte order, at most `limit`.
    pub async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, KvError> {
        let now = self.now()?;
        let keys = self.store.list(&self.key(prefix), limit, now).await?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_string))
            .collect())
    }
}

impl Facet for KeyValueFacet {
    fn name(&self) -> &str {
        KV_FACET
    }

    fn priority(&self) -> i32 {
        // A capability, not a step of the chain: it has no per-message
        // hook (`hooks` is NONE), so its place costs nothing.
        100
    }

    fn hooks(&self) -> Hooks {
        Hooks::NONE
    }

    fn on_node(&mut self, env: &Env) {
        self.env = Some(env.clone());
    }
}
