//! The built-in facets: logging (a tracing span and events per message)
//! and metrics (per actor and into the node's registry).

mod metrics;

pub use metrics::{LATENCY_BUCKETS_US, MetricsFacet, MetricsHandle, MetricsSnapshot};

use super::facet::{
    Facet, FacetBuilder, FacetCategory, FacetConfig, FacetConfigError, FacetDescriptor,
    FacetRegistry, Failure, Hook, Message, MessageMeta, Verdict, priority_in,
};
use std::any::Any;
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

