//! Capability benchmark: what the capability facets cost over the bare
//! clients they wrap, each measured in the same run as its floor.
//!
//! - Key-value get and set, sequential, on every backend: memory against
//!   a bare `Mutex<BTreeMap>`; embedded (memory journal, file journal)
//!   against the journal's own append of the same record; Redis against
//!   raw `GET`/`SET` on the same server; PostgreSQL against a raw
//!   `SELECT`/upsert on the same server (Redis and PostgreSQL only when
//!   `PLEXSPACES_REDIS` / `PLEXSPACES_PG` are set).
//! - HTTP: a GET of a small body through the HTTP client (facet's client:
//!   retries, breaker, metrics, over the `Net` seam) against a bare hyper
//!   client on a tokio `TcpStream`, both keeping their connection, both
//!   to the same loopback server.
//! - Blobs: 1 MiB put and get throughput on the Disk-seam store against
//!   object_store's own local file store (which does not fsync: the
//!   Disk-seam store syncs every put, so its put is also shown against a
//!   raw write + fdatasync of the same bytes).
//!
//! ```text
//! cargo run --release -p plexspaces-bench --bin capability_bench [-- --quick]
//! ```

// A benchmark measures real time and touches files directly (the floors).
#![allow(clippy::disallowed_methods, clippy::disallowed_types, missing_docs)]

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use object_store::ObjectStore;
use object_store::path::Path;
use plexspaces::capabilities::blob::DiskObjectStore;
use plexspaces::capabilities::http::{
    HttpClient, HttpClientConfig, HttpHandler, HttpResponse, HttpServer, ServedRequest,
};
use plexspaces::capabilities::kv::{EmbeddedKv, KvStore, MemoryKv};
use plexspaces::durability::JournalBackend;
use plexspaces::storage::journal::{Journal, JournalConfig};
use plexspaces::{Env, NodeName};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Mean time per operation of `n` sequential runs of `op`.
async fn per_op<F, Fut>(n: u32, mut op: F) -> Duration
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    for i in 0..n {
        op(i).await;
    }
    started.elapsed() / n
}

fn row(what: &str, ours: Duration, floor: Duration, floor_name: &str) {
    println!(
        "{what:<34} {:>10.2} µs  {floor_name:<26} {:>10.2} µs  ratio {:>5.2}x",
        ours.as_secs_f64() * 1e6,
        floor.as_secs_f64() * 1e6,
        ours.as_secs_f64() / floor.as_secs_f64()
    );
}

/// A backend's set and get against their floors: `(time, name)` each.
async fn kv_rows(
    name: &str,
    store: &dyn KvStore,
    n: u32,
    floor_set: (Duration, &str),
    floor_get: (Duration, &str),
) {
    let value = vec![7u8; 100];
    let set = per_op(n, |i| {
        let value = value.clone();
        async move {
            store
                .set(&format!("k{}", i % 1000), value, None, now())
                .await
                .unwrap();
        }
    })
    .await;
    let get = per_op(n, |i| async move {
        store.get(&format!("k{}", i % 1000), now()).await.unwrap();
    })
    .await;
    row(
        &format!("kv {name} set (100 B)"),
        set,
        floor_set.0,
        floor_set.1,
    );
    row(&format!("kv {name} get"), get, floor_get.0, floor_get.1);
}

async fn kv(quick: bool) {
    let n = if quick { 2_000 } else { 20_000 };
    println!("== key-value, sequential, {n} ops each");
    // Memory against a bare locked map.
    let map: Mutex<BTreeMap<String, Vec<u8>>> = Mutex::new(BTreeMap::new());
    let floor_set = per_op(n, |i| {
        map.lock()
            .unwrap()
            .insert(format!("k{}", i % 1000), vec![7u8; 100]);
        async {}
    })
    .await;
    let floor_get = per_op(n, |i| {
        std::hint::black_box(map.lock().unwrap().get(&format!("k{}", i % 1000)).cloned());
        async {}
    })
    .await;
    kv_rows(
        "memory",
        &MemoryKv::default(),
        n,
        (floor_set, "Mutex<BTreeMap> insert"),
        (floor_get, "Mutex<BTreeMap> get"),
    )
    .await;

    // Embedded on both journals against the journal's own append; its
    // reads are from memory, against the same locked map.
    let record = vec![7u8; 120];
    let journal = JournalBackend::memory();
    let append = per_op(n, |_| {
        let (journal, record) = (journal.clone(), record.clone());
        async move {
            journal.append("floor", &record).await.unwrap();
        }
    })
    .await;
    let store = EmbeddedKv::open(JournalBackend::memory(), "bench", 100_000)
        .await
        .unwrap();
    kv_rows(
        "embedded/memory journal",
        &store,
        n,
        (append, "journal append (memory)"),
        (floor_get, "Mutex<BTreeMap> get"),
    )
    .await;

    let dir = std::env::temp_dir().join(format!("plexspaces-capbench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let env = Env::tokio(NodeName::new("bench").unwrap())
        .with_data_dir(&dir)
        .await
        .unwrap();
    let file = JournalBackend::file(&env, JournalConfig::default())
        .await
        .unwrap();
    let durable_n = n / 10;
    let append = per_op(durable_n, |_| {
        let (file, record) = (file.clone(), record.clone());
        async move {
            file.append("floor", &record).await.unwrap();
        }
    })
    .await;
    let store = EmbeddedKv::open(file, "bench", 100_000).await.unwrap();
    kv_rows(
        "embedded/file journal",
        &store,
        durable_n,
        (append, "journal append (file)"),
        (floor_get, "Mutex<BTreeMap> get"),
    )
    .await;

    if let Ok(url) = std::env::var("PLEXSPACES_REDIS") {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut raw = client.get_multiplexed_async_connection().await.unwrap();
        let floor_set = per_op(n, |i| {
            let mut raw = raw.clone();
            async move {
                let _: () = redis::cmd("SET")
                    .arg(format!("floor:k{}", i % 1000))
                    .arg(vec![7u8; 100])
                    .query_async(&mut raw)
                    .await
                    .unwrap();
            }
        })
        .await;
        let floor_get = per_op(n, |i| {
            let mut raw = raw.clone();
            async move {
                let _: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(format!("floor:k{}", i % 1000))
                    .query_async(&mut raw)
                    .await
                    .unwrap();
            }
        })
        .await;
        let store =
            plexspaces_redis::RedisKv::connect(&url, &format!("bench-{}", std::process::id()))
                .await
                .unwrap();
        kv_rows(
            "redis",
            &store,
            n,
            (floor_set, "raw SET"),
            (floor_get, "raw GET"),
        )
        .await;
        let _: () = redis::cmd("FLUSHDB").query_async(&mut raw).await.unwrap();
    } else {
        println!("kv redis: skipped (PLEXSPACES_REDIS not set)");
    }

    if let Ok(connection) = std::env::var("PLEXSPACES_PG") {
        let (client, driver) = tokio_postgres::connect(&connection, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(driver);
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS bench_floor (key TEXT PRIMARY KEY, value BYTEA NOT NULL)")
            .await
            .unwrap();
        let set = client.prepare("INSERT INTO bench_floor VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value").await.unwrap();
        let get = client
            .prepare("SELECT value FROM bench_floor WHERE key = $1")
            .await
            .unwrap();
        let pg_n = n / 4;
        let floor_set = per_op(pg_n, |i| {
            let (client, set) = (&client, &set);
            async move {
                client
                    .execute(set, &[&format!("k{}", i % 1000), &vec![7u8; 100]])
                    .await
                    .unwrap();
            }
        })
        .await;
        let floor_get = per_op(pg_n, |i| {
            let (client, get) = (&client, &get);
            async move {
                client
                    .query_opt(get, &[&format!("k{}", i % 1000)])
                    .await
                    .unwrap();
            }
        })
        .await;
        let store = plexspaces_postgres::PgKv::connect(
            env.clone(),
            &connection,
            &format!("bench-{}", std::process::id()),
        )
        .await
        .unwrap();
        kv_rows(
            "postgres",
            &store,
            pg_n,
            (floor_set, "raw prepared upsert"),
            (floor_get, "raw prepared SELECT"),
        )
        .await;
        client
            .batch_execute("DROP TABLE bench_floor")
            .await
            .unwrap();
    } else {
        println!("kv postgres: skipped (PLEXSPACES_PG not set)");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn http(quick: bool) {
    let n = if quick { 2_000 } else { 20_000 };
    println!("== HTTP GET of 64 B on loopback, keep-alive, {n} requests each, interleaved rounds");
    let env = Env::tokio(NodeName::new("bench-http").unwrap());
    let handler: HttpHandler =
        Arc::new(|_: ServedRequest| Box::pin(async { HttpResponse::new(200, vec![b'x'; 64]) }));
    let server = HttpServer::serve(&env, "127.0.0.1:0".parse().unwrap(), None, handler)
        .await
        .unwrap();
    let addr = server.local_addr();
    let ours = HttpClient::new(
        &env,
        HttpClientConfig::new(&format!("http://{addr}"))
            .unwrap()
            .name("bench"),
    )
    .unwrap();

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut bare, driver) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(driver);

    let rounds = 5;
    let (mut ours_total, mut bare_total) = (Duration::ZERO, Duration::ZERO);
    let mut ratios = Vec::new();
    for _ in 0..rounds {
        let o = per_op(n / rounds, |_| {
            let ours = ours.clone();
            async move {
                let response = ours.get("/x").await.unwrap();
                assert_eq!(response.body.len(), 64);
            }
        })
        .await;
        let started = Instant::now();
        for _ in 0..n / rounds {
            bare.ready().await.unwrap();
            let request = hyper::Request::get("/x")
                .header("host", addr.to_string())
                .body(Empty::<Bytes>::new())
                .unwrap();
            let response = bare.send_request(request).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body.len(), 64);
        }
        let b = started.elapsed() / (n / rounds);
        ours_total += o;
        bare_total += b;
        ratios.push(o.as_secs_f64() / b.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    row(
        "http GET through the client",
        ours_total / rounds,
        bare_total / rounds,
        "bare hyper on TcpStream",
    );
    println!(
        "  median of per-round ratios: {:.2}x",
        ratios[ratios.len() / 2]
    );
}

async fn blobs(quick: bool) {
    let n = if quick { 20 } else { 100 };
    let size = 1024 * 1024;
    println!("== blobs, {n} objects of 1 MiB each");
    let data = Bytes::from(vec![5u8; size]);
    let dir =
        std::env::temp_dir().join(format!("plexspaces-capbench-blobs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("local")).unwrap();
    let env = Env::tokio(NodeName::new("bench-blobs").unwrap())
        .with_data_dir(dir.join("node"))
        .await
        .unwrap();
    let ours = DiskObjectStore::open(&env, "blobs").await.unwrap();
    let local = object_store::local::LocalFileSystem::new_with_prefix(dir.join("local")).unwrap();
    let stores: [(&str, &dyn ObjectStore); 2] =
        [("disk-seam store", &ours), ("object_store local", &local)];
    let mut results = Vec::new();
    for (name, store) in stores {
        let put = per_op(n, |i| {
            let data = data.clone();
            async move {
                store
                    .put(&Path::from(format!("o/{i}")), data.into())
                    .await
                    .unwrap();
            }
        })
        .await;
        let get = per_op(n, |i| async move {
            let got = store
                .get(&Path::from(format!("o/{i}")))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(got.len(), size);
        })
        .await;
        results.push((name, put, get));
    }
    // The physical floor of a durable put: the same bytes written and
    // fdatasynced to a new file.
    let floor_dir = dir.join("floor");
    std::fs::create_dir_all(&floor_dir).unwrap();
    let floor = per_op(n, |i| {
        use std::io::Write;
        let mut file = std::fs::File::create(floor_dir.join(format!("f{i}"))).unwrap();
        file.write_all(&data).unwrap();
        file.sync_data().unwrap();
        async {}
    })
    .await;
    let mib = |d: Duration| size as f64 / d.as_secs_f64() / (1024.0 * 1024.0);
    let (_, our_put, our_get) = results[0];
    let (_, peer_put, peer_get) = results[1];
    println!(
        "put: disk-seam {:.0} MiB/s, object_store local {:.0} MiB/s (ratio {:.2}x; it does not fsync), write+fdatasync floor {:.0} MiB/s (ratio {:.2}x)",
        mib(our_put),
        mib(peer_put),
        mib(our_put) / mib(peer_put),
        mib(floor),
        mib(our_put) / mib(floor)
    );
    println!(
        "get: disk-seam {:.0} MiB/s, object_store local {:.0} MiB/s (ratio {:.2}x; ours checks a SHA-256 of every whole read)",
        mib(our_get),
        mib(peer_get),
        mib(our_get) / mib(peer_get)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    kv(quick).await;
    http(quick).await;
    blobs(quick).await;
}
