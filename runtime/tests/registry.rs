//! The ObjectRegistry: register, look up and unregister by tenant,
//! namespace and id; tenants isolated from each other; actor entries gone
//! when the actor exits; lookups that return working refs, remote ones too;
//! a registration made on one node seen from every node until its owner
//! removes it or goes down.

use plexspaces::actor::{Actor, ActorError, ActorSystem, Context};
use plexspaces::distribution::{ClusterSecret, Distribution, DistributionConfig, MemberStatus};
use plexspaces::registry::{
    ObjectAddress, ObjectRegistration, ObjectType, RegistryError, TenantRegistry,
};
use plexspaces::seams::Clock;
use plexspaces::{Env, NodeName};
use std::time::Duration;

struct Echo;

impl Actor for Echo {
    type Msg = String;
    type Reply = String;
    async fn handle(&mut self, ctx: &mut Context<Self>, msg: String) -> Result<String, ActorError> {
        if msg == "stop" {
            ctx.stop();
        }
        Ok(format!("{} says {msg}", ctx.id()))
    }
}

async fn system(name: &str) -> ActorSystem {
    let dir =
        std::env::temp_dir().join(format!("plexspaces-registry-{}-{name}", std::process::id()));
    ActorSystem::new(
        Env::tokio(NodeName::new(name).unwrap())
            .with_data_dir(dir)
            .await
            .unwrap(),
    )
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn registered_objects_are_found_by_namespace_and_id_and_unregistered() {
    let system = system("r1").await;
    let acme = system.registry("acme").unwrap();
    let echo = system.spawn("echo", Echo).unwrap();
    acme.register_actor("billing", "invoicer", &echo).unwrap();
    acme.register(
        ObjectRegistration::new(
            "billing",
            "tax-api",
            ObjectAddress::Endpoint("https://tax.example/v2".into()),
        )
        .with_metadata("version", "2"),
    )
    .unwrap();

    let found = acme.lookup("billing", "invoicer", None).unwrap();
    assert_eq!(found.address, ObjectAddress::Actor(echo.id().clone()));
    assert_eq!(found.object_type(), ObjectType::Actor);
    // Typed lookups filter by type.
    assert!(
        acme.lookup("billing", "tax-api", Some(ObjectType::Actor))
            .is_none()
    );
    let service = acme
        .lookup("billing", "tax-api", Some(ObjectType::Service))
        .unwrap();
    assert_eq!(service.metadata["version"], "2");
    // A looked-up actor ref works.
    let invoicer = acme.lookup_actor::<Echo>("billing", "invoicer").unwrap();
    assert_eq!(
        invoicer.ask("hi".into(), SECOND).await.unwrap(),
        "echo@r1 says hi"
    );
    assert!(matches!(
        acme.lookup_actor::<Echo>("billing", "tax-api"),
        Err(RegistryError::WrongType {
            found: ObjectType::Service,
            wanted: ObjectType::Actor
        })
    ));
    // Listing is per namespace, sorted.
    let ids: Vec<String> = acme
        .list("billing")
        .into_iter()
        .map(|r| r.object_id)
        .collect();
    assert_eq!(ids, ["invoicer", "tax-api"]);
    assert!(acme.list("shipping").is_empty());
    // One name, one object.
    assert!(matches!(
        acme.register_actor("billing", "invoicer", &echo),
        Err(RegistryError::AlreadyRegistered { .. })
    ));
    let removed = acme.unregister("billing", "tax-api").unwrap();
    assert_eq!(removed.object_id, "tax-api");
    assert!(acme.lookup("billing", "tax-api", None).is_none());
    assert!(matches!(
        acme.unregister("billing", "tax-api"),
        Err(RegistryError::NotFound { .. })
    ));
    system.shutdown().await;
}

#[tokio::test]
async fn one_tenant_can_never_see_or_touch_anothers_objects() {
    let system = system("r2").await;
    let acme = system.registry("acme").unwrap();
    let globex = system.registry("globex").unwrap();
    let acme_echo = system.spawn("acme-echo", Echo).unwrap();
    let globex_echo = system.spawn("globex-echo", Echo).unwrap();
    acme.register_actor("ns", "svc", &acme_echo).unwrap();
    // The same namespace and id in another tenant is another object.
    globex.register_actor("ns", "svc", &globex_echo).unwrap();
    let from_acme = acme.lookup_actor::<Echo>("ns", "svc").unwrap();
    let from_globex = globex.lookup_actor::<Echo>("ns", "svc").unwrap();
    assert_eq!(from_acme.id(), acme_echo.id());
    assert_eq!(from_globex.id(), globex_echo.id());

    acme.register_actor("private", "ledger", &acme_echo)
        .unwrap();
    assert!(globex.lookup("private", "ledger", None).is_none());
    assert!(matches!(
        globex.lookup_actor::<Echo>("private", "ledger"),
        Err(RegistryError::NotFound { .. })
    ));
    assert!(globex.list("private").is_empty());
    assert!(matches!(
        globex.unregister("private", "ledger"),
        Err(RegistryError::NotFound { .. })
    ));
    assert!(
        acme.lookup("private", "ledger", None).is_some(),
        "globex removed acme's entry"
    );
    // Tenant names cannot smuggle a separator or another tenant's scope.
    for bad in ["", "acme/private", "a b", "\u{7}"] {
        assert!(
            matches!(system.registry(bad), Err(RegistryError::InvalidName(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        acme.register(ObjectRegistration::new(
            "",
            "x",
            ObjectAddress::Endpoint("e".into())
        )),
        Err(RegistryError::InvalidName(_))
    ));
    system.shutdown().await;
}

#[tokio::test]
async fn an_actor_entry_goes_when_the_actor_exits_and_its_name_can_be_reused() {
    let system = system("r3").await;
    let acme = system.registry("acme").unwrap();
    let first = system.spawn("first", Echo).unwrap();
    acme.register_actor("ns", "worker", &first).unwrap();
    first.ask("stop".into(), SECOND).await.unwrap();
    first.wait_exit().await;
    let gone = async {
        while acme.lookup("ns", "worker", None).is_some() {
            plexspaces::seams::Clock::sleep(system.env(), Duration::from_millis(1)).await;
        }
    };
    plexspaces::seams::Clock::timeout(system.env(), SECOND, gone)
        .await
        .expect("the exited actor's entry was never removed");
    let second = system.spawn("second", Echo).unwrap();
    acme.register_actor("ns", "worker", &second).unwrap();
    let worker = acme.lookup_actor::<Echo>("ns", "worker").unwrap();
    assert_eq!(
        worker.ask("hi".into(), SECOND).await.unwrap(),
        "second@r3 says hi"
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_of_a_remote_actor_looks_up_to_a_remote_ref() {
    let secret = ClusterSecret::new(b"a-cluster-secret-of-some-length").unwrap();
    let listen = "127.0.0.1:0".parse().unwrap();
    let a = system("ra").await;
    let b = system("rb").await;
    let dist_a = a
        .start_distribution(DistributionConfig::new(listen, secret.clone()))
        .await
        .unwrap();
    let dist_b = b
        .start_distribution(
            DistributionConfig::new(listen, secret).with_seeds([dist_a.local_addr()]),
        )
        .await
        .unwrap();
    let echo = a.spawn("echo", Echo).unwrap();
    dist_a.export(&echo).unwrap();
    dist_b
        .wait_for(Duration::from_secs(10), |m| {
            m.iter().filter(|m| m.status == MemberStatus::Up).count() == 2
        })
        .await
        .unwrap();
    // Registered on node b, pointing at node a's actor.
    let acme = b.registry("acme").unwrap();
    acme.register(ObjectRegistration::new(
        "ns",
        "echo",
        ObjectAddress::Actor(echo.id().clone()),
    ))
    .unwrap();
    let remote = acme.lookup_actor::<Echo>("ns", "echo").unwrap();
    assert!(!remote.is_local());
    assert_eq!(
        remote.ask("hi".into(), SECOND).await.unwrap(),
        "echo@ra says hi"
    );
    dist_a.shutdown();
    dist_b.shutdown();
}

async fn node(name: &str, seeds: &[std::net::SocketAddr]) -> (ActorSystem, Distribution) {
    let system = system(name).await;
    let mut config = DistributionConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ClusterSecret::new(b"a-cluster-secret-of-some-length").unwrap(),
    )
    .with_seeds(seeds.iter().copied());
    config.heartbeat_interval = Duration::from_millis(20);
    config.suspect_after = Duration::from_millis(300);
    config.down_after = Duration::from_millis(800);
    let dist = system.start_distribution(config).await.unwrap();
    (system, dist)
}

const WAIT: Duration = Duration::from_secs(10);

/// Waits until `registry` lists exactly `ids` in `namespace`.
async fn until_listed(
    system: &ActorSystem,
    registry: &TenantRegistry,
    namespace: &str,
    ids: &[&str],
) {
    let listed = || -> Vec<String> {
        registry
            .list(namespace)
            .into_iter()
            .map(|r| r.object_id)
            .collect()
    };
    let seen = async {
        while listed() != ids {
            system.env().sleep(Duration::from_millis(5)).await;
        }
    };
    if system.env().timeout(WAIT, seen).await.is_err() {
        panic!(
            "{} lists {:?} in {namespace}, never {ids:?}",
            system.node(),
            listed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_seen_from_every_node_until_their_owner_goes() {
    let (sa, da) = node("rga", &[]).await;
    let (sb, db) = node("rgb", &[da.local_addr()]).await;
    // Node c registers before it joins: peers get it in its first
    // snapshot, and more entries than fit in one snapshot page.
    let sc = system("rgc").await;
    let rc = sc.registry("acme").unwrap();
    let bulk: Vec<String> = (0..600).map(|i| format!("svc-{i:04}")).collect();
    for id in &bulk {
        rc.register(ObjectRegistration::new(
            "bulk",
            id.as_str(),
            ObjectAddress::Endpoint(format!("http://{id}")),
        ))
        .unwrap();
    }
    let mut config = DistributionConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ClusterSecret::new(b"a-cluster-secret-of-some-length").unwrap(),
    )
    .with_seeds([da.local_addr()]);
    config.heartbeat_interval = Duration::from_millis(20);
    config.suspect_after = Duration::from_millis(300);
    config.down_after = Duration::from_millis(800);
    let dc = sc.start_distribution(config).await.unwrap();
    for d in [&da, &db, &dc] {
        d.wait_for(WAIT, |m| {
            m.iter().filter(|m| m.status == MemberStatus::Up).count() == 3
        })
        .await
        .unwrap();
    }
    let (ra, rb) = (sa.registry("acme").unwrap(), sb.registry("acme").unwrap());
    let echo = sa.spawn("echo", Echo).unwrap();
    ra.register_actor("ns", "echo", &echo).unwrap();
    rb.register(ObjectRegistration::new(
        "ns",
        "cart",
        ObjectAddress::Virtual {
            kind: "cart".into(),
            id: "c-1".into(),
        },
    ))
    .unwrap();
    let bulk_ids: Vec<&str> = bulk.iter().map(String::as_str).collect();
    for (system, registry) in [(&sa, &ra), (&sb, &rb), (&sc, &rc)] {
        until_listed(system, registry, "ns", &["cart", "echo"]).await;
        until_listed(system, registry, "bulk", &bulk_ids).await;
        assert_eq!(registry.owner("ns", "cart").unwrap().as_str(), "rgb");
    }
    // Another tenant sees none of it, on any node.
    assert!(sc.registry("globex").unwrap().list("ns").is_empty());

    // A lookup on c resolves to a working remote ref to a's actor.
    let remote = rc.lookup_actor::<Echo>("ns", "echo").unwrap();
    assert!(!remote.is_local());
    assert_eq!(
        remote.ask("hi".into(), SECOND).await.unwrap(),
        "echo@rga says hi"
    );
    // A name another node holds is taken here too, and only its owner
    // can unregister it.
    assert!(matches!(
        rc.register(ObjectRegistration::new(
            "ns",
            "echo",
            ObjectAddress::Endpoint("x".into())
        )),
        Err(RegistryError::AlreadyRegistered { .. })
    ));
    assert!(matches!(
        rc.unregister("ns", "cart"),
        Err(RegistryError::OwnedElsewhere(node)) if node.as_str() == "rgb"
    ));
    // The owner's unregistering and its actor's exit reach every node.
    rb.unregister("ns", "cart").unwrap();
    echo.ask("stop".into(), SECOND).await.unwrap();
    for (system, registry) in [(&sa, &ra), (&sb, &rb), (&sc, &rc)] {
        until_listed(system, registry, "ns", &[]).await;
    }
    // Node c goes down: its entries leave a's and b's views.
    dc.shutdown();
    sc.shutdown().await;
    for (system, registry) in [(&sa, &ra), (&sb, &rb)] {
        until_listed(system, registry, "bulk", &[]).await;
    }
    da.shutdown();
    db.shutdown();
}
