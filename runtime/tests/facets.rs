//! Facets on tokio: the chain's order by priority band and what each hook
//! hears; a payload-reading fraud check on plain, durable, virtual and
//! remote actors; answering in the actor's place; a hook awaiting the
//! Clock seam; handlers reaching facets by type; the registry taking user
//! types with validated JSON and TOML configuration; headers and facet
//! management through a remote ref on loopback; supervised children
//! restarted with fresh facets.

mod support;

use plexspaces::actor::builtin_facets::MetricsFacet;
use plexspaces::actor::facet::{
    ConfigValue, Facet, FacetCategory, FacetConfig, FacetConfigError, FacetDescriptor, FacetError,
    FacetOption, FacetSpec, Failure, Headers, Hook, Hooks, Message, MessageMeta, OptionKind,
    Rejection, Verdict,
};
use plexspaces::actor::{
    Actor, ActorError, ActorErrorKind, ActorId, ActorSystem, AskError, Context, SpawnOptions,
};
use plexspaces::durability::{
    DurabilityConfig, Durable, DurableActor, DurableContext, JournalBackend,
};
use plexspaces::seams::Clock;
use plexspaces::supervision::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
use plexspaces::virtual_actor::{VirtualActors, VirtualConfig};
use plexspaces::{Env, NodeName};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

async fn env(test: &str, node: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("plexspaces-facets-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Env::tokio(NodeName::new(node).unwrap())
        .with_data_dir(dir)
        .await
        .unwrap()
}

// ---------------------------------------------------------------- actors

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum BankMsg {
    Transfer { amount: u64 },
    Balance,
    Fail,
}

/// A plain account: the balance is the sum of transfers applied.
#[derive(Default)]
struct Account {
    balance: u64,
    handled: Arc<Mutex<u32>>,
}

impl Actor for Account {
    type Msg = BankMsg;
    type Reply = u64;
    async fn handle(&mut self, _ctx: &mut Context<Self>, msg: BankMsg) -> Result<u64, ActorError> {
        *self.handled.lock().unwrap() += 1;
        match msg {
            BankMsg::Transfer { amount } => self.balance += amount,
            BankMsg::Balance => {}
            BankMsg::Fail => return Err(ActorError::new("told to fail")),
        }
        Ok(self.balance)
    }
}

/// The same account, durable.
#[derive(Default, Serialize, Deserialize)]
struct DurableAccount {
    balance: u64,
}

impl DurableActor for DurableAccount {
    type Msg = BankMsg;
    type Reply = u64;
    async fn handle(
        &mut self,
        ctx: &mut DurableContext<'_>,
        msg: BankMsg,
    ) -> Result<u64, ActorError> {
        if let BankMsg::Transfer { amount } = msg {
            // A quota facet, when attached, caps what one transfer may
            // move (read from the facet: its configuration, not an effect).
            let cap = ctx.facet::<Quota>().map_or(u64::MAX, |q| q.limit);
            self.balance += amount.min(cap);
        }
        Ok(self.balance)
    }

    fn query(&self, _env: &Env, msg: &BankMsg) -> Option<u64> {
        matches!(msg, BankMsg::Balance).then_some(self.balance)
    }
}

// ---------------------------------------------------------------- facets

/// The design's fraud check: refuses transfers above a limit, reading the
/// payload.
struct FraudCheck {
    limit: u64,
}

impl Facet for FraudCheck {
    fn name(&self) -> &str {
        "fraud"
    }
    fn priority(&self) -> i32 {
        400
    }
    fn before<'a>(&'a mut self, msg: &Message<'_>) -> Hook<'a, Verdict> {
        match msg.payload::<BankMsg>() {
            Some(BankMsg::Transfer { amount }) if *amount > self.limit => Hook::ready(
                Verdict::Reject(Rejection::new(format!("{amount} is over {}", self.limit))),
            ),
            _ => Hook::proceed(),
        }
    }
}

fn fraud_descriptor() -> FacetDescriptor {
    FacetDescriptor::new(
        "fraud",
        FacetCategory::Domain,
        "refuses transfers above a limit",
    )
    .option(FacetOption::new("limit", OptionKind::Int, "the largest transfer").required())
}

fn register_fraud(system: &ActorSystem) {
    system
        .facet_types()
        .register(fraud_descriptor(), |mut config| {
            let limit = config.int("limit")?.expect("required by the descriptor");
            let limit = u64::try_from(limit).map_err(|_| FacetConfigError::Invalid {
                key: "limit".into(),
                reason: "must not be negative".into(),
            })?;
            Ok(Box::new(FraudCheck { limit }))
        })
        .unwrap();
}

/// Writes what each hook saw into a shared trail; rejects a transfer of
/// `reject_amount` if set.
struct Trail {
    name: String,
    priority: i32,
    trail: Arc<Mutex<Vec<String>>>,
    reject_amount: Option<u64>,
}

impl Trail {
    fn boxed(name: &str, priority: i32, trail: &Arc<Mutex<Vec<String>>>) -> Box<dyn Facet> {
        Box::new(Trail {
            name: name.into(),
            priority,
            trail: trail.clone(),
            reject_amount: None,
        })
    }
    fn log(&self, what: String) {
        self.trail.lock().unwrap().push(what);
    }
}

impl Facet for Trail {
    fn name(&self) -> &str {
        &self.name
    }
    fn priority(&self) -> i32 {
        self.priority
    }
    fn before<'a>(&'a mut self, msg: &Message<'_>) -> Hook<'a, Verdict> {
        self.log(format!("{} before", self.name));
        match (msg.payload::<BankMsg>(), self.reject_amount) {
            (Some(BankMsg::Transfer { amount }), Some(refused)) if *amount == refused => {
                Hook::ready(Verdict::Reject(Rejection::new("unlucky number")))
            }
            _ => Hook::proceed(),
        }
    }
    fn after<'a>(
        &'a mut self,
        _meta: &MessageMeta<'_>,
        reply: &(dyn Any + Send),
        _elapsed: Option<Duration>,
    ) -> Hook<'a> {
        let reply = reply.downcast_ref::<u64>().copied();
        self.log(format!("{} after {reply:?}", self.name));
        Hook::done()
    }
    fn on_error<'a>(
        &'a mut self,
        _meta: &MessageMeta<'_>,
        failure: &Failure<'_>,
        _elapsed: Option<Duration>,
    ) -> Hook<'a> {
        let what = match failure {
            Failure::Handler(e) => format!("handler: {}", e.message()),
            Failure::Rejected { by, .. } => format!("rejected by {by}"),
            Failure::Panicked(_) => "panicked".to_string(),
            _ => "other".to_string(),
        };
        self.log(format!("{} error {what}", self.name));
        Hook::done()
    }
}

fn take(trail: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    std::mem::take(&mut *trail.lock().unwrap())
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn the_chain_runs_by_priority_band_and_hears_every_outcome() {
    let system = ActorSystem::new(env("chain", "n1").await);
    let trail = Arc::new(Mutex::new(Vec::new()));
    // Attached out of order: the chain orders them by band, highest first.
    let mut domain = Trail::boxed("domain", 300, &trail);
    (&mut *domain as &mut dyn Any)
        .downcast_mut::<Trail>()
        .unwrap()
        .reject_amount = Some(13);
    let facets = vec![
        Trail::boxed("persistence", 50, &trail),
        Trail::boxed("metrics", 850, &trail),
        domain,
        Trail::boxed("security", 1500, &trail),
        Trail::boxed("logging", 950, &trail),
    ];
    let handled = Arc::new(Mutex::new(0));
    let account = Account {
        balance: 0,
        handled: handled.clone(),
    };
    let options = SpawnOptions {
        facets,
        ..SpawnOptions::default()
    };
    let actor = system.spawn_with("acct", account, options).unwrap();
    let order = ["security", "logging", "metrics", "domain", "persistence"];
    let listed: Vec<String> = actor
        .list_facets()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(listed, order);

    // Replied: every before, then every after with the reply, in order.
    let reply = actor.ask(BankMsg::Transfer { amount: 5 }, SECOND).await;
    assert_eq!(reply.unwrap(), 5);
    let expected: Vec<String> = order
        .iter()
        .map(|n| format!("{n} before"))
        .chain(order.iter().map(|n| format!("{n} after Some(5)")))
        .collect();
    assert_eq!(take(&trail), expected);

    // The handler's error: every on_error, none of the afters.
    let failed = actor.ask(BankMsg::Fail, SECOND).await.unwrap_err();
    assert!(matches!(&failed, AskError::Failed(e) if e.kind() == ActorErrorKind::Failed));
    let expected: Vec<String> = order
        .iter()
        .map(|n| format!("{n} before"))
        .chain(
            order
                .iter()
                .map(|n| format!("{n} error handler: told to fail")),
        )
        .collect();
    assert_eq!(take(&trail), expected);

    // A rejection: the facets after the rejecting one never see the
    // message, the handler does not run, every other facet hears why.
    let before = *handled.lock().unwrap();
    let refused = actor
        .ask(BankMsg::Transfer { amount: 13 }, SECOND)
        .await
        .unwrap_err();
    let AskError::Failed(error) = refused else {
        panic!("expected a rejection, got {refused:?}")
    };
    assert!(error.is_rejected(), "{error}");
    assert_eq!(error.message(), "rejected by domain: unlucky number");
    assert_eq!(*handled.lock().unwrap(), before, "the handler did not run");
    assert_eq!(
        take(&trail),
        [
            "security before",
            "logging before",
            "metrics before",
            "domain before",
            "security error rejected by domain",
            "logging error rejected by domain",
            "metrics error rejected by domain",
            "persistence error rejected by domain",
        ]
    );
    // A rejected tell is dropped the same way; nothing was applied.
    actor.tell(BankMsg::Transfer { amount: 13 }).await.unwrap();
    assert_eq!(actor.ask(BankMsg::Balance, SECOND).await.unwrap(), 5);
}

#[tokio::test]
async fn a_fraud_check_reads_the_payload_of_plain_durable_and_virtual_actors() {
    let system = ActorSystem::new(env("fraud", "n1").await);
    register_fraud(&system);
    let config = FacetConfig::from_json(r#"{"limit": 100}"#).unwrap();

    // A plain actor.
    let plain = system.spawn("plain", Account::default()).unwrap();
    plain
        .attach_facet_named("fraud", config.clone())
        .await
        .unwrap();
    let refused = plain.ask(BankMsg::Transfer { amount: 500 }, SECOND).await;
    assert!(matches!(refused, Err(AskError::Failed(e)) if e.is_rejected()));
    assert_eq!(
        plain.ask(BankMsg::Transfer { amount: 50 }, SECOND).await,
        Ok(50)
    );

    // A durable actor: the facet reads the message inside the request,
    // and a refused command is not journaled (a restart replays 50 only).
    let journal = JournalBackend::memory();
    let spawn_durable = |system: &ActorSystem| {
        let durable = Durable::new(
            DurableAccount::default(),
            journal.clone(),
            DurabilityConfig::default(),
        );
        let options = SpawnOptions {
            facets: vec![Box::new(FraudCheck { limit: 100 })],
            ..SpawnOptions::default()
        };
        system.spawn_with("durable", durable, options).unwrap()
    };
    let durable = spawn_durable(&system);
    let refused = durable
        .call("k1", BankMsg::Transfer { amount: 500 }, SECOND)
        .await;
    assert!(matches!(refused, Err(AskError::Failed(e)) if e.is_rejected()));
    assert_eq!(
        durable
            .call("k2", BankMsg::Transfer { amount: 50 }, SECOND)
            .await,
        Ok(50)
    );
    durable.stop();
    durable.wait_exit().await;
    let durable = spawn_durable(&system);
    assert_eq!(durable.query(BankMsg::Balance, SECOND).await, Ok(50));
    // The refused key was never journaled: sent again under a lower
    // amount, it is applied (not answered from the dedupe table).
    assert_eq!(
        durable
            .call("k1", BankMsg::Transfer { amount: 20 }, SECOND)
            .await,
        Ok(70)
    );

    // A virtual actor kind: declared once, on every activation.
    let config = VirtualConfig::new("acct", JournalBackend::memory())
        .with_facet(FacetSpec::named("fraud", config));
    let accounts = VirtualActors::register(&system, config, |_| DurableAccount::default()).unwrap();
    for id in ["alice", "bob"] {
        let account = accounts.get(id).unwrap();
        let refused = account
            .call("big", BankMsg::Transfer { amount: 101 }, SECOND)
            .await;
        assert!(
            matches!(refused, Err(AskError::Failed(e)) if e.is_rejected()),
            "{id}"
        );
        assert_eq!(
            account
                .call("small", BankMsg::Transfer { amount: 100 }, SECOND)
                .await,
            Ok(100)
        );
    }
    // A kind whose facet cannot be built is refused at registration.
    let bad = VirtualConfig::new("acct2", JournalBackend::memory())
        .with_facet(FacetSpec::named("fraud", FacetConfig::new()));
    assert!(VirtualActors::register(&system, bad, |_| DurableAccount::default()).is_err());
}

/// Answers `Balance` from its own memory: the handler never runs for it.
struct Cached {
    answer: Box<dyn Fn() -> Box<dyn Any + Send> + Send>,
}

impl Facet for Cached {
    fn name(&self) -> &str {
        "cache"
    }
    fn priority(&self) -> i32 {
        200
    }
    fn before<'a>(&'a mut self, msg: &Message<'_>) -> Hook<'a, Verdict> {
        match msg.payload::<BankMsg>() {
            Some(BankMsg::Balance) => Hook::ready(Verdict::Answer((self.answer)())),
            _ => Hook::proceed(),
        }
    }
}

#[tokio::test]
async fn a_facet_answers_in_the_actors_place_with_the_reply_type_only() {
    let system = ActorSystem::new(env("answer", "n1").await);
    let trail = Arc::new(Mutex::new(Vec::new()));
    let handled = Arc::new(Mutex::new(0));
    let account = Account {
        balance: 0,
        handled: handled.clone(),
    };
    let options = SpawnOptions {
        facets: vec![
            Box::new(Cached {
                answer: Box::new(|| Box::new(777_u64)),
            }),
            Trail::boxed("audit", 900, &trail),
        ],
        ..SpawnOptions::default()
    };
    let actor = system.spawn_with("acct", account, options).unwrap();
    assert_eq!(actor.ask(BankMsg::Balance, SECOND).await, Ok(777));
    assert_eq!(*handled.lock().unwrap(), 0, "the handler did not run");
    assert_eq!(
        take(&trail),
        ["audit before", "audit after Some(777)"],
        "after hooks see the facet's answer"
    );
    assert_eq!(
        actor.ask(BankMsg::Transfer { amount: 3 }, SECOND).await,
        Ok(3)
    );
    // An answer of the wrong type is a typed error, not a panic.
    actor.detach_facet("cache").await.unwrap();
    actor
        .attach_facet(Box::new(Cached {
            answer: Box::new(|| Box::new("seven hundred")),
        }))
        .await
        .unwrap();
    let wrong = actor.ask(BankMsg::Balance, SECOND).await.unwrap_err();
    assert!(
        matches!(&wrong, AskError::Failed(e) if e.message().contains("not a u64")),
        "{wrong:?}"
    );
    assert_eq!(
        actor.ask(BankMsg::Transfer { amount: 1 }, SECOND).await,
        Ok(4)
    );
}

/// Waits on the node's clock before every message (a slow remote check).
struct Throttle {
    pause: Duration,
    waited: Arc<Mutex<Vec<Duration>>>,
}

impl Facet for Throttle {
    fn name(&self) -> &str {
        "throttle"
    }
    fn priority(&self) -> i32 {
        1100
    }
    fn before<'a>(&'a mut self, msg: &Message<'_>) -> Hook<'a, Verdict> {
        let env = msg.meta.env.clone();
        Hook::wait(async move {
            let start = env.now();
            env.sleep(self.pause).await;
            self.waited.lock().unwrap().push(env.now() - start);
            Verdict::Continue
        })
    }
}

#[tokio::test(start_paused = true)]
async fn an_async_facet_awaits_the_clock_seam_and_keeps_message_order() {
    let system = ActorSystem::new(env("async", "n1").await);
    let waited = Arc::new(Mutex::new(Vec::new()));
    let options = SpawnOptions {
        facets: vec![Box::new(Throttle {
            pause: Duration::from_millis(250),
            waited: waited.clone(),
        })],
        ..SpawnOptions::default()
    };
    let actor = system
        .spawn_with("acct", Account::default(), options)
        .unwrap();
    let start = system.env().now();
    for amount in 1..=3 {
        actor.tell(BankMsg::Transfer { amount }).await.unwrap();
    }
    assert_eq!(actor.ask(BankMsg::Balance, SECOND * 5).await, Ok(6));
    assert!(system.env().now() - start >= Duration::from_millis(1000));
    assert_eq!(*waited.lock().unwrap(), vec![Duration::from_millis(250); 4]);
}

/// A capability the handler calls: a per-actor quota with a limit.
struct Quota {
    limit: u64,
    used: u64,
}

impl Facet for Quota {
    fn name(&self) -> &str {
        "quota"
    }
    fn priority(&self) -> i32 {
        150
    }
}

/// Spends from its quota facet on every transfer.
struct Spender;

impl Actor for Spender {
    type Msg = BankMsg;
    type Reply = u64;
    async fn handle(&mut self, ctx: &mut Context<Self>, msg: BankMsg) -> Result<u64, ActorError> {
        let Some(quota) = ctx.facet_mut::<Quota>() else {
            return Err(ActorError::new("no quota attached"));
        };
        if let BankMsg::Transfer { amount } = msg {
            if quota.used + amount > quota.limit {
                return Err(ActorError::new("quota exhausted"));
            }
            quota.used += amount;
        }
        Ok(ctx.facet::<Quota>().map_or(0, |q| q.limit - q.used))
    }
}

fn register_quota(system: &ActorSystem) {
    let descriptor = FacetDescriptor::new("quota", FacetCategory::Domain, "a spending quota")
        .option(FacetOption::new("limit", OptionKind::Int, "how much").required())
        .option(
            FacetOption::new("window", OptionKind::Duration, "when it resets")
                .default_value(ConfigValue::Duration(SECOND)),
        )
        .option(FacetOption::new("label", OptionKind::Str, "shown in logs"));
    system
        .facet_types()
        .register(descriptor, |mut config| {
            let limit = config.int("limit")?.unwrap_or(0).max(0) as u64;
            let window = config.duration("window")?;
            assert!(window.is_some(), "defaults are filled in");
            config.string("label")?;
            config.finish("quota")?;
            Ok(Box::new(Quota { limit, used: 0 }))
        })
        .unwrap();
}

#[tokio::test]
async fn handlers_reach_their_facets_by_type_and_named_facets_keep_their_handles() {
    let system = ActorSystem::new(env("serve", "n1").await);
    register_quota(&system);
    let spender = system.spawn("spender", Spender).unwrap();
    let none = spender.ask(BankMsg::Balance, SECOND).await.unwrap_err();
    assert!(matches!(&none, AskError::Failed(e) if e.message() == "no quota attached"));
    spender
        .attach_facet_named("quota", FacetConfig::from_toml("limit = 10").unwrap())
        .await
        .unwrap();
    spender
        .attach_facet_named("metrics", FacetConfig::new())
        .await
        .unwrap();
    assert_eq!(
        spender.ask(BankMsg::Transfer { amount: 4 }, SECOND).await,
        Ok(6)
    );
    assert_eq!(
        spender.ask(BankMsg::Transfer { amount: 4 }, SECOND).await,
        Ok(2)
    );
    let over = spender.ask(BankMsg::Transfer { amount: 4 }, SECOND).await;
    assert!(matches!(over, Err(AskError::Failed(e)) if e.message() == "quota exhausted"));
    // The metrics facet attached by name is reachable as its type.
    let handle = spender
        .with_facet(|m: &mut MetricsFacet| m.handle())
        .await
        .unwrap()
        .expect("attached");
    let counts = handle.snapshot();
    assert_eq!(
        (counts.handled, counts.failed),
        (2, 1),
        "counted since it was attached"
    );
    assert_eq!(
        spender.with_facet(|q: &mut Quota| q.used).await,
        Ok(Some(8))
    );
    assert_eq!(spender.with_facet(|_: &mut FraudCheck| ()).await, Ok(None));

    // A durable handler reads its facet through its context.
    let durable = Durable::new(
        DurableAccount::default(),
        JournalBackend::memory(),
        DurabilityConfig::default(),
    );
    let options = SpawnOptions {
        facets: vec![
            system
                .facet_types()
                .build_json("quota", r#"{"limit": 7}"#)
                .unwrap(),
        ],
        ..SpawnOptions::default()
    };
    let durable = system.spawn_with("durable", durable, options).unwrap();
    assert_eq!(
        durable
            .call("k", BankMsg::Transfer { amount: 100 }, SECOND)
            .await,
        Ok(7),
        "capped by the quota's limit"
    );
}

#[test]
fn the_registry_takes_user_types_and_names_the_bad_key() {
    let registry = plexspaces::actor::facet::FacetRegistry::with_builtins();
    let descriptor = FacetDescriptor::new("quota", FacetCategory::Domain, "a spending quota")
        .option(FacetOption::new("limit", OptionKind::Int, "how much").required())
        .option(
            FacetOption::new("window", OptionKind::Duration, "when it resets")
                .default_value(ConfigValue::Duration(SECOND)),
        );
    let seen = Arc::new(Mutex::new(None));
    let seen_by_builder = seen.clone();
    registry
        .register(descriptor.clone(), move |mut config| {
            let window = config.duration("window")?;
            *seen_by_builder.lock().unwrap() = Some((config.int("limit")?, window));
            Ok(Box::new(Quota { limit: 1, used: 0 }))
        })
        .unwrap();
    assert_eq!(
        registry.names(),
        ["http_client", "logging", "metrics", "quota", "tracing"]
    );
    assert_eq!(registry.descriptor("quota"), Some(descriptor.clone()));
    let categories: Vec<FacetCategory> =
        registry.descriptors().iter().map(|d| d.category).collect();
    assert_eq!(
        categories,
        [
            FacetCategory::Domain,
            FacetCategory::Observability,
            FacetCategory::Metrics,
            FacetCategory::Domain,
            FacetCategory::Observability
        ]
    );
    assert_eq!(
        registry.register(descriptor, |_| Ok(Box::new(Quota { limit: 1, used: 0 }))),
        Err(FacetConfigError::AlreadyRegistered("quota".into()))
    );

    // Defaults filled in; a duration written as text in JSON and TOML.
    registry.build_json("quota", r#"{"limit": 3}"#).unwrap();
    assert_eq!(*seen.lock().unwrap(), Some((Some(3), Some(SECOND))));
    registry
        .build_toml("quota", "limit = 4\nwindow = \"250ms\"")
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        Some((Some(4), Some(Duration::from_millis(250))))
    );

    let err = |result: Result<Box<dyn Facet>, FacetConfigError>| result.err().unwrap();
    assert_eq!(
        err(registry.build_json("quota", "{}")),
        FacetConfigError::MissingKey {
            facet: "quota".into(),
            key: "limit".into()
        }
    );
    assert_eq!(
        err(registry.build_json("quota", r#"{"limit": "many"}"#)),
        FacetConfigError::WrongType {
            key: "limit".into(),
            expected: "an integer".into()
        }
    );
    assert_eq!(
        err(registry.build_json("quota", r#"{"limit": 1, "windw": "1s"}"#)),
        FacetConfigError::UnknownKey {
            facet: "quota".into(),
            key: "windw".into()
        }
    );
    assert!(matches!(
        err(registry.build_toml("quota", "limit = 1\nwindow = \"soon\"")),
        FacetConfigError::WrongType { key, .. } if key == "window"
    ));
    assert!(matches!(
        err(registry.build_json("quota", "[1, 2]")),
        FacetConfigError::Parse { .. }
    ));
    assert!(matches!(
        err(registry.build_toml("quota", "limit = ")),
        FacetConfigError::Parse { .. }
    ));
    assert!(matches!(
        err(registry.build_json("quota", r#"{"limit": 1.5}"#)),
        FacetConfigError::WrongType { .. }
    ));
    assert_eq!(
        err(registry.build("nope", FacetConfig::new())),
        FacetConfigError::UnknownFacet("nope".into())
    );
    // Built-ins are registered the same way, with their priority band.
    assert!(matches!(
        err(registry.build_json("metrics", r#"{"priority": 5}"#)),
        FacetConfigError::Invalid { .. }
    ));
    assert_eq!(
        registry
            .build_json("metrics", r#"{"priority": 810}"#)
            .unwrap()
            .priority(),
        810
    );
}

/// Records the headers and source node of each message it sees.
/// What the witness saw: headers, source node, whether a wire form came.
type Sighting = (Headers, Option<String>, bool);

struct Witness(Arc<Mutex<Vec<Sighting>>>);

impl Facet for Witness {
    fn name(&self) -> &str {
        "witness"
    }
    fn priority(&self) -> i32 {
        990
    }
    fn before<'a>(&'a mut self, msg: &Message<'_>) -> Hook<'a, Verdict> {
        self.0.lock().unwrap().push((
            msg.meta.headers.clone(),
            msg.meta.source_node.map(|n| n.to_string()),
            msg.wire().is_some(),
        ));
        Hook::proceed()
    }
}

#[tokio::test]
async fn remote_refs_carry_headers_and_manage_facets_by_type_name() {
    let journal_env = env("remote-j", "j1").await;
    let journal = support::journal_server(journal_env).await;
    let (sys_a, dist_a, _) =
        support::node(env("remote-a", "a1").await, &[], journal.local_addr()).await;
    let (sys_b, dist_b, _) = support::node(
        env("remote-b", "b1").await,
        &[dist_a.local_addr()],
        journal.local_addr(),
    )
    .await;
    support::all_up(&dist_a, 2).await;
    support::all_up(&dist_b, 2).await;
    register_fraud(&sys_a);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_by_node_a = seen.clone();
    sys_a
        .facet_types()
        .register(
            FacetDescriptor::new("witness", FacetCategory::Observability, "records headers"),
            move |_| Ok(Box::new(Witness(seen_by_node_a.clone()))),
        )
        .unwrap();
    let local = sys_a.spawn("acct", Account::default()).unwrap();
    dist_a.export(&local).unwrap();
    let id = ActorId::new("acct", NodeName::new("a1").unwrap()).unwrap();
    let remote = sys_b.resolve::<Account>(&id).unwrap();

    // Attach through the remote ref, by type name: built on node a.
    remote
        .attach_facet_named("fraud", FacetConfig::from_json(r#"{"limit": 10}"#).unwrap())
        .await
        .unwrap();
    remote
        .attach_facet_named("witness", FacetConfig::new())
        .await
        .unwrap();
    let listed: Vec<(String, i32)> = remote
        .list_facets()
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.name, f.priority))
        .collect();
    assert_eq!(listed, [("witness".into(), 990), ("fraud".into(), 400)]);
    assert_eq!(
        local.list_facets().await.unwrap().len(),
        2,
        "the same chain"
    );
    // Refusals travel typed.
    assert!(matches!(
        remote.attach_facet_named("fraud", FacetConfig::new()).await,
        Err(FacetError::Config(FacetConfigError::MissingKey { .. }))
    ));
    assert!(matches!(
        remote
            .attach_facet_named("witness", FacetConfig::new())
            .await,
        Err(FacetError::NameTaken { .. })
    ));
    assert!(matches!(
        remote.attach_facet_named("nope", FacetConfig::new()).await,
        Err(FacetError::Config(FacetConfigError::UnknownFacet(_)))
    ));
    assert_eq!(
        remote.attach_facet(Box::new(FraudCheck { limit: 1 })).await,
        Err(FacetError::Remote(id.clone()))
    );
    assert_eq!(
        remote.with_facet(|_: &mut FraudCheck| ()).await,
        Err(FacetError::Remote(id.clone()))
    );

    // Headers travel; the receiving chain knows the peer the message came
    // from; the fraud check runs on the remote call; the rejection keeps
    // its kind over the wire.
    let headers = Headers {
        sender: Some("teller@b1".into()),
        tenant: Some("acme".into()),
        principal: Some("user:ada".into()),
        trace: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
    };
    let refused = remote
        .ask_with(
            BankMsg::Transfer { amount: 11 },
            headers.clone(),
            SECOND * 5,
        )
        .await;
    assert!(
        matches!(&refused, Err(AskError::Failed(e)) if e.is_rejected() && e.message().contains("11 is over 10")),
        "{refused:?}"
    );
    remote
        .tell_with(BankMsg::Transfer { amount: 3 }, headers.clone())
        .await
        .unwrap();
    assert_eq!(remote.ask(BankMsg::Balance, SECOND * 5).await, Ok(3));
    local.ask(BankMsg::Balance, SECOND).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let b1 = Some("b1".to_string());
    assert_eq!(
        seen,
        [
            (headers.clone(), b1.clone(), true),
            (headers, b1.clone(), true),
            (Headers::default(), b1, true),
            (Headers::default(), None, false),
        ]
    );

    // Detach through the remote ref: the limit no longer applies.
    assert_eq!(remote.detach_facet("fraud").await, Ok(true));
    assert_eq!(remote.detach_facet("fraud").await, Ok(false));
    assert_eq!(
        remote
            .ask(BankMsg::Transfer { amount: 50 }, SECOND * 5)
            .await,
        Ok(53)
    );
    local.stop();
    local.wait_exit().await;
    assert!(matches!(
        remote.list_facets().await,
        Err(FacetError::Stopped(_)) | Err(FacetError::Unreachable { .. })
    ));
}

/// Counts its attachments: a restarted child gets a fresh facet.
struct Counted(Arc<Mutex<u32>>);

impl Facet for Counted {
    fn name(&self) -> &str {
        "counted"
    }
    fn priority(&self) -> i32 {
        100
    }
    fn on_attach(&mut self, _actor: &ActorId) {
        *self.0.lock().unwrap() += 1;
    }
}

#[tokio::test]
async fn supervised_children_are_restarted_with_fresh_facets() {
    let system = ActorSystem::new(env("supervised", "n1").await);
    register_fraud(&system);
    let attached = Arc::new(Mutex::new(0));
    let counter = attached.clone();
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(
        ChildSpec::actor("acct", Account::default)
            .with_facet(FacetSpec::named(
                "fraud",
                FacetConfig::new().with("limit", ConfigValue::Int(10)),
            ))
            .with_facet(FacetSpec::factory(move |_| {
                Box::new(Counted(counter.clone()))
            })),
    );
    let sup = system.spawn("sup", Supervisor::new(spec)).unwrap();
    let child = sup.child::<Account>("acct", SECOND).await.unwrap();
    let refused = child.ask(BankMsg::Transfer { amount: 11 }, SECOND).await;
    assert!(matches!(refused, Err(AskError::Failed(e)) if e.is_rejected()));
    child.stop_with(plexspaces::actor::ExitReason::Error("crash".into()));
    child.wait_exit().await;
    let again = sup.child::<Account>("acct", SECOND).await.unwrap();
    assert!(!again.ptr_eq(&child));
    let refused = again.ask(BankMsg::Transfer { amount: 11 }, SECOND).await;
    assert!(matches!(refused, Err(AskError::Failed(e)) if e.is_rejected()));
    assert_eq!(*attached.lock().unwrap(), 2);
    // A child whose facet cannot be built does not start.
    let bad = SupervisorSpec::new(Strategy::OneForOne).child(
        ChildSpec::actor("acct2", Account::default)
            .with_facet(FacetSpec::named("fraud", FacetConfig::new())),
    );
    let sup2 = system.spawn("sup2", Supervisor::new(bad)).unwrap();
    assert!(sup2.wait_exit().await.is_failure());
}

/// Would refuse every message, but names only `after` and `on_error` as
/// its hooks: the chain never calls its `before`, and it hears every
/// outcome; timed only when it asks.
struct AfterOnly {
    seen: Arc<Mutex<Vec<String>>>,
}

impl Facet for AfterOnly {
    fn name(&self) -> &str {
        "after-only"
    }
    fn priority(&self) -> i32 {
        200
    }
    fn hooks(&self) -> Hooks {
        Hooks::AFTER.with(Hooks::ON_ERROR)
    }
    fn before<'a>(&'a mut self, _msg: &Message<'_>) -> Hook<'a, Verdict> {
        Hook::ready(Verdict::Reject(Rejection::new(
            "before is not among my hooks",
        )))
    }
    fn after<'a>(
        &'a mut self,
        _meta: &MessageMeta<'_>,
        reply: &(dyn Any + Send),
        elapsed: Option<Duration>,
    ) -> Hook<'a> {
        let balance = reply.downcast_ref::<u64>().copied().unwrap_or(u64::MAX);
        self.seen
            .lock()
            .unwrap()
            .push(format!("ok {balance} timed {}", elapsed.is_some()));
        Hook::done()
    }
    fn on_error<'a>(
        &'a mut self,
        _meta: &MessageMeta<'_>,
        _failure: &Failure<'_>,
        elapsed: Option<Duration>,
    ) -> Hook<'a> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("error timed {}", elapsed.is_some()));
        Hook::done()
    }
}

/// A facet that asks for a timing on every message, and nothing else.
struct Timer;

impl Facet for Timer {
    fn name(&self) -> &str {
        "timer"
    }
    fn priority(&self) -> i32 {
        100
    }
    fn hooks(&self) -> Hooks {
        Hooks::TIMES
    }
}

#[tokio::test]
async fn the_chain_calls_only_the_hooks_a_facet_names_and_switches_loops_as_facets_come_and_go() {
    let env = env("hooks", "n1").await;
    let system = ActorSystem::new(env.clone());
    let account = system.spawn("acct", Account::default()).unwrap();
    let transfer = |amount| BankMsg::Transfer { amount };
    assert_eq!(account.ask(transfer(1), SECOND).await.unwrap(), 1);
    // Attached to a running actor: its loop takes the facets on.
    let seen = Arc::new(Mutex::new(Vec::new()));
    account
        .attach_facet(Box::new(AfterOnly { seen: seen.clone() }))
        .await
        .unwrap();
    assert_eq!(account.ask(transfer(2), SECOND).await.unwrap(), 3);
    account.ask(BankMsg::Fail, SECOND).await.unwrap_err();
    account.attach_facet(Box::new(Timer)).await.unwrap();
    assert_eq!(account.ask(transfer(4), SECOND).await.unwrap(), 7);
    assert_eq!(
        *seen.lock().unwrap(),
        ["ok 3 timed false", "error timed false", "ok 7 timed true"],
        "no before (nothing refused); timed once a facet asked"
    );
    // The last facet gone, the actor goes on without any.
    assert!(account.detach_facet("after-only").await.unwrap());
    assert!(account.detach_facet("timer").await.unwrap());
    assert!(!account.detach_facet("timer").await.unwrap());
    assert_eq!(account.ask(transfer(8), SECOND).await.unwrap(), 15);
    for _ in 0..100 {
        account.tell(transfer(1)).await.unwrap();
    }
    assert_eq!(account.ask(BankMsg::Balance, SECOND).await.unwrap(), 115);
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "a detached facet hears nothing"
    );
    // And takes facets on again.
    account
        .attach_facet(Box::new(AfterOnly { seen: seen.clone() }))
        .await
        .unwrap();
    assert_eq!(account.ask(BankMsg::Balance, SECOND).await.unwrap(), 115);
    assert_eq!(seen.lock().unwrap().last().unwrap(), "ok 115 timed false");
}
