//! Typed network errors.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// The class of a network failure, for callers that react to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetErrorKind {
    /// Nobody listens at the address.
    ConnectionRefused,
    /// The peer reset or aborted the connection.
    ConnectionReset,
    /// The stream ended in the middle of something expected.
    UnexpectedEof,
    /// The address is already bound.
    AddrInUse,
    /// The address cannot be bound or reached from here.
    AddrNotAvailable,
    /// The operation timed out at the OS level.
    TimedOut,
    /// Writing on a half that was closed.
    Closed,
    /// The TLS layer refused the peer's records (bad record, failed
    /// authentication tag, an alert from the peer).
    Tls,
    /// Any other I/O failure.
    Io,
}

/// A failed network operation, with the operation and address it concerned.
#[derive(Debug)]
pub struct NetError {
    kind: NetErrorKind,
    op: &'static str,
    addr: Option<SocketAddr>,
    source: Option<io::Error>,
}

impl NetError {
    /// An error of `kind` raised by `op`, at `addr` if known.
    pub fn new(kind: NetErrorKind, op: &'static str, addr: Option<SocketAddr>) -> Self {
        NetError {
            kind,
            op,
            addr,
            source: None,
        }
    }

    /// Wraps an OS error, classifying it.
    pub fn from_io(err: io::Error, op: &'static str, addr: Option<SocketAddr>) -> Self {
        use io::ErrorKind as K;
        let kind = match err.kind() {
            K::ConnectionRefused => NetErrorKind::ConnectionRefused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                NetErrorKind::ConnectionReset
            }
            K::UnexpectedEof => NetErrorKind::UnexpectedEof,
            K::AddrInUse => NetErrorKind::AddrInUse,
            K::AddrNotAvailable => NetErrorKind::AddrNotAvailable,
            K::TimedOut => NetErrorKind::TimedOut,
            K::NotConnected => NetErrorKind::Closed,
            _ => NetErrorKind::Io,
        };
        NetError {
            kind,
            op,
            addr,
            source: Some(err),
        }
    }

    /// An error of `kind` raised by `op`, described by `why`.
    pub fn described(
        kind: NetErrorKind,
        op: &'static str,
        addr: Option<SocketAddr>,
        why: impl fmt::Display,
    ) -> Self {
        NetError {
            kind,
            op,
            addr,
            source: Some(io::Error::other(why.to_string())),
        }
    }

    /// The class of failure.
    pub fn kind(&self) -> NetErrorKind {
        self.kind
    }

    /// The operation that failed (`"connect"`, `"read"`, ...).
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The address concerned, when known.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "net {} failed: {:?}", self.op, self.kind)?;
        if let Some(addr) = self.addr {
            write!(f, " at {addr}")?;
        }
        if let Some(source) = &self.source {
            write!(f, " ({source})")?;
        }
        Ok(())
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}
