//! Traces on tokio: a two-node ask whose spans, captured by the SDK's
//! in-memory exporter, form one trace with the parent-child links across
//! the nodes; a workflow's steps as children of its run's span; journal
//! appends under the handler's span; sampling ratios and `never`; and an
//! OTLP export received and decoded by a real OTLP/HTTP receiver on
//! loopback.

mod support;

use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use plexspaces::actor::builtin_facets::TracingFacet;
use plexspaces::actor::{Actor, ActorError, ActorId, ActorRef, ActorSystem, Context, SpawnOptions};
use plexspaces::durability::{DurabilityConfig, Durable, DurableActor, DurableContext};
use plexspaces::net::{ByteReader, ByteWriter, Connection, Listener, Net};
use plexspaces::observability::traces::NodeTraces;
use plexspaces::observability::{Sampling, TraceConfig, TraceExporter};
use plexspaces::tuplespace::{Field, Kind, Pattern, TupleSpace, TupleSpaceConfig};
use plexspaces::workflow::{
    StepError, Workflow, WorkflowConfig, WorkflowContext, WorkflowError, Workflows,
};
use plexspaces::{Env, NodeName, tuple};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

async fn env(test: &str, node: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("plexspaces-traces-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Env::tokio(NodeName::new(node).unwrap())
        .with_data_dir(dir)
        .await
        .unwrap()
}

/// Traces every span of `env`'s node into `exporter`, sampled as `sampling`.
fn trace_into(env: &Env, exporter: &InMemorySpanExporter, sampling: Sampling) {
    let provider = NodeTraces::provider_builder(env, sampling)
        .with_simple_exporter(exporter.clone())
        .build();
    env.traces().install_provider(provider, sampling).unwrap();
}

fn traced() -> SpawnOptions {
    SpawnOptions {
        facets: vec![Box::new(TracingFacet::new())],
        ..SpawnOptions::default()
    }
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

// ---------------------------------------------------------------- actors

/// Answers with its input doubled.
struct Back;

impl Actor for Back {
    type Msg = u64;
    type Reply = u64;
    async fn handle(&mut self, _: &mut Context<Self>, n: u64) -> Result<u64, ActorError> {
        Ok(n * 2)
    }
}

/// Asks `Back` (wherever it runs) and adds one.
struct Front {
    back: ActorRef<Back>,
}

impl Actor for Front {
    type Msg = u64;
    type Reply = u64;
    async fn handle(&mut self, _: &mut Context<Self>, n: u64) -> Result<u64, ActorError> {
        let doubled = self
            .back
            .ask(n, SECOND)
            .await
            .map_err(|e| ActorError::new(e.to_string()))?;
        Ok(doubled + 1)
    }
}

#[tokio::test]
async fn an_ask_across_nodes_is_one_trace() {
    let exporter = InMemorySpanExporter::default();
    let journal = support::journal_server(env("j", "j1").await).await;
    let env_a = env("a", "a1").await;
    let env_b = env("b", "b1").await;
    trace_into(&env_a, &exporter, Sampling::Always);
    trace_into(&env_b, &exporter, Sampling::Always);
    let (sys_a, dist_a, _) = support::node(env_a.clone(), &[], journal.local_addr()).await;
    let (sys_b, dist_b, _) =
        support::node(env_b.clone(), &[dist_a.local_addr()], journal.local_addr()).await;
    support::all_up(&dist_a, 2).await;
    support::all_up(&dist_b, 2).await;
    let back = sys_b.spawn_with("back", Back, traced()).unwrap();
    dist_b.export(&back).unwrap();
    let remote_back = sys_a
        .resolve::<Back>(&ActorId::new("back", NodeName::new("b1").unwrap()).unwrap())
        .unwrap();
    let front = sys_a
        .spawn_with("front", Front { back: remote_back }, traced())
        .unwrap();

    assert_eq!(front.ask(20, SECOND).await.unwrap(), 41);
    env_a.traces().flush();
    env_b.traces().flush();
    let spans = exporter.get_finished_spans().unwrap();
    let front_span = named(&spans, "Front handle");
    let client = named(&spans, "ask");
    let back_span = named(&spans, "Back handle");
    assert_eq!(
        (front_span.len(), client.len(), back_span.len()),
        (1, 1, 1),
        "{spans:#?}"
    );
    let (front_span, client, back_span) = (front_span[0], client[0], back_span[0]);
    let trace = front_span.span_context.trace_id();
    assert_ne!(trace, TraceId::INVALID);
    assert!(
        [client, back_span]
            .iter()
            .all(|s| s.span_context.trace_id() == trace),
        "one trace across the nodes"
    );
    assert_eq!(
        front_span.parent_span_id,
        SpanId::INVALID,
        "the ask from outside starts it"
    );
    assert_eq!(client.parent_span_id, front_span.span_context.span_id());
    assert_eq!(client.span_kind, SpanKind::Client);
    assert_eq!(back_span.parent_span_id, client.span_context.span_id());
    assert!(
        back_span.parent_span_is_remote,
        "its parent came over the wire"
    );
    assert_eq!(back_span.span_kind, SpanKind::Server);
    assert_eq!(attr(front_span, "plexspaces.node").as_deref(), Some("a1"));
    assert_eq!(attr(back_span, "plexspaces.node").as_deref(), Some("b1"));
    assert_eq!(
        attr(back_span, "plexspaces.source_node").as_deref(),
        Some("a1")
    );
}

#[derive(Default, Serialize, Deserialize)]
struct Ledger(u64);

impl DurableActor for Ledger {
    type Msg = u64;
    type Reply = u64;
    async fn handle(&mut self, _: &mut DurableContext<'_>, n: u64) -> Result<u64, ActorError> {
        self.0 += n;
        Ok(self.0)
    }
}

#[tokio::test]
async fn journal_appends_and_activations_are_traced() {
    let exporter = InMemorySpanExporter::default();
    let env = env("journal", "n1").await;
    trace_into(&env, &exporter, Sampling::Always);
    let system = ActorSystem::new(env.clone());
    let journal = plexspaces::durability::JournalBackend::file(
        &env,
        plexspaces::storage::journal::JournalConfig::default(),
    )
    .await
    .unwrap();
    let ledger = Durable::new(Ledger::default(), journal, DurabilityConfig::default());
    let ledger = system.spawn_with("ledger", ledger, traced()).unwrap();
    assert_eq!(ledger.call("k1", 5, SECOND).await.unwrap(), 5);
    env.traces().flush();
    let spans = exporter.get_finished_spans().unwrap();
    let handle = named(&spans, "Durable<Ledger> handle");
    assert_eq!(handle.len(), 1, "{spans:#?}");
    let appends = named(&spans, "journal.append");
    assert!(!appends.is_empty());
    assert!(
        appends
            .iter()
            .all(|a| a.parent_span_id == handle[0].span_context.span_id()),
        "appends are children of the handler's span"
    );
    assert_eq!(
        attr(appends[0], "plexspaces.journal.backend").as_deref(),
        Some("file")
    );
    assert_eq!(
        named(&spans, "activate").len(),
        1,
        "the activation is its own trace"
    );
}

#[derive(Clone, Copy)]
struct TwoSteps;

impl Workflow for TwoSteps {
    type Input = u64;
    type Output = u64;
    async fn run(&self, ctx: WorkflowContext, n: u64) -> Result<u64, WorkflowError> {
        let a: u64 = ctx
            .step("double", |_| async move { Ok::<_, StepError>(n * 2) })
            .await?;
        let b: u64 = ctx
            .step("inc", |_| async move { Ok::<_, StepError>(a + 1) })
            .await?;
        Ok(b)
    }
}

#[tokio::test]
async fn a_workflows_steps_are_children_of_its_run() {
    let exporter = InMemorySpanExporter::default();
    let env = env("workflow", "n1").await;
    trace_into(&env, &exporter, Sampling::Always);
    let system = ActorSystem::new(env.clone());
    let config = WorkflowConfig::new("twice", plexspaces::durability::JournalBackend::memory());
    let workflows = Workflows::register(&system, config, TwoSteps).unwrap();
    let run = plexspaces::workflow::RunId::new("t1", "r1").unwrap();
    workflows.start(&run, &4).await.unwrap();
    assert_eq!(
        workflows
            .result(&run, Duration::from_secs(5))
            .await
            .unwrap(),
        9
    );
    env.traces().flush();
    let spans = exporter.get_finished_spans().unwrap();
    let runs = named(&spans, "workflow twice");
    assert_eq!(runs.len(), 1, "{spans:#?}");
    let steps = named(&spans, "workflow.step");
    let mut step_names: Vec<String> = steps
        .iter()
        .map(|s| attr(s, "plexspaces.step").unwrap())
        .collect();
    step_names.sort();
    assert_eq!(step_names, ["double", "inc"]);
    for step in &steps {
        assert_eq!(step.parent_span_id, runs[0].span_context.span_id());
        assert_eq!(
            step.span_context.trace_id(),
            runs[0].span_context.trace_id()
        );
        assert_eq!(attr(step, "plexspaces.replayed").as_deref(), Some("false"));
    }
}

/// Waits for an `approve` signal and adds its value.
#[derive(Clone, Copy)]
struct Approval;

impl Workflow for Approval {
    type Input = u64;
    type Output = u64;
    async fn run(&self, ctx: WorkflowContext, n: u64) -> Result<u64, WorkflowError> {
        let extra: Option<u64> = ctx
            .wait_for_signal("approve", Duration::from_secs(30))
            .await?;
        Ok(n + extra.unwrap_or(0))
    }
}

/// A signal sent inside a trace is linked from the run's step that takes
/// it (a link: the signal joins two traces, the sender's and the run's).
#[tokio::test]
async fn a_signal_links_the_step_that_takes_it_to_its_sender() {
    use opentelemetry::trace::TraceContextExt;
    let exporter = InMemorySpanExporter::default();
    let env = env("signal", "n1").await;
    trace_into(&env, &exporter, Sampling::Always);
    let system = ActorSystem::new(env.clone());
    let config = WorkflowConfig::new("approval", plexspaces::durability::JournalBackend::memory());
    let workflows = Workflows::register(&system, config, Approval).unwrap();
    let run = plexspaces::workflow::RunId::new("t1", "a1").unwrap();
    workflows.start(&run, &1).await.unwrap();
    // The sender: a span of its own, current while it signals.
    let sender = env
        .traces()
        .span(
            "approver",
            SpanKind::Internal,
            Vec::new(),
            &opentelemetry::Context::new(),
        )
        .expect("tracing is on");
    let sender_span = sender.span().span_context().clone();
    opentelemetry::context::FutureExt::with_context(
        workflows.signal(&run, "approve", &41u64),
        sender.clone(),
    )
    .await
    .unwrap();
    sender.span().end();
    assert_eq!(
        workflows
            .result(&run, Duration::from_secs(5))
            .await
            .unwrap(),
        42
    );
    env.traces().flush();
    let spans = exporter.get_finished_spans().unwrap();
    let takers: Vec<&SpanData> = named(&spans, "workflow.step")
        .into_iter()
        .filter(|s| attr(s, "plexspaces.step").as_deref() == Some("signal:approve"))
        .collect();
    assert_eq!(takers.len(), 1, "{spans:#?}");
    let links: Vec<_> = takers[0].links.iter().collect();
    assert_eq!(links.len(), 1, "one link, to the sender");
    assert_eq!(links[0].span_context.trace_id(), sender_span.trace_id());
    assert_eq!(links[0].span_context.span_id(), sender_span.span_id());
    assert_ne!(
        takers[0].span_context.trace_id(),
        sender_span.trace_id(),
        "the run keeps its own trace"
    );
}

#[tokio::test]
async fn sampling_follows_the_facet_the_node_and_the_parent() {
    let exporter = InMemorySpanExporter::default();
    let env = env("sampling", "n1").await;
    trace_into(&env, &exporter, Sampling::Always);
    let system = ActorSystem::new(env.clone());
    let never = SpawnOptions {
        facets: vec![Box::new(TracingFacet::new().sampled(Sampling::Never))],
        ..SpawnOptions::default()
    };
    let quiet_back = system.spawn_with("qb", Back, traced()).unwrap();
    let quiet = system
        .spawn_with("quiet", Front { back: quiet_back }, never)
        .unwrap();
    let tenth = SpawnOptions {
        facets: vec![Box::new(TracingFacet::new().sampled(Sampling::Ratio(0.1)))],
        ..SpawnOptions::default()
    };
    let sometimes = system.spawn_with("sometimes", Back, tenth).unwrap();
    for i in 0..2000 {
        quiet.ask(i, SECOND).await.unwrap();
        sometimes.ask(i, SECOND).await.unwrap();
    }
    env.traces().flush();
    let spans = exporter.get_finished_spans().unwrap();
    assert!(
        named(&spans, "Front handle").is_empty() && named(&spans, "ask").is_empty(),
        "never: no root, and no child follows an unsampled parent"
    );
    assert!(
        named(&spans, "Back handle")
            .iter()
            .all(|s| attr(s, "plexspaces.actor").as_deref() == Some("sometimes@n1")),
        "the back actor behind the unsampled front is not traced either"
    );
    let sampled = named(&spans, "Back handle").len();
    assert!(
        (120..=280).contains(&sampled),
        "about a tenth of 2000: {sampled}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_otlp_receiver_gets_the_spans() {
    let env = env("otlp", "n1").await;
    let mut receiver = env
        .net()
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = receiver.local_addr();
    env.traces()
        .install(
            &env,
            TraceConfig {
                service_name: "shop".into(),
                sampling: Sampling::Always,
                exporter: TraceExporter::Otlp {
                    addr,
                    path: "/v1/traces".into(),
                },
            },
        )
        .unwrap();
    let system = ActorSystem::new(env.clone());
    let back = system.spawn_with("back", Back, traced()).unwrap();
    back.ask(1, SECOND).await.unwrap();
    // A kind that names its own service.
    let payments = SpawnOptions {
        facets: vec![Box::new(
            TracingFacet::new()
                .sampled(Sampling::Always)
                .service("payments"),
        )],
        ..SpawnOptions::default()
    };
    let pay = system.spawn_with("pay", Back, payments).unwrap();
    pay.ask(2, SECOND).await.unwrap();
    // The exporter's thread waits for the flush: a worker of its own.
    let traces = env.traces().clone();
    let flushing = env.spawn(async move {
        tokio::task::block_in_place(|| traces.flush());
    });
    // One export per service: the node's, then the kind's own.
    let mut by_service = std::collections::BTreeMap::new();
    for _ in 0..2 {
        let export = plexspaces::seams::Clock::timeout(
            &env,
            Duration::from_secs(10),
            receive_export(&mut receiver),
        )
        .await
        .expect("an export per service (a node that exports all under one never sends two)");
        for resource_spans in export.resource_spans {
            let resource = resource_spans.resource.as_ref().unwrap();
            let service = resource
                .attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .expect("a service name");
            let names: Vec<String> = resource_spans
                .scope_spans
                .iter()
                .flat_map(|s| &s.spans)
                .map(|s| s.name.clone())
                .collect();
            by_service
                .entry(service)
                .or_insert_with(Vec::new)
                .extend(names);
        }
    }
    flushing.await.unwrap();
    let of = |service: &str| {
        by_service
            .iter()
            .find(|(s, _)| s.contains(&format!("\"{service}\"")))
            .map(|(_, names)| names.clone())
            .unwrap_or_default()
    };
    assert_eq!(of("shop"), ["Back handle"], "{by_service:?}");
    assert_eq!(of("payments"), ["Back handle"], "{by_service:?}");
}

/// Reads one OTLP/HTTP request from the next connection to `receiver`,
/// decoded as the protocol says, and answers 200 with an empty protobuf.
async fn receive_export(receiver: &mut plexspaces::net::DynListener) -> ExportTraceServiceRequest {
    let (connection, _) = receiver.accept().await.unwrap();
    let (mut input, mut output) = connection.split();
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    let (head_len, body_len) = loop {
        let n = input.read(&mut buf).await.unwrap();
        assert!(n > 0, "a whole request");
        request.extend_from_slice(&buf[..n]);
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..at]).to_ascii_lowercase();
            assert!(head.starts_with("post /v1/traces http/1.1"), "{head}");
            assert!(
                head.contains("content-type: application/x-protobuf"),
                "{head}"
            );
            let len = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .expect("a content length");
            break (at + 4, len);
        }
    };
    while request.len() < head_len + body_len {
        let n = input.read(&mut buf).await.unwrap();
        assert!(n > 0);
        request.extend_from_slice(&buf[..n]);
    }
    let export = ExportTraceServiceRequest::decode(&request[head_len..head_len + body_len])
        .expect("a valid OTLP trace export");
    output
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        )
        .await
        .unwrap();
    output.flush().await.unwrap();
    export
}

/// Writes a job to its tuple space and takes it back.
struct Worker {
    space: TupleSpace,
}

impl Actor for Worker {
    type Msg = i64;
    type Reply = i64;
    async fn handle(&mut self, _: &mut Context<Self>, n: i64) -> Result<i64, ActorError> {
        self.space
            .write(tuple!["job", n])
            .await
            .map_err(|e| ActorError::new(e.to_string()))?;
        let job = Pattern::new(vec![Field::Exact("job".into()), Field::Typed(Kind::Int)]);
        self.space.take(job).await;
        Ok(n)
    }
}

#[tokio::test]
async fn tuple_space_operations_are_spans_under_the_handler() {
    let exporter = InMemorySpanExporter::default();
    let env = env("tuplespace", "n1").await;
    trace_into(&env, &exporter, Sampling::Always);
    let system = ActorSystem::new(env.clone());
    let space = TupleSpace::new("jobs", env.clone(), TupleSpaceConfig::default());
    // Outside any trace: counted, not traced.
    space.write(tuple!["other", 0]).await.unwrap();
    let worker = system
        .spawn_with(
            "worker",
            Worker {
                space: space.clone(),
            },
            traced(),
        )
        .unwrap();
    assert_eq!(worker.ask(7, SECOND).await.unwrap(), 7);
    env.traces().flush();
    let spans = exporter.get_finished_spans().unwrap();
    let handler = named(&spans, "Worker handle");
    assert_eq!(handler.len(), 1);
    for op in ["tuplespace.write", "tuplespace.take"] {
        let found = named(&spans, op);
        assert_eq!(found.len(), 1, "one {op} span, none for the untraced write");
        assert_eq!(found[0].parent_span_id, handler[0].span_context.span_id());
        assert_eq!(
            found[0].span_context.trace_id(),
            handler[0].span_context.trace_id()
        );
        assert_eq!(
            attr(found[0], "plexspaces.tuplespace.space").as_deref(),
            Some("jobs")
        );
    }
}
