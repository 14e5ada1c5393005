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
    AuthMethod, ConfigValue, Facet, FacetCategory, FacetConfig, FacetConfigError, FacetDescriptor,
    FacetOption, FacetRegistry, Hook, Hooks, Message, OptionKind, Principal, Rejection, Verdict,
};
use crate::env::Env;
use crate::seams::Clock;
use plexspaces_storage::sync::LockExt;
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
    jwt: Option<JwtVerifier>,
    nodes: Option<NodeIdentities>,
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
            })),
        }
    }

    /// Accepts JWTs that `verifier` validates.
    pub fn with_jwt(self, verifier: JwtVerifier) -> Self {
        self.settings.locked().jwt = Some(verifier);
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
        let jwt = settings.jwt.get_or_insert_with(JwtVerifier::new);
        jwt.set_jwks(json)
    }

    /// Authenticates a message: its credentials (`principal` header), or
    /// its source node if that node proved itself with a certificate.
    pub fn authenticate(
        &self,
        credentials: Option<&str>,
        source: Option<(&str, bool)>,
        env: &Env,
    ) -> Result<Principal, AuthError> {
        let settings = self.settings.locked();
        match (credentials, &settings.jwt, source, &settings.nodes) {
            (Some(token), Some(jwt), _, _) => jwt.verify(token, env.wall_clock()),
            (Some(_), None, _, _) => Err(TokenError::AlgorithmNotAllowed(
                "tokens (no JWT verifier configured)".into(),
            )),
            (None, _, Some((node, true)), Some(nodes)) => {
                let mut roles = nodes.roles.clone();
                roles.sort();
                roles.dedup();
                Ok(Principal {
                    subject: format!("node:{node}"),
                    tenant: nodes.tenant.clone(),
                    roles,
                    issuer: None,
                    claims: Default::default(),
                    method: AuthMethod::Mtls {
                        node: node.to_string(),
                    },
                })
            }
            (None, ..) => Err(TokenError::Missing),
        }
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
        registry.register(AuthenticationFacet::descriptor(), move |mut config| {
            let priority = crate::actor::facet::priority_in(
                &mut config,
                AUTHENTICATION_PRIORITY,
                FacetCategory::Security.band(),
            )?;
            let tenant = config.string("tenant")?;
            let tenant_from_name = config.bool("tenant_from_name")?.unwrap_or(false);
            config.finish(AUTHENTICATION)?;
            Ok(Box::new(AuthenticationFacet {
                authenticator: authenticator.clone(),
                priority,
                tenant,
                tenant_from_name,
            }) as Box<dyn Facet>)
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
        FacetDescriptor::new(
            AUTHENTICATION,
            FacetCategory::Security,
            "refuses messages without a valid JWT (or a TLS peer node's certificate) and holds the tenant boundary",
        )
        .priority_option(AUTHENTICATION_PRIORITY)
        .option(FacetOption::new(
            "tenant",
            OptionKind::Str,
            "the tenant the actor belongs to: callers of another tenant are refused",
        ))
        .option(
            FacetOption::new(
                "tenant_from_name",
                OptionKind::Bool,
                "the tenant is the first part of the actor's id (`kind:tenant/id`)",
            )
            .default_value(ConfigValue::Bool(false)),
        )
    }

    /// Builds one from configuration, on `authenticator`.
    pub fn from_config(
        authenticator: &Authenticator,
        config: FacetConfig,
    ) -> Result<Self, FacetConfigError> {
        let mut config = Self::descriptor().validate(config)?;
        let priority = crate::actor::facet::priority_in(
            &mut config,
            AUTHENTICATION_PRIORITY,
            FacetCategory::Security.band(),
        )?;
        let tenant = config.string("tenant")?;
        let tenant_from_name = config.bool("tenant_from_name")?.unwrap_or(false);
        config.finish(AUTHENTICATION)?;
        Ok(AuthenticationFacet {
            authenticator: authenticator.clone(),
            priority,
            tenant,
            tenant_from_name,
        })
    }

    fn check(&self, msg: &Message<'_>) -> Result<Principal, Rejection> {
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
            Ok(principal) => Verdict::ContinueAs(Arc::new(principal)),
            Err(rejection) => Verdict::Reject(rejection),
        })
    }
}
