//! What the loopback cluster tests share: a journal server on its own
//! node, nodes with fast failure detection that journal to it, and the
//! environments tests start from.
//!
//! Each test file compiles its own copy and uses a part of it.
#![allow(dead_code)]

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

/// A fresh data directory for node `name` of this test process.
pub fn dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("plexspaces-test-{}-{name}", std::process::id()))
}

/// A tokio environment for node `name`, on a fresh data directory.
pub async fn env(name: &str) -> Env {
    let dir = dir(name);
    let _ = std::fs::remove_dir_all(&dir);
    Env::tokio(plexspaces::NodeName::new(name).unwrap())
        .with_data_dir(dir)
        .await
        .unwrap()
}

/// [`env`] whose wall clock moves with tokio's paused clock: leases,
/// deadlines and waiter registrations run on the hosting node's wall
/// clock (a host may move between nodes).
pub async fn paused_wall_env(name: &str) -> Env {
    use plexspaces::tokio_backend::{OsRng, TokioClock, TokioSpawner};
    let dir = dir(name);
    let _ = std::fs::remove_dir_all(&dir);
    Env::new(
        plexspaces::NodeName::new(name).unwrap(),
        TokioClock::with_wall_from(std::time::SystemTime::UNIX_EPOCH),
        TokioSpawner::current(),
        OsRng::new(),
        plexspaces::storage::disk::FsDisk::open_dir(dir)
            .await
            .unwrap(),
        plexspaces::net::TcpNet::new(),
    )
}

/// A workflow kind's config for tests: runs resumed every 100 ms, leases
/// of 2 s.
pub fn fast_workflows(kind: &str, journal: JournalBackend) -> plexspaces::workflow::WorkflowConfig {
    let mut config = plexspaces::workflow::WorkflowConfig::new(kind, journal);
    config.resume_every = Duration::from_millis(100);
    config.lease = Duration::from_secs(2);
    config
}

/// What a test's steps did, in order (side effects, as the test sees them).
#[derive(Clone, Default)]
pub struct Log(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// How many times `entry` was pushed.
    pub fn count(&self, entry: &str) -> usize {
        self.entries().iter().filter(|e| *e == entry).count()
    }
}
