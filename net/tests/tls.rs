//! TLS over the seam's byte streams: mutual authentication against the
//! CA bundle, refusals (another CA, expired, plaintext), the name binding,
//! CA rotation, bad configuration, and that a seeded run's bytes replay.

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use plexspaces_net::tls::test_pki::{TestCa, Validity};
use plexspaces_net::tls::{self, TlsContext, TlsError, TlsMaterial};
use plexspaces_net::{ByteReader, ByteWriter, NetError, NetErrorKind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// One direction of an in-memory stream; every byte sent is also recorded.
struct PipeWriter {
    buf: Vec<u8>,
    tx: Option<mpsc::UnboundedSender<Vec<u8>>>,
    recorded: Arc<Mutex<Vec<u8>>>,
}

struct PipeReader {
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    left: Vec<u8>,
}

fn pipe() -> (PipeWriter, PipeReader, Arc<Mutex<Vec<u8>>>) {
    let (tx, rx) = mpsc::unbounded();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    (
        PipeWriter {
            buf: Vec::new(),
            tx: Some(tx),
            recorded: recorded.clone(),
        },
        PipeReader {
            rx,
            left: Vec::new(),
        },
        recorded,
    )
}

impl ByteWriter for PipeWriter {
    async fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        self.buf.extend_from_slice(buf);
        Ok(())
    }
    async fn flush(&mut self) -> Result<(), NetError> {
        let bytes = std::mem::take(&mut self.buf);
        self.recorded.lock().unwrap().extend_from_slice(&bytes);
        match &mut self.tx {
            Some(tx) if !bytes.is_empty() => tx
                .send(bytes)
                .await
                .map_err(|_| NetError::new(NetErrorKind::ConnectionReset, "flush", None)),
            _ => Ok(()),
        }
    }
    async fn close(&mut self) -> Result<(), NetError> {
        self.flush().await?;
        self.tx = None;
        Ok(())
    }
}

impl ByteReader for PipeReader {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        if self.left.is_empty() {
            match self.rx.next().await {
                Some(chunk) => self.left = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.left.len());
        buf[..n].copy_from_slice(&self.left[..n]);
        self.left.drain(..n);
        Ok(n)
    }
}

/// A seeded random source (SplitMix64), as the simulator's `Rng` seam.
fn seeded(seed: u64) -> tls::RandomSource {
    let state = AtomicU64::new(seed);
    Arc::new(move |buf: &mut [u8]| {
        for chunk in buf.chunks_mut(8) {
            let mut z = state.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    })
}

fn clock_at(at: SystemTime) -> tls::WallClock {
    Arc::new(move || at)
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000)
}

fn context(material: &TlsMaterial, seed: u64) -> TlsContext {
    TlsContext::new(material, seeded(seed), clock_at(now())).unwrap()
}

struct Outcome {
    client: Result<Vec<u8>, String>,
    server: Result<Vec<u8>, String>,
    /// Everything each side put on the wire: client, then server.
    wire: (Vec<u8>, Vec<u8>),
}

/// Handshakes `client` with `server` over a pipe, then the client sends
/// `payload` and the server echoes what it read; each side's result is
/// what it received after the handshake (or why it failed).
async fn exchange(client: TlsContext, server: TlsContext, payload: &[u8]) -> Outcome {
    let (c_out, s_in, c_wire) = pipe();
    let (s_out, c_in, s_wire) = pipe();
    let payload = payload.to_vec();
    let len = payload.len();
    let client_side = async move {
        let mut streams = tls::connect(&client, c_in, c_out)
            .await
            .map_err(|e| e.to_string())?;
        streams
            .writer
            .write_all(&payload)
            .await
            .map_err(|e| e.to_string())?;
        streams.writer.flush().await.map_err(|e| e.to_string())?;
        let mut echo = vec![0u8; len];
        streams
            .reader
            .read_exact(&mut echo)
            .await
            .map_err(|e| e.to_string())?;
        streams.writer.close().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(echo)
    };
    let server_side = async move {
        let mut streams = tls::accept(&server, s_in, s_out)
            .await
            .map_err(|e| e.to_string())?;
        let mut got = vec![0u8; len];
        streams
            .reader
            .read_exact(&mut got)
            .await
            .map_err(|e| e.to_string())?;
        streams
            .writer
            .write_all(&got)
            .await
            .map_err(|e| e.to_string())?;
        streams.writer.flush().await.map_err(|e| e.to_string())?;
        // The client's close_notify reads as a clean end of stream.
        let mut rest = [0u8; 1];
        let end = streams
            .reader
            .read(&mut rest)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(end, 0, "a clean close after the echo");
        Ok::<_, String>(got)
    };
    let (client, server) = futures::join!(client_side, server_side);
    let wire = (
        c_wire.lock().unwrap().clone(),
        s_wire.lock().unwrap().clone(),
    );
    Outcome {
        client,
        server,
        wire,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

const SECRET: &[u8] = b"the plaintext payload of an actor message, 64 bytes long........";

#[tokio::test]
async fn two_nodes_of_one_ca_talk_and_the_wire_never_shows_the_payload() {
    let ca = TestCa::new("cluster-ca", 1);
    let a = ca.material("node-a", Validity::always(), &[]);
    let b = ca.material("node-b", Validity::always(), &[]);
    let outcome = exchange(context(&a, 10), context(&b, 20), SECRET).await;
    assert_eq!(outcome.server.unwrap(), SECRET);
    assert_eq!(outcome.client.unwrap(), SECRET);
    assert!(!outcome.wire.0.is_empty() && !outcome.wire.1.is_empty());
    assert!(
        !contains(&outcome.wire.0, &SECRET[..16]),
        "client bytes are ciphertext"
    );
    assert!(
        !contains(&outcome.wire.1, &SECRET[..16]),
        "server bytes are ciphertext"
    );
}

#[tokio::test]
async fn a_large_payload_crosses_many_records_both_ways() {
    let ca = TestCa::new("cluster-ca", 1);
    let a = ca.material("node-a", Validity::always(), &[]);
    let b = ca.material("node-b", Validity::always(), &[]);
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let outcome = exchange(context(&a, 1), context(&b, 2), &payload).await;
    assert_eq!(outcome.server.unwrap(), payload);
    assert_eq!(outcome.client.unwrap(), payload);
}

#[tokio::test]
async fn the_same_seeds_put_the_same_bytes_on_the_wire() {
    let ca = TestCa::new("cluster-ca", 1);
    let a = ca.material("node-a", Validity::always(), &[]);
    let b = ca.material("node-b", Validity::always(), &[]);
    let first = exchange(context(&a, 5), context(&b, 6), SECRET).await;
    let again = exchange(context(&a, 5), context(&b, 6), SECRET).await;
    let other = exchange(context(&a, 7), context(&b, 6), SECRET).await;
    assert_eq!(
        first.wire, again.wire,
        "a seed replays the handshake exactly"
    );
    assert_ne!(first.wire.0, other.wire.0, "another seed, other bytes");
}

#[tokio::test]
async fn a_peer_certified_by_another_ca_is_refused_by_both_roles() {
    let ca = TestCa::new("cluster-ca", 1);
    let rogue = TestCa::new("rogue-ca", 2);
    let good = ca.material("node-a", Validity::always(), &[]);
    let bad = rogue.material("node-b", Validity::always(), &[]);
    // The rogue dials: the server refuses its client certificate.
    let outcome = exchange(context(&bad, 1), context(&good, 2), SECRET).await;
    assert!(outcome.server.is_err(), "server accepted a rogue client");
    assert!(outcome.client.is_err());
    // The rogue accepts: the client refuses its server certificate.
    let outcome = exchange(context(&good, 1), context(&bad, 2), SECRET).await;
    let err = outcome.client.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(outcome.server.is_err());
}

#[tokio::test]
async fn an_expired_or_not_yet_valid_certificate_is_refused() {
    let ca = TestCa::new("cluster-ca", 1);
    let good = ca.material("node-a", Validity::always(), &[]);
    let hour = Duration::from_secs(3600);
    for (validity, expect) in [
        (
            Validity {
                from: now() - 10 * hour,
                until: now() - hour,
            },
            "Expired",
        ),
        (
            Validity {
                from: now() + hour,
                until: now() + 10 * hour,
            },
            "NotValidYet",
        ),
    ] {
        let stale = ca.material("node-b", validity, &[]);
        // Its own node refuses to start with it...
        let own = TlsContext::new(&stale, seeded(1), clock_at(now()));
        assert!(matches!(own, Err(TlsError::Config(_))), "{own:?}");
        // ...and a node whose clock sees it valid is refused by its peer.
        let inside = validity.from + (validity.until.duration_since(validity.from).unwrap() / 2);
        let stale_ctx = TlsContext::new(&stale, seeded(1), clock_at(inside)).unwrap();
        let outcome = exchange(context(&good, 2), stale_ctx, SECRET).await;
        let err = outcome.client.unwrap_err();
        assert!(err.contains(expect), "{err}");
    }
}

#[tokio::test]
async fn a_plaintext_peer_is_refused() {
    let ca = TestCa::new("cluster-ca", 1);
    let server = context(&ca.material("node-a", Validity::always(), &[]), 1);
    let (mut c_out, s_in, _) = pipe();
    let (s_out, _c_in, _) = pipe();
    // What a plaintext node's first frame looks like: a length, version 2.
    c_out
        .write_all(&[12, 0, 0, 0, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
        .await
        .unwrap();
    c_out.flush().await.unwrap();
    let refused = tls::accept(&server, s_in, s_out).await;
    assert!(matches!(refused, Err(TlsError::Handshake(_))));
}

#[tokio::test]
async fn the_peer_certificate_names_the_node_or_is_refused() {
    let ca = TestCa::new("cluster-ca", 1);
    let a = ca.material("node-a", Validity::always(), &[]);
    let b = ca.material("node-b", Validity::always(), &[]);
    let (c_out, s_in, _) = pipe();
    let (s_out, c_in, _) = pipe();
    let (ca_ctx, cb_ctx) = (context(&a, 1), context(&b, 2));
    let (client, server) = futures::join!(
        tls::connect(&ca_ctx, c_in, c_out),
        tls::accept(&cb_ctx, s_in, s_out)
    );
    let (client, server) = (client.unwrap(), server.unwrap());
    TlsContext::check_peer(&client.peer_certificate, "node-b").unwrap();
    TlsContext::check_peer(&server.peer_certificate, "node-a").unwrap();
    assert!(matches!(
        TlsContext::check_peer(&client.peer_certificate, "node-a"),
        Err(TlsError::WrongPeer { .. })
    ));
    assert!(TlsContext::check_peer(&server.peer_certificate, "not a dns name!").is_err());
}

#[tokio::test]
async fn during_a_ca_rotation_nodes_of_the_old_and_new_ca_talk() {
    let old = TestCa::new("ca-2025", 1);
    let new = TestCa::new("ca-2026", 2);
    // Both trust both; one node still holds an old certificate.
    let a = old.material("node-a", Validity::always(), &[&new]);
    let b = new.material("node-b", Validity::always(), &[&old]);
    let outcome = exchange(context(&a, 1), context(&b, 2), SECRET).await;
    assert_eq!(outcome.client.unwrap(), SECRET);
    // After the rotation, a node trusting only the new CA refuses the old.
    let c = new.material("node-c", Validity::always(), &[]);
    let outcome = exchange(context(&a, 1), context(&c, 2), SECRET).await;
    assert!(outcome.client.is_err() && outcome.server.is_err());
}

#[test]
fn bad_configuration_is_a_typed_error() {
    let ca = TestCa::new("cluster-ca", 1);
    let (cert, key) = ca.issue_pem("node-a", Validity::always());
    let cases: [(&[u8], &[u8], &[u8]); 4] = [
        (b"not pem", cert.as_bytes(), key.as_bytes()),
        (ca.pem().as_bytes(), b"", key.as_bytes()),
        (
            ca.pem().as_bytes(),
            cert.as_bytes(),
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ),
        (ca.pem().as_bytes(), key.as_bytes(), cert.as_bytes()),
    ];
    for (ca_pem, cert_pem, key_pem) in cases {
        let result = TlsMaterial::from_pem(ca_pem, cert_pem, key_pem)
            .and_then(|m| TlsContext::new(&m, seeded(1), clock_at(now())));
        assert!(matches!(result, Err(TlsError::Config(_))), "{result:?}");
    }
    // A certificate of another CA than the bundle's: refused at start.
    let other = TestCa::new("other-ca", 9);
    let material =
        TlsMaterial::from_pem(other.pem().as_bytes(), cert.as_bytes(), key.as_bytes()).unwrap();
    let result = TlsContext::new(&material, seeded(1), clock_at(now()));
    assert!(matches!(result, Err(TlsError::Config(_))), "{result:?}");
}
