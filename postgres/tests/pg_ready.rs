//! Readiness with a PostgreSQL journal: a server of the test's own
//! (`scripts/postgres.sh`, on a port of its own, so the other tests keep
//! theirs) is stopped and started again under a node watching its journal;
//! `/ready`, probed over HTTP on loopback, turns 503 naming the journal
//! while the server is down and 200 again once it is back (the journal
//! reconnects).

use plexspaces::actor::ActorSystem;
use plexspaces::durability::JournalBackend;
use plexspaces::net::{ByteReader, ByteWriter, Connection, Net};
use plexspaces::observability::OperatorEndpoint;
use plexspaces::seams::Clock;
use plexspaces::{Env, NodeName};
use plexspaces_postgres::{PgJournal, PgJournalConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn script(action: &str, dir: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres.sh");
    let out = Command::new(script)
        .arg(action)
        .arg(dir)
        .env("PLEXSPACES_PG_PORT", "55460")
        .output()
        .expect("scripts/postgres.sh runs");
    assert!(
        out.status.success(),
        "postgres.sh {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Stops the test's server however the test ends.
struct Server(PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| script("stop", &self.0));
    }
}

async fn ready(env: &Env, addr: SocketAddr) -> (u16, serde_json::Value) {
    let (mut input, mut output) = env.net().connect(addr).await.unwrap().split();
    let request = "GET /ready HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n";
    output.write_all(request.as_bytes()).await.unwrap();
    output.flush().await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match input.read(&mut buf).await.unwrap() {
            0 => break,
            n => response.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

/// Probes until the status is `want`, for at most `within`.
async fn until(env: &Env, addr: SocketAddr, want: u16, within: Duration) -> serde_json::Value {
    let deadline = env.now() + within;
    loop {
        let (status, body) = ready(env, addr).await;
        if status == want {
            return body;
        }
        assert!(env.now() < deadline, "/ready stayed {status}: {body}");
        env.sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn readiness_follows_the_postgres_journal() {
    assert!(
        std::env::var("PLEXSPACES_PG").is_ok(),
        "PLEXSPACES_PG is not set: run ./scripts/test.sh (it installs and starts PostgreSQL)"
    );
    let dir = std::env::temp_dir().join(format!("plexspaces-pg-ready-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exports = script("start", &dir);
    let server = Server(dir.clone());
    let connection = exports
        .split('\'')
        .nth(1)
        .expect("the script prints the connection string")
        .to_string();

    let env = Env::tokio(NodeName::new("pg-ready").unwrap());
    let journal = PgJournal::connect(env.clone(), PgJournalConfig::new(connection))
        .await
        .unwrap();
    let system = ActorSystem::new(env.clone());
    system.health().set_check_timeout(Duration::from_secs(2));
    system
        .health()
        .watch_journal("journal", JournalBackend::custom(journal))
        .unwrap();
    let endpoint = OperatorEndpoint::serve(&system, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = endpoint.local_addr();

    until(&env, addr, 200, Duration::from_secs(10)).await;
    script("pause", &server.0);
    let body = until(&env, addr, 503, Duration::from_secs(10)).await;
    assert_eq!(body["checks"]["journal"]["healthy"], false, "{body}");
    assert_eq!(body["checks"]["shutdown"]["healthy"], true, "{body}");
    script("resume", &server.0);
    let body = until(&env, addr, 200, Duration::from_secs(20)).await;
    assert_eq!(body["checks"]["journal"]["healthy"], true, "{body}");
}
