//! The `Net` seam of PlexSpaces: listen, accept, connect, and ordered byte
//! streams split into a read half and a write half.
//!
//! Nodes talk only through [`Net`], so the simulator can hand them a network
//! that delays, drops, reorders and partitions. The production
//! implementation, [`TcpNet`] (feature `tokio`, on by default), is the only
//! module allowed to open a socket.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), plexspaces_net::NetError> {
//! use plexspaces_net::{ByteReader, ByteWriter, Connection, Listener, Net, TcpNet};
//! let net = TcpNet::new();
//! let mut listener = net.listen("127.0.0.1:0".parse().unwrap()).await?;
//! let addr = listener.local_addr();
//! let (_, mut out) = net.connect(addr).await?.split();
//! out.write_all(b"ping").await?;
//! out.flush().await?;
//! let (conn, _peer) = listener.accept().await?;
//! let (mut input, _) = conn.split();
//! let mut buf = [0u8; 4];
//! input.read_exact(&mut buf).await?;
//! assert_eq!(&buf, b"ping");
//! # Ok(()) }
//! ```

mod dynamic;
mod error;
#[cfg(feature = "tokio")]
mod tcp;
pub mod tls;
pub mod wire;

pub use dynamic::{DynConnection, DynListener, DynNet, DynReader, DynWriter};
pub use error::{NetError, NetErrorKind};
#[cfg(feature = "tokio")]
pub use tcp::{TcpConnection, TcpNet, TcpNetListener, TcpReader, TcpWriter};

use std::future::Future;
use std::net::SocketAddr;

/// A network a node can listen on and connect through.
pub trait Net: Clone + Send + Sync + 'static {
    /// A bound listening socket.
    type Listener: Listener<Connection = Self::Connection>;
    /// An established, ordered, reliable byte stream.
    type Connection: Connection;

    /// Binds `addr` and listens on it (port 0 picks a free port).
    fn listen(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<Self::Listener, NetError>> + Send;

    /// Opens a connection to `addr`.
    fn connect(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<Self::Connection, NetError>> + Send;
}

/// A listening socket.
pub trait Listener: Send + 'static {
    /// What an accepted connection is.
    type Connection: Connection;

    /// The address actually bound (with the port chosen if 0 was asked for).
    fn local_addr(&self) -> SocketAddr;

    /// Waits for the next incoming connection and the peer's address.
    fn accept(
        &mut self,
    ) -> impl Future<Output = Result<(Self::Connection, SocketAddr), NetError>> + Send;
}

/// An established connection, before it is split into its two directions.
pub trait Connection: Send + 'static {
    /// The receiving half.
    type Reader: ByteReader;
    /// The sending half.
    type Writer: ByteWriter;

    /// The address of the other end.
    fn peer_addr(&self) -> SocketAddr;

    /// Splits the connection so one task can read while another writes.
    fn split(self) -> (Self::Reader, Self::Writer);
}

/// The receiving half of a connection.
pub trait ByteReader: Send + 'static {
    /// Reads at least one byte into `buf` and returns how many; `Ok(0)` means
    /// the peer closed its side cleanly.
    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<usize, NetError>> + Send;

    /// Fills `buf` entirely, or fails with [`NetErrorKind::UnexpectedEof`]
    /// if the peer closes first.
    fn read_exact(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<(), NetError>> + Send {
        async move {
            let mut filled = 0;
            while filled < buf.len() {
                match self.read(&mut buf[filled..]).await? {
                    0 => {
                        return Err(NetError::new(
                            NetErrorKind::UnexpectedEof,
                            "read_exact",
                            None,
                        ));
                    }
                    n => filled += n,
                }
            }
            Ok(())
        }
    }
}

/// The sending half of a connection.
///
/// Bytes may sit in a buffer until [`ByteWriter::flush`]; a sender that
/// wants the peer to see them must flush (the simulated network sends
/// nothing before a flush, exactly to catch code that forgets).
pub trait ByteWriter: Send + 'static {
    /// Queues all of `buf` for sending.
    fn write_all(&mut self, buf: &[u8]) -> impl Future<Output = Result<(), NetError>> + Send;

    /// Pushes everything queued to the peer.
    fn flush(&mut self) -> impl Future<Output = Result<(), NetError>> + Send;

    /// Flushes, then closes this direction; the peer reads end-of-stream.
    fn close(&mut self) -> impl Future<Output = Result<(), NetError>> + Send;
}
