//! Spans exported under the service their actor kind names: a tracing
//! facet's `service_name` becomes the `service.name` of the resource its
//! spans are exported with. OpenTelemetry gives a resource per exporter,
//! so the node keeps one exporter per service, made on first use (at most
//! [`SERVICES_MAX`]; spans of services past the bound go out under the
//! node's own).

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use plexspaces_storage::sync::LockExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The span attribute naming the service a span belongs to (set by a
/// tracing facet with a `service_name`).
pub const SERVICE_ATTRIBUTE: &str = "plexspaces.service";

/// Most services a node exports under names of their own.
pub const SERVICES_MAX: usize = 64;

/// Makes one more exporter like the node's (`None` if it cannot).
pub(crate) type MakeExporter<E> = Box<dyn Fn() -> Option<E> + Send + Sync>;

/// Splits each batch by [`SERVICE_ATTRIBUTE`] and exports each part with
/// an exporter whose resource names that service.
pub(crate) struct ServiceSplit<E> {
    make: MakeExporter<E>,
    node: Arc<E>,
    /// The node's resource, as the provider set it.
    resource: Option<Resource>,
    services: Mutex<BTreeMap<String, Arc<E>>>,
}

impl<E> std::fmt::Debug for ServiceSplit<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceSplit")
            .field("services", &self.services.locked().len())
            .finish()
    }
}

impl<E: SpanExporter + 'static> ServiceSplit<E> {
    /// Exports the node's spans with `node` and each service's with one
    /// more exporter from `make`.
    pub(crate) fn new(node: E, make: MakeExporter<E>) -> Self {
        ServiceSplit {
            make,
            node: Arc::new(node),
            resource: None,
            services: Mutex::new(BTreeMap::new()),
        }
    }

    /// The exporter of `service`: made (with its resource) on first use.
    fn exporter_for(&self, service: &str) -> Arc<E> {
        let mut services = self.services.locked();
        if let Some(exporter) = services.get(service) {
            return exporter.clone();
        }
        if services.len() >= SERVICES_MAX {
            return self.node.clone();
        }
        let Some(mut exporter) = (self.make)() else {
            return self.node.clone();
        };
        let attributes = self
            .resource
            .iter()
            .flat_map(|r| r.iter())
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()));
        let resource = Resource::builder_empty()
            .with_attributes(attributes)
            .with_service_name(service.to_string())
            .build();
        exporter.set_resource(&resource);
        let exporter = Arc::new(exporter);
        services.insert(service.to_string(), exporter.clone());
        debug_assert!(services.len() <= SERVICES_MAX, "services are bounded");
        exporter
    }

    fn every(&self) -> Vec<Arc<E>> {
        let mut all: Vec<Arc<E>> = self.services.locked().values().cloned().collect();
        all.push(self.node.clone());
        all
    }
}

/// The service `span` names, if any.
fn service_of(span: &SpanData) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == SERVICE_ATTRIBUTE)
        .map(|kv| kv.value.to_string())
}

impl<E: SpanExporter + 'static> SpanExporter for ServiceSplit<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut parts: BTreeMap<Option<String>, Vec<SpanData>> = BTreeMap::new();
        for span in batch {
            parts.entry(service_of(&span)).or_default().push(span);
        }
        let mut outcome = Ok(());
        for (service, spans) in parts {
            let exporter = match service {
                Some(service) => self.exporter_for(&service),
                None => self.node.clone(),
            };
            // Every part is tried; the first failure is reported.
            if let Err(e) = exporter.export(spans).await
                && outcome.is_ok()
            {
                outcome = Err(e);
            }
        }
        outcome
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        first_failure(
            self.every()
                .iter()
                .map(|e| e.shutdown_with_timeout(timeout)),
        )
    }

    fn force_flush(&self) -> OTelSdkResult {
        first_failure(self.every().iter().map(|e| e.force_flush()))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = Some(resource.clone());
        if let Some(node) = Arc::get_mut(&mut self.node) {
            node.set_resource(resource);
        }
    }
}

/// Runs every outcome (none is skipped) and reports the first failure.
fn first_failure(outcomes: impl Iterator<Item = OTelSdkResult>) -> OTelSdkResult {
    let mut first = Ok(());
    for outcome in outcomes {
        if first.is_ok() {
            first = outcome;
        }
    }
    first
}
