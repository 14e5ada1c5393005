//! Traces on OpenTelemetry: one tracer provider per node, installed with
//! [`NodeTraces::install`] (off until then, and then free of cost for code
//! that is not traced).
//!
//! What is traced: message handling by actors with a
//! [`TracingFacet`](crate::actor::builtin_facets::TracingFacet) (a server
//! span per message, parented by the trace context the message carried),
//! the caller's side of an ask made while a span is current (a client
//! span, whose W3C `traceparent` rides in the message's headers, over the
//! wire when the target is remote), journal appends and tuple space
//! operations made under a span, activations of durable actors, workflow
//! runs and each of their steps (replayed steps marked
//! `plexspaces.replayed`; the step that takes a signal sent inside a
//! trace links to its sender's span).
//!
//! Determinism: trace and span ids come from the node's `Rng` seam, so a
//! simulated run's wire bytes replay from its seed. The OTLP exporter's
//! HTTP client is ours, on the node's `Net` seam; its batch processor runs
//! a thread of the SDK's, so simulations use the in-memory exporter (or
//! none) through [`NodeTraces::install_provider`].
//!
//! Sampling: parent-based. A span with a parent follows the parent's
//! decision; a root span is sampled by the node's [`Sampling`], unless the
//! span carries the [`SAMPLING_RATIO_ATTRIBUTE`] (a tracing facet's own
//! ratio for its actor kind). The decision for a ratio is a function of
//! the trace id, so every node agrees on it.

use crate::env::Env;
use crate::seams::Rng;
use bytes::Bytes;
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    IdGenerator, SamplingDecision, SamplingResult, SdkTracer, SdkTracerProvider, ShouldSample,
    TracerProviderBuilder,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

/// The span attribute by which a span asks for its own root sampling
/// ratio (a float in 0..=1), overriding the node's.
pub const SAMPLING_RATIO_ATTRIBUTE: &str = "plexspaces.sampling.ratio";

pub use super::sampling::Sampling;
use super::sampling::admits_bits;

/// Where a node's spans go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceExporter {
    /// OTLP over HTTP (protobuf) to a collector, Jaeger or Zipkin's OTLP
    /// endpoint, through the node's `Net` seam, in batches.
    Otlp {
        /// The collector's address (an IP: the seam resolves no names).
        addr: SocketAddr,
        /// Its traces path (`/v1/traces` for an OpenTelemetry collector,
        /// Jaeger and Zipkin alike).
        path: String,
    },
    /// Each span printed to stdout as it ends (development).
    Console,
}

/// A node's tracing configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceConfig {
    /// The `service.name` of the node's spans.
    pub service_name: String,
    /// Root sampling.
    pub sampling: Sampling,
    /// Where spans go.
    pub exporter: TraceExporter,
}

/// Why tracing could not be installed.
#[derive(Debug)]
pub enum TraceError {
    /// The node has a tracer already.
    AlreadyInstalled,
    /// The exporter could not be built.
    Exporter(String),
}

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TraceError::AlreadyInstalled => write!(f, "this node's tracing is installed already"),
            TraceError::Exporter(e) => write!(f, "the trace exporter: {e}"),
        }
    }
}

impl std::error::Error for TraceError {}

struct Installed {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    /// How traces starting on this node are sampled.
    root: Sampling,
}

/// A node's tracer, once installed. Cheap to clone; clones share it.
#[derive(Clone, Default)]
pub struct NodeTraces {
    installed: Arc<OnceLock<Installed>>,
}

impl std::fmt::Debug for NodeTraces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTraces")
            .field("on", &self.is_on())
            .finish()
    }
}

impl NodeTraces {
    /// Installs the node's tracer as `config` says.
    pub fn install(&self, env: &Env, config: TraceConfig) -> Result<(), TraceError> {
        use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
        let builder = Self::provider_builder(env, config.sampling).with_resource(
            opentelemetry_sdk::Resource::builder_empty()
                .with_service_name(config.service_name.clone())
                .build(),
        );
        let builder = match &config.exporter {
            TraceExporter::Otlp { addr, path } => {
                let (env, endpoint) = (env.clone(), format!("http://{addr}{path}"));
                let make = move || {
                    opentelemetry_otlp::SpanExporter::builder()
                        .with_http()
                        .with_http_client(SeamHttpClient::new(&env))
                        .with_endpoint(endpoint.clone())
                        .build()
                };
                let node = make().map_err(|e| TraceError::Exporter(e.to_string()))?;
                // Each kind's service name its own resource.
                let split =
                    super::service_split::ServiceSplit::new(node, Box::new(move || make().ok()));
                builder.with_batch_exporter(split)
            }
            TraceExporter::Console => builder.with_simple_exporter(ConsoleExporter),
        };
        self.install_provider(builder.build(), config.sampling)
    }

    /// A provider builder with the node's sampler and seam-drawn ids; add
    /// an exporter (the SDK's in-memory one in tests and simulations) and
    /// pass the provider to [`NodeTraces::install_provider`] with the same
    /// `sampling`.
    pub fn provider_builder(env: &Env, sampling: Sampling) -> TracerProviderBuilder {
        SdkTracerProvider::builder()
            .with_sampler(NodeSampler { root: sampling })
            .with_id_generator(SeamIds {
                rng: env.rng_handle(),
            })
    }

    /// Installs `provider` as the node's; `root` is the sampling its
    /// builder was given (tracing facets without a sampler of their own
    /// decide by it before any span is built).
    pub fn install_provider(
        &self,
        provider: SdkTracerProvider,
        root: Sampling,
    ) -> Result<(), TraceError> {
        let tracer = provider.tracer("plexspaces");
        self.installed
            .set(Installed {
                provider,
                tracer,
                root,
            })
            .map_err(|_| TraceError::AlreadyInstalled)
    }

    /// How traces starting on this node are sampled (never, while tracing
    /// is off).
    pub fn root_sampling(&self) -> Sampling {
        self.installed.get().map_or(Sampling::Never, |i| i.root)
    }

    /// Whether the node traces at all.
    pub fn is_on(&self) -> bool {
        self.installed.get().is_some()
    }

    /// The node's tracer, once installed.
    pub fn tracer(&self) -> Option<&SdkTracer> {
        self.installed.get().map(|i| &i.tracer)
    }

    /// Exports every ended span now (before a test reads its exporter, or
    /// before the process exits).
    pub fn flush(&self) {
        if let Some(installed) = self.installed.get() {
            let _ = installed.provider.force_flush();
        }
    }

    /// A span named `name` as a child of the current span: `None` when
    /// tracing is off or no sampled span is current (journal appends and
    /// tuple space operations are traced only inside a trace).
    pub fn child_span(
        &self,
        name: &'static str,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
    ) -> Option<Context> {
        let tracer = self.tracer()?;
        let parent = Context::current();
        if !parent.span().span_context().is_sampled() {
            return None;
        }
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        Some(parent.with_span(span))
    }

    /// A span named `name`, child of `parent` (a root if `parent` has no
    /// span), sampled as the module says.
    pub fn span(
        &self,
        name: impl Into<std::borrow::Cow<'static, str>>,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
        parent: &Context,
    ) -> Option<Context> {
        self.span_with(name, kind, Vec::new(), parent, || attributes)
    }

    /// [`NodeTraces::span`] that builds its attributes only if the span
    /// is sampled (`sampling` holds what the sampler must see, such as
    /// [`SAMPLING_RATIO_ATTRIBUTE`]): an unsampled span costs its ids and
    /// no allocation of attributes.
    pub fn span_with(
        &self,
        name: impl Into<std::borrow::Cow<'static, str>>,
        kind: SpanKind,
        sampling: Vec<KeyValue>,
        parent: &Context,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Option<Context> {
        use opentelemetry::trace::Span;
        let tracer = self.tracer()?;
        let mut span = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(sampling)
            .start_with_context(tracer, parent);
        if span.is_recording() {
            span.set_attributes(attributes());
        }
        Some(parent.with_span(span))
    }
}

impl NodeTraces {
    /// A root span whose sampling its caller decided already (a tracing
    /// facet's [`Sampler`](super::sampling::Sampler) admitted it): recorded
    /// whatever the node's root ratio.
    pub(crate) fn admitted_root(
        &self,
        name: &'static str,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
    ) -> Option<Context> {
        let tracer = self.tracer()?;
        ROOT_ADMITTED.with(|admitted| admitted.set(true));
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(tracer, &Context::new());
        ROOT_ADMITTED.with(|admitted| admitted.set(false));
        Some(Context::new().with_span(span))
    }
}

thread_local! {
    /// Set while [`NodeTraces::admitted_root`] starts its span: the
    /// sampler records that root without deciding again.
    static ROOT_ADMITTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The W3C `traceparent` of `cx`'s span, if it has a valid one.
pub fn traceparent(cx: &Context) -> Option<String> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| traceparent_of(sc))
}

/// The W3C `traceparent` of the current span, if one is current and
/// sampled (what a message sent now should link or parent to).
pub fn current_traceparent() -> Option<String> {
    Context::map_current(|cx| {
        let span = cx.span();
        let sc = span.span_context();
        (sc.is_valid() && sc.is_sampled()).then(|| traceparent_of(sc))
    })
}

/// The W3C `traceparent` (version 00) of a valid span context: what the
/// SDK's propagator writes, without its map.
pub(crate) fn traceparent_of(sc: &opentelemetry::trace::SpanContext) -> String {
    debug_assert!(sc.is_valid(), "a traceparent names a valid span");
    let flags = sc.trace_flags() & opentelemetry::trace::TraceFlags::SAMPLED;
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        flags.to_u8()
    )
}

/// The remote parent a `traceparent` names (an empty context if it is
/// malformed: a bad header starts a new trace, it never fails a message).
pub fn parent_from(traceparent: Option<&str>) -> Context {
    use opentelemetry::propagation::TextMapPropagator;
    let Some(value) = traceparent else {
        return Context::new();
    };
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(1);
    carrier.insert("traceparent".to_string(), value.to_string());
    TraceContextPropagator::new().extract(&carrier)
}

/// Parent-based sampling with a per-span root ratio (see the module).
#[derive(Clone, Debug)]
struct NodeSampler {
    root: Sampling,
}

impl ShouldSample for NodeSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        _name: &str,
        _span_kind: &SpanKind,
        attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        let parent = parent_context
            .map(|cx| cx.span().span_context().clone())
            .filter(|sc| sc.is_valid());
        let sampled = match &parent {
            Some(parent) => parent.is_sampled(),
            None if ROOT_ADMITTED.with(std::cell::Cell::get) => true,
            None => {
                let ratio = attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == SAMPLING_RATIO_ATTRIBUTE)
                    .and_then(|kv| match &kv.value {
                        opentelemetry::Value::F64(r) => Some(*r),
                        _ => None,
                    })
                    .unwrap_or_else(|| self.root.ratio());
                ratio_admits(trace_id, ratio)
            }
        };
        SamplingResult {
            decision: if sampled {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            },
            attributes: Vec::new(),
            trace_state: parent.map(|p| p.trace_state().clone()).unwrap_or_default(),
        }
    }
}

/// Whether `ratio` admits `trace_id`: its low 63 bits against the ratio,
/// as OpenTelemetry's ratio sampler does, so nodes agree.
fn ratio_admits(trace_id: TraceId, ratio: f64) -> bool {
    let bytes = trace_id.to_bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[8..]);
    admits_bits(u64::from_be_bytes(low), ratio)
}

/// Trace and span ids drawn from the node's `Rng` seam.
#[derive(Clone)]
struct SeamIds {
    rng: Arc<dyn Rng>,
}

impl std::fmt::Debug for SeamIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeamIds")
    }
}

impl IdGenerator for SeamIds {
    fn new_trace_id(&self) -> TraceId {
        let high = self.rng.next_u64() as u128;
        let low = self.rng.next_u64() as u128;
        // Zero is the invalid id: never produce it.
        TraceId::from((high << 64 | low).max(1))
    }

    fn new_span_id(&self) -> opentelemetry::trace::SpanId {
        opentelemetry::trace::SpanId::from(self.rng.next_u64().max(1))
    }
}

/// OTLP's HTTP client: one request per connection, over the node's `Net`
/// seam, run as a task of the node (the exporter's thread only waits).
struct SeamHttpClient {
    env: Env,
}

impl SeamHttpClient {
    fn new(env: &Env) -> Self {
        SeamHttpClient { env: env.clone() }
    }
}

impl std::fmt::Debug for SeamHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeamHttpClient")
    }
}

impl opentelemetry_http::HttpClient for SeamHttpClient {
    // The trait is declared with `async_trait`: this is the signature it
    // expands to.
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: hyper::Request<Bytes>,
    ) -> futures::future::BoxFuture<
        'async_trait,
        Result<hyper::Response<Bytes>, opentelemetry_http::HttpError>,
    >
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let env = self.env.clone();
        let sent = self
            .env
            .spawn(async move { super::http_client::send(&env, request).await });
        Box::pin(async move {
            match sent.await {
                Ok(result) => result.map_err(Into::into),
                Err(e) => Err(format!("the export task ended: {e}").into()),
            }
        })
    }
}

/// Prints each span as it ends (the `console` exporter).
#[derive(Debug)]
struct ConsoleExporter;

impl opentelemetry_sdk::trace::SpanExporter for ConsoleExporter {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        for span in batch {
            let attributes: Vec<String> = span
                .attributes
                .iter()
                .map(|kv| format!("{}={}", kv.key, kv.value))
                .collect();
            println!(
                "span {} trace={} id={} parent={} {:?} [{}]",
                span.name,
                span.span_context.trace_id(),
                span.span_context.span_id(),
                span.parent_span_id,
                span.status,
                attributes.join(" ")
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_decided_by_trace_id_alike_everywhere() {
        let id = |n: u128| TraceId::from(n);
        assert!(ratio_admits(id(7), 1.0));
        assert!(!ratio_admits(id(7), 0.0));
        let admitted = (1..=10_000u128)
            .filter(|n| {
                ratio_admits(
                    id(n.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)),
                    0.1,
                )
            })
            .count();
        assert!(
            (800..1200).contains(&admitted),
            "{admitted} of 10000 at 0.1"
        );
    }

    #[test]
    fn traceparents_round_trip_and_garbage_starts_afresh() {
        let parent = parent_from(Some(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ));
        let sc = parent.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_sampled() && sc.is_remote());
        assert_eq!(
            traceparent(&parent).as_deref(),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        for bad in [
            "",
            "junk",
            "00-zz-yy-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert!(
                !parent_from(Some(bad)).span().span_context().is_valid(),
                "{bad}"
            );
        }
        assert_eq!(traceparent(&Context::new()), None);
    }
}
