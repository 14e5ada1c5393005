//! The key-value contract every backend keeps (memory so far), and the
//! facet's confinement of keys to a tenant and namespace.

use plexspaces::actor::{Actor, ActorError, ActorSystem, Context, SpawnOptions};
use plexspaces::capabilities::kv::{KV_KEY_MAX, KeyValueFacet, KvError, KvStore, MemoryKv};
use plexspaces::{Env, NodeName};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000 + secs)
}

/// The contract, at the backend's own level (times explicit).
async fn contract(store: Arc<dyn KvStore>) {
    let now = t(0);
    assert_eq!(store.get("a", now).await, Ok(None));
    store.set("a", b"1".to_vec(), None, now).await.unwrap();
    assert_eq!(store.get("a", now).await.unwrap().unwrap().value, b"1");
    // TTL: live before, gone at and after the deadline.
    store
        .set("ttl", b"x".to_vec(), Some(t(10)), now)
        .await
        .unwrap();
    assert!(store.get("ttl", t(9)).await.unwrap().is_some());
    assert_eq!(store.get("ttl", t(10)).await, Ok(None));
    assert_eq!(
        store.delete("ttl", t(11)).await,
        Ok(false),
        "an expired key does not exist"
    );
    // set replaces value and TTL.
    store.set("ttl", b"y".to_vec(), None, t(12)).await.unwrap();
    assert!(store.get("ttl", t(1_000)).await.unwrap().is_some());
    // delete.
    assert_eq!(store.delete("a", now).await, Ok(true));
    assert_eq!(store.delete("a", now).await, Ok(false));
    // compare-and-set: create if absent, swap if equal, refuse otherwise.
    assert_eq!(
        store
            .compare_and_set("c", None, b"v1".to_vec(), None, now)
            .await,
        Ok(true)
    );
    assert_eq!(
        store
            .compare_and_set("c", None, b"v2".to_vec(), None, now)
            .await,
        Ok(false)
    );
    assert_eq!(
        store
            .compare_and_set("c", Some(b"v0"), b"v2".to_vec(), None, now)
            .await,
        Ok(false)
    );
    assert_eq!(
        store
            .compare_and_set("c", Some(b"v1"), b"v2".to_vec(), None, now)
            .await,
        Ok(true)
    );
    assert_eq!(store.get("c", now).await.unwrap().unwrap().value, b"v2");
    // increment: missing is 0, keeps expiry, refuses non-counters and overflow.
    assert_eq!(store.increment("n", 5, now).await, Ok(5));
    assert_eq!(store.increment("n", -7, now).await, Ok(-2));
    assert!(matches!(
        store.increment("c", 1, now).await,
        Err(KvError::NotACounter(_))
    ));
    store
        .set("big", i64::MAX.to_le_bytes().to_vec(), Some(t(5)), now)
        .await
        .unwrap();
    assert!(matches!(
        store.increment("big", 1, now).await,
        Err(KvError::NotACounter(_))
    ));
    assert_eq!(store.increment("big", -1, now).await, Ok(i64::MAX - 1));
    assert_eq!(
        store.get("big", t(5)).await,
        Ok(None),
        "increment kept the expiry"
    );
    // list: by prefix, in byte order, bounded, no expired keys.
    for k in ["p/b", "p/a", "p/c", "q/a"] {
        store.set(k, vec![], None, now).await.unwrap();
    }
    store.set("p/d", vec![], Some(t(1)), now).await.unwrap();
    assert_eq!(
        store.list("p/", 10, t(2)).await.unwrap(),
        ["p/a", "p/b", "p/c"]
    );
    assert_eq!(store.list("p/", 2, t(2)).await.unwrap(), ["p/a", "p/b"]);
    assert_eq!(
        store.list("zz", 10, now).await.unwrap(),
        Vec::<String>::new()
    );
    // Bad input: typed errors, nothing stored.
    let long = "k".repeat(KV_KEY_MAX + 1);
    assert!(matches!(
        store.set(&long, vec![], None, now).await,
        Err(KvError::BadKey(_))
    ));
    assert!(matches!(
        store.set("", vec![], None, now).await,
        Err(KvError::BadKey(_))
    ));
    let huge = vec![0u8; plexspaces::capabilities::kv::KV_VALUE_MAX + 1];
    assert!(matches!(
        store.set("h", huge, None, now).await,
        Err(KvError::TooLarge(_))
    ));
    assert_eq!(store.get("h", now).await, Ok(None));
}

#[tokio::test]
async fn the_memory_backend_keeps_the_contract() {
    contract(Arc::new(MemoryKv::default())).await;
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
