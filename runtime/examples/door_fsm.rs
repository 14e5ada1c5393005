//! A GenFSM: a code lock that opens on the right code and locks itself
//! again after a state timeout.
//!
//! ```text
//! cargo run --example door_fsm
//! ```

use plexspaces::behavior::{Fsm, FsmInput, GenFsm, Transition};
use plexspaces::prelude::*;
use std::time::Duration;

struct CodeLock {
    code: u32,
}

#[derive(Clone, Debug, PartialEq)]
enum Door {
    Locked,
    Open,
}

impl GenFsm for CodeLock {
    type State = Door;
    type Event = u32;

    fn initial_state(&self) -> Door {
        Door::Locked
    }

    fn handle_event(
        &mut self,
        state: &Door,
        input: FsmInput<u32>,
    ) -> Result<Transition<Door>, ActorError> {
        Ok(match (state, input) {
            (Door::Locked, FsmInput::Event(code)) if code == self.code => {
                Transition::Next(Door::Open)
            }
            (Door::Open, FsmInput::StateTimeout) => Transition::Next(Door::Locked),
            _ => Transition::Keep,
        })
    }

    fn state_timeout(&self, state: &Door) -> Option<Duration> {
        (*state == Door::Open).then_some(Duration::from_millis(200))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let system = ActorSystem::new(Env::tokio(NodeName::new("node1")?));
    let door = system.spawn("door", Fsm::new(CodeLock { code: 1234 }))?;
    let timeout = Duration::from_secs(1);
    println!("wrong code -> {:?}", door.send_event(1111, timeout).await?);
    println!("right code -> {:?}", door.send_event(1234, timeout).await?);
    system.env().sleep(Duration::from_millis(300)).await;
    println!(
        "after 300 ms -> {:?} (the state timeout locked it)",
        door.state(timeout).await?
    );
    system.shutdown().await;
    Ok(())
}
