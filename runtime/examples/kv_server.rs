//! A GenServer: a key-value store actor. `ask` is a call (waits for the
//! reply), `tell` a cast (fire and forget).
//!
//! ```text
//! cargo run --example kv_server
//! ```

use plexspaces::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Default)]
struct KvStore(BTreeMap<String, String>);

enum Kv {
    Put(String, String),
    Get(String),
    Delete(String),
}

impl Actor for KvStore {
    type Msg = Kv;
    type Reply = Option<String>;

    async fn handle(
        &mut self,
        _ctx: &mut Context<Self>,
        msg: Kv,
    ) -> Result<Option<String>, ActorError> {
        Ok(match msg {
            Kv::Put(key, value) => self.0.insert(key, value),
            Kv::Get(key) => self.0.get(&key).cloned(),
            Kv::Delete(key) => self.0.remove(&key),
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let system = ActorSystem::new(Env::tokio(NodeName::new("node1")?));
    let kv = system.spawn("kv", KvStore::default())?;
    let timeout = Duration::from_secs(1);
    kv.tell(Kv::Put("language".into(), "rust".into())).await?; // a cast
    let old = kv
        .ask(Kv::Put("language".into(), "erlang".into()), timeout)
        .await?; // a call
    println!("replaced {old:?}");
    println!(
        "language = {:?}",
        kv.ask(Kv::Get("language".into()), timeout).await?
    );
    println!(
        "deleted {:?}",
        kv.ask(Kv::Delete("language".into()), timeout).await?
    );
    println!(
        "language = {:?}",
        kv.ask(Kv::Get("language".into()), timeout).await?
    );
    system.shutdown().await;
    Ok(())
}
