//! An order workflow on the embedded file journal: reserve stock, charge
//! the payment, wait for the warehouse's go-ahead (a signal), ship; a
//! failed step compensates the ones before it, newest first.
//!
//! Stock and payments are durable actors; each step calls them under its
//! step key, so a step that runs again after a crash changes nothing twice.
//! Three orders: one ships, one has its card declined (the stock is put
//! back), one is cancelled while it waits (refunded, stock put back).
//! Run it again: the runs exist already, and nothing moves twice.
//!
//! ```text
//! cargo run --example order_workflow
//! ```

use plexspaces::prelude::*;
use plexspaces::workflow::StepKey;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const CALL: Duration = Duration::from_secs(5);

/// Units in stock, by SKU.
#[derive(Default, Serialize, Deserialize)]
struct Stock {
    units: std::collections::BTreeMap<String, i64>,
}

#[derive(Serialize, Deserialize)]
enum StockOp {
    Restock(String, i64),
    Take(String, i64),
    PutBack(String, i64),
    Count(String),
}

impl DurableActor for Stock {
    type Msg = StockOp;
    type Reply = i64;

    async fn handle(&mut self, _: &mut DurableContext<'_>, op: StockOp) -> Result<i64, ActorError> {
        let (sku, change) = match op {
            StockOp::Restock(sku, n) | StockOp::PutBack(sku, n) => (sku, n),
            StockOp::Take(sku, n) => {
                if self.units.get(&sku).copied().unwrap_or(0) < n {
                    return Err(ActorError::new(format!(
                        "only {:?} of {sku} left",
                        self.units.get(&sku)
                    )));
                }
                (sku, -n)
            }
            StockOp::Count(sku) => (sku, 0),
        };
        let units = self.units.entry(sku).or_default();
        *units += change;
        Ok(*units)
    }

    fn query(&self, _: &Env, op: &StockOp) -> Option<i64> {
        match op {
            StockOp::Count(sku) => Some(self.units.get(sku).copied().unwrap_or(0)),
            _ => None,
        }
    }
}

/// Money taken, by order.
#[derive(Default, Serialize, Deserialize)]
struct Payments {
    taken: i64,
}

#[derive(Serialize, Deserialize)]
enum PaymentOp {
    Charge { card: String, amount: i64 },
    Refund(i64),
    Total,
}

impl DurableActor for Payments {
    type Msg = PaymentOp;
    type Reply = i64;

    async fn handle(
        &mut self,
        _: &mut DurableContext<'_>,
        op: PaymentOp,
    ) -> Result<i64, ActorError> {
        match op {
            PaymentOp::Charge { card, .. } if card.starts_with("0000") => {
                return Err(ActorError::new("card declined"));
            }
            PaymentOp::Charge { amount, .. } => self.taken += amount,
            PaymentOp::Refund(amount) => self.taken -= amount,
            PaymentOp::Total => {}
        }
        Ok(self.taken)
    }

    fn query(&self, _: &Env, op: &PaymentOp) -> Option<i64> {
        matches!(op, PaymentOp::Total).then_some(self.taken)
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Order {
    sku: String,
    quantity: i64,
    card: String,
    amount: i64,
}

struct OrderWorkflow {
    stock: ActorRef<Durable<Stock>>,
    payments: ActorRef<Durable<Payments>>,
}

/// An actor's answer as a step's result: a refusal is terminal, anything
/// else (a timeout, a restart) worth retrying.
fn step_result(result: Result<i64, AskError>) -> Result<i64, StepError> {
    match result {
        Ok(n) => Ok(n),
        Err(AskError::Failed(e)) if !e.is_unavailable() => Err(StepError::terminal(e.message())),
        Err(e) => Err(StepError::retryable(e.to_string())),
    }
}

impl Workflow for OrderWorkflow {
    type Input = Order;
    type Output = String;

    async fn run(&self, ctx: WorkflowContext, order: Order) -> Result<String, WorkflowError> {
        let retry = RetryPolicy::attempts(5);
        let (stock, payments) = (self.stock.clone(), self.payments.clone());

        let take = |key: StepKey| {
            let (stock, order) = (stock.clone(), order.clone());
            async move {
                step_result(
                    stock
                        .call(key, StockOp::Take(order.sku, order.quantity), CALL)
                        .await,
                )
            }
        };
        ctx.step_with("reserve stock", &retry, take).await?;
        let (undo_stock, undo_order) = (stock.clone(), order.clone());
        ctx.on_failure("reserve stock", move |key| {
            let (stock, order) = (undo_stock.clone(), undo_order.clone());
            async move {
                step_result(
                    stock
                        .call(key, StockOp::PutBack(order.sku, order.quantity), CALL)
                        .await,
                )
                .map(drop)
            }
        });
        ctx.publish("stage", &"stock reserved").await?;

        let charge = |key: StepKey| {
            let (payments, order) = (payments.clone(), order.clone());
            async move {
                let op = PaymentOp::Charge {
                    card: order.card,
                    amount: order.amount,
                };
                step_result(payments.call(key, op, CALL).await)
            }
        };
        ctx.step_with("charge payment", &retry, charge).await?;
        let (undo_payments, amount) = (payments.clone(), order.amount);
        ctx.on_failure("charge payment", move |key| {
            let payments = undo_payments.clone();
            async move {
                step_result(payments.call(key, PaymentOp::Refund(amount), CALL).await).map(drop)
            }
        });
        ctx.publish("stage", &"paid, waiting for the warehouse")
            .await?;

        // The warehouse says go (a durable signal: one sent early is kept).
        let go: Option<bool> = ctx
            .wait_for_signal("warehouse-go", Duration::from_secs(30))
            .await?;
        if go != Some(true) {
            return Err(WorkflowError::failed("the warehouse did not confirm"));
        }
        let tracking: String = ctx
            .step("ship", |key| async move { Ok(format!("TRACK {key}")) })
            .await?;
        ctx.publish("stage", &"shipped").await?;
        Ok(tracking)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = Env::tokio(NodeName::new("node1")?)
        .with_data_dir("data/order_workflow")
        .await?;
    let system = ActorSystem::new(env.clone());
    let journal = JournalBackend::file(&env, JournalConfig::default()).await?;
    let stock = system.spawn(
        "stock",
        Durable::new(
            Stock::default(),
            journal.clone(),
            DurabilityConfig::default(),
        ),
    )?;
    let payments = system.spawn(
        "payments",
        Durable::new(
            Payments::default(),
            journal.clone(),
            DurabilityConfig::default(),
        ),
    )?;
    // Restocked once, ever (the key is fixed).
    stock
        .call("initial-restock", StockOp::Restock("mug".into(), 10), CALL)
        .await?;

    let mut config = WorkflowConfig::new("order", journal);
    config.resume_every = Duration::from_millis(200);
    let orders = Workflows::register(
        &system,
        config,
        OrderWorkflow {
            stock: stock.clone(),
            payments: payments.clone(),
        },
    )?;

    let order = |card: &str| Order {
        sku: "mug".into(),
        quantity: 2,
        card: card.into(),
        amount: 30,
    };
    let ships = RunId::new("shop", "order-1")?;
    let declined = RunId::new("shop", "order-2")?;
    let cancelled = RunId::new("shop", "order-3")?;
    println!(
        "order-1 starts: {:?}",
        orders.start(&ships, &order("4111-1111")).await?
    );
    println!(
        "order-2 starts: {:?}",
        orders.start(&declined, &order("0000-0000")).await?
    );
    println!(
        "order-3 starts: {:?}",
        orders.start(&cancelled, &order("4111-2222")).await?
    );

    orders
        .signal_once(&ships, "go-1", "warehouse-go", &true)
        .await?;
    match orders.result(&ships, Duration::from_secs(30)).await {
        Ok(tracking) => println!("order-1 shipped: {tracking}"),
        Err(e) => println!("order-1: {e}"),
    }
    match orders.result(&declined, Duration::from_secs(30)).await {
        Err(WorkflowError::Ended(RunStatus::Failed { error, compensated })) => {
            println!("order-2 failed ({error}); {compensated} step(s) compensated")
        }
        other => println!("order-2: {other:?}"),
    }
    // Cancel order 3 once it has paid and waits for the warehouse.
    loop {
        let stage: Option<String> = orders.query(&cancelled, "stage").await?;
        let status = orders.status(&cancelled).await?;
        if status.is_terminal() || stage.as_deref() == Some("paid, waiting for the warehouse") {
            break;
        }
        env.sleep(Duration::from_millis(20)).await;
    }
    orders.cancel(&cancelled).await?;
    match orders.result(&cancelled, Duration::from_secs(30)).await {
        Err(WorkflowError::Ended(status)) => println!("order-3: {status:?}"),
        other => println!("order-3: {other:?}"),
    }

    // Reads are queries: no key, nothing journaled.
    let left = stock.query(StockOp::Count("mug".into()), CALL).await?;
    let taken = payments.query(PaymentOp::Total, CALL).await?;
    println!("mugs left: {left} (10 restocked, 2 shipped); money taken: {taken} (one order of 30)");
    assert_eq!(
        (left, taken),
        (8, 30),
        "every compensation ran once, and nothing ran twice"
    );
    for (run, status) in orders.list("shop").await? {
        println!("  {run}: {status:?}");
    }
    system.shutdown().await;
    Ok(())
}
