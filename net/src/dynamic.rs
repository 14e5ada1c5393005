//! Type-erased network handles, so a node's environment can hold "some
//! network" without every type above it being generic over which one.

use crate::{ByteReader, ByteWriter, Connection, Listener, Net, NetError};
use futures::future::BoxFuture;
use std::net::SocketAddr;
use std::sync::Arc;

/// Any [`Net`], behind a pointer.
#[derive(Clone)]
pub struct DynNet(Arc<dyn ErasedNet>);

/// A listener of a [`DynNet`].
pub struct DynListener(Box<dyn ErasedListener>);

/// A connection of a [`DynNet`].
pub struct DynConnection(Box<dyn ErasedConnection>);

/// The read half of a [`DynConnection`].
pub struct DynReader(Box<dyn ErasedReader>);

/// The write half of a [`DynConnection`].
pub struct DynWriter(Box<dyn ErasedWriter>);

impl DynNet {
    /// Erases the type of `net`.
    pub fn new<N: Net>(net: N) -> Self {
        DynNet(Arc::new(net))
    }
}

impl DynReader {
    /// Erases the type of `reader` (a TLS reader over a connection's half,
    /// say).
    pub fn new<R: ByteReader>(reader: R) -> Self {
        DynReader(Box::new(reader))
    }
}

impl DynWriter {
    /// Erases the type of `writer`.
    pub fn new<W: ByteWriter>(writer: W) -> Self {
        DynWriter(Box::new(writer))
    }
}

impl std::fmt::Debug for DynNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DynNet")
    }
}

trait ErasedNet: Send + Sync + 'static {
    fn listen(&self, addr: SocketAddr) -> BoxFuture<'_, Result<DynListener, NetError>>;
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, Result<DynConnection, NetError>>;
}

impl<N: Net> ErasedNet for N {
    fn listen(&self, addr: SocketAddr) -> BoxFuture<'_, Result<DynListener, NetError>> {
        Box::pin(async move { Ok(DynListener(Box::new(Net::listen(self, addr).await?))) })
    }
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, Result<DynConnection, NetError>> {
        Box::pin(async move { Ok(DynConnection(Box::new(Net::connect(self, addr).await?))) })
    }
}

impl Net for DynNet {
    type Listener = DynListener;
    type Connection = DynConnection;

    async fn listen(&self, addr: SocketAddr) -> Result<DynListener, NetError> {
        self.0.listen(addr).await
    }
    async fn connect(&self, addr: SocketAddr) -> Result<DynConnection, NetError> {
        self.0.connect(addr).await
    }
}

trait ErasedListener: Send + 'static {
    fn local_addr(&self) -> SocketAddr;
    fn accept(&mut self) -> BoxFuture<'_, Result<(DynConnection, SocketAddr), NetError>>;
}

impl<L: Listener> ErasedListener for L {
    fn local_addr(&self) -> SocketAddr {
        Listener::local_addr(self)
    }
    fn accept(&mut self) -> BoxFuture<'_, Result<(DynConnection, SocketAddr), NetError>> {
        Box::pin(async move {
            let (conn, peer) = Listener::accept(self).await?;
            Ok((DynConnection(Box::new(conn)), peer))
        })
    }
}

impl Listener for DynListener {
    type Connection = DynConnection;

    fn local_addr(&self) -> SocketAddr {
        self.0.local_addr()
    }
    async fn accept(&mut self) -> Result<(DynConnection, SocketAddr), NetError> {
        self.0.accept().await
    }
}

trait ErasedConnection: Send + 'static {
    fn peer_addr(&self) -> SocketAddr;
    fn split(self: Box<Self>) -> (DynReader, DynWriter);
}

impl<C: Connection> ErasedConnection for C {
    fn peer_addr(&self) -> SocketAddr {
        Connection::peer_addr(self)
    }
    fn split(self: Box<Self>) -> (DynReader, DynWriter) {
        let (reader, writer) = Connection::split(*self);
        (DynReader(Box::new(reader)), DynWriter(Box::new(writer)))
    }
}

impl Connection for DynConnection {
    type Reader = DynReader;
    type Writer = DynWriter;

    fn peer_addr(&self) -> SocketAddr {
        self.0.peer_addr()
    }
    fn split(self) -> (DynReader, DynWriter) {
        self.0.split()
    }
}

trait ErasedReader: Send + 'static {
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, NetError>>;
}

impl<R: ByteReader> ErasedReader for R {
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, NetError>> {
        Box::pin(ByteReader::read(self, buf))
    }
}

impl ByteReader for DynReader {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        self.0.read(buf).await
    }
}

trait ErasedWriter: Send + 'static {
    fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>>;
    fn flush(&mut self) -> BoxFuture<'_, Result<(), NetError>>;
    fn close(&mut self) -> BoxFuture<'_, Result<(), NetError>>;
}

impl<W: ByteWriter> ErasedWriter for W {
    fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
        Box::pin(ByteWriter::write_all(self, buf))
    }
    fn flush(&mut self) -> BoxFuture<'_, Result<(), NetError>> {
        Box::pin(ByteWriter::flush(self))
    }
    fn close(&mut self) -> BoxFuture<'_, Result<(), NetError>> {
        Box::pin(ByteWriter::close(self))
    }
}

impl ByteWriter for DynWriter {
    async fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        self.0.write_all(buf).await
    }
    async fn flush(&mut self) -> Result<(), NetError> {
        self.0.flush().await
    }
    async fn close(&mut self) -> Result<(), NetError> {
        self.0.close().await
    }
}
