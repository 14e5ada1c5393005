//! The built-in facets: logging (a tracing span and events per message)
//! and metrics (message count, handler latency histogram, mailbox depth).

use super::facet::{
    Facet, FacetBuilder, FacetCategory, FacetConfig, FacetConfigError, FacetDescriptor,
    FacetRegistry, Failure, Hook, Message, MessageMeta, Verdict, priority_in,
};
use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Logs each message: runs its handler in a `tracing` span carrying the
/// actor id and correlation id, and emits an event per message with the
/// outcome and latency.
#[derive(Debug)]
pub struct LoggingFacet {
    priority: i32,
}

impl LoggingFacet {
    /// Default priority: the logging band (900-999).
    pub const PRIORITY: i32 = 950;

    /// A logging facet at the default priority.
    pub fn new() -> Self {
        LoggingFacet {
            priority: Self::PRIORITY,
        }
    }

    /// The registry's description of the type.
    pub fn descriptor() -> FacetDescriptor {
        FacetDescriptor::new(
            "logging",
            FacetCategory::Observability,
            "a tracing span per message and an event with its outcome and latency",
        )
        .priority_option(Self::PRIORITY)
    }

    /// Builds from configuration: `priority` (900 to 999).
    pub fn from_config(mut config: FacetConfig) -> Result<Self, FacetConfigError> {
        let priority = priority_in(
            &mut config,
            Self::PRIORITY,
            FacetCategory::Observability.band(),
        )?;
        config.finish("logging")?;
        Ok(LoggingFacet { priority })
    }
}

impl Default for LoggingFacet {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers the built-in facet types.
pub(crate) fn register(registry: &FacetRegistry) {
    let builtins: [(FacetDescriptor, FacetBuilder); 2] = [
        (
            LoggingFacet::descriptor(),
            std::sync::Arc::new(|config| Ok(Box::new(LoggingFacet::from_config(config)?) as _)),
        ),
        (
            MetricsFacet::descriptor(),
            std::sync::Arc::new(|config| Ok(Box::new(MetricsFacet::from_config(config)?.0) as _)),
        ),
    ];
    for (descriptor, build) in builtins {
        let registered = registry.register(descriptor, move |config| build(config));
        debug_assert!(registered.is_ok(), "built-in names are distinct");
    }
}

impl Facet for LoggingFacet {
    fn name(&self) -> &str {
        "logging"
    }

    fn priority(&self) -> i32 {
        self.priority
    }

    fn before<'a>(&'a mut self, msg: &Message<'_>) -> Hook<'a, Verdict> {
        let meta = &msg.meta;
        tracing::debug!(actor = %meta.actor, correlation = meta.correlation, msg = meta.msg_type, "message received");
        Hook::proceed()
    }

    fn after<'a>(
        &'a mut self,
        meta: &MessageMeta<'_>,
        _reply: &(dyn Any + Send),
        elapsed: Duration,
    ) -> Hook<'a> {
        tracing::debug!(
            actor = %meta.actor,
            correlation = meta.correlation,
            elapsed_us = elapsed.as_micros() as u64,
            "message handled"
        );
        Hook::done()
    }

    fn on_error<'a>(
        &'a mut self,
        meta: &MessageMeta<'_>,
        failure: &Failure<'_>,
        elapsed: Duration,
    ) -> Hook<'a> {
        tracing::warn!(
            actor = %meta.actor,
            correlation = meta.correlation,
            elapsed_us = elapsed.as_micros() as u64,
            ?failure,
            "message failed"
        );
        Hook::done()
    }

    fn wants_span(&self) -> bool {
        true
    }
}

/// Bucket upper bounds of the latency histogram, in microseconds (powers of
/// two up to about 1 s; the last bucket holds everything slower).
pub const LATENCY_BUCKETS_US: [u64; 21] = [
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072,
    262144, 524288, 1048576,
];

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
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// Counts messages, times handlers and watches mailbox depth.
#[derive(Debug)]
pub struct MetricsFacet {
    priority: i32,
    metrics: Arc<Metrics>,
}

impl MetricsFacet {
    /// Default priority: the metrics band (800-899).
    pub const PRIORITY: i32 = 850;

    /// A metrics facet and the handle to read it.
    pub fn new() -> (Self, MetricsHandle) {
        let metrics = Arc::new(Metrics::default());
        (
            MetricsFacet {
                priority: Self::PRIORITY,
                metrics: metrics.clone(),
            },
            MetricsHandle { metrics },
        )
    }

    /// The registry's description of the type.
    pub fn descriptor() -> FacetDescriptor {
        FacetDescriptor::new(
            "metrics",
            FacetCategory::Metrics,
            "counts messages, failures and rejections, times handlers, watches mailbox depth",
        )
        .priority_option(Self::PRIORITY)
    }

    /// Builds from configuration: `priority` (800 to 899).
    pub fn from_config(mut config: FacetConfig) -> Result<(Self, MetricsHandle), FacetConfigError> {
        let priority = priority_in(&mut config, Self::PRIORITY, FacetCategory::Metrics.band())?;
        config.finish("metrics")?;
        let (mut facet, handle) = Self::new();
        facet.priority = priority;
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

    fn count_latency(&self, elapsed: Duration) {
        let micros = elapsed.as_micros() as u64;
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.metrics.latency[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

impl Facet for MetricsFacet {
    fn name(&self) -> &str {
        "metrics"
    }

    fn priority(&self) -> i32 {
        self.priority
    }

    fn before<'a>(&'a mut self, msg: &Message<'_>) -> Hook<'a, Verdict> {
        let depth = msg.meta.mailbox_len as u64;
        self.metrics.mailbox_depth.store(depth, Ordering::Relaxed);
        self.metrics
            .mailbox_depth_max
            .fetch_max(depth, Ordering::Relaxed);
        Hook::proceed()
    }

    fn after<'a>(
        &'a mut self,
        _meta: &MessageMeta<'_>,
        _reply: &(dyn Any + Send),
        elapsed: Duration,
    ) -> Hook<'a> {
        self.metrics.handled.fetch_add(1, Ordering::Relaxed);
        self.count_latency(elapsed);
        Hook::done()
    }

    fn on_error<'a>(
        &'a mut self,
        _meta: &MessageMeta<'_>,
        failure: &Failure<'_>,
        elapsed: Duration,
    ) -> Hook<'a> {
        if let Failure::Rejected { .. } = failure {
            self.metrics.rejected.fetch_add(1, Ordering::Relaxed);
        } else {
            self.metrics.failed.fetch_add(1, Ordering::Relaxed);
            self.count_latency(elapsed);
        }
        Hook::done()
    }
}
