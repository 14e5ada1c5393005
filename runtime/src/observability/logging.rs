//! The process's log lines, on `tracing-subscriber`: `text` (human) or
//! `json` (one object per line, for a log pipeline), to stdout or stderr,
//! at a level. Every line written inside a handler that a
//! [`LoggingFacet`](crate::actor::builtin_facets::LoggingFacet) watches
//! carries its span's fields: actor, kind, correlation id, node, tenant
//! and trace id.
//!
//! A process has one global subscriber: the first [`install`] (from code,
//! or from a logging facet configured with `format`) sets it, and a
//! program that set its own keeps it.

use std::sync::OnceLock;
use tracing::Level;

/// How lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, one line per event, span fields inline.
    Text,
    /// One JSON object per line, the current span's fields included.
    Json,
}

/// Where lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogOutput {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// The process's logging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// The least severe level written.
    pub level: Level,
    /// Text or JSON.
    pub format: LogFormat,
    /// Where.
    pub output: LogOutput,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: Level::INFO,
            format: LogFormat::Text,
            output: LogOutput::Stderr,
        }
    }
}

/// Reads a level name (`trace`, `debug`, `info`, `warn`, `error`).
pub fn parse_level(text: &str) -> Result<Level, String> {
    text.trim()
        .parse::<Level>()
        .map_err(|_| format!("level {text:?} is not trace, debug, info, warn or error"))
}

/// Reads `text` or `json`.
pub fn parse_format(text: &str) -> Result<LogFormat, String> {
    match text.trim() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("format {other:?} is not text or json")),
    }
}

/// Reads `stdout` or `stderr`.
pub fn parse_output(text: &str) -> Result<LogOutput, String> {
    match text.trim() {
        "stdout" => Ok(LogOutput::Stdout),
        "stderr" => Ok(LogOutput::Stderr),
        other => Err(format!("output {other:?} is not stdout or stderr")),
    }
}

static INSTALLED: OnceLock<LogConfig> = OnceLock::new();

/// Sets the process's subscriber as `config` says; returns whether this
/// call set it (false if one was set before, by this or by the program).
pub fn install(config: LogConfig) -> bool {
    let mut ours = false;
    INSTALLED.get_or_init(|| {
        ours = set_global(config);
        config
    });
    ours
}

fn set_global(config: LogConfig) -> bool {
    use tracing_subscriber::fmt;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let writer = match config.output {
        LogOutput::Stdout => BoxMakeWriter::new(std::io::stdout),
        LogOutput::Stderr => BoxMakeWriter::new(std::io::stderr),
    };
    let builder = fmt()
        .with_max_level(config.level)
        .with_writer(writer)
        .with_ansi(false);
    match config.format {
        LogFormat::Text => tracing::subscriber::set_global_default(builder.finish()).is_ok(),
        LogFormat::Json => tracing::subscriber::set_global_default(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        )
        .is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_or_say_why_not() {
        assert_eq!(parse_level("debug"), Ok(Level::DEBUG));
        assert!(parse_level("loud").is_err());
        assert_eq!(parse_format("json"), Ok(LogFormat::Json));
        assert!(parse_format("xml").is_err());
        assert_eq!(parse_output("stdout"), Ok(LogOutput::Stdout));
        assert!(parse_output("/var/log/x").is_err());
    }
}
