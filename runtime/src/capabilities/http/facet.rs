//! The facet an actor reaches an HTTP service through.

use super::client::HttpClient;
use super::config::HttpClientConfig;
use crate::actor::facet::{
    Facet, FacetConfig, FacetConfigError, FacetDescriptor, FacetRegistry, Hooks,
};
use crate::env::Env;
use plexspaces_storage::sync::LockExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Its name in the chain and the registry.
pub const HTTP_FACET: &str = "http_client";

/// An HTTP client of one service, attached to an actor. The client is
/// built on the actor's node when the facet is attached; take it with
/// [`HttpClientFacet::client`] (cheap to clone) and call through it, in a
/// durable handler through [`HttpClient::send_durable`].
pub struct HttpClientFacet {
    config: HttpClientConfig,
    /// Clients already built, by configuration: actors of one kind on one
    /// node share connections, breaker and metrics.
    shared: Arc<Mutex<BTreeMap<String, HttpClient>>>,
    client: Option<HttpClient>,
}

impl HttpClientFacet {
    /// A client of the service `config` names, built when attached.
    pub fn new(config: HttpClientConfig) -> Self {
        HttpClientFacet {
            config,
            shared: Arc::default(),
            client: None,
        }
    }

    /// What it is, for the registry.
    pub fn descriptor() -> FacetDescriptor {
        HttpClientConfig::descriptor(HTTP_FACET)
    }

    /// Registers [`HTTP_FACET`] on `registry`: actor kinds attach it by
    /// configuration (`base_url = "http://10.0.0.5:8080"`, ...). Facets
    /// built from the same configuration on one node share one client.
    pub fn register(registry: &FacetRegistry) -> Result<(), FacetConfigError> {
        let shared: Arc<Mutex<BTreeMap<String, HttpClient>>> = Arc::default();
        registry.register(Self::descriptor(), move |config| {
            let config = HttpClientConfig::from_facet_config(HTTP_FACET, config)?;
            Ok(Box::new(HttpClientFacet {
                config,
                shared: shared.clone(),
                client: None,
            }) as Box<dyn Facet>)
        })
    }

    /// Builds one from configuration (a client of its own).
    pub fn from_config(config: FacetConfig) -> Result<Self, FacetConfigError> {
        Ok(Self::new(HttpClientConfig::from_facet_config(
            HTTP_FACET, config,
        )?))
    }

    /// The client, once attached to an actor (`None` before, or if its
    /// TLS configuration was refused: the reason is logged at attach).
    pub fn client(&self) -> Option<HttpClient> {
        self.client.clone()
    }
}

impl Facet for HttpClientFacet {
    fn name(&self) -> &str {
        HTTP_FACET
    }

    fn priority(&self) -> i32 {
        // A capability with no per-message hook: its place costs nothing.
        100
    }

    fn hooks(&self) -> Hooks {
        Hooks::NONE
    }

    fn on_node(&mut self, env: &Env) {
        let key = format!("{:?}", self.config);
        let mut shared = self.shared.locked();
        if let Some(client) = shared.get(&key) {
            self.client = Some(client.clone());
            return;
        }
        match HttpClient::new(env, self.config.clone()) {
            Ok(client) => {
                shared.insert(key, client.clone());
                self.client = Some(client);
            }
            Err(e) => tracing::error!(client = %self.config.name, "HTTP client not built: {e}"),
        }
    }
}
