//! A supervision tree: a worker that crashes is restarted by its
//! supervisor, and found again by name.
//!
//! ```text
//! cargo run --example supervision_tree
//! ```

use plexspaces::prelude::*;
use std::time::Duration;

struct Flaky {
    handled: u32,
}

impl Actor for Flaky {
    type Msg = &'static str;
    type Reply = u32;

    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        msg: &'static str,
    ) -> Result<u32, ActorError> {
        if msg == "crash" {
            panic!("{} was told to crash", ctx.id());
        }
        self.handled += 1;
        Ok(self.handled)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let system = ActorSystem::new(Env::tokio(NodeName::new("node1")?));
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(10))
        .child(ChildSpec::actor("flaky", || Flaky { handled: 0 }));
    let sup = system.spawn("root", Supervisor::new(spec))?;
    let timeout = Duration::from_secs(1);
    sup.stats(timeout).await?; // the tree is up
    let flaky = system
        .lookup::<Flaky>("flaky")
        .ok_or("flaky is not running")?;
    println!("handled {}", flaky.ask("work", timeout).await?);
    println!("handled {}", flaky.ask("work", timeout).await?);
    flaky.tell("crash").await?;
    println!("exit: {}", flaky.wait_exit().await);
    let again = loop {
        if let Some(found) = system.lookup::<Flaky>("flaky") {
            break found;
        }
        system.env().sleep(Duration::from_millis(1)).await;
    };
    println!(
        "restarted with fresh state: handled {}",
        again.ask("work", timeout).await?
    );
    println!(
        "restarts so far: {}",
        sup.stats(timeout).await?.total_restarts
    );
    system.shutdown().await;
    Ok(())
}
