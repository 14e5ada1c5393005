//! Process groups: join, leave, members and send-to-all, scoped by tenant
//! and namespace; members leave when they exit; across three loopback
//! nodes, every node sees every member, a group send reaches members on
//! other nodes, and the members of a node that goes down leave.

use plexspaces::actor::{Actor, ActorError, ActorId, ActorSystem, Context};
use plexspaces::distribution::{ClusterSecret, Distribution, DistributionConfig, MemberStatus};
use plexspaces::groups::{GroupError, ProcessGroups};
use plexspaces::seams::Clock;
use plexspaces::{Env, NodeName};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// Adds what it is told to a counter the test can read.
struct Counter(Arc<AtomicU64>);

impl Actor for Counter {
    type Msg = u64;
    type Reply = u64;
    async fn handle(&mut self, ctx: &mut Context<Self>, n: u64) -> Result<u64, ActorError> {
        if n == 0 {
            ctx.stop();
        }
        Ok(self.0.fetch_add(n, Ordering::SeqCst) + n)
    }
}

async fn system(name: &str) -> ActorSystem {
    let dir = std::env::temp_dir().join(format!("plexspaces-groups-{}-{name}", std::process::id()));
    ActorSystem::new(
        Env::tokio(NodeName::new(name).unwrap())
            .with_data_dir(dir)
            .await
            .unwrap(),
    )
}

/// Waits until `groups` lists exactly `want` in the group.
async fn until_members(
    system: &ActorSystem,
    groups: &ProcessGroups,
    group: &str,
    want: &[ActorId],
) {
    let mut want = want.to_vec();
    want.sort_by(|a, b| (a.node(), a.name()).cmp(&(b.node(), b.name())));
    let check = async {
        loop {
            if groups.members("acme", "ns", group).await.unwrap() == want {
                return;
            }
            system.env().sleep(Duration::from_millis(5)).await;
        }
    };
    if system.env().timeout(WAIT, check).await.is_err() {
        panic!(
            "{} never listed {want:?}; has {:?}",
            system.node(),
            groups.members("acme", "ns", group).await.unwrap()
        );
    }
}

#[tokio::test]
async fn members_join_leave_and_are_told_within_their_scope() {
    let system = system("g1").await;
    let groups = system.process_groups().unwrap();
    let (sum_a, sum_b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let a = system.spawn("a", Counter(sum_a.clone())).unwrap();
    let b = system.spawn("b", Counter(sum_b.clone())).unwrap();
    groups.join("acme", "ns", "workers", &a).await.unwrap();
    groups.join("acme", "ns", "workers", &b).await.unwrap();
    groups.join("acme", "ns", "workers", &b).await.unwrap(); // once is enough
    // Another tenant's group of the same name is another group.
    groups.join("globex", "ns", "workers", &a).await.unwrap();
    assert_eq!(
        groups.members("acme", "ns", "workers").await.unwrap(),
        [a.id().clone(), b.id().clone()]
    );
    assert_eq!(
        groups.members("globex", "ns", "workers").await.unwrap(),
        [a.id().clone()]
    );
    assert!(
        groups
            .members("acme", "other", "workers")
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        groups
            .send_to_group::<Counter>("acme", "ns", "workers", 5)
            .await
            .unwrap(),
        2
    );
    a.ask(1, WAIT).await.unwrap(); // the send was handled before this
    b.ask(1, WAIT).await.unwrap();
    assert_eq!(
        (sum_a.load(Ordering::SeqCst), sum_b.load(Ordering::SeqCst)),
        (6, 6)
    );

    assert!(groups.leave("acme", "ns", "workers", &a).await.unwrap());
    assert!(!groups.leave("acme", "ns", "workers", &a).await.unwrap());
    assert_eq!(
        groups.members("acme", "ns", "workers").await.unwrap(),
        [b.id().clone()]
    );
    // An exiting member leaves every group.
    b.ask(0, WAIT).await.unwrap();
    b.wait_exit().await;
    until_members(&system, &groups, "workers", &[]).await;
    assert!(matches!(
        groups.members("", "ns", "g").await,
        Err(GroupError::InvalidName(_))
    ));
    system.shutdown().await;
}

async fn node(name: &str, seeds: &[std::net::SocketAddr]) -> (ActorSystem, Distribution) {
    let system = system(name).await;
    let config = {
        let mut config = DistributionConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            ClusterSecret::new(b"a-cluster-secret-of-some-length").unwrap(),
        )
        .with_seeds(seeds.iter().copied());
        config.heartbeat_interval = Duration::from_millis(20);
        config.suspect_after = Duration::from_millis(300);
        config.down_after = Duration::from_millis(800);
        config
    };
    let dist = system.start_distribution(config).await.unwrap();
    (system, dist)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_span_the_cluster_and_a_down_nodes_members_leave() {
    let (sa, da) = node("ga", &[]).await;
    let (sb, db) = node("gb", &[da.local_addr()]).await;
    let (sc, dc) = node("gc", &[da.local_addr()]).await;
    for d in [&da, &db, &dc] {
        d.wait_for(WAIT, |m| {
            m.iter().filter(|m| m.status == MemberStatus::Up).count() == 3
        })
        .await
        .unwrap();
    }
    let (ga, gb, gc) = (
        sa.process_groups().unwrap(),
        sb.process_groups().unwrap(),
        sc.process_groups().unwrap(),
    );
    let (sum_a, sum_b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let on_a = sa.spawn("wa", Counter(sum_a.clone())).unwrap();
    let on_b = sb.spawn("wb", Counter(sum_b.clone())).unwrap();
    ga.join("acme", "ns", "workers", &on_a).await.unwrap();
    gb.join("acme", "ns", "workers", &on_b).await.unwrap();
    let both = [on_a.id().clone(), on_b.id().clone()];
    for (system, groups) in [(&sa, &ga), (&sb, &gb), (&sc, &gc)] {
        until_members(system, groups, "workers", &both).await;
    }
    // A send from the third node reaches both members.
    assert_eq!(
        gc.send_to_group::<Counter>("acme", "ns", "workers", 3)
            .await
            .unwrap(),
        2
    );
    let reached = async {
        while sum_a.load(Ordering::SeqCst) != 3 || sum_b.load(Ordering::SeqCst) != 3 {
            sc.env().sleep(Duration::from_millis(5)).await;
        }
    };
    sc.env()
        .timeout(WAIT, reached)
        .await
        .expect("the group send did not arrive");
    // Node b goes down: its member leaves the group on a and c.
    db.shutdown();
    sb.shutdown().await;
    for (system, groups) in [(&sa, &ga), (&sc, &gc)] {
        until_members(system, groups, "workers", &[on_a.id().clone()]).await;
    }
    da.shutdown();
    dc.shutdown();
}
