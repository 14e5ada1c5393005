//! The authentication and authorization facets on real actors: no message
//! without valid credentials reaches a handler; RBAC and Cedar decisions as
//! tables of principal × target × expected; the tenant boundary held on the
//! receiving node for actors (local and remote) and virtual actors; the
//! decision cache and its invalidation; refusals counted.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use plexspaces::actor::facet::{FacetConfig, FacetSpec, Headers, Principal};
use plexspaces::actor::{
    Actor, ActorError, ActorErrorKind, ActorId, ActorSystem, AskError, Context, SpawnOptions,
};
use plexspaces::distribution::{ClusterSecret, DistributionConfig, MemberStatus};
use plexspaces::durability::{DurableActor, DurableContext, JournalBackend};
use plexspaces::security::{
    Access, AccessDecision, AuthMethod, Authenticator, Authorizer, JwtKey, JwtVerifier,
    NodeIdentities, Policies, Rbac,
};
use plexspaces::virtual_actor::{VirtualActors, VirtualConfig};
use plexspaces::{Env, NodeName};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const SECRET: &[u8] = b"an-hs256-secret-of-at-least-32-bytes!!";
const WAIT: Duration = Duration::from_secs(10);

fn token(sub: &str, tenant: &str, roles: &[&str], exp_from_now: i64) -> String {
    use plexspaces::seams::Clock;
    // The nodes below judge expiry on their wall clock: tokio's.
    let wall = plexspaces::tokio_backend::TokioClock::new().wall_clock();
    let exp = (wall
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + exp_from_now) as u64;
    let claims =
        json!({ "sub": sub, "tenant": tenant, "roles": roles, "exp": exp, "dept": "finance" });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn authenticator() -> Authenticator {
    Authenticator::new().with_jwt(
        JwtVerifier::new()
            .key(JwtKey::hs256(SECRET).unwrap())
            .unwrap(),
    )
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum AccountMsg {
    Deposit(u64),
    Balance,
    Close,
}

fn action(msg: &AccountMsg) -> &'static str {
    match msg {
        AccountMsg::Deposit(_) => "deposit",
        AccountMsg::Balance => "balance",
        AccountMsg::Close => "close",
    }
}

/// Records who each handled message acted for.
struct Account {
    balance: u64,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Actor for Account {
    type Msg = AccountMsg;
    type Reply = u64;
    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        msg: AccountMsg,
    ) -> Result<u64, ActorError> {
        let who = ctx
            .principal()
            .map_or("<nobody>".to_string(), Principal::to_string);
        self.seen.lock().unwrap().push(who);
        if let AccountMsg::Deposit(n) = msg {
            self.balance += n;
        }
        Ok(self.balance)
    }
}

const RBAC: &str = r#"
[roles.teller]
permissions = ["Account:deposit", "Account:balance", "Vault:deposit", "Vault:balance"]
[roles.auditor]
permissions = ["Account:balance"]
[roles.node]
permissions = ["Account:balance"]
"#;

fn authorizer() -> Authorizer {
    let authz = Authorizer::new(Rbac::from_toml(RBAC).unwrap());
    authz.action_names::<AccountMsg>(action);
    authz
}

fn kind_of(e: &AskError) -> Option<ActorErrorKind> {
    match e {
        AskError::Failed(e) => Some(e.kind()),
        _ => None,
    }
}

async fn account(
    system: &ActorSystem,
    name: &str,
    tenant: &str,
    auth: &Authenticator,
    authz: &Authorizer,
) -> (
    plexspaces::actor::ActorRef<Account>,
    Arc<Mutex<Vec<String>>>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let options = SpawnOptions {
        facets: vec![
            Box::new(auth.facet(Some(tenant))),
            Box::new(authz.facet(Some(tenant))),
        ],
        ..SpawnOptions::default()
    };
    let actor = system
        .spawn_with(
            name,
            Account {
                balance: 0,
                seen: seen.clone(),
            },
            options,
        )
        .unwrap();
    (actor, seen)
}

#[tokio::test]
async fn no_message_without_valid_credentials_reaches_the_handler() {
    let system = ActorSystem::new(Env::tokio(NodeName::new("sec-a").unwrap()));
    let (auth, authz) = (authenticator(), authorizer());
    let (acct, seen) = account(&system, "acct", "acme", &auth, &authz).await;
    let teller = token("alice", "acme", &["teller"], 600);
    let cases: Vec<(&str, Headers, AccountMsg, Result<u64, ActorErrorKind>)> = vec![
        (
            "no credentials",
            Headers::default(),
            AccountMsg::Deposit(1),
            Err(ActorErrorKind::Unauthenticated),
        ),
        (
            "garbage token",
            Headers::bearer("not.a.token"),
            AccountMsg::Deposit(1),
            Err(ActorErrorKind::Unauthenticated),
        ),
        (
            "expired",
            Headers::bearer(&token("alice", "acme", &["teller"], -3600)),
            AccountMsg::Deposit(1),
            Err(ActorErrorKind::Unauthenticated),
        ),
        (
            "teller deposits",
            Headers::bearer(&teller),
            AccountMsg::Deposit(5),
            Ok(5),
        ),
        (
            "teller reads",
            Headers::bearer(&teller),
            AccountMsg::Balance,
            Ok(5),
        ),
        (
            "auditor deposits",
            Headers::bearer(&token("bob", "acme", &["auditor"], 600)),
            AccountMsg::Deposit(1),
            Err(ActorErrorKind::Forbidden),
        ),
        (
            "auditor reads",
            Headers::bearer(&token("bob", "acme", &["auditor"], 600)),
            AccountMsg::Balance,
            Ok(5),
        ),
        (
            "no role closes",
            Headers::bearer(&teller),
            AccountMsg::Close,
            Err(ActorErrorKind::Forbidden),
        ),
        (
            "other tenant",
            Headers::bearer(&token("eve", "globex", &["teller"], 600)),
            AccountMsg::Deposit(1),
            Err(ActorErrorKind::Forbidden),
        ),
        (
            "claims another tenant",
            Headers::bearer(&teller).for_tenant("globex"),
            AccountMsg::Deposit(1),
            Err(ActorErrorKind::Forbidden),
        ),
        (
            "claims its own tenant",
            Headers::bearer(&teller).for_tenant("acme"),
            AccountMsg::Balance,
            Ok(5),
        ),
    ];
    for (what, headers, msg, expected) in cases {
        let got = acct.ask_with(msg, headers, WAIT).await;
        match (&got, &expected) {
            (Ok(v), Ok(e)) => assert_eq!(v, e, "{what}"),
            (Err(e), Err(kind)) => assert_eq!(kind_of(e), Some(*kind), "{what}: {e}"),
            _ => panic!("{what}: got {got:?}, expected {expected:?}"),
        }
    }
    assert_eq!(
        *seen.lock().unwrap(),
        ["alice@acme", "alice@acme", "bob@acme", "alice@acme"],
        "only the allowed messages were handled, each with its principal"
    );
    // A forbidden answer names the rule; a tenant refusal says `tenant`.
    let err = acct
        .ask_with(AccountMsg::Close, Headers::bearer(&teller), WAIT)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("default-deny"), "{err}");
    let err = acct
        .ask_with(
            AccountMsg::Balance,
            Headers::bearer(&token("eve", "globex", &["teller"], 600)),
            WAIT,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rule tenant"), "{err}");
    // Tells are refused the same way, silently: nothing handled.
    acct.tell(AccountMsg::Deposit(100)).await.unwrap();
    assert_eq!(
        acct.ask_with(AccountMsg::Balance, Headers::bearer(&teller), WAIT)
            .await,
        Ok(5)
    );
    // Every refusal is counted by kind and reason.
    let scrape = system.env().metrics().render_prometheus();
    for line in [
        r#"plexspaces_security_refusals_total{kind="unauthenticated",reason="missing"} 2"#,
        r#"plexspaces_security_refusals_total{kind="unauthenticated",reason="expired"} 1"#,
        r#"plexspaces_security_refusals_total{kind="forbidden",reason="default_deny"} 3"#,
        r#"plexspaces_security_refusals_total{kind="tenant",reason="other_tenant"} 2"#,
        r#"plexspaces_security_refusals_total{kind="tenant",reason="claimed_tenant"} 1"#,
    ] {
        assert!(scrape.contains(line), "missing {line} in\n{scrape}");
    }
}

#[tokio::test]
async fn cached_decisions_are_reused_and_dropped_when_the_rules_change() {
    let system = ActorSystem::new(Env::tokio(NodeName::new("sec-b").unwrap()));
    let (auth, authz) = (authenticator(), authorizer());
    let (acct, _) = account(&system, "acct", "acme", &auth, &authz).await;
    let teller = Headers::bearer(&token("alice", "acme", &["teller"], 600));
    for _ in 0..10 {
        acct.ask_with(AccountMsg::Deposit(1), teller.clone(), WAIT)
            .await
            .unwrap();
    }
    let (hits, misses) = authz.cache_stats();
    assert_eq!((hits, misses), (9, 1), "one decision, then the cache");
    // Tellers lose deposits: the next deposit is decided afresh, refused.
    authz.set_rbac(Rbac::from_toml("[roles.teller]\npermissions = [\"Account:balance\"]").unwrap());
    let refused = acct
        .ask_with(AccountMsg::Deposit(1), teller.clone(), WAIT)
        .await
        .unwrap_err();
    assert_eq!(kind_of(&refused), Some(ActorErrorKind::Forbidden));
}

fn principal(sub: &str, tenant: &str, roles: &[&str], dept: &str) -> Principal {
    let mut roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    roles.sort();
    Principal {
        subject: sub.into(),
        tenant: Some(tenant.into()),
        roles,
        issuer: None,
        claims: [("dept".to_string(), json!(dept))].into_iter().collect(),
        method: AuthMethod::Jwt { key_id: None },
    }
}

const POLICIES: &str = r#"
@id("finance-closes-own-tenant")
permit(principal, action, resource)
when { context.action == "close" && principal.hasTag("dept")
       && principal.getTag("dept") == "finance" && principal.tenant == resource.tenant };

@id("no-night-deposits")
forbid(principal, action, resource)
when { context.action == "deposit" && context.hour < 6 };

@id("auditors-never-write")
forbid(principal, action, resource)
when { principal.roles.contains("auditor") && context.action != "balance" };
"#;

#[test]
fn rbac_and_cedar_decide_as_the_table_says() {
    let authz = Authorizer::new(Rbac::from_toml(RBAC).unwrap())
        .with_policies(Policies::parse(POLICIES).unwrap());
    let noon =
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000 / 86_400 * 86_400 + 12 * 3600);
    let night = noon - Duration::from_secs(9 * 3600);
    let teller = principal("alice", "acme", &["teller"], "sales");
    let financier = principal("fin", "acme", &[], "finance");
    let outsider = principal("fox", "globex", &[], "finance");
    let both = principal("mallory", "acme", &["teller", "auditor"], "sales");
    let table: Vec<(&Principal, &str, SystemTime, AccessDecision)> = vec![
        (
            &teller,
            "deposit",
            noon,
            AccessDecision::Allow("rbac:teller".into()),
        ),
        (
            &teller,
            "deposit",
            night,
            AccessDecision::Deny("no-night-deposits".into()),
        ),
        (
            &teller,
            "balance",
            night,
            AccessDecision::Allow("rbac:teller".into()),
        ),
        (
            &teller,
            "close",
            noon,
            AccessDecision::Deny("default-deny".into()),
        ),
        (
            &financier,
            "close",
            noon,
            AccessDecision::Allow("finance-closes-own-tenant".into()),
        ),
        (
            &financier,
            "deposit",
            noon,
            AccessDecision::Deny("default-deny".into()),
        ),
        (
            &outsider,
            "close",
            noon,
            AccessDecision::Deny("default-deny".into()),
        ),
        (
            &both,
            "deposit",
            noon,
            AccessDecision::Deny("auditors-never-write".into()),
        ),
        (
            &both,
            "balance",
            noon,
            AccessDecision::Allow("rbac:auditor".into()),
        ),
    ];
    for (who, action, now, expected) in table {
        let access = Access {
            principal: who,
            actor: "acct@n1",
            kind: "Account",
            actor_tenant: Some("acme"),
            action,
            msg_type: "AccountMsg",
            is_ask: true,
            source_node: None,
            claimed_tenant: None,
            now,
        };
        assert_eq!(authz.decide_uncached(&access), expected, "{who} {action}");
    }
}

#[test]
fn bad_rules_are_refused_at_load_naming_the_problem() {
    for bad in [
        "permit(principal, action, resource) when { principal.salary > 3 };",
        "permit(principal, action, resource) when { context.nope == 1 };",
        "permit(principal, action == Action::\"delete\", resource);",
        "this is not cedar",
    ] {
        assert!(Policies::parse(bad).is_err(), "{bad}");
    }
    for bad in [
        "[roles.x]\npermissions = [\"no-colon\"]",
        "[roles.x]\npermissions = [\"Acc*:x\"]",
        "[roles.x]\nperms = []",
        "[role.x]\npermissions = []",
    ] {
        assert!(Rbac::from_toml(bad).is_err(), "{bad}");
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Vault {
    balance: u64,
}

impl DurableActor for Vault {
    type Msg = AccountMsg;
    type Reply = u64;
    async fn handle(
        &mut self,
        _: &mut DurableContext<'_>,
        msg: AccountMsg,
    ) -> Result<u64, ActorError> {
        if let AccountMsg::Deposit(n) = msg {
            self.balance += n;
        }
        Ok(self.balance)
    }
}

#[tokio::test]
async fn a_virtual_actor_of_another_tenant_refuses_the_caller() {
    let system = ActorSystem::new(Env::tokio(NodeName::new("sec-c").unwrap()));
    let (auth, authz) = (authenticator(), authorizer());
    auth.register(system.facet_types()).unwrap();
    authz.register(system.facet_types()).unwrap();
    let by_name = FacetConfig::from_toml("tenant_from_name = true").unwrap();
    let config = VirtualConfig::new("vault", JournalBackend::memory())
        .with_facet(FacetSpec::named("authentication", by_name.clone()))
        .with_facet(FacetSpec::named("authorization", by_name));
    let vaults = VirtualActors::register(&system, config, |_| Vault::default()).unwrap();
    let acme = Headers::bearer(&token("alice", "acme", &["teller"], 600));
    let own = vaults.get("acme/v1").unwrap().with_headers(acme.clone());
    assert_eq!(own.call("k1", AccountMsg::Deposit(7), WAIT).await, Ok(7));
    let theirs = vaults.get("globex/v1").unwrap().with_headers(acme);
    let refused = theirs
        .call("k2", AccountMsg::Deposit(7), WAIT)
        .await
        .unwrap_err();
    assert_eq!(
        kind_of(&refused),
        Some(ActorErrorKind::Forbidden),
        "{refused}"
    );
    let anonymous = vaults.get("acme/v1").unwrap();
    let refused = anonymous
        .call("k3", AccountMsg::Deposit(1), WAIT)
        .await
        .unwrap_err();
    assert_eq!(
        kind_of(&refused),
        Some(ActorErrorKind::Unauthenticated),
        "{refused}"
    );
    let globex = Headers::bearer(&token("gina", "globex", &["teller"], 600));
    let theirs = vaults.get("globex/v1").unwrap().with_headers(globex);
    assert_eq!(
        theirs.call("k4", AccountMsg::Balance, WAIT).await,
        Ok(0),
        "nothing crossed over"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_nodes_the_receiving_node_refuses_with_typed_errors() {
    use plexspaces::net::tls::test_pki::{TestCa, Validity};
    use plexspaces::security::{NodeTls, TlsSource};
    let ca = TestCa::new("ca", 51);
    let start = |name: &'static str, seeds: Vec<std::net::SocketAddr>| {
        let material = ca.material(name, Validity::always(), &[]);
        async move {
            let env = Env::tokio(NodeName::new(name).unwrap());
            let tls = NodeTls::load(&env, TlsSource::Material(material))
                .await
                .unwrap();
            let system = ActorSystem::new(env);
            let mut config = DistributionConfig::new(
                "127.0.0.1:0".parse().unwrap(),
                ClusterSecret::new(*b"a-cluster-secret-of-some-length").unwrap(),
            )
            .with_seeds(seeds)
            .with_tls(tls);
            config.heartbeat_interval = Duration::from_millis(20);
            config.suspect_after = Duration::from_millis(300);
            config.down_after = Duration::from_secs(1);
            let dist = system.start_distribution(config).await.unwrap();
            (system, dist)
        }
    };
    let (sys_a, dist_a) = start("sec-ra", vec![]).await;
    let (sys_b, dist_b) = start("sec-rb", vec![dist_a.local_addr()]).await;
    let auth = authenticator().with_node_identities(NodeIdentities {
        roles: vec!["node".into()],
        tenant: Some("acme".into()),
    });
    let (acct, seen) = account(&sys_a, "acct", "acme", &auth, &authorizer()).await;
    dist_a.export(&acct).unwrap();
    dist_b
        .wait_for(WAIT, |m| {
            m.iter().filter(|m| m.status == MemberStatus::Up).count() == 2
        })
        .await
        .unwrap();
    let remote = sys_b
        .resolve::<Account>(&ActorId::new("acct", NodeName::new("sec-ra").unwrap()).unwrap())
        .unwrap();
    let teller = Headers::bearer(&token("alice", "acme", &["teller"], 600));
    assert_eq!(
        remote.ask_with(AccountMsg::Deposit(3), teller, WAIT).await,
        Ok(3)
    );
    let other = Headers::bearer(&token("eve", "globex", &["teller"], 600));
    let refused = remote
        .ask_with(AccountMsg::Deposit(3), other, WAIT)
        .await
        .unwrap_err();
    assert_eq!(
        kind_of(&refused),
        Some(ActorErrorKind::Forbidden),
        "{refused}"
    );
    let bad = Headers::bearer("forged.token.here");
    let refused = remote
        .ask_with(AccountMsg::Deposit(3), bad, WAIT)
        .await
        .unwrap_err();
    assert_eq!(
        kind_of(&refused),
        Some(ActorErrorKind::Unauthenticated),
        "{refused}"
    );
    // No token: the sending node's certificate is its identity (mTLS),
    // with the node role: it may read, not write.
    assert_eq!(remote.ask(AccountMsg::Balance, WAIT).await, Ok(3));
    let refused = remote.ask(AccountMsg::Deposit(1), WAIT).await.unwrap_err();
    assert_eq!(
        kind_of(&refused),
        Some(ActorErrorKind::Forbidden),
        "{refused}"
    );
    assert_eq!(*seen.lock().unwrap(), ["alice@acme", "node:sec-rb@acme"]);
    // A local caller without a token is no node: refused.
    let local = acct.ask(AccountMsg::Balance, WAIT).await.unwrap_err();
    assert_eq!(kind_of(&local), Some(ActorErrorKind::Unauthenticated));
}

#[tokio::test(start_paused = true)]
async fn a_remembered_token_still_expires_on_the_node_clock() {
    use plexspaces::seams::Clock;
    use plexspaces::security::TokenError;
    use plexspaces::tokio_backend::{OsRng, TokioClock, TokioSpawner};
    let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    let env = Env::new(
        NodeName::new("sec-d").unwrap(),
        TokioClock::with_wall_from(epoch),
        TokioSpawner::current(),
        OsRng::new(),
        plexspaces::storage::disk::MemDisk::new(),
        plexspaces::net::TcpNet::new(),
    );
    let auth = Authenticator::new().with_jwt(
        JwtVerifier::new()
            .leeway(Duration::ZERO)
            .key(JwtKey::hs256(SECRET).unwrap())
            .unwrap(),
    );
    let claims = json!({ "sub": "alice", "exp": 1_780_000_010u64 });
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let first = auth.authenticate(Some(&token), None, &env).unwrap();
    let again = auth.authenticate(Some(&token), None, &env).unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "the second message reuses the verification"
    );
    env.sleep(Duration::from_secs(11)).await;
    assert_eq!(
        auth.authenticate(Some(&token), None, &env).unwrap_err(),
        TokenError::Expired
    );
    // A token that differs in one byte is verified on its own (and fails).
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'Q' } else { 'A' });
    assert!(auth.authenticate(Some(&forged), None, &env).is_err());
}
