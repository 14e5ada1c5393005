//! The shared journal's client: a `Journal` whose streams live on a
//! journal server, with this node's claims (epochs) kept per stream.

use crate::env::Env;
use crate::seams::{Clock, Rng};
use crate::security::{self, NodeTls, Role};
use plexspaces_net::wire::{
    self, ClusterSecret, FrameReader, FrameWriter, Identity, JournalOp, JournalOutcome,
    MAX_FRAME_LEN_DEFAULT, WireMessage,
};
use plexspaces_net::{Connection, DynReader, DynWriter, Net};
use plexspaces_storage::journal::claims::{Claim, Claims};
use plexspaces_storage::journal::{Checkpoint, Journal, JournalError};
use plexspaces_storage::sync::LockExt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the journal server is and how long to wait for it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SharedJournalConfig {
    /// The journal server's address.
    pub server: SocketAddr,
    /// The cluster secret (the server refuses others).
    pub secret: ClusterSecret,
    /// The longest one request may take, dialing included (default 2 s);
    /// then it fails with `Unavailable`.
    pub request_timeout: Duration,
    /// Largest frame body sent or accepted (default 8 MiB).
    pub max_frame_len: u32,
    /// Connections kept open for reuse (default 16).
    pub idle_connections: usize,
    /// TLS to the server (default none). The server's certificate must
    /// chain to the CA bundle; this node presents its own.
    pub tls: Option<Arc<NodeTls>>,
}

impl SharedJournalConfig {
    /// The defaults for the server at `server`.
    pub fn new(server: SocketAddr, secret: ClusterSecret) -> Self {
        SharedJournalConfig {
            server,
            secret,
            request_timeout: Duration::from_secs(2),
            max_frame_len: MAX_FRAME_LEN_DEFAULT,
            idle_connections: 16,
            tls: None,
        }
    }

    /// Talks to the server over TLS with `tls`.
    pub fn with_tls(mut self, tls: Arc<NodeTls>) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// A journal on a journal server, shared by every node that dials it.
/// Cheap to clone; clones share connections and claims.
///
/// Each request uses a pooled connection of its own (requests run
/// concurrently; one in flight per connection). A request that fails or
/// times out drops its connection.
#[derive(Clone)]
pub struct SharedJournal {
    inner: Arc<Inner>,
}

struct Inner {
    env: Env,
    config: SharedJournalConfig,
    idle: Mutex<Vec<Conn>>,
    /// Streams this handle claimed: their epoch and last sequence number.
    claims: Claims,
    next_request: AtomicU64,
}

struct Conn {
    reader: FrameReader<DynReader>,
    writer: FrameWriter<DynWriter>,
}

impl SharedJournal {
    /// A client of the server in `config` (connections are made on demand).
    pub fn new(env: Env, config: SharedJournalConfig) -> Self {
        SharedJournal {
            inner: Arc::new(Inner {
                env,
                config,
                idle: Mutex::new(Vec::new()),
                claims: Claims::default(),
                next_request: AtomicU64::new(1),
            }),
        }
    }

    async fn dial(&self) -> Result<Conn, JournalError> {
        let inner = &self.inner;
        let unavailable = |e: &dyn std::fmt::Display| JournalError::Unavailable {
            reason: format!("{}: {e}", inner.config.server),
        };
        let connection = inner
            .env
            .net()
            .connect(inner.config.server)
            .await
            .map_err(|e| unavailable(&e))?;
        let (reader, writer) = connection.split();
        let (reader, writer, _) =
            security::secure(inner.config.tls.as_deref(), Role::Dialer, reader, writer)
                .await
                .map_err(|e| unavailable(&e))?;
        let max = inner.config.max_frame_len;
        let mut conn = Conn {
            reader: FrameReader::new(reader, max),
            writer: FrameWriter::new(writer, max),
        };
        let me = Identity {
            node: inner.env.node().to_string(),
            // A client accepts nothing; the server ignores this field.
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            incarnation: 0,
        };
        let mut nonce = [0; 32];
        inner.env.fill_bytes(&mut nonce);
        wire::handshake::dial(
            &mut conn.reader,
            &mut conn.writer,
            &inner.config.secret,
            &me,
            nonce,
        )
        .await
        .map_err(|e| unavailable(&e))?;
        Ok(conn)
    }

    /// Sends `op` and waits for its outcome, within the request timeout.
    async fn call(&self, op: JournalOp) -> Result<JournalOutcome, JournalError> {
        let inner = &self.inner;
        let request = inner.next_request.fetch_add(1, Ordering::Relaxed);
        let exchange = async {
            let pooled = inner.idle.locked().pop();
            let mut conn = match pooled {
                Some(conn) => conn,
                None => self.dial().await?,
            };
            let unavailable = |e: &dyn std::fmt::Display| JournalError::Unavailable {
                reason: format!("{}: {e}", inner.config.server),
            };
            conn.writer
                .send(&WireMessage::JournalCall { request, op })
                .await
                .map_err(|e| unavailable(&e))?;
            match conn.reader.read_frame().await {
                Ok(WireMessage::JournalResult {
                    request: answered,
                    outcome,
                }) if answered == request => Ok((conn, outcome)),
                Ok(other) => Err(unavailable(&format!(
                    "unexpected {} for request {request}",
                    other.kind()
                ))),
                Err(e) => Err(unavailable(&e)),
            }
        };
        match inner
            .env
            .timeout(inner.config.request_timeout, exchange)
            .await
        {
            Ok(Ok((conn, outcome))) => {
                let mut idle = inner.idle.locked();
                if idle.len() < inner.config.idle_connections {
                    idle.push(conn);
                }
                Ok(outcome)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(JournalError::Unavailable {
                reason: format!(
                    "{}: no answer within {:?}",
                    inner.config.server, inner.config.request_timeout
                ),
            }),
        }
    }
}

/// The error an outcome that is not the expected one stands for.
fn refused(stream: &str, outcome: JournalOutcome) -> JournalError {
    match outcome {
        JournalOutcome::Fenced(detail) => JournalError::Fenced {
            stream: stream.to_string(),
            detail,
        },
        JournalOutcome::Failed(reason) => JournalError::Unavailable {
            reason: format!("the journal server failed: {reason}"),
        },
        JournalOutcome::Truncated { first_available } => JournalError::Truncated {
            stream: stream.to_string(),
            requested: 0,
            first_available,
        },
        other => JournalError::Unavailable {
            reason: format!("unexpected answer {other:?}"),
        },
    }
}

impl Journal for SharedJournal {
    async fn append(&self, stream: &str, data: &[u8]) -> Result<u64, JournalError> {
        self.append_all(stream, &[data]).await
    }

    async fn append_all(&self, stream: &str, entries: &[&[u8]]) -> Result<u64, JournalError> {
        let claim = self.inner.claims.of(stream)?;
        if entries.is_empty() {
            return Ok(claim.last_seq);
        }
        let op = JournalOp::Append {
            stream: stream.to_string(),
            epoch: claim.epoch,
            first_seq: claim.last_seq + 1,
            entries: entries.iter().map(|e| e.to_vec()).collect(),
        };
        match self.call(op).await? {
            JournalOutcome::Appended { last_seq } => {
                self.inner.claims.appended(stream, claim.epoch, last_seq);
                Ok(last_seq)
            }
            other => Err(refused(stream, other)),
        }
    }

    async fn replay_each<F>(
        &self,
        stream: &str,
        from_seq: u64,
        mut visit: F,
    ) -> Result<u64, JournalError>
    where
        F: FnMut(u64, &[u8]) + Send,
    {
        let page = (self.inner.config.max_frame_len / 2).max(1024);
        let mut next = from_seq.max(1);
        let mut visited = 0;
        loop {
            let op = JournalOp::Read {
                stream: stream.to_string(),
                from_seq: next,
                max_bytes: page,
            };
            match self.call(op).await? {
                JournalOutcome::Entries { entries, more } => {
                    for (seq, data) in &entries {
                        visit(*seq, data);
                        next = seq + 1;
                        visited += 1;
                    }
                    if !more || entries.is_empty() {
                        return Ok(visited);
                    }
                }
                JournalOutcome::Truncated { first_available } => {
                    return Err(JournalError::Truncated {
                        stream: stream.to_string(),
                        requested: next,
                        first_available,
                    });
                }
                other => return Err(refused(stream, other)),
            }
        }
    }

    fn last_seq(&self, stream: &str) -> u64 {
        self.inner.claims.last_seq(stream)
    }

    async fn claim(&self, stream: &str) -> Result<(), JournalError> {
        let op = JournalOp::Claim {
            stream: stream.to_string(),
        };
        match self.call(op).await? {
            JournalOutcome::Claimed { epoch, last_seq } => {
                self.inner.claims.granted(stream, Claim { epoch, last_seq });
                Ok(())
            }
            other => Err(refused(stream, other)),
        }
    }

    async fn check_claim(&self, stream: &str) -> Result<(), JournalError> {
        // An append of nothing: the server checks the epoch and the next
        // sequence number, and writes nothing.
        let claim = self.inner.claims.of(stream)?;
        let op = JournalOp::Append {
            stream: stream.to_string(),
            epoch: claim.epoch,
            first_seq: claim.last_seq + 1,
            entries: Vec::new(),
        };
        match self.call(op).await? {
            JournalOutcome::Appended { .. } => Ok(()),
            other => Err(refused(stream, other)),
        }
    }

    async fn save_checkpoint(
        &self,
        stream: &str,
        seq: u64,
        state: &[u8],
    ) -> Result<(), JournalError> {
        let claim = self.inner.claims.of(stream)?;
        let op = JournalOp::SaveCheckpoint {
            stream: stream.to_string(),
            epoch: claim.epoch,
            seq,
            state: state.to_vec(),
        };
        match self.call(op).await? {
            JournalOutcome::Saved => Ok(()),
            other => Err(refused(stream, other)),
        }
    }

    async fn latest_checkpoint(&self, stream: &str) -> Result<Option<Checkpoint>, JournalError> {
        let op = JournalOp::LatestCheckpoint {
            stream: stream.to_string(),
        };
        match self.call(op).await? {
            JournalOutcome::Checkpoint(found) => Ok(found.map(|(seq, state)| Checkpoint {
                stream: stream.to_string(),
                seq,
                state,
            })),
            other => Err(refused(stream, other)),
        }
    }
}
