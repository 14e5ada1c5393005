//! TLS settings: the cluster's CA, this node's certificate and key, and
//! the rustls configurations built from them for both roles.
//!
//! Every connection is mutually authenticated: each side presents its
//! certificate and checks the other's against the CA bundle. The bundle may
//! hold several CAs, so a cluster rotates its CA by trusting the old and
//! the new one at once, reissuing node certificates, then dropping the old.
//! Which node a certificate belongs to is checked after the node handshake
//! names the peer ([`TlsContext::check_peer`]): a dialer reaches a peer by
//! address and learns its name only then.

use super::error::TlsError;
use super::seam_crypto::{self, RandomSource};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// The wall clock TLS checks certificate validity against: the node's
/// `Clock` seam.
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// What a node needs for TLS, as PEM: the CA bundle it trusts, its own
/// certificate chain and its private key.
#[derive(Clone)]
pub struct TlsMaterial {
    roots: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("roots", &self.roots.len())
            .field("chain", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Config(format!("{what}: not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Config(format!("{what}: no certificate in it")));
    }
    Ok(certs)
}

impl TlsMaterial {
    /// Parses the CA bundle (one or more certificates), this node's
    /// certificate chain (its own first) and its private key (PKCS#8,
    /// PKCS#1 or SEC1), all PEM.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let roots = certificates(ca, "CA bundle")?;
        let chain = certificates(cert, "certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| TlsError::Config(format!("private key: {e}")))?;
        Ok(TlsMaterial {
            roots,
            chain,
            key: Arc::new(key),
        })
    }

    /// The node's own certificate (DER).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }
}

/// The rustls configurations of one node, both roles, built from its
/// [`TlsMaterial`] and its seams. Cheap to clone; a reload builds a new
/// one and connections made before it keep theirs.
#[derive(Clone)]
pub struct TlsContext {
    pub(crate) client: Arc<ClientConfig>,
    pub(crate) server: Arc<ServerConfig>,
    pub(crate) random: RandomSource,
}

impl fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsContext")
    }
}

struct SeamTime(WallClock);

impl fmt::Debug for SeamTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeamTime")
    }
}

impl rustls::time_provider::TimeProvider for SeamTime {
    fn current_time(&self) -> Option<UnixTime> {
        let since_epoch = (self.0)().duration_since(SystemTime::UNIX_EPOCH).ok()?;
        Some(UnixTime::since_unix_epoch(since_epoch))
    }
}

impl TlsContext {
    /// Builds both roles' configurations: TLS 1.3 only, mutual
    /// authentication against the CA bundle, no session resumption (every
    /// connection proves itself afresh). Randomness comes from `random`
    /// (the node's `Rng` seam) and certificate validity is judged by
    /// `wall_clock` (its `Clock` seam), so a simulated handshake replays
    /// from its seed. The node's own certificate must chain to the bundle
    /// and be valid now, for both roles, or this fails: a misconfigured
    /// node finds out at start, not at its first peer.
    pub fn new(
        material: &TlsMaterial,
        random: RandomSource,
        wall_clock: WallClock,
    ) -> Result<Self, TlsError> {
        let provider = Arc::new(seam_crypto::provider());
        let time: Arc<dyn rustls::time_provider::TimeProvider> =
            Arc::new(SeamTime(wall_clock.clone()));
        let mut roots = RootCertStore::empty();
        for cert in &material.roots {
            roots
                .add(cert.clone())
                .map_err(|e| TlsError::Config(format!("CA bundle: {e}")))?;
        }
        let roots = Arc::new(roots);
        let algorithms = provider.signature_verification_algorithms;
        let now = SeamTime(wall_clock).current_time_or_epoch();
        check_own(material, &roots, &algorithms, now)?;

        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| TlsError::Config(format!("client verifier: {e}")))?;
        let mut server = ServerConfig::builder_with_details(provider.clone(), time.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(material.chain.clone(), material.key.clone_key())
            .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
        server.send_tls13_tickets = 0;
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});

        let mut client = ClientConfig::builder_with_details(provider.clone(), time)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly { roots, algorithms }))
            .with_client_auth_cert(material.chain.clone(), material.key.clone_key())
            .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
        client.resumption = rustls::client::Resumption::disabled();
        Ok(TlsContext {
            client: Arc::new(client),
            server: Arc::new(server),
            random,
        })
    }

    /// Checks that `certificate` (a peer's, as the handshake received it)
    /// names node `node`: its subject alternative names hold `node` as a
    /// DNS name. Node names that are not DNS names cannot be bound to a
    /// certificate and are refused.
    pub fn check_peer(certificate: &CertificateDer<'_>, node: &str) -> Result<(), TlsError> {
        let wrong = |why: String| TlsError::WrongPeer {
            claimed: node.to_string(),
            why,
        };
        let name = ServerName::try_from(node)
            .map_err(|_| wrong("the name is not a DNS name a certificate can hold".into()))?;
        let cert = webpki::EndEntityCert::try_from(certificate)
            .map_err(|e| wrong(format!("unreadable certificate: {e}")))?;
        cert.verify_is_valid_for_subject_name(&name)
            .map_err(|e| wrong(e.to_string()))
    }
}

impl SeamTime {
    fn current_time_or_epoch(&self) -> UnixTime {
        use rustls::time_provider::TimeProvider;
        self.current_time()
            .unwrap_or(UnixTime::since_unix_epoch(std::time::Duration::ZERO))
    }
}

fn anchors(roots: &RootCertStore) -> &[rustls::pki_types::TrustAnchor<'static>] {
    &roots.roots
}

/// The node's own certificate chains to the bundle and is valid now, as a
/// server and as a client.
fn check_own(
    material: &TlsMaterial,
    roots: &RootCertStore,
    algorithms: &WebPkiSupportedAlgorithms,
    now: UnixTime,
) -> Result<(), TlsError> {
    let cert = webpki::EndEntityCert::try_from(material.certificate())
        .map_err(|e| TlsError::Config(format!("certificate: {e}")))?;
    for (usage, role) in [
        (webpki::KeyUsage::server_auth(), "server"),
        (webpki::KeyUsage::client_auth(), "client"),
    ] {
        cert.verify_for_usage(
            algorithms.all,
            anchors(roots),
            &material.chain[1..],
            now,
            usage,
            None,
            None,
        )
        .map_err(|e| {
            TlsError::Config(format!(
                "this node's certificate is not valid as a TLS {role} under the CA bundle: {e}"
            ))
        })?;
    }
    Ok(())
}

/// Checks a server's chain against the CA bundle and its validity, but not
/// its name: the dialer reaches a peer by address, and binds the name the
/// peer then gives to its certificate ([`TlsContext::check_peer`]).
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

fn pki_error(e: webpki::Error) -> rustls::Error {
    use rustls::CertificateError as C;
    use webpki::Error as E;
    let kind = match e {
        E::CertExpired { .. } => C::Expired,
        E::CertNotValidYet { .. } => C::NotValidYet,
        E::UnknownIssuer => C::UnknownIssuer,
        E::InvalidSignatureForPublicKey => C::BadSignature,
        E::CertRevoked => C::Revoked,
        other => C::Other(rustls::OtherError(Arc::new(OtherPki(other)))),
    };
    rustls::Error::InvalidCertificate(kind)
}

#[derive(Debug)]
struct OtherPki(webpki::Error);

impl fmt::Display for OtherPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for OtherPki {}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(pki_error)?;
        cert.verify_for_usage(
            self.algorithms.all,
            anchors(&self.roots),
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(pki_error)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is configured; a 1.2 signature never comes here.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
