//! The key-value contract on Redis (`PLEXSPACES_REDIS`, started by
//! `scripts/test.sh` through `scripts/redis.sh`), two nodes sharing one
//! store, and a broken connection coming back.

#[path = "../../runtime/tests/contracts/kv.rs"]
mod kv_suite;

use kv_suite::{contract, contract_concurrency, t};
use plexspaces::capabilities::kv::{KvError, KvStore};
use plexspaces_redis::RedisKv;
use std::sync::Arc;

fn url() -> String {
    std::env::var("PLEXSPACES_REDIS").unwrap_or_else(|_| {
        panic!(
            "PLEXSPACES_REDIS is not set: run ./scripts/test.sh (it starts a throwaway \
             Redis), or point PLEXSPACES_REDIS at a server"
        )
    })
}

async fn store(name: &str) -> RedisKv {
    let name = format!("{name}-{}", std::process::id());
    RedisKv::connect(&url(), &name)
        .await
        .expect("Redis reachable at PLEXSPACES_REDIS")
}

#[tokio::test]
async fn the_redis_backend_keeps_the_contract() {
    contract(Arc::new(store("contract").await)).await;
    contract_concurrency(Arc::new(store("race").await)).await;
}

#[tokio::test]
async fn two_clients_share_one_store_and_stores_do_not_share_keys() {
    let a = store("shared").await;
    let b = store("shared").await;
    let other = store("other").await;
    a.set("k", b"v".to_vec(), Some(t(10)), t(0)).await.unwrap();
    assert_eq!(b.get("k", t(1)).await.unwrap().unwrap().value, b"v");
    assert_eq!(other.get("k", t(1)).await.unwrap(), None);
    assert_eq!(b.get("k", t(10)).await.unwrap(), None);
    // Binary values and keys with Redis's pattern characters round-trip.
    let odd = "a*b?[c]{d}\u{e9}";
    let value: Vec<u8> = (0..=255).collect();
    a.set(odd, value.clone(), None, t(0)).await.unwrap();
    assert_eq!(b.get(odd, t(0)).await.unwrap().unwrap().value, value);
    assert_eq!(b.list("a*", 10, t(0)).await.unwrap(), [odd]);
}

#[tokio::test]
async fn an_unreachable_server_is_a_typed_error() {
    let refused = RedisKv::connect("redis://127.0.0.1:1/0", "x").await;
    assert!(matches!(refused, Err(KvError::Unavailable(_))));
}
