//! rustls driven over the `Net` seam's byte streams.
//!
//! rustls is sans-IO: it turns received ciphertext into plaintext and
//! plaintext to send into ciphertext, and this module moves the bytes
//! through a [`ByteReader`] and a [`ByteWriter`]. A connection is split in
//! two halves (one task reads, another writes), so the halves share the
//! rustls state behind a mutex that is held only for the synchronous
//! encrypt or decrypt step, never across an await.
//!
//! Records the read side produces for the peer (a key update's answer) go
//! out with the write side's next write; nothing the protocol needs waits
//! on them.

use super::config::TlsContext;
use super::error::TlsError;
use super::seam_crypto::{RandomSource, with_random};
use crate::{ByteReader, ByteWriter, NetError, NetErrorKind};
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

/// Ciphertext read per call: one full TLS record and its overhead.
const READ_CHUNK: usize = 16 * 1024 + 512;

/// The rustls state both halves of one connection share.
struct Shared {
    connection: Mutex<rustls::Connection>,
    random: RandomSource,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, rustls::Connection> {
        // A panic while holding it leaves rustls in an unknown state; the
        // connection is unusable either way, so poisoning ends it.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The receiving half of a TLS connection.
pub struct TlsReader<R> {
    inner: R,
    shared: Arc<Shared>,
    /// Ciphertext read but not yet handed to rustls (`start..end`).
    cipher: Box<[u8]>,
    start: usize,
    end: usize,
}

/// The sending half of a TLS connection.
pub struct TlsWriter<W> {
    inner: W,
    shared: Arc<Shared>,
    out: Vec<u8>,
}

/// A connection after its TLS handshake: both halves and the peer's
/// certificate.
pub struct TlsStreams<R, W> {
    /// Plaintext in.
    pub reader: TlsReader<R>,
    /// Plaintext out.
    pub writer: TlsWriter<W>,
    /// The certificate the peer presented (chain and validity checked;
    /// whose it is, see [`TlsContext::check_peer`]); empty for a service's
    /// client, which presents none.
    pub peer_certificate: CertificateDer<'static>,
}

fn tls_net_error(op: &'static str, e: impl std::fmt::Display) -> NetError {
    NetError::described(NetErrorKind::Tls, op, None, e)
}

/// Runs the client side of the handshake over `reader` and `writer`.
pub async fn connect<R: ByteReader, W: ByteWriter>(
    context: &TlsContext,
    reader: R,
    writer: W,
) -> Result<TlsStreams<R, W>, TlsError> {
    // The name is not checked (see `ChainOnly`); rustls needs one to send.
    let name = ServerName::try_from("plexspaces-node").expect("a valid DNS name");
    let client = with_random(&context.random, || {
        rustls::ClientConnection::new(context.client.clone(), name)
    })
    .map_err(|e| TlsError::Handshake(e.to_string()))?;
    handshake(&context.random, client.into(), reader, writer).await
}

/// Runs the server side of the handshake over `reader` and `writer`.
pub async fn accept<R: ByteReader, W: ByteWriter>(
    context: &TlsContext,
    reader: R,
    writer: W,
) -> Result<TlsStreams<R, W>, TlsError> {
    let server = rustls::ServerConnection::new(context.server.clone())
        .map_err(|e| TlsError::Handshake(e.to_string()))?;
    handshake(&context.random, server.into(), reader, writer).await
}

async fn send_pending<W: ByteWriter>(
    connection: &mut rustls::Connection,
    writer: &mut W,
    out: &mut Vec<u8>,
) -> Result<(), NetError> {
    while connection.wants_write() {
        connection
            .write_tls(out)
            .map_err(|e| tls_net_error("write", e))?;
    }
    if !out.is_empty() {
        writer.write_all(out).await?;
        writer.flush().await?;
        out.clear();
    }
    Ok(())
}

pub(super) async fn handshake<R: ByteReader, W: ByteWriter>(
    random: &RandomSource,
    mut connection: rustls::Connection,
    mut reader: R,
    mut writer: W,
) -> Result<TlsStreams<R, W>, TlsError> {
    let mut cipher = vec![0u8; READ_CHUNK].into_boxed_slice();
    let mut out = Vec::new();
    let (mut start, mut end) = (0, 0);
    loop {
        send_pending(&mut connection, &mut writer, &mut out).await?;
        if !connection.is_handshaking() {
            break;
        }
        if start == end {
            let n = reader.read(&mut cipher).await?;
            if n == 0 {
                return Err(TlsError::Handshake(
                    "the peer closed the connection during the handshake".into(),
                ));
            }
            (start, end) = (0, n);
        }
        let mut slice = &cipher[start..end];
        let taken = connection
            .read_tls(&mut slice)
            .map_err(|e| TlsError::Handshake(e.to_string()))?;
        if taken == 0 {
            // rustls reads nothing more (it stopped after an alert, say):
            // looping would spin on the same bytes for ever.
            return Err(TlsError::Handshake(
                "the TLS layer takes none of the peer's bytes".into(),
            ));
        }
        start += taken;
        if let Err(e) = with_random(random, || connection.process_new_packets()) {
            // Tell the peer why (an alert), best effort, then give up.
            let _ = send_pending(&mut connection, &mut writer, &mut out).await;
            return Err(TlsError::Handshake(e.to_string()));
        }
    }
    // A node link's rustls configurations require the peer's certificate
    // (mutual authentication), so there always is one there; a service's
    // client presents none, and gets an empty one.
    let peer_certificate = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.clone().into_owned())
        .unwrap_or_else(|| CertificateDer::from(Vec::new()));
    let shared = Arc::new(Shared {
        connection: Mutex::new(connection),
        random: random.clone(),
    });
    Ok(TlsStreams {
        reader: TlsReader {
            inner: reader,
            shared: shared.clone(),
            cipher,
            start,
            end,
        },
        writer: TlsWriter {
            inner: writer,
            shared,
            out,
        },
        peer_certificate,
    })
}

impl<R: ByteReader> TlsReader<R> {
    /// Hands buffered ciphertext to rustls and reads plaintext into `buf`:
    /// `Some(n)` when there was some (or the peer closed, `n == 0`),
    /// `None` when more ciphertext is needed.
    fn decrypt(&mut self, buf: &mut [u8]) -> Result<Option<usize>, NetError> {
        let mut connection = self.shared.lock();
        while self.start < self.end && connection.wants_read() {
            let mut slice = &self.cipher[self.start..self.end];
            let taken = connection
                .read_tls(&mut slice)
                .map_err(|e| tls_net_error("read", e))?;
            if taken == 0 {
                // Nothing taken: the caller reports it rather than spin.
                break;
            }
            self.start += taken;
            with_random(&self.shared.random, || connection.process_new_packets())
                .map_err(|e| tls_net_error("read", e))?;
        }
        match connection.reader().read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(NetError::from_io(e, "read", None)),
        }
    }
}

impl<R: ByteReader> ByteReader for TlsReader<R> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(n) = self.decrypt(buf)? {
                return Ok(n);
            }
            if self.start < self.end {
                return Err(tls_net_error(
                    "read",
                    "rustls took no ciphertext and gave no plaintext",
                ));
            }
            let n = self.inner.read(&mut self.cipher).await?;
            (self.start, self.end) = (0, n);
            if n == 0 {
                // End of the transport: rustls tells a clean close (the
                // peer's close_notify, read as 0) from a truncation.
                let mut connection = self.shared.lock();
                let _ = connection.read_tls(&mut io::empty());
                with_random(&self.shared.random, || connection.process_new_packets())
                    .map_err(|e| tls_net_error("read", e))?;
                return match connection.reader().read(buf) {
                    Ok(n) => Ok(n),
                    Err(e) => Err(NetError::from_io(e, "read", None)),
                };
            }
        }
    }
}

impl<W: ByteWriter> TlsWriter<W> {
    /// Encrypts `plain` into `self.out`.
    fn encrypt(&mut self, mut plain: &[u8]) -> Result<(), NetError> {
        let mut connection = self.shared.lock();
        loop {
            let taken = connection
                .writer()
                .write(plain)
                .map_err(|e| NetError::from_io(e, "write", None))?;
            plain = &plain[taken..];
            while connection.wants_write() {
                connection
                    .write_tls(&mut self.out)
                    .map_err(|e| tls_net_error("write", e))?;
            }
            if plain.is_empty() {
                return Ok(());
            }
            if taken == 0 {
                return Err(tls_net_error("write", "rustls took no plaintext"));
            }
        }
    }

    async fn send_out(&mut self) -> Result<(), NetError> {
        if !self.out.is_empty() {
            let result = self.inner.write_all(&self.out).await;
            self.out.clear();
            result?;
        }
        Ok(())
    }
}

impl<W: ByteWriter> ByteWriter for TlsWriter<W> {
    async fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        self.encrypt(buf)?;
        self.send_out().await
    }

    async fn flush(&mut self) -> Result<(), NetError> {
        self.inner.flush().await
    }

    async fn close(&mut self) -> Result<(), NetError> {
        {
            let mut connection = self.shared.lock();
            connection.send_close_notify();
            while connection.wants_write() {
                connection
                    .write_tls(&mut self.out)
                    .map_err(|e| tls_net_error("close", e))?;
            }
        }
        self.send_out().await?;
        self.inner.close().await
    }
}
