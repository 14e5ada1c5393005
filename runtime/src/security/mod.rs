//! Security: TLS between nodes and to the journal service, and the facets
//! that authenticate callers and authorize what they ask.
//!
//! - [`NodeTls`]: a node's TLS 1.3 material and context, loaded from PEM
//!   files through the `Disk` seam and reloadable without a restart; give
//!   it to [`DistributionConfig::with_tls`](crate::distribution::DistributionConfig::with_tls)
//!   and to the journal client and server.
//! - [`Authenticator`] and its [`AuthenticationFacet`] (priority 1900):
//!   JWTs ([`JwtVerifier`]: HS256, RS256, ES256, EdDSA, JWKS with key ids,
//!   issuer, audience, expiry on the `Clock` seam with a leeway), and the
//!   certificates of TLS peer nodes; a verified [`Principal`] for the
//!   handler, `Unauthenticated` otherwise; the tenant boundary.
//! - [`Authorizer`] and its [`AuthorizationFacet`] (priority 1800): RBAC
//!   ([`Rbac`]) and Cedar policies ([`Policies`], feature `policy`), deny
//!   by default, `Forbidden` naming the rule, a bounded decision cache.
//! - Every refusal is audited: a `warn` line on the `plexspaces::audit`
//!   target and `plexspaces_security_refusals_total{kind,reason}`.
//!
//! Credentials travel in a message's `principal` header
//! ([`Headers::principal`](crate::actor::facet::Headers)): `Bearer <jwt>`.
//! The header is never trusted as is; every actor with an authentication
//! facet verifies it, on whichever node it runs, so the caller's identity
//! crosses nodes with the message and is proven again where it lands.

mod audit;
mod authn;
mod authz;
mod jwt;
#[cfg(feature = "policy")]
mod policy;
mod rbac;
pub(crate) mod tls;

pub use crate::actor::facet::{AuthMethod, Principal};
pub use authn::{
    AUTHENTICATION, AUTHENTICATION_PRIORITY, AuthError, AuthenticationFacet, Authenticator,
    NodeIdentities,
};
pub use authz::{
    AUTHORIZATION, AUTHORIZATION_PRIORITY, Access, AccessDecision, AuthorizationFacet, Authorizer,
    DECISION_CACHE_DEFAULT, DECISION_TTL_DEFAULT,
};
pub use jwt::{ClaimNames, JwtKey, JwtVerifier, KEYS_MAX, KeyError, TOKEN_LEN_MAX, TokenError};
pub use plexspaces_net::tls::{TlsError, TlsMaterial};
#[cfg(feature = "policy")]
pub use policy::{POLICY_TEXT_MAX, Policies, PolicyDecision, PolicyError};
pub use rbac::{PERMISSIONS_MAX, ROLES_MAX, Rbac, RbacError};
pub use tls::{NodeTls, TLS_FILE_MAX, TlsSource};
pub(crate) use tls::{Role, secure};

use crate::actor::facet::{
    ConfigValue, FacetCategory, FacetConfig, FacetConfigError, FacetDescriptor, FacetOption,
    OptionKind,
};
use jwt::ClaimNames as Names;

/// The options both security facets take: `priority` (in the security
/// band), `tenant` and `tenant_from_name`.
fn with_tenant_options(descriptor: FacetDescriptor, default_priority: i32) -> FacetDescriptor {
    descriptor
        .priority_option(default_priority)
        .option(FacetOption::new(
            "tenant",
            OptionKind::Str,
            "the tenant the actor belongs to",
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

/// A security facet's settings, read from a configuration its descriptor
/// validated.
struct TenantOptions {
    priority: i32,
    tenant: Option<String>,
    tenant_from_name: bool,
}

impl TenantOptions {
    fn read(
        descriptor: &FacetDescriptor,
        config: FacetConfig,
        default_priority: i32,
    ) -> Result<Self, FacetConfigError> {
        let mut config = descriptor.validate(config)?;
        let priority = crate::actor::facet::priority_in(
            &mut config,
            default_priority,
            FacetCategory::Security.band(),
        )?;
        let tenant = config.string("tenant")?;
        let tenant_from_name = config.bool("tenant_from_name")?.unwrap_or(false);
        config.finish(&descriptor.name)?;
        Ok(TenantOptions {
            priority,
            tenant,
            tenant_from_name,
        })
    }
}
use std::collections::BTreeMap;

/// The principal of a verified token's claims.
fn principal_of(
    claims: serde_json::Map<String, serde_json::Value>,
    names: &Names,
    method: AuthMethod,
) -> Result<Principal, TokenError> {
    let subject = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or(TokenError::MissingClaim("sub"))?
        .to_string();
    let tenant = match claims.get(&names.tenant) {
        None => None,
        Some(serde_json::Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(TokenError::MissingClaim("tenant")),
    };
    let mut roles: Vec<String> = match claims.get(&names.roles) {
        None => Vec::new(),
        Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or(TokenError::MissingClaim("roles"))?,
        Some(_) => return Err(TokenError::MissingClaim("roles")),
    };
    roles.sort();
    roles.dedup();
    let issuer = claims
        .get("iss")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    Ok(Principal {
        subject,
        tenant,
        roles,
        issuer,
        claims: claims.into_iter().collect::<BTreeMap<_, _>>(),
        method,
    })
}
