//! The shared journal over loopback TCP: a server on the embedded file
//! journal, clients on other "nodes" claiming, appending, reading and
//! checkpointing, fencing between two writers of one stream, and strangers
//! refused.

use plexspaces::actor::{ActorError, ActorSystem};
use plexspaces::distribution::ClusterSecret;
use plexspaces::durability::shared::{
    JournalServer, JournalServerConfig, SharedJournal, SharedJournalConfig,
};
use plexspaces::durability::{Durable, DurableActor, DurableContext, JournalBackend, stream_for};
use plexspaces::storage::journal::{FileJournal, Journal, JournalConfig, JournalError};
use plexspaces::virtual_actor::{VirtualActors, VirtualConfig};
use plexspaces::{Env, NodeName};
use std::net::SocketAddr;
use std::time::Duration;

const SECRET: &[u8] = b"a-cluster-secret-of-some-length";

async fn env(name: &str) -> Env {
    let dir = std::env::temp_dir().join(format!(
        "plexspaces-shared-journal-{}-{name}-{}",
        std::process::id(),
        rand_suffix()
    ));
    Env::tokio(NodeName::new(name).unwrap())
        .with_data_dir(dir)
        .await
        .unwrap()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn secret() -> ClusterSecret {
    ClusterSecret::new(SECRET).unwrap()
}

async fn server() -> (JournalServer, Env) {
    let env = env("storage").await;
    let journal = FileJournal::open(env.disk().clone(), JournalConfig::default(), 7)
        .await
        .unwrap();
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = JournalServer::start(
        env.clone(),
        JournalServerConfig::new(listen, secret()),
        journal,
    )
    .await
    .unwrap();
    (server, env)
}

async fn client(name: &str, server: &JournalServer) -> SharedJournal {
    SharedJournal::new(
        env(name).await,
        SharedJournalConfig::new(server.local_addr(), secret()),
    )
}

#[tokio::test]
async fn a_claimed_stream_is_appended_read_and_checkpointed_from_any_node() {
    let (server, _env) = server().await;
    let a = client("a", &server).await;
    a.claim("acct/alice").await.unwrap();
    assert_eq!(a.append("acct/alice", b"+5").await.unwrap(), 1);
    assert_eq!(
        a.append_all("acct/alice", &[b"+2", b"-1"]).await.unwrap(),
        3
    );
    a.save_checkpoint("acct/alice", 2, b"state@2")
        .await
        .unwrap();

    // Another node sees everything the first one acknowledged.
    let b = client("b", &server).await;
    let entries = b.replay_from("acct/alice", 1).await.unwrap();
    let data: Vec<&[u8]> = entries.iter().map(|e| e.data.as_slice()).collect();
    assert_eq!(data, [&b"+5"[..], b"+2", b"-1"]);
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let checkpoint = b.latest_checkpoint("acct/alice").await.unwrap().unwrap();
    assert_eq!(
        (checkpoint.seq, checkpoint.state.as_slice()),
        (2, &b"state@2"[..])
    );
    // Its claim starts from the stream's last sequence number.
    b.claim("acct/alice").await.unwrap();
    assert_eq!(b.last_seq("acct/alice"), 3);
    assert_eq!(b.append("acct/alice", b"+9").await.unwrap(), 4);
    server.shutdown();
}

#[tokio::test]
async fn a_newer_claim_fences_the_older_writer_out() {
    let (server, _env) = server().await;
    let old = client("old", &server).await;
    let new = client("new", &server).await;
    old.claim("s").await.unwrap();
    old.append("s", b"one").await.unwrap();
    new.claim("s").await.unwrap();
    // The old writer can neither append nor checkpoint any more.
    let refused = old.append("s", b"lost").await.unwrap_err();
    assert!(matches!(refused, JournalError::Fenced { .. }), "{refused}");
    let refused = old.save_checkpoint("s", 1, b"x").await.unwrap_err();
    assert!(matches!(refused, JournalError::Fenced { .. }), "{refused}");
    assert_eq!(new.append("s", b"two").await.unwrap(), 2);
    // Claiming again does not help it write past the new writer's entries
    // without seeing them: its claim now starts after them.
    old.claim("s").await.unwrap();
    assert_eq!(old.last_seq("s"), 2);
    let refused = new.append("s", b"three").await.unwrap_err();
    assert!(matches!(refused, JournalError::Fenced { .. }), "{refused}");
    let all = new.replay_from("s", 1).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.data.clone()).collect::<Vec<_>>(),
        [b"one".to_vec(), b"two".to_vec()]
    );
    server.shutdown();
}

#[tokio::test]
async fn appending_without_a_claim_is_refused() {
    let (server, _env) = server().await;
    let a = client("a", &server).await;
    let refused = a.append("unclaimed", b"x").await.unwrap_err();
    assert!(matches!(refused, JournalError::Fenced { .. }), "{refused}");
    server.shutdown();
}

#[tokio::test]
async fn a_client_with_the_wrong_secret_is_refused() {
    let (server, _env) = server().await;
    let stranger = SharedJournal::new(
        env("stranger").await,
        SharedJournalConfig::new(
            server.local_addr(),
            ClusterSecret::new(b"not-the-cluster-secret!!").unwrap(),
        ),
    );
    let refused = stranger.claim("s").await.unwrap_err();
    assert!(
        matches!(refused, JournalError::Unavailable { .. }),
        "{refused}"
    );
    server.shutdown();
}

#[tokio::test]
async fn an_unreachable_server_fails_requests_at_their_timeout() {
    let (server, _env) = server().await;
    let addr = server.local_addr();
    server.shutdown();
    let mut config = SharedJournalConfig::new(addr, secret());
    config.request_timeout = Duration::from_millis(300);
    let a = SharedJournal::new(env("a").await, config);
    let refused = a.claim("s").await.unwrap_err();
    assert!(
        matches!(refused, JournalError::Unavailable { .. }),
        "{refused}"
    );
}

#[tokio::test]
async fn long_streams_are_read_in_pages() {
    let (server, _env) = server().await;
    let mut config = SharedJournalConfig::new(server.local_addr(), secret());
    config.max_frame_len = 64 * 1024; // pages of 32 KiB
    let a = SharedJournal::new(env("a").await, config);
    a.claim("big").await.unwrap();
    let entry = vec![7u8; 1000];
    for _ in 0..10 {
        let batch: Vec<&[u8]> = (0..20).map(|_| entry.as_slice()).collect();
        a.append_all("big", &batch).await.unwrap();
    }
    let mut seen = Vec::new();
    let count = a
        .replay_each("big", 5, |seq, data| {
            assert_eq!(data.len(), 1000);
            seen.push(seq)
        })
        .await
        .unwrap();
    assert_eq!(count, 196);
    assert_eq!(seen, (5..=200).collect::<Vec<_>>());
    server.shutdown();
}

/// The storage crate's disk probe: counts syncs, fails one on demand.
#[path = "../../storage/tests/common/mod.rs"]
mod probe;

#[tokio::test]
async fn a_server_reopens_its_journal_after_a_failed_sync() {
    use plexspaces::storage::disk::MemDisk;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    let env = env("reopening").await;
    let disk = probe::ProbeDisk::new(MemDisk::new());
    let failing = disk.probe.clone();
    let open: plexspaces::durability::shared::Reopen<FileJournal<probe::ProbeDisk<MemDisk>>> =
        Arc::new(move || {
            let disk = disk.clone();
            Box::pin(async move { FileJournal::open(disk, JournalConfig::default(), 7).await })
        });
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server =
        JournalServer::start_reopening(env, JournalServerConfig::new(listen, secret()), open)
            .await
            .unwrap();
    let a = client("a", &server).await;
    a.claim("s").await.unwrap();
    assert_eq!(a.append("s", b"one").await.unwrap(), 1);
    // The server's disk fails a sync: its journal stops; that append is not
    // acknowledged.
    failing.fail_next_sync.store(true, Ordering::SeqCst);
    assert!(a.append("s", b"lost?").await.is_err());
    // The next request is served by the reopened journal, which kept what
    // was acknowledged; fencing survived (the epoch is journaled).
    let b = client("b", &server).await;
    let entries = b.replay_from("s", 1).await.unwrap();
    assert_eq!(entries[0].data, b"one");
    b.claim("s").await.unwrap();
    let next = b.last_seq("s") + 1;
    assert_eq!(b.append("s", b"two").await.unwrap(), next);
    let refused = a.append("s", b"stale").await.unwrap_err();
    assert!(matches!(refused, JournalError::Fenced { .. }), "{refused}");
    server.shutdown();
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Acct(u64);

impl DurableActor for Acct {
    type Msg = u64;
    type Reply = u64;
    async fn handle(&mut self, _: &mut DurableContext<'_>, n: u64) -> Result<u64, ActorError> {
        self.0 += n;
        Ok(self.0)
    }
}

/// A node whose activation of an id was fenced out by a newer claim (as
/// another node's would, across a partition) reports not ready, naming the
/// id, while it still owns the id: claiming it back (the next call, which
/// applies what the fenced one did not, once) does not make it ready
/// within the hold, since across a partition both sides claim in turns.
#[tokio::test]
async fn a_node_is_not_ready_for_an_id_whose_claim_it_lost() {
    let (server, _env) = server().await;
    let node = env("a").await;
    let system = ActorSystem::new(node.clone());
    let journal = JournalBackend::Shared(SharedJournal::new(
        node.clone(),
        SharedJournalConfig::new(server.local_addr(), secret()),
    ));
    let accts = VirtualActors::register(&system, VirtualConfig::new("Acct", journal), |_| {
        Acct::default()
    })
    .unwrap();
    let x = accts.get("x").unwrap();
    assert_eq!(x.call("k1", 5, Duration::from_secs(5)).await.unwrap(), 5);
    let ready = system.health().readiness(&system).await;
    assert!(ready.ready, "{:?}", ready.checks);
    assert!(ready.checks["claims:Acct"].healthy);

    // Another node's activation claims x's stream: this one is fenced.
    let rival = client("rival", &server).await;
    rival.claim(&stream_for("Acct:x")).await.unwrap();
    let activation = system
        .lookup::<Durable<Acct>>("Acct:x")
        .expect("x is active here");
    activation
        .call("k2", 1, Duration::from_secs(5))
        .await
        .expect_err("a fenced activation applies nothing");
    activation.wait_exit().await;
    let unready = system.health().readiness(&system).await;
    assert!(!unready.ready);
    let claims = &unready.checks["claims:Acct"];
    assert!(
        !claims.healthy && claims.detail.contains(": x"),
        "{claims:?}"
    );

    // The next call claims x back here, k2 applied once; still not ready.
    assert_eq!(x.call("k2", 1, Duration::from_secs(5)).await.unwrap(), 6);
    assert_eq!(x.call("k2", 1, Duration::from_secs(5)).await.unwrap(), 6);
    let still = system.health().readiness(&system).await;
    assert!(!still.ready && !still.checks["claims:Acct"].healthy);
    // The journal itself answers: only the claims check fails.
    assert!(still.checks["journal:Acct"].healthy);
    server.shutdown();
}
