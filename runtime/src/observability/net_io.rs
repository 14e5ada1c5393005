//! A `Net` seam connection as hyper's I/O: hyper is poll-based, the seam's
//! streams are `async fn`s, so each direction keeps at most one operation
//! in flight as a boxed future that owns its half of the connection.
//!
//! With this, HTTP (the operator endpoint, the Pushgateway client) runs
//! over whatever network the node's `Env` has: TCP in production, the
//! simulator's network under a seed.

use futures::future::BoxFuture;
use plexspaces_net::{ByteReader, ByteWriter, Connection, DynConnection, DynReader, DynWriter};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// Bytes asked of the stream per read.
const READ_CHUNK: usize = 8 * 1024;

enum Reading {
    Idle(DynReader),
    Busy(BoxFuture<'static, (DynReader, Vec<u8>, Result<usize, io::Error>)>),
    /// Only while a state change is under way, never observed.
    Gone,
}

enum Writing {
    Idle(DynWriter),
    Busy(BoxFuture<'static, (DynWriter, Result<(), io::Error>)>),
    Gone,
}

/// One connection, readable and writable by hyper.
pub(crate) struct NetIo {
    reading: Reading,
    /// Bytes read from the stream, not yet handed to hyper.
    unread: Vec<u8>,
    unread_at: usize,
    writing: Writing,
    /// Bytes hyper wrote, not yet sent (sent on flush).
    unsent: Vec<u8>,
    /// The write half was closed.
    closed: bool,
}

fn io_error(e: plexspaces_net::NetError) -> io::Error {
    io::Error::other(e)
}

impl NetIo {
    pub(crate) fn new(connection: DynConnection) -> Self {
        let (reader, writer) = connection.split();
        Self::from_halves(reader, writer)
    }

    /// Over the two halves of a connection (a TLS session's, say).
    pub(crate) fn from_halves(reader: DynReader, writer: DynWriter) -> Self {
        NetIo {
            reading: Reading::Idle(reader),
            unread: Vec::new(),
            unread_at: 0,
            writing: Writing::Idle(writer),
            unsent: Vec::new(),
            closed: false,
        }
    }

    /// Finishes the write in flight, if any.
    fn poll_writing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Writing::Busy(future) = &mut self.writing {
            let (writer, result) = ready!(future.as_mut().poll(cx));
            self.writing = Writing::Idle(writer);
            result?;
        }
        Poll::Ready(Ok(()))
    }

    /// Starts sending what is buffered, then `close` if asked.
    fn start_write(&mut self, close: bool) {
        let Writing::Idle(mut writer) = std::mem::replace(&mut self.writing, Writing::Gone) else {
            unreachable!("a write starts only when none is in flight");
        };
        let bytes = std::mem::take(&mut self.unsent);
        self.writing = Writing::Busy(Box::pin(async move {
            let mut result = Ok(());
            if !bytes.is_empty() {
                result = writer.write_all(&bytes).await.map_err(io_error);
            }
            if result.is_ok() {
                result = if close {
                    writer.close().await
                } else {
                    writer.flush().await
                }
                .map_err(io_error);
            }
            (writer, result)
        }));
    }
}

impl hyper::rt::Read for NetIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.unread_at < this.unread.len() {
                let n = buf.remaining().min(this.unread.len() - this.unread_at);
                buf.put_slice(&this.unread[this.unread_at..this.unread_at + n]);
                this.unread_at += n;
                return Poll::Ready(Ok(()));
            }
            match std::mem::replace(&mut this.reading, Reading::Gone) {
                Reading::Idle(mut reader) => {
                    this.reading = Reading::Busy(Box::pin(async move {
                        let mut chunk = vec![0; READ_CHUNK];
                        let result = reader.read(&mut chunk).await.map_err(io_error);
                        (reader, chunk, result)
                    }));
                }
                Reading::Busy(mut future) => match future.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.reading = Reading::Busy(future);
                        return Poll::Pending;
                    }
                    Poll::Ready((reader, chunk, result)) => {
                        this.reading = Reading::Idle(reader);
                        let n = result?;
                        if n == 0 {
                            return Poll::Ready(Ok(())); // end of stream
                        }
                        this.unread = chunk;
                        this.unread.truncate(n);
                        this.unread_at = 0;
                    }
                },
                Reading::Gone => unreachable!("reading state is restored before returning"),
            }
        }
    }
}

impl hyper::rt::Write for NetIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_writing(cx))?;
        if this.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        this.unsent.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_writing(cx))?;
        if this.unsent.is_empty() || this.closed {
            return Poll::Ready(Ok(()));
        }
        this.start_write(false);
        this.poll_writing(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_writing(cx))?;
        if this.closed {
            return Poll::Ready(Ok(()));
        }
        this.closed = true;
        this.start_write(true);
        this.poll_writing(cx)
    }
}
