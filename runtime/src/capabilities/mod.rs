//! Capability facets: what an actor reaches the outside world through,
//! so the same actor runs against real services in production and against
//! seeded fakes with faults in the simulator.
//!
//! - [`kv`]: a key-value store (memory, embedded on the journal, Redis,
//!   PostgreSQL) behind the `KeyValueFacet`;
//! - [`http`]: an HTTP client of one service (retries, breaker, TLS,
//!   journaled in durable actors) behind the `HttpClientFacet`, and a
//!   small server for webhooks and fake services;
//! - [`blob`]: blob storage on `object_store` (memory, the `Disk` seam,
//!   S3, GCS, Azure, local files) behind the `BlobStorageFacet`.
//!
//! Each facet confines what it reaches to one tenant and namespace, named
//! in its configuration.

pub mod blob;
pub mod http;
pub mod kv;

use crate::actor::facet::{FacetConfig, FacetConfigError, FacetDescriptor};

/// The `tenant` and `namespace` options every capability facet requires
/// (non-empty), read through `descriptor`, with no other key allowed.
pub(crate) fn tenant_and_namespace(
    descriptor: FacetDescriptor,
    config: FacetConfig,
    facet: &str,
) -> Result<(String, String), FacetConfigError> {
    let mut config = descriptor.validate(config)?;
    let required = |value: Option<String>, key: &str| {
        value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| FacetConfigError::Invalid {
                key: key.to_string(),
                reason: "must not be empty".into(),
            })
    };
    let tenant = required(config.string("tenant")?, "tenant")?;
    let namespace = required(config.string("namespace")?, "namespace")?;
    config.finish(facet)?;
    Ok((tenant, namespace))
}

/// The capabilities' journaled and stored types, for the decoding fuzz
/// target (`encoded_types`).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    kv::encoded_types(v);
    blob::encoded_types(v);
    http::encoded_types(v);
}
