//! A secure cluster in the simulator: three nodes whose links are TLS 1.3
//! with certificates from one CA (randomness from each node's seeded
//! `Rng`, so a seed replays exactly), each exporting a vault guarded by
//! the authentication and authorization facets. Every node's client asks
//! the other nodes' vaults as four callers: a teller of the vault's tenant
//! (allowed), a caller without credentials, one with a token signed by
//! the wrong key, and a teller of another tenant (all refused), while the
//! nemesis crashes, partitions and pauses nodes, resets connections and
//! skews clocks.
//!
//! Oracles:
//! - no message from a caller that should be refused is ever handled
//!   (each message says who sent it; the vault records any it handles);
//! - every refusal that arrives is typed: `Unauthenticated` for the
//!   missing and forged credentials, `Forbidden` for the other tenant;
//!   never an `Ok`;
//! - the workload completes: allowed asks are answered during the storm
//!   and, after healing, every node's teller reaches every other vault;
//! - the run is deterministic (TLS handshakes included).
#![cfg(madsim)]

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use plexspaces::actor::facet::Headers;
use plexspaces::actor::{
    Actor, ActorError, ActorErrorKind, ActorId, ActorSystem, AskError, Context, SpawnOptions,
};
use plexspaces::distribution::{Distribution, MemberStatus};
use plexspaces::net::tls::test_pki::{TestCa, Validity};
use plexspaces::seams::{Clock, Rng};
use plexspaces::security::{
    Authenticator, Authorizer, JwtKey, JwtVerifier, NodeTls, Rbac, TlsSource,
};
use plexspaces::{Env, NodeName};
use plexspaces_sim::{Cluster, ClusterConfig, ReportOnPanic};
use plexspaces_tests_sim::cluster_setup::{fast_distribution, network_nemesis, node_addr};
use plexspaces_tests_sim::liveness::finish_within;
use plexspaces_tests_sim::{SeedPlan, assert_deterministic, run_seeds};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PORT: u16 = 7100;
const NODES: usize = 3;
const KEY: &[u8] = b"the-simulated-issuers-hs256-key-32+";
const WRONG_KEY: &[u8] = b"a-forgers-hs256-key-of-32-bytes-too";

/// Who sends a message: the oracle's ground truth, in the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Caller {
    Teller,
    Anonymous,
    Forger,
    OtherTenant,
}

const CALLERS: [Caller; 4] = [
    Caller::Teller,
    Caller::Anonymous,
    Caller::Forger,
    Caller::OtherTenant,
];

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Deposit {
    caller: Caller,
    amount: u64,
}

struct Vault {
    balance: u64,
    breaches: Arc<Mutex<Vec<String>>>,
}

impl Actor for Vault {
    type Msg = Deposit;
    type Reply = u64;
    async fn handle(&mut self, ctx: &mut Context<Self>, msg: Deposit) -> Result<u64, ActorError> {
        let principal = ctx.principal().map(ToString::to_string);
        if msg.caller != Caller::Teller || principal.as_deref() != Some("alice@acme") {
            self.breaches.lock().unwrap().push(format!(
                "{} handled a deposit from {:?} acting for {principal:?}",
                ctx.id(),
                msg.caller
            ));
        }
        self.balance += msg.amount;
        Ok(self.balance)
    }
}

fn token(key: &[u8], tenant: &str) -> String {
    let claims = serde_json::json!({
        "sub": "alice", "tenant": tenant, "roles": ["teller"], "exp": 4_000_000_000u64
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key),
    )
    .unwrap()
}

fn headers(caller: Caller) -> Headers {
    match caller {
        Caller::Teller => Headers::bearer(&token(KEY, "acme")),
        Caller::Anonymous => Headers::default(),
        Caller::Forger => Headers::bearer(&token(WRONG_KEY, "acme")),
        Caller::OtherTenant => Headers::bearer(&token(KEY, "globex")),
    }
}

#[derive(Default)]
struct Shared {
    breaches: Arc<Mutex<Vec<String>>>,
    /// Answers that should not have been answers, or refusals of the wrong type.
    wrong: Vec<String>,
    answered: u64,
    refused: BTreeMap<&'static str, u64>,
    failed: u64,
    dists: BTreeMap<usize, Distribution>,
    systems: BTreeMap<usize, ActorSystem>,
}

fn vault_id(node: usize) -> ActorId {
    ActorId::new("vault", NodeName::new(&format!("n{node}")).unwrap()).unwrap()
}

async fn run_node(
    env: Env,
    index: usize,
    addrs: Vec<std::net::SocketAddr>,
    shared: Arc<Mutex<Shared>>,
) {
    let ca = TestCa::new("sim-ca", 7);
    let name = format!("n{index}");
    let tls = NodeTls::load(
        &env,
        TlsSource::Material(ca.material(&name, Validity::always(), &[])),
    )
    .await
    .expect("the node's TLS material loads");
    let system = ActorSystem::new(env.clone());
    let config = fast_distribution(&addrs, index, NODES).with_tls(tls);
    let dist = system
        .start_distribution(config)
        .await
        .expect("distribution starts");
    let auth =
        Authenticator::new().with_jwt(JwtVerifier::new().key(JwtKey::hs256(KEY).unwrap()).unwrap());
    let authz =
        Authorizer::new(Rbac::from_toml("[roles.teller]\npermissions = [\"Vault:*\"]").unwrap());
    let breaches = shared.lock().unwrap().breaches.clone();
    let options = SpawnOptions {
        facets: vec![
            Box::new(auth.facet(Some("acme"))),
            Box::new(authz.facet(Some("acme"))),
        ],
        ..SpawnOptions::default()
    };
    let vault = system
        .spawn_with(
            "vault",
            Vault {
                balance: 0,
                breaches,
            },
            options,
        )
        .unwrap();
    dist.export(&vault).unwrap();
    {
        let mut shared = shared.lock().unwrap();
        shared.dists.insert(index, dist.clone());
        shared.systems.insert(index, system.clone());
    }
    loop {
        env.sleep(Duration::from_millis(env.gen_range(5..40))).await;
        let target = (index + 1 + env.gen_range(0..(NODES as u64 - 1)) as usize) % NODES;
        let caller = CALLERS[env.gen_range(0..4) as usize];
        let Ok(remote) = system.resolve::<Vault>(&vault_id(target)) else {
            continue;
        };
        let msg = Deposit { caller, amount: 1 };
        let outcome = remote
            .ask_with(msg, headers(caller), Duration::from_millis(400))
            .await;
        let mut shared = shared.lock().unwrap();
        let kind = match &outcome {
            Err(AskError::Failed(e)) => Some(e.kind()),
            _ => None,
        };
        match (caller, &outcome, kind) {
            (Caller::Teller, Ok(_), _) => shared.answered += 1,
            (Caller::Anonymous | Caller::Forger, _, Some(ActorErrorKind::Unauthenticated)) => {
                *shared.refused.entry("unauthenticated").or_default() += 1;
            }
            (Caller::OtherTenant, _, Some(ActorErrorKind::Forbidden)) => {
                *shared.refused.entry("forbidden").or_default() += 1;
            }
            (_, Ok(balance), _) => shared.wrong.push(format!(
                "n{index}: {caller:?} was answered {balance} by n{target}"
            )),
            (_, Err(e), Some(_)) => shared
                .wrong
                .push(format!("n{index}: {caller:?} got the wrong refusal: {e}")),
            // Lost connections, timeouts, nodes down: the nemesis's doing.
            (_, Err(_), None) => shared.failed += 1,
        }
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    answered: u64,
    unauthenticated: u64,
    forbidden: u64,
    failed: u64,
    trace_hash: u64,
}

fn scenario(seed: u64) -> Outcome {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let mut cluster = Cluster::new(ClusterConfig::new(seed));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let addrs: Vec<std::net::SocketAddr> = (0..NODES).map(|i| node_addr(i, PORT)).collect();
        for index in 0..NODES {
            let (addrs, shared) = (addrs.clone(), shared.clone());
            cluster.add_node(&format!("n{index}"), move |env| {
                run_node(env, index, addrs.clone(), shared.clone())
            });
        }
        let schedule = network_nemesis(seed, NODES);
        let _report = ReportOnPanic::new(format!("secure cluster seed {seed}\n{schedule}"));
        schedule.run(&cluster).await;
        finish_within(seed, "healing and every teller reaching every vault", Duration::from_secs(300), async {
            let dists: Vec<Distribution> = shared.lock().unwrap().dists.values().cloned().collect();
            for dist in &dists {
                dist.wait_for(Duration::from_secs(10), |m| {
                    m.len() == NODES && m.iter().all(|m| m.status == MemberStatus::Up)
                })
                .await
                .unwrap_or_else(|_| panic!("seed {seed}: {} never saw all up: {:?}", dist.node(), dist.members()));
            }
            let systems: Vec<(usize, ActorSystem)> =
                shared.lock().unwrap().systems.iter().map(|(i, s)| (*i, s.clone())).collect();
            for (from, system) in &systems {
                for to in (0..NODES).filter(|to| to != from) {
                    let remote = system.resolve::<Vault>(&vault_id(to)).unwrap();
                    let msg = Deposit { caller: Caller::Teller, amount: 0 };
                    let answer = remote
                        .ask_with(msg, headers(Caller::Teller), Duration::from_secs(5))
                        .await;
                    assert!(answer.is_ok(), "seed {seed}: n{from}'s teller cannot reach n{to}: {answer:?}");
                    let msg = Deposit { caller: Caller::Forger, amount: 0 };
                    let refused = remote
                        .ask_with(msg, headers(Caller::Forger), Duration::from_secs(5))
                        .await;
                    assert!(
                        matches!(&refused, Err(AskError::Failed(e)) if e.kind() == ActorErrorKind::Unauthenticated),
                        "seed {seed}: a forger at n{to} got {refused:?}"
                    );
                }
            }
            let shared = shared.lock().unwrap();
            let breaches = shared.breaches.lock().unwrap();
            assert!(breaches.is_empty(), "seed {seed}: {breaches:?}");
            assert!(shared.wrong.is_empty(), "seed {seed}: {:?}", shared.wrong);
            assert!(shared.answered > 100, "seed {seed}: only {} allowed asks answered", shared.answered);
            Outcome {
                answered: shared.answered,
                unauthenticated: shared.refused.get("unauthenticated").copied().unwrap_or(0),
                forbidden: shared.refused.get("forbidden").copied().unwrap_or(0),
                failed: shared.failed,
                trace_hash: cluster.trace().hash(),
            }
        })
        .await
    })
}

#[test]
fn no_unauthenticated_message_is_handled_and_the_workload_completes() {
    let plan = SeedPlan::from_env(12).with_fresh("secure_cluster", 24);
    let outcomes = run_seeds("secure_cluster", &plan, scenario);
    assert!(
        outcomes
            .iter()
            .all(|o| o.unauthenticated > 0 && o.forbidden > 0),
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().map(|o| o.failed).sum::<u64>() > 0,
        "the nemesis never made an ask fail"
    );
    assert_deterministic(2, scenario);
}
