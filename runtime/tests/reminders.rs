//! Reminders on tokio's paused clock (with a wall clock that follows it):
//! fixed periods fire at each due time and activate deactivated actors,
//! cron expressions follow their time zone, cancelled reminders never fire,
//! the table survives a node restart on the embedded journal, and bad
//! schedules and names get typed errors.

use plexspaces::actor::{ActorError, ActorSystem};
use plexspaces::durability::{DurableActor, DurableContext, JournalBackend};
use plexspaces::reminders::{
    Firing, Recurrence, ReminderConfig, ReminderError, ReminderSpec, ReminderTarget, Reminders,
};
use plexspaces::seams::Clock;
use plexspaces::storage::disk::FsDisk;
use plexspaces::tokio_backend::{OsRng, TokioClock, TokioSpawner};
use plexspaces::virtual_actor::{VirtualActors, VirtualConfig};
use plexspaces::{Env, NodeName};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

const MINUTE: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(30);

/// 2025-01-06 09:00:00 UTC, a Monday.
fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_736_154_000)
}

async fn env(test: &str, fresh: bool) -> Env {
    let dir = std::env::temp_dir().join(format!(
        "plexspaces-reminders-{}-{test}",
        std::process::id()
    ));
    if fresh {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Env::new(
        NodeName::new("n1").unwrap(),
        TokioClock::with_wall_from(epoch()),
        TokioSpawner::current(),
        OsRng::new(),
        FsDisk::open_dir(dir).await.unwrap(),
        plexspaces::net::TcpNet::new(),
    )
}

/// Remembers every firing it was given.
#[derive(Default, Serialize, Deserialize)]
struct Alarm {
    rang: Vec<(String, u64)>,
}

#[derive(Clone, Serialize, Deserialize)]
enum AlarmMsg {
    Ring { firing_id: String, due_ms: u64 },
    Rang,
}

impl DurableActor for Alarm {
    type Msg = AlarmMsg;
    type Reply = Vec<(String, u64)>;
    async fn handle(
        &mut self,
        _: &mut DurableContext<'_>,
        msg: AlarmMsg,
    ) -> Result<Vec<(String, u64)>, ActorError> {
        if let AlarmMsg::Ring { firing_id, due_ms } = msg {
            self.rang.push((firing_id, due_ms));
        }
        Ok(self.rang.clone())
    }
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

struct Node {
    system: ActorSystem,
    alarms: VirtualActors<Alarm>,
    reminders: Reminders,
}

async fn node(test: &str, fresh: bool, idle: Duration) -> Node {
    let env = env(test, fresh).await;
    let system = ActorSystem::new(env.clone());
    let journal = JournalBackend::file(&env, Default::default())
        .await
        .unwrap();
    let mut config = VirtualConfig::new("alarm", journal.clone());
    config.deactivation_timeout = idle;
    let alarms = VirtualActors::register(&system, config, |_| Alarm::default()).unwrap();
    let reminders = Reminders::start(&system, ReminderConfig::new(journal))
        .await
        .unwrap();
    reminders.deliver_to(&alarms, |firing: &Firing| AlarmMsg::Ring {
        firing_id: firing.firing_id.clone(),
        due_ms: ms(firing.due),
    });
    Node {
        system,
        alarms,
        reminders,
    }
}

async fn rang(node: &Node, id: &str) -> Vec<(String, u64)> {
    node.alarms
        .get(id)
        .unwrap()
        .call(
            format!(
                "check-{}",
                node.system.env().now().since_origin().as_nanos()
            ),
            AlarmMsg::Rang,
            WAIT,
        )
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_periodic_reminder_fires_at_each_due_time_and_wakes_its_actor() {
    // Alarms deactivate after 30 s idle, well within the 10-minute period.
    let node = node("periodic", true, Duration::from_secs(30)).await;
    let env = node.system.env().clone();
    let target = ReminderTarget::new("alarm", "kitchen");
    let first = epoch() + 10 * MINUTE;
    let info = node
        .reminders
        .register(
            &target,
            ReminderSpec {
                name: "tea".into(),
                first_due: first,
                recurrence: Recurrence::Every(10 * MINUTE),
            },
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(info.next_due, first);
    assert!(
        node.alarms.active_ids().is_empty(),
        "registering does not activate"
    );
    env.sleep(10 * MINUTE + Duration::from_secs(5)).await;
    assert_eq!(rang(&node, "kitchen").await.len(), 1);
    env.sleep(Duration::from_secs(60)).await;
    assert!(
        node.alarms.active_ids().is_empty(),
        "the alarm did not deactivate"
    );
    // The next due times activate it again, each firing once, on time.
    env.sleep(35 * MINUTE).await;
    let rang = rang(&node, "kitchen").await;
    let dues: Vec<u64> = rang.iter().map(|(_, due)| *due).collect();
    let expected: Vec<u64> = (1..=4).map(|k| ms(epoch() + k * 10 * MINUTE)).collect();
    assert_eq!(dues, expected);
    for (firing_id, due) in &rang {
        assert_eq!(firing_id, &format!("alarm:kitchen/tea@{due}"));
    }
    let listed = node.reminders.list(&target, WAIT).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].next_due, epoch() + 50 * MINUTE);
    node.system.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_cron_reminder_follows_its_time_zone_and_a_cancelled_one_never_fires() {
    let node = node("cron", true, Duration::from_secs(300)).await;
    let env = node.system.env().clone();
    let target = ReminderTarget::new("alarm", "office");
    // 10:15 in Paris is 09:15 UTC in January: 15 minutes after the epoch.
    node.reminders
        .register(
            &target,
            ReminderSpec {
                name: "standup".into(),
                first_due: epoch(),
                recurrence: Recurrence::Cron {
                    expression: "0 15 10 * * Mon-Fri".into(),
                    time_zone: "Europe/Paris".into(),
                },
            },
            WAIT,
        )
        .await
        .unwrap();
    node.reminders
        .register(
            &target,
            ReminderSpec {
                name: "doomed".into(),
                first_due: epoch() + 20 * MINUTE,
                recurrence: Recurrence::Once,
            },
            WAIT,
        )
        .await
        .unwrap();
    assert!(
        node.reminders
            .cancel(&target, "doomed", WAIT)
            .await
            .unwrap()
    );
    assert!(
        !node
            .reminders
            .cancel(&target, "doomed", WAIT)
            .await
            .unwrap()
    );
    env.sleep(30 * MINUTE).await;
    let rang = rang(&node, "office").await;
    assert_eq!(rang.len(), 1, "{rang:?}");
    assert_eq!(rang[0].1, ms(epoch() + 15 * MINUTE));
    let names: Vec<String> = node
        .reminders
        .list(&target, WAIT)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["standup"]);
    node.system.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn reminders_survive_a_node_restart_on_the_embedded_journal() {
    let target = ReminderTarget::new("alarm", "garden");
    {
        let node = node("restart", true, Duration::from_secs(300)).await;
        node.reminders
            .register(
                &target,
                ReminderSpec {
                    name: "water".into(),
                    first_due: epoch() + MINUTE,
                    recurrence: Recurrence::Every(MINUTE),
                },
                WAIT,
            )
            .await
            .unwrap();
        node.system
            .env()
            .sleep(MINUTE + Duration::from_secs(1))
            .await;
        assert_eq!(rang(&node, "garden").await.len(), 1);
        node.system.shutdown().await;
    }
    // A new run on the same disk (its wall clock starts at the epoch
    // again, so the reminder's next due time is a minute away).
    let node = node("restart", false, Duration::from_secs(300)).await;
    let listed = node.reminders.list(&target, WAIT).await.unwrap();
    assert_eq!(listed.len(), 1, "the reminder was lost across the restart");
    assert_eq!(listed[0].next_due, epoch() + 2 * MINUTE);
    node.system
        .env()
        .sleep(2 * MINUTE + Duration::from_secs(1))
        .await;
    let dues: Vec<u64> = rang(&node, "garden")
        .await
        .iter()
        .map(|(_, d)| *d)
        .collect();
    assert_eq!(dues, [ms(epoch() + MINUTE), ms(epoch() + 2 * MINUTE)]);
    node.system.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn bad_schedules_and_names_get_typed_errors() {
    let node = node("errors", true, Duration::from_secs(300)).await;
    let target = ReminderTarget::new("alarm", "x");
    let spec = |name: &str, recurrence| ReminderSpec {
        name: name.into(),
        first_due: epoch(),
        recurrence,
    };
    let bad_cron = Recurrence::Cron {
        expression: "at noon".into(),
        time_zone: "UTC".into(),
    };
    assert!(matches!(
        node.reminders
            .register(&target, spec("r", bad_cron), WAIT)
            .await,
        Err(ReminderError::InvalidSchedule(_))
    ));
    let bad_zone = Recurrence::Cron {
        expression: "0 0 * * * *".into(),
        time_zone: "Nowhere/Land".into(),
    };
    assert!(matches!(
        node.reminders
            .register(&target, spec("r", bad_zone), WAIT)
            .await,
        Err(ReminderError::InvalidSchedule(_))
    ));
    assert!(matches!(
        node.reminders
            .register(&target, spec("r", Recurrence::Every(Duration::ZERO)), WAIT)
            .await,
        Err(ReminderError::InvalidSchedule(_))
    ));
    assert!(matches!(
        node.reminders
            .register(&target, spec("", Recurrence::Once), WAIT)
            .await,
        Err(ReminderError::InvalidName(_))
    ));
    assert!(matches!(
        Reminders::start(&node.system, ReminderConfig::new(JournalBackend::memory())).await,
        Err(ReminderError::AlreadyStarted)
    ));
    node.system.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_shard_refuses_new_reminders_with_a_typed_error() {
    let env = env("full", true).await;
    let system = ActorSystem::new(env.clone());
    let mut config = ReminderConfig::new(JournalBackend::memory());
    config.shards = 1;
    config.reminders_per_shard_max = 2;
    let reminders = Reminders::start(&system, config).await.unwrap();
    let target = ReminderTarget::new("alarm", "x");
    let spec = |name: &str| ReminderSpec {
        name: name.into(),
        first_due: epoch() + Duration::from_secs(3600),
        recurrence: Recurrence::Every(MINUTE),
    };
    reminders.register(&target, spec("a"), WAIT).await.unwrap();
    reminders.register(&target, spec("b"), WAIT).await.unwrap();
    assert_eq!(
        reminders.register(&target, spec("c"), WAIT).await,
        Err(ReminderError::TooMany { shard: 0, max: 2 })
    );
    // Replacing an existing one is not a new one.
    reminders.register(&target, spec("b"), WAIT).await.unwrap();
    assert!(reminders.cancel(&target, "a", WAIT).await.unwrap());
    reminders.register(&target, spec("c"), WAIT).await.unwrap();
    let names: Vec<String> = reminders
        .list(&target, WAIT)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["b", "c"]);
    system.shutdown().await;
}
