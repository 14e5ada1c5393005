//! Security benchmark: what TLS costs on node links, and what the two
//! security facets cost per message.
//!
//! - Remote ask round trip (64 B and 4 KiB) and tell throughput (64 B)
//!   over TLS 1.3 against the plaintext link, two node pairs in one
//!   process, measured in interleaved rounds and reported as the median
//!   of the per-round ratios (target: TLS ≤ 1.3x plaintext for 64 B asks).
//! - The authorization facet's cached decision per message: a local
//!   actor's tells with authentication + authorization against
//!   authentication alone (target ≤ 2 µs), and the authorizer's cached
//!   `decide` alone; authentication's own cost (a JWT verified per
//!   message) against no facet.
//!
//! ```text
//! cargo run --release -p plexspaces-bench --bin security_bench [-- --quick]
//! ```

// A benchmark measures real time.
#![allow(clippy::disallowed_methods, clippy::disallowed_types, missing_docs)]

use plexspaces::actor::facet::{Facet, Headers};
use plexspaces::actor::{Actor, ActorError, ActorId, ActorRef, ActorSystem, Context, SpawnOptions};
use plexspaces::distribution::{ClusterSecret, Distribution, DistributionConfig};
use plexspaces::net::tls::test_pki::{TestCa, Validity};
use plexspaces::seams::Clock;
use plexspaces::security::{
    Access, Authenticator, Authorizer, JwtKey, JwtVerifier, NodeTls, Rbac, TlsSource,
};
use plexspaces::{Env, NodeName};
use std::time::{Duration, Instant, SystemTime};

const KEY: &[u8] = b"the-benchmark-issuers-hs256-key-32+";

struct Sink(u64);

impl Actor for Sink {
    type Msg = Vec<u8>;
    type Reply = u64;
    async fn handle(&mut self, _: &mut Context<Self>, msg: Vec<u8>) -> Result<u64, ActorError> {
        self.0 += msg.len() as u64;
        Ok(self.0)
    }
}

async fn pair(tls: bool, names: [&'static str; 2]) -> (Distribution, Distribution, ActorRef<Sink>) {
    let ca = TestCa::new("bench-ca", 3);
    let secret = ClusterSecret::new(*b"benchmark-cluster-secret").unwrap();
    let mut dists: Vec<Distribution> = Vec::new();
    let mut systems: Vec<ActorSystem> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let env = Env::tokio(NodeName::new(name).unwrap());
        let mut config = DistributionConfig::new("127.0.0.1:0".parse().unwrap(), secret.clone());
        if i == 1 {
            config = config.with_seeds([dists[0].local_addr()]);
        }
        if tls {
            let material = ca.material(name, Validity::always(), &[]);
            let node_tls = NodeTls::load(&env, TlsSource::Material(material))
                .await
                .unwrap();
            config = config.with_tls(node_tls);
        }
        let system = ActorSystem::new(env);
        let dist: Distribution = system.start_distribution(config).await.unwrap();
        dists.push(dist);
        systems.push(system);
    }
    let sink = systems[0].spawn("sink", Sink(0)).unwrap();
    dists[0].export(&sink).unwrap();
    dists[1]
        .wait_for(Duration::from_secs(5), |m| m.len() == 2)
        .await
        .unwrap();
    let remote = systems[1]
        .resolve::<Sink>(&ActorId::new("sink", NodeName::new(names[0]).unwrap()).unwrap())
        .unwrap();
    remote.ask(vec![0], Duration::from_secs(5)).await.unwrap();
    (dists.remove(0), dists.remove(0), remote)
}

async fn asks(remote: &ActorRef<Sink>, size: usize, n: usize) -> f64 {
    let payload = vec![7u8; size];
    let start = Instant::now();
    for _ in 0..n {
        remote
            .ask(payload.clone(), Duration::from_secs(5))
            .await
            .unwrap();
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

async fn tells(remote: &ActorRef<Sink>, headers: &Headers, size: usize, n: usize) -> f64 {
    let payload = vec![7u8; size];
    let start = Instant::now();
    for _ in 0..n {
        if headers.is_empty() {
            remote.tell(payload.clone()).await.unwrap();
        } else {
            remote
                .tell_with(payload.clone(), headers.clone())
                .await
                .unwrap();
        }
    }
    remote
        .ask_with(Vec::new(), headers.clone(), Duration::from_secs(60))
        .await
        .unwrap();
    start.elapsed().as_secs_f64() * 1e9 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn token() -> String {
    let claims = serde_json::json!({
        "sub": "alice", "tenant": "acme", "roles": ["teller"], "exp": 4_000_000_000u64
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(KEY),
    )
    .unwrap()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (n_asks, n_tells, rounds) = if quick {
        (1_000, 20_000, 3)
    } else {
        (5_000, 100_000, 7)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let (pa, pb, plain) = pair(false, ["plain-a", "plain-b"]).await;
        let (ta, tb, tls) = pair(true, ["tls-a", "tls-b"]).await;
        println!("security_bench: {rounds} interleaved rounds, medians of per-round ratios, 2 tokio workers");
        println!("| measure | plaintext | TLS 1.3 | TLS / plaintext |");
        println!("|---|---|---|---|");
        for (what, size) in [("ask round trip, 64 B", 64usize), ("ask round trip, 4 KiB", 4096)] {
            let (mut p, mut t, mut r) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..rounds {
                let a = asks(&plain, size, n_asks).await;
                let b = asks(&tls, size, n_asks).await;
                p.push(a);
                t.push(b);
                r.push(b / a);
            }
            println!("| {what} | {:.1} µs | {:.1} µs | {:.2}x |", median(p), median(t), median(r));
        }
        let (mut p, mut t, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let a = tells(&plain, &Headers::default(), 64, n_tells).await;
            let b = tells(&tls, &Headers::default(), 64, n_tells).await;
            p.push(1e6 / a);
            t.push(1e6 / b);
            r.push(a / b);
        }
        println!(
            "| tell throughput, 64 B | {:.0} k/s | {:.0} k/s | {:.2}x |",
            median(p),
            median(t),
            median(r)
        );
        for d in [pa, pb, ta, tb] {
            d.shutdown();
        }

        // The facets, on local actors: no facet, authentication only,
        // authentication + authorization (cached decisions).
        let system = ActorSystem::new(Env::tokio(NodeName::new("facets").unwrap()));
        let auth = Authenticator::new()
            .with_jwt(JwtVerifier::new().key(JwtKey::hs256(KEY).unwrap()).unwrap());
        let authz = Authorizer::new(Rbac::from_toml("[roles.teller]\npermissions = [\"Sink:*\"]").unwrap());
        let spawn = |name: &str, facets: Vec<Box<dyn Facet>>| {
            let options = SpawnOptions { facets, ..SpawnOptions::default() };
            system.spawn_with(name, Sink(0), options).unwrap()
        };
        let bare = spawn("bare", vec![]);
        let authn_only = spawn("authn", vec![Box::new(auth.facet(Some("acme")))]);
        let both = spawn(
            "both",
            vec![Box::new(auth.facet(Some("acme"))), Box::new(authz.facet(Some("acme")))],
        );
        let creds = Headers::bearer(&token());
        let (mut b, mut a1, mut a2) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            b.push(tells(&bare, &creds, 64, n_tells).await);
            a1.push(tells(&authn_only, &creds, 64, n_tells).await);
            a2.push(tells(&both, &creds, 64, n_tells).await);
        }
        let authn_cost: Vec<f64> = a1.iter().zip(&b).map(|(x, y)| x - y).collect();
        let authz_cost: Vec<f64> = a2.iter().zip(&a1).map(|(x, y)| x - y).collect();
        println!();
        println!("| facets on a local actor (tells with credentials) | ns/message |");
        println!("|---|---|");
        println!("| no facet | {:.0} |", median(b));
        println!("| authentication (the token's verification remembered) | {:.0} |", median(a1));
        println!("| authentication + authorization (cached decision) | {:.0} |", median(a2));
        println!("| authentication's cost per message | {:.0} |", median(authn_cost));
        println!("| authorization's cost per message, cached (target ≤ 2000) | {:.0} |", median(authz_cost));
        let (hits, misses) = authz.cache_stats();
        println!("(decision cache: {hits} hits, {misses} misses)");

        // The cached decision alone.
        let principal = auth.authenticate(creds.principal.as_deref(), None, system.env()).unwrap();
        let principal = (*principal).clone();
        let env = system.env().clone();
        let mut per_call = Vec::new();
        for _ in 0..rounds {
            let n = 200_000;
            let start = Instant::now();
            for _ in 0..n {
                let access = Access {
                    principal: &principal,
                    actor: "both@facets",
                    kind: "Sink",
                    actor_tenant: Some("acme"),
                    action: "Vec<u8>",
                    msg_type: "alloc::vec::Vec<u8>",
                    is_ask: false,
                    source_node: None,
                    claimed_tenant: None,
                    now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000),
                };
                std::hint::black_box(authz.decide(&access, env.now()));
            }
            per_call.push(start.elapsed().as_secs_f64() * 1e9 / n as f64);
        }
        println!("| Authorizer::decide, cached, alone | {:.0} |", median(per_call));

        // A token's first verification (HS256): what a new token costs.
        let verifier = JwtVerifier::new().key(JwtKey::hs256(KEY).unwrap()).unwrap();
        let raw = token();
        let mut per_verify = Vec::new();
        for _ in 0..rounds {
            let n = 20_000;
            let start = Instant::now();
            for _ in 0..n {
                std::hint::black_box(verifier.verify(&raw, SystemTime::now()).unwrap());
            }
            per_verify.push(start.elapsed().as_secs_f64() * 1e9 / n as f64);
        }
        println!("| JwtVerifier::verify (HS256), a token's first message | {:.0} |", median(per_verify));
    });
}
