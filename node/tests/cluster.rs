//! Real node processes on loopback, journaling to PostgreSQL
//! (`PLEXSPACES_PG`, started by `scripts/test.sh`), told to stop with real
//! signals while this test's own node keeps depositing into their
//! accounts:
//!
//! - SIGTERM: the node hands its accounts off; no call fails, none waits
//!   for failure detection (`down_after`), no acknowledged deposit is lost;
//! - SIGKILL: the node's accounts reactivate on the others from
//!   PostgreSQL; every call still succeeds within its timeout and no
//!   acknowledged deposit is lost.

// These tests act as an operator does, from outside any node: they
// write configuration files, damage journal files and start processes on
// the real file system, which no node's Disk seam would do for them.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use futures::future::join_all;
use plexspaces::prelude::*;
use plexspaces_node::demo_bank::{self, AccountOp, Bank};
use plexspaces_node::{Node, NodeConfig};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const SECRET: &str = "cluster-test-secret-0123456789";

fn pg() -> String {
    std::env::var("PLEXSPACES_PG").unwrap_or_else(|_| {
        panic!(
            "PLEXSPACES_PG is not set: run ./scripts/test.sh (it starts a throwaway \
             PostgreSQL), or point PLEXSPACES_PG at a server"
        )
    })
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

struct Cluster {
    dir: PathBuf,
    seed: SocketAddr,
    down_after: &'static str,
}

struct Process {
    child: tokio::process::Child,
    operator: SocketAddr,
    log: PathBuf,
}

impl Cluster {
    fn new(test: &str, down_after: &'static str) -> Cluster {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cluster-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("secret"), SECRET).unwrap();
        Cluster {
            dir,
            seed: free_port(),
            down_after,
        }
    }

    fn config(&self, name: &str, listen: SocketAddr, operator: SocketAddr) -> String {
        format!(
            "[node]\nname = \"{name}\"\ndata_dir = \"{dir}/data-{name}\"\n\
             [cluster]\nlisten = \"{listen}\"\nseeds = [\"{seed}\"]\nsecret_file = \"{dir}/secret\"\n\
             down_after = \"{down}\"\n\
             [journal]\nbackend = \"postgres\"\npostgres = \"{pg}\"\n\
             [operator]\nlisten = \"{operator}\"\n[log]\nlevel = \"warn\"\n",
            dir = self.dir.display(),
            seed = self.seed,
            down = self.down_after,
            pg = pg(),
        )
    }

    /// Starts node `name` and waits until its operator endpoint answers.
    /// A port picked free may be taken before the node binds it (tests run
    /// in parallel): such a start is tried again on fresh ports (node a
    /// is the seed, so it moves the seed, before the others start).
    async fn start(&mut self, name: &str) -> Process {
        let env = Env::tokio(NodeName::new("harness").unwrap());
        for _ in 0..5 {
            if name == "a" {
                self.seed = free_port();
            }
            let mut process = self.spawn(name);
            for waited in 0.. {
                assert!(
                    waited < 600,
                    "{name} did not answer in 30 s: {}",
                    process.log()
                );
                if let Some(exit) = process.child.try_wait().unwrap() {
                    let log = process.log();
                    assert!(log.contains("AddrInUse"), "{name} exited ({exit}): {log}");
                    break; // its port was taken: again, on others
                }
                if tokio::net::TcpStream::connect(process.operator)
                    .await
                    .is_ok()
                {
                    return process;
                }
                env.sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("{name} found no free ports in five tries");
    }

    fn spawn(&self, name: &str) -> Process {
        let listen = if name == "a" { self.seed } else { free_port() };
        let operator = free_port();
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&path, self.config(name, listen, operator)).unwrap();
        let log = self.dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_plexspaces-demo-bank"))
            .arg("serve")
            .arg(&path)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("the demo service starts");
        Process {
            child,
            operator,
            log,
        }
    }

    /// This test's own node in the cluster, with the bank's kinds.
    async fn client(&self) -> (Node, Bank) {
        let text = self.config(
            "tester",
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        );
        let node = Node::start(NodeConfig::parse(&text, Vec::new()).unwrap())
            .await
            .unwrap();
        let bank = demo_bank::register(&node).unwrap();
        (node, bank)
    }
}

impl Process {
    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

async fn cli(operator: SocketAddr, dir: &std::path::Path, args: &[&str]) -> Json {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_plexspaces"))
        .arg("--node")
        .arg(operator.to_string())
        .arg("--secret-file")
        .arg(dir.join("secret"))
        .arg("--json")
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "plexspaces {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn wait_members_up(node: &Node, count: usize) {
    let dist = node.distribution().unwrap();
    dist.wait_for(Duration::from_secs(30), |members| {
        members
            .iter()
            .filter(|m| m.status == plexspaces::distribution::MemberStatus::Up)
            .count()
            >= count
    })
    .await
    .unwrap_or_else(|_| panic!("{count} members up: {:?}", dist.members()));
}

/// What the depositors saw.
#[derive(Default)]
struct Ledger {
    acknowledged: BTreeMap<String, i64>,
    failures: Vec<String>,
    slowest: Duration,
}

/// Deposits 1 into the accounts in turn, from `workers` concurrent
/// callers, each under a fresh key, until `stop`.
async fn deposit_until(
    node: &Node,
    bank: &Bank,
    accounts: &[String],
    workers: usize,
    timeout: Duration,
    stop: &AtomicBool,
    ledger: &Mutex<Ledger>,
) {
    let env = node.env().clone();
    join_all((0..workers).map(|w| {
        let env = env.clone();
        async move {
            let mut i = w;
            while !stop.load(Ordering::SeqCst) {
                let id = &accounts[i % accounts.len()];
                let key = format!("w{w}-{i}");
                let started = env.now();
                let answer = bank
                    .accounts
                    .get(id)
                    .unwrap()
                    .call(&key, AccountOp::Deposit(1), timeout)
                    .await;
                let took = env.now().saturating_duration_since(started);
                let mut ledger = ledger.lock().unwrap();
                ledger.slowest = ledger.slowest.max(took);
                match answer {
                    Ok(_) => *ledger.acknowledged.entry(id.clone()).or_default() += 1,
                    Err(e) => ledger.failures.push(format!("{id} {key}: {e}")),
                }
                i += workers;
            }
        }
    }))
    .await;
}

/// Every account's balance is its opening nothing plus each acknowledged
/// deposit once.
async fn check_balances(bank: &Bank, accounts: &[String], ledger: &Ledger) {
    for id in accounts {
        let balance = bank
            .accounts
            .get(id)
            .unwrap()
            .query(AccountOp::Balance, Duration::from_secs(15))
            .await
            .unwrap();
        let acknowledged = ledger.acknowledged.get(id).copied().unwrap_or(0);
        assert_eq!(
            balance, acknowledged,
            "{id}: acknowledged deposits lost or doubled"
        );
    }
}

async fn active_on(process: &Process, dir: &std::path::Path) -> Vec<String> {
    let listed = cli(process.operator, dir, &["virtual", "list"]).await;
    listed[0]["active"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect()
}

fn accounts(test: &str) -> Vec<String> {
    (0..24)
        .map(|i| format!("{test}-{}-{i}", std::process::id()))
        .collect()
}

/// What one run of the scenario leaves for its test to check.
struct Run {
    cluster: Cluster,
    a: Process,
    b: Process,
    c: Process,
    node: Node,
    /// The accounts active on b just before it was stopped.
    on_b: Vec<String>,
    ledger: Ledger,
}

/// Starts nodes a, b and c and this test's node, deposits into 24
/// accounts from eight callers, and after two seconds has `stop_b` stop
/// b (it returns once the callers may stop). Then checks what holds
/// however b stopped: no call failed, every balance is its acknowledged
/// deposits, and b's accounts are owned by another node.
async fn deposit_while(
    test: &str,
    down_after: &'static str,
    stop_b: impl AsyncFnOnce(&mut Process, &Env),
) -> Run {
    let mut cluster = Cluster::new(test, down_after);
    let a = cluster.start("a").await;
    let mut b = cluster.start("b").await;
    let c = cluster.start("c").await;
    let (node, bank) = cluster.client().await;
    wait_members_up(&node, 4).await;
    let ids = accounts(test);
    let stop = AtomicBool::new(false);
    let ledger = Mutex::new(Ledger::default());
    let env = node.env().clone();
    let control = async {
        env.sleep(Duration::from_secs(2)).await;
        let on_b = active_on(&b, &cluster.dir).await;
        assert!(!on_b.is_empty(), "b hosts some of the 24 accounts");
        stop_b(&mut b, &env).await;
        stop.store(true, Ordering::SeqCst);
        on_b
    };
    let depositing = deposit_until(
        &node,
        &bank,
        &ids,
        8,
        Duration::from_secs(20),
        &stop,
        &ledger,
    );
    let (on_b, ()) = futures::join!(control, depositing);
    let ledger = ledger.into_inner().unwrap();
    assert!(
        ledger.failures.is_empty(),
        "calls failed: {:?}",
        ledger.failures
    );
    check_balances(&bank, &ids, &ledger).await;
    for id in &on_b {
        let placed = cli(
            a.operator,
            &cluster.dir,
            &["virtual", "where", "account", id],
        )
        .await;
        assert_ne!(placed["owner"], "b", "{id}: {placed}");
        assert!(
            ledger.acknowledged.get(id).copied().unwrap_or(0) > 0,
            "{id} took deposits"
        );
    }
    Run {
        cluster,
        a,
        b,
        c,
        node,
        on_b,
        ledger,
    }
}

/// b's status in `node`'s member list, as the CLI shows it.
async fn status_of_b(node: &Process, dir: &std::path::Path) -> String {
    let members = cli(node.operator, dir, &["members"]).await;
    members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["node"] == "b")
        .and_then(|m| m["status"].as_str())
        .unwrap_or_else(|| panic!("b is a member: {members}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_told_to_stop_hands_its_accounts_off_without_losing_an_update() {
    // Failure detection would take 6 s: a hand-off must not wait for it.
    let run = deposit_while("graceful", "6s", async |b: &mut Process, env: &Env| {
        b.signal("-TERM");
        let exited = env
            .timeout(Duration::from_secs(30), b.child.wait())
            .await
            .expect("b stops within its shutdown deadline")
            .unwrap();
        assert_eq!(
            exited.code(),
            Some(0),
            "a graceful shutdown exits 0: {}",
            b.log()
        );
        env.sleep(Duration::from_secs(1)).await;
    })
    .await;
    assert!(
        run.ledger.slowest < Duration::from_secs(3),
        "a call waited {:?}: the hand-off waited for failure detection",
        run.ledger.slowest
    );
    let log = run.b.log();
    let handed_off: usize = log
        .lines()
        .find_map(|l| l.strip_prefix("stopped: "))
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("b reports its hand-off: {log}"));
    assert!(handed_off >= 1 && !run.on_b.is_empty(), "{log}");
    let status = status_of_b(&run.c, &run.cluster.dir).await;
    assert!(matches!(status.as_str(), "leaving" | "down"), "{status}");
    run.node.shutdown().await;
    drop(run.a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_accounts_reactivate_elsewhere_from_postgres() {
    let run = deposit_while("killed", "2s", async |b: &mut Process, env: &Env| {
        b.child.start_kill().unwrap(); // SIGKILL: no goodbye, nothing flushed
        b.child.wait().await.unwrap();
        // Past failure detection, and more deposits after it.
        env.sleep(Duration::from_secs(5)).await;
    })
    .await;
    assert_eq!(status_of_b(&run.a, &run.cluster.dir).await, "down");
    run.node.shutdown().await;
    drop(run.c);
}
