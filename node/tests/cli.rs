//! `plexspaces`, run as a subprocess: offline against real journal
//! directories (sound, damaged, torn, missing a segment) and online against
//! a running node on real sockets.

// These tests act as an operator does, from outside any node: they
// write configuration files, damage journal files and start processes on
// the real file system, which no node's Disk seam would do for them.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use plexspaces::prelude::*;
use plexspaces::reminders::{Recurrence, ReminderConfig, ReminderSpec, ReminderTarget, Reminders};
use plexspaces::storage::disk::FsDisk;
use plexspaces::storage::journal::scan::scan_segment;
use plexspaces::storage::journal::{FileJournal, Journal};
use plexspaces::tuple;
use plexspaces_node::{Node, NodeConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn plexspaces(args: &[&str]) -> Ran {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_plexspaces"))
        .args(args)
        .output()
        .await
        .expect("the CLI runs");
    Ran {
        code: out.status.code().expect("the CLI exits, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json(ran: &Ran) -> Json {
    serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {} / {}", ran.stdout, ran.stderr))
}

/// A fresh directory under the target's temporary space.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A journal in `dir` with `records` records over two streams, each
/// acknowledged before the next, in segments of at most `segment_bytes`.
async fn make_journal(dir: &Path, records: u64, segment_bytes: u64) {
    let disk = FsDisk::open_dir(dir).await.unwrap();
    let mut config = JournalConfig::default();
    config.segment_bytes_max = segment_bytes;
    let journal = FileJournal::open(disk, config, 7).await.unwrap();
    for i in 0..records {
        let stream = if i % 2 == 0 { "even" } else { "odd" };
        journal
            .append(stream, format!("record {i} of the test journal").as_bytes())
            .await
            .unwrap();
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("seg-"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn verify_passes_a_sound_journal() {
    let dir = scratch("sound");
    make_journal(&dir, 40, 1024).await;
    let ran = plexspaces(&["journal", "verify", dir.to_str().unwrap()]).await;
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("journal is sound"), "{}", ran.stdout);
    let report = json(&plexspaces(&["--json", "journal", "verify", dir.to_str().unwrap()]).await);
    let segments = report["segments"].as_array().unwrap();
    assert!(segments.len() > 1, "small segments: several of them");
    assert!(report["problems"].as_array().unwrap().is_empty());
    // Every record's frame is there, each counted once.
    let frames: u64 = segments.iter().map(|s| s["frames"].as_u64().unwrap()).sum();
    assert_eq!(frames, 40);
}

#[tokio::test]
async fn verify_names_the_segment_and_offset_of_damaged_data() {
    let dir = scratch("damaged");
    make_journal(&dir, 30, 1 << 20).await;
    let file = segment_files(&dir).remove(0);
    let mut bytes = std::fs::read(&file).unwrap();
    let frames: Vec<(u64, u32)> = scan_segment(&bytes, 1)
        .unwrap()
        .frames
        .iter()
        .map(|f| (f.offset, f.len))
        .collect();
    // A frame in the middle: later frames say it was acknowledged.
    let (offset, len) = frames[12];
    bytes[(offset + u64::from(len) / 2) as usize] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();

    let ran = plexspaces(&["journal", "verify", dir.to_str().unwrap()]).await;
    assert_eq!(ran.code, 1, "{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout
            .contains(&format!("(segment 1) at offset {offset}")),
        "{}",
        ran.stdout
    );
    let report = json(&plexspaces(&["--json", "journal", "verify", dir.to_str().unwrap()]).await);
    let problem = &report["problems"][0];
    assert_eq!(problem["segment"], 1);
    assert_eq!(problem["offset"], offset);
}

#[tokio::test]
async fn verify_accepts_a_torn_tail_and_refuses_a_missing_segment() {
    let dir = scratch("torn");
    make_journal(&dir, 40, 1024).await;
    let files = segment_files(&dir);
    assert!(files.len() >= 3, "{files:?}");
    // A write cut by a crash: the last segment's last frame is half there.
    let last = files.last().unwrap();
    let bytes = std::fs::read(last).unwrap();
    std::fs::write(last, &bytes[..bytes.len() - 5]).unwrap();
    let ran = plexspaces(&["journal", "verify", dir.to_str().unwrap()]).await;
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("torn tail"), "{}", ran.stdout);

    // A segment lost from the middle.
    std::fs::remove_file(&files[1]).unwrap();
    let ran = plexspaces(&["journal", "verify", dir.to_str().unwrap()]).await;
    assert_eq!(ran.code, 1, "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("missing"), "{}", ran.stdout);
}

#[tokio::test]
async fn verify_refuses_what_is_not_a_journal() {
    let empty = scratch("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let ran = plexspaces(&["journal", "verify", empty.to_str().unwrap()]).await;
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("no journal here"), "{}", ran.stderr);
    let ran = plexspaces(&["journal", "verify", "/nonexistent/plexspaces"]).await;
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("not a directory"), "{}", ran.stderr);
}

#[derive(Default, Serialize, Deserialize)]
struct Counter(u64);

impl DurableActor for Counter {
    type Msg = u64;
    type Reply = u64;
    async fn handle(&mut self, _: &mut DurableContext<'_>, n: u64) -> Result<u64, ActorError> {
        self.0 += n;
        Ok(self.0)
    }
}

#[tokio::test]
async fn dump_decodes_a_durable_actors_entries() {
    let dir = scratch("dump");
    {
        let env = Env::tokio(NodeName::new("dumper").unwrap())
            .with_data_dir(&dir)
            .await
            .unwrap();
        let system = ActorSystem::new(env.clone());
        let journal = JournalBackend::file(&env, JournalConfig::default())
            .await
            .unwrap();
        let counter = system
            .spawn(
                "counter",
                Durable::new(Counter::default(), journal, DurabilityConfig::default()),
            )
            .unwrap();
        let timeout = Duration::from_secs(5);
        assert_eq!(counter.call("first", 5, timeout).await.unwrap(), 5);
        assert_eq!(counter.call("second", 2, timeout).await.unwrap(), 7);
        system.shutdown().await;
    }
    // The node's data directory: the tool finds its journal in it.
    let ran = plexspaces(&["--json", "journal", "dump", dir.to_str().unwrap()]).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let records: Vec<Json> = ran.lines_json();
    let message = records
        .iter()
        .find(|r| r["entry"]["entry"] == "message" && r["entry"]["key"] == "first")
        .expect("the first message's entry");
    let stream = message["stream"].as_str().unwrap().to_string();
    assert!(records.iter().any(|r| r["entry"]["entry"] == "reply"
        && r["entry"]["key"] == "second"
        && r["entry"]["ok"] == true));
    // One stream, from a sequence number on.
    let ran = plexspaces(&[
        "--json",
        "journal",
        "dump",
        dir.to_str().unwrap(),
        "--stream",
        &stream,
        "--from",
        "3",
    ])
    .await;
    let later: Vec<Json> = ran.lines_json();
    assert!(!later.is_empty());
    assert!(
        later
            .iter()
            .all(|r| r["stream"] == stream.as_str() && r["seq"].as_u64().unwrap() >= 3)
    );
    assert!(
        !later
            .iter()
            .any(|r| r["entry"]["key"] == "first" && r["entry"]["entry"] == "message")
    );
    // The table names the entries too.
    let ran = plexspaces(&["journal", "dump", dir.to_str().unwrap()]).await;
    assert!(
        ran.stdout.contains("entry=message key=first"),
        "{}",
        ran.stdout
    );
}

trait JsonLines {
    fn lines_json(&self) -> Vec<Json>;
}

impl JsonLines for Ran {
    fn lines_json(&self) -> Vec<Json> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

struct Approval;

impl Workflow for Approval {
    type Input = String;
    type Output = String;
    async fn run(&self, ctx: WorkflowContext, who: String) -> Result<String, WorkflowError> {
        let approved: Option<bool> = ctx
            .wait_for_signal("approve", Duration::from_secs(3600))
            .await?;
        Ok(format!(
            "{who} {}",
            if approved == Some(true) {
                "approved"
            } else {
                "refused"
            }
        ))
    }
}

const SECRET: &str = "cli-test-secret-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_commands_answer_from_a_running_node() {
    let dir = scratch("online");
    std::fs::create_dir_all(&dir).unwrap();
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let config = NodeConfig::parse(
        &format!(
            "[node]\nname = \"cli-node\"\ndata_dir = \"{}\"\n[cluster]\nlisten = \"127.0.0.1:0\"\nsecret_file = \"{}\"\n[journal]\nbackend = \"memory\"\n[operator]\nlisten = \"127.0.0.1:0\"\n",
            dir.join("data").display(),
            secret_file.display()
        ),
        Vec::new(),
    )
    .unwrap();
    let node = Node::start(config).await.unwrap();
    let counters = VirtualActors::register(
        node.system(),
        VirtualConfig::new("counter", node.journal()),
        |_| Counter::default(),
    )
    .unwrap();
    node.register_virtual(&counters).unwrap();
    assert!(node.register_virtual(&counters).is_err(), "a kind once");
    let approvals = Workflows::register(
        node.system(),
        WorkflowConfig::new("approval", node.journal()),
        Approval,
    )
    .unwrap();
    node.register_workflows("approval", &approvals).unwrap();
    let reminders = Reminders::start(node.system(), ReminderConfig::new(node.journal()))
        .await
        .unwrap();
    node.register_reminders(&reminders);
    let timeout = Duration::from_secs(5);
    counters
        .get("c1")
        .unwrap()
        .call("k1", 3, timeout)
        .await
        .unwrap();
    let jobs = node.system().tuplespace("jobs");
    for i in 0..3 {
        jobs.write(tuple!["job", i]).await.unwrap();
    }
    jobs.write(tuple!["other", 1]).await.unwrap();
    let r1 = RunId::new("acme", "r1").unwrap();
    let r2 = RunId::new("acme", "r2").unwrap();
    approvals.start(&r1, &"ada".to_string()).await.unwrap();
    approvals.start(&r2, &"bob".to_string()).await.unwrap();
    let target = ReminderTarget::new("counter", "c1");
    let spec = ReminderSpec {
        name: "nudge".into(),
        first_due: node.env().wall_clock() + Duration::from_secs(86_400),
        recurrence: Recurrence::Once,
    };
    reminders.register(&target, spec, timeout).await.unwrap();

    let addr = node.operator_addr().unwrap().to_string();
    let secret = secret_file.to_str().unwrap().to_string();
    // The CLI with this node's address and secret, then `args`.
    let run_args = |args: &[&str]| {
        let mut all = vec!["--node", addr.as_str(), "--secret-file", secret.as_str()];
        all.extend(args);
        let all: Vec<String> = all.into_iter().map(str::to_string).collect();
        async move { plexspaces(&all.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    // The same, `args` split on spaces.
    let run = |args: &str| run_args(&args.split_whitespace().collect::<Vec<_>>());

    let members = json(&run("--json members").await);
    assert_eq!(members[0]["node"], "cli-node");
    assert_eq!(members[0]["status"], "up");
    let table = run("members").await;
    assert!(table.stdout.starts_with("NODE"), "{}", table.stdout);

    let actors = json(&run("--json actors").await);
    assert!(
        actors["by_kind"]["counter"]["active"].as_u64().unwrap() >= 1,
        "{actors}"
    );

    let listed = json(&run("--json virtual list").await);
    assert_eq!(
        listed,
        serde_json::json!([{ "kind": "counter", "active": ["c1"] }])
    );
    let placed = json(&run("--json virtual where counter c1").await);
    assert_eq!(placed["owner"], "cli-node");
    assert_eq!(placed["active_here"], true);
    let ran = run("virtual where nokind c1").await;
    assert_eq!(ran.code, 1, "an unknown kind is bad news: {}", ran.stderr);

    let runs = json(&run("--json workflows list approval --tenant acme").await);
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme/r1", "acme/r2"]);
    assert!(runs[0]["started_ms"].as_u64().is_some(), "{runs}");
    // A page of one, then the page after it.
    let first = json(&run("--json workflows list approval --tenant acme --limit 1").await);
    assert_eq!(first.as_array().unwrap().len(), 1);
    let next = json(
        &run("--json workflows list approval --tenant acme --after r1 --status running").await,
    );
    assert_eq!(next[0]["run"], "acme/r2");
    let ran = run("workflows list approval --tenant acme --status sleeping").await;
    assert_eq!(ran.code, 1, "an unknown status is bad news: {}", ran.stderr);
    // Neither running run has reached a change called "v2-pricing".
    let usage = json(&run("--json workflows patch approval --tenant acme v2-pricing").await);
    assert_eq!(usage["old_branch"], serde_json::json!([]));
    assert_eq!(usage["undecided"].as_array().unwrap().len(), 2, "{usage}");
    let status = json(&run("--json workflows status approval acme r1").await);
    assert_eq!(status, "Running");
    let ran = run("workflows signal approval acme r1 approve true").await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let output = json(&run("--json workflows result approval acme r1 --wait 10s").await);
    assert_eq!(output, "ada approved");
    let ran = run_args(&[
        "workflows",
        "signal",
        "approval",
        "acme",
        "r2",
        "approve",
        "not json",
    ])
    .await;
    assert_eq!(ran.code, 1, "a signal's value must be JSON");
    let ran = run("workflows cancel approval acme r2").await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let mut cancelled = false;
    for _ in 0..100 {
        let status = json(&run("--json workflows status approval acme r2").await);
        if status.get("Cancelled").is_some() {
            cancelled = true;
            break;
        }
        node.env().sleep(Duration::from_millis(50)).await;
    }
    assert!(cancelled, "the cancelled run ends Cancelled");
    let ran = run("workflows status approval acme nope").await;
    assert_eq!(ran.code, 1, "a run that never started: {}", ran.stderr);

    let listed = json(&run("--json reminders list counter c1").await);
    assert_eq!(listed[0]["name"], "nudge");
    let cancelled = json(&run("--json reminders cancel counter c1 nudge").await);
    assert_eq!(cancelled["cancelled"], true);
    let listed = json(&run("--json reminders list counter c1").await);
    assert_eq!(listed, serde_json::json!([]));

    let spaces = json(&run("--json spaces list").await);
    assert_eq!(spaces, serde_json::json!([{ "name": "jobs", "tuples": 4 }]));
    let count = json(&run("--json spaces count jobs --arity 2 --head job").await);
    assert_eq!(count["count"], 3);
    let count = json(&run("--json spaces count jobs").await);
    assert_eq!(count["count"], 4);

    let ran = run("health").await;
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("alive, ready"), "{}", ran.stdout);

    // Credentials: none, or a wrong secret, are refused (exit 3).
    let ran = plexspaces(&["--node", &addr, "members"]).await;
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    let wrong = dir.join("wrong");
    std::fs::write(&wrong, "another-secret-0123456789").unwrap();
    let ran = plexspaces(&[
        "--node",
        &addr,
        "--secret-file",
        wrong.to_str().unwrap(),
        "members",
    ])
    .await;
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("refused the credentials"),
        "{}",
        ran.stderr
    );

    // Nothing listening: exit 3. A wrong command line: exit 2.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let ran = plexspaces(&["--node", &closed, "--timeout", "2s", "members"]).await;
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert_eq!(plexspaces(&["frobnicate"]).await.code, 2);
    assert_eq!(
        plexspaces(&["workflows", "status", "approval"]).await.code,
        2
    );

    let report = node.shutdown().await;
    assert!(report.drained);
}
