//! Attribute-based and custom policies in Cedar (the `cedar-policy`
//! crate): loaded from text, validated at load against the schema below,
//! evaluated per message.
//!
//! Every message is one Cedar request: action `Action::"handle"` by
//! principal `User::"<subject>"` on resource `Actor::"<actor id>"`, with
//! what the message is for in its context:
//!
//! ```cedarschema
//! entity User = { subject: String, tenant: String, roles: Set<String>, issuer: String } tags String;
//! entity Actor = { kind: String, name: String, tenant: String };
//! action handle appliesTo {
//!   principal: [User], resource: [Actor],
//!   context: { action: String, msg_type: String, is_ask: Bool, source_node: String,
//!              claimed_tenant: String, now: Long, hour: Long, weekday: Long }
//! };
//! ```
//!
//! A principal's string claims are its tags (`principal.getTag("dept")`);
//! a missing tenant, issuer or source node is `""`; `now` is Unix seconds
//! on the node's clock, `hour` (0-23) and `weekday` (0 = Monday) in UTC.
//! A policy's rule name is its `@id("...")` annotation, else Cedar's own
//! id (`policy0`, ...).
//!
//! ```cedar
//! @id("same-tenant-deposits")
//! permit(principal, action, resource)
//! when { context.action == "deposit" && principal.tenant == resource.tenant };
//!
//! @id("no-night-transfers")
//! forbid(principal, action, resource)
//! when { context.action == "transfer" && context.hour < 6 };
//! ```

use super::authz::{Access, hour_and_weekday};
use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityUid, PolicyId, PolicySet,
    RestrictedExpression, Schema, ValidationMode, Validator,
};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// Largest policy text accepted.
pub const POLICY_TEXT_MAX: usize = 1024 * 1024;

const SCHEMA: &str = r#"
entity User = { subject: String, tenant: String, roles: Set<String>, issuer: String } tags String;
entity Actor = { kind: String, name: String, tenant: String };
action handle appliesTo {
  principal: [User],
  resource: [Actor],
  context: {
    action: String, msg_type: String, is_ask: Bool, source_node: String,
    claimed_tenant: String, now: Long, hour: Long, weekday: Long
  }
};
"#;

/// Policies that could not be loaded: a parse error or a validation
/// error against the schema, with Cedar's explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad policies: {}", self.0)
    }
}

impl std::error::Error for PolicyError {}

/// What the policies say about one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyDecision {
    /// A `permit` matched and no `forbid` did: the permitting rule.
    Permit(String),
    /// A `forbid` matched: the forbidding rule.
    Forbid(String),
    /// Nothing matched.
    NoOpinion,
}

/// A validated policy set.
pub struct Policies {
    set: PolicySet,
    names: HashMap<PolicyId, String>,
    authorizer: Authorizer,
    action: EntityUid,
}

impl fmt::Debug for Policies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policies")
            .field("rules", &self.names.len())
            .finish()
    }
}

fn schema() -> Schema {
    let (schema, _warnings) =
        Schema::from_cedarschema_str(SCHEMA).expect("the built-in schema is valid Cedar");
    schema
}

impl Policies {
    /// Parses `text` (Cedar) and validates it (strict mode) against the
    /// schema: a policy naming an attribute or action the requests do not
    /// have is an error now, not a silent non-match later.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        if text.len() > POLICY_TEXT_MAX {
            return Err(PolicyError(format!(
                "{} bytes, more than {POLICY_TEXT_MAX}",
                text.len()
            )));
        }
        let set = PolicySet::from_str(text).map_err(|e| PolicyError(format!("{e:?}")))?;
        let validation = Validator::new(schema()).validate(&set, ValidationMode::Strict);
        if !validation.validation_passed() {
            let errors: Vec<String> = validation
                .validation_errors()
                .map(|e| format!("{e}"))
                .collect();
            return Err(PolicyError(errors.join("; ")));
        }
        let names = set
            .policies()
            .map(|p| {
                let name = p
                    .annotation("id")
                    .map_or_else(|| p.id().to_string(), str::to_string);
                (p.id().clone(), name)
            })
            .collect();
        Ok(Policies {
            set,
            names,
            authorizer: Authorizer::new(),
            action: EntityUid::from_str(r#"Action::"handle""#).expect("a valid uid"),
        })
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Evaluates one request.
    pub fn decide(&self, request: &Access<'_>) -> PolicyDecision {
        match self.evaluate(request) {
            Ok(decision) => decision,
            // A request the entities cannot even be built for (a subject
            // Cedar cannot name) is forbidden, never waved through.
            Err(why) => PolicyDecision::Forbid(format!("policy-input: {why}")),
        }
    }

    fn evaluate(&self, r: &Access<'_>) -> Result<PolicyDecision, String> {
        let string = |s: &str| RestrictedExpression::new_string(s.to_string());
        let user = EntityUid::from_type_name_and_id(
            "User".parse().map_err(|e| format!("{e}"))?,
            cedar_policy::EntityId::new(&r.principal.subject),
        );
        let actor = EntityUid::from_type_name_and_id(
            "Actor".parse().map_err(|e| format!("{e}"))?,
            cedar_policy::EntityId::new(r.actor),
        );
        let p = r.principal;
        let tags = p
            .claims
            .iter()
            .filter_map(|(name, value)| value.as_str().map(|text| (name.clone(), string(text))));
        let user_entity = Entity::new_with_tags(
            user.clone(),
            [
                ("subject".to_string(), string(&p.subject)),
                (
                    "tenant".to_string(),
                    string(p.tenant.as_deref().unwrap_or("")),
                ),
                (
                    "roles".to_string(),
                    RestrictedExpression::new_set(p.roles.iter().map(|r| string(r))),
                ),
                (
                    "issuer".to_string(),
                    string(p.issuer.as_deref().unwrap_or("")),
                ),
            ],
            [],
            tags,
        )
        .map_err(|e| format!("{e}"))?;
        let actor_entity = Entity::new(
            actor.clone(),
            [
                ("kind".to_string(), string(r.kind)),
                ("name".to_string(), string(r.actor)),
                ("tenant".to_string(), string(r.actor_tenant.unwrap_or(""))),
            ]
            .into_iter()
            .collect(),
            Default::default(),
        )
        .map_err(|e| format!("{e}"))?;
        let entities = Entities::from_entities([user_entity, actor_entity], None)
            .map_err(|e| format!("{e}"))?;
        let now = r
            .now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let (hour, weekday) = hour_and_weekday(r.now);
        let long = |n: u64| RestrictedExpression::new_long(i64::try_from(n).unwrap_or(i64::MAX));
        let context = Context::from_pairs([
            ("action".to_string(), string(r.action)),
            ("msg_type".to_string(), string(r.msg_type)),
            (
                "is_ask".to_string(),
                RestrictedExpression::new_bool(r.is_ask),
            ),
            (
                "source_node".to_string(),
                string(r.source_node.unwrap_or("")),
            ),
            (
                "claimed_tenant".to_string(),
                string(r.claimed_tenant.unwrap_or("")),
            ),
            ("now".to_string(), long(now)),
            ("hour".to_string(), long(hour)),
            ("weekday".to_string(), long(weekday)),
        ])
        .map_err(|e| format!("{e}"))?;
        let request = cedar_policy::Request::new(user, self.action.clone(), actor, context, None)
            .map_err(|e| format!("{e}"))?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.set, &entities);
        let rule = response
            .diagnostics()
            .reason()
            .map(|id| {
                self.names
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| id.to_string())
            })
            .min();
        Ok(match (response.decision(), rule) {
            (Decision::Allow, Some(rule)) => PolicyDecision::Permit(rule),
            (Decision::Allow, None) => PolicyDecision::NoOpinion,
            (Decision::Deny, Some(rule)) => PolicyDecision::Forbid(rule),
            (Decision::Deny, None) => PolicyDecision::NoOpinion,
        })
    }
}
