//! The node's configuration: the documented file, defaults, refusals that
//! name the key, environment overrides.

use plexspaces_node::config::{JournalKind, LogFormatName};
use plexspaces_node::{ConfigError, NodeConfig};
use std::time::Duration;

const DOCUMENTED: &str = include_str!("../plexspaces-node.toml");

fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
    NodeConfig::parse(text, Vec::new())
}

fn parse_with(text: &str, vars: &[(&str, &str)]) -> Result<NodeConfig, ConfigError> {
    NodeConfig::parse(
        text,
        vars.iter().map(|(n, v)| (n.to_string(), v.to_string())),
    )
}

const MINIMAL: &str = "[node]\nname = \"n1\"\n";

#[test]
fn the_documented_file_parses_and_states_the_defaults() {
    let documented = parse(DOCUMENTED).expect("the documented file is a valid configuration");
    let defaults = parse(MINIMAL).unwrap();
    // Every key the file sets to "its default" is the default.
    assert_eq!(documented.cluster.tls_reload, defaults.cluster.tls_reload);
    assert_eq!(
        documented.cluster.heartbeat_interval,
        defaults.cluster.heartbeat_interval
    );
    assert_eq!(
        documented.cluster.suspect_after,
        defaults.cluster.suspect_after
    );
    assert_eq!(documented.cluster.down_after, defaults.cluster.down_after);
    assert_eq!(documented.cluster.seeds, defaults.cluster.seeds);
    assert_eq!(documented.journal.backend, defaults.journal.backend);
    assert_eq!(documented.log.format, defaults.log.format);
    assert_eq!(documented.log.level, defaults.log.level);
    assert_eq!(
        documented.limits.shutdown_deadline,
        defaults.limits.shutdown_deadline
    );
    assert_eq!(
        documented.limits.operator_timeout,
        defaults.limits.operator_timeout
    );
    assert_eq!(
        documented.data_dir(),
        std::path::PathBuf::from("./data/node-a")
    );
    assert_eq!(
        documented.cluster.listen,
        Some("127.0.0.1:7001".parse().unwrap())
    );
    assert_eq!(
        documented.operator.listen,
        Some("127.0.0.1:9464".parse().unwrap())
    );
}

#[test]
fn defaults_of_a_minimal_file() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.node.name, "n1");
    assert_eq!(c.data_dir(), std::path::PathBuf::from("data/n1"));
    assert_eq!(c.cluster.listen, None);
    assert!(c.cluster.seeds.is_empty());
    assert_eq!(c.cluster.tls_reload, Duration::from_secs(60));
    assert_eq!(c.cluster.heartbeat_interval, Duration::from_millis(200));
    assert_eq!(c.cluster.suspect_after, Duration::from_secs(1));
    assert_eq!(c.cluster.down_after, Duration::from_secs(3));
    assert_eq!(c.journal.backend, JournalKind::Embedded);
    assert_eq!(c.operator.listen, None);
    assert_eq!(c.log.format, LogFormatName::Text);
    assert_eq!(c.log.level, "info");
    assert_eq!(c.limits.shutdown_deadline, Duration::from_secs(30));
    assert_eq!(c.limits.operator_timeout, Duration::from_secs(5));
}

/// Each key the documented file shows commented out, set on its own: a
/// key the code does not read would be refused as unknown.
#[test]
fn every_commented_key_of_the_documented_file_is_read() {
    let commented: Vec<(String, String)> = {
        let mut table = String::new();
        let mut found = Vec::new();
        for line in DOCUMENTED.lines() {
            if let Some(name) = line.strip_prefix('[') {
                table = name.trim_end_matches(']').to_string();
            } else if let Some(rest) = line.strip_prefix("# ")
                && let Some((key, _)) = rest.split_once(" = ")
                && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            {
                found.push((table.clone(), rest.to_string()));
            }
        }
        found
    };
    let keys: Vec<&str> = commented
        .iter()
        .map(|(_, l)| l.split(" = ").next().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["secret_file", "tls_dir", "postgres", "server", "token_file"],
        "the commented keys this test knows"
    );
    for (table, line) in &commented {
        let text = format!("{MINIMAL}[{table}]\n{line}\n");
        // Some need a companion key (a backend, a listener): any other
        // outcome shows the key was read, which is what this test is about.
        if let Err(ConfigError::UnknownKey { key }) = parse(&text) {
            panic!("documented key {key} is not read");
        }
    }
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let typo = format!("{MINIMAL}[cluster]\nlissen = \"127.0.0.1:1\"\n");
    assert_eq!(
        parse(&typo).unwrap_err(),
        ConfigError::UnknownKey {
            key: "cluster.lissen".into()
        }
    );
    let table = format!("{MINIMAL}[clustr]\nlisten = \"127.0.0.1:1\"\n");
    match parse(&table).unwrap_err() {
        ConfigError::UnknownKey { key } => assert!(key.starts_with("clustr"), "{key}"),
        other => panic!("{other:?}"),
    }
    let top = format!("name = \"x\"\n{MINIMAL}");
    assert_eq!(
        parse(&top).unwrap_err(),
        ConfigError::UnknownKey { key: "name".into() }
    );
}

fn bad_key(text: &str) -> String {
    match parse(text) {
        Err(ConfigError::BadValue { key, .. }) => key,
        other => panic!("expected a bad value, got {other:?}"),
    }
}

#[test]
fn bad_values_are_refused_by_name() {
    let cases = [
        ("[cluster]\nlisten = \"not an address\"\n", "cluster.listen"),
        ("[cluster]\nseeds = \"127.0.0.1:1\"\n", "cluster.seeds"),
        (
            "[cluster]\nseeds = [\"127.0.0.1:1\", 7]\n",
            "cluster.seeds[1]",
        ),
        (
            "[limits]\nshutdown_deadline = \"5 parsecs\"\n",
            "limits.shutdown_deadline",
        ),
        (
            "[limits]\nshutdown_deadline = 5\n",
            "limits.shutdown_deadline",
        ),
        ("[journal]\nbackend = \"sqlite\"\n", "journal.backend"),
        ("[log]\nformat = \"xml\"\n", "log.format"),
        ("[log]\nlevel = \"loud\"\n", "log.level"),
        ("[cluster]\nsecret = \"short\"\n", "cluster.secret"),
        (
            "[cluster]\nsuspect_after = \"5s\"\ndown_after = \"4s\"\n",
            "cluster.down_after",
        ),
    ];
    for (text, key) in cases {
        assert_eq!(bad_key(&format!("{MINIMAL}{text}")), key, "{text}");
    }
    assert_eq!(bad_key("[node]\nname = \"a b\"\n"), "node.name");
    assert_eq!(bad_key("[node]\nname = 7\n"), "node.name");
}

#[test]
fn missing_required_keys_are_named() {
    let missing = |text: &str| match parse(text) {
        Err(ConfigError::Missing { key, .. }) => key,
        other => panic!("expected a missing key, got {other:?}"),
    };
    assert_eq!(missing(""), "node.name");
    assert_eq!(missing("[node]\ndata_dir = \"x\"\n"), "node.name");
    assert_eq!(
        missing(&format!("{MINIMAL}[cluster]\nlisten = \"127.0.0.1:1\"\n")),
        "cluster.secret"
    );
    assert_eq!(
        missing(&format!("{MINIMAL}[journal]\nbackend = \"postgres\"\n")),
        "journal.postgres"
    );
    assert_eq!(
        missing(&format!(
            "{MINIMAL}[cluster]\nsecret = \"sixteen-bytes-long\"\n[journal]\nbackend = \"server\"\n"
        )),
        "journal.server"
    );
    assert_eq!(
        missing(&format!("{MINIMAL}[cluster]\nseeds = [\"127.0.0.1:1\"]\n")),
        "cluster.listen"
    );
}

#[test]
fn syntax_errors_say_where() {
    match parse("[node\nname = 1") {
        Err(ConfigError::Syntax { message }) => assert!(message.contains("line 1"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn environment_variables_override_keys() {
    let text = "[node]\nname = \"a\"\n[cluster]\nlisten = \"127.0.0.1:7001\"\nsecret = \"sixteen-bytes-long\"\n";
    let c = parse_with(
        text,
        &[
            ("PLEXSPACES__NODE__NAME", "b"),
            (
                "PLEXSPACES__CLUSTER__SEEDS",
                "[\"127.0.0.1:7002\", \"127.0.0.1:7003\"]",
            ),
            ("PLEXSPACES__LIMITS__SHUTDOWN_DEADLINE", "5s"),
            ("PLEXSPACES__JOURNAL__BACKEND", "memory"),
            ("PLEXSPACES__OPERATOR__LISTEN", "127.0.0.1:9000"),
            ("UNRELATED", "x"),
        ],
    )
    .unwrap();
    assert_eq!(c.node.name, "b", "the variable wins over the file");
    assert_eq!(c.cluster.seeds.len(), 2);
    assert_eq!(c.limits.shutdown_deadline, Duration::from_secs(5));
    assert_eq!(c.journal.backend, JournalKind::Memory);
    assert_eq!(c.operator.listen, Some("127.0.0.1:9000".parse().unwrap()));
    // Overrides are checked as the file is.
    assert_eq!(
        parse_with(MINIMAL, &[("PLEXSPACES__CLUSTER__LISSEN", "x")]).unwrap_err(),
        ConfigError::UnknownKey {
            key: "cluster.lissen".into()
        }
    );
    match parse_with(
        MINIMAL,
        &[("PLEXSPACES__LIMITS__SHUTDOWN_DEADLINE", "soon")],
    ) {
        Err(ConfigError::BadValue { key, .. }) => assert_eq!(key, "limits.shutdown_deadline"),
        other => panic!("{other:?}"),
    }
    match parse_with(MINIMAL, &[("PLEXSPACES__NAME", "x")]) {
        Err(ConfigError::BadOverride { variable, .. }) => assert_eq!(variable, "PLEXSPACES__NAME"),
        other => panic!("{other:?}"),
    }
    // A variable may supply a required key the file lacks.
    let c = parse_with("", &[("PLEXSPACES__NODE__NAME", "from-env")]).unwrap();
    assert_eq!(c.node.name, "from-env");
}

#[tokio::test]
async fn a_configuration_changed_in_code_is_checked_again_at_start() {
    let mut config = parse(MINIMAL).unwrap();
    config.journal.backend = JournalKind::Server;
    match config.check() {
        Err(ConfigError::Missing { key, .. }) => assert_eq!(key, "cluster.secret"),
        other => panic!("{other:?}"),
    }
    match plexspaces_node::Node::start(config).await {
        Err(plexspaces_node::NodeError::Config(ConfigError::Missing { key, .. })) => {
            assert_eq!(key, "cluster.secret")
        }
        other => panic!("{other:?}"),
    }
}
