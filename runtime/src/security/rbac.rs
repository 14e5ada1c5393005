//! Role-based access: roles grant permissions on actor kinds and actions,
//! from configuration (TOML).
//!
//! ```toml
//! [roles.teller]
//! permissions = ["Account:deposit", "Account:balance", "Ledger:*"]
//! [roles.admin]
//! permissions = ["*:*"]
//! ```
//!
//! A permission is `kind:action`: the actor's kind (its type name, as the
//! metrics label it; a durable or virtual actor's own type, `Vault`, not
//! its `Durable<Vault>` wrapper) and the message's action (the name the authorizer's
//! action namer gives it, else the message type's name); either may be
//! `*`. Roles come from the verified principal.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// Most roles, and most permissions per role, a configuration may hold.
pub const ROLES_MAX: usize = 1024;
/// Most permissions one role may hold.
pub const PERMISSIONS_MAX: usize = 1024;

/// A configuration that cannot be used (its text says where).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RbacError(pub String);

impl fmt::Display for RbacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad RBAC configuration: {}", self.0)
    }
}

impl std::error::Error for RbacError {}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Permission {
    kind: Option<String>,
    action: Option<String>,
}

impl Permission {
    fn parse(text: &str) -> Result<Self, RbacError> {
        let (kind, action) = text
            .split_once(':')
            .ok_or_else(|| RbacError(format!("permission {text:?} is not kind:action")))?;
        let part = |p: &str| -> Result<Option<String>, RbacError> {
            match p {
                "*" => Ok(None),
                "" => Err(RbacError(format!("permission {text:?} has an empty part"))),
                p if p.contains('*') => Err(RbacError(format!(
                    "permission {text:?}: `*` stands alone, not inside a name"
                ))),
                p => Ok(Some(p.to_string())),
            }
        };
        Ok(Permission {
            kind: part(kind)?,
            action: part(action)?,
        })
    }

    fn grants(&self, kind: &str, action: &str) -> bool {
        self.kind.as_deref().is_none_or(|k| k == kind)
            && self.action.as_deref().is_none_or(|a| a == action)
    }
}

/// Roles and what they grant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rbac {
    roles: BTreeMap<String, Vec<Permission>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RbacFile {
    #[serde(default)]
    roles: BTreeMap<String, RoleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleFile {
    permissions: Vec<String>,
}

impl Rbac {
    /// No roles: grants nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives `role` the permission `kind:action`.
    pub fn grant(mut self, role: &str, permission: &str) -> Result<Self, RbacError> {
        let permission = Permission::parse(permission)?;
        if !self.roles.contains_key(role) && self.roles.len() >= ROLES_MAX {
            return Err(RbacError(format!("more than {ROLES_MAX} roles")));
        }
        let permissions = self.roles.entry(role.to_string()).or_default();
        if permissions.len() >= PERMISSIONS_MAX {
            return Err(RbacError(format!(
                "role {role:?} has more than {PERMISSIONS_MAX} permissions"
            )));
        }
        permissions.push(permission);
        Ok(self)
    }

    /// Parses the TOML configuration (see the module docs); unknown keys
    /// and malformed permissions are errors naming them.
    pub fn from_toml(text: &str) -> Result<Self, RbacError> {
        let file: RbacFile = toml::from_str(text).map_err(|e| RbacError(e.to_string()))?;
        let mut rbac = Rbac::new();
        for (role, spec) in file.roles {
            if spec.permissions.is_empty() {
                // A role listed with nothing is kept, granting nothing.
                rbac.roles.entry(role.clone()).or_default();
            }
            for permission in &spec.permissions {
                rbac = rbac
                    .grant(&role, permission)
                    .map_err(|e| RbacError(format!("role {role:?}: {}", e.0)))?;
            }
        }
        Ok(rbac)
    }

    /// The first of `roles` granting `kind:action`, if any.
    pub fn granting<'r>(&self, roles: &'r [String], kind: &str, action: &str) -> Option<&'r str> {
        roles
            .iter()
            .find(|role| {
                self.roles
                    .get(role.as_str())
                    .is_some_and(|ps| ps.iter().any(|p| p.grants(kind, action)))
            })
            .map(String::as_str)
    }
}
