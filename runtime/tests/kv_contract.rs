//! The key-value contract on the memory and embedded backends, the
//! embedded backend's durability across reopening, and the facet's
//! confinement of keys to a tenant and namespace.

#[path = "contracts/kv.rs"]
mod kv_suite;

use kv_suite::{contract, contract_concurrency, t};
use plexspaces::actor::{Actor, ActorError, ActorSystem, Context, SpawnOptions};
use plexspaces::capabilities::kv::{EmbeddedKv, KeyValueFacet, KvError, KvStore, MemoryKv};
use plexspaces::durability::JournalBackend;
use plexspaces::storage::journal::JournalConfig;
use plexspaces::{Env, NodeName};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn the_memory_backend_keeps_the_contract() {
    contract(Arc::new(MemoryKv::default())).await;
    contract_concurrency(Arc::new(MemoryKv::default())).await;
}

#[tokio::test]
async fn the_embedded_backend_keeps_the_contract_on_both_journals() {
    let memory = EmbeddedKv::open(JournalBackend::memory(), "contract", 1_000)
        .await
        .unwrap();
    contract(Arc::new(memory)).await;
    let memory = EmbeddedKv::open(JournalBackend::memory(), "race", 1_000)
        .await
        .unwrap();
    contract_concurrency(Arc::new(memory)).await;
    let dir = std::env::temp_dir().join(format!("plexspaces-kv-{}-contract", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let env = Env::tokio(NodeName::new("kv").unwrap())
        .with_data_dir(&dir)
        .await
        .unwrap();
    let file = JournalBackend::file(&env, JournalConfig::default())
        .await
        .unwrap();
    contract(Arc::new(
        EmbeddedKv::open(file.clone(), "c", 1_000).await.unwrap(),
    ))
    .await;
    contract_concurrency(Arc::new(EmbeddedKv::open(file, "r", 1_000).await.unwrap())).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every acknowledged change survives reopening the file journal in a new
/// process's place, with and without checkpoints in between, and a reopened
/// store goes on where it stopped.
#[tokio::test]
async fn the_embedded_backend_survives_reopening_with_every_acknowledged_change() {
    let dir = std::env::temp_dir().join(format!("plexspaces-kv-{}-reopen", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let open = |checkpoint_every: u64| {
        let dir = dir.clone();
        async move {
            let env = Env::tokio(NodeName::new("kv").unwrap())
                .with_data_dir(&dir)
                .await
                .unwrap();
            let journal = JournalBackend::file(&env, JournalConfig::default())
                .await
                .unwrap();
            EmbeddedKv::open(journal, "orders", 100)
                .await
                .unwrap()
                .checkpoint_every(checkpoint_every)
        }
    };
    // A model of what the store must hold, kept beside it.
    let mut model: std::collections::BTreeMap<String, Vec<u8>> = std::collections::BTreeMap::new();
    for (round, every) in [(0u64, 1_000), (1, 3), (2, 7), (3, 1_000)] {
        let store = open(every).await;
        for (key, value) in &model {
            assert_eq!(
                store.get(key, t(round)).await.unwrap().map(|e| e.value),
                Some(value.clone()),
                "round {round}: {key} lost"
            );
        }
        for i in 0..10u64 {
            let key = format!("k{}", (round * 7 + i) % 13);
            match i % 4 {
                0 => {
                    let value = vec![round as u8, i as u8];
                    store
                        .set(&key, value.clone(), None, t(round))
                        .await
                        .unwrap();
                    model.insert(key, value);
                }
                1 => {
                    let existed = store.delete(&key, t(round)).await.unwrap();
                    assert_eq!(existed, model.remove(&key).is_some());
                }
                2 => {
                    let expected = model.get(&key).cloned();
                    let new = vec![9, round as u8, i as u8];
                    let swapped = store
                        .compare_and_set(&key, expected.as_deref(), new.clone(), None, t(round))
                        .await
                        .unwrap();
                    assert!(swapped);
                    model.insert(key, new);
                }
                _ => {
                    let key = format!("n{round}");
                    let n = store.increment(&key, 3, t(round)).await.unwrap();
                    model.insert(key, n.to_le_bytes().to_vec());
                }
            }
        }
        // A key that expires between rounds does not come back.
        store
            .set(
                "short",
                vec![1],
                Some(t(round) + Duration::from_millis(500)),
                t(round),
            )
            .await
            .unwrap();
    }
    let store = open(1_000).await;
    assert_eq!(store.get("short", t(10)).await, Ok(None));
    let keys = store.list("", 1_000, t(10)).await.unwrap();
    assert_eq!(keys, model.keys().cloned().collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_store_over_its_byte_budget_refuses_growth_but_not_shrinking() {
    for store in [
        Arc::new(MemoryKv::new(100).max_bytes(100)) as Arc<dyn KvStore>,
        Arc::new(
            EmbeddedKv::open(JournalBackend::memory(), "budget", 100)
                .await
                .unwrap()
                .max_bytes(100),
        ),
    ] {
        store.set("a", vec![0; 60], Some(t(1)), t(0)).await.unwrap();
        assert_eq!(
            store.set("b", vec![0; 60], None, t(0)).await,
            Err(KvError::OverBudget(100))
        );
        // Replacing a value counts only the difference; shrinking is fine.
        store.set("a", vec![0; 98], Some(t(1)), t(0)).await.unwrap();
        store.set("a", vec![0; 10], Some(t(1)), t(0)).await.unwrap();
        store.set("b", vec![0; 80], None, t(0)).await.unwrap();
        // Expired entries make room; deleting frees what they held.
        store.set("c", vec![0; 15], None, t(2)).await.unwrap();
        assert!(store.delete("b", t(2)).await.unwrap());
        store.set("d", vec![0; 80], None, t(2)).await.unwrap();
        assert_eq!(
            store.set("e", vec![0; 10], None, t(2)).await,
            Err(KvError::OverBudget(100))
        );
    }
}

#[tokio::test]
async fn a_full_memory_store_refuses_new_keys_but_reclaims_expired_ones() {
    let store = MemoryKv::new(2);
    store.set("a", vec![], Some(t(1)), t(0)).await.unwrap();
    store.set("b", vec![], None, t(0)).await.unwrap();
    assert_eq!(
        store.set("c", vec![], None, t(0)).await,
        Err(KvError::Full(2))
    );
    store.set("b", vec![1], None, t(0)).await.unwrap();
    store.set("c", vec![], None, t(2)).await.unwrap();
}

/// Stores through its facet: `("set", k, v)` or `("get", k, _)`.
struct Tenant;

impl Actor for Tenant {
    type Msg = (&'static str, String, Vec<u8>);
    type Reply = Option<Vec<u8>>;
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        (op, key, value): Self::Msg,
    ) -> Result<Self::Reply, ActorError> {
        let kv = ctx
            .facet::<KeyValueFacet>()
            .ok_or_else(|| ActorError::new("no kv"))?;
        let failed = |e: KvError| ActorError::new(e.to_string());
        match op {
            "set" => kv
                .set(&key, value, None)
                .await
                .map(|_| None)
                .map_err(failed),
            "list" => Ok(Some(
                kv.list("", 100)
                    .await
                    .map_err(failed)?
                    .join(",")
                    .into_bytes(),
            )),
            _ => kv.get(&key).await.map_err(failed),
        }
    }
}

#[tokio::test]
async fn facets_confine_keys_to_their_tenant_and_namespace() {
    let system = ActorSystem::new(Env::tokio(NodeName::new("kv").unwrap()));
    let store: Arc<dyn KvStore> = Arc::new(MemoryKv::default());
    let spawn = |name: &str, tenant: &str, namespace: &str| {
        let options = SpawnOptions {
            facets: vec![Box::new(KeyValueFacet::new(
                store.clone(),
                tenant,
                namespace,
            ))],
            ..SpawnOptions::default()
        };
        system.spawn_with(name, Tenant, options).unwrap()
    };
    let acme = spawn("acme", "acme", "orders");
    let globex = spawn("globex", "globex", "orders");
    // A tenant name built to collide with another's prefix does not.
    let tricky = spawn("tricky", "acme/6:orders", "x");
    let wait = Duration::from_secs(5);
    acme.ask(("set", "k".into(), b"acme".to_vec()), wait)
        .await
        .unwrap();
    globex
        .ask(("set", "k".into(), b"globex".to_vec()), wait)
        .await
        .unwrap();
    assert_eq!(
        acme.ask(("get", "k".into(), vec![]), wait).await.unwrap(),
        Some(b"acme".to_vec())
    );
    assert_eq!(
        globex.ask(("get", "k".into(), vec![]), wait).await.unwrap(),
        Some(b"globex".to_vec())
    );
    assert_eq!(
        tricky.ask(("get", "k".into(), vec![]), wait).await.unwrap(),
        None
    );
    assert_eq!(
        tricky
            .ask(("list", String::new(), vec![]), wait)
            .await
            .unwrap(),
        Some(Vec::new())
    );
    assert_eq!(
        acme.ask(("list", String::new(), vec![]), wait)
            .await
            .unwrap(),
        Some(b"k".to_vec())
    );
}

#[tokio::test]
async fn the_facet_is_attached_by_configuration_with_its_keys_validated() {
    use plexspaces::actor::facet::{FacetConfig, FacetConfigError};
    let system = ActorSystem::new(Env::tokio(NodeName::new("kv2").unwrap()));
    let store: Arc<dyn KvStore> = Arc::new(MemoryKv::default());
    KeyValueFacet::register(system.facet_types(), store.clone()).unwrap();
    let good = FacetConfig::from_toml("tenant = \"acme\"\nnamespace = \"orders\"").unwrap();
    let facet = system.facet_types().build("key_value", good).unwrap();
    let actor = system
        .spawn_with(
            "a",
            Tenant,
            SpawnOptions {
                facets: vec![facet],
                ..SpawnOptions::default()
            },
        )
        .unwrap();
    let wait = Duration::from_secs(5);
    actor
        .ask(("set", "k".into(), b"v".to_vec()), wait)
        .await
        .unwrap();
    // The same tenant and namespace through a hand-made facet: same keys.
    let same = KeyValueFacet::new(store.clone(), "acme", "orders");
    let options = SpawnOptions {
        facets: vec![Box::new(same)],
        ..SpawnOptions::default()
    };
    let other = system.spawn_with("b", Tenant, options).unwrap();
    assert_eq!(
        other.ask(("get", "k".into(), vec![]), wait).await.unwrap(),
        Some(b"v".to_vec())
    );
    for (bad, expected) in [
        ("tenant = \"acme\"", "missing namespace"),
        ("tenant = \"\"\nnamespace = \"x\"", "empty tenant"),
        ("tenant = \"a\"\nnamespace = \"x\"\nttl = 3", "unknown key"),
        ("tenant = 3\nnamespace = \"x\"", "wrong type"),
    ] {
        let config = FacetConfig::from_toml(bad).unwrap();
        let refused = system.facet_types().build("key_value", config);
        assert!(
            matches!(
                refused,
                Err(FacetConfigError::MissingKey { .. }
                    | FacetConfigError::Invalid { .. }
                    | FacetConfigError::UnknownKey { .. }
                    | FacetConfigError::WrongType { .. })
            ),
            "{expected}"
        );
    }
}
