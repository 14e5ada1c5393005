//! Facets: capabilities attached to an actor at runtime, run around each
//! message in priority order (highest first), as the design's interceptor
//! chain shows: security (1000+), logging and tracing (900-999), metrics
//! (800-899), domain (100-500), persistence (1-99).
//!
//! A facet sees every message before the handler (and may reject it) and
//! after it (observing the outcome, including the reply as `&dyn Any`).

use super::ActorId;
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// What a facet knows about a message.
#[derive(Clone, Debug)]
pub struct MessageMeta<'a> {
    /// The actor handling it.
    pub actor: &'a ActorId,
    /// The message's correlation id (unique per actor).
    pub correlation: u64,
    /// The message type's name.
    pub msg_type: &'static str,
    /// Messages still waiting in the mailbox behind this one.
    pub mailbox_len: usize,
    /// Whether the sender waits for a reply (`ask`).
    pub is_ask: bool,
}

/// How a message ended.
pub enum Outcome<'a> {
    /// The handler returned this reply.
    Replied(&'a (dyn Any + Send)),
    /// The handler returned an error.
    Failed(&'a super::ActorError),
}

/// A facet refused a message; the sender of an `ask` gets this as the error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection(pub String);

/// A capability attached to an actor.
pub trait Facet: Send + 'static {
    /// The facet's name, unique on one actor.
    fn name(&self) -> &str;

    /// Where it runs in the chain: higher first.
    fn priority(&self) -> i32;

    /// Called once when attached to `actor`.
    fn on_attach(&mut self, actor: &ActorId) {
        let _ = actor;
    }

    /// Called once when detached, or when the actor stops.
    fn on_detach(&mut self, actor: &ActorId) {
        let _ = actor;
    }

    /// Runs before the handler; `Err` rejects the message.
    fn before(&mut self, meta: &MessageMeta<'_>) -> Result<(), Rejection> {
        let _ = meta;
        Ok(())
    }

    /// Called on every other facet when facet `by` rejected a message.
    fn on_rejected(&mut self, meta: &MessageMeta<'_>, by: &str) {
        let _ = (meta, by);
    }

    /// Runs after the handler, in the same chain order.
    fn after(&mut self, meta: &MessageMeta<'_>, outcome: &Outcome<'_>, elapsed: Duration) {
        let _ = (meta, outcome, elapsed);
    }

    /// Whether the handler should run inside a tracing span (one per
    /// message, with the actor id and correlation id).
    fn wants_span(&self) -> bool {
        false
    }
}

/// A facet's name and priority, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FacetInfo {
    /// Its name.
    pub name: String,
    /// Its priority.
    pub priority: i32,
}

/// Why a facet could not be attached.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FacetError {
    /// A facet of this name is already attached to the actor (names are
    /// unique per actor: detach the old one first).
    NameTaken {
        /// The actor.
        actor: ActorId,
        /// The facet's name.
        name: String,
    },
    /// The actor has stopped.
    Stopped(ActorId),
    /// Facets are attached on the actor's own node, not through a remote
    /// ref.
    Remote(ActorId),
}

impl std::fmt::Display for FacetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FacetError::NameTaken { actor, name } => {
                write!(f, "a facet named {name:?} is already attached to {actor}")
            }
            FacetError::Stopped(actor) => write!(f, "{actor} has stopped"),
            FacetError::Remote(actor) => write!(
                f,
                "{actor} is on another node: facets are attached on the actor's own node"
            ),
        }
    }
}

impl std::error::Error for FacetError {}

/// An actor's facets, kept in the order they run.
#[derive(Default)]
pub(crate) struct FacetChain {
    facets: Vec<Box<dyn Facet>>,
}

impl FacetChain {
    pub(crate) fn attach(
        &mut self,
        actor: &ActorId,
        mut facet: Box<dyn Facet>,
    ) -> Result<(), FacetError> {
        if self.facets.iter().any(|f| f.name() == facet.name()) {
            return Err(FacetError::NameTaken {
                actor: actor.clone(),
                name: facet.name().to_string(),
            });
        }
        facet.on_attach(actor);
        let at = self
            .facets
            .iter()
            .position(|f| f.priority() < facet.priority())
            .unwrap_or(self.facets.len());
        self.facets.insert(at, facet);
        Ok(())
    }

    pub(crate) fn detach(&mut self, actor: &ActorId, name: &str) -> bool {
        match self.facets.iter().position(|f| f.name() == name) {
            Some(at) => {
                self.facets.remove(at).on_detach(actor);
                true
            }
            None => false,
        }
    }

    pub(crate) fn detach_all(&mut self, actor: &ActorId) {
        for mut facet in self.facets.drain(..) {
            facet.on_detach(actor);
        }
    }

    pub(crate) fn list(&self) -> Vec<FacetInfo> {
        self.facets
            .iter()
            .map(|f| FacetInfo {
                name: f.name().to_string(),
                priority: f.priority(),
            })
            .collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.facets.is_empty()
    }

    pub(crate) fn wants_span(&self) -> bool {
        self.facets.iter().any(|f| f.wants_span())
    }

    pub(crate) fn before(&mut self, meta: &MessageMeta<'_>) -> Result<(), Rejection> {
        let refused = self
            .facets
            .iter_mut()
            .enumerate()
            .find_map(|(i, facet)| facet.before(meta).err().map(|r| (i, r)));
        let Some((at, Rejection(why))) = refused else {
            return Ok(());
        };
        let by = self.facets[at].name().to_string();
        for (i, facet) in self.facets.iter_mut().enumerate() {
            if i != at {
                facet.on_rejected(meta, &by);
            }
        }
        Err(Rejection(format!("{by}: {why}")))
    }

    pub(crate) fn after(
        &mut self,
        meta: &MessageMeta<'_>,
        outcome: &Outcome<'_>,
        elapsed: Duration,
    ) {
        for facet in &mut self.facets {
            facet.after(meta, outcome, elapsed);
        }
    }
}

/// A typed configuration value.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    /// true or false.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// Text.
    Str(String),
    /// A length of time.
    Duration(Duration),
}

/// A facet's configuration: named, typed values. Each facet reads what it
/// knows with the typed getters, and [`FacetConfig::finish`] refuses any key
/// it did not read, so a typo is an error, not a silently ignored setting.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct FacetConfig {
    values: BTreeMap<String, ConfigValue>,
    read: std::collections::BTreeSet<String>,
}

/// A configuration was refused when the facet was built.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FacetConfigError {
    /// No facet type of that name is registered.
    UnknownFacet(String),
    /// A key the facet does not know.
    UnknownKey {
        /// The facet type.
        facet: String,
        /// The key.
        key: String,
    },
    /// A value of the wrong type.
    WrongType {
        /// The key.
        key: String,
        /// The type expected.
        expected: &'static str,
    },
    /// A value out of its range.
    Invalid {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for FacetConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FacetConfigError::UnknownFacet(name) => write!(f, "no facet type named {name:?}"),
            FacetConfigError::UnknownKey { facet, key } => {
                write!(f, "facet {facet:?} has no setting {key:?}")
            }
            FacetConfigError::WrongType { key, expected } => {
                write!(f, "setting {key:?} must be {expected}")
            }
            FacetConfigError::Invalid { key, reason } => write!(f, "setting {key:?}: {reason}"),
        }
    }
}

impl std::error::Error for FacetConfigError {}

impl FacetConfig {
    /// An empty configuration (every setting at its default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a setting.
    pub fn with(mut self, key: &str, value: ConfigValue) -> Self {
        self.values.insert(key.to_string(), value);
        self
    }

    fn get(&mut self, key: &str) -> Option<&ConfigValue> {
        self.read.insert(key.to_string());
        self.values.get(key)
    }

    fn wrong(key: &str, expected: &'static str) -> FacetConfigError {
        FacetConfigError::WrongType {
            key: key.to_string(),
            expected,
        }
    }

    /// A string setting, if present.
    pub fn string(&mut self, key: &str) -> Result<Option<String>, FacetConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(ConfigValue::Str(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Self::wrong(key, "a string")),
        }
    }

    /// A duration setting, if present.
    pub fn duration(&mut self, key: &str) -> Result<Option<Duration>, FacetConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(ConfigValue::Duration(d)) => Ok(Some(*d)),
            Some(_) => Err(Self::wrong(key, "a duration")),
        }
    }

    /// An integer setting, if present.
    pub fn int(&mut self, key: &str) -> Result<Option<i64>, FacetConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(ConfigValue::Int(n)) => Ok(Some(*n)),
            Some(_) => Err(Self::wrong(key, "an integer")),
        }
    }

    /// A bool setting, if present.
    pub fn bool(&mut self, key: &str) -> Result<Option<bool>, FacetConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(ConfigValue::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Self::wrong(key, "a bool")),
        }
    }

    /// Refuses any setting that was never read.
    pub fn finish(self, facet: &str) -> Result<(), FacetConfigError> {
        match self.values.keys().find(|k| !self.read.contains(*k)) {
            Some(key) => Err(FacetConfigError::UnknownKey {
                facet: facet.to_string(),
                key: key.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// Builds facets by type name from a [`FacetConfig`], so deployments can
/// attach facets by configuration.
type FacetBuilder = fn(FacetConfig) -> Result<Box<dyn Facet>, FacetConfigError>;

/// The facet types known by name.
#[derive(Clone, Default)]
pub struct FacetRegistry {
    builders: BTreeMap<String, FacetBuilder>,
}

impl FacetRegistry {
    /// A registry with the built-in facets (`logging`, `metrics`).
    pub fn with_builtins() -> Self {
        let mut registry = Self::default();
        registry.register(
            "logging",
            super::builtin_facets::LoggingFacet::from_config_boxed,
        );
        registry.register(
            "metrics",
            super::builtin_facets::MetricsFacet::from_config_boxed,
        );
        registry
    }

    /// Registers a facet type under `name`.
    pub fn register(&mut self, name: &str, build: FacetBuilder) {
        self.builders.insert(name.to_string(), build);
    }

    /// Builds a facet of type `name` from `config`, validating it.
    pub fn build(
        &self,
        name: &str,
        config: FacetConfig,
    ) -> Result<Box<dyn Facet>, FacetConfigError> {
        let build = self
            .builders
            .get(name)
            .ok_or_else(|| FacetConfigError::UnknownFacet(name.to_string()))?;
        build(config)
    }

    /// The registered type names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.builders.keys().map(String::as_str).collect()
    }
}
