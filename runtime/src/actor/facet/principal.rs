//! Who a message acts for, once a security facet has verified it.

use std::collections::BTreeMap;
use std::fmt;

/// How a principal was verified.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A JSON Web Token from the message's credentials, checked against
    /// the configured keys; the key id it was signed with, if it named one.
    Jwt {
        /// The `kid` of the key that verified it.
        key_id: Option<String>,
    },
    /// The sending node's TLS certificate (node-to-node calls).
    Mtls {
        /// The node the certificate names.
        node: String,
    },
}

/// A verified caller: its subject, tenant, roles and claims. Handlers see
/// it through [`Context::principal`](crate::actor::Context::principal),
/// facets after the authenticating one through
/// [`MessageMeta::principal`](super::MessageMeta::principal).
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    /// Who (the token's `sub`, or `node:<name>` for a node).
    pub subject: String,
    /// Its tenant, if it has one.
    pub tenant: Option<String>,
    /// Its roles, sorted, without duplicates.
    pub roles: Vec<String>,
    /// Who vouched for it (the token's `iss`).
    pub issuer: Option<String>,
    /// Every claim of its token, by name (empty for a node).
    pub claims: BTreeMap<String, serde_json::Value>,
    /// How it was verified.
    pub method: AuthMethod,
}

impl Principal {
    /// Whether it holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles
            .binary_search_by(|r| r.as_str().cmp(role))
            .is_ok()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tenant {
            Some(tenant) => write!(f, "{}@{tenant}", self.subject),
            None => f.write_str(&self.subject),
        }
    }
}
