//! How a facet is declared once and made for every actor that needs one
//! (each activation of a virtual actor kind, each workflow run): by
//! registered type name and configuration, or by a function.

use super::{Facet, FacetConfig, FacetConfigError, FacetRegistry};
use std::fmt;
use std::sync::Arc;

/// Makes a facet for the actor of the given name.
pub type FacetFactory = Arc<dyn Fn(&str) -> Box<dyn Facet> + Send + Sync>;

/// A facet declared once, made afresh for each actor it is attached to.
#[derive(Clone)]
pub enum FacetSpec {
    /// A registered type, built by the node's [`FacetRegistry`] from this
    /// configuration (validated when the kind is registered).
    Named {
        /// The registered type's name.
        type_name: String,
        /// Its settings.
        config: FacetConfig,
    },
    /// A function making the facet, given the actor's name.
    Factory(FacetFactory),
}

impl FacetSpec {
    /// A registered type by name.
    pub fn named(type_name: &str, config: FacetConfig) -> Self {
        FacetSpec::Named {
            type_name: type_name.to_string(),
            config,
        }
    }

    /// A facet made by `make` from the actor's name.
    pub fn factory(make: impl Fn(&str) -> Box<dyn Facet> + Send + Sync + 'static) -> Self {
        FacetSpec::Factory(Arc::new(make))
    }

    /// A facet for the actor named `actor`.
    pub fn build(
        &self,
        registry: &FacetRegistry,
        actor: &str,
    ) -> Result<Box<dyn Facet>, FacetConfigError> {
        match self {
            FacetSpec::Named { type_name, config } => registry.build(type_name, config.clone()),
            FacetSpec::Factory(make) => Ok(make(actor)),
        }
    }
}

impl fmt::Debug for FacetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FacetSpec::Named { type_name, config } => f
                .debug_struct("Named")
                .field("type_name", type_name)
                .field("config", config)
                .finish(),
            FacetSpec::Factory(_) => f.write_str("Factory(..)"),
        }
    }
}
