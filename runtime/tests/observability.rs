//! Observability on tokio: the operator endpoint scraped over real HTTP on
//! loopback and parsed by a Prometheus text parser after a known workload
//! (messages, failures, a restart, fsyncs, a custom metric, membership);
//! `/health`, `/ready` (a failing check, a stopped node), the JSON export,
//! bad requests; a Pushgateway receiving pushes; per-actor series bounded
//! and removed with their actor.

use plexspaces::actor::builtin_facets::MetricsFacet;
use plexspaces::actor::facet::{ConfigValue, FacetConfig};
use plexspaces::actor::{Actor, ActorError, ActorSystem, Context, SpawnOptions};
use plexspaces::durability::{
    DurabilityConfig, Durable, DurableActor, DurableContext, JournalBackend,
};
use plexspaces::net::{ByteReader, ByteWriter, Connection, Listener, Net};
use plexspaces::observability::health::CheckOutcome;
use plexspaces::observability::push::{PushConfig, push_once};
use plexspaces::observability::{OperatorEndpoint, Sampling, render_json};
use plexspaces::seams::Clock;
use plexspaces::storage::journal::JournalConfig;
use plexspaces::supervision::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
use plexspaces::{Env, NodeName};
use prometheus_parse::{Sample, Scrape, Value};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

async fn env(test: &str, node: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("plexspaces-obs-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Env::tokio(NodeName::new(node).unwrap())
        .with_data_dir(dir)
        .await
        .unwrap()
}

/// One HTTP/1.1 request over the node's network (real TCP here); the
/// status code and body.
async fn http(env: &Env, addr: SocketAddr, request: &str) -> (u16, String) {
    let (mut input, mut output) = env.net().connect(addr).await.unwrap().split();
    output.write_all(request.as_bytes()).await.unwrap();
    output.flush().await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = input.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

async fn get(env: &Env, addr: SocketAddr, path: &str) -> (u16, String) {
    http(
        env,
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n"),
    )
    .await
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid Prometheus text")
}

/// The value of the sample `name` whose labels include `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} is ambiguous");
    found.first().map(|s| match &s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{name} is not a scalar: {other:?}"),
    })
}

/// The `count` of histogram `name` (its `_count` sample).
fn histogram_count(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(scrape, &format!("{name}_count"), labels)
        .unwrap_or_else(|| panic!("{name} has no _count sample"))
}

// ---------------------------------------------------------------- actors

#[derive(Debug, Clone)]
enum Cmd {
    Add(u64),
    Fail,
    Custom,
    /// Answers after a while (on the node's clock): an ask with a shorter
    /// deadline times out.
    Slow,
}

#[derive(Default)]
struct Tally {
    total: u64,
}

impl Actor for Tally {
    type Msg = Cmd;
    type Reply = u64;
    async fn handle(&mut self, ctx: &mut Context<Self>, msg: Cmd) -> Result<u64, ActorError> {
        match msg {
            Cmd::Add(n) => self.total += n,
            Cmd::Fail => return Err(ActorError::new("refused")),
            Cmd::Slow => ctx.env().sleep(Duration::from_millis(100)).await,
            Cmd::Custom => {
                // Actor code registers its own metric through its facet.
                let facet = ctx.facet::<MetricsFacet>().expect("the metrics facet");
                let orders = facet.counter("orders_placed", "orders this actor placed");
                orders.expect("a valid custom metric").inc_by(3);
            }
        }
        Ok(self.total)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Deposit(u64);

#[derive(Default, Serialize, Deserialize)]
struct Ledger {
    balance: u64,
}

impl DurableActor for Ledger {
    type Msg = Deposit;
    type Reply = u64;
    async fn handle(
        &mut self,
        _ctx: &mut DurableContext<'_>,
        msg: Deposit,
    ) -> Result<u64, ActorError> {
        self.balance += msg.0;
        Ok(self.balance)
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn a_scrape_counts_a_known_workload() {
    let env = env("scrape", "n1").await;
    let system = ActorSystem::new(env.clone());
    let endpoint = OperatorEndpoint::serve(&system, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = endpoint.local_addr();

    // 20 messages to a plain actor, one of which fails; 3 via the facet.
    // Every handler timed (the default times a sample).
    let (facet, handle) = MetricsFacet::new();
    let facet = facet.latency_sampling(Sampling::Always);
    let options = SpawnOptions {
        facets: vec![Box::new(facet)],
        ..SpawnOptions::default()
    };
    let tally = system
        .spawn_with("tally", Tally::default(), options)
        .unwrap();
    for i in 0..18 {
        tally.ask(Cmd::Add(i), SECOND).await.unwrap();
    }
    tally.ask(Cmd::Fail, SECOND).await.unwrap_err();
    tally.ask(Cmd::Custom, SECOND).await.unwrap();
    assert_eq!(handle.snapshot().handled, 19);
    // One ask that gives up before its answer.
    let late = tally.ask(Cmd::Slow, Duration::from_millis(10)).await;
    assert!(matches!(
        late,
        Err(plexspaces::actor::AskError::Timeout { .. })
    ));
    tally.ask(Cmd::Add(0), SECOND).await.unwrap();
    // A supervised child that crashes once is restarted once.
    let spec =
        SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::actor("worker", Tally::default));
    let sup = system.spawn("sup", Supervisor::new(spec)).unwrap();
    let child = sup.child::<Tally>("worker", SECOND).await.unwrap();
    child.stop_with(plexspaces::actor::ExitReason::Error("crash".into()));
    child.wait_exit().await;
    sup.child::<Tally>("worker", SECOND).await.unwrap();
    // A durable actor on the file journal: 5 appends, each fsynced.
    let journal = JournalBackend::file(&env, JournalConfig::default())
        .await
        .unwrap();
    let ledger = Durable::new(Ledger::default(), journal, DurabilityConfig::default());
    let ledger = system.spawn("ledger", ledger).unwrap();
    for i in 0..5 {
        ledger
            .call(&format!("d{i}"), Deposit(10), SECOND)
            .await
            .unwrap();
    }

    let (status, body) = get(&env, addr, "/metrics").await;
    assert_eq!(status, 200);
    let scrape = parse(&body);
    let tally_kind = [("kind", "Tally")];
    assert_eq!(
        value(&scrape, "plexspaces_messages_total", &tally_kind),
        Some(22.0),
        "tally's 22 messages and none of the worker's"
    );
    assert_eq!(
        value(&scrape, "plexspaces_asks_timed_out_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "plexspaces_message_failures_total", &tally_kind),
        Some(1.0)
    );
    assert_eq!(
        histogram_count(&scrape, "plexspaces_message_handling_seconds", &tally_kind),
        22.0,
        "the facet times each message of its kind"
    );
    assert_eq!(
        value(&scrape, "plexspaces_supervisor_restarts_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &scrape,
            "plexspaces_actors",
            &[("kind", "Tally"), ("state", "active")]
        ),
        Some(2.0),
        "tally and the restarted worker"
    );
    assert_eq!(
        value(
            &scrape,
            "plexspaces_actor_exits_total",
            &[("kind", "Tally"), ("state", "failed")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "plexspaces_orders_placed_total", &[]),
        None,
        "custom metrics live in the facet's namespace"
    );
    assert_eq!(
        value(&scrape, "plexspaces_custom_orders_placed_total", &[]),
        Some(3.0)
    );
    let file = [("backend", "file")];
    assert_eq!(
        value(&scrape, "plexspaces_journal_appends_total", &file),
        Some(10.0),
        "a message and a reply entry per deposit"
    );
    let fsyncs = value(&scrape, "plexspaces_journal_fsyncs_total", &[]).unwrap();
    assert!(
        fsyncs >= 5.0,
        "one group commit per sequential deposit: {fsyncs}"
    );
    assert_eq!(
        histogram_count(&scrape, "plexspaces_journal_fsync_seconds", &[]),
        fsyncs
    );
    assert!(value(&scrape, "plexspaces_journal_fsync_bytes_total", &[]).unwrap() > 0.0);
    assert_eq!(
        histogram_count(&scrape, "plexspaces_journal_replay_seconds", &[]),
        1.0,
        "the ledger recovered once"
    );
    // The process's own resources (Linux).
    if cfg!(target_os = "linux") {
        assert!(value(&scrape, "plexspaces_process_resident_memory_bytes", &[]).unwrap() > 0.0);
        assert!(value(&scrape, "plexspaces_process_open_fds", &[]).unwrap() > 0.0);
        assert!(value(&scrape, "plexspaces_runtime_tasks", &[]).unwrap() > 0.0);
    }

    // The JSON export says the same.
    let (status, json) = get(&env, addr, "/metrics?format=json").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let samples = doc["metrics"].as_array().unwrap();
    assert!(
        samples
            .iter()
            .any(|s| s["name"] == "plexspaces_messages_total"
                && s["labels"]["kind"] == "Tally"
                && s["value"] == 22.0)
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&render_json(env.metrics())).unwrap()["metrics"]
            .as_array()
            .map(|a| a.len()),
        Some(samples.len())
    );
}

#[tokio::test]
async fn health_and_readiness_report_each_check() {
    let env = env("ready", "n1").await;
    let system = ActorSystem::new(env.clone());
    let endpoint = OperatorEndpoint::serve(&system, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = endpoint.local_addr();
    let journal = JournalBackend::file(&env, JournalConfig::default())
        .await
        .unwrap();
    system.health().watch_journal("journal", journal).unwrap();

    let (status, body) = get(&env, addr, "/health").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"alive\":true"), "{body}");
    let (status, body) = get(&env, addr, "/ready").await;
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["checks"]["journal"]["healthy"], true);
    assert_eq!(ready["checks"]["shutdown"]["healthy"], true);

    // A failing check makes the node unready, and says which.
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = flag.clone();
    system
        .health()
        .register("queue", move || {
            let ok = seen.load(std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                if ok {
                    CheckOutcome::ok("drained")
                } else {
                    CheckOutcome::failing("backlog of 9000")
                }
            })
        })
        .unwrap();
    let (status, body) = get(&env, addr, "/ready").await;
    assert_eq!(status, 503);
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["checks"]["queue"]["detail"], "backlog of 9000");
    assert_eq!(ready["checks"]["journal"]["healthy"], true);
    flag.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get(&env, addr, "/ready").await.0, 200);

    // A check that never answers fails within its deadline, not forever.
    system.health().set_check_timeout(Duration::from_millis(50));
    system
        .health()
        .register("stuck", || Box::pin(futures::future::pending()))
        .unwrap();
    let (status, body) = get(&env, addr, "/ready").await;
    assert_eq!(status, 503);
    assert!(body.contains("no answer within"), "{body}");
    assert!(system.health().unregister("stuck"));

    // Bad requests get typed answers.
    assert_eq!(get(&env, addr, "/nope").await.0, 404);
    let post =
        "POST /metrics HTTP/1.1\r\nHost: n\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    assert_eq!(http(&env, addr, post).await.0, 405);
    let garbage = "\x00\x01 not http at all\r\n\r\n";
    let (mut input, mut output) = env.net().connect(addr).await.unwrap().split();
    output.write_all(garbage.as_bytes()).await.unwrap();
    output.flush().await.unwrap();
    let mut buf = [0u8; 256];
    let n = input.read(&mut buf).await.unwrap();
    assert!(
        n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 400"),
        "garbage is refused, not served"
    );
    // The endpoint still serves afterwards.
    assert_eq!(get(&env, addr, "/health").await.0, 200);

    // A node shutting down is not ready.
    system.shutdown().await;
    let (status, body) = get(&env, addr, "/ready").await;
    assert_eq!(status, 503);
    assert!(body.contains("shutting down"), "{body}");
}

#[tokio::test]
async fn pushes_reach_a_pushgateway() {
    let env = env("push", "n7").await;
    let system = ActorSystem::new(env.clone());
    let mut gateway = env
        .net()
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let gateway_addr = gateway.local_addr();
    // The facet starts the node's pusher when attached (once per URL).
    let config = FacetConfig::new()
        .with(
            "push_url",
            ConfigValue::Str(format!("http://{gateway_addr}/metrics/job/shop")),
        )
        .with(
            "push_interval",
            ConfigValue::Duration(Duration::from_millis(50)),
        );
    let facet = system.facet_types().build("metrics", config).unwrap();
    let options = SpawnOptions {
        facets: vec![facet],
        ..SpawnOptions::default()
    };
    let tally = system
        .spawn_with("tally", Tally::default(), options)
        .unwrap();
    tally.ask(Cmd::Add(1), SECOND).await.unwrap();

    for _ in 0..2 {
        let (connection, _) = gateway.accept().await.unwrap();
        let (mut input, mut output) = connection.split();
        let mut request = Vec::new();
        let mut buf = [0u8; 8192];
        // Read the head, then the body its Content-Length announces.
        let (head, body_len) = loop {
            let n = input.read(&mut buf).await.unwrap();
            assert!(n > 0, "the pusher sent a whole request");
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some((head, _)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.parse::<usize>().unwrap())
                    })
                    .expect("a content length");
                break (head.to_string(), len);
            }
        };
        while request.len() < head.len() + 4 + body_len {
            let n = input.read(&mut buf).await.unwrap();
            assert!(n > 0);
            request.extend_from_slice(&buf[..n]);
        }
        assert!(
            head.starts_with("PUT /metrics/job/shop/instance/n7 HTTP/1.1"),
            "{head}"
        );
        let body = String::from_utf8_lossy(&request[head.len() + 4..]).to_string();
        let scrape = parse(&body);
        assert_eq!(
            value(&scrape, "plexspaces_messages_total", &[("kind", "Tally")]),
            Some(1.0)
        );
        output
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        output.flush().await.unwrap();
    }
    // A gateway that is not there is a typed failure, counted.
    let nowhere = PushConfig::parse("http://127.0.0.1:1/metrics/job/x").unwrap();
    assert!(push_once(&env, &nowhere).await.is_err());
}

#[tokio::test]
async fn per_actor_series_come_and_go_with_their_actors() {
    let env = env("per-actor", "n1").await;
    let system = ActorSystem::new(env.clone());
    let config = FacetConfig::new().with("per_actor", ConfigValue::Bool(true));
    let mut actors = Vec::new();
    for i in 0..3 {
        let facet = system
            .facet_types()
            .build("metrics", config.clone())
            .unwrap();
        let options = SpawnOptions {
            facets: vec![facet],
            ..SpawnOptions::default()
        };
        let actor = system
            .spawn_with(&format!("t{i}"), Tally::default(), options)
            .unwrap();
        actor.ask(Cmd::Add(1), SECOND).await.unwrap();
        actors.push(actor);
    }
    let series = |text: &str| {
        parse(text)
            .samples
            .iter()
            .filter(|s| s.metric == "plexspaces_message_handling_by_actor_seconds_count")
            .map(|s| s.labels.get("actor").unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let mut seen = series(&env.metrics().render_prometheus());
    seen.sort();
    assert_eq!(seen, ["t0@n1", "t1@n1", "t2@n1"]);
    let gone = actors.remove(1);
    gone.stop();
    gone.wait_exit().await;
    let mut seen = series(&env.metrics().render_prometheus());
    seen.sort();
    assert_eq!(seen, ["t0@n1", "t2@n1"], "a stopped actor's series goes");
    // Without `per_actor` there is no label per actor at all.
    let (facet, _) = MetricsFacet::new();
    let options = SpawnOptions {
        facets: vec![Box::new(facet)],
        ..SpawnOptions::default()
    };
    let plain = system
        .spawn_with("plain", Tally::default(), options)
        .unwrap();
    plain.ask(Cmd::Add(1), SECOND).await.unwrap();
    assert!(!series(&env.metrics().render_prometheus()).contains(&"plain@n1".to_string()));
}

/// The facet's default times a sample of handlers (one in 32) and counts
/// every message exactly; `never` times none; each share holds however
/// the messages come (asks one by one, tells in batches).
#[tokio::test]
async fn handler_latency_is_sampled_and_message_counts_are_exact() {
    let env = Env::tokio(NodeName::new("n1").unwrap());
    let system = ActorSystem::new(env.clone());
    let (sampled, sampled_handle) = MetricsFacet::new();
    let (never, never_handle) = MetricsFacet::new();
    let never = never.latency_sampling(Sampling::Never);
    let a = system
        .spawn_with(
            "a",
            Tally::default(),
            SpawnOptions {
                facets: vec![Box::new(sampled)],
                ..SpawnOptions::default()
            },
        )
        .unwrap();
    let b = system
        .spawn_with(
            "b",
            Tally::default(),
            SpawnOptions {
                facets: vec![Box::new(never)],
                ..SpawnOptions::default()
            },
        )
        .unwrap();
    for i in 0..2_000u64 {
        a.tell(Cmd::Add(i)).await.unwrap();
        b.ask(Cmd::Add(i), SECOND).await.unwrap();
    }
    a.ask(Cmd::Add(0), SECOND).await.unwrap();
    let timed = |snapshot: &plexspaces::actor::builtin_facets::MetricsSnapshot| {
        snapshot.latency_buckets.iter().sum::<u64>()
    };
    let a_now = sampled_handle.snapshot();
    assert_eq!(a_now.handled, 2_001, "every message counted");
    // 2001 draws at 1/32: 62.5 expected, a standard deviation of 7.7.
    assert!(
        (25..=110).contains(&timed(&a_now)),
        "{} of 2001 handlers timed at one in 32",
        timed(&a_now)
    );
    let b_now = never_handle.snapshot();
    assert_eq!(b_now.handled, 2_000);
    assert_eq!(timed(&b_now), 0, "never times none");
    let scrape = parse(&env.metrics().render_prometheus());
    assert_eq!(
        histogram_count(
            &scrape,
            "plexspaces_message_handling_seconds",
            &[("kind", "Tally")]
        ),
        timed(&a_now) as f64,
        "the kind's histogram holds the sample"
    );
    assert_eq!(
        value(&scrape, "plexspaces_messages_total", &[("kind", "Tally")]),
        Some(4_001.0),
        "the kind's message count is exact"
    );
}
