//! A node's configuration: a TOML file, then environment variables.
//!
//! Every key, its meaning and its default are in `node/plexspaces-node.toml`
//! (the file the config test parses, so the documentation cannot drift).
//! An environment variable `PLEXSPACES__<TABLE>__<KEY>` overrides key
//! `<key>` of table `[<table>]` (`PLEXSPACES__CLUSTER__SEEDS='["10.0.0.1:7001"]'`):
//! its value is read as a TOML value, or taken as a string if it is not
//! one. A key nothing reads, a value of the wrong type and a missing
//! required key are [`ConfigError`]s naming the key.

use plexspaces::actor::facet::parse_duration;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The prefix of the environment variables that override keys.
pub const ENV_PREFIX: &str = "PLEXSPACES__";

/// A node's whole configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct NodeConfig {
    /// `[node]`: who this node is and where it keeps its files.
    pub node: NodeSection,
    /// `[cluster]`: distribution (absent `listen`: a node on its own).
    pub cluster: ClusterSection,
    /// `[journal]`: where durable state lives.
    pub journal: JournalSection,
    /// `[operator]`: the operator endpoint (metrics, health, the CLI's API).
    pub operator: OperatorSection,
    /// `[log]`: the process's log lines.
    pub log: LogSection,
    /// `[limits]`: deadlines and bounds.
    pub limits: LimitsSection,
}

/// `[node]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct NodeSection {
    /// The node's name, unique in its cluster (required).
    pub name: String,
    /// Where the embedded journal and other files live (default
    /// `./data/<name>`).
    pub data_dir: Option<PathBuf>,
}

/// `[cluster]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ClusterSection {
    /// Where this node accepts other nodes (none: no distribution).
    pub listen: Option<SocketAddr>,
    /// The address peers dial, if not `listen` (behind NAT, say).
    pub advertise: Option<SocketAddr>,
    /// Nodes to join through (default none: the first node).
    pub seeds: Vec<SocketAddr>,
    /// The cluster secret, at least 16 bytes (or `secret_file`).
    pub secret: Option<String>,
    /// A file holding the cluster secret (trailing newline ignored).
    pub secret_file: Option<PathBuf>,
    /// A directory with `ca.pem`, `node.pem` and `node.key`: TLS 1.3 on
    /// every link (default none: plaintext with the secret's handshake).
    pub tls_dir: Option<PathBuf>,
    /// How often the TLS files are read again (default 60s).
    #[serde(deserialize_with = "duration")]
    pub tls_reload: Duration,
    /// How often this node tells its peers it is alive (default 200ms).
    #[serde(deserialize_with = "duration")]
    pub heartbeat_interval: Duration,
    /// Silence after which a peer is suspect (default 1s).
    #[serde(deserialize_with = "duration")]
    pub suspect_after: Duration,
    /// Silence after which a peer is declared down and its virtual actors
    /// move (default 3s).
    #[serde(deserialize_with = "duration")]
    pub down_after: Duration,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            listen: None,
            advertise: None,
            seeds: Vec::new(),
            secret: None,
            secret_file: None,
            tls_dir: None,
            tls_reload: Duration::from_secs(60),
            heartbeat_interval: Duration::from_millis(200),
            suspect_after: Duration::from_secs(1),
            down_after: Duration::from_secs(3),
        }
    }
}

/// Which journal backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalKind {
    /// The file journal in `data_dir/journal` (one node; the default).
    #[default]
    Embedded,
    /// In memory: nothing survives the process (tests).
    Memory,
    /// PostgreSQL, shared by every node (`postgres` is its connection).
    Postgres,
    /// A journal server, shared by every node (`server` is its address).
    Server,
}

/// `[journal]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct JournalSection {
    /// `embedded` (default), `memory`, `postgres` or `server`.
    pub backend: JournalKind,
    /// PostgreSQL's connection string (`host=... user=... dbname=...`),
    /// for `backend = "postgres"`.
    pub postgres: Option<String>,
    /// The journal server's address, for `backend = "server"` (it
    /// authenticates with the cluster secret).
    pub server: Option<SocketAddr>,
}

/// `[operator]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OperatorSection {
    /// Where `/metrics`, `/health`, `/ready` and the operator API are
    /// served (default none: not served).
    pub listen: Option<SocketAddr>,
    /// A file holding the operator API's token. Default: derived from the
    /// cluster secret (`plexspaces` derives the same from the secret it
    /// is given); with neither, the API answers only on loopback.
    pub token_file: Option<PathBuf>,
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatName {
    /// Human-readable (default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct LogSection {
    /// `text` (default) or `json`.
    pub format: LogFormatName,
    /// `trace`, `debug`, `info` (default), `warn` or `error`.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormatName::Text,
            level: "info".into(),
        }
    }
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct LimitsSection {
    /// How long a graceful shutdown may take in all: hand-off, draining
    /// mailboxes, leaving (default 30s). Past it the node stops anyway.
    #[serde(deserialize_with = "duration")]
    pub shutdown_deadline: Duration,
    /// How long the operator API waits for an answer from the cluster
    /// (default 5s).
    #[serde(deserialize_with = "duration")]
    pub operator_timeout: Duration,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            shutdown_deadline: Duration::from_secs(30),
            operator_timeout: Duration::from_secs(5),
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration (a whole number and ms, s, m or h)"
        ))
    })
}

/// Why a configuration cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The text is not TOML.
    Syntax {
        /// What the parser said (with line and column).
        message: String,
    },
    /// A key nothing reads (a typo, or a key of another version).
    UnknownKey {
        /// Its dotted name (`cluster.lissen`).
        key: String,
    },
    /// A value of the wrong type or out of range.
    BadValue {
        /// Its dotted name.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A required key is absent.
    Missing {
        /// Its dotted name.
        key: String,
        /// When it is required.
        why: String,
    },
    /// An override variable that names no key.
    BadOverride {
        /// The variable.
        variable: String,
        /// What is wrong with it.
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, reason } => {
                write!(f, "cannot read {}: {reason}", path.display())
            }
            ConfigError::Syntax { message } => write!(f, "not valid TOML: {message}"),
            ConfigError::UnknownKey { key } => write!(f, "unknown key `{key}`"),
            ConfigError::BadValue { key, message } => write!(f, "bad value for `{key}`: {message}"),
            ConfigError::Missing { key, why } => write!(f, "missing key `{key}` ({why})"),
            ConfigError::BadOverride { variable, message } => write!(f, "{variable}: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl NodeConfig {
    /// Reads `text` (TOML), then the overrides in `vars` (`(name, value)`
    /// pairs; pass `std::env::vars()`), then checks it.
    pub fn parse(
        text: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    message: e.to_string(),
                })?;
        let mut overrides: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        overrides.sort(); // the same result whatever the environment's order
        for (variable, value) in overrides {
            apply_override(&mut table, &variable, &value)?;
        }
        let mut unknown = Vec::new();
        let mut note_unknown = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let deserializer =
            serde_ignored::Deserializer::new(toml::Value::Table(table), &mut note_unknown);
        let config: NodeConfig =
            serde_path_to_error::deserialize(deserializer).map_err(|e| ConfigError::BadValue {
                key: e.path().to_string(),
                message: e.into_inner().to_string(),
            })?;
        if let Some(key) = unknown.into_iter().next() {
            return Err(ConfigError::UnknownKey { key });
        }
        config.check()?;
        Ok(config)
    }

    /// Reads file `path`, then the process's environment overrides.
    pub fn from_file(path: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        let path = path.into();
        // The host reads its configuration once, before any seam exists.
        #[allow(clippy::disallowed_methods)]
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Read {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, std::env::vars())
    }

    /// The data directory: `node.data_dir`, else `./data/<name>`.
    pub fn data_dir(&self) -> PathBuf {
        self.node
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("data").join(&self.node.name))
    }

    /// What no single key's type can say (also run by `Node::start`, for
    /// a configuration built or changed in code).
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.node.name.is_empty() {
            return Err(ConfigError::Missing {
                key: "node.name".into(),
                why: "every node has a name".into(),
            });
        }
        if let Err(e) = plexspaces::prelude::NodeName::new(&self.node.name) {
            return Err(bad("node.name", e));
        }
        if plexspaces::observability::logging::parse_level(&self.log.level).is_err() {
            return Err(bad(
                "log.level",
                format!(
                    "{:?} is not trace, debug, info, warn or error",
                    self.log.level
                ),
            ));
        }
        let cluster = &self.cluster;
        if cluster.secret.is_some() && cluster.secret_file.is_some() {
            return Err(bad(
                "cluster.secret_file",
                "give `secret` or `secret_file`, not both",
            ));
        }
        if let Some(secret) = &cluster.secret
            && secret.len() < 16
        {
            return Err(bad("cluster.secret", "at least 16 bytes"));
        }
        let needs_secret = cluster.listen.is_some() || self.journal.backend == JournalKind::Server;
        if needs_secret && cluster.secret.is_none() && cluster.secret_file.is_none() {
            return Err(ConfigError::Missing {
                key: "cluster.secret".into(),
                why: "a node in a cluster, or on a journal server, proves the cluster secret (or give `secret_file`)".into(),
            });
        }
        if !(cluster.heartbeat_interval < cluster.suspect_after
            && cluster.suspect_after < cluster.down_after)
        {
            return Err(bad(
                "cluster.down_after",
                "heartbeat_interval < suspect_after < down_after",
            ));
        }
        if cluster.listen.is_none() && (!cluster.seeds.is_empty() || cluster.advertise.is_some()) {
            return Err(ConfigError::Missing {
                key: "cluster.listen".into(),
                why: "seeds and advertise need a node that listens".into(),
            });
        }
        match self.journal.backend {
            JournalKind::Postgres if self.journal.postgres.is_none() => Err(ConfigError::Missing {
                key: "journal.postgres".into(),
                why: "backend = \"postgres\" needs its connection string".into(),
            }),
            JournalKind::Server if self.journal.server.is_none() => Err(ConfigError::Missing {
                key: "journal.server".into(),
                why: "backend = \"server\" needs the journal server's address".into(),
            }),
            _ => Ok(()),
        }
    }
}

fn bad(key: &str, message: impl fmt::Display) -> ConfigError {
    ConfigError::BadValue {
        key: key.into(),
        message: message.to_string(),
    }
}

/// Sets the key `variable` names (`PLEXSPACES__CLUSTER__SEEDS` is
/// `cluster.seeds`) to `value` in `table`.
fn apply_override(table: &mut toml::Table, variable: &str, value: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = variable[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    let bad_override = |message: &str| ConfigError::BadOverride {
        variable: variable.to_string(),
        message: message.to_string(),
    };
    let [section, key] = path.as_slice() else {
        return Err(bad_override(
            "name a table and a key: PLEXSPACES__<TABLE>__<KEY>",
        ));
    };
    if section.is_empty() || key.is_empty() {
        return Err(bad_override("an empty table or key name"));
    }
    // A TOML value if it reads as one (numbers, arrays, quoted strings),
    // else the text itself.
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let entry = table
        .entry(section.clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(section_table) = entry.as_table_mut() else {
        return Err(bad_override("its table is not a table in the file"));
    };
    section_table.insert(key.clone(), parsed);
    Ok(())
}
