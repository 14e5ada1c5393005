//! The OTP behaviors on tokio: GenServer (any actor), GenFSM with state
//! timeouts, GenEvent with handlers added, failing and removed.

// The FSM test moves paused tokio time forward directly.
#![allow(clippy::disallowed_methods)]

use plexspaces::actor::{Actor, ActorError, ActorSystem, Context};
use plexspaces::behavior::{EventHandler, EventManager, Fsm, FsmInput, GenFsm, Transition};
use plexspaces::{Env, NodeName};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

async fn system(test: &str) -> ActorSystem {
    let dir = std::env::temp_dir().join(format!("plexspaces-beh-{}-{test}", std::process::id()));
    ActorSystem::new(
        Env::tokio(NodeName::new("n1").unwrap())
            .with_data_dir(dir)
            .await
            .unwrap(),
    )
}

/// A GenServer: a key-value store with calls that answer and casts that don't.
#[derive(Default)]
struct Kv(BTreeMap<String, i64>);

enum KvMsg {
    Put(String, i64),
    Get(String),
    Incr(String),
}

impl Actor for Kv {
    type Msg = KvMsg;
    type Reply = Option<i64>;
    async fn handle(
        &mut self,
        _: &mut Context<Self>,
        msg: KvMsg,
    ) -> Result<Option<i64>, ActorError> {
        Ok(match msg {
            KvMsg::Put(k, v) => self.0.insert(k, v),
            KvMsg::Get(k) => self.0.get(&k).copied(),
            KvMsg::Incr(k) => {
                let v = self.0.entry(k).or_default();
                *v = v
                    .checked_add(1)
                    .ok_or_else(|| ActorError::new("overflow"))?;
                Some(*v)
            }
        })
    }
}

#[tokio::test]
async fn a_gen_server_answers_calls_and_takes_casts() {
    let system = system("kv").await;
    let kv = system.spawn("kv", Kv::default()).unwrap();
    kv.tell(KvMsg::Put("a".into(), 41)).await.unwrap(); // cast
    assert_eq!(kv.ask(KvMsg::Incr("a".into()), SECOND).await, Ok(Some(42))); // call
    assert_eq!(kv.ask(KvMsg::Get("b".into()), SECOND).await, Ok(None));
    kv.tell(KvMsg::Put("m".into(), i64::MAX)).await.unwrap();
    assert!(kv.ask(KvMsg::Incr("m".into()), SECOND).await.is_err());
}

/// A door: locked until the right code; unlocked doors lock again after 5 s.
struct Door {
    code: u32,
}

#[derive(Clone, Debug, PartialEq)]
enum DoorState {
    Locked { tries: u32 },
    Open,
    Jammed,
}

impl GenFsm for Door {
    type State = DoorState;
    type Event = u32;

    fn initial_state(&self) -> DoorState {
        DoorState::Locked { tries: 0 }
    }

    fn handle_event(
        &mut self,
        state: &DoorState,
        input: FsmInput<u32>,
    ) -> Result<Transition<DoorState>, ActorError> {
        Ok(match (state, input) {
            (DoorState::Locked { .. }, FsmInput::Event(code)) if code == self.code => {
                Transition::Next(DoorState::Open)
            }
            (DoorState::Locked { tries: 2 }, FsmInput::Event(_)) => {
                Transition::Next(DoorState::Jammed)
            }
            (DoorState::Locked { tries }, FsmInput::Event(_)) => {
                Transition::Next(DoorState::Locked { tries: tries + 1 })
            }
            (DoorState::Open, FsmInput::StateTimeout) => {
                Transition::Next(DoorState::Locked { tries: 0 })
            }
            (DoorState::Jammed, FsmInput::Event(_)) => Transition::Stop,
            (_, _) => Transition::Keep,
        })
    }

    fn state_timeout(&self, state: &DoorState) -> Option<Duration> {
        (*state == DoorState::Open).then_some(Duration::from_secs(5))
    }
}

#[tokio::test(start_paused = true)]
async fn a_gen_fsm_moves_on_events_and_state_timeouts() {
    let system = system("fsm").await;
    let door = system.spawn("door", Fsm::new(Door { code: 1234 })).unwrap();
    assert_eq!(
        door.send_event(1, SECOND).await,
        Ok(DoorState::Locked { tries: 1 })
    );
    assert_eq!(door.send_event(1234, SECOND).await, Ok(DoorState::Open));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(door.state(SECOND).await, Ok(DoorState::Open), "not yet");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        door.state(SECOND).await,
        Ok(DoorState::Locked { tries: 0 }),
        "locked by the timeout"
    );
    // Leaving a state cancels its timeout: open, then jam before 5 s pass.
    door.send_event(1234, SECOND).await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    for _ in 0..3 {
        door.send_event(7, SECOND).await.unwrap();
    }
    assert_eq!(door.state(SECOND).await, Ok(DoorState::Jammed));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        door.state(SECOND).await,
        Ok(DoorState::Jammed),
        "no timeout in Jammed"
    );
    door.send_event(0, SECOND).await.unwrap();
    assert_eq!(
        door.wait_exit().await,
        plexspaces::actor::ExitReason::Normal,
        "Stop ends the machine"
    );
}

struct Collect {
    seen: Arc<Mutex<Vec<String>>>,
    fail_on: Option<&'static str>,
    removed: Arc<Mutex<u32>>,
}

impl EventHandler<String> for Collect {
    fn handle_event(&mut self, event: &String) -> Result<(), ActorError> {
        if self.fail_on == Some(event.as_str()) {
            return Err(ActorError::new("cannot take this one"));
        }
        self.seen.lock().unwrap().push(event.clone());
        Ok(())
    }
    fn on_remove(&mut self) {
        *self.removed.lock().unwrap() += 1;
    }
}

#[tokio::test]
async fn a_gen_event_manager_adds_notifies_and_removes_handlers() {
    let system = system("events").await;
    let manager = system
        .spawn("events", EventManager::<String>::new())
        .unwrap();
    let (seen_a, seen_b) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    );
    let removed = Arc::new(Mutex::new(0));
    let a = manager
        .add_handler(
            Collect {
                seen: seen_a.clone(),
                fail_on: None,
                removed: removed.clone(),
            },
            SECOND,
        )
        .await
        .unwrap();
    manager
        .add_handler(
            Collect {
                seen: seen_b.clone(),
                fail_on: Some("bad"),
                removed: removed.clone(),
            },
            SECOND,
        )
        .await
        .unwrap();
    manager.notify("one".into()).await.unwrap();
    assert_eq!(
        manager.sync_notify("bad".into(), SECOND).await,
        Ok(1),
        "the failing handler is removed"
    );
    assert_eq!(*removed.lock().unwrap(), 1);
    assert_eq!(manager.sync_notify("two".into(), SECOND).await, Ok(1));
    assert_eq!(*seen_a.lock().unwrap(), ["one", "bad", "two"]);
    assert_eq!(*seen_b.lock().unwrap(), ["one"]);
    assert_eq!(manager.remove_handler(a, SECOND).await, Ok(true));
    assert_eq!(manager.remove_handler(a, SECOND).await, Ok(false));
    assert_eq!(*removed.lock().unwrap(), 2);
    assert_eq!(manager.sync_notify("three".into(), SECOND).await, Ok(0));
}
