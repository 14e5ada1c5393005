//! TLS for a client of an outside service (HTTPS): the server's
//! certificate is checked against a CA bundle *and* against the name the
//! client dialled, as a browser does, with no client certificate. The
//! same seam-driven provider as the node links: randomness from the `Rng`
//! seam, validity on the `Clock` seam, TLS 1.3 only (ring's TLS 1.2
//! suites are not in the seam provider).

use super::config::WallClock;
use super::error::TlsError;
use super::seam_crypto::{self, RandomSource, with_random};
use super::stream::{TlsStreams, handshake};
use crate::{ByteReader, ByteWriter};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// A client configuration for services reached by name. Cheap to clone.
#[derive(Clone)]
pub struct ServiceTls {
    client: Arc<ClientConfig>,
    random: RandomSource,
}

impl fmt::Debug for ServiceTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceTls")
    }
}

#[derive(Debug)]
struct SeamTime(Wall);

struct Wall(WallClock);

impl fmt::Debug for Wall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WallClock")
    }
}

impl rustls::time_provider::TimeProvider for SeamTime {
    fn current_time(&self) -> Option<UnixTime> {
        let since = (self.0.0)().duration_since(SystemTime::UNIX_EPOCH).ok()?;
        Some(UnixTime::since_unix_epoch(since))
    }
}

impl ServiceTls {
    /// Trusts the CAs in `ca_pem` (one or more PEM certificates).
    pub fn new(
        ca_pem: &[u8],
        random: RandomSource,
        wall_clock: WallClock,
    ) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        let mut any = false;
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| TlsError::Config(format!("CA bundle: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| TlsError::Config(format!("CA bundle: {e}")))?;
            any = true;
        }
        if !any {
            return Err(TlsError::Config("CA bundle: no certificate in it".into()));
        }
        let provider = Arc::new(seam_crypto::provider());
        let time: Arc<dyn rustls::time_provider::TimeProvider> =
            Arc::new(SeamTime(Wall(wall_clock)));
        let mut client = ClientConfig::builder_with_details(provider, time)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.resumption = rustls::client::Resumption::disabled();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServiceTls {
            client: Arc::new(client),
            random,
        })
    }

    /// Runs the client handshake with the service `name` (a DNS name or
    /// an IP address its certificate must hold) over `reader` and `writer`.
    pub async fn connect<R: ByteReader, W: ByteWriter>(
        &self,
        name: &str,
        reader: R,
        writer: W,
    ) -> Result<TlsStreams<R, W>, TlsError> {
        let server = ServerName::try_from(name.to_string())
            .map_err(|e| TlsError::Config(format!("{name:?} is not a server name: {e}")))?;
        let client = with_random(&self.random, || {
            rustls::ClientConnection::new(self.client.clone(), server)
        })
        .map_err(|e| TlsError::Handshake(e.to_string()))?;
        handshake(&self.random, client.into(), reader, writer).await
    }
}

/// The server side of [`ServiceTls`]: a certificate and key, no client
/// certificate asked (an HTTPS service, such as the simulator's fake
/// services or a webhook receiver). Cheap to clone.
#[derive(Clone)]
pub struct ServiceTlsServer {
    server: Arc<ServerConfig>,
    random: RandomSource,
}

impl fmt::Debug for ServiceTlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceTlsServer")
    }
}

impl ServiceTlsServer {
    /// Serves with the PEM chain `cert_pem` and key `key_pem`.
    pub fn new(
        cert_pem: &[u8],
        key_pem: &[u8],
        random: RandomSource,
        wall_clock: WallClock,
    ) -> Result<Self, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Config(format!("certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsError::Config(format!("private key: {e}")))?;
        let provider = Arc::new(seam_crypto::provider());
        let time: Arc<dyn rustls::time_provider::TimeProvider> =
            Arc::new(SeamTime(Wall(wall_clock)));
        let mut server = ServerConfig::builder_with_details(provider, time)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
        server.send_tls13_tickets = 0;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServiceTlsServer {
            server: Arc::new(server),
            random,
        })
    }

    /// Runs the server handshake over `reader` and `writer`.
    pub async fn accept<R: ByteReader, W: ByteWriter>(
        &self,
        reader: R,
        writer: W,
    ) -> Result<TlsStreams<R, W>, TlsError> {
        let server = rustls::ServerConnection::new(self.server.clone())
            .map_err(|e| TlsError::Handshake(e.to_string()))?;
        handshake(&self.random, server.into(), reader, writer).await
    }
}
