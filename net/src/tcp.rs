//! The production `Net`: TCP on tokio, with Nagle off (actor messages are
//! small and latency-bound; batching happens above, in the frame writer).

// This module *is* the seam's production implementation: the one place in
// the net crate allowed to open sockets.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use crate::{ByteReader, ByteWriter, Connection, Listener, Net, NetError, NetErrorKind};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// TCP through the OS, on the current tokio runtime.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpNet;

impl TcpNet {
    /// The OS network.
    pub fn new() -> Self {
        TcpNet
    }
}

/// A bound TCP listener.
#[derive(Debug)]
pub struct TcpNetListener {
    inner: TcpListener,
    local: SocketAddr,
}

/// An established TCP connection.
#[derive(Debug)]
pub struct TcpConnection {
    stream: TcpStream,
    peer: SocketAddr,
}

/// The read half of a [`TcpConnection`].
#[derive(Debug)]
pub struct TcpReader {
    half: OwnedReadHalf,
    peer: SocketAddr,
}

/// The write half of a [`TcpConnection`].
#[derive(Debug)]
pub struct TcpWriter {
    half: OwnedWriteHalf,
    peer: SocketAddr,
    closed: bool,
}

impl Net for TcpNet {
    type Listener = TcpNetListener;
    type Connection = TcpConnection;

    async fn listen(&self, addr: SocketAddr) -> Result<TcpNetListener, NetError> {
        let inner = TcpListener::bind(addr)
            .await
            .map_err(|e| NetError::from_io(e, "listen", Some(addr)))?;
        let local = inner
            .local_addr()
            .map_err(|e| NetError::from_io(e, "listen", Some(addr)))?;
        Ok(TcpNetListener { inner, local })
    }

    async fn connect(&self, addr: SocketAddr) -> Result<TcpConnection, NetError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| NetError::from_io(e, "connect", Some(addr)))?;
        stream
            .set_nodelay(true)
            .map_err(|e| NetError::from_io(e, "connect", Some(addr)))?;
        Ok(TcpConnection { stream, peer: addr })
    }
}

impl Listener for TcpNetListener {
    type Connection = TcpConnection;

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    async fn accept(&mut self) -> Result<(TcpConnection, SocketAddr), NetError> {
        let (stream, peer) = self
            .inner
            .accept()
            .await
            .map_err(|e| NetError::from_io(e, "accept", Some(self.local)))?;
        stream
            .set_nodelay(true)
            .map_err(|e| NetError::from_io(e, "accept", Some(peer)))?;
        Ok((TcpConnection { stream, peer }, peer))
    }
}

impl Connection for TcpConnection {
    type Reader = TcpReader;
    type Writer = TcpWriter;

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    fn split(self) -> (TcpReader, TcpWriter) {
        let (read, write) = self.stream.into_split();
        let peer = self.peer;
        (
            TcpReader { half: read, peer },
            TcpWriter {
                half: write,
                peer,
                closed: false,
            },
        )
    }
}

impl ByteReader for TcpReader {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        self.half
            .read(buf)
            .await
            .map_err(|e| NetError::from_io(e, "read", Some(self.peer)))
    }
}

impl TcpWriter {
    fn check_open(&self, op: &'static str) -> Result<(), NetError> {
        if self.closed {
            return Err(NetError::new(NetErrorKind::Closed, op, Some(self.peer)));
        }
        Ok(())
    }
}

impl ByteWriter for TcpWriter {
    async fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        self.check_open("write")?;
        self.half
            .write_all(buf)
            .await
            .map_err(|e| NetError::from_io(e, "write", Some(self.peer)))
    }

    async fn flush(&mut self) -> Result<(), NetError> {
        self.check_open("flush")?;
        self.half
            .flush()
            .await
            .map_err(|e| NetError::from_io(e, "flush", Some(self.peer)))
    }

    async fn close(&mut self) -> Result<(), NetError> {
        self.check_open("close")?;
        self.closed = true;
        self.half
            .shutdown()
            .await
            .map_err(|e| NetError::from_io(e, "close", Some(self.peer)))
    }
}
