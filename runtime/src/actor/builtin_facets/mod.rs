//! The built-in facets: logging (a `tracing` span and events per
//! message), metrics (per actor and into the node's registry) and tracing
//! (an OpenTelemetry span per message, parented across nodes), and the
//! HTTP client capability (`http_client`).

mod logging;
mod metrics;
mod tracing_facet;

pub use logging::LoggingFacet;
pub use metrics::{LATENCY_BUCKETS_US, MetricsFacet, MetricsHandle, MetricsSnapshot};
pub use tracing_facet::TracingFacet;

use super::facet::{FacetBuilder, FacetDescriptor, FacetRegistry};

/// Registers the built-in facet types.
pub(crate) fn register(registry: &FacetRegistry) {
    let builtins: [(FacetDescriptor, FacetBuilder); 3] = [
        (
            LoggingFacet::descriptor(),
            std::sync::Arc::new(|config| Ok(Box::new(LoggingFacet::from_config(config)?) as _)),
        ),
        (
            MetricsFacet::descriptor(),
            std::sync::Arc::new(|config| Ok(Box::new(MetricsFacet::from_config(config)?.0) as _)),
        ),
        (
            TracingFacet::descriptor(),
            std::sync::Arc::new(|config| Ok(Box::new(TracingFacet::from_config(config)?) as _)),
        ),
    ];
    for (descriptor, build) in builtins {
        let registered = registry.register(descriptor, move |config| build(config));
        debug_assert!(registered.is_ok(), "built-in names are distinct");
    }
    // The HTTP client capability needs nothing but its configuration; the
    // key-value and blob capabilities need a store, so the user registers
    // them with theirs (`KeyValueFacet::register`, `BlobStorageFacet::register`).
    let registered = crate::capabilities::http::HttpClientFacet::register(registry);
    debug_assert!(registered.is_ok(), "built-in names are distinct");
}
