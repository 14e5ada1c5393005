//! The journal server: serves a journal to authenticated nodes, one
//! request at a time per connection, with conditional (fenced) writes.

use super::FENCE_PREFIX;
use crate::env::Env;
use crate::seams::{Clock, JoinHandle};
use crate::security::{self, NodeTls, Role};
use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};
use futures::lock::Mutex as AsyncMutex;
use plexspaces_net::wire::{
    self, Admission, AdmissionLimits, Admitted, ClusterSecret, FrameReader, FrameWriter, Identity,
    JournalOp, JournalOutcome, MAX_FRAME_LEN_DEFAULT, WireError, WireMessage,
};
use plexspaces_net::{Connection, DynConnection, Listener, Net, NetError};
use plexspaces_storage::journal::{Journal, JournalError};
use plexspaces_storage::sync::LockExt;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Stream locks kept before the unused ones are first dropped.
const STREAM_LOCKS_SWEEP_AT: usize = 4096;

/// One lock per stream, held from a fence check to the end of the write
/// it guards.
struct StreamLocks {
    by_stream: BTreeMap<String, Arc<AsyncMutex<()>>>,
    /// The table's size at which unused locks are next dropped.
    sweep_at: usize,
}

/// Where and how a journal server listens.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JournalServerConfig {
    /// Where to accept connections (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The cluster secret clients must prove.
    pub secret: ClusterSecret,
    /// Largest frame body sent or accepted (default 8 MiB).
    pub max_frame_len: u32,
    /// The longest a client handshake may take (default 2 s).
    pub handshake_timeout: Duration,
    /// Bounds on connections in their handshake, in total and per source
    /// address (default 256 and 32): one more is closed unread.
    pub admission: AdmissionLimits,
    /// TLS for every client connection (default none: the secret
    /// handshake over plaintext). With TLS, a client must present a
    /// certificate of the CA bundle; plaintext clients are refused.
    pub tls: Option<Arc<NodeTls>>,
    /// A deliberately broken variant, for the simulator's tests: always
    /// present (so enabling the feature anywhere in a build breaks no
    /// struct literal), acted on only with the `planted-bugs` feature.
    #[doc(hidden)]
    pub planted_bug: Option<crate::PlantedBug>,
}

impl JournalServerConfig {
    /// The defaults, listening on `listen`, with `secret`.
    pub fn new(listen: SocketAddr, secret: ClusterSecret) -> Self {
        JournalServerConfig {
            listen,
            secret,
            max_frame_len: MAX_FRAME_LEN_DEFAULT,
            handshake_timeout: Duration::from_secs(2),
            admission: AdmissionLimits::default(),
            tls: None,
            planted_bug: None,
        }
    }

    /// Serves every client over TLS with `tls`.
    pub fn with_tls(mut self, tls: Arc<NodeTls>) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// A journal server could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum JournalServerError {
    /// Its listening address could not be bound.
    Net(NetError),
    /// Its journal could not be opened.
    Journal(JournalError),
}

impl std::fmt::Display for JournalServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalServerError::Net(e) => write!(f, "journal server: {e}"),
            JournalServerError::Journal(e) => write!(f, "journal server: {e}"),
        }
    }
}

impl std::error::Error for JournalServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JournalServerError::Net(e) => Some(e),
            JournalServerError::Journal(e) => Some(e),
        }
    }
}

/// A running journal server. Dropping it does not stop it; call
/// [`JournalServer::shutdown`].
pub struct JournalServer {
    addr: SocketAddr,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    accepting: JoinHandle<()>,
}

/// Opens the served journal again, for a server that reopens it after it
/// stopped (a failed write or sync makes a journal fail-stop).
pub type Reopen<J> =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<J, JournalError>> + Send + Sync>;

struct Service<J> {
    env: Env,
    /// The journal served now; replaced by a reopened one after it stops.
    journal: Mutex<Arc<J>>,
    reopen: Option<Reopen<J>>,
    /// Held while a stopped journal is being reopened (one reopen at a time).
    reopening: AsyncMutex<()>,
    config: JournalServerConfig,
    me: Identity,
    /// Connections in their handshake, bounded.
    admission: Admission,
    /// One lock per stream, held from the fence check to the write's end,
    /// so a check and the write it guards are one step.
    locks: Mutex<StreamLocks>,
    stopped: Shared<oneshot::Receiver<()>>,
}

impl JournalServer {
    /// Serves `journal` on `config.listen` until shut down. If the journal
    /// stops (fail-stop after a failed write or sync), every request fails
    /// from then on; see [`JournalServer::start_reopening`].
    pub async fn start<J: Journal>(
        env: Env,
        config: JournalServerConfig,
        journal: J,
    ) -> Result<JournalServer, NetError> {
        Self::serve(env, config, journal, None).await
    }

    /// Serves the journal `open` opens, and opens it again whenever it
    /// stops: the request that met the failure fails (it was not
    /// acknowledged) and the next ones go to the reopened journal, which
    /// recovered what is durable. Fencing survives the reopen (epochs are
    /// journaled).
    pub async fn start_reopening<J: Journal>(
        env: Env,
        config: JournalServerConfig,
        open: Reopen<J>,
    ) -> Result<JournalServer, JournalServerError> {
        let journal = open().await.map_err(JournalServerError::Journal)?;
        Self::serve(env, config, journal, Some(open))
            .await
            .map_err(JournalServerError::Net)
    }

    async fn serve<J: Journal>(
        env: Env,
        config: JournalServerConfig,
        journal: J,
        reopen: Option<Reopen<J>>,
    ) -> Result<JournalServer, NetError> {
        let mut listener = env.net().listen(config.listen).await?;
        let addr = listener.local_addr();
        let (stop, stopped) = oneshot::channel();
        let me = Identity {
            node: env.node().to_string(),
            listen: addr,
            incarnation: 0,
        };
        let service = Arc::new(Service {
            env: env.clone(),
            journal: Mutex::new(Arc::new(journal)),
            reopen,
            reopening: AsyncMutex::new(()),
            admission: Admission::new(config.admission),
            config,
            me,
            locks: Mutex::new(StreamLocks {
                by_stream: BTreeMap::new(),
                sweep_at: STREAM_LOCKS_SWEEP_AT,
            }),
            stopped: stopped.shared(),
        });
        let accepting = service.clone();
        let accepting = env.spawn(until_stopped(service.stopped.clone(), async move {
            loop {
                match listener.accept().await {
                    Ok((connection, from)) => match accepting.admission.admit(from) {
                        Ok(admitted) => {
                            let service = accepting.clone();
                            let stopped = service.stopped.clone();
                            let serving = service.serve(connection, admitted);
                            drop(accepting.env.spawn(until_stopped(stopped, serving)));
                        }
                        // Closed unread: dropping the connection closes it.
                        Err(refused) => {
                            tracing::debug!(%from, "journal server: connection closed: {refused}")
                        }
                    },
                    Err(e) => {
                        tracing::warn!("journal server: accept failed: {e}");
                        accepting.env.sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
        Ok(JournalServer {
            addr,
            stop: Mutex::new(Some(stop)),
            accepting,
        })
    }

    /// The address clients dial.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(&self) {
        drop(self.stop.locked().take());
        self.accepting.abort();
    }
}

async fn until_stopped<F: Future<Output = ()>>(stopped: Shared<oneshot::Receiver<()>>, work: F) {
    let work = std::pin::pin!(work);
    let _ = futures::future::select(work, stopped).await;
}

impl<J: Journal> Service<J> {
    /// Serves one connection; `admitted` holds its place among those in
    /// their handshake until the handshake ends.
    async fn serve(self: Arc<Self>, connection: DynConnection, admitted: Admitted) {
        let from = connection.peer_addr();
        let (reader, writer) = connection.split();
        let max = self.config.max_frame_len;
        let mut nonce = [0; 32];
        crate::seams::Rng::fill_bytes(&self.env, &mut nonce);
        let handshake = async {
            let (reader, writer, _) =
                security::secure(self.config.tls.as_deref(), Role::Acceptor, reader, writer)
                    .await?;
            let mut reader = FrameReader::new(reader, max);
            let mut writer = FrameWriter::new(writer, max);
            wire::handshake::accept(
                &mut reader,
                &mut writer,
                &self.config.secret,
                &self.me,
                nonce,
            )
            .await?;
            Ok::<_, WireError>((reader, writer))
        };
        let handshake = self
            .env
            .timeout(self.config.handshake_timeout, handshake)
            .await;
        drop(admitted);
        let (mut reader, mut writer) = match handshake {
            Ok(Ok(halves)) => halves,
            Ok(Err(e)) => {
                tracing::warn!(%from, "journal server refused a connection: {e}");
                return;
            }
            Err(_) => {
                tracing::warn!(%from, "journal server: handshake timed out");
                return;
            }
        };
        loop {
            let (request, op) = match reader.read_frame().await {
                Ok(WireMessage::JournalCall { request, op }) => (request, op),
                Ok(other) => {
                    let e = WireError::Unexpected {
                        expected: "JournalCall",
                        got: other.kind(),
                    };
                    tracing::warn!(%from, "journal server closed a connection: {e}");
                    return;
                }
                Err(WireError::Closed) => return,
                Err(e) => {
                    tracing::warn!(%from, "journal server closed a connection: {e}");
                    return;
                }
            };
            let outcome = self.execute(op).await;
            let answer = WireMessage::JournalResult { request, outcome };
            if let Err(e) = writer.send(&answer).await {
                tracing::debug!(%from, "journal server: answer not sent: {e}");
                return;
            }
        }
    }

    fn lock_of(&self, stream: &str) -> Arc<AsyncMutex<()>> {
        let mut locks = self.locks.locked();
        // A lock nobody holds or waits for guards nothing: drop those
        // whenever the table has doubled, so it stays about as big as the
        // streams in use, not as every stream ever written.
        if locks.by_stream.len() >= locks.sweep_at {
            locks
                .by_stream
                .retain(|_, lock| Arc::strong_count(lock) > 1);
            locks.sweep_at = STREAM_LOCKS_SWEEP_AT.max(2 * locks.by_stream.len());
        }
        locks
            .by_stream
            .entry(stream.to_string())
            .or_default()
            .clone()
    }

    /// The journal served now.
    fn current(&self) -> Arc<J> {
        self.journal.locked().clone()
    }

    /// Replaces `stopped` (if it is still the journal served) by a freshly
    /// opened one. A failed open leaves the stopped one (every request
    /// fails) and is tried again by the next request that meets it.
    async fn reopen_after(&self, stopped: &Arc<J>) {
        let Some(open) = &self.reopen else {
            return;
        };
        let _one_at_a_time = self.reopening.lock().await;
        if !Arc::ptr_eq(&self.current(), stopped) {
            return; // another request reopened it already
        }
        match open().await {
            Ok(journal) => {
                tracing::info!("journal server: reopened its journal after it stopped");
                *self.journal.locked() = Arc::new(journal);
            }
            Err(e) => tracing::warn!("journal server: reopening its journal failed: {e}"),
        }
    }

    async fn execute(&self, op: JournalOp) -> JournalOutcome {
        let journal = self.current();
        match self.execute_on(&journal, op).await {
            Ok(outcome) => outcome,
            Err(e) => {
                if e.is_stopped() {
                    self.reopen_after(&journal).await;
                }
                failed(&e)
            }
        }
    }

    async fn execute_on(&self, journal: &J, op: JournalOp) -> Result<JournalOutcome, JournalError> {
        Ok(match op {
            JournalOp::Claim { stream } => {
                let lock = self.lock_of(&stream);
                let _held = lock.lock().await;
                // The fence stream's sequence number *is* the epoch: durable
                // and strictly increasing by construction.
                let epoch = journal.append(&fence_stream(&stream), b"").await?;
                JournalOutcome::Claimed {
                    epoch,
                    last_seq: journal.last_seq(&stream),
                }
            }
            JournalOp::Append {
                stream,
                epoch,
                first_seq,
                entries,
            } => {
                let lock = self.lock_of(&stream);
                let _held = lock.lock().await;
                if let Some(refusal) = self.fence_check(journal, &stream, epoch, Some(first_seq)) {
                    return Ok(refusal);
                }
                if entries.is_empty() {
                    // A claim check: the writer's claim stands.
                    return Ok(JournalOutcome::Appended {
                        last_seq: first_seq.saturating_sub(1),
                    });
                }
                let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
                let last_seq = journal.append_all(&stream, &refs).await?;
                JournalOutcome::Appended { last_seq }
            }
            JournalOp::Read {
                stream,
                from_seq,
                max_bytes,
            } => read(journal, &stream, from_seq, max_bytes as usize).await?,
            JournalOp::SaveCheckpoint {
                stream,
                epoch,
                seq,
                state,
            } => {
                let lock = self.lock_of(&stream);
                let _held = lock.lock().await;
                if let Some(refusal) = self.fence_check(journal, &stream, epoch, None) {
                    return Ok(refusal);
                }
                journal.save_checkpoint(&stream, seq, &state).await?;
                JournalOutcome::Saved
            }
            JournalOp::LatestCheckpoint { stream } => {
                let found = journal.latest_checkpoint(&stream).await?;
                JournalOutcome::Checkpoint(found.map(|c| (c.seq, c.state)))
            }
        })
    }

    /// Why a write by `epoch` (expecting to write `first_seq` next) must be
    /// refused, if it must. The stream's epoch is its fence stream's length.
    fn fence_check(
        &self,
        journal: &J,
        stream: &str,
        epoch: u64,
        first_seq: Option<u64>,
    ) -> Option<JournalOutcome> {
        #[cfg(feature = "planted-bugs")]
        if self.config.planted_bug == Some(crate::PlantedBug::SkipFencing) {
            return None;
        }
        let current = journal.last_seq(&fence_stream(stream));
        if epoch != current {
            return Some(JournalOutcome::Fenced(format!(
                "writer epoch {epoch}, current epoch {current}"
            )));
        }
        let next = journal.last_seq(stream) + 1;
        match first_seq {
            Some(first) if first != next => Some(JournalOutcome::Fenced(format!(
                "write expected sequence number {first}, the stream's next is {next}"
            ))),
            _ => None,
        }
    }
}

/// A bounded page of `stream` from `from_seq`: entries past the budget are
/// visited but not kept.
async fn read<J: Journal>(
    journal: &J,
    stream: &str,
    from_seq: u64,
    max_bytes: usize,
) -> Result<JournalOutcome, JournalError> {
    let mut entries = Vec::new();
    let mut bytes = 0;
    let mut more = false;
    let visited = journal
        .replay_each(stream, from_seq, |seq, data| {
            if more || (!entries.is_empty() && bytes + data.len() > max_bytes) {
                more = true;
                return;
            }
            bytes += data.len();
            entries.push((seq, data.to_vec()));
        })
        .await;
    match visited {
        Ok(_) => Ok(JournalOutcome::Entries { entries, more }),
        Err(JournalError::Truncated {
            first_available, ..
        }) => Ok(JournalOutcome::Truncated { first_available }),
        Err(e) => Err(e),
    }
}

fn fence_stream(stream: &str) -> String {
    format!("{FENCE_PREFIX}{stream}")
}

fn failed(e: &JournalError) -> JournalOutcome {
    match e {
        JournalError::Fenced { detail, .. } => JournalOutcome::Fenced(detail.clone()),
        other => JournalOutcome::Failed(other.to_string()),
    }
}
