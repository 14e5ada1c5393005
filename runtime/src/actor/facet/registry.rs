//! The facet types a node knows by name: each registered with a
//! descriptor (name, category, description, typed options with defaults
//! and required keys) and a builder, so deployments attach facets by
//! configuration and users add their own types beside the built-in ones.

use super::Facet;
use super::config::{ConfigValue, FacetConfig, FacetConfigError, parse_duration};
use plexspaces_storage::sync::LockExt;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};

/// What a facet is for, and so where in the chain it belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FacetCategory {
    /// Authentication, authorization, rate limits: first (1000 and up).
    Security,
    /// Logging and tracing (900-999).
    Observability,
    /// Metrics (800-899).
    Metrics,
    /// Application logic: events, fraud checks, mobility (100-500).
    Domain,
    /// Persistence (1-99): last before the handler.
    Persistence,
}

impl FacetCategory {
    /// The design's priority band for the category.
    pub fn band(self) -> RangeInclusive<i32> {
        match self {
            FacetCategory::Security => 1000..=1999,
            FacetCategory::Observability => 900..=999,
            FacetCategory::Metrics => 800..=899,
            FacetCategory::Domain => 100..=500,
            FacetCategory::Persistence => 1..=99,
        }
    }
}

/// The type of an option's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionKind {
    /// true or false.
    Bool,
    /// A whole number.
    Int,
    /// Text.
    Str,
    /// A length of time (`"250ms"` in JSON or TOML).
    Duration,
}

impl OptionKind {
    fn expected(self) -> &'static str {
        match self {
            OptionKind::Bool => "a bool",
            OptionKind::Int => "an integer",
            OptionKind::Str => "a string",
            OptionKind::Duration => "a duration such as \"250ms\"",
        }
    }

    /// `value` as this kind, if it is one (a duration may be written as a
    /// string).
    fn admit(self, value: &ConfigValue) -> Option<ConfigValue> {
        match (self, value) {
            (OptionKind::Bool, ConfigValue::Bool(_))
            | (OptionKind::Int, ConfigValue::Int(_))
            | (OptionKind::Str, ConfigValue::Str(_))
            | (OptionKind::Duration, ConfigValue::Duration(_)) => Some(value.clone()),
            (OptionKind::Duration, ConfigValue::Str(s)) => {
                parse_duration(s).map(ConfigValue::Duration)
            }
            _ => None,
        }
    }
}

/// One option a facet type takes.
#[derive(Clone, Debug, PartialEq)]
pub struct FacetOption {
    /// Its key.
    pub key: String,
    /// Its type.
    pub kind: OptionKind,
    /// The value used when the key is absent.
    pub default: Option<ConfigValue>,
    /// Whether the key must be given.
    pub required: bool,
    /// What it does.
    pub description: String,
}

impl FacetOption {
    /// An optional key without a default.
    pub fn new(key: &str, kind: OptionKind, description: &str) -> Self {
        FacetOption {
            key: key.to_string(),
            kind,
            default: None,
            required: false,
            description: description.to_string(),
        }
    }

    /// The value used when the key is absent.
    pub fn default_value(mut self, value: ConfigValue) -> Self {
        debug_assert!(
            self.kind.admit(&value).is_some(),
            "a default must have its option's type"
        );
        self.default = Some(value);
        self
    }

    /// The key must be given.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
}

/// A facet type as the registry lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct FacetDescriptor {
    /// The type's name, used to attach it.
    pub name: String,
    /// What it is for.
    pub category: FacetCategory,
    /// What it does.
    pub description: String,
    /// The options it takes.
    pub options: Vec<FacetOption>,
}

impl FacetDescriptor {
    /// A descriptor without options.
    pub fn new(name: &str, category: FacetCategory, description: &str) -> Self {
        FacetDescriptor {
            name: name.to_string(),
            category,
            description: description.to_string(),
            options: Vec::new(),
        }
    }

    /// Adds an option.
    pub fn option(mut self, option: FacetOption) -> Self {
        self.options.push(option);
        self
    }

    /// The common `priority` option: an integer within the category's
    /// band, defaulting to `default`.
    pub fn priority_option(self, default: i32) -> Self {
        debug_assert!(self.category.band().contains(&default));
        let band = self.category.band();
        self.option(
            FacetOption::new(
                "priority",
                OptionKind::Int,
                &format!(
                    "where it runs in the chain ({}..={}, higher first)",
                    band.start(),
                    band.end()
                ),
            )
            .default_value(ConfigValue::Int(i64::from(default))),
        )
    }

    /// Checks `config` against the options: no unknown key, every value of
    /// its option's type, every required key present; absent keys take
    /// their defaults.
    pub fn validate(&self, mut config: FacetConfig) -> Result<FacetConfig, FacetConfigError> {
        if let Some(key) = config
            .keys()
            .find(|key| !self.options.iter().any(|o| o.key == *key))
        {
            return Err(FacetConfigError::UnknownKey {
                facet: self.name.clone(),
                key: key.to_string(),
            });
        }
        for option in &self.options {
            match config.raw(&option.key) {
                Some(value) => match option.kind.admit(value) {
                    Some(admitted) => config.set(&option.key, admitted),
                    None => {
                        return Err(FacetConfigError::WrongType {
                            key: option.key.clone(),
                            expected: option.kind.expected().to_string(),
                        });
                    }
                },
                None if option.required => {
                    return Err(FacetConfigError::MissingKey {
                        facet: self.name.clone(),
                        key: option.key.clone(),
                    });
                }
                None => {
                    if let Some(default) = &option.default {
                        config.set(&option.key, default.clone());
                    }
                }
            }
        }
        Ok(config)
    }
}

/// Reads the `priority` option within `band` (as a descriptor's
/// [`priority_option`](FacetDescriptor::priority_option) declares it).
pub fn priority_in(
    config: &mut FacetConfig,
    default: i32,
    band: RangeInclusive<i32>,
) -> Result<i32, FacetConfigError> {
    match config.int("priority")? {
        None => Ok(default),
        Some(p) => match i32::try_from(p) {
            Ok(p) if band.contains(&p) => Ok(p),
            _ => Err(FacetConfigError::Invalid {
                key: "priority".to_string(),
                reason: format!("{p} is outside {band:?}"),
            }),
        },
    }
}

/// Builds a facet from a validated configuration.
pub type FacetBuilder =
    Arc<dyn Fn(FacetConfig) -> Result<Box<dyn Facet>, FacetConfigError> + Send + Sync>;

/// The facet types a node knows by name ([`ActorSystem::facet_types`](crate::actor::ActorSystem::facet_types)).
#[derive(Default)]
pub struct FacetRegistry {
    types: Mutex<BTreeMap<String, (FacetDescriptor, FacetBuilder)>>,
}

/// The most facet types one registry holds.
pub const MAX_FACET_TYPES: usize = 1024;

impl FacetRegistry {
    /// A registry with the built-in facets (`logging`, `metrics`,
    /// `tracing`, `http_client`).
    pub fn with_builtins() -> Self {
        let registry = Self::default();
        crate::actor::builtin_facets::register(&registry);
        registry
    }

    /// Registers a facet type. Refused if its name is taken (built-in
    /// names included) or the registry is full.
    pub fn register(
        &self,
        descriptor: FacetDescriptor,
        build: impl Fn(FacetConfig) -> Result<Box<dyn Facet>, FacetConfigError> + Send + Sync + 'static,
    ) -> Result<(), FacetConfigError> {
        let mut types = self.types.locked();
        if types.contains_key(&descriptor.name) || types.len() >= MAX_FACET_TYPES {
            return Err(FacetConfigError::AlreadyRegistered(descriptor.name));
        }
        types.insert(descriptor.name.clone(), (descriptor, Arc::new(build)));
        Ok(())
    }

    /// Builds a facet of type `name` from `config`, validated against the
    /// type's descriptor first.
    pub fn build(
        &self,
        name: &str,
        config: FacetConfig,
    ) -> Result<Box<dyn Facet>, FacetConfigError> {
        let (descriptor, build) = self
            .types
            .locked()
            .get(name)
            .map(|(d, b)| (d.clone(), b.clone()))
            .ok_or_else(|| FacetConfigError::UnknownFacet(name.to_string()))?;
        // Built outside the lock: a builder may consult the registry.
        build(descriptor.validate(config)?)
    }

    /// Builds from a JSON object of settings.
    pub fn build_json(&self, name: &str, json: &str) -> Result<Box<dyn Facet>, FacetConfigError> {
        self.build(name, FacetConfig::from_json(json)?)
    }

    /// Builds from a TOML table of settings.
    pub fn build_toml(&self, name: &str, toml: &str) -> Result<Box<dyn Facet>, FacetConfigError> {
        self.build(name, FacetConfig::from_toml(toml)?)
    }

    /// The descriptor of type `name`.
    pub fn descriptor(&self, name: &str) -> Option<FacetDescriptor> {
        self.types.locked().get(name).map(|(d, _)| d.clone())
    }

    /// Every registered type, sorted by name.
    pub fn descriptors(&self) -> Vec<FacetDescriptor> {
        self.types
            .locked()
            .values()
            .map(|(d, _)| d.clone())
            .collect()
    }

    /// The registered type names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.types.locked().keys().cloned().collect()
    }
}
