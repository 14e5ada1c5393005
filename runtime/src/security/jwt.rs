//! JSON Web Token validation (on `jsonwebtoken`): signature with a key
//! chosen by the token's key id, issuer, audience, and expiry and
//! not-before judged on the node's `Clock` seam with a leeway.
//!
//! Each key is bound to one algorithm, and a token whose header names
//! another is refused before any signature check: an HMAC secret is
//! never tried as an RSA key or the other way round (the classic
//! algorithm confusion), and `alg: none` names no key at all.

use super::principal_of;
use crate::actor::facet::{AuthMethod, Principal};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::fmt;
use std::time::{Duration, SystemTime};

/// Longest token accepted (bytes); a longer one is refused unparsed.
pub const TOKEN_LEN_MAX: usize = 16 * 1024;
/// Most keys a verifier holds (configured and from a JWKS together).
pub const KEYS_MAX: usize = 256;

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The message carries no credentials.
    Missing,
    /// Longer than [`TOKEN_LEN_MAX`].
    TooLong(usize),
    /// Not a JWT (three base64url parts, a JSON header and claims), or
    /// its header names an algorithm this crate does not know (`none`).
    Malformed(String),
    /// The header's algorithm is not the one of the key it names (or of
    /// any key, without a key id).
    AlgorithmNotAllowed(String),
    /// The header names a key id no configured key or JWKS entry has.
    UnknownKey(String),
    /// No key verifies the signature.
    BadSignature,
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` is ahead (beyond the leeway).
    NotYetValid,
    /// `iss` is not an accepted issuer.
    WrongIssuer,
    /// `aud` names no accepted audience.
    WrongAudience,
    /// A required claim is missing or has the wrong type.
    MissingClaim(&'static str),
}

impl TokenError {
    /// A short fixed name, for the refusals metric.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Missing => "missing",
            TokenError::TooLong(_) => "too_long",
            TokenError::Malformed(_) => "malformed",
            TokenError::AlgorithmNotAllowed(_) => "algorithm",
            TokenError::UnknownKey(_) => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::WrongIssuer => "issuer",
            TokenError::WrongAudience => "audience",
            TokenError::MissingClaim(_) => "claim",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Missing => f.write_str("no credentials"),
            TokenError::TooLong(n) => write!(f, "a token of {n} bytes (at most {TOKEN_LEN_MAX})"),
            TokenError::Malformed(why) => write!(f, "malformed token: {why}"),
            TokenError::AlgorithmNotAllowed(alg) => write!(f, "algorithm {alg} not allowed"),
            TokenError::UnknownKey(kid) => write!(f, "unknown key id {kid:?}"),
            TokenError::BadSignature => f.write_str("bad signature"),
            TokenError::Expired => f.write_str("token expired"),
            TokenError::NotYetValid => f.write_str("token not yet valid"),
            TokenError::WrongIssuer => f.write_str("wrong issuer"),
            TokenError::WrongAudience => f.write_str("wrong audience"),
            TokenError::MissingClaim(c) => write!(f, "claim {c:?} missing or malformed"),
        }
    }
}

impl std::error::Error for TokenError {}

/// A verification key, bound to one algorithm.
#[derive(Clone)]
pub struct JwtKey {
    key_id: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("key_id", &self.key_id)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

/// A key could not be made from its material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad verification key: {}", self.0)
    }
}

impl std::error::Error for KeyError {}

fn key_error(e: jsonwebtoken::errors::Error) -> KeyError {
    KeyError(e.to_string())
}

impl JwtKey {
    /// An HMAC secret for HS256 (at least 32 bytes, as RFC 7518 asks).
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < 32 {
            return Err(KeyError(format!(
                "an HS256 secret needs at least 32 bytes, got {}",
                secret.len()
            )));
        }
        Ok(Self::bound(
            Algorithm::HS256,
            DecodingKey::from_secret(secret),
        ))
    }

    /// An RSA public key (PEM) for RS256.
    pub fn rs256_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let key = DecodingKey::from_rsa_pem(pem).map_err(key_error)?;
        Ok(Self::bound(Algorithm::RS256, key))
    }

    /// A P-256 public key (PEM) for ES256.
    pub fn es256_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let key = DecodingKey::from_ec_pem(pem).map_err(key_error)?;
        Ok(Self::bound(Algorithm::ES256, key))
    }

    /// An Ed25519 public key (PEM) for EdDSA.
    pub fn eddsa_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let key = DecodingKey::from_ed_pem(pem).map_err(key_error)?;
        Ok(Self::bound(Algorithm::EdDSA, key))
    }

    fn bound(algorithm: Algorithm, key: DecodingKey) -> Self {
        JwtKey {
            key_id: None,
            algorithm,
            key,
        }
    }

    /// This key, found by tokens whose header names `kid`.
    pub fn with_key_id(mut self, kid: &str) -> Self {
        self.key_id = Some(kid.to_string());
        self
    }

    /// The keys of a JWKS document (RFC 7517), each with its `kid`
    /// (required) and algorithm (its `alg`, or the one its key type
    /// implies: RSA is RS256, P-256 is ES256, Ed25519 is EdDSA). Keys of
    /// other types or algorithms are refused, not skipped: a document
    /// this node half understands is a configuration error.
    pub fn from_jwks(json: &str) -> Result<Vec<Self>, KeyError> {
        let set: JwkSet =
            serde_json::from_str(json).map_err(|e| KeyError(format!("not a JWKS: {e}")))?;
        if set.keys.len() > KEYS_MAX {
            return Err(KeyError(format!("more than {KEYS_MAX} keys")));
        }
        set.keys
            .iter()
            .map(|jwk| {
                let kid = jwk
                    .common
                    .key_id
                    .clone()
                    .ok_or_else(|| KeyError("a JWKS key without a kid".into()))?;
                let implied = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
                    AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                        Some(Algorithm::ES256)
                    }
                    AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                        Some(Algorithm::EdDSA)
                    }
                    _ => None,
                };
                let algorithm = match (jwk.common.key_algorithm, implied) {
                    (None, Some(implied)) => implied,
                    (Some(KeyAlgorithm::RS256), Some(Algorithm::RS256)) => Algorithm::RS256,
                    (Some(KeyAlgorithm::ES256), Some(Algorithm::ES256)) => Algorithm::ES256,
                    (Some(KeyAlgorithm::EdDSA), Some(Algorithm::EdDSA)) => Algorithm::EdDSA,
                    (stated, _) => {
                        return Err(KeyError(format!(
                            "key {kid:?}: unsupported key type or algorithm {stated:?}"
                        )));
                    }
                };
                let key = DecodingKey::from_jwk(jwk).map_err(key_error)?;
                Ok(JwtKey {
                    key_id: Some(kid),
                    algorithm,
                    key,
                })
            })
            .collect()
    }
}

/// Which claims make the principal.
#[derive(Clone, Debug)]
pub struct ClaimNames {
    /// The tenant claim (default `tenant`).
    pub tenant: String,
    /// The roles claim: an array of strings or one space-separated string
    /// (default `roles`).
    pub roles: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            tenant: "tenant".into(),
            roles: "roles".into(),
        }
    }
}

/// Validates tokens: keys, accepted issuers and audiences, leeway.
#[derive(Clone, Debug)]
pub struct JwtVerifier {
    keys: Vec<JwtKey>,
    /// Keys from a JWKS document, replaced as a whole on rotation.
    jwks: Vec<JwtKey>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    require_exp: bool,
    claims: ClaimNames,
}

impl Default for JwtVerifier {
    fn default() -> Self {
        JwtVerifier {
            keys: Vec::new(),
            jwks: Vec::new(),
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(30),
            require_exp: true,
            claims: ClaimNames::default(),
        }
    }
}

impl JwtVerifier {
    /// No keys yet; accepts any issuer and audience until told which; a
    /// leeway of 30 s; tokens must have `exp`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a configured key.
    pub fn key(mut self, key: JwtKey) -> Result<Self, KeyError> {
        if self.keys.len() + self.jwks.len() >= KEYS_MAX {
            return Err(KeyError(format!("more than {KEYS_MAX} keys")));
        }
        self.keys.push(key);
        Ok(self)
    }

    /// Accepts tokens from `issuer` (once any is named, only those named).
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.issuers.push(issuer.to_string());
        self
    }

    /// Accepts tokens for `audience` (once any is named, a token must name
    /// one of them).
    pub fn audience(mut self, audience: &str) -> Self {
        self.audiences.push(audience.to_string());
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Whether a token without `exp` is refused (default true).
    pub fn require_exp(mut self, required: bool) -> Self {
        self.require_exp = required;
        self
    }

    /// Which claims hold the tenant and the roles.
    pub fn claim_names(mut self, names: ClaimNames) -> Self {
        self.claims = names;
        self
    }

    /// Replaces the JWKS keys (a key rotation publishes a document with the
    /// old and the new key; the next one drops the old).
    pub fn set_jwks(&mut self, json: &str) -> Result<(), KeyError> {
        let keys = JwtKey::from_jwks(json)?;
        if self.keys.len() + keys.len() > KEYS_MAX {
            return Err(KeyError(format!("more than {KEYS_MAX} keys")));
        }
        self.jwks = keys;
        Ok(())
    }

    /// Verifies `token` (optionally prefixed `Bearer `) at wall time
    /// `now` and returns its principal.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Principal, TokenError> {
        let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > TOKEN_LEN_MAX {
            return Err(TokenError::TooLong(token.len()));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        let alg = header.alg;
        let candidates: Vec<&JwtKey> = match &header.kid {
            Some(kid) => {
                let key = self
                    .keys
                    .iter()
                    .chain(&self.jwks)
                    .find(|k| k.key_id.as_deref() == Some(kid.as_str()))
                    .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
                vec![key]
            }
            None => self.keys.iter().chain(&self.jwks).collect(),
        };
        let candidates: Vec<&JwtKey> = candidates
            .into_iter()
            .filter(|k| k.algorithm == alg)
            .collect();
        if candidates.is_empty() {
            return Err(TokenError::AlgorithmNotAllowed(format!("{alg:?}")));
        }
        let mut validation = Validation::new(alg);
        // Expiry and not-before are judged below, on the node's clock;
        // jsonwebtoken would read the system time.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        // A configured issuer or audience must be present, not only
        // right when present (jsonwebtoken checks only what is there).
        validation.required_spec_claims.clear();
        validation.validate_aud = !self.audiences.is_empty();
        if !self.audiences.is_empty() {
            validation.set_audience(&self.audiences);
            validation.required_spec_claims.insert("aud".into());
        }
        if !self.issuers.is_empty() {
            validation.set_issuer(&self.issuers);
            validation.required_spec_claims.insert("iss".into());
        }
        let mut last = TokenError::BadSignature;
        for key in &candidates {
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                &key.key,
                &validation,
            ) {
                Ok(data) => {
                    let claims = data.claims;
                    self.check_times(|name| claims.get(name), now)?;
                    return principal_of(
                        claims,
                        &self.claims,
                        AuthMethod::Jwt {
                            key_id: key.key_id.clone(),
                        },
                    );
                }
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    last = match e.kind() {
                        K::InvalidSignature | K::Crypto(_) => TokenError::BadSignature,
                        K::InvalidIssuer => return Err(TokenError::WrongIssuer),
                        K::InvalidAudience => return Err(TokenError::WrongAudience),
                        K::MissingRequiredClaim(c) if c == "aud" => {
                            return Err(TokenError::WrongAudience);
                        }
                        K::MissingRequiredClaim(c) if c == "iss" => {
                            return Err(TokenError::WrongIssuer);
                        }
                        K::InvalidAlgorithm => TokenError::AlgorithmNotAllowed(format!("{alg:?}")),
                        _ => TokenError::Malformed(e.to_string()),
                    };
                }
            }
        }
        Err(last)
    }

    /// Whether a verified principal's token is still within its validity
    /// at `now` (its `exp` and `nbf`, with the leeway): a cached
    /// verification is used only while this holds.
    pub fn still_valid(&self, principal: &Principal, now: SystemTime) -> Result<(), TokenError> {
        self.check_times(|name| principal.claims.get(name), now)
    }

    fn check_times<'c>(
        &self,
        claims: impl Fn(&str) -> Option<&'c serde_json::Value>,
        now: SystemTime,
    ) -> Result<(), TokenError> {
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let leeway = self.leeway.as_secs();
        let seconds = |name: &'static str| -> Result<Option<u64>, TokenError> {
            match claims(name) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                    .map(Some)
                    .ok_or(TokenError::MissingClaim(name)),
            }
        };
        match seconds("exp")? {
            Some(exp) if exp.saturating_add(leeway) < now => return Err(TokenError::Expired),
            None if self.require_exp => return Err(TokenError::MissingClaim("exp")),
            _ => {}
        }
        if let Some(nbf) = seconds("nbf")?
            && nbf > now.saturating_add(leeway)
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}
