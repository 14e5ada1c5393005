//! `Net` on madsim's simulated network: connections are madsim's reliable,
//! ordered channels, so latency, loss (as retransmission delay), clogged
//! nodes and partitioned links act on them; on top, this module can reset
//! connections, which madsim does not model.
//!
//! A writer's bytes go nowhere until `flush` (one message per flush), just
//! like madsim's own `TcpStream`: code that forgets to flush hangs here.

use crate::trace::{Event, Trace};
use futures::StreamExt;
use futures::task::AtomicWaker;
use madsim::net::{Endpoint, Receiver, Sender};
use plexspaces_net::{ByteReader, ByteWriter, Connection, Listener, Net, NetError, NetErrorKind};
use plexspaces_storage::sync::LockExt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;

/// One node's network. Clones share the node's list of live connections.
#[derive(Clone)]
pub struct SimNet {
    trace: Arc<Trace>,
    live: Arc<Mutex<Vec<Weak<Pair>>>>,
}

/// State shared by both ends of one connection (it is one process).
struct Pair {
    reset: AtomicBool,
    /// The reader of each end: 0 = connecting side, 1 = accepting side.
    readers: [AtomicWaker; 2],
}

impl Pair {
    fn reset(&self) {
        self.reset.store(true, Ordering::SeqCst);
        for waker in &self.readers {
            waker.wake();
        }
    }

    fn is_reset(&self) -> bool {
        self.reset.load(Ordering::SeqCst)
    }
}

/// A listening endpoint.
pub struct SimListener {
    endpoint: Endpoint,
    local: SocketAddr,
    net: SimNet,
}

/// An established simulated connection.
pub struct SimConnection {
    sender: Sender,
    receiver: Receiver,
    pair: Arc<Pair>,
    side: usize,
    peer: SocketAddr,
    trace: Arc<Trace>,
}

/// The receiving half of a [`SimConnection`].
pub struct SimReader {
    receiver: Receiver,
    pair: Arc<Pair>,
    side: usize,
    leftover: Vec<u8>,
    peer: SocketAddr,
    trace: Arc<Trace>,
}

/// The sending half of a [`SimConnection`].
pub struct SimWriter {
    sender: Option<Sender>,
    pair: Arc<Pair>,
    buffered: Vec<u8>,
    peer: SocketAddr,
    trace: Arc<Trace>,
}

impl SimNet {
    /// A node's network, tracing into `trace`.
    pub fn new(trace: Arc<Trace>) -> Self {
        SimNet {
            trace,
            live: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn register(&self, pair: &Arc<Pair>) {
        let mut live = self.live.locked();
        live.retain(|weak| weak.strong_count() > 0);
        live.push(Arc::downgrade(pair));
    }

    /// Resets every live connection of this node: both ends' pending and
    /// later reads and writes fail with `ConnectionReset`. Returns how many.
    pub fn reset_connections(&self) -> usize {
        let live = std::mem::take(&mut *self.live.locked());
        let mut count = 0;
        for pair in live.iter().filter_map(Weak::upgrade) {
            pair.reset();
            count += 1;
        }
        self.trace.record(Event::Fault, 0x4E5E7 ^ count as u64);
        count
    }
}

fn io_error(e: std::io::Error, op: &'static str, addr: SocketAddr) -> NetError {
    NetError::from_io(e, op, Some(addr))
}

impl Net for SimNet {
    type Listener = SimListener;
    type Connection = SimConnection;

    async fn listen(&self, addr: SocketAddr) -> Result<SimListener, NetError> {
        let endpoint = Endpoint::bind(addr)
            .await
            .map_err(|e| io_error(e, "listen", addr))?;
        let local = endpoint
            .local_addr()
            .map_err(|e| io_error(e, "listen", addr))?;
        Ok(SimListener {
            endpoint,
            local,
            net: self.clone(),
        })
    }

    async fn connect(&self, addr: SocketAddr) -> Result<SimConnection, NetError> {
        let any: SocketAddr = ([0, 0, 0, 0], 0).into();
        let endpoint = Endpoint::bind(any)
            .await
            .map_err(|e| io_error(e, "connect", addr))?;
        let (sender, receiver) = endpoint
            .connect1(addr)
            .await
            .map_err(|e| io_error(e, "connect", addr))?;
        let pair = Arc::new(Pair {
            reset: AtomicBool::new(false),
            readers: [AtomicWaker::new(), AtomicWaker::new()],
        });
        // The first message introduces the shared state to the acceptor.
        sender
            .send(Box::new(pair.clone()))
            .await
            .map_err(|e| io_error(e, "connect", addr))?;
        self.register(&pair);
        self.trace.record(Event::NetConnect, u64::from(addr.port()));
        Ok(SimConnection {
            sender,
            receiver,
            pair,
            side: 0,
            peer: addr,
            trace: self.trace.clone(),
        })
    }
}

impl Listener for SimListener {
    type Connection = SimConnection;

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    async fn accept(&mut self) -> Result<(SimConnection, SocketAddr), NetError> {
        loop {
            let (sender, mut receiver, peer) = self
                .endpoint
                .accept1()
                .await
                .map_err(|e| io_error(e, "accept", self.local))?;
            // A connector that died before introducing itself is dropped.
            let Ok(hello) = receiver.recv().await else {
                continue;
            };
            let Ok(pair) = hello.downcast::<Arc<Pair>>() else {
                continue;
            };
            let pair = *pair;
            self.net.register(&pair);
            self.net
                .trace
                .record(Event::NetConnect, u64::from(peer.port()) << 16);
            let connection = SimConnection {
                sender,
                receiver,
                pair,
                side: 1,
                peer,
                trace: self.net.trace.clone(),
            };
            return Ok((connection, peer));
        }
    }
}

impl Connection for SimConnection {
    type Reader = SimReader;
    type Writer = SimWriter;

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    fn split(self) -> (SimReader, SimWriter) {
        (
            SimReader {
                receiver: self.receiver,
                pair: self.pair.clone(),
                side: self.side,
                leftover: Vec::new(),
                peer: self.peer,
                trace: self.trace.clone(),
            },
            SimWriter {
                sender: Some(self.sender),
                pair: self.pair,
                buffered: Vec::new(),
                peer: self.peer,
                trace: self.trace,
            },
        )
    }
}

impl SimReader {
    fn reset_error(&self, op: &'static str) -> NetError {
        NetError::new(NetErrorKind::ConnectionReset, op, Some(self.peer))
    }
}

impl ByteReader for SimReader {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pair.is_reset() {
                return Err(self.reset_error("read"));
            }
            if !self.leftover.is_empty() {
                let n = self.leftover.len().min(buf.len());
                buf[..n].copy_from_slice(&self.leftover[..n]);
                self.leftover.drain(..n);
                return Ok(n);
            }
            let (pair, side, receiver) = (&self.pair, self.side, &mut self.receiver);
            let next = std::future::poll_fn(|cx| {
                pair.readers[side].register(cx.waker());
                if pair.is_reset() {
                    return Poll::Ready(None);
                }
                receiver.poll_next_unpin(cx).map(Some)
            })
            .await;
            match next {
                None => return Err(self.reset_error("read")),
                // The peer closed its side (or its node died): end of stream.
                Some(None) | Some(Some(Err(_))) => return Ok(0),
                Some(Some(Ok(payload))) => match payload.downcast::<Vec<u8>>() {
                    Ok(bytes) => {
                        self.trace.record_bytes(Event::NetRecv, &bytes);
                        self.leftover = *bytes;
                    }
                    Err(_) => return Err(NetError::new(NetErrorKind::Io, "read", Some(self.peer))),
                },
            }
        }
    }
}

impl SimWriter {
    fn check(&self, op: &'static str) -> Result<&Sender, NetError> {
        if self.pair.is_reset() {
            return Err(NetError::new(
                NetErrorKind::ConnectionReset,
                op,
                Some(self.peer),
            ));
        }
        self.sender
            .as_ref()
            .ok_or_else(|| NetError::new(NetErrorKind::Closed, op, Some(self.peer)))
    }
}

impl ByteWriter for SimWriter {
    async fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        self.check("write")?;
        self.buffered.extend_from_slice(buf);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), NetError> {
        self.check("flush")?;
        if self.buffered.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.buffered);
        self.trace.record_bytes(Event::NetSend, &bytes);
        let sender = self.sender.as_ref().expect("checked open");
        sender
            .send(Box::new(bytes))
            .await
            .map_err(|e| io_error(e, "flush", self.peer))
    }

    async fn close(&mut self) -> Result<(), NetError> {
        self.flush().await?;
        self.sender = None; // dropping it ends the peer's stream
        Ok(())
    }
}
