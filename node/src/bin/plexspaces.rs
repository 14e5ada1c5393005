//! `plexspaces`: the operator CLI.
//!
//! Offline, on a journal directory: `journal verify`, `journal dump`.
//! Online, against a running node's operator endpoint (`--node`, with the
//! cluster's secret or the operator token): `members`, `actors`,
//! `virtual`, `workflows`, `reminders`, `spaces`, `health`.
//!
//! Exit codes: 0 done; 1 the answer is bad news (a damaged journal, a node
//! not ready, a run or kind not found, a refused request); 2 the command
//! line is wrong; 3 the node could not be reached or refused the
//! credentials.

use clap::{Args, Parser, Subcommand};
use plexspaces::capabilities::http::{
    BreakerPolicy, HttpClient, HttpClientConfig, HttpRequest, RetryPolicy,
};
use plexspaces::prelude::*;
use plexspaces_node::journal_tool::{self, DumpedRecord, VerifyReport};
use serde_json::Value as Json;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "plexspaces",
    version,
    about = "Operate PlexSpaces nodes and journals"
)]
struct Cli {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Target {
    /// The node's operator endpoint (its `operator.listen`).
    #[arg(
        long,
        global = true,
        env = "PLEXSPACES_NODE",
        default_value = "127.0.0.1:9464"
    )]
    node: std::net::SocketAddr,
    /// A file holding the cluster secret (the token is derived from it).
    #[arg(long, global = true, env = "PLEXSPACES_SECRET_FILE")]
    secret_file: Option<PathBuf>,
    /// A file holding the operator token (the node's `operator.token_file`).
    #[arg(long, global = true, env = "PLEXSPACES_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// How long to wait for the node.
    #[arg(long, global = true, default_value = "10s", value_parser = duration)]
    timeout: Duration,
}

fn duration(text: &str) -> Result<Duration, String> {
    plexspaces::actor::facet::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration (like 500ms, 10s, 2m)"))
}

#[derive(Subcommand)]
enum Command {
    /// Read a journal directory offline.
    #[command(subcommand)]
    Journal(JournalCommand),
    /// The cluster's members as the node sees them.
    Members,
    /// The node's actors, by kind and state.
    Actors,
    /// Virtual actors.
    #[command(subcommand)]
    Virtual(VirtualCommand),
    /// Workflow runs.
    #[command(subcommand)]
    Workflows(WorkflowCommand),
    /// Reminders of a virtual actor.
    #[command(subcommand)]
    Reminders(ReminderCommand),
    /// The node's tuple spaces.
    #[command(subcommand)]
    Spaces(SpaceCommand),
    /// Liveness and readiness, with each check.
    Health,
}

#[derive(Subcommand)]
enum JournalCommand {
    /// Check every frame; exit 1 naming segment and offset if damaged.
    Verify {
        /// The journal directory (or a node's data directory).
        dir: PathBuf,
    },
    /// Print the records (durable-actor entries decoded).
    Dump {
        /// The journal directory (or a node's data directory).
        dir: PathBuf,
        /// Only this stream (an actor's, `kind:id` for virtual actors).
        #[arg(long)]
        stream: Option<String>,
        /// From this sequence number on.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// At most this many records.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum VirtualCommand {
    /// The activations on the node, by kind.
    List,
    /// Which node owns an id.
    Where { kind: String, id: String },
}

#[derive(Subcommand)]
enum WorkflowCommand {
    /// A tenant's runs of a kind, by id (1,000 at most a page).
    List {
        kind: String,
        #[arg(long)]
        tenant: String,
        /// Only runs standing so: running, completed, failed, cancelled.
        #[arg(long)]
        status: Option<String>,
        /// The page after this run id.
        #[arg(long)]
        after: Option<String>,
        /// Most runs to show.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Which running runs took which branch of a `patched` change, and
    /// which have not reached it: the old branch can go once none needs it.
    Patch {
        kind: String,
        #[arg(long)]
        tenant: String,
        patch: String,
    },
    /// A run's status.
    Status {
        kind: String,
        tenant: String,
        id: String,
    },
    /// A run's output (waits up to --wait).
    Result {
        kind: String,
        tenant: String,
        id: String,
        #[arg(long, default_value = "5s", value_parser = duration)]
        wait: Duration,
    },
    /// Send a signal (VALUE is JSON: `true`, `42`, `"text"`).
    Signal {
        kind: String,
        tenant: String,
        id: String,
        name: String,
        value: String,
    },
    /// Cancel a run (its compensations run).
    Cancel {
        kind: String,
        tenant: String,
        id: String,
    },
}

#[derive(Subcommand)]
enum ReminderCommand {
    /// A virtual actor's reminders.
    List { kind: String, id: String },
    /// Cancel one.
    Cancel {
        kind: String,
        id: String,
        name: String,
    },
}

#[derive(Subcommand)]
enum SpaceCommand {
    /// The node's named tuple spaces and their sizes.
    List,
    /// Tuples in a space (of an arity, with a first field, if given).
    Count {
        name: String,
        #[arg(long)]
        arity: Option<usize>,
        #[arg(long)]
        head: Option<String>,
    },
}

/// How a command ended, as its exit code.
enum Outcome {
    Done,
    BadNews(String),
    Unreachable(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("plexspaces: cannot start: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(execute(cli)) {
        Outcome::Done => ExitCode::SUCCESS,
        Outcome::BadNews(why) => {
            if !why.is_empty() {
                eprintln!("plexspaces: {why}");
            }
            ExitCode::from(1)
        }
        Outcome::Unreachable(why) => {
            eprintln!("plexspaces: {why}");
            ExitCode::from(3)
        }
    }
}

async fn execute(cli: Cli) -> Outcome {
    let json = cli.json;
    let call = |path: String| Call {
        method: "GET",
        path,
        body: None,
    };
    let post = |path: String| Call {
        method: "POST",
        path,
        body: None,
    };
    let q = |pairs: &[(&str, &str)]| -> String {
        let mut query = String::new();
        for (name, value) in pairs {
            query.push(if query.is_empty() { '?' } else { '&' });
            query.push_str(name);
            query.push('=');
            query.push_str(&percent(value));
        }
        query
    };
    // A result may be waited for longer than the usual timeout.
    let mut wait_extra = Duration::ZERO;
    let (request, show): (Call, fn(&Json) -> String) = match cli.command {
        Command::Journal(command) => return journal(command, json).await,
        Command::Health => return health(&cli.target, json).await,
        Command::Members => (call("/admin/members".into()), show_members),
        Command::Actors => (call("/admin/actors".into()), show_actors),
        Command::Virtual(VirtualCommand::List) => (call("/admin/virtual".into()), show_virtual),
        Command::Virtual(VirtualCommand::Where { kind, id }) => (
            call(format!(
                "/admin/virtual/where{}",
                q(&[("kind", &kind), ("id", &id)])
            )),
            show_object,
        ),
        Command::Workflows(WorkflowCommand::List {
            kind,
            tenant,
            status,
            after,
            limit,
        }) => {
            let limit = limit.map(|n| n.to_string());
            let mut params = vec![("kind", kind.as_str()), ("tenant", tenant.as_str())];
            let optional = [("status", &status), ("after", &after), ("limit", &limit)];
            params.extend(
                optional
                    .iter()
                    .filter_map(|(name, v)| Some((*name, v.as_deref()?))),
            );
            (call(format!("/admin/workflows{}", q(&params))), show_runs)
        }
        Command::Workflows(WorkflowCommand::Patch {
            kind,
            tenant,
            patch,
        }) => (
            call(format!(
                "/admin/workflows/patch{}",
                q(&[("kind", &kind), ("tenant", &tenant), ("patch", &patch)])
            )),
            show_object,
        ),
        Command::Workflows(WorkflowCommand::Status { kind, tenant, id }) => (
            call(format!(
                "/admin/workflows/status{}",
                q(&[("kind", &kind), ("tenant", &tenant), ("id", &id)])
            )),
            show_value,
        ),
        Command::Workflows(WorkflowCommand::Result {
            kind,
            tenant,
            id,
            wait,
        }) => {
            wait_extra = wait;
            (
                call(format!(
                    "/admin/workflows/result{}",
                    q(&[
                        ("kind", &kind),
                        ("tenant", &tenant),
                        ("id", &id),
                        ("wait_ms", &wait.as_millis().to_string())
                    ])
                )),
                show_value,
            )
        }
        Command::Workflows(WorkflowCommand::Signal {
            kind,
            tenant,
            id,
            name,
            value,
        }) => {
            if let Err(e) = serde_json::from_str::<Json>(&value) {
                return Outcome::BadNews(format!(
                    "VALUE is not JSON ({e}): quote text as '\"text\"'"
                ));
            }
            (
                Call {
                    method: "POST",
                    path: format!(
                        "/admin/workflows/signal{}",
                        q(&[
                            ("kind", &kind),
                            ("tenant", &tenant),
                            ("id", &id),
                            ("name", &name)
                        ])
                    ),
                    body: Some(value),
                },
                show_object,
            )
        }
        Command::Workflows(WorkflowCommand::Cancel { kind, tenant, id }) => (
            post(format!(
                "/admin/workflows/cancel{}",
                q(&[("kind", &kind), ("tenant", &tenant), ("id", &id)])
            )),
            show_object,
        ),
        Command::Reminders(ReminderCommand::List { kind, id }) => (
            call(format!(
                "/admin/reminders{}",
                q(&[("kind", &kind), ("id", &id)])
            )),
            show_reminders,
        ),
        Command::Reminders(ReminderCommand::Cancel { kind, id, name }) => (
            post(format!(
                "/admin/reminders/cancel{}",
                q(&[("kind", &kind), ("id", &id), ("name", &name)])
            )),
            show_object,
        ),
        Command::Spaces(SpaceCommand::List) => (call("/admin/spaces".into()), show_spaces),
        Command::Spaces(SpaceCommand::Count { name, arity, head }) => {
            let arity = arity.map(|a| a.to_string());
            let mut pairs = vec![("name", name.as_str())];
            if let Some(arity) = &arity {
                pairs.push(("arity", arity));
            }
            if let Some(head) = &head {
                pairs.push(("head", head));
            }
            (
                call(format!("/admin/spaces/count{}", q(&pairs))),
                show_object,
            )
        }
    };
    let client = match Client::new(&cli.target, wait_extra) {
        Ok(client) => client,
        Err(outcome) => return outcome,
    };
    match client.send(request).await {
        Ok((200, body)) => {
            let shown = if json { body.to_string() } else { show(&body) };
            print!("{}{}", shown, if shown.ends_with('\n') { "" } else { "\n" });
            Outcome::Done
        }
        Ok((401, body)) => Outcome::Unreachable(format!(
            "the node refused the credentials: {}",
            error_text(&body)
        )),
        Ok((_, body)) => Outcome::BadNews(error_text(&body)),
        Err(e) => Outcome::Unreachable(e),
    }
}

struct Call {
    method: &'static str,
    path: String,
    body: Option<String>,
}

struct Client {
    http: HttpClient,
    token: Option<String>,
}

impl Client {
    /// A client of `target`'s node; `wait` is how long the node may take
    /// on top of the usual timeout (a result waited for).
    fn new(target: &Target, wait: Duration) -> Result<Client, Outcome> {
        let token = match (&target.token_file, &target.secret_file) {
            (Some(path), _) => Some(read_trimmed(path)?),
            (None, Some(path)) => Some(plexspaces_node::operator_token(
                read_trimmed(path)?.as_bytes(),
            )),
            (None, None) => None,
        };
        let node = NodeName::new("plexspaces-cli").expect("a valid node name");
        let env = Env::tokio(node);
        let config = HttpClientConfig::new(&format!("http://{}", target.node))
            .map_err(|e| Outcome::BadNews(e.to_string()))?
            .name("operator")
            .timeout(target.timeout + wait)
            // One attempt: an operator wants the node's answer now.
            .retry(RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            })
            .breaker(BreakerPolicy::default());
        let http = HttpClient::new(&env, config).map_err(|e| Outcome::BadNews(e.to_string()))?;
        Ok(Client { http, token })
    }

    async fn send(&self, call: Call) -> Result<(u16, Json), String> {
        let mut request = match (call.method, call.body) {
            ("POST", body) => HttpRequest::post(call.path, body.unwrap_or_default()),
            (_, _) => HttpRequest::get(call.path),
        };
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = self
            .http
            .send(request)
            .await
            .map_err(|e| format!("cannot reach the node: {e}"))?;
        let body = serde_json::from_slice(&response.body)
            .unwrap_or_else(|_| Json::String(response.text()));
        Ok((response.status, body))
    }
}

fn read_trimmed(path: &std::path::Path) -> Result<String, Outcome> {
    #[allow(clippy::disallowed_methods)]
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| Outcome::BadNews(format!("{}: {e}", path.display())))
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn error_text(body: &Json) -> String {
    body.get("error")
        .and_then(Json::as_str)
        .map_or_else(|| body.to_string(), str::to_string)
}

async fn health(target: &Target, json: bool) -> Outcome {
    let client = match Client::new(target, Duration::ZERO) {
        Ok(client) => client,
        Err(outcome) => return outcome,
    };
    let get = |path: &str| Call {
        method: "GET",
        path: path.into(),
        body: None,
    };
    let alive = match client.send(get("/health")).await {
        Ok((200, body)) => body,
        Ok((status, body)) => return Outcome::BadNews(format!("not alive ({status}): {body}")),
        Err(e) => return Outcome::Unreachable(e),
    };
    let (status, ready) = match client.send(get("/ready")).await {
        Ok(answer) => answer,
        Err(e) => return Outcome::Unreachable(e),
    };
    if json {
        println!("{}", serde_json::json!({ "health": alive, "ready": ready }));
    } else {
        println!(
            "node {}: alive, {}",
            alive["node"].as_str().unwrap_or("?"),
            if status == 200 { "ready" } else { "NOT ready" }
        );
        if let Some(checks) = ready["checks"].as_object() {
            let rows: Vec<Vec<String>> = checks
                .iter()
                .map(|(name, c)| {
                    vec![
                        name.clone(),
                        if c["healthy"].as_bool() == Some(true) {
                            "ok"
                        } else {
                            "FAILING"
                        }
                        .into(),
                        text(&c["detail"]),
                    ]
                })
                .collect();
            print!("{}", table(&["CHECK", "STATE", "DETAIL"], &rows));
        }
    }
    if status == 200 {
        Outcome::Done
    } else {
        Outcome::BadNews(String::new())
    }
}

async fn journal(command: JournalCommand, json: bool) -> Outcome {
    match command {
        JournalCommand::Verify { dir } => {
            let tty = std::io::stderr().is_terminal();
            let report = journal_tool::verify(&dir, |done, all| {
                if tty && all > 1 {
                    let width = 30;
                    let filled = done * width / all;
                    eprint!(
                        "\r[{}{}] {done}/{all} segments",
                        "#".repeat(filled),
                        " ".repeat(width - filled)
                    );
                    if done == all {
                        eprintln!();
                    }
                }
            })
            .await;
            match report {
                Err(e) => Outcome::BadNews(e.to_string()),
                Ok(report) => {
                    if json {
                        println!("{}", serde_json::to_string(&report).unwrap_or_default());
                    } else {
                        print!("{}", show_verify(&report));
                    }
                    if report.sound() {
                        Outcome::Done
                    } else {
                        Outcome::BadNews(format!(
                            "{} problem(s) in {}",
                            report.problems.len(),
                            dir.display()
                        ))
                    }
                }
            }
        }
        JournalCommand::Dump {
            dir,
            stream,
            from,
            limit,
        } => match journal_tool::dump(&dir, stream.as_deref(), from, limit).await {
            Err(e) => Outcome::BadNews(e.to_string()),
            Ok(records) => {
                if json {
                    for record in &records {
                        println!("{}", serde_json::to_string(record).unwrap_or_default());
                    }
                } else {
                    print!("{}", show_dump(&records));
                }
                Outcome::Done
            }
        },
    }
}

fn show_verify(report: &VerifyReport) -> String {
    let rows: Vec<Vec<String>> = report
        .segments
        .iter()
        .map(|s| {
            vec![
                s.file.clone(),
                s.frames.to_string(),
                s.lsns.map_or("-".into(), |(a, b)| format!("{a}..{b}")),
                s.bytes.to_string(),
                s.end.clone(),
            ]
        })
        .collect();
    let mut out = table(&["SEGMENT", "FRAMES", "LSNS", "BYTES", "END"], &rows);
    out.push_str(&format!("{} checkpoint(s) decoded\n", report.checkpoints));
    if report.sound() {
        out.push_str("journal is sound\n");
    }
    for p in &report.problems {
        out.push_str(&format!(
            "PROBLEM {}{}{}: {}\n",
            p.file,
            p.segment
                .map_or(String::new(), |s| format!(" (segment {s})")),
            p.offset
                .map_or(String::new(), |o| format!(" at offset {o}")),
            p.message
        ));
    }
    out
}

fn show_dump(records: &[DumpedRecord]) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let entry = r
                .entry
                .as_ref()
                .and_then(|e| serde_json::to_value(e).ok())
                .map_or_else(|| format!("{} bytes", r.bytes), |v| compact(&v));
            vec![
                r.lsn.to_string(),
                r.stream.clone(),
                r.seq.to_string(),
                format!("{}@{}", r.segment, r.offset),
                entry,
            ]
        })
        .collect();
    table(&["LSN", "STREAM", "SEQ", "SEGMENT@OFFSET", "ENTRY"], &rows)
}

fn compact(value: &Json) -> String {
    match value.as_object() {
        Some(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect::<Vec<_>>()
            .join(" "),
        None => text(value),
    }
}

fn text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Null => "-".into(),
        other => other.to_string(),
    }
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn show_members(body: &Json) -> String {
    let rows = array_rows(body, &["node", "addr", "incarnation", "status"]);
    table(&["NODE", "ADDRESS", "INCARNATION", "STATUS"], &rows)
}

fn show_actors(body: &Json) -> String {
    let mut out = format!(
        "node {}: {} actor(s)\n",
        text(&body["node"]),
        text(&body["total"])
    );
    let rows: Vec<Vec<String>> = body["by_kind"]
        .as_object()
        .map(|kinds| {
            kinds
                .iter()
                .map(|(kind, states)| vec![kind.clone(), compact(states)])
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(&["KIND", "STATES"], &rows));
    out
}

fn show_virtual(body: &Json) -> String {
    let rows: Vec<Vec<String>> = body
        .as_array()
        .map(|kinds| {
            kinds
                .iter()
                .map(|k| {
                    let active: Vec<String> = k["active"]
                        .as_array()
                        .map(|ids| ids.iter().map(text).collect())
                        .unwrap_or_default();
                    vec![text(&k["kind"]), active.len().to_string(), active.join(" ")]
                })
                .collect()
        })
        .unwrap_or_default();
    table(&["KIND", "ACTIVE", "IDS"], &rows)
}

fn show_runs(body: &Json) -> String {
    let rows: Vec<Vec<String>> = body
        .as_array()
        .map(|runs| {
            runs.iter()
                .map(|r| {
                    vec![
                        text(&r["run"]),
                        show_value(&r["status"]),
                        show_value(&r["started_ms"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(&["RUN", "STATUS", "STARTED (ms)"], &rows)
}

fn show_reminders(body: &Json) -> String {
    let rows = array_rows(body, &["kind", "id", "name", "recurrence", "next_due_ms"]);
    table(
        &["KIND", "ID", "NAME", "RECURRENCE", "NEXT DUE (ms)"],
        &rows,
    )
}

fn show_spaces(body: &Json) -> String {
    let rows = array_rows(body, &["name", "tuples"]);
    table(&["SPACE", "TUPLES"], &rows)
}

fn show_object(body: &Json) -> String {
    compact(body)
}

fn show_value(body: &Json) -> String {
    match body {
        Json::Object(map) if map.len() == 1 => {
            let (k, v) = map.iter().next().expect("one entry");
            format!("{k} {}", compact(v))
        }
        other => compact(other),
    }
}

fn array_rows(body: &Json, fields: &[&str]) -> Vec<Vec<String>> {
    body.as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| fields.iter().map(|f| text(&item[*f])).collect())
                .collect()
        })
        .unwrap_or_default()
}
