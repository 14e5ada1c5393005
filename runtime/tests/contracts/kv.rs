//! The key-value contract every backend keeps, at the backend's own level
//! (times explicit). Included by each backend's tests with `#[path]`:
//! memory and embedded (runtime), PostgreSQL, Redis.

use plexspaces::capabilities::kv::{KV_KEY_MAX, KvError, KvStore};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000 + secs)
}

/// The contract, at the backend's own level (times explicit).
pub async fn contract(store: Arc<dyn KvStore>) {
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

/// Atomicity under concurrency: increments from many callers all count,
/// and of many callers creating one key only one succeeds.
pub async fn contract_concurrency(store: Arc<dyn KvStore>) {
    let now = t(0);
    let bumps = (0..32).map(|_| {
        let store = store.clone();
        async move { store.increment("race/n", 1, now).await.unwrap() }
    });
    let mut seen = futures::future::join_all(bumps).await;
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=32).collect::<Vec<i64>>(),
        "each increment saw its own value"
    );
    let creates = (0..16u8).map(|i| {
        let store = store.clone();
        async move {
            store
                .compare_and_set("race/owner", None, vec![i], None, now)
                .await
                .unwrap()
        }
    });
    let won = futures::future::join_all(creates).await;
    assert_eq!(
        won.iter().filter(|w| **w).count(),
        1,
        "exactly one creator wins"
    );
    let owner = store.get("race/owner", now).await.unwrap().unwrap().value;
    assert_eq!(owner.len(), 1);
    assert!(won[owner[0] as usize], "the stored value is the winner's");
}
