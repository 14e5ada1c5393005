//! The logging facet: the handler runs in a `tracing` span that carries
//! the actor, its kind, the correlation id, the node, the tenant and the
//! trace id, so every line it logs says whose it is; the facet adds a line
//! per message at its level (failures at `warn`).

use crate::actor::facet::{
    ConfigValue, Facet, FacetCategory, FacetConfig, FacetConfigError, FacetDescriptor, FacetOption,
    Failure, Hook, Hooks, Message, MessageMeta, OptionKind, Verdict, priority_in,
};
use crate::env::Env;
use crate::observability::logging::{self, LogConfig};
use std::any::Any;
use std::time::Duration;
use tracing::Level;

/// Logs each message and gives its handler a span with who and where.
///
/// Configuration: `priority` (900-999), `level` (of the per-message
/// lines, default `debug`), and, to set the process's log lines when no
/// subscriber is set yet, `format` (`text` or `json`) and `output`
/// (`stdout` or `stderr`); see [`crate::observability::logging`].
#[derive(Debug)]
pub struct LoggingFacet {
    priority: i32,
    level: Level,
    /// The process's logging to install on attachment, if configured.
    install: Option<LogConfig>,
}

/// The trace id of a `traceparent` (`00-<trace id>-<span id>-<flags>`).
fn trace_id(traceparent: Option<&str>) -> &str {
    traceparent.and_then(|t| t.split('-').nth(1)).unwrap_or("")
}

macro_rules! event_at {
    ($level:expr, $($rest:tt)+) => {
        match $level {
            Level::TRACE => tracing::trace!($($rest)+),
            Level::DEBUG => tracing::debug!($($rest)+),
            Level::INFO => tracing::info!($($rest)+),
            Level::WARN => tracing::warn!($($rest)+),
            _ => tracing::error!($($rest)+),
        }
    };
}

macro_rules! span_at {
    ($level:expr, $($rest:tt)+) => {
        match $level {
            Level::TRACE => tracing::trace_span!($($rest)+),
            Level::DEBUG => tracing::debug_span!($($rest)+),
            Level::INFO => tracing::info_span!($($rest)+),
            Level::WARN => tracing::warn_span!($($rest)+),
            _ => tracing::error_span!($($rest)+),
        }
    };
}

impl LoggingFacet {
    /// Default priority: the logging band (900-999).
    pub const PRIORITY: i32 = 950;

    /// A logging facet at the default priority and level (`debug`).
    pub fn new() -> Self {
        LoggingFacet {
            priority: Self::PRIORITY,
            level: Level::DEBUG,
            install: None,
        }
    }

    /// Logs its per-message lines at `level`.
    pub fn at(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// The registry's description of the type.
    pub fn descriptor() -> FacetDescriptor {
        FacetDescriptor::new(
            "logging",
            FacetCategory::Observability,
            "a tracing span per message (actor, kind, correlation, node, tenant, trace id) and a line with its outcome and latency",
        )
        .priority_option(Self::PRIORITY)
        .option(
            FacetOption::new("level", OptionKind::Str, "trace, debug, info, warn or error")
                .default_value(ConfigValue::Str("debug".into())),
        )
        .option(FacetOption::new(
            "format",
            OptionKind::Str,
            "text or json: sets the process's log lines if nothing set them",
        ))
        .option(FacetOption::new(
            "output",
            OptionKind::Str,
            "stdout or stderr (with format; default stderr)",
        ))
    }

    /// Builds from configuration (see the type's documentation).
    pub fn from_config(mut config: FacetConfig) -> Result<Self, FacetConfigError> {
        let priority = priority_in(
            &mut config,
            Self::PRIORITY,
            FacetCategory::Observability.band(),
        )?;
        let invalid = |key: &str| {
            let key = key.to_string();
            move |reason| FacetConfigError::Invalid { key, reason }
        };
        let level = match config.string("level")? {
            Some(level) => logging::parse_level(&level).map_err(invalid("level"))?,
            None => Level::DEBUG,
        };
        let format = config.string("format")?;
        let output = config.string("output")?;
        config.finish("logging")?;
        let install = match (format, output) {
            (None, None) => None,
            (format, output) => {
                let mut log = LogConfig {
                    level,
                    ..LogConfig::default()
                };
                if let Some(format) = format {
                    log.format = logging::parse_format(&format).map_err(invalid("format"))?;
                }
                if let Some(output) = output {
                    log.output = logging::parse_output(&output).map_err(invalid("output"))?;
                }
                Some(log)
            }
        };
        Ok(LoggingFacet {
            priority,
            level,
            install,
        })
    }
}

impl Default for LoggingFacet {
    fn default() -> Self {
        Self::new()
    }
}

impl Facet for LoggingFacet {
    fn name(&self) -> &str {
        "logging"
    }

    fn priority(&self) -> i32 {
        self.priority
    }

    fn on_node(&mut self, _env: &Env) {
        if let Some(config) = self.install {
            logging::install(config);
        }
    }

    fn before<'a>(&'a mut self, msg: &Message<'_>) -> Hook<'a, Verdict> {
        let meta = &msg.meta;
        event_at!(
            self.level,
            actor = %meta.actor,
            kind = meta.kind,
            correlation = meta.correlation,
            msg = meta.msg_type,
            tenant = meta.headers.tenant.as_deref().unwrap_or(""),
            trace_id = trace_id(meta.headers.trace.as_deref()),
            "message received"
        );
        Hook::proceed()
    }

    fn after<'a>(
        &'a mut self,
        meta: &MessageMeta<'_>,
        _reply: &(dyn Any + Send),
        elapsed: Option<Duration>,
    ) -> Hook<'a> {
        event_at!(
            self.level,
            actor = %meta.actor,
            kind = meta.kind,
            correlation = meta.correlation,
            tenant = meta.headers.tenant.as_deref().unwrap_or(""),
            trace_id = trace_id(meta.headers.trace.as_deref()),
            elapsed_us = elapsed.map(|e| e.as_micros() as u64),
            "message handled"
        );
        Hook::done()
    }

    fn on_error<'a>(
        &'a mut self,
        meta: &MessageMeta<'_>,
        failure: &Failure<'_>,
        elapsed: Option<Duration>,
    ) -> Hook<'a> {
        tracing::warn!(
            actor = %meta.actor,
            kind = meta.kind,
            correlation = meta.correlation,
            tenant = meta.headers.tenant.as_deref().unwrap_or(""),
            trace_id = trace_id(meta.headers.trace.as_deref()),
            elapsed_us = elapsed.map(|e| e.as_micros() as u64),
            ?failure,
            "message failed"
        );
        Hook::done()
    }

    fn hooks(&self) -> Hooks {
        Hooks::BEFORE
            .with(Hooks::AFTER)
            .with(Hooks::ON_ERROR)
            .with(Hooks::SPAN)
            .with(Hooks::TIMES)
    }

    fn handler_span(&self, meta: &MessageMeta<'_>) -> Option<tracing::Span> {
        Some(span_at!(
            self.level,
            "message",
            actor = %meta.actor,
            kind = meta.kind,
            correlation = meta.correlation,
            node = %meta.env.node(),
            tenant = meta.headers.tenant.as_deref().unwrap_or(""),
            trace_id = trace_id(meta.headers.trace.as_deref()),
        ))
    }
}
