//! The key-value contract on PostgreSQL (`PLEXSPACES_PG`, started by
//! `scripts/test.sh`), and two nodes sharing one store.

#[path = "../../runtime/tests/contracts/kv.rs"]
mod kv_suite;

use kv_suite::{contract, contract_concurrency, t};
use plexspaces::capabilities::kv::KvStore;
use plexspaces::{Env, NodeName};
use plexspaces_postgres::PgKv;
use std::sync::Arc;

fn connection() -> String {
    std::env::var("PLEXSPACES_PG").unwrap_or_else(|_| {
        panic!(
            "PLEXSPACES_PG is not set: run ./scripts/test.sh (it starts a throwaway \
             PostgreSQL), or point PLEXSPACES_PG at a server"
        )
    })
}

async fn store(node: &str, name: &str) -> PgKv {
    let env = Env::tokio(NodeName::new(node).unwrap());
    let name = format!("{name}-{}", std::process::id());
    PgKv::connect(env, &connection(), &name)
        .await
        .expect("PostgreSQL reachable at PLEXSPACES_PG")
}

#[tokio::test]
async fn the_postgres_backend_keeps_the_contract() {
    contract(Arc::new(store("a", "contract").await)).await;
    contract_concurrency(Arc::new(store("a", "race").await)).await;
}

#[tokio::test]
async fn two_nodes_share_one_store_and_stores_do_not_share_keys() {
    let a = store("a", "shared").await;
    let b = store("b", "shared").await;
    let other = store("b", "other").await;
    a.set("k", b"v".to_vec(), Some(t(10)), t(0)).await.unwrap();
    assert_eq!(b.get("k", t(1)).await.unwrap().unwrap().value, b"v");
    assert_eq!(other.get("k", t(1)).await.unwrap(), None);
    // A row expired on the node's clock is gone for every reader, and a
    // purge removes it from the table.
    assert_eq!(b.get("k", t(10)).await.unwrap(), None);
    assert_eq!(a.purge_expired(t(10)).await.unwrap(), 1);
    assert_eq!(b.list("", 10, t(0)).await.unwrap(), Vec::<String>::new());
}
