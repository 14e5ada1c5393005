//! The authentication facet: every message must carry valid credentials
//! (a JWT in its `principal` header, or, from another node of a TLS
//! cluster, that node's certificate) or it is refused with
//! `Unauthenticated` before the handler; a verified message acts for its
//! [`Principal`], which later facets and the handler see.
//!
//! It also holds the tenant boundary when the actor belongs to a tenant:
//! a principal of another tenant, or a message claiming another tenant
//! in its headers, is refused with `Forbidden` (rule `tenant`), on the
//! receiving node, whatever the registry would have allowed.

use super::audit;
use super::jwt::{JwtVerifier, KeyError, TokenError};
use crate::actor::ActorId;
use crate::actor::facet::{
    AuthMethod, Facet, FacetCategory, FacetConfig, FacetConfigError, FacetDescriptor,
    FacetRegistry, Hook, Hooks, Message, Principal, Rejection, Verdict,
};
use crate::env::Env;
use crate::seams::Clock;
use plexspaces_storage::sync::LockExt;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

/// The registered type name of [`AuthenticationFacet`].
pub const AUTHENTICATION: &str = "authentication";
/// Its default priority: first of all (security band, top).
pub const AUTHENTICATION_PRIORITY: i32 = 1900;

/// How nodes of the cluster authenticate as callers (mTLS): a message
/// from another node without a token acts for `node:<name>` with these
/// roles, but only if the link is TLS (the node proven by its
/// certificate); over a plaintext link it needs a token like any caller.
#[derive(Clone, Debug, Default)]
pub struct NodeIdentities {
    /// The roles a node has.
    pub roles: Vec<String>,
    /// The tenant a node acts for, if any.
    pub tenant: Option<String>,
}

struct Settings {
    /// Shared, so a verification runs outside the lock.
    jwt: Option<Arc<JwtVerifier>>,
    nodes: Option<NodeIdentities>,
    verified: VerifiedTokens,
}

/// Most tokens whose verification is remembered.
pub const VERIFIED_TOKENS_MAX: usize = 4096;
/// Longest token whose verification is remembered (the cache holds at most
/// `VERIFIED_TOKENS_MAX` of these).
pub const VERIFIED_TOKEN_LEN_MAX: usize = 4096;

/// Tokens verified recently, so a caller that sends the same token with
/// every message pays the signature check once: keyed by the token's
/// exact text (a hash, then the text compared), used only while the token
/// is still within its `exp` and `nbf` on the node's clock, emptied when
/// the keys change, bounded (oldest out first).
#[derive(Default)]
struct VerifiedTokens {
    entries: BTreeMap<u64, (String, Arc<Principal>)>,
    order: VecDeque<u64>,
}

/// A fast hash of a token's text (the text itself is compared on a hit,
/// so a collision costs a verification, never a wrong principal).
fn token_hash(token: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for chunk in token.as_bytes().chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(word))
            .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    hash ^ token.len() as u64
}

impl VerifiedTokens {
    fn get(&self, hash: u64, token: &str) -> Option<Arc<Principal>> {
        self.entries
            .get(&hash)
            .filter(|(text, _)| text == token)
            .map(|(_, principal)| principal.clone())
    }

    fn put(&mut self, hash: u64, token: &str, principal: Arc<Principal>) {
        if token.len() > VERIFIED_TOKEN_LEN_MAX {
            return;
        }
        while self.entries.len() >= VERIFIED_TOKENS_MAX {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        if self
            .entries
            .insert(hash, (token.to_string(), principal))
            .is_none()
        {
            self.order.push_back(hash);
        }
    }

    fn remove(&mut self, hash: u64) {
        self.entries.remove(&hash);
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }
}

/// A node's authentication settings, shared by every facet made from it;
/// a JWKS update reaches them all at once. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    settings: Arc<Mutex<Settings>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator")
    }
}

impl Default for Authenticator {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a message was not authenticated.
pub type AuthError = TokenError;

impl Authenticator {
    /// Accepts nothing until told how.
    pub fn new() -> Self {
        Authenticator {
            settings: Arc::new(Mutex::new(Settings {
                jwt: None,
                nodes: None,
                verified: VerifiedTokens::default(),
            })),
        }
    }

    /// Accepts JWTs that `verifier` validates.
    pub fn with_jwt(self, verifier: JwtVerifier) -> Self {
        let mut settings = self.settings.locked();
        settings.jwt = Some(Arc::new(verifier));
        settings.verified.clear();
        drop(settings);
        self
    }

    /// Accepts nodes of a TLS cluster as callers ([`NodeIdentities`]).
    pub fn with_node_identities(self, nodes: NodeIdentities) -> Self {
        self.settings.locked().nodes = Some(nodes);
        self
    }

    /// Replaces the JWKS keys of the JWT verifier (key rotation); the
    /// facets already attached use them from their next message.
    pub fn set_jwks(&self, json: &str) -> Result<(), KeyError> {
        let mut settings = self.settings.locked();
        let mut jwt = settings
            .jwt
            .as_deref()
            .cloned()
            .unwrap_or_else(JwtVerifier::new);
        jwt.set_jwks(json)?;
        settings.jwt = Some(Arc::new(jwt));
        // Verified under the old keys: a dropped key's tokens must fail.
        settings.verified.clear();
        Ok(())
    }

    /// Authenticates a message: its credentials (`principal` header), or
    /// its source node if that node proved itself with a certificate.
    pub fn authenticate(
        &self,
        credentials: Option<&str>,
        source: Option<(&str, bool)>,
        env: &Env,
    ) -> Result<Arc<Principal>, AuthError> {
        if let Some(token) = credentials {
            return self.verify_token(token, env);
        }
        let settings = self.settings.locked();
        match (source, &settings.nodes) {
            (Some((node, true)), Some(nodes)) => {
                let mut roles = nodes.roles.clone();
                roles.sort();
                roles.dedup();
                Ok(Arc::new(Principal {
                    subject: format!("node:{node}"),
                    tenant: nodes.tenant.clone(),
                    roles,
                    issuer: None,
                    claims: Default::default(),
                    method: AuthMethod::Mtls {
                        node: node.to_string(),
                    },
                }))
            }
            _ => Err(TokenError::Missing),
        }
    }

    /// A token's principal: remembered, or verified now (outside the lock,
    /// so one slow signature check holds up no other message) and then
    /// remembered if the keys did not change meanwhile.
    fn verify_token(&self, token: &str, env: &Env) -> Result<Arc<Principal>, AuthError> {
        let now = env.wall_clock();
        let hash = token_hash(token);
        let jwt = {
            let mut settings = self.settings.locked();
            let Some(jwt) = settings.jwt.clone() else {
                return Err(TokenError::AlgorithmNotAllowed(
                    "tokens (no JWT verifier configured)".into(),
                ));
            };
            if let Some(principal) = settings.verified.get(hash, token) {
                return match jwt.still_valid(&principal, now) {
                    Ok(()) => Ok(principal),
                    Err(e) => {
                        settings.verified.remove(hash);
                        Err(e)
                    }
                };
            }
            jwt
        };
        let principal = Arc::new(jwt.verify(token, now)?);
        let mut settings = self.settings.locked();
        if settings
            .jwt
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, &jwt))
        {
            settings.verified.put(hash, token, principal.clone());
        }
        Ok(principal)
    }

    /// A facet for one actor; `tenant`: the tenant the actor belongs to,
    /// if any (callers of other tenants are refused).
    pub fn facet(&self, tenant: Option<&str>) -> AuthenticationFacet {
        AuthenticationFacet {
            authenticator: self.clone(),
            priority: AUTHENTICATION_PRIORITY,
            tenant: tenant.map(str::to_string),
            tenant_from_name: false,
        }
    }

    /// Registers [`AUTHENTICATION`] on `registry`, building facets from
    /// this authenticator, so actor kinds attach it by configuration.
    pub fn register(&self, registry: &FacetRegistry) -> Result<(), FacetConfigError> {
        let authenticator = self.clone();
        registry.register(AuthenticationFacet::descriptor(), move |config| {
            Ok(
                Box::new(AuthenticationFacet::from_config(&authenticator, config)?)
                    as Box<dyn Facet>,
            )
        })
    }
}

/// Refuses messages without valid credentials (see the module docs).
pub struct AuthenticationFacet {
    authenticator: Authenticator,
    priority: i32,
    tenant: Option<String>,
    tenant_from_name: bool,
}

/// The tenant in an actor's name: `kind:tenant/id` (a virtual actor, a
/// workflow run) or `tenant/id`.
pub(crate) fn tenant_of(actor: &ActorId) -> Option<String> {
    let name = actor.name();
    let id = name.split_once(':').map_or(name, |(_, id)| id);
    id.split_once('/').map(|(tenant, _)| tenant.to_string())
}

impl AuthenticationFacet {
    /// What it is, for the registry.
    pub fn descriptor() -> FacetDescriptor {
        super::with_tenant_options(
            FacetDescriptor::new(
                AUTHENTICATION,
                FacetCategory::Security,
                "refuses messages without a valid JWT (or a TLS peer node's certificate) and holds the tenant boundary",
            ),
            AUTHENTICATION_PRIORITY,
        )
    }

    /// Builds one from configuration, on `authenticator`.
    pub fn from_config(
        authenticator: &Authenticator,
        config: FacetConfig,
    ) -> Result<Self, FacetConfigError> {
        let options =
            super::TenantOptions::read(&Self::descriptor(), config, AUTHENTICATION_PRIORITY)?;
        Ok(AuthenticationFacet {
            authenticator: authenticator.clone(),
            priority: options.priority,
            tenant: options.tenant,
            tenant_from_name: options.tenant_from_name,
        })
    }

    fn check(&self, msg: &Message<'_>) -> Result<Arc<Principal>, Rejection> {
        let meta = &msg.meta;
        let source = meta
            .source_node
            .map(|n| (n.as_str(), meta.source_certified));
        let principal = self
            .authenticator
            .authenticate(meta.headers.principal.as_deref(), source, meta.env)
            .map_err(|e| {
                audit::refused(meta, None, "unauthenticated", e.reason(), &e.to_string());
                Rejection::unauthenticated(e.to_string())
            })?;
        let claimed = meta.headers.tenant.as_deref();
        if let Some(claimed) = claimed
            && principal.tenant.as_deref() != Some(claimed)
        {
            let why = format!("{principal} may not act for tenant {claimed:?}");
            audit::refused(meta, Some(&principal), "tenant", "claimed_tenant", &why);
            return Err(Rejection::forbidden("tenant", why));
        }
        if let Some(owner) = &self.tenant
            && principal.tenant.as_deref() != Some(owner.as_str())
        {
            let why = format!("{principal} may not reach an actor of tenant {owner:?}");
            audit::refused(meta, Some(&principal), "tenant", "other_tenant", &why);
            return Err(Rejection::forbidden("tenant", why));
        }
        Ok(principal)
    }
}

impl Facet for AuthenticationFacet {
    fn name(&self) -> &str {
        AUTHENTICATION
    }

    fn priority(&self) -> i32 {
        self.priority
    }

    fn hooks(&self) -> Hooks {
        Hooks::BEFORE
    }

    fn on_attach(&mut self, actor: &ActorId) {
        if self.tenant_from_name && self.tenant.is_none() {
            self.tenant = tenant_of(actor);
        }
    }

    fn before<'a>(&'a mut self, msg: &Message<'_>) -> Hook<'a, Verdict> {
        Hook::ready(match self.check(msg) {
            Ok(principal) => Verdict::ContinueAs(principal),
            Err(rejection) => Verdict::Reject(rejection),
        })
    }
}
