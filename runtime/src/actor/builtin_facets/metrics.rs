//! The metrics facet: per-actor counters read through a handle, the
//! handler latency of the actor's kind in the node's registry (the facet
//! pays for the two clock reads per message that the node-wide counters do
//! without), optionally a series per actor, the user's own metrics, and a
//! push to a Prometheus Pushgateway.

use crate::actor::ActorId;
use crate::actor::facet::{
    ConfigValue, Facet, FacetCategory, FacetConfig, FacetConfigError, FacetDescriptor, FacetOption,
    Failure, Hook, Hooks, MessageMeta, OptionKind, priority_in,
};
use crate::env::Env;
use crate::observability::metrics::{ActorLabel, KindMetrics, label_safe, seconds};
use crate::observability::push::{PushConfig, ensure_pushing};
use crate::observability::sampling::{Sampler, Sampling};
use crate::observability::{MetricError, NodeMetrics};
use crate::seams::LocalRng;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds of the per-actor latency histogram a
/// [`MetricsHandle`] reads, in microseconds (powers of two up to about
/// 1 s; the last bucket holds everything slower).
pub const LATENCY_BUCKETS_US: [u64; 21] = [
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072,
    262144, 524288, 1048576,
];

pub use crate::observability::metrics::PER_ACTOR_SERIES_MAX;

/// Counters a [`MetricsFacet`] keeps; read them through a [`MetricsHandle`].
#[derive(Debug, Default)]
struct Metrics {
    handled: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
    latency: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    mailbox_depth: AtomicU64,
    mailbox_depth_max: AtomicU64,
}

/// Reads a metrics facet's counters from outside the actor.
#[derive(Clone, Debug)]
pub struct MetricsHandle {
    metrics: Arc<Metrics>,
}

/// A point-in-time copy of an actor's metrics.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MetricsSnapshot {
    /// Messages whose handler returned Ok.
    pub handled: u64,
    /// Messages whose handler returned Err.
    pub failed: u64,
    /// Messages a facet rejected before the handler.
    pub rejected: u64,
    /// Handler latency counts per bucket of [`LATENCY_BUCKETS_US`] (plus
    /// one overflow bucket).
    pub latency_buckets: Vec<u64>,
    /// Messages waiting behind the last one handled.
    pub mailbox_depth: u64,
    /// The deepest the mailbox was seen.
    pub mailbox_depth_max: u64,
}

impl MetricsSnapshot {
    /// The upper bound (µs) of the bucket holding the `q` quantile (0..=1).
    pub fn latency_quantile_us(&self, q: f64) -> Option<u64> {
        let total: u64 = self.latency_buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let target = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in self.latency_buckets.iter().enumerate() {
            seen += count;
            if seen >= target {
                return Some(LATENCY_BUCKETS_US.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }

    /// The snapshot as JSON (the design's `json` export for one actor).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl MetricsHandle {
    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let m = &self.metrics;
        MetricsSnapshot {
            handled: m.handled.load(Ordering::Relaxed),
            failed: m.failed.load(Ordering::Relaxed),
            rejected: m.rejected.load(Ordering::Relaxed),
            latency_buckets: m
                .latency
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            mailbox_depth: m.mailbox_depth.load(Ordering::Relaxed),
            mailbox_depth_max: m.mailbox_depth_max.load(Ordering::Relaxed),
        }
    }
}

/// Where the facet records in the node's registry, found once.
#[derive(Debug)]
struct NodeSeries {
    kind: Arc<KindMetrics>,
    /// The actor's own series, when `per_actor` and under the bound.
    by_actor: Option<(ActorLabel, Histogram)>,
}

/// Counts messages, times handlers and watches mailbox depth, for the
/// actor (a [`MetricsHandle`]) and for its kind in the node's registry
/// (`plexspaces_message_handling_seconds{kind}`); lets actor code register
/// its own metrics ([`MetricsFacet::counter`], `gauge`, `histogram`),
/// named `plexspaces_<namespace>_<name>`.
///
/// Handler latency is a sample: reading the clock twice costs about as
/// much as handling a small message (some 70 ns on a virtual machine), so
/// the facet times a random share of messages, [`Self::LATENCY_SAMPLING`]
/// by default (`always` to time every one). The histograms' `_count` is
/// then the sample's size; the message counts are exact.
///
/// Configuration (`FacetConfig` or the registry's `metrics` type):
/// `priority` (800-899), `latency_sampling` (`always`, `never` or a ratio;
/// default one in 32), `per_actor` (a latency series labelled with the
/// actor id; off by default, at most [`PER_ACTOR_SERIES_MAX`] per node),
/// `namespace` (of custom metrics, default `custom`), `push_url` and
/// `push_interval` (push the node's registry to a Pushgateway, see
/// [`crate::observability::push`]).
#[derive(Debug)]
pub struct MetricsFacet {
    priority: i32,
    metrics: Arc<Metrics>,
    per_actor: bool,
    namespace: String,
    push: Option<PushConfig>,
    latency_sampling: Sampling,
    /// Decides which handlers are timed, once attached (seeded from the
    /// node's `Rng` seam, so a simulation replays its choices).
    sampler: Option<Sampler>,
    /// The node's registry, once attached.
    node: Option<NodeMetrics>,
    series: Option<NodeSeries>,
}

impl MetricsFacet {
    /// Default priority: the metrics band (800-899).
    pub const PRIORITY: i32 = 850;

    /// The share of handlers timed unless configured: one in 32.
    pub const LATENCY_SAMPLING: Sampling = Sampling::Ratio(1.0 / 32.0);

    /// A metrics facet and the handle to read it.
    pub fn new() -> (Self, MetricsHandle) {
        let metrics = Arc::new(Metrics::default());
        (
            MetricsFacet {
                priority: Self::PRIORITY,
                metrics: metrics.clone(),
                per_actor: false,
                namespace: "custom".to_string(),
                push: None,
                latency_sampling: Self::LATENCY_SAMPLING,
                sampler: None,
                node: None,
                series: None,
            },
            MetricsHandle { metrics },
        )
    }

    /// Adds a latency series labelled with the actor's id (bounded by
    /// [`PER_ACTOR_SERIES_MAX`] per node).
    pub fn per_actor(mut self) -> Self {
        self.per_actor = true;
        self
    }

    /// Times the share of handlers `sampling` says (`Sampling::Always`:
    /// every one).
    pub fn latency_sampling(mut self, sampling: Sampling) -> Self {
        self.latency_sampling = sampling;
        self
    }

    /// Names the user's metrics `plexspaces_<namespace>_<name>`.
    pub fn namespace(mut self, namespace: &str) -> Result<Self, MetricError> {
        if !crate::observability::metrics::valid_name(namespace) {
            return Err(MetricError::InvalidName(namespace.to_string()));
        }
        self.namespace = namespace.to_string();
        Ok(self)
    }

    /// Pushes the node's registry as `push` says, from attachment on
    /// (one pusher per node and URL, however many facets ask).
    pub fn push_to(mut self, push: PushConfig) -> Self {
        self.push = Some(push);
        self
    }

    /// The registry's description of the type.
    pub fn descriptor() -> FacetDescriptor {
        FacetDescriptor::new(
            "metrics",
            FacetCategory::Metrics,
            "counts messages, failures and rejections, times handlers into the node's registry, \
             watches mailbox depth, holds the actor's own metrics, pushes to a Pushgateway",
        )
        .priority_option(Self::PRIORITY)
        .option(
            FacetOption::new(
                "latency_sampling",
                OptionKind::Str,
                "always, never or the ratio of handlers timed (default 0.03125, one in 32)",
            )
            .default_value(ConfigValue::Str("0.03125".into())),
        )
        .option(
            FacetOption::new(
                "per_actor",
                OptionKind::Bool,
                "a latency series labelled with the actor id",
            )
            .default_value(ConfigValue::Bool(false)),
        )
        .option(
            FacetOption::new(
                "namespace",
                OptionKind::Str,
                "the prefix of the actor's own metrics after plexspaces_",
            )
            .default_value(ConfigValue::Str("custom".into())),
        )
        .option(FacetOption::new(
            "push_url",
            OptionKind::Str,
            "a Pushgateway URL, http://IP:PORT/metrics/job/NAME (no push if absent)",
        ))
        .option(FacetOption::new(
            "push_interval",
            OptionKind::Duration,
            "how often to push (default 15s)",
        ))
    }

    /// Builds from configuration (see the type's documentation).
    pub fn from_config(mut config: FacetConfig) -> Result<(Self, MetricsHandle), FacetConfigError> {
        let priority = priority_in(&mut config, Self::PRIORITY, FacetCategory::Metrics.band())?;
        let per_actor = config.bool("per_actor")?.unwrap_or(false);
        let latency_sampling = match config.string("latency_sampling")? {
            Some(text) => Sampling::parse(&text).map_err(|reason| FacetConfigError::Invalid {
                key: "latency_sampling".into(),
                reason,
            })?,
            None => Self::LATENCY_SAMPLING,
        };
        let namespace = config.string("namespace")?;
        let push_url = config.string("push_url")?;
        let push_interval = config.duration("push_interval")?;
        config.finish("metrics")?;
        let (mut facet, handle) = Self::new();
        facet.priority = priority;
        facet.per_actor = per_actor;
        facet.latency_sampling = latency_sampling;
        if let Some(namespace) = namespace {
            facet = facet
                .namespace(&namespace)
                .map_err(|e| FacetConfigError::Invalid {
                    key: "namespace".into(),
                    reason: e.to_string(),
                })?;
        }
        if let Some(url) = push_url {
            let mut push = PushConfig::parse(&url).map_err(|reason| FacetConfigError::Invalid {
                key: "push_url".into(),
                reason,
            })?;
            if let Some(interval) = push_interval {
                if interval.is_zero() {
                    return Err(FacetConfigError::Invalid {
                        key: "push_interval".into(),
                        reason: "must be longer than zero".into(),
                    });
                }
                push.interval = interval;
            }
            facet.push = Some(push);
        }
        Ok((facet, handle))
    }

    /// A handle to read this facet's counters (also for a facet attached
    /// by type name: reach it with `ctx.facet::<MetricsFacet>()` or
    /// `ActorRef::with_facet`).
    pub fn handle(&self) -> MetricsHandle {
        MetricsHandle {
            metrics: self.metrics.clone(),
        }
    }

    fn registry(&self) -> Result<&NodeMetrics, MetricError> {
        self.node.as_ref().ok_or(MetricError::Unattached)
    }

    fn custom_name(&self, name: &str) -> String {
        format!("{}_{name}", self.namespace)
    }

    /// A counter of the actor's own, `plexspaces_<namespace>_<name>_total`,
    /// shared by every actor that registers the same name on this node.
    pub fn counter(&self, name: &str, help: &str) -> Result<Counter, MetricError> {
        self.registry()?.counter(&self.custom_name(name), help)
    }

    /// A gauge of the actor's own, `plexspaces_<namespace>_<name>`.
    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge, MetricError> {
        self.registry()?.gauge(&self.custom_name(name), help)
    }

    /// A histogram of the actor's own with `buckets` (latency buckets in
    /// seconds if empty), `plexspaces_<namespace>_<name>`.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
    ) -> Result<Histogram, MetricError> {
        self.registry()?
            .histogram(&self.custom_name(name), help, buckets)
    }

    fn count_latency(&self, elapsed: Duration) {
        // Bucket counts are read-modify-write: only sampled messages get
        // here.
        let micros = elapsed.as_micros() as u64;
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.metrics.latency[bucket].fetch_add(1, Ordering::Relaxed);
        if let Some(series) = &self.series {
            let secs = seconds(elapsed);
            series.kind.handling.observe(secs);
            if let Some((_, by_actor)) = &series.by_actor {
                by_actor.observe(secs);
            }
        }
    }

    /// Notes the mailbox's depth behind the message in hand, and finds the
    /// node's series on the first message.
    fn saw(&mut self, meta: &MessageMeta<'_>) {
        self.series_for(meta);
        // The actor's task is the only writer: plain stores, no atomic
        // read-modify-write per message.
        let depth = meta.mailbox_len as u64;
        self.metrics.mailbox_depth.store(depth, Ordering::Relaxed);
        if depth > self.metrics.mailbox_depth_max.load(Ordering::Relaxed) {
            self.metrics
                .mailbox_depth_max
                .store(depth, Ordering::Relaxed);
        }
    }

    /// Finds the node's series on the first message (the facet learns the
    /// actor's kind from the message's meta).
    fn series_for(&mut self, meta: &MessageMeta<'_>) {
        if self.series.is_some() {
            return;
        }
        let Some(node) = &self.node else { return };
        let by_actor = self.per_actor.then(|| {
            let label = ActorLabel {
                kind: meta.kind.to_string(),
                actor: label_safe(&meta.actor.to_string()),
            };
            match node.actors().actor_series(&label) {
                Some(series) => Some((label, series)),
                None => {
                    tracing::warn!(
                        actor = %meta.actor,
                        "per-actor metrics bound ({PER_ACTOR_SERIES_MAX}) reached: counted in its kind only"
                    );
                    None
                }
            }
        });
        self.series = Some(NodeSeries {
            kind: node.kind(meta.kind),
            by_actor: by_actor.flatten(),
        });
    }
}

impl Facet for MetricsFacet {
    fn name(&self) -> &str {
        "metrics"
    }

    fn priority(&self) -> i32 {
        self.priority
    }

    fn on_node(&mut self, env: &Env) {
        self.node = Some(env.metrics().clone());
        self.sampler = Some(Sampler::new(self.latency_sampling, LocalRng::from_rng(env)));
        if let Some(push) = &self.push {
            ensure_pushing(env, push.clone());
        }
    }

    fn on_detach(&mut self, _actor: &ActorId) {
        // The actor's own series goes with it: cardinality follows the
        // live actors, not every actor that ever ran.
        if let (Some(node), Some(series)) = (&self.node, &self.series)
            && let Some((label, _)) = &series.by_actor
        {
            node.actors().drop_actor_series(label);
        }
        self.series = None;
    }

    fn hooks(&self) -> Hooks {
        // No `before`: what it would see (the mailbox's depth) the meta of
        // `after` and `on_error` carries too.
        Hooks::AFTER.with(Hooks::ON_ERROR).with(Hooks::TIMES)
    }

    fn times(&mut self) -> bool {
        self.sampler.as_mut().is_some_and(Sampler::admit)
    }

    fn after<'a>(
        &'a mut self,
        meta: &MessageMeta<'_>,
        _reply: &(dyn Any + Send),
        elapsed: Option<Duration>,
    ) -> Hook<'a> {
        self.saw(meta);
        bump(&self.metrics.handled);
        if let Some(elapsed) = elapsed {
            self.count_latency(elapsed);
        }
        Hook::done()
    }

    fn on_error<'a>(
        &'a mut self,
        meta: &MessageMeta<'_>,
        failure: &Failure<'_>,
        elapsed: Option<Duration>,
    ) -> Hook<'a> {
        self.saw(meta);
        if let Failure::Rejected { .. } = failure {
            bump(&self.metrics.rejected);
        } else {
            bump(&self.metrics.failed);
            if let Some(elapsed) = elapsed {
                self.count_latency(elapsed);
            }
        }
        Hook::done()
    }
}

/// Adds one to a counter only the actor's task writes (readers on other
/// threads see each store whole; no atomic read-modify-write needed).
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}
