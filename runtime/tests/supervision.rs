//! Supervision on tokio: strategies, restart types, intensity, backoff,
//! nested trees, adding, removing and restarting children.

use plexspaces::actor::{Actor, ActorError, ActorRef, ActorSystem, Context, ExitReason};
use plexspaces::retry::Backoff;
use plexspaces::seams::Clock;
use plexspaces::supervision::{
    ChildSpec, Restart, RestartDelay, Strategy, Supervisor, SupervisorError, SupervisorSpec,
};
use plexspaces::{Env, NodeName};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

type Log = Arc<Mutex<Vec<String>>>;

async fn system(test: &str) -> ActorSystem {
    let dir = std::env::temp_dir().join(format!("plexspaces-sup-{}-{test}", std::process::id()));
    ActorSystem::new(
        Env::tokio(NodeName::new("n1").unwrap())
            .with_data_dir(dir)
            .await
            .unwrap(),
    )
}

/// A worker that logs its starts and can be made to crash or finish.
struct Worker {
    name: &'static str,
    log: Log,
}

#[derive(Debug)]
enum Work {
    Ping,
    Crash,
    Finish,
}

impl Actor for Worker {
    type Msg = Work;
    type Reply = &'static str;

    async fn pre_start(&mut self, _ctx: &mut Context<Self>) -> Result<(), ActorError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("start {}", self.name));
        Ok(())
    }

    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        msg: Work,
    ) -> Result<&'static str, ActorError> {
        match msg {
            Work::Ping => Ok(self.name),
            Work::Crash => panic!("{} crashed", self.name),
            Work::Finish => {
                ctx.stop();
                Ok(self.name)
            }
        }
    }
}

fn worker(name: &'static str, log: &Log) -> ChildSpec {
    let log = log.clone();
    ChildSpec::actor(name, move || Worker {
        name,
        log: log.clone(),
    })
}

/// The running worker `name`, waiting (on the node's clock) for a restart.
async fn lookup(system: &ActorSystem, name: &str) -> ActorRef<Worker> {
    for _ in 0..5000 {
        if let Some(found) = system.lookup::<Worker>(name)
            && found.ask(Work::Ping, SECOND).await.is_ok()
        {
            return found;
        }
        system.env().sleep(Duration::from_millis(1)).await;
    }
    panic!("{name} never came back");
}

/// Waits until the supervisor and the named children are up.
async fn ready(system: &ActorSystem, sup: &ActorRef<Supervisor>, children: &[&str]) {
    sup.stats(SECOND).await.unwrap();
    for name in children {
        lookup(system, name).await;
    }
}

async fn crash(system: &ActorSystem, name: &str) {
    let victim = lookup(system, name).await;
    victim.tell(Work::Crash).await.unwrap();
    assert!(matches!(victim.wait_exit().await, ExitReason::Panic(_)));
}

fn starts(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[tokio::test]
async fn strategies_restart_the_right_children() {
    for (strategy, expected) in [
        (Strategy::OneForOne, vec!["start b"]),
        (Strategy::OneForAll, vec!["start a", "start b", "start c"]),
        (Strategy::RestForOne, vec!["start b", "start c"]),
    ] {
        let system = system(&format!("{strategy:?}")).await;
        let log = Log::default();
        let spec = SupervisorSpec::new(strategy)
            .child(worker("a", &log))
            .child(worker("b", &log))
            .child(worker("c", &log));
        let sup = system.spawn("sup", Supervisor::new(spec)).unwrap();
        ready(&system, &sup, &["a", "b", "c"]).await;
        assert_eq!(starts(&log), ["start a", "start b", "start c"]);
        crash(&system, "b").await;
        for name in ["a", "b", "c"] {
            lookup(&system, name).await;
        }
        assert_eq!(starts(&log), expected, "{strategy:?}");
        let stats = sup.stats(SECOND).await.unwrap();
        assert_eq!(stats.total_restarts, 1);
        assert_eq!(stats.children[1].restarts, 1);
        assert!(stats.children.iter().all(|c| c.id.is_some()));
        sup.stop();
        assert_eq!(sup.wait_exit().await, ExitReason::Shutdown);
        assert!(
            system.actor_ids().is_empty(),
            "stopping a supervisor stops its children"
        );
    }
}

#[tokio::test]
async fn restart_types_decide_who_comes_back() {
    let system = system("types").await;
    let log = Log::default();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("perm", &log))
        .child(worker("trans", &log).restart(Restart::Transient))
        .child(worker("temp", &log).restart(Restart::Temporary));
    let sup = system.spawn("sup", Supervisor::new(spec)).unwrap();
    ready(&system, &sup, &["perm", "trans", "temp"]).await;
    starts(&log);

    // A transient child that finishes normally stays down; one that fails returns.
    lookup(&system, "trans")
        .await
        .tell(Work::Finish)
        .await
        .unwrap();
    crash(&system, "temp").await;
    lookup(&system, "perm")
        .await
        .tell(Work::Finish)
        .await
        .unwrap();
    lookup(&system, "perm").await;
    let stats = sup.stats(SECOND).await.unwrap();
    let names: Vec<&str> = stats.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["perm", "trans"], "a temporary child is forgotten");
    assert!(
        stats.children[1].id.is_none(),
        "a normally finished transient child stays down"
    );
    assert_eq!(
        starts(&log),
        ["start perm"],
        "a permanent child restarts even after a normal exit"
    );
    crash_transient_after_restart(&system, &sup, &log).await;
}

async fn crash_transient_after_restart(
    system: &ActorSystem,
    sup: &ActorRef<Supervisor>,
    log: &Log,
) {
    sup.restart_child("trans", SECOND).await.unwrap();
    crash(system, "trans").await;
    lookup(system, "trans").await;
    assert_eq!(starts(log), ["start trans", "start trans"]);
}

#[tokio::test]
async fn restart_intensity_is_honoured_exactly() {
    let system = system("intensity").await;
    let log = Log::default();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(3, Duration::from_secs(60))
        .child(worker("w", &log));
    let sup = system.spawn("sup", Supervisor::new(spec)).unwrap();
    ready(&system, &sup, &["w"]).await;
    for _ in 0..3 {
        crash(&system, "w").await;
        lookup(&system, "w").await;
    }
    assert_eq!(
        sup.stats(SECOND).await.unwrap().total_restarts,
        3,
        "three restarts allowed"
    );
    crash(&system, "w").await; // the fourth within the window
    match sup.wait_exit().await {
        ExitReason::Error(why) => assert!(why.contains("restart intensity exceeded"), "{why}"),
        other => panic!("expected the supervisor to fail, got {other}"),
    }
    assert_eq!(
        starts(&log).len(),
        4,
        "started once and restarted three times, not four"
    );
    assert!(system.actor_ids().is_empty());
}

#[tokio::test(start_paused = true)]
async fn backoff_delays_restarts() {
    let system = system("backoff").await;
    let log = Log::default();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(60))
        .restart_delay(RestartDelay::Exponential(
            Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).with_jitter(0.0),
        ))
        .child(worker("w", &log));
    let sup = system.spawn("sup", Supervisor::new(spec)).unwrap();
    ready(&system, &sup, &["w"]).await;
    let env = system.env().clone();
    for expected_ms in [100, 200, 400] {
        let before = env.now();
        crash(&system, "w").await;
        lookup(&system, "w").await;
        let waited = env.now() - before;
        assert!(
            waited >= Duration::from_millis(expected_ms)
                && waited < Duration::from_millis(expected_ms + 50),
            "waited {waited:?}, expected about {expected_ms} ms"
        );
    }
}

#[tokio::test]
async fn a_failing_nested_supervisor_is_restarted_by_its_parent() {
    let system = system("nested").await;
    let log = Log::default();
    let inner = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(0, Duration::from_secs(60)) // gives up at the first crash
        .child(worker("leaf", &log));
    let outer = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("sibling", &log))
        .child(ChildSpec::supervisor("inner", inner));
    let root = system.spawn("root", Supervisor::new(outer)).unwrap();
    ready(&system, &root, &["sibling", "leaf"]).await;
    assert_eq!(starts(&log), ["start sibling", "start leaf"]);
    crash(&system, "leaf").await;
    lookup(&system, "leaf").await;
    assert_eq!(
        starts(&log),
        ["start leaf"],
        "the inner supervisor was restarted with its child"
    );
    let stats = root.stats(SECOND).await.unwrap();
    assert_eq!(
        (stats.children[1].name.as_str(), stats.children[1].restarts),
        ("inner", 1)
    );
}

#[tokio::test]
async fn children_are_added_removed_and_restarted_on_demand() {
    let system = system("manage").await;
    let log = Log::default();
    let sup = system
        .spawn(
            "sup",
            Supervisor::new(SupervisorSpec::new(Strategy::OneForOne)),
        )
        .unwrap();
    let id = sup.add_child(worker("x", &log), SECOND).await.unwrap();
    assert_eq!(id.to_string(), "x@n1");
    assert_eq!(
        sup.add_child(worker("x", &log), SECOND).await,
        Err(SupervisorError::DuplicateChild("x".into()))
    );
    sup.restart_child("x", SECOND).await.unwrap();
    assert_eq!(starts(&log), ["start x", "start x"]);
    assert_eq!(
        sup.stats(SECOND).await.unwrap().total_restarts,
        0,
        "on-demand restarts are not failures"
    );
    sup.remove_child("x", SECOND).await.unwrap();
    assert!(system.lookup::<Worker>("x").is_none());
    assert_eq!(
        sup.remove_child("x", SECOND).await,
        Err(SupervisorError::NoSuchChild("x".into()))
    );
}

/// `child` hands out the running incarnation at once, even asked right
/// after a crash the supervisor has not handled yet: one ask, no polling.
#[tokio::test]
async fn a_supervised_child_is_found_by_name_without_polling() {
    let system = system("child-by-name").await;
    let log = Log::default();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("w", &log))
        .child(worker("t", &log).restart(Restart::Transient))
        .child(worker("tmp", &log).restart(Restart::Temporary));
    let root = system.spawn("root", Supervisor::new(spec)).unwrap();

    let first = root.child::<Worker>("w", SECOND).await.unwrap();
    assert_eq!(first.ask(Work::Ping, SECOND).await.unwrap(), "w");
    for round in 1..=3 {
        let before = root.child::<Worker>("w", SECOND).await.unwrap();
        // The crash's reply is lost; the next `child` must not return the
        // incarnation that just died.
        assert!(before.ask(Work::Crash, SECOND).await.is_err());
        let after = root.child::<Worker>("w", SECOND).await.unwrap();
        assert!(!after.ptr_eq(&before), "round {round}: a dead incarnation");
        assert_eq!(after.ask(Work::Ping, SECOND).await.unwrap(), "w");
    }
    let stats = root.stats(SECOND).await.unwrap();
    assert_eq!(stats.children[0].restarts, 3, "each crash restarted once");

    // A transient child that finished normally is not running.
    let t = root.child::<Worker>("t", SECOND).await.unwrap();
    t.ask(Work::Finish, SECOND).await.unwrap();
    wait_stopped(&t).await;
    assert_eq!(
        root.child::<Worker>("t", SECOND).await.unwrap_err(),
        SupervisorError::NotRunning("t".into())
    );
    // A temporary child that crashed is gone.
    let tmp = root.child::<Worker>("tmp", SECOND).await.unwrap();
    assert!(tmp.ask(Work::Crash, SECOND).await.is_err());
    wait_stopped(&tmp).await;
    assert_eq!(
        root.child::<Worker>("tmp", SECOND).await.unwrap_err(),
        SupervisorError::NoSuchChild("tmp".into())
    );
    // Asking for the wrong type is a typed error, not a panic.
    assert!(matches!(
        root.child::<Supervisor>("w", SECOND).await.unwrap_err(),
        SupervisorError::WrongType { ref name, .. } if name == "w"
    ));
    assert_eq!(
        root.child::<Worker>("nobody", SECOND).await.unwrap_err(),
        SupervisorError::NoSuchChild("nobody".into())
    );
}

/// Waits until `actor` has exited.
async fn wait_stopped<A: Actor>(actor: &ActorRef<A>) {
    actor.wait_exit().await;
}
