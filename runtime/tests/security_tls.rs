//! TLS between nodes on real loopback TCP: a cluster of one CA works and
//! puts only ciphertext on the wire; a node of another CA, a plaintext
//! peer and a certificate naming another node are refused; the journal
//! service runs over TLS; a reload takes new files without a restart.

use plexspaces::actor::{Actor, ActorError, ActorId, ActorSystem, Context};
use plexspaces::distribution::{ClusterSecret, Distribution, DistributionConfig, MemberStatus};
use plexspaces::net::tls::test_pki::{TestCa, Validity};
use plexspaces::net::tls::{self, TlsContext};
use plexspaces::net::wire::{self, FrameReader, FrameWriter, Identity, WireError, WireMessage};
use plexspaces::net::{
    ByteReader, ByteWriter, Connection, Listener, Net, NetError, TcpConnection, TcpNet,
    TcpNetListener, TcpReader, TcpWriter,
};
use plexspaces::seams::Clock;
use plexspaces::security::{NodeTls, TlsMaterial, TlsSource};
use plexspaces::storage::disk::{Disk, DiskFile, MemDisk};
use plexspaces::{Env, NodeName};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &[u8] = b"a-cluster-secret-of-some-length";
const WAIT: Duration = Duration::from_secs(10);
/// The payload the wire must never show.
const MARKER: &str = "plaintext-marker-7f3a9c";

struct Echo;

#[derive(Serialize, Deserialize)]
struct Say(String);

impl Actor for Echo {
    type Msg = Say;
    type Reply = String;
    async fn handle(&mut self, _: &mut Context<Self>, Say(s): Say) -> Result<String, ActorError> {
        Ok(format!("{s}!"))
    }
}

/// TCP that records every byte this node writes.
#[derive(Clone, Default)]
struct RecordingNet {
    written: Arc<Mutex<Vec<u8>>>,
}

struct RecordingConnection(TcpConnection, Arc<Mutex<Vec<u8>>>);
struct RecordingListener(TcpNetListener, Arc<Mutex<Vec<u8>>>);
struct RecordingWriter(TcpWriter, Arc<Mutex<Vec<u8>>>);

impl Net for RecordingNet {
    type Listener = RecordingListener;
    type Connection = RecordingConnection;
    async fn listen(&self, addr: SocketAddr) -> Result<RecordingListener, NetError> {
        Ok(RecordingListener(
            TcpNet::new().listen(addr).await?,
            self.written.clone(),
        ))
    }
    async fn connect(&self, addr: SocketAddr) -> Result<RecordingConnection, NetError> {
        Ok(RecordingConnection(
            TcpNet::new().connect(addr).await?,
            self.written.clone(),
        ))
    }
}

impl Listener for RecordingListener {
    type Connection = RecordingConnection;
    fn local_addr(&self) -> SocketAddr {
        self.0.local_addr()
    }
    async fn accept(&mut self) -> Result<(RecordingConnection, SocketAddr), NetError> {
        let (c, from) = self.0.accept().await?;
        Ok((RecordingConnection(c, self.1.clone()), from))
    }
}

impl Connection for RecordingConnection {
    type Reader = TcpReader;
    type Writer = RecordingWriter;
    fn peer_addr(&self) -> SocketAddr {
        self.0.peer_addr()
    }
    fn split(self) -> (TcpReader, RecordingWriter) {
        let (r, w) = self.0.split();
        (r, RecordingWriter(w, self.1))
    }
}

impl ByteWriter for RecordingWriter {
    async fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        self.1.lock().unwrap().extend_from_slice(buf);
        self.0.write_all(buf).await
    }
    async fn flush(&mut self) -> Result<(), NetError> {
        self.0.flush().await
    }
    async fn close(&mut self) -> Result<(), NetError> {
        self.0.close().await
    }
}

fn env(name: &str, net: RecordingNet) -> Env {
    use plexspaces::tokio_backend::{OsRng, TokioClock, TokioSpawner};
    Env::new(
        NodeName::new(name).unwrap(),
        TokioClock::new(),
        TokioSpawner::current(),
        OsRng::new(),
        MemDisk::new(),
        net,
    )
}

fn fast(mut config: DistributionConfig) -> DistributionConfig {
    config.heartbeat_interval = Duration::from_millis(20);
    config.suspect_after = Duration::from_millis(300);
    config.down_after = Duration::from_secs(1);
    config.reconnect_min = Duration::from_millis(10);
    config.reconnect_max = Duration::from_millis(100);
    config
}

async fn tls_node(
    name: &str,
    material: TlsMaterial,
    seeds: &[SocketAddr],
    net: RecordingNet,
) -> (ActorSystem, Distribution) {
    let env = env(name, net);
    let tls = NodeTls::load(&env, TlsSource::Material(material))
        .await
        .unwrap();
    let system = ActorSystem::new(env);
    let config = DistributionConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ClusterSecret::new(SECRET).unwrap(),
    )
    .with_seeds(seeds.iter().copied())
    .with_tls(tls);
    let dist = system.start_distribution(fast(config)).await.unwrap();
    (system, dist)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_one_ca_ask_each_other_and_the_wire_shows_only_ciphertext() {
    let ca = TestCa::new("cluster-ca", 11);
    let net_a = RecordingNet::default();
    let net_b = RecordingNet::default();
    let (sys_a, dist_a) = tls_node(
        "tls-a",
        ca.material("tls-a", Validity::always(), &[]),
        &[],
        net_a.clone(),
    )
    .await;
    let (sys_b, dist_b) = tls_node(
        "tls-b",
        ca.material("tls-b", Validity::always(), &[]),
        &[dist_a.local_addr()],
        net_b.clone(),
    )
    .await;
    let echo = sys_a.spawn("echo", Echo).unwrap();
    dist_a.export(&echo).unwrap();
    dist_b
        .wait_for(WAIT, |m| {
            m.iter().filter(|m| m.status == MemberStatus::Up).count() == 2
        })
        .await
        .unwrap();
    let id = ActorId::new("echo", NodeName::new("tls-a").unwrap()).unwrap();
    let remote = sys_b.resolve::<Echo>(&id).unwrap();
    let reply = remote.ask(Say(MARKER.into()), WAIT).await.unwrap();
    assert_eq!(reply, format!("{MARKER}!"));
    let sent_by_b = net_b.written.lock().unwrap().clone();
    let sent_by_a = net_a.written.lock().unwrap().clone();
    assert!(
        sent_by_b.len() > 1000 && sent_by_a.len() > 1000,
        "both sides spoke TLS"
    );
    assert!(
        !contains(&sent_by_b, MARKER.as_bytes()),
        "the ask crossed in plaintext"
    );
    assert!(
        !contains(&sent_by_a, MARKER.as_bytes()),
        "the reply crossed in plaintext"
    );
    assert!(
        !contains(&sent_by_b, b"tls-b"),
        "even the node's Hello is encrypted"
    );
    drop(sys_b);
}

async fn raw_tls(
    addr: SocketAddr,
    material: &TlsMaterial,
) -> Result<(FrameReader<impl ByteReader>, FrameWriter<impl ByteWriter>), tls::TlsError> {
    let (r, w) = TcpNet::new().connect(addr).await.unwrap().split();
    let context = TlsContext::new(
        material,
        Arc::new(|buf: &mut [u8]| buf.fill(7)),
        Arc::new(|| std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000)),
    )
    .unwrap();
    let streams = tls::connect(&context, r, w).await?;
    Ok((
        FrameReader::new(streams.reader, 1 << 20),
        FrameWriter::new(streams.writer, 1 << 20),
    ))
}

fn stranger(name: &str) -> Identity {
    Identity {
        node: name.into(),
        listen: "127.0.0.1:9".parse().unwrap(),
        incarnation: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_ca_plaintext_and_a_borrowed_name_are_refused() {
    let ca = TestCa::new("cluster-ca", 12);
    let (_sys, dist) = tls_node(
        "tls-c",
        ca.material("tls-c", Validity::always(), &[]),
        &[],
        RecordingNet::default(),
    )
    .await;
    let addr = dist.local_addr();
    let secret = ClusterSecret::new(SECRET).unwrap();

    // A certificate of another CA: the node refuses it during TLS, so the
    // first read fails (rustls's client may finish before it learns).
    let rogue = TestCa::new("rogue-ca", 13).material("tls-x", Validity::always(), &[&ca]);
    match raw_tls(addr, &rogue).await {
        Err(_) => {}
        Ok((mut r, mut w)) => {
            let refused =
                wire::handshake::dial(&mut r, &mut w, &secret, &stranger("tls-x"), [1; 32]).await;
            assert!(
                refused.is_err(),
                "a rogue CA's node got through: {refused:?}"
            );
        }
    }

    // Plaintext, even with the right secret: refused before any Challenge.
    let (r, w) = TcpNet::new().connect(addr).await.unwrap().split();
    let (mut r, mut w) = (FrameReader::new(r, 1 << 20), FrameWriter::new(w, 1 << 20));
    let refused = wire::handshake::dial(&mut r, &mut w, &secret, &stranger("tls-y"), [2; 32]).await;
    assert!(refused.is_err(), "{refused:?}");

    // A good certificate, but for another node than the Hello claims: the
    // secret handshake succeeds, then the node closes instead of serving.
    let borrowed = ca.material("tls-z", Validity::always(), &[]);
    let (mut r, mut w) = raw_tls(addr, &borrowed).await.unwrap();
    wire::handshake::dial(&mut r, &mut w, &secret, &stranger("tls-impostor"), [3; 32])
        .await
        .unwrap();
    w.send(&WireMessage::Heartbeat { members: vec![] })
        .await
        .ok();
    let next = r.read_frame().await;
    assert!(
        matches!(
            next,
            Err(WireError::Closed) | Err(WireError::Net(_)) | Err(WireError::Truncated { .. })
        ),
        "{next:?}"
    );
    assert_eq!(
        dist.members().len(),
        1,
        "no impostor became a member: {:?}",
        dist.members()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_tls_refuses_a_cluster_peer_without_it_and_vice_versa() {
    let ca = TestCa::new("cluster-ca", 14);
    let (_sys, dist) = tls_node(
        "tls-d",
        ca.material("tls-d", Validity::always(), &[]),
        &[],
        RecordingNet::default(),
    )
    .await;
    // A plaintext node of the same cluster (right secret) never joins it.
    let env = env("plain-e", RecordingNet::default());
    let system = ActorSystem::new(env);
    let config = DistributionConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ClusterSecret::new(SECRET).unwrap(),
    )
    .with_seeds([dist.local_addr()]);
    let plain = system.start_distribution(fast(config)).await.unwrap();
    let joined = plain
        .wait_for(Duration::from_millis(300), |m| m.len() > 1)
        .await;
    assert!(joined.is_err(), "{:?}", plain.members());
    assert_eq!(dist.members().len(), 1, "{:?}", dist.members());
}

/// Replaces a file as a certificate manager does: written aside, then
/// renamed over the old one.
async fn write(disk: &MemDisk, name: &str, bytes: &[u8]) {
    let aside = format!("{name}.new");
    let file = disk.create(&aside).await.unwrap();
    file.write_at(0, bytes).await.unwrap();
    file.sync_data().await.unwrap();
    disk.rename(&aside, name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_takes_rotated_files_and_a_broken_one_keeps_the_old() {
    let old = TestCa::new("ca-old", 21);
    let new = TestCa::new("ca-new", 22);
    let disk = MemDisk::new();
    let (cert, key) = old.issue_pem("tls-f", Validity::always());
    write(&disk, "ca.pem", old.pem().as_bytes()).await;
    write(&disk, "node.pem", cert.as_bytes()).await;
    write(&disk, "node.key", key.as_bytes()).await;
    let env = env("tls-f", RecordingNet::default());
    let tls = NodeTls::load(
        &env,
        TlsSource::files(disk.clone(), "ca.pem", "node.pem", "node.key"),
    )
    .await
    .unwrap();
    assert!(
        !tls.reload().await.unwrap(),
        "unchanged files change nothing"
    );
    let system = ActorSystem::new(env.clone());
    let config = DistributionConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ClusterSecret::new(SECRET).unwrap(),
    )
    .with_tls(tls.clone());
    let dist = system.start_distribution(fast(config)).await.unwrap();
    let secret = ClusterSecret::new(SECRET).unwrap();
    let new_client = new.material("tls-g", Validity::always(), &[&old]);
    let old_client = old.material("tls-h", Validity::always(), &[&new]);
    let admitted = |material: TlsMaterial, name: &'static str| {
        let secret = secret.clone();
        let addr = dist.local_addr();
        async move {
            match raw_tls(addr, &material).await {
                Ok((mut r, mut w)) => {
                    wire::handshake::dial(&mut r, &mut w, &secret, &stranger(name), [4; 32])
                        .await
                        .is_ok()
                }
                Err(_) => false,
            }
        }
    };
    assert!(
        !admitted(new_client.clone(), "tls-g").await,
        "the new CA is not trusted yet"
    );
    // Rotation, step 1: trust both CAs.
    write(
        &disk,
        "ca.pem",
        format!("{}{}", old.pem(), new.pem()).as_bytes(),
    )
    .await;
    assert!(tls.reload().await.unwrap());
    assert!(
        admitted(new_client.clone(), "tls-g").await,
        "the new CA is trusted after the reload"
    );
    assert!(
        admitted(old_client.clone(), "tls-h").await,
        "and the old one still"
    );
    // A broken file (a half-written key): the reload fails, the old stays.
    write(&disk, "node.key", b"-----BEGIN PRIVATE KEY-----\nAAAA").await;
    assert!(tls.reload().await.is_err());
    assert!(
        admitted(new_client.clone(), "tls-g").await,
        "the old context serves on"
    );
    // Step 2: a new certificate, only the new CA trusted.
    let (cert, key) = new.issue_pem("tls-f", Validity::always());
    write(&disk, "node.pem", cert.as_bytes()).await;
    write(&disk, "node.key", key.as_bytes()).await;
    write(&disk, "ca.pem", new.pem().as_bytes()).await;
    assert!(tls.reload().await.unwrap());
    assert!(
        !admitted(old_client, "tls-h").await,
        "the old CA is dropped"
    );
    assert!(admitted(new_client, "tls-g").await);
    assert_eq!(tls.reloads(), 2, "two reloads changed the context");
}

#[tokio::test(start_paused = true)]
async fn the_periodic_reload_runs_on_the_node_clock() {
    let ca = TestCa::new("ca", 31);
    let disk = MemDisk::new();
    let (cert, key) = ca.issue_pem("tls-p", Validity::always());
    write(&disk, "ca.pem", ca.pem().as_bytes()).await;
    write(&disk, "node.pem", cert.as_bytes()).await;
    write(&disk, "node.key", key.as_bytes()).await;
    let env = env("tls-p", RecordingNet::default());
    let tls = NodeTls::load(
        &env,
        TlsSource::files(disk.clone(), "ca.pem", "node.pem", "node.key"),
    )
    .await
    .unwrap();
    let reloader = tls.reload_every(Duration::from_secs(60));
    env.sleep(Duration::from_secs(90)).await;
    assert_eq!(tls.reloads(), 0, "the same files: nothing to reload");
    let (cert, key) = ca.issue_pem(
        "tls-p",
        Validity {
            from: Validity::always().from,
            until: Validity::always().until - Duration::from_secs(1),
        },
    );
    write(&disk, "node.pem", cert.as_bytes()).await;
    write(&disk, "node.key", key.as_bytes()).await;
    env.sleep(Duration::from_secs(20)).await;
    assert_eq!(tls.reloads(), 0, "not before the next period");
    env.sleep(Duration::from_secs(20)).await;
    assert_eq!(tls.reloads(), 1, "the period after the change took it");
    reloader.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_service_runs_over_tls_and_refuses_plaintext_clients() {
    use plexspaces::durability::shared::{
        JournalServer, JournalServerConfig, SharedJournal, SharedJournalConfig,
    };
    use plexspaces::storage::journal::{Journal, JournalError, MemoryJournal};
    let ca = TestCa::new("cluster-ca", 41);
    let server_env = env("journal", RecordingNet::default());
    let server_tls = NodeTls::load(
        &server_env,
        TlsSource::Material(ca.material("journal", Validity::always(), &[])),
    )
    .await
    .unwrap();
    let server = JournalServer::start(
        server_env,
        JournalServerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            ClusterSecret::new(SECRET).unwrap(),
        )
        .with_tls(server_tls),
        MemoryJournal::new(),
    )
    .await
    .unwrap();
    let client_env = env("tls-j", RecordingNet::default());
    let client_tls = NodeTls::load(
        &client_env,
        TlsSource::Material(ca.material("tls-j", Validity::always(), &[])),
    )
    .await
    .unwrap();
    let client = SharedJournal::new(
        client_env,
        SharedJournalConfig::new(server.local_addr(), ClusterSecret::new(SECRET).unwrap())
            .with_tls(client_tls),
    );
    client.claim("acct/tls").await.unwrap();
    assert_eq!(
        client.append("acct/tls", MARKER.as_bytes()).await.unwrap(),
        1
    );
    let entries = client.replay_from("acct/tls", 1).await.unwrap();
    assert_eq!(entries[0].data, MARKER.as_bytes());

    let mut plain_config =
        SharedJournalConfig::new(server.local_addr(), ClusterSecret::new(SECRET).unwrap());
    plain_config.request_timeout = Duration::from_secs(5);
    let plain = SharedJournal::new(env("plain-j", RecordingNet::default()), plain_config);
    let refused = plain.claim("acct/tls").await.unwrap_err();
    assert!(
        matches!(refused, JournalError::Unavailable { .. }),
        "{refused}"
    );
    server.shutdown();
}
