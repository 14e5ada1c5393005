//! Capability facets in the simulator: a durable shop charges orders
//! through a fake payment service over HTTP (the runtime's `HttpServer`
//! on the simulated network, with latency, refusals and answers lost after
//! charging) and stores each receipt in the embedded key-value store and
//! the Disk-seam blob store, while the nemesis crashes both nodes,
//! partitions them, resets connections and fails the shop's syncs.
//!
//! Oracles:
//! - every request the service saw for one order carries the same
//!   idempotency key (so the service charges each order at most once,
//!   whatever was retried, crashed or replayed);
//! - every receipt the shop acknowledged is, after healing and one more
//!   crash of the shop, still its reply, in the key-value store and in the
//!   blob store;
//! - replay never calls the service: re-sending every order and
//!   restarting the shop after healing adds no request;
//! - the run is a function of its seed.
#![cfg(madsim)]

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use plexspaces::actor::{ActorError, ActorRef, ActorSystem, SpawnOptions};
use plexspaces::capabilities::blob::{BlobStorageFacet, DiskObjectStore};
use plexspaces::capabilities::http::{
    BreakerPolicy, HttpClientConfig, HttpClientFacet, HttpHandler, HttpRequest, HttpResponse,
    HttpServer, RetryPolicy, ServedRequest,
};
use plexspaces::capabilities::kv::{EmbeddedKv, KeyValueFacet, KvStore};
use plexspaces::durability::{
    DurabilityConfig, Durable, DurableActor, DurableContext, JournalBackend,
};
use plexspaces::retry::Backoff;
use plexspaces::seams::{Clock, Rng};
use plexspaces::storage::journal::JournalConfig;
use plexspaces_sim::{
    Cluster, ClusterConfig, DiskFaults, FaultKinds, NemesisConfig, ReportOnPanic, Schedule,
};
use plexspaces_tests_sim::liveness::{AFTER_HEALING, finish_within};
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, caught_within, run_seeds};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PAYMENTS_PORT: u16 = 8080;

/// What the fake payment service saw and did, kept outside its node so a
/// crash of the node loses none of it (a real service's ledger is durable).
#[derive(Default)]
struct Ledger {
    /// Each request: the order its body names and its idempotency key.
    requests: Vec<(String, Option<String>)>,
    /// Charges by idempotency key: the receipt issued.
    charges: BTreeMap<String, String>,
}

type SharedLedger = Arc<Mutex<Ledger>>;

/// The service: a little latency; a fifth of requests refused before
/// charging (503), a tenth charged with the answer lost (503), one in
/// twenty charged and answered too late for the client's timeout.
fn payment_service(env: plexspaces::Env, ledger: SharedLedger) -> HttpHandler {
    Arc::new(move |request: ServedRequest| {
        let (env, ledger) = (env.clone(), ledger.clone());
        Box::pin(async move {
            env.sleep(Duration::from_millis(env.gen_range(0..20))).await;
            let order = String::from_utf8_lossy(&request.body).to_string();
            let key = request.header("idempotency-key").map(str::to_string);
            let roll = env.gen_range(0..100);
            let receipt = {
                let mut ledger = ledger.lock().unwrap();
                ledger.requests.push((order.clone(), key.clone()));
                let Some(key) = key else {
                    return HttpResponse::new(400, "an idempotency key is required");
                };
                if roll < 20 {
                    return HttpResponse::new(503, "busy");
                }
                let next = ledger.charges.len();
                ledger
                    .charges
                    .entry(key)
                    .or_insert_with(|| format!("receipt-{order}-{next}"))
                    .clone()
            };
            if roll < 30 {
                return HttpResponse::new(503, "charged, but the answer is lost");
            }
            if roll < 35 {
                // Charged, but answered after the client gave up.
                env.sleep(Duration::from_millis(500)).await;
            }
            HttpResponse::new(201, receipt)
        })
    })
}

#[derive(Default, Serialize, Deserialize)]
struct Shop {
    receipts: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Charge {
    order: String,
    /// A user's bug the key oracle must catch: every attempt derives its
    /// own key instead of the order keeping one.
    key_per_attempt: bool,
}

/// Most charge attempts (or store attempts) one order makes.
const ATTEMPTS_MAX: u32 = 200;

impl DurableActor for Shop {
    type Msg = Charge;
    type Reply = String;

    async fn handle(
        &mut self,
        ctx: &mut DurableContext<'_>,
        msg: Charge,
    ) -> Result<String, ActorError> {
        if let Some(receipt) = self.receipts.get(&msg.order) {
            return Ok(receipt.clone());
        }
        let missing = || ActorError::new("a capability is missing");
        let http = ctx
            .facet::<HttpClientFacet>()
            .and_then(HttpClientFacet::client)
            .ok_or_else(missing)?;
        let kv = ctx.facet::<KeyValueFacet>().cloned().ok_or_else(missing)?;
        let blobs = ctx
            .facet::<BlobStorageFacet>()
            .cloned()
            .ok_or_else(missing)?;
        let env = ctx.env().clone();
        // One key for the order, whatever attempt, crash or replay follows.
        let key = ctx.idempotency_key("charge");
        let mut attempt = 0;
        let receipt = loop {
            attempt += 1;
            let mut request = HttpRequest::post("/charges", msg.order.clone());
            if !msg.key_per_attempt {
                request = request.idempotency_key(key.clone());
            }
            match http.send_durable(ctx, "charge", request).await? {
                Ok(response) if response.status == 201 => break response.text(),
                _ if attempt < ATTEMPTS_MAX => {
                    // A journaled pause: replay skips it.
                    let env = env.clone();
                    ctx.run("pause", || async move {
                        env.sleep(Duration::from_millis(100)).await
                    })
                    .await?;
                }
                outcome => return Err(ActorError::new(format!("not charged: {outcome:?}"))),
            }
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (kv, blobs, order, body) = (
                kv.clone(),
                blobs.clone(),
                msg.order.clone(),
                receipt.clone(),
            );
            let stored: Result<(), String> = ctx
                .run("store", || async move {
                    kv.set(&order, body.clone().into_bytes(), None)
                        .await
                        .map_err(|e| e.to_string())?;
                    blobs
                        .put(&format!("receipts/{order}"), body.into())
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
                .await?;
            match stored {
                Ok(()) => break,
                Err(_) if attempt < ATTEMPTS_MAX => {
                    let env = env.clone();
                    ctx.run("pause", || async move {
                        env.sleep(Duration::from_millis(100)).await
                    })
                    .await?;
                }
                Err(e) => return Err(ActorError::new(format!("receipt not stored: {e}"))),
            }
        }
        self.receipts.insert(msg.order, receipt.clone());
        Ok(receipt)
    }
}

/// The shop's running actor and its stores.
#[derive(Clone)]
struct Running {
    shop: ActorRef<Durable<Shop>>,
    kv: KeyValueFacet,
    blobs: BlobStorageFacet,
}

type Slot = Arc<Mutex<Option<Running>>>;

#[derive(Debug, PartialEq)]
struct Outcome {
    acknowledged: usize,
    crashes: u64,
    requests: usize,
    trace_hash: u64,
}

fn http_config(payments: std::net::SocketAddr) -> HttpClientConfig {
    HttpClientConfig::new(&format!("http://{payments}"))
        .unwrap()
        .name("payments")
        .timeout(Duration::from_millis(300))
        .retry(RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(200)),
            ..RetryPolicy::default()
        })
        .breaker(BreakerPolicy {
            failures_to_open: 5,
            open_for: Duration::from_millis(500),
        })
}

/// Opens the shop's journal, stores and actor on `env`; `None` if the
/// disk refused (the caller tries again).
async fn open_shop(
    env: &plexspaces::Env,
    system: &ActorSystem,
    payments: std::net::SocketAddr,
    bug: Option<plexspaces::PlantedBug>,
) -> Option<Running> {
    let journal_config = {
        let mut config = JournalConfig::default();
        config.segment_bytes_max = 16 * 1024;
        config
    };
    let journal = JournalBackend::file(env, journal_config).await.ok()?;
    let store: Arc<dyn KvStore> = Arc::new(
        EmbeddedKv::open(journal.clone(), "receipts", 10_000)
            .await
            .ok()?
            .checkpoint_every(50),
    );
    let objects = Arc::new(DiskObjectStore::open(env, "receipts").await.ok()?);
    let kv = KeyValueFacet::new(store, "shop", "receipts").on(env);
    let blobs = BlobStorageFacet::new(objects, "shop", "receipts");
    let options = SpawnOptions {
        facets: vec![
            Box::new(HttpClientFacet::new(http_config(payments))),
            Box::new(kv.clone()),
            Box::new(blobs.clone()),
        ],
        ..SpawnOptions::default()
    };
    let config = {
        let mut config = DurabilityConfig::default();
        config.checkpoint_interval = 25;
        config.planted_bug = bug;
        config
    };
    let shop = system
        .spawn_with(
            "shop",
            Durable::new(Shop::default(), journal, config),
            options,
        )
        .ok()?;
    Some(Running { shop, kv, blobs })
}

fn scenario(seed: u64) -> Outcome {
    planted(seed, None, false)
}

fn planted(seed: u64, bug: Option<plexspaces::PlantedBug>, key_per_attempt: bool) -> Outcome {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let mut cluster = Cluster::new(ClusterConfig {
            disk_faults: DiskFaults {
                sync_error: 0.01,
                ..DiskFaults::recoverable()
            },
            ..ClusterConfig::new(seed)
        });
        let ledger: SharedLedger = Arc::default();
        let payments_node = cluster.add_node("payments", {
            let ledger = ledger.clone();
            move |env| {
                let ledger = ledger.clone();
                async move {
                    let addr = std::net::SocketAddr::from(([0, 0, 0, 0], PAYMENTS_PORT));
                    let handler = payment_service(env.clone(), ledger);
                    let _server = loop {
                        match HttpServer::serve(&env, addr, None, handler.clone()).await {
                            Ok(server) => break server,
                            Err(_) => env.sleep(Duration::from_millis(10)).await,
                        }
                    };
                    futures::future::pending::<()>().await;
                }
            }
        });
        let payments = cluster.addr(payments_node, PAYMENTS_PORT);
        let slot: Slot = Arc::default();
        let shop_node = cluster.add_node("shop", {
            let slot = slot.clone();
            move |env| {
                let slot = slot.clone();
                async move {
                    let system = ActorSystem::new(env.clone());
                    loop {
                        let Some(running) = open_shop(&env, &system, payments, bug).await else {
                            env.sleep(Duration::from_millis(10)).await;
                            continue;
                        };
                        *slot.lock().unwrap() = Some(running.clone());
                        // A journal failure stops the shop; it is opened again.
                        running.shop.wait_exit().await;
                        *slot.lock().unwrap() = None;
                        env.sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
        let schedule = Schedule::draw(
            seed,
            2,
            &NemesisConfig {
                active: Duration::from_secs(12),
                quiet: Duration::from_secs(3),
                mean_gap: Duration::from_millis(700),
                max_fault: Duration::from_millis(600),
                kinds: FaultKinds {
                    crash: true,
                    pause: false,
                    partition: true,
                    isolate: true,
                    reset: true,
                    skew: false,
                    disk: true,
                },
            },
        );
        let _report = ReportOnPanic::new(format!("capabilities seed {seed}\n{schedule}"));

        // The client: orders, each sent until it has a reply.
        let (done_tx, mut done_rx) = mpsc::channel(1);
        let client = {
            let slot = slot.clone();
            let mut done_tx = done_tx.clone();
            let rng = plexspaces_sim::ChaChaRng::for_node(seed, 999);
            madsim::task::spawn(async move {
                let mut acked: BTreeMap<String, String> = BTreeMap::new();
                let mut orders = Vec::new();
                for i in 0..60u64 {
                    madsim::time::sleep(Duration::from_millis(rng.gen_range(20..150))).await;
                    let order = format!("o{i}");
                    orders.push(order.clone());
                    let Some(running) = slot.lock().unwrap().clone() else {
                        continue;
                    };
                    let charge = Charge {
                        order: order.clone(),
                        key_per_attempt,
                    };
                    if let Ok(receipt) = running
                        .shop
                        .call(order.clone(), charge, Duration::from_secs(1))
                        .await
                    {
                        acked.insert(order, receipt);
                    }
                }
                let _ = done_tx.send((orders, acked)).await;
            })
        };
        schedule.run(&cluster).await;
        let (orders, acked) =
            finish_within(seed, "the client's orders", AFTER_HEALING, done_rx.next())
                .await
                .expect("the client finishes");
        drop(client);

        // After the storm: every order once more, until each has a receipt.
        let settle = |what: &'static str| {
            let (slot, orders) = (slot.clone(), orders.clone());
            finish_within(seed, what, AFTER_HEALING * 2, async move {
                let mut receipts = BTreeMap::new();
                for order in &orders {
                    let receipt = loop {
                        let running = slot.lock().unwrap().clone();
                        if let Some(running) = running {
                            let charge = Charge {
                                order: order.clone(),
                                key_per_attempt,
                            };
                            if let Ok(receipt) = running
                                .shop
                                .call(order.clone(), charge, Duration::from_secs(2))
                                .await
                            {
                                break receipt;
                            }
                        }
                        madsim::time::sleep(Duration::from_millis(50)).await;
                    };
                    receipts.insert(order.clone(), receipt);
                }
                receipts
            })
        };
        let receipts = settle("every order charged after healing").await;
        for (order, receipt) in &acked {
            assert_eq!(
                &receipts[order], receipt,
                "seed {seed}: the acknowledged receipt of {order} changed"
            );
        }
        let requests_before = ledger.lock().unwrap().requests.len();

        // One more crash of the shop: everything comes back by replay.
        cluster.crash(shop_node);
        madsim::time::sleep(Duration::from_millis(100)).await;
        cluster.restart(shop_node);
        let replayed = settle("every order answered after a restart").await;
        assert_eq!(replayed, receipts, "seed {seed}: a replayed reply changed");
        assert_eq!(
            ledger.lock().unwrap().requests.len(),
            requests_before,
            "seed {seed}: replay called the payment service"
        );
        let running = slot
            .lock()
            .unwrap()
            .clone()
            .expect("the shop runs after healing");
        for (order, receipt) in &receipts {
            let kept = running.kv.get(order).await;
            assert_eq!(
                kept,
                Ok(Some(receipt.clone().into_bytes())),
                "seed {seed}: {order}'s receipt not in the KV store"
            );
            let blob = running.blobs.get(&format!("receipts/{order}")).await;
            assert_eq!(
                blob.as_deref(),
                Ok(receipt.as_bytes()),
                "seed {seed}: {order}'s receipt not in the blob store"
            );
        }

        // One idempotency key per order, so at most one charge per order.
        let ledger = ledger.lock().unwrap();
        let mut keys: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (order, key) in &ledger.requests {
            let key = key
                .as_deref()
                .unwrap_or_else(|| panic!("seed {seed}: a request for {order} without a key"));
            keys.entry(order.as_str()).or_default().insert(key);
        }
        for (order, keys) in &keys {
            assert_eq!(
                keys.len(),
                1,
                "seed {seed}: {order} was sent under {} keys",
                keys.len()
            );
        }
        assert_eq!(
            ledger.charges.len(),
            orders.len(),
            "seed {seed}: one charge per order"
        );
        assert!(
            acked.len() >= 10,
            "seed {seed}: the workload made progress ({} acked)",
            acked.len()
        );
        Outcome {
            acknowledged: acked.len(),
            // The last crash is the oracle's own.
            crashes: cluster.disk(shop_node).fault_counts().crashes - 1,
            requests: ledger.requests.len(),
            trace_hash: cluster.trace().hash(),
        }
    })
}

#[test]
fn a_durable_shop_charges_each_order_once_and_keeps_every_receipt() {
    let plan = SeedPlan::from_env(6).with_fresh("capabilities", 100);
    let outcomes = run_seeds("capabilities", &plan, scenario);
    let crashes: u64 = outcomes.iter().map(|o| o.crashes).sum();
    assert!(
        crashes >= outcomes.len() as u64,
        "the nemesis crashed the shop {crashes} times in {} seeds",
        outcomes.len()
    );
    assert_deterministic(2, scenario);
}

#[test]
fn durable_actors_that_call_the_service_again_on_replay_are_caught() {
    caught_within(
        "ReplaySideEffects",
        4,
        &["replay called the payment service"],
        |seed| {
            planted(seed, Some(plexspaces::PlantedBug::ReplaySideEffects), false);
        },
    );
}

#[test]
fn a_shop_whose_retries_carry_new_keys_is_caught() {
    caught_within("a key per attempt", 8, &["keys"], |seed| {
        planted(seed, None, true);
    });
}
