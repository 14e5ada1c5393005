//! An adversary on the simulated network: a node that does not know the
//! cluster secret and attacks the cluster's nodes and its journal server,
//! over and over, while the nemesis does its work:
//!
//! - dialing with a wrong secret;
//! - a well-formed `Hello` answered by a forged `Proof`;
//! - a recorded legitimate handshake (a real node's `Hello` and `Proof`,
//!   made with the secret against another acceptor) replayed;
//! - garbage bytes, a header announcing the whole frame limit, and
//!   journal requests before any handshake.
//!
//! It records whether it was ever admitted (a `Welcome`, or any answer to
//! a request). The oracle of a scenario that runs it: never admitted, no
//! crash (a panic ends the simulation), and the scenario's own oracles
//! still hold: the workload is unaffected.

use plexspaces::Env;
use plexspaces::net::wire::{
    self, ClusterSecret, FrameReader, FrameWriter, Identity, JournalOp, WireMessage,
};
use plexspaces::net::{ByteWriter, Connection, DynReader, Listener, Net};
use plexspaces::seams::{Clock, Rng};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the adversary did and got.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attacks {
    /// Connections opened and attacks run on them.
    pub tried: u64,
    /// Of those, recorded legitimate handshakes replayed.
    pub replayed: u64,
    /// Attacks that got past the handshake: each is a violation.
    pub admitted: Vec<String>,
}

/// Bytes a writer was asked to send, kept (to record a handshake).
struct Recording(Arc<Mutex<Vec<u8>>>, plexspaces::net::DynWriter);

impl ByteWriter for Recording {
    async fn write_all(&mut self, buf: &[u8]) -> Result<(), plexspaces::net::NetError> {
        self.0.lock().unwrap().extend_from_slice(buf);
        self.1.write_all(buf).await
    }
    async fn flush(&mut self) -> Result<(), plexspaces::net::NetError> {
        self.1.flush().await
    }
    async fn close(&mut self) -> Result<(), plexspaces::net::NetError> {
        self.1.close().await
    }
}

/// A legitimate dialer's handshake bytes (its `Hello` and `Proof`), made
/// with the cluster secret against an acceptor of the adversary's own on
/// `listen`: what someone watching the wire could record.
async fn record_handshake(
    env: &Env,
    listen: SocketAddr,
    secret: &ClusterSecret,
) -> Option<Vec<u8>> {
    let mut listener = env.net().listen(listen).await.ok()?;
    let acceptor_secret = secret.clone();
    let accepting = env.spawn(async move {
        let (connection, _) = listener.accept().await.ok()?;
        let (r, w) = connection.split();
        let mut reader = FrameReader::new(r, wire::MAX_FRAME_LEN_DEFAULT);
        let mut writer = FrameWriter::new(w, wire::MAX_FRAME_LEN_DEFAULT);
        let me = Identity {
            node: "recorded-acceptor".into(),
            listen,
            incarnation: 1,
        };
        wire::handshake::accept(&mut reader, &mut writer, &acceptor_secret, &me, [3; 32])
            .await
            .ok()
    });
    let (r, w) = env.net().connect(listen).await.ok()?.split();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let mut reader = FrameReader::new(r, wire::MAX_FRAME_LEN_DEFAULT);
    let mut writer = FrameWriter::new(Recording(sent.clone(), w), wire::MAX_FRAME_LEN_DEFAULT);
    let me = Identity {
        node: "n0".into(),
        listen,
        incarnation: 7,
    };
    wire::handshake::dial(&mut reader, &mut writer, secret, &me, [4; 32])
        .await
        .ok()?;
    accepting.await.ok()??;
    let bytes = sent.lock().unwrap().clone();
    Some(bytes)
}

/// Reads what the target sends until it closes (or 3 s pass): any
/// `Welcome` or journal answer means the attack was admitted.
async fn admitted(env: &Env, reader: DynReader) -> bool {
    let mut frames = FrameReader::new(reader, wire::MAX_FRAME_LEN_DEFAULT);
    let reading = async {
        loop {
            match frames.read_frame().await {
                Ok(WireMessage::Welcome | WireMessage::JournalResult { .. }) => return true,
                Ok(WireMessage::Heartbeat { .. } | WireMessage::Tell { .. }) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    };
    env.timeout(Duration::from_secs(3), reading)
        .await
        .unwrap_or(false)
}

/// Attacks `targets` (nodes and journal servers) until `until` (virtual
/// time on `env`'s clock), recording into `record`. `listen` is a free
/// address of the adversary's own, for recording a handshake.
pub async fn run(
    env: Env,
    targets: Vec<SocketAddr>,
    listen: SocketAddr,
    until: Duration,
    record: Arc<Mutex<Attacks>>,
) {
    let secret = ClusterSecret::new(crate::cluster_setup::SECRET).expect("the simulated secret");
    let recorded = record_handshake(&env, listen, &secret).await;
    let wrong = ClusterSecret::new(*b"not-the-cluster-secret!").expect("long enough");
    let end = env.now() + until;
    while env.now() < end {
        env.sleep(Duration::from_millis(env.gen_range(50..400)))
            .await;
        let target = targets[env.gen_range(0..targets.len() as u64) as usize];
        let Ok(connection) = env.net().connect(target).await else {
            continue;
        };
        let (r, mut w) = connection.split();
        let attack = env.gen_range(0..6);
        let mut nonce = [0u8; 32];
        env.fill_bytes(&mut nonce);
        let stranger = Identity {
            node: "intruder".into(),
            listen,
            incarnation: env.next_u64(),
        };
        let got_in = match attack {
            // The wrong secret, through the real handshake.
            0 => {
                let mut reader = FrameReader::new(r, wire::MAX_FRAME_LEN_DEFAULT);
                let mut writer = FrameWriter::new(w, wire::MAX_FRAME_LEN_DEFAULT);
                wire::handshake::dial(&mut reader, &mut writer, &wrong, &stranger, nonce)
                    .await
                    .is_ok()
            }
            // A Hello, then a forged proof.
            1 => {
                let mut writer = FrameWriter::new(w, wire::MAX_FRAME_LEN_DEFAULT);
                let hello = WireMessage::Hello {
                    node: stranger.node.clone(),
                    listen,
                    incarnation: stranger.incarnation,
                    nonce,
                };
                let mut forged = [0u8; 32];
                env.fill_bytes(&mut forged);
                let _ = writer.send(&hello).await;
                let _ = writer.send(&WireMessage::Proof { proof: forged }).await;
                admitted(&env, r).await
            }
            // A legitimate node's recorded handshake, replayed.
            2 => match &recorded {
                Some(bytes) => {
                    record.lock().unwrap().replayed += 1;
                    let _ = w.write_all(bytes).await;
                    let _ = w.flush().await;
                    admitted(&env, r).await
                }
                None => false,
            },
            // Garbage.
            3 => {
                let mut garbage = vec![0u8; env.gen_range(1..2000) as usize];
                env.fill_bytes(&mut garbage);
                let _ = w.write_all(&garbage).await;
                let _ = w.flush().await;
                admitted(&env, r).await
            }
            // A header announcing the whole frame limit, then a trickle.
            4 => {
                let mut header = (wire::MAX_FRAME_LEN_DEFAULT - 1).to_le_bytes().to_vec();
                header.push(wire::PROTOCOL_VERSION);
                header.extend_from_slice(&[0; 7]);
                let _ = w.write_all(&header).await;
                let _ = w.flush().await;
                admitted(&env, r).await
            }
            // A journal request with no handshake at all.
            _ => {
                let mut writer = FrameWriter::new(w, wire::MAX_FRAME_LEN_DEFAULT);
                let call = WireMessage::JournalCall {
                    request: 1,
                    op: JournalOp::Claim {
                        stream: "space:plain".into(),
                    },
                };
                let _ = writer.send(&call).await;
                admitted(&env, r).await
            }
        };
        let mut record = record.lock().unwrap();
        record.tried += 1;
        if got_in {
            record
                .admitted
                .push(format!("attack {attack} admitted by {target}"));
        }
    }
}
