//! A GenEvent: an event manager with handlers added and removed at runtime.
//!
//! ```text
//! cargo run --example event_bus
//! ```

use plexspaces::behavior::{EventHandler, EventManager};
use plexspaces::prelude::*;
use std::time::Duration;

struct Printer(&'static str);

impl EventHandler<String> for Printer {
    fn handle_event(&mut self, event: &String) -> Result<(), ActorError> {
        println!("[{}] {event}", self.0);
        Ok(())
    }

    fn on_remove(&mut self) {
        println!("[{}] removed", self.0);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let system = ActorSystem::new(Env::tokio(NodeName::new("node1")?));
    let bus = system.spawn("bus", EventManager::<String>::new())?;
    let timeout = Duration::from_secs(1);
    let audit = bus.add_handler(Printer("audit"), timeout).await?;
    bus.add_handler(Printer("alerts"), timeout).await?;
    bus.sync_notify("user ada logged in".into(), timeout)
        .await?;
    bus.remove_handler(audit, timeout).await?;
    let reached = bus.sync_notify("disk 91% full".into(), timeout).await?;
    println!("the last event reached {reached} handler(s)");
    system.shutdown().await;
    Ok(())
}
