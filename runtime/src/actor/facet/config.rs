//! A facet's configuration: named, typed values, written in code or read
//! from JSON or TOML, and checked against the facet type's descriptor.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// A typed configuration value.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ConfigValue {
    /// true or false.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// Text.
    Str(String),
    /// A length of time (written `"250ms"`, `"2s"`, `"5m"` or `"1h"` in
    /// JSON and TOML).
    Duration(Duration),
}

/// A facet's configuration. Each facet reads what it knows with the typed
/// getters; [`FacetConfig::finish`] refuses any key it did not read, and
/// the [`FacetRegistry`](super::FacetRegistry) checks every key against
/// the type's descriptor first, so a typo is an error, not a silently
/// ignored setting.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct FacetConfig {
    values: BTreeMap<String, ConfigValue>,
    #[serde(skip)]
    read: BTreeSet<String>,
}

/// A configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// A required key is missing.
    MissingKey {
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
        expected: String,
    },
    /// A value out of its range.
    Invalid {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The JSON or TOML text could not be read as a table of settings.
    Parse {
        /// "JSON" or "TOML".
        format: String,
        /// What the parser said.
        reason: String,
    },
    /// A facet type of that name is registered already.
    AlreadyRegistered(String),
}

impl fmt::Display for FacetConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FacetConfigError::UnknownFacet(name) => write!(f, "no facet type named {name:?}"),
            FacetConfigError::UnknownKey { facet, key } => {
                write!(f, "facet {facet:?} has no setting {key:?}")
            }
            FacetConfigError::MissingKey { facet, key } => {
                write!(f, "facet {facet:?} requires the setting {key:?}")
            }
            FacetConfigError::WrongType { key, expected } => {
                write!(f, "setting {key:?} must be {expected}")
            }
            FacetConfigError::Invalid { key, reason } => write!(f, "setting {key:?}: {reason}"),
            FacetConfigError::Parse { format, reason } => {
                write!(f, "facet configuration is not a {format} table: {reason}")
            }
            FacetConfigError::AlreadyRegistered(name) => {
                write!(f, "a facet type named {name:?} is registered already")
            }
        }
    }
}

impl std::error::Error for FacetConfigError {}

/// Reads `"250ms"`, `"2s"`, `"5m"`, `"1h"` (a whole number and a unit).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

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

    /// Reads a JSON object of settings: booleans, integers and strings
    /// (a duration is a string such as `"250ms"`; the descriptor says
    /// which keys are durations).
    pub fn from_json(text: &str) -> Result<Self, FacetConfigError> {
        let parse = |reason: String| FacetConfigError::Parse {
            format: "JSON".into(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| parse(e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(parse("the top level must be an object".into()));
        };
        let mut config = FacetConfig::new();
        for (key, value) in map {
            let value = match value {
                serde_json::Value::Bool(b) => ConfigValue::Bool(b),
                serde_json::Value::String(s) => ConfigValue::Str(s),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(n) => ConfigValue::Int(n),
                    None => {
                        return Err(FacetConfigError::WrongType {
                            key,
                            expected: "a whole number that fits 64 bits".into(),
                        });
                    }
                },
                _ => {
                    return Err(FacetConfigError::WrongType {
                        key,
                        expected: "a bool, an integer or a string".into(),
                    });
                }
            };
            config.values.insert(key, value);
        }
        Ok(config)
    }

    /// Reads a TOML table of settings (as [`FacetConfig::from_json`]).
    pub fn from_toml(text: &str) -> Result<Self, FacetConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| FacetConfigError::Parse {
            format: "TOML".into(),
            reason: e.to_string(),
        })?;
        let mut config = FacetConfig::new();
        for (key, value) in table {
            let value = match value {
                toml::Value::Boolean(b) => ConfigValue::Bool(b),
                toml::Value::Integer(n) => ConfigValue::Int(n),
                toml::Value::String(s) => ConfigValue::Str(s),
                _ => {
                    return Err(FacetConfigError::WrongType {
                        key,
                        expected: "a bool, an integer or a string".into(),
                    });
                }
            };
            config.values.insert(key, value);
        }
        Ok(config)
    }

    /// The keys set.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    pub(crate) fn raw(&self, key: &str) -> Option<&ConfigValue> {
        self.values.get(key)
    }

    pub(crate) fn set(&mut self, key: &str, value: ConfigValue) {
        self.values.insert(key.to_string(), value);
    }

    fn get(&mut self, key: &str) -> Option<&ConfigValue> {
        self.read.insert(key.to_string());
        self.values.get(key)
    }

    fn wrong(key: &str, expected: &str) -> FacetConfigError {
        FacetConfigError::WrongType {
            key: key.to_string(),
            expected: expected.to_string(),
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

    /// A duration setting, if present (a string such as `"250ms"` is read
    /// as one).
    pub fn duration(&mut self, key: &str) -> Result<Option<Duration>, FacetConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(ConfigValue::Duration(d)) => Ok(Some(*d)),
            Some(ConfigValue::Str(s)) => match parse_duration(s) {
                Some(d) => Ok(Some(d)),
                None => Err(Self::wrong(key, "a duration such as \"250ms\"")),
            },
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
