//! Actors on tokio: tell and ask, ordering, bounded mailboxes, timeouts,
//! lifecycle hooks and states, panics, monitors, links, the registry, facets.

use plexspaces::actor::builtin_facets::MetricsFacet;
use plexspaces::actor::facet::{
    ConfigValue, Facet, FacetConfig, FacetConfigError, FacetError, Hook, Message, Rejection,
    Verdict,
};
use plexspaces::actor::{
    Actor, ActorError, ActorId, ActorStatus, ActorSystem, AskError, Context, ExitReason, SendError,
    SpawnError, SpawnOptions,
};
use plexspaces::{Env, NodeName};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

async fn system(test: &str) -> ActorSystem {
    let dir = std::env::temp_dir().join(format!("plexspaces-actors-{}-{test}", std::process::id()));
    ActorSystem::new(
        Env::tokio(NodeName::new("n1").unwrap())
            .with_data_dir(dir)
            .await
            .unwrap(),
    )
}

/// Records every message in order; can be told to fail, panic, sleep or stop.
#[derive(Default)]
struct Recorder {
    seen: Vec<u64>,
    log: Option<Arc<Mutex<Vec<String>>>>,
}

enum Cmd {
    Push(u64),
    Seen,
    Fail,
    Panic,
    Sleep(Duration),
    Stop,
}

impl Actor for Recorder {
    type Msg = Cmd;
    type Reply = Vec<u64>;

    async fn pre_start(&mut self, _ctx: &mut Context<Self>) -> Result<(), ActorError> {
        if let Some(log) = &self.log {
            log.lock().unwrap().push("pre_start".into());
        }
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: Cmd) -> Result<Vec<u64>, ActorError> {
        match msg {
            Cmd::Push(n) => self.seen.push(n),
            Cmd::Seen => {}
            Cmd::Fail => return Err(ActorError::new("told to fail")),
            Cmd::Panic => panic!("told to panic"),
            Cmd::Sleep(d) => {
                use plexspaces::seams::Clock;
                ctx.env().sleep(d).await
            }
            Cmd::Stop => ctx.stop(),
        }
        Ok(self.seen.clone())
    }

    async fn post_stop(&mut self, _ctx: &mut Context<Self>, reason: &ExitReason) {
        if let Some(log) = &self.log {
            log.lock().unwrap().push(format!("post_stop: {reason}"));
        }
    }
}

#[tokio::test]
async fn tell_and_ask_keep_per_sender_order() {
    let system = system("order").await;
    let actor = system.spawn("rec", Recorder::default()).unwrap();
    assert_eq!(actor.id().to_string(), "rec@n1");
    for n in 0..100 {
        actor.tell(Cmd::Push(n)).await.unwrap();
    }
    let seen = actor.ask(Cmd::Seen, SECOND).await.unwrap();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
    assert_eq!(actor.status(), ActorStatus::Active);
    assert!(actor.is_local());
}

#[tokio::test]
async fn a_handler_error_goes_to_the_asker_and_the_actor_carries_on() {
    let system = system("error").await;
    let actor = system.spawn("rec", Recorder::default()).unwrap();
    let err = actor.ask(Cmd::Fail, SECOND).await.unwrap_err();
    assert_eq!(err, AskError::Failed(ActorError::new("told to fail")));
    actor.tell(Cmd::Push(1)).await.unwrap();
    assert_eq!(actor.ask(Cmd::Seen, SECOND).await.unwrap(), [1]);
}

#[tokio::test(start_paused = true)]
async fn an_ask_times_out_with_a_typed_error_and_leaves_nothing_behind() {
    let system = system("timeout").await;
    let actor = system.spawn("rec", Recorder::default()).unwrap();
    let err = actor
        .ask(Cmd::Sleep(Duration::from_secs(10)), SECOND)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AskError::Timeout {
            actor: actor.id().clone(),
            after: SECOND
        }
    );
    // The late reply finds nobody waiting and is dropped; the actor goes on.
    assert_eq!(
        actor.ask(Cmd::Seen, Duration::from_secs(20)).await.unwrap(),
        Vec::<u64>::new()
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_mailbox_refuses_try_tell_and_makes_tell_wait() {
    let system = system("full").await;
    let options = SpawnOptions {
        mailbox_capacity: 2,
        ..SpawnOptions::default()
    };
    let actor = system
        .spawn_with("rec", Recorder::default(), options)
        .unwrap();
    actor
        .tell(Cmd::Sleep(Duration::from_secs(5)))
        .await
        .unwrap();
    tokio::task::yield_now().await; // the actor takes it and sleeps
    actor.try_tell(Cmd::Push(1)).unwrap();
    actor.try_tell(Cmd::Push(2)).unwrap();
    assert_eq!(actor.mailbox_len(), 2);
    assert_eq!(
        actor.try_tell(Cmd::Push(3)),
        Err(SendError::MailboxFull(actor.id().clone()))
    );
    actor.tell(Cmd::Push(3)).await.unwrap(); // waits for room, then goes in
    assert_eq!(
        actor.ask(Cmd::Seen, Duration::from_secs(10)).await.unwrap(),
        [1, 2, 3]
    );
}

#[tokio::test]
async fn lifecycle_hooks_run_and_stop_is_clean() {
    let system = system("life").await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let actor = system
        .spawn(
            "rec",
            Recorder {
                log: Some(log.clone()),
                ..Recorder::default()
            },
        )
        .unwrap();
    actor.tell(Cmd::Stop).await.unwrap();
    assert_eq!(actor.wait_exit().await, ExitReason::Normal);
    assert_eq!(actor.status(), ActorStatus::Terminated);
    assert_eq!(*log.lock().unwrap(), ["pre_start", "post_stop: normal"]);
    assert!(matches!(
        actor.tell(Cmd::Seen).await,
        Err(SendError::Stopped(_))
    ));
    assert!(
        system.lookup::<Recorder>("rec").is_none(),
        "an exited actor leaves the registry"
    );
    // The name is free again.
    let again = system.spawn("rec", Recorder::default()).unwrap();
    again.stop();
    assert_eq!(again.wait_exit().await, ExitReason::Shutdown);
}

#[tokio::test]
async fn a_panic_fails_the_actor_not_the_process() {
    let system = system("panic").await;
    let actor = system.spawn("rec", Recorder::default()).unwrap();
    let err = actor.ask(Cmd::Panic, SECOND).await.unwrap_err();
    assert_eq!(err, AskError::Stopped(actor.id().clone()));
    assert_eq!(
        actor.wait_exit().await,
        ExitReason::Panic("told to panic".into())
    );
    assert_eq!(actor.status(), ActorStatus::Failed);
}

#[tokio::test]
async fn names_are_unique_per_node_and_lookup_is_typed() {
    let system = system("names").await;
    let actor = system.spawn("rec", Recorder::default()).unwrap();
    assert!(matches!(
        system.spawn("rec", Recorder::default()),
        Err(SpawnError::NameTaken(_))
    ));
    assert!(matches!(
        system.spawn("a@b", Recorder::default()),
        Err(SpawnError::InvalidName(_))
    ));
    let options = SpawnOptions {
        mailbox_capacity: 0,
        ..SpawnOptions::default()
    };
    assert!(matches!(
        system.spawn_with("zero", Recorder::default(), options),
        Err(SpawnError::ZeroCapacity)
    ));
    let found = system.lookup::<Recorder>("rec").unwrap();
    assert_eq!(found.id(), actor.id());
    struct Other;
    impl Actor for Other {
        type Msg = ();
        type Reply = ();
        async fn handle(&mut self, _: &mut Context<Self>, _: ()) -> Result<(), ActorError> {
            Ok(())
        }
    }
    assert!(
        system.lookup::<Other>("rec").is_none(),
        "wrong type, no ref"
    );
    assert_eq!(system.actor_ids(), [actor.id().clone()]);
    system.shutdown().await;
    assert_eq!(actor.status(), ActorStatus::Terminated);
}

/// Watches another actor and records how it went.
struct Watcher {
    downs: Arc<Mutex<Vec<(ActorId, ExitReason)>>>,
}

enum WatchCmd {
    Monitor(plexspaces::actor::ActorRef<Recorder>),
    Link(plexspaces::actor::ActorRef<Recorder>),
    Down(ActorId, ExitReason),
}

impl Actor for Watcher {
    type Msg = WatchCmd;
    type Reply = ();
    async fn handle(&mut self, ctx: &mut Context<Self>, msg: WatchCmd) -> Result<(), ActorError> {
        match msg {
            WatchCmd::Monitor(target) => ctx.monitor(&target, WatchCmd::Down),
            WatchCmd::Link(target) => ctx.link(&target),
            WatchCmd::Down(id, reason) => self.downs.lock().unwrap().push((id, reason)),
        }
        Ok(())
    }
}

#[tokio::test]
async fn monitors_receive_the_exit_reason_and_links_propagate_failures() {
    let system = system("watch").await;
    let downs = Arc::new(Mutex::new(Vec::new()));
    let watcher = system
        .spawn(
            "watcher",
            Watcher {
                downs: downs.clone(),
            },
        )
        .unwrap();
    let target = system.spawn("target", Recorder::default()).unwrap();
    watcher
        .ask(WatchCmd::Monitor(target.clone()), SECOND)
        .await
        .unwrap();
    target.tell(Cmd::Panic).await.unwrap();
    target.wait_exit().await;
    for _ in 0..100 {
        if !downs.lock().unwrap().is_empty() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(
        *downs.lock().unwrap(),
        [(
            target.id().clone(),
            ExitReason::Panic("told to panic".into())
        )]
    );

    let linked = system.spawn("linked", Recorder::default()).unwrap();
    watcher
        .ask(WatchCmd::Link(linked.clone()), SECOND)
        .await
        .unwrap();
    linked.tell(Cmd::Panic).await.unwrap();
    match watcher.wait_exit().await {
        ExitReason::LinkDied { linked: id, .. } => assert_eq!(&id, linked.id()),
        other => panic!("expected a link failure, got {other}"),
    }

    // A clean exit does not travel along a link.
    let a = system
        .spawn(
            "a",
            Watcher {
                downs: downs.clone(),
            },
        )
        .unwrap();
    let b = system.spawn("b", Recorder::default()).unwrap();
    a.ask(WatchCmd::Link(b.clone()), SECOND).await.unwrap();
    b.stop();
    assert_eq!(b.wait_exit().await, ExitReason::Shutdown);
    assert_eq!(
        a.ask(WatchCmd::Down(b.id().clone(), ExitReason::Normal), SECOND)
            .await,
        Ok(())
    );
}

/// Refuses odd numbers; records what it saw before and after.
struct OddGuard {
    trail: Arc<Mutex<Vec<String>>>,
    name: &'static str,
    priority: i32,
}

impl Facet for OddGuard {
    fn name(&self) -> &str {
        self.name
    }
    fn priority(&self) -> i32 {
        self.priority
    }
    fn before<'a>(&'a mut self, msg: &Message<'_>) -> Hook<'a, Verdict> {
        let meta = &msg.meta;
        self.trail
            .lock()
            .unwrap()
            .push(format!("{} before #{}", self.name, meta.correlation));
        if self.name == "guard" && meta.correlation % 2 == 1 {
            return Hook::ready(Verdict::Reject(Rejection::new("odd correlation")));
        }
        Hook::proceed()
    }
}

#[tokio::test]
async fn facets_run_by_priority_can_reject_and_are_managed_at_runtime() {
    let system = system("facets").await;
    let trail = Arc::new(Mutex::new(Vec::new()));
    let (metrics, handle) = MetricsFacet::new();
    let facets: Vec<Box<dyn Facet>> = vec![
        Box::new(OddGuard {
            trail: trail.clone(),
            name: "audit",
            priority: 100,
        }),
        Box::new(OddGuard {
            trail: trail.clone(),
            name: "guard",
            priority: 1000,
        }),
        Box::new(metrics),
    ];
    let options = SpawnOptions {
        facets,
        ..SpawnOptions::default()
    };
    let actor = system
        .spawn_with("rec", Recorder::default(), options)
        .unwrap();
    let names: Vec<String> = actor
        .list_facets()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(
        names,
        ["guard", "metrics", "audit"],
        "highest priority first"
    );

    let first = actor.ask(Cmd::Push(1), SECOND).await.unwrap_err(); // correlation 1: odd
    assert!(
        matches!(first, AskError::Failed(e) if e.is_rejected() && e.message().contains("guard: odd correlation"))
    );
    assert_eq!(actor.ask(Cmd::Push(2), SECOND).await.unwrap(), [2]);
    assert_eq!(
        *trail.lock().unwrap(),
        ["guard before #1", "guard before #2", "audit before #2"]
    );
    let snapshot = handle.snapshot();
    assert_eq!((snapshot.handled, snapshot.rejected), (1, 1));
    assert!(snapshot.latency_quantile_us(0.99).is_some());

    assert!(actor.detach_facet("guard").await.unwrap());
    assert!(!actor.detach_facet("guard").await.unwrap());
    assert_eq!(
        actor.ask(Cmd::Push(3), SECOND).await.unwrap(),
        [2, 3],
        "odd passes now"
    );
    let registry = system.facet_types();
    assert_eq!(
        registry.names(),
        ["http_client", "logging", "metrics", "tracing"]
    );
    let logging = registry.build("logging", FacetConfig::new()).unwrap();
    actor.attach_facet(logging).await.unwrap();
    assert_eq!(actor.list_facets().await.unwrap()[0].name, "logging");
    // A second facet of the same name: a typed refusal, the first stays.
    let again = registry.build("logging", FacetConfig::new()).unwrap();
    assert_eq!(
        actor.attach_facet(again).await,
        Err(FacetError::NameTaken {
            actor: actor.id().clone(),
            name: "logging".into()
        })
    );
    let facets = actor.list_facets().await.unwrap();
    assert_eq!(facets.iter().filter(|f| f.name == "logging").count(), 1);
    actor.stop();
    actor.wait_exit().await;
    assert!(
        actor.list_facets().await.is_err(),
        "a stopped actor refuses control"
    );
    let late = registry.build("logging", FacetConfig::new()).unwrap();
    assert_eq!(
        actor.attach_facet(late).await,
        Err(FacetError::Stopped(actor.id().clone()))
    );
    // Two facets of one name at spawn: nothing is spawned, nothing panics.
    let options = SpawnOptions {
        facets: vec![
            registry.build("logging", FacetConfig::new()).unwrap(),
            registry.build("logging", FacetConfig::new()).unwrap(),
        ],
        ..Default::default()
    };
    assert!(matches!(
        system.spawn_with("twice", Recorder::default(), options),
        Err(SpawnError::Facet(FacetError::NameTaken { .. }))
    ));
    assert!(
        system.lookup::<Recorder>("twice").is_none(),
        "the name stays free"
    );
}

#[test]
fn facet_configuration_is_validated_when_built() {
    let registry = plexspaces::actor::facet::FacetRegistry::with_builtins();
    let build =
        |name: &str, config: FacetConfig| registry.build(name, config).map(|f| f.priority());
    assert_eq!(build("metrics", FacetConfig::new()), Ok(850));
    assert_eq!(
        build(
            "metrics",
            FacetConfig::new().with("priority", ConfigValue::Int(810))
        ),
        Ok(810)
    );
    assert!(matches!(
        build(
            "metrics",
            FacetConfig::new().with("priority", ConfigValue::Int(5))
        ),
        Err(FacetConfigError::Invalid { .. })
    ));
    assert!(matches!(
        build(
            "logging",
            FacetConfig::new().with("priority", ConfigValue::Str("high".into()))
        ),
        Err(FacetConfigError::WrongType { .. })
    ));
    assert!(matches!(
        build(
            "logging",
            FacetConfig::new().with("prority", ConfigValue::Int(950))
        ),
        Err(FacetConfigError::UnknownKey { .. })
    ));
    assert!(matches!(
        build("durability", FacetConfig::new()),
        Err(FacetConfigError::UnknownFacet(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn concurrent_asks_time_out_each_at_its_own_deadline() {
    use plexspaces::seams::Clock;
    let system = system("deadlines").await;
    let actor = system.spawn("rec", Recorder::default()).unwrap();
    actor
        .tell(Cmd::Sleep(Duration::from_secs(10)))
        .await
        .unwrap();
    let env = system.env().clone();
    let start = env.now();
    let timed = |timeout: Duration| {
        let (actor, env) = (actor.clone(), env.clone());
        async move {
            let outcome = actor.ask(Cmd::Seen, timeout).await;
            (outcome.is_ok(), env.now() - start)
        }
    };
    // The long deadline is registered first, so the short one must re-arm
    // the node's deadline driver.
    let long = env.spawn(timed(Duration::from_secs(60)));
    tokio::task::yield_now().await;
    let short = env.spawn(timed(Duration::from_secs(2)));
    let (short_ok, short_at) = short.await.unwrap();
    assert!(!short_ok, "the 2 s ask times out");
    assert!(
        short_at >= Duration::from_secs(2) && short_at < Duration::from_secs(3),
        "{short_at:?}"
    );
    let (long_ok, long_at) = long.await.unwrap();
    assert!(long_ok, "the 60 s ask gets its reply once the actor wakes");
    assert!(
        long_at >= Duration::from_secs(10) && long_at < Duration::from_secs(11),
        "{long_at:?}"
    );
}

/// A draining shutdown: every queued message is taken before the stop;
/// a stop without draining leaves the queue untaken.
#[tokio::test(start_paused = true)]
async fn drain_takes_every_queued_message_before_shutdown() {
    struct Slow(Arc<Mutex<Vec<u32>>>);
    impl Actor for Slow {
        type Msg = u32;
        type Reply = ();
        async fn handle(&mut self, ctx: &mut Context<Self>, n: u32) -> Result<(), ActorError> {
            plexspaces::seams::Clock::sleep(ctx.env(), Duration::from_millis(5)).await;
            self.0.lock().unwrap().push(n);
            Ok(())
        }
    }
    let system = system("drain").await;
    let taken = Arc::new(Mutex::new(Vec::new()));
    let slow = system.spawn("slow", Slow(taken.clone())).unwrap();
    for n in 0..20 {
        slow.tell(n).await.unwrap();
    }
    assert!(system.queued_messages() > 0);
    assert!(
        !system.drain(Duration::from_millis(20)).await,
        "too short a deadline"
    );
    assert!(system.drain(SECOND).await);
    assert_eq!(system.queued_messages(), 0);
    system.shutdown().await;
    assert_eq!(*taken.lock().unwrap(), (0..20).collect::<Vec<_>>());

    // Without draining, a stop leaves what is queued.
    let system = self::system("no-drain").await;
    let taken = Arc::new(Mutex::new(Vec::new()));
    let slow = system.spawn("slow", Slow(taken.clone())).unwrap();
    for n in 0..20 {
        slow.tell(n).await.unwrap();
    }
    system.shutdown().await;
    assert!(taken.lock().unwrap().len() < 20);
}
