//! The HTTP client capability against a real hyper server on loopback
//! (the runtime's `HttpServer`, over TCP): retries with backoff on 503,
//! no retry of a POST without a key, per-attempt timeouts, the breaker
//! opening and letting one trial through, bounded responses, HTTPS with a
//! test CA (and a wrong name refused), configuration by the registry, a
//! durable actor whose calls are journaled and carry idempotency keys, a
//! workflow step calling under its step key, a virtual kind configuring
//! the client, and the client span of a traced call.

use plexspaces::actor::facet::{FacetConfig, FacetConfigError, FacetSpec};
use plexspaces::actor::{ActorError, ActorSystem, SpawnOptions};
use plexspaces::capabilities::http::{
    BreakerPolicy, BreakerState, HttpClient, HttpClientConfig, HttpClientFacet, HttpError,
    HttpHandler, HttpRequest, HttpResponse, HttpServer, RetryPolicy, ServedRequest,
};
use plexspaces::durability::{
    DurabilityConfig, Durable, DurableActor, DurableContext, JournalBackend,
};
use plexspaces::net::tls::ServiceTlsServer;
use plexspaces::net::tls::test_pki::{TestCa, Validity};
use plexspaces::retry::Backoff;
use plexspaces::seams::Clock;
use plexspaces::virtual_actor::{VirtualActors, VirtualConfig};
use plexspaces::workflow::{
    RetryPolicy as WorkflowRetry, RunId, RunStatus, StepError, Workflow, WorkflowConfig,
    WorkflowContext, WorkflowError, Workflows,
};
use plexspaces::{Env, NodeName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fake service saw: each request's method, path and
/// idempotency key.
type Seen = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

/// A service answering by `answer(n, request)` for the n-th request (0-based).
async fn service(
    env: &Env,
    tls: Option<ServiceTlsServer>,
    answer: impl Fn(usize, &ServedRequest) -> Option<HttpResponse> + Send + Sync + 'static,
) -> (HttpServer, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let clock = env.clone();
    let answer = Arc::new(answer);
    let handler: HttpHandler = Arc::new(move |request: ServedRequest| {
        let n = {
            let mut log = log.lock().unwrap();
            log.push((
                request.method.to_string(),
                request.path.clone(),
                request.header("idempotency-key").map(str::to_string),
            ));
            log.len() - 1
        };
        let answer = answer.clone();
        let clock = clock.clone();
        Box::pin(async move {
            match answer(n, &request) {
                Some(response) => response,
                // None: hang (a slow service) far beyond any test timeout.
                None => {
                    clock.sleep(Duration::from_secs(3600)).await;
                    HttpResponse::new(200, "late")
                }
            }
        })
    });
    let server = HttpServer::serve(env, "127.0.0.1:0".parse().unwrap(), tls, handler)
        .await
        .unwrap();
    (server, seen)
}

fn env() -> Env {
    Env::tokio(NodeName::new("http").unwrap())
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(5)),
        ..RetryPolicy::default()
    }
}

fn client(
    env: &Env,
    addr: SocketAddr,
    config: impl FnOnce(HttpClientConfig) -> HttpClientConfig,
) -> HttpClient {
    let base = HttpClientConfig::new(&format!("http://{addr}/api")).unwrap();
    HttpClient::new(env, config(base)).unwrap()
}

#[tokio::test]
async fn a_503_is_retried_with_backoff_until_the_service_answers() {
    let env = env();
    let (server, seen) = service(&env, None, |n, _| {
        Some(if n < 2 {
            HttpResponse::new(503, "busy")
        } else {
            HttpResponse::new(200, "ok").header("x-attempt", n.to_string())
        })
    })
    .await;
    let http = client(&env, server.local_addr(), |c| c.retry(fast_retries(3)));
    let response = http.get("/charges/1").await.unwrap();
    assert_eq!((response.status, response.text()), (200, "ok".to_string()));
    assert_eq!(response.header_value("X-Attempt"), Some("2"));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|(m, p, _)| m == "GET" && p == "/api/charges/1")
    );

    // Attempts spent: the last response is returned, not an error.
    let (server, seen) = service(&env, None, |_, _| Some(HttpResponse::new(503, "busy"))).await;
    let http = client(&env, server.local_addr(), |c| c.retry(fast_retries(4)));
    assert_eq!(http.get("/x").await.unwrap().status, 503);
    assert_eq!(seen.lock().unwrap().len(), 4);
    // A status not worth retrying is returned at once.
    let (server, seen) = service(&env, None, |_, _| Some(HttpResponse::new(404, "no"))).await;
    let http = client(&env, server.local_addr(), |c| c.retry(fast_retries(4)));
    assert_eq!(http.get("/x").await.unwrap().status, 404);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_post_is_retried_only_with_an_idempotency_key() {
    let env = env();
    let (server, seen) = service(&env, None, |_, _| Some(HttpResponse::new(503, "busy"))).await;
    let http = client(&env, server.local_addr(), |c| c.retry(fast_retries(3)));
    let once = http
        .send(HttpRequest::post("/charges", "{}"))
        .await
        .unwrap();
    assert_eq!(once.status, 503);
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "a POST without a key is made once"
    );
    let keyed = HttpRequest::post("/charges", "{}").idempotency_key("k-1");
    assert_eq!(http.send(keyed).await.unwrap().status, 503);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    assert!(
        seen[1..]
            .iter()
            .all(|(m, _, key)| m == "POST" && key.as_deref() == Some("k-1")),
        "every attempt carries the same key: {seen:?}"
    );
}

#[tokio::test]
async fn an_attempt_that_overruns_its_timeout_fails_and_is_retried() {
    let env = env();
    // The first attempt hangs; the second answers.
    let (server, seen) = service(&env, None, |n, _| {
        (n > 0).then(|| HttpResponse::new(200, "second"))
    })
    .await;
    // Long enough for the second attempt on a loaded machine.
    let http = client(&env, server.local_addr(), |c| {
        c.retry(fast_retries(2)).timeout(Duration::from_secs(1))
    });
    assert_eq!(http.get("/slow").await.unwrap().text(), "second");
    assert_eq!(seen.lock().unwrap().len(), 2);
    // With one attempt, the timeout is the outcome.
    let (hang, _) = service(&env, None, |_, _| None).await;
    let hung = client(&env, hang.local_addr(), |c| {
        c.retry(fast_retries(1)).timeout(Duration::from_millis(100))
    });
    assert_eq!(
        hung.get("/slow").await,
        Err(HttpError::Timeout(Duration::from_millis(100)))
    );
}

#[tokio::test]
async fn the_breaker_opens_after_failures_then_lets_one_trial_through() {
    let env = env();
    let (server, seen) = service(&env, None, |n, _| {
        Some(if n < 3 {
            HttpResponse::new(500, "down")
        } else {
            HttpResponse::new(200, "up")
        })
    })
    .await;
    let open_for = Duration::from_millis(150);
    let http = client(&env, server.local_addr(), |c| {
        c.retry(fast_retries(1)).breaker(BreakerPolicy {
            failures_to_open: 3,
            open_for,
        })
    });
    for _ in 0..3 {
        assert_eq!(http.get("/x").await.unwrap().status, 500);
    }
    assert_eq!(http.breaker_state(), BreakerState::Open);
    assert!(matches!(
        http.get("/x").await,
        Err(HttpError::CircuitOpen(_))
    ));
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "an open breaker makes no call"
    );
    let metrics = env.metrics().render_prometheus();
    assert!(
        metrics.contains("plexspaces_http_default_breaker_state 2"),
        "{metrics}"
    );
    assert!(metrics.contains("plexspaces_http_default_breaker_opened_total 1"));
    // After the pause one trial goes through; its success closes it.
    env.sleep(open_for).await;
    assert_eq!(http.get("/x").await.unwrap().status, 200);
    assert_eq!(http.breaker_state(), BreakerState::Closed);
    assert_eq!(http.get("/x").await.unwrap().status, 200);
}

#[tokio::test]
async fn a_response_larger_than_the_bound_is_refused() {
    let env = env();
    let (server, _) = service(&env, None, |_, request| {
        let size: usize = request.path.trim_start_matches("/api/").parse().unwrap();
        Some(HttpResponse::new(200, vec![b'x'; size]))
    })
    .await;
    let http = client(&env, server.local_addr(), |c| c.response_bytes_max(1000));
    assert_eq!(http.get("/1000").await.unwrap().body.len(), 1000);
    assert_eq!(
        http.get("/1001").await,
        Err(HttpError::ResponseTooLarge(1000))
    );
    // The client still works afterwards (the connection was not reused).
    assert_eq!(http.get("/10").await.unwrap().body.len(), 10);
}

#[tokio::test]
async fn https_checks_the_services_certificate_and_name() {
    let env = env();
    let ca = TestCa::new("payments-ca", 7);
    let (cert, key) = ca.issue_pem("payments.test", Validity::always());
    let (random, wall) = (
        {
            let env = env.clone();
            Arc::new(move |buf: &mut [u8]| plexspaces::seams::Rng::fill_bytes(&env, buf))
                as plexspaces::net::tls::RandomSource
        },
        {
            let env = env.clone();
            Arc::new(move || env.wall_clock()) as plexspaces::net::tls::WallClock
        },
    );
    let tls = ServiceTlsServer::new(cert.as_bytes(), key.as_bytes(), random, wall).unwrap();
    let (server, _) = service(&env, Some(tls), |_, _| {
        Some(HttpResponse::new(200, "secure"))
    })
    .await;
    let https = |name: &str, ca_pem: &str| {
        let config =
            HttpClientConfig::new(&format!("https://{name}:{}", server.local_addr().port()))
                .unwrap()
                .address(server.local_addr())
                .ca_pem(ca_pem)
                .retry(fast_retries(1));
        HttpClient::new(&env, config).unwrap()
    };
    assert_eq!(
        https("payments.test", ca.pem())
            .get("/")
            .await
            .unwrap()
            .text(),
        "secure"
    );
    // Another name than the certificate's: refused.
    assert!(matches!(
        https("other.test", ca.pem()).get("/").await,
        Err(HttpError::Tls(_))
    ));
    // A certificate from a CA the client does not trust: refused.
    let stranger = TestCa::new("stranger", 8);
    assert!(matches!(
        https("payments.test", stranger.pem()).get("/").await,
        Err(HttpError::Tls(_))
    ));
    // Plain HTTP to the TLS port gets no answer it can read.
    let plain = client(&env, server.local_addr(), |c| c.retry(fast_retries(1)));
    assert!(plain.get("/").await.is_err());
}

#[tokio::test]
async fn the_facet_is_configured_by_the_registry_and_mistakes_are_named() {
    let system = ActorSystem::new(env());
    // Built in: no registration needed.
    let good = FacetConfig::from_toml(
        "base_url = \"http://127.0.0.1:9/v1\"\nname = \"payments\"\ntimeout = \"2s\"\nmax_attempts = 5\nbreaker_failures = 2",
    )
    .unwrap();
    system.facet_types().build("http_client", good).unwrap();
    for (bad, key) in [
        ("name = \"x\"", "base_url"),
        ("base_url = \"ftp://h/\"", "base_url"),
        ("base_url = \"http://payments.internal/\"", "address"),
        ("base_url = \"https://10.0.0.1/\"", "ca_pem"),
        (
            "base_url = \"http://10.0.0.1/\"\nmax_attempts = 0",
            "max_attempts",
        ),
        ("base_url = \"http://10.0.0.1/\"\nname = \"a-b\"", "name"),
        ("base_url = \"http://10.0.0.1/\"\nretries = 3", "retries"),
    ] {
        let config = FacetConfig::from_toml(bad).unwrap();
        let refused = system.facet_types().build("http_client", config);
        let named = match refused {
            Err(FacetConfigError::Invalid { key, .. })
            | Err(FacetConfigError::MissingKey { key, .. })
            | Err(FacetConfigError::UnknownKey { key, .. }) => key,
            Err(other) => panic!("{bad}: {other:?}"),
            Ok(_) => panic!("{bad}: accepted"),
        };
        assert_eq!(named, key, "{bad}");
    }
}

/// A durable shop charging through the payment service.
#[derive(Default, Serialize, Deserialize)]
struct Shop {
    receipts: BTreeMap<String, String>,
}

#[derive(Clone, Serialize, Deserialize)]
enum ShopOp {
    Charge(String),
}

impl DurableActor for Shop {
    type Msg = ShopOp;
    type Reply = String;

    async fn handle(
        &mut self,
        ctx: &mut DurableContext<'_>,
        op: ShopOp,
    ) -> Result<String, ActorError> {
        let ShopOp::Charge(order) = op;
        let http = ctx
            .facet::<HttpClientFacet>()
            .and_then(HttpClientFacet::client)
            .ok_or_else(|| ActorError::new("no payment client"))?;
        let charged = http
            .send_durable(ctx, "charge", HttpRequest::post("/charges", order.clone()))
            .await?
            .map_err(|e| ActorError::new(e.to_string()))?;
        self.receipts.insert(order, charged.text());
        Ok(charged.text())
    }
}

#[tokio::test]
async fn a_durable_call_is_journaled_and_carries_a_key_derived_from_the_message() {
    let env = env();
    // The service charges once per idempotency key: a repeated key gets
    // the first charge's id back.
    let charges: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let ledger = charges.clone();
    let (server, seen) = service(&env, None, move |n, request| {
        let key = request.header("idempotency-key")?.to_string();
        let mut ledger = ledger.lock().unwrap();
        let next = ledger.len();
        let id = *ledger.entry(key).or_insert(next);
        // The first request's answer is lost (a 503 after charging).
        Some(if n == 0 {
            HttpResponse::new(503, "lost")
        } else {
            HttpResponse::new(201, format!("charge-{id}"))
        })
    })
    .await;
    let system = ActorSystem::new(env.clone());
    let journal = JournalBackend::memory();
    let config = HttpClientConfig::new(&format!("http://{}", server.local_addr()))
        .unwrap()
        .name("payments")
        .retry(fast_retries(3));
    let spawn = || {
        let options = SpawnOptions {
            facets: vec![Box::new(HttpClientFacet::new(config.clone()))],
            ..SpawnOptions::default()
        };
        let shop = Durable::new(
            Shop::default(),
            journal.clone(),
            DurabilityConfig::default(),
        );
        system.spawn_with("shop", shop, options).unwrap()
    };
    let shop = spawn();
    let wait = Duration::from_secs(10);
    assert_eq!(
        shop.call("order-1", ShopOp::Charge("o1".into()), wait)
            .await,
        Ok("charge-0".into())
    );
    assert_eq!(
        shop.call("order-2", ShopOp::Charge("o2".into()), wait)
            .await,
        Ok("charge-1".into())
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "the lost answer was retried under its key");
        assert_eq!(seen[0].2, seen[1].2, "a retry carries the same key");
        assert_ne!(seen[1].2, seen[2].2, "another message, another key");
        assert!(
            seen.iter()
                .all(|(_, _, key)| key.as_ref().is_some_and(|k| k.len() == 32))
        );
    }
    // A restarted shop replays both messages from the journal without
    // calling the service, and answers a retried command from it.
    shop.stop();
    shop.wait_exit().await;
    let shop = spawn();
    assert_eq!(
        shop.call("order-1", ShopOp::Charge("o1".into()), wait)
            .await,
        Ok("charge-0".into())
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "replay never calls the service"
    );
    assert_eq!(charges.lock().unwrap().len(), 2);
}

/// A workflow charging through the client from a step, keyed by the
/// step's own key (stable across the step's retries and the run's
/// replays).
struct Checkout {
    http: HttpClient,
}

impl Workflow for Checkout {
    type Input = String;
    type Output = String;

    async fn run(&self, ctx: WorkflowContext, order: String) -> Result<String, WorkflowError> {
        let http = self.http.clone();
        ctx.step_with("charge", &WorkflowRetry::attempts(5), |key| {
            let (http, order) = (http.clone(), order.clone());
            async move {
                let request = HttpRequest::post("/charges", order).idempotency_key(key);
                match http.send(request).await {
                    Ok(response) if response.is_success() => Ok(response.text()),
                    Ok(response) => {
                        Err(StepError::retryable(format!("status {}", response.status)))
                    }
                    Err(e) => Err(StepError::retryable(e.to_string())),
                }
            }
        })
        .await
    }
}

#[tokio::test]
async fn a_workflow_step_calls_through_the_client_under_the_steps_key() {
    let env = env();
    // The first two requests fail after charging: the step is retried.
    let (server, seen) = service(&env, None, |n, request| {
        Some(if n < 2 {
            HttpResponse::new(503, "charged, answer lost")
        } else {
            HttpResponse::new(
                201,
                format!("paid {}", request.header("idempotency-key").unwrap_or("?")),
            )
        })
    })
    .await;
    let system = ActorSystem::new(env.clone());
    // One attempt per step try: the step's own policy retries.
    let http = client(&env, server.local_addr(), |c| c.retry(fast_retries(1)));
    let mut config = WorkflowConfig::new("checkout", JournalBackend::memory());
    config.resume_every = Duration::from_millis(100);
    let flow = Workflows::register(&system, config, Checkout { http }).unwrap();
    let run = RunId::new("shop", "o1").unwrap();
    flow.start(&run, &"o1".to_string()).await.unwrap();
    let paid = flow.result(&run, Duration::from_secs(30)).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    let key = seen[0].2.clone().expect("a key");
    assert!(
        seen.iter().all(|(_, _, k)| k.as_ref() == Some(&key)),
        "{seen:?}"
    );
    assert_eq!(paid, format!("paid {key}"));
    // The finished run answers from its record: no call.
    assert_eq!(
        flow.result(&run, Duration::from_secs(5)).await.unwrap(),
        paid
    );
    assert_eq!(
        flow.start(&run, &"o1".to_string()).await.unwrap(),
        RunStatus::Completed
    );
}

#[tokio::test]
async fn a_virtual_kind_attaches_the_client_by_configuration() {
    let env = env();
    let (server, seen) = service(&env, None, |n, _| {
        Some(HttpResponse::new(201, format!("charge-{n}")))
    })
    .await;
    let system = ActorSystem::new(env.clone());
    let config = FacetConfig::from_toml(&format!(
        "base_url = \"http://{}\"\nname = \"virtual_payments\"",
        server.local_addr()
    ))
    .unwrap();
    let kind = VirtualConfig::new("shop", JournalBackend::memory())
        .with_facet(FacetSpec::named("http_client", config));
    let shops = VirtualActors::register(&system, kind, |_| Shop::default()).unwrap();
    let wait = Duration::from_secs(10);
    for (i, id) in ["east", "west"].into_iter().enumerate() {
        let shop = shops.get(id).unwrap();
        let receipt = shop
            .call("order-1", ShopOp::Charge(format!("{id}-1")), wait)
            .await;
        assert_eq!(receipt, Ok(format!("charge-{i}")));
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_ne!(
        seen[0].2, seen[1].2,
        "two actors, two keys for the same message key"
    );
}

/// Calls the service on each message, inside its traced handler.
struct Caller {
    http: HttpClient,
}

impl plexspaces::actor::Actor for Caller {
    type Msg = ();
    type Reply = u16;
    async fn handle(
        &mut self,
        _: &mut plexspaces::actor::Context<Self>,
        (): (),
    ) -> Result<u16, ActorError> {
        let response = self
            .http
            .get("/traced")
            .await
            .map_err(|e| ActorError::new(e.to_string()))?;
        Ok(response.status)
    }
}

#[tokio::test]
async fn a_call_from_a_traced_handler_is_a_client_span_the_service_can_join() {
    use opentelemetry::trace::SpanKind;
    let env = env();
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider = plexspaces::observability::traces::NodeTraces::provider_builder(
        &env,
        plexspaces::observability::Sampling::Always,
    )
    .with_simple_exporter(exporter.clone())
    .build();
    env.traces()
        .install_provider(provider, plexspaces::observability::Sampling::Always)
        .unwrap();
    let parents: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let (server, _) = {
        let parents = parents.clone();
        service(&env, None, move |_, request| {
            parents
                .lock()
                .unwrap()
                .push(request.header("traceparent").map(str::to_string));
            Some(HttpResponse::new(204, ""))
        })
        .await
    };
    let system = ActorSystem::new(env.clone());
    let http = client(&env, server.local_addr(), |c| c.name("traced"));
    let options = SpawnOptions {
        facets: vec![Box::new(
            plexspaces::actor::builtin_facets::TracingFacet::new(),
        )],
        ..SpawnOptions::default()
    };
    let caller = system
        .spawn_with("caller", Caller { http: http.clone() }, options)
        .unwrap();
    assert_eq!(caller.ask((), Duration::from_secs(5)).await, Ok(204));
    // Outside a trace: no span, no header.
    assert_eq!(http.get("/untraced").await.unwrap().status, 204);
    let parents = parents.lock().unwrap().clone();
    assert_eq!(parents.len(), 2);
    assert!(parents[1].is_none(), "no trace, no traceparent");
    let sent = parents[0]
        .clone()
        .expect("a traceparent from the traced handler");
    env.traces().flush();
    let spans = exporter.get_finished_spans().unwrap();
    let client_span = spans
        .iter()
        .find(|s| s.name == "http.client")
        .expect("a client span");
    assert_eq!(client_span.span_kind, SpanKind::Client);
    let handler = spans
        .iter()
        .find(|s| s.span_context.span_id() == client_span.parent_span_id)
        .expect("the client span's parent is exported");
    assert_eq!(
        handler.span_context.trace_id(),
        client_span.span_context.trace_id()
    );
    assert!(
        sent.contains(&client_span.span_context.span_id().to_string()),
        "the service was told the client span ({sent})"
    );
    assert!(
        client_span
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "http.response.status_code"
                && kv.value.to_string() == "204")
    );
}
