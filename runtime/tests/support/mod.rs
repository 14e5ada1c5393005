//! What the loopback cluster tests share: a journal server on its own
//! node, and nodes with fast failure detection that journal to it.

use plexspaces::Env;
use plexspaces::actor::ActorSystem;
use plexspaces::distribution::{ClusterSecret, Distribution, DistributionConfig, MemberStatus};
use plexspaces::durability::JournalBackend;
use plexspaces::durability::shared::{
    JournalServer, JournalServerConfig, SharedJournal, SharedJournalConfig,
};
use plexspaces::storage::journal::{FileJournal, JournalConfig};
use std::net::SocketAddr;
use std::time::Duration;

pub const SECRET: &[u8] = b"a-cluster-secret-of-some-length";
pub const WAIT: Duration = Duration::from_secs(15);

/// A journal server on loopback, on the file journal of `env`'s disk.
pub async fn journal_server(env: Env) -> JournalServer {
    let store = FileJournal::open(env.disk().clone(), JournalConfig::default(), 1)
        .await
        .unwrap();
    let config = JournalServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ClusterSecret::new(SECRET).unwrap(),
    );
    JournalServer::start(env, config, store).await.unwrap()
}

/// A node on loopback joining through `seeds` (heartbeats every 20 ms,
/// down after 800 ms), and its client of the journal server at `journal`.
pub async fn node(
    env: Env,
    seeds: &[SocketAddr],
    journal: SocketAddr,
) -> (ActorSystem, Distribution, JournalBackend) {
    let system = ActorSystem::new(env.clone());
    let secret = ClusterSecret::new(SECRET).unwrap();
    let config = {
        let mut config = DistributionConfig::new("127.0.0.1:0".parse().unwrap(), secret.clone())
            .with_seeds(seeds.iter().copied());
        config.heartbeat_interval = Duration::from_millis(20);
        config.suspect_after = Duration::from_millis(300);
        config.down_after = Duration::from_millis(800);
        config
    };
    let dist = system.start_distribution(config).await.unwrap();
    let journal = JournalBackend::Shared(SharedJournal::new(
        env,
        SharedJournalConfig::new(journal, secret),
    ));
    (system, dist, journal)
}

/// Waits until `dist` sees `count` members up.
pub async fn all_up(dist: &Distribution, count: usize) {
    dist.wait_for(WAIT, |m| {
        m.iter().filter(|m| m.status == MemberStatus::Up).count() == count
    })
    .await
    .unwrap_or_else(|_| panic!("members never {count} up: {:?}", dist.members()));
}
