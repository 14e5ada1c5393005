//! The tracing facet: an OpenTelemetry span per message, parented by the
//! trace context the message carried (from another actor, another node,
//! or a workflow), current while the handler runs so the asks it makes
//! carry the trace on. Needs the node's tracer
//! ([`crate::observability::NodeTraces::install`]); without one it does
//! nothing.

use crate::actor::facet::{
    Facet, FacetCategory, FacetConfig, FacetConfigError, FacetDescriptor, FacetOption, Failure,
    Hook, Hooks, Message, MessageMeta, OptionKind, Verdict, priority_in,
};
use crate::env::Env;
use crate::observability::NodeTraces;
use crate::observability::sampling::Sampler;
use crate::observability::service_split::SERVICE_ATTRIBUTE;
use crate::observability::trace_scope::{HandlerTrace, UnsampledTrace};
use crate::observability::traces::{Sampling, parent_from};
use crate::seams::LocalRng;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use std::any::Any;
use std::time::Duration;

/// A span per message.
///
/// Configuration: `priority` (900-999), `sampler` (`always`, `never` or a
/// ratio such as `0.01`: how traces *starting* at this actor kind are
/// sampled; a message that carries a trace follows its decision; the
/// node's sampler if absent), `service_name` (the `service.name` its spans
/// are exported under with the node's OTLP exporter, recorded on them as
/// `plexspaces.service`; the node's own service name if absent).
///
/// A trace starting here is decided before anything is built: a dropped
/// root costs one draw from a generator the facet owns (seeded from the
/// node's `Rng` seam), no ids, no span and no context; what its handler
/// sends carries a `traceparent` flagged not sampled (ids drawn then), so
/// the actors it calls drop the trace too.
#[derive(Debug)]
pub struct TracingFacet {
    priority: i32,
    sampling: Option<Sampling>,
    service_name: Option<String>,
    traces: Option<NodeTraces>,
    /// Decides roots, once the node's tracing is on.
    sampler: Option<Sampler>,
    /// The span of the message in hand.
    current: Option<Context>,
    /// The message in hand runs in a trace that is not sampled.
    unsampled: Option<UnsampledTrace>,
    /// The span name of the actor's kind, interned once.
    span_name: Option<&'static str>,
}

impl TracingFacet {
    /// Default priority: the logging and tracing band (900-999), ahead of
    /// the logging facet so its lines carry the new trace id.
    pub const PRIORITY: i32 = 960;

    /// A tracing facet sampling as the node does.
    pub fn new() -> Self {
        TracingFacet {
            priority: Self::PRIORITY,
            sampling: None,
            service_name: None,
            traces: None,
            sampler: None,
            current: None,
            unsampled: None,
            span_name: None,
        }
    }

    /// Samples traces starting here as `sampling` says.
    pub fn sampled(mut self, sampling: Sampling) -> Self {
        self.sampling = Some(sampling);
        self
    }

    /// Names the service on this actor's spans.
    pub fn service(mut self, name: &str) -> Self {
        self.service_name = Some(name.to_string());
        self
    }

    /// The registry's description of the type.
    pub fn descriptor() -> FacetDescriptor {
        FacetDescriptor::new(
            "tracing",
            FacetCategory::Observability,
            "an OpenTelemetry span per message, parented across actors and nodes",
        )
        .priority_option(Self::PRIORITY)
        .option(FacetOption::new(
            "sampler",
            OptionKind::Str,
            "always, never or a ratio in 0..=1 for traces starting here (default: the node's)",
        ))
        .option(FacetOption::new(
            "service_name",
            OptionKind::Str,
            "the service named on this actor's spans",
        ))
    }

    /// Builds from configuration (see the type's documentation).
    pub fn from_config(mut config: FacetConfig) -> Result<Self, FacetConfigError> {
        let priority = priority_in(
            &mut config,
            Self::PRIORITY,
            FacetCategory::Observability.band(),
        )?;
        let sampling = match config.string("sampler")? {
            Some(text) => {
                Some(
                    Sampling::parse(&text).map_err(|reason| FacetConfigError::Invalid {
                        key: "sampler".into(),
                        reason,
                    })?,
                )
            }
            None => None,
        };
        let service_name = config.string("service_name")?;
        config.finish("tracing")?;
        let mut facet = Self::new();
        facet.priority = priority;
        facet.sampling = sampling;
        facet.service_name = service_name;
        Ok(facet)
    }

    fn end(&mut self, error: Option<String>) {
        if let Some(cx) = self.current.take() {
            let span = cx.span();
            if let Some(error) = error {
                span.set_status(Status::error(error));
            }
            span.end();
        }
    }
}

/// `"<kind> handle"`, interned: a span name is `'static` or allocated
/// per span, and kinds are few (one per actor type).
fn span_name(kind: &str) -> &'static str {
    static NAMES: std::sync::Mutex<std::collections::BTreeMap<String, &'static str>> =
        std::sync::Mutex::new(std::collections::BTreeMap::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(name) = names.get(kind) {
        return name;
    }
    // Bounded by the program's actor types; past a generous bound, one
    // shared name (never an unbounded leak).
    if names.len() >= 4096 {
        return "actor handle";
    }
    let name: &'static str = Box::leak(format!("{kind} handle").into_boxed_str());
    names.insert(kind.to_string(), name);
    name
}

impl Default for TracingFacet {
    fn default() -> Self {
        Self::new()
    }
}

impl Facet for TracingFacet {
    fn name(&self) -> &str {
        "tracing"
    }

    fn priority(&self) -> i32 {
        self.priority
    }

    fn on_node(&mut self, env: &Env) {
        self.traces = Some(env.traces().clone());
    }

    fn before<'a>(&'a mut self, msg: &Message<'_>) -> Hook<'a, Verdict> {
        // A span left open by a message whose after hook never ran (a
        // facet before this one answered) ends now.
        self.end(None);
        self.unsampled = None;
        let Some(traces) = self.traces.as_ref().filter(|t| t.is_on()) else {
            return Hook::proceed();
        };
        let meta = &msg.meta;
        let kind = if meta.is_ask {
            SpanKind::Server
        } else {
            SpanKind::Consumer
        };
        let name = *self.span_name.get_or_insert_with(|| span_name(meta.kind));
        let service = self.service_name.as_deref();
        let attributes = || {
            let mut attributes = vec![
                KeyValue::new("plexspaces.actor", meta.actor.to_string()),
                KeyValue::new("plexspaces.kind", meta.kind.to_string()),
                KeyValue::new("plexspaces.correlation", meta.correlation as i64),
                KeyValue::new("plexspaces.node", meta.env.node().to_string()),
            ];
            if let Some(source) = meta.source_node {
                attributes.push(KeyValue::new("plexspaces.source_node", source.to_string()));
            }
            if let Some(tenant) = &meta.headers.tenant {
                attributes.push(KeyValue::new("plexspaces.tenant", tenant.clone()));
            }
            if let Some(service) = service {
                attributes.push(KeyValue::new(SERVICE_ATTRIBUTE, service.to_string()));
            }
            attributes
        };
        // A message that carries a valid trace follows its decision.
        if let Some(header) = meta.headers.trace.as_deref() {
            let parent = parent_from(Some(header));
            let carried = parent.span().span_context().clone();
            if carried.is_valid() {
                if carried.is_sampled() {
                    self.current = traces.span_with(name, kind, Vec::new(), &parent, attributes);
                } else {
                    self.unsampled = Some(UnsampledTrace::carried(&carried));
                }
                return Hook::proceed();
            }
        }
        // A root: decided here, before any id is drawn.
        let sampling = self.sampling.unwrap_or_else(|| traces.root_sampling());
        let sampler = self
            .sampler
            .get_or_insert_with(|| Sampler::new(sampling, LocalRng::from_rng(meta.env)));
        if sampler.admit() {
            self.current = traces.admitted_root(name, kind, attributes());
        } else {
            self.unsampled = Some(UnsampledTrace::root());
        }
        Hook::proceed()
    }

    fn hooks(&self) -> Hooks {
        // Not timed: the SDK times its spans itself.
        Hooks::BEFORE
            .with(Hooks::AFTER)
            .with(Hooks::ON_ERROR)
            .with(Hooks::TRACE)
    }

    fn after<'a>(
        &'a mut self,
        _meta: &MessageMeta<'_>,
        _reply: &(dyn Any + Send),
        _elapsed: Option<Duration>,
    ) -> Hook<'a> {
        self.end(None);
        Hook::done()
    }

    fn on_error<'a>(
        &'a mut self,
        _meta: &MessageMeta<'_>,
        failure: &Failure<'_>,
        _elapsed: Option<Duration>,
    ) -> Hook<'a> {
        self.end(Some(format!("{failure:?}")));
        Hook::done()
    }

    fn trace_context(&self) -> Option<HandlerTrace> {
        // Unsampled too: what the handler sends carries the decision on,
        // so the actors it calls do not start traces of their own.
        match (&self.current, self.unsampled) {
            (Some(cx), _) => Some(HandlerTrace::Context(cx.clone())),
            (None, Some(unsampled)) => Some(HandlerTrace::Unsampled(unsampled)),
            (None, None) => None,
        }
    }
}
