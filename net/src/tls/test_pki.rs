//! A test certificate authority: a CA and node certificates, made in the
//! test, deterministic (Ed25519 keys from seeds, serials from the keys), so
//! a simulated run that uses them replays from its seed. Tests only
//! (feature `test-pki`).

use super::config::TlsMaterial;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ED25519,
};
use rustls::pki_types::PrivatePkcs8KeyDer;
use std::time::{Duration, SystemTime};

/// An Ed25519 key pair from a 32-byte seed (PKCS#8 v1).
fn key_from_seed(seed: u64, label: &str) -> KeyPair {
    use sha2::Digest;
    let mut secret = sha2::Sha256::new();
    secret.update(seed.to_le_bytes());
    secret.update(label.as_bytes());
    let secret = secret.finalize();
    let mut pkcs8 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    pkcs8.extend_from_slice(&secret);
    KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), &PKCS_ED25519)
        .expect("a valid Ed25519 PKCS#8 document")
}

fn time(at: SystemTime) -> time::OffsetDateTime {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    time::OffsetDateTime::from_unix_timestamp(secs as i64).expect("a time a certificate can hold")
}

/// A certificate authority for tests.
pub struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
    seed: u64,
}

/// When a test certificate is valid.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    /// Not before.
    pub from: SystemTime,
    /// Not after.
    pub until: SystemTime,
}

impl Validity {
    /// 2000-01-01 to 2099-12-31: valid for any clock a test runs on.
    pub fn always() -> Self {
        Validity {
            from: SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800),
            until: SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_358_400),
        }
    }
}

impl TestCa {
    /// A CA named `name`, its key derived from `seed`.
    pub fn new(name: &str, seed: u64) -> Self {
        let key = key_from_seed(seed, name);
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let validity = Validity::always();
        params.not_before = time(validity.from);
        params.not_after = time(validity.until);
        let pem = params.self_signed(&key).expect("a CA certificate").pem();
        TestCa {
            params,
            key,
            pem,
            seed,
        }
    }

    /// The CA's certificate (PEM), for a node's CA bundle.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A certificate and key (PEM) for `node`, valid for server and client
    /// use, naming `node` as a DNS name, valid `validity`.
    pub fn issue_pem(&self, node: &str, validity: Validity) -> (String, String) {
        let key = key_from_seed(self.seed, &format!("node {node}"));
        let mut params = CertificateParams::new(vec![node.to_string()]).expect("a DNS name");
        params.distinguished_name.push(DnType::CommonName, node);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = time(validity.from);
        params.not_after = time(validity.until);
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("a node certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// [`TlsMaterial`] for `node`, trusting this CA (and `also_trusted`).
    pub fn material(
        &self,
        node: &str,
        validity: Validity,
        also_trusted: &[&TestCa],
    ) -> TlsMaterial {
        let (cert, key) = self.issue_pem(node, validity);
        let mut bundle = self.pem.clone();
        for other in also_trusted {
            bundle.push_str(other.pem());
        }
        TlsMaterial::from_pem(bundle.as_bytes(), cert.as_bytes(), key.as_bytes())
            .expect("test material parses")
    }
}
