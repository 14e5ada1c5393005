//! Distribution on real loopback TCP: remote tell and ask, membership by
//! seeds and gossip, failure detection and remote monitors, the handshake
//! refusing strangers, and bad frames closing only their connection.

use futures::channel::oneshot;
use plexspaces::actor::{
    Actor, ActorError, ActorId, ActorStatus, ActorSystem, AskError, Context, ExitReason,
};
use plexspaces::distribution::{
    ClusterSecret, Distribution, DistributionConfig, MemberStatus, ResolveError,
};
use plexspaces::net::wire::{self, FrameReader, FrameWriter, Identity, WireError, WireMessage};
use plexspaces::net::{ByteReader, ByteWriter, Connection, Listener, Net, TcpNet};
use plexspaces::{Env, NodeName};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

const SECRET: &[u8] = b"a-cluster-secret-of-some-length";
const WAIT: Duration = Duration::from_secs(10);

/// Keeps a log of numbers; answers with it.
struct Log(Vec<u64>);

#[derive(Serialize, Deserialize)]
enum LogMsg {
    Push(u64),
    Get,
    Fail,
    Stop,
}

impl Actor for Log {
    type Msg = LogMsg;
    type Reply = Vec<u64>;
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        msg: LogMsg,
    ) -> Result<Vec<u64>, ActorError> {
        match msg {
            LogMsg::Push(n) => self.0.push(n),
            LogMsg::Get => {}
            LogMsg::Fail => return Err(ActorError::new("asked to fail")),
            LogMsg::Stop => ctx.stop(),
        }
        Ok(self.0.clone())
    }
}

/// Watches an actor and reports its exit (as a monitor message) to the test.
struct Watcher(Option<oneshot::Sender<(ActorId, ExitReason)>>);

enum WatchMsg {
    Watch(plexspaces::actor::ActorRef<Log>),
    Exited(ActorId, ExitReason),
}

impl Actor for Watcher {
    type Msg = WatchMsg;
    type Reply = ();
    async fn handle(&mut self, ctx: &mut Context<Self>, msg: WatchMsg) -> Result<(), ActorError> {
        match msg {
            WatchMsg::Watch(target) => ctx.monitor(&target, WatchMsg::Exited),
            WatchMsg::Exited(id, reason) => {
                if let Some(report) = self.0.take() {
                    let _ = report.send((id, reason));
                }
            }
        }
        Ok(())
    }
}

fn fast(config: DistributionConfig) -> DistributionConfig {
    let mut config = config;
    config.heartbeat_interval = Duration::from_millis(20);
    // Generous against a loaded CI machine: a false "down" would fail
    // the tests that expect nodes to stay up.
    config.suspect_after = Duration::from_millis(300);
    config.down_after = Duration::from_secs(1);
    config.reconnect_min = Duration::from_millis(10);
    config.reconnect_max = Duration::from_millis(100);
    config
}

async fn node(name: &str, seeds: &[SocketAddr]) -> (ActorSystem, Distribution) {
    node_with(name, seeds, |c| c).await
}

async fn node_with(
    name: &str,
    seeds: &[SocketAddr],
    adjust: impl FnOnce(DistributionConfig) -> DistributionConfig,
) -> (ActorSystem, Distribution) {
    let dir = std::env::temp_dir().join(format!("plexspaces-dist-{}-{name}", std::process::id()));
    let env = Env::tokio(NodeName::new(name).unwrap())
        .with_data_dir(dir)
        .await
        .unwrap();
    let system = ActorSystem::new(env);
    let config = DistributionConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ClusterSecret::new(SECRET).unwrap(),
    )
    .with_seeds(seeds.iter().copied());
    let dist = system
        .start_distribution(adjust(fast(config)))
        .await
        .unwrap();
    (system, dist)
}

fn id(name: &str, node: &str) -> ActorId {
    ActorId::new(name, NodeName::new(node).unwrap()).unwrap()
}

async fn all_up(dist: &Distribution, count: usize) {
    dist.wait_for(WAIT, |m| {
        m.iter().filter(|m| m.status == MemberStatus::Up).count() == count
    })
    .await
    .unwrap_or_else(|_| panic!("{} members never came up: {:?}", count, dist.members()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_tell_and_ask_look_like_local_ones_and_keep_order() {
    let (sys_a, dist_a) = node("a1", &[]).await;
    let (_sys_b, dist_b) = node("b1", &[dist_a.local_addr()]).await;
    let log = sys_a.spawn("log", Log(Vec::new())).unwrap();
    dist_a.export(&log).unwrap();
    all_up(&dist_b, 2).await;

    let remote = _sys_b.resolve::<Log>(&id("log", "a1")).unwrap();
    assert!(!remote.is_local());
    assert_eq!(remote.id(), &id("log", "a1"));
    for n in 0..1000 {
        remote.tell(LogMsg::Push(n)).await.unwrap();
    }
    let seen = remote.ask(LogMsg::Get, WAIT).await.unwrap();
    assert_eq!(
        seen,
        (0..1000).collect::<Vec<_>>(),
        "tells arrive in order, before the ask"
    );

    // A handler's error comes back typed, with its text.
    match remote.ask(LogMsg::Fail, WAIT).await {
        Err(AskError::Failed(e)) => assert_eq!(e.message(), "asked to fail"),
        other => panic!("{other:?}"),
    }
    // Two resolutions share one proxy (one order).
    let again = _sys_b.resolve::<Log>(&id("log", "a1")).unwrap();
    again.tell(LogMsg::Push(1000)).await.unwrap();
    assert_eq!(remote.ask(LogMsg::Get, WAIT).await.unwrap().len(), 1001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_node_learns_the_second_through_gossip() {
    let (_sys_a, dist_a) = node("a2", &[]).await;
    let (sys_b, dist_b) = node("b2", &[dist_a.local_addr()]).await;
    let log = sys_b.spawn("log", Log(vec![7])).unwrap();
    dist_b.export(&log).unwrap();
    // c knows only a; b's address reaches it in a's heartbeats.
    let (sys_c, dist_c) = node("c2", &[dist_a.local_addr()]).await;
    all_up(&dist_c, 3).await;
    let remote = sys_c.resolve::<Log>(&id("log", "b2")).unwrap();
    assert_eq!(remote.ask(LogMsg::Get, WAIT).await.unwrap(), [7]);
    let up: Vec<String> = dist_c.up_nodes().iter().map(|n| n.to_string()).collect();
    assert_eq!(up, ["a2", "b2", "c2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolving_the_unknown_fails_with_a_typed_error() {
    let (sys_a, dist_a) = node("a3", &[]).await;
    assert_eq!(
        sys_a.resolve::<Log>(&id("log", "nowhere")).unwrap_err(),
        ResolveError::UnknownNode(id("log", "nowhere"))
    );
    assert_eq!(
        sys_a.resolve::<Log>(&id("log", "a3")).unwrap_err(),
        ResolveError::NoSuchActor(id("log", "a3"))
    );
    // An actor the remote node does not export: the ref exits and asks
    // fail as Stopped, quickly.
    let (sys_b, _dist_b) = node("b3", &[dist_a.local_addr()]).await;
    all_up(&dist_a, 2).await;
    let missing = sys_a.resolve::<Log>(&id("ghost", "b3")).unwrap();
    match missing.ask(LogMsg::Get, WAIT).await {
        Err(AskError::Stopped(who)) => assert_eq!(who, id("ghost", "b3")),
        other => panic!("{other:?}"),
    }
    drop(sys_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_monitor_sees_the_actor_exit() {
    let (sys_a, dist_a) = node("a4", &[]).await;
    let (sys_b, dist_b) = node("b4", &[dist_a.local_addr()]).await;
    let log = sys_a.spawn("log", Log(Vec::new())).unwrap();
    dist_a.export(&log).unwrap();
    all_up(&dist_b, 2).await;
    let remote = sys_b.resolve::<Log>(&id("log", "a4")).unwrap();
    let (report, reported) = oneshot::channel();
    let watcher = sys_b.spawn("watcher", Watcher(Some(report))).unwrap();
    watcher.tell(WatchMsg::Watch(remote.clone())).await.unwrap();
    remote.tell(LogMsg::Stop).await.unwrap();
    assert_eq!(remote.wait_exit().await, ExitReason::Normal);
    assert_eq!(remote.status(), ActorStatus::Terminated);
    assert_eq!(
        reported.await.unwrap(),
        (id("log", "a4"), ExitReason::Normal)
    );
    // stop() through a remote ref stops the actor on its node.
    let other = sys_a.spawn("other", Log(Vec::new())).unwrap();
    dist_a.export(&other).unwrap();
    let remote_other = sys_b.resolve::<Log>(&id("other", "a4")).unwrap();
    remote_other.stop();
    assert_eq!(other.wait_exit().await, ExitReason::Shutdown);
    assert_eq!(remote_other.wait_exit().await, ExitReason::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_declared_down_and_its_remote_refs_exit() {
    let (sys_a, dist_a) = node("a5", &[]).await;
    let (sys_b, dist_b) = node("b5", &[dist_a.local_addr()]).await;
    let log = sys_b.spawn("log", Log(Vec::new())).unwrap();
    dist_b.export(&log).unwrap();
    all_up(&dist_a, 2).await;
    let remote = sys_a.resolve::<Log>(&id("log", "b5")).unwrap();
    remote.ask(LogMsg::Get, WAIT).await.unwrap();
    let view = dist_a.view();

    // Kill b: its listener and connections close, its actors stop.
    dist_b.shutdown();
    sys_b.shutdown().await;
    assert_eq!(
        remote.wait_exit().await,
        ExitReason::NodeDown(NodeName::new("b5").unwrap())
    );
    let b = dist_a
        .members()
        .into_iter()
        .find(|m| m.node.as_str() == "b5")
        .unwrap();
    assert_eq!(b.status, MemberStatus::Down);
    assert!(dist_a.view() > view);
    // While b stays down, asks fail at once; the ref itself stays valid.
    assert!(matches!(
        remote.ask(LogMsg::Get, WAIT).await,
        Err(AskError::NodeDown(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_to_an_unreachable_node_times_out_with_a_typed_error() {
    let slow_down = |c: DistributionConfig| {
        let mut config = c;
        config.suspect_after = Duration::from_secs(30);
        config.down_after = Duration::from_secs(60);
        config
    };
    let (sys_a, dist_a) = node_with("a6", &[], slow_down).await;
    let (sys_b, dist_b) = node_with("b6", &[dist_a.local_addr()], slow_down).await;
    let log = sys_b.spawn("log", Log(Vec::new())).unwrap();
    dist_b.export(&log).unwrap();
    all_up(&dist_a, 2).await;
    let remote = sys_a.resolve::<Log>(&id("log", "b6")).unwrap();
    remote.ask(LogMsg::Get, WAIT).await.unwrap();
    dist_b.shutdown();
    sys_b.shutdown().await;
    // b is gone but not yet declared down: the ask waits, then times out
    // (or learns the connection was lost, if it was written first, or
    // that the actor stopped, if b's shutdown told a so before its link
    // closed: the distribution's shutdown does not wait for its tasks).
    let after = Duration::from_millis(200);
    match remote.ask(LogMsg::Get, after).await {
        Err(AskError::Timeout {
            actor,
            after: waited,
        }) => {
            assert_eq!((actor, waited), (id("log", "b6"), after))
        }
        Err(AskError::ConnectionLost(actor) | AskError::Stopped(actor)) => {
            assert_eq!(actor, id("log", "b6"))
        }
        other => panic!("{other:?}"),
    }
}

async fn raw_connection(
    addr: SocketAddr,
) -> (FrameReader<impl ByteReader>, FrameWriter<impl ByteWriter>) {
    let (r, w) = TcpNet::new().connect(addr).await.unwrap().split();
    (FrameReader::new(r, 1 << 20), FrameWriter::new(w, 1 << 20))
}

fn stranger() -> Identity {
    Identity {
        node: "stranger".into(),
        listen: "127.0.0.1:9".parse().unwrap(),
        incarnation: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_the_wrong_secret_is_refused_and_never_becomes_a_member() {
    let (_sys_a, dist_a) = node("a7", &[]).await;
    let (mut r, mut w) = raw_connection(dist_a.local_addr()).await;
    let wrong = ClusterSecret::new(*b"not-the-cluster-secret").unwrap();
    let refused = wire::handshake::dial(&mut r, &mut w, &wrong, &stranger(), [5; 32]).await;
    assert!(
        matches!(refused, Err(WireError::AuthFailed(_))),
        "{refused:?}"
    );
    // And a node started with the wrong secret never joins.
    let (_sys_x, dist_x) = node_with("x7", &[dist_a.local_addr()], |c| {
        let mut config = c;
        config.secret = ClusterSecret::new(*b"not-the-cluster-secret").unwrap();
        config
    })
    .await;
    let joined = dist_x
        .wait_for(Duration::from_millis(300), |m| m.len() > 1)
        .await;
    assert!(joined.is_err(), "{:?}", dist_x.members());
    assert_eq!(dist_a.members().len(), 1, "{:?}", dist_a.members());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_only_their_connection() {
    let (sys_a, dist_a) = node("a8", &[]).await;
    let log = sys_a.spawn("log", Log(Vec::new())).unwrap();
    dist_a.export(&log).unwrap();
    let secret = ClusterSecret::new(SECRET).unwrap();
    let mut header_only = (u32::MAX).to_le_bytes().to_vec();
    header_only.push(wire::PROTOCOL_VERSION);
    let mut wrong_version = Vec::new();
    wire::encode_frame(&WireMessage::Welcome, 1 << 20, &mut wrong_version).unwrap();
    wrong_version[4] = 99;
    let garbage = vec![3, 0, 0, 0, wire::PROTOCOL_VERSION, 0xff, 0xff, 0xff];
    let truncated = vec![100, 0, 0, 0, wire::PROTOCOL_VERSION, 1, 2];
    for (what, bytes, authenticate) in [
        ("oversized before the handshake", header_only.clone(), false),
        ("oversized after the handshake", header_only, true),
        ("wrong version", wrong_version, true),
        ("garbage", garbage, true),
        ("truncated", truncated, true),
    ] {
        let (r, w) = TcpNet::new()
            .connect(dist_a.local_addr())
            .await
            .unwrap()
            .split();
        let mut reader = FrameReader::new(r, 1 << 20);
        let mut writer = FrameWriter::new(w, 1 << 20);
        if authenticate {
            wire::handshake::dial(&mut reader, &mut writer, &secret, &stranger(), [6; 32])
                .await
                .unwrap();
        }
        let mut raw = reader.into_inner();
        // Write the bad bytes below the frame layer.
        let mut out = writer.into_inner();
        out.write_all(&bytes).await.unwrap();
        out.flush().await.unwrap();
        if what == "truncated" {
            out.close().await.unwrap();
        }
        // The node closes this connection: the read side ends.
        let mut buf = [0u8; 64];
        let ended = loop {
            match raw.read(&mut buf).await {
                Ok(0) | Err(_) => break true,
                Ok(_) => continue, // a heartbeat sent before the bad frame
            }
        };
        assert!(ended, "{what}: connection left open");
    }
    // Meanwhile a well-behaved peer is served as ever.
    let (sys_b, dist_b) = node("b8", &[dist_a.local_addr()]).await;
    all_up(&dist_b, 2).await;
    let remote = sys_b.resolve::<Log>(&id("log", "a8")).unwrap();
    assert_eq!(remote.ask(LogMsg::Push(1), WAIT).await.unwrap(), [1]);
}

// Resolving from real threads at once is the race this test looks for.
#[allow(clippy::disallowed_methods)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refs_resolved_at_once_share_one_proxy() {
    let (sys_a, dist_a) = node("a10", &[]).await;
    let (_sys_b, dist_b) = node("b10", &[dist_a.local_addr()]).await;
    all_up(&dist_a, 2).await;
    all_up(&dist_b, 2).await;
    let sys_a = std::sync::Arc::new(sys_a);
    for round in 0..40 {
        let log = _sys_b
            .spawn(&format!("log{round}"), Log(Vec::new()))
            .unwrap();
        dist_b.export(&log).unwrap();
        let target = id(&format!("log{round}"), "b10");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let resolving: Vec<_> = (0..4)
            .map(|_| {
                let (sys_a, target, barrier) = (sys_a.clone(), target.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    sys_a.resolve::<Log>(&target).unwrap()
                })
            })
            .collect();
        let refs: Vec<_> = resolving.into_iter().map(|t| t.join().unwrap()).collect();
        for r in &refs[1..] {
            assert!(
                r.ptr_eq(&refs[0]),
                "round {round}: two proxies for {target}"
            );
        }
        assert_eq!(refs[3].ask(LogMsg::Push(1), WAIT).await.unwrap(), [1]);
    }
}

/// A relay on loopback between two nodes that can hold every byte without
/// closing anything (a partition), and let them through again.
struct Relay {
    addr: SocketAddr,
    hold: tokio::sync::watch::Sender<bool>,
    target: std::sync::Arc<std::sync::Mutex<Option<SocketAddr>>>,
}

async fn pump(
    mut from: impl ByteReader,
    mut to: impl ByteWriter,
    mut hold: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if hold.wait_for(|held| !held).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() || to.flush().await.is_err() {
            return;
        }
    }
}

async fn relay(env: &Env) -> Relay {
    let mut listener = TcpNet::new()
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr();
    let (hold, _) = tokio::sync::watch::channel(false);
    let target = std::sync::Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
    let (hold_tx, target_at, spawner) = (hold.clone(), target.clone(), env.clone());
    drop(env.spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Some(to) = *target_at.lock().unwrap() else {
                continue;
            };
            let Ok(outbound) = TcpNet::new().connect(to).await else {
                continue;
            };
            let (in_r, in_w) = inbound.split();
            let (out_r, out_w) = outbound.split();
            drop(spawner.spawn(pump(in_r, out_w, hold_tx.subscribe())));
            drop(spawner.spawn(pump(out_r, in_w, hold_tx.subscribe())));
        }
    }));
    Relay { addr, hold, target }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ref_to_a_node_that_comes_back_works_again() {
    let env_of = |name: &str| {
        let dir =
            std::env::temp_dir().join(format!("plexspaces-dist-{}-{name}", std::process::id()));
        let name = NodeName::new(name).unwrap();
        async move { Env::tokio(name).with_data_dir(dir).await.unwrap() }
    };
    // Every byte between a and b passes a relay the test can hold.
    let relay_a = relay(&env_of("relays").await).await;
    let relay_b = relay(&env_of("relays2").await).await;
    let (sys_a, dist_a) = node_with("a11", &[], |c| {
        let mut config = c;
        config.advertise = Some(relay_a.addr);
        config
    })
    .await;
    *relay_a.target.lock().unwrap() = Some(dist_a.bound_addr());
    let (sys_b, dist_b) = node_with("b11", &[relay_a.addr], |c| {
        let mut config = c;
        config.advertise = Some(relay_b.addr);
        config
    })
    .await;
    *relay_b.target.lock().unwrap() = Some(dist_b.bound_addr());
    all_up(&dist_a, 2).await;
    all_up(&dist_b, 2).await;
    let log = sys_b.spawn("log", Log(Vec::new())).unwrap();
    dist_b.export(&log).unwrap();
    let remote = sys_a.resolve::<Log>(&id("log", "b11")).unwrap();
    assert_eq!(remote.ask(LogMsg::Push(1), WAIT).await.unwrap(), [1]);
    let (report, reported) = oneshot::channel();
    let watcher = sys_a.spawn("watcher", Watcher(Some(report))).unwrap();
    watcher.tell(WatchMsg::Watch(remote.clone())).await.unwrap();

    // A partition: both sides go silent and declare each other down.
    relay_a.hold.send_replace(true);
    relay_b.hold.send_replace(true);
    let down = |m: &[plexspaces::distribution::MemberInfo]| {
        m.iter().any(|m| m.status == MemberStatus::Down)
    };
    dist_a.wait_for(WAIT, down).await.unwrap();
    assert_eq!(
        reported.await.unwrap(),
        (
            id("log", "b11"),
            ExitReason::NodeDown(NodeName::new("b11").unwrap())
        ),
        "the monitor fired once, with the noconnection-like reason"
    );
    assert!(matches!(
        remote.ask(LogMsg::Get, WAIT).await,
        Err(AskError::NodeDown(_))
    ));
    assert!(
        sys_a
            .resolve::<Log>(&id("log", "b11"))
            .unwrap()
            .ptr_eq(&remote),
        "resolving again gives the same ref"
    );

    // Healed: the same ref works again, and the actor kept its state.
    relay_a.hold.send_replace(false);
    relay_b.hold.send_replace(false);
    // Once this node sees b Up, the proxy has heard so before any later ask.
    all_up(&dist_a, 2).await;
    assert_eq!(
        remote.ask(LogMsg::Push(2), WAIT).await.unwrap(),
        [1, 2],
        "the same ref reached the same actor"
    );
    assert_eq!(remote.status(), ActorStatus::Active);
    // A monitor made now waits for the actor's next exit.
    let (report, reported) = oneshot::channel();
    let watcher = sys_a.spawn("watcher2", Watcher(Some(report))).unwrap();
    watcher.tell(WatchMsg::Watch(remote.clone())).await.unwrap();
    remote.tell(LogMsg::Stop).await.unwrap();
    assert_eq!(
        reported.await.unwrap(),
        (id("log", "b11"), ExitReason::Normal)
    );
}
