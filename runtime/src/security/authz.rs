//! The authorization facet: after authentication, each message is allowed
//! or refused by RBAC (roles to permissions on kinds and actions) and, with
//! the `policy` feature, Cedar policies (ABAC and custom rules). Deny by
//! default. A refusal is a typed `Forbidden` naming the rule that decided.
//!
//! How they combine: a matching Cedar `forbid` refuses; otherwise an RBAC
//! grant or a Cedar `permit` allows; otherwise `default-deny` refuses.
//!
//! Decisions are cached (bounded, with a time to live on the node's
//! clock) by everything the request holds except the exact second:
//! principal (subject, tenant, roles, issuer, string claims), actor, kind,
//! action, message type, ask or tell, source node, claimed tenant, and the
//! hour and weekday. A policy comparing `context.now` to a finer time sees
//! decisions up to the TTL old. Replacing the rules empties the cache.

use super::audit;
#[cfg(feature = "policy")]
use super::policy::{Policies, PolicyDecision};
use super::rbac::Rbac;
use crate::actor::ActorId;
use crate::actor::facet::{
    Facet, FacetCategory, FacetConfig, FacetConfigError, FacetDescriptor, FacetRegistry, Hook,
    Hooks, Message, Principal, Rejection, Verdict,
};
use crate::seams::{Clock, Instant};
use plexspaces_storage::sync::LockExt;
use std::any::{Any, TypeId};
use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

/// The registered type name of [`AuthorizationFacet`].
pub const AUTHORIZATION: &str = "authorization";
/// Its default priority: right after authentication.
pub const AUTHORIZATION_PRIORITY: i32 = 1800;
/// Default bound on cached decisions.
pub const DECISION_CACHE_DEFAULT: usize = 10_000;
/// Default time a cached decision is trusted.
pub const DECISION_TTL_DEFAULT: Duration = Duration::from_secs(60);

/// What the authorizer decided, and by which rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessDecision {
    /// Allowed by `rule` (`rbac:<role>` or a policy's name).
    Allow(String),
    /// Refused by `rule` (a policy's name, or `default-deny`).
    Deny(String),
}

/// One message as the authorizer sees it.
#[derive(Clone, Copy, Debug)]
pub struct Access<'a> {
    /// Who.
    pub principal: &'a Principal,
    /// The target actor (`name@node`).
    pub actor: &'a str,
    /// Its kind.
    pub kind: &'a str,
    /// The tenant it belongs to, if known.
    pub actor_tenant: Option<&'a str>,
    /// The message's action name.
    pub action: &'a str,
    /// The message type's name.
    pub msg_type: &'a str,
    /// Whether the sender waits for a reply.
    pub is_ask: bool,
    /// The node it came from, if remote.
    pub source_node: Option<&'a str>,
    /// The tenant its headers claim.
    pub claimed_tenant: Option<&'a str>,
    /// The node's wall clock.
    pub now: SystemTime,
}

/// The UTC hour (0-23) and weekday (0 = Monday) of `now`.
pub(crate) fn hour_and_weekday(now: SystemTime) -> (u64, u64) {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    // 1970-01-01 was a Thursday (3, counting Monday as 0).
    ((secs % 86_400) / 3_600, (secs / 86_400 + 3) % 7)
}

impl Access<'_> {
    /// The key's numeric part: hour, weekday, ask or tell.
    fn hour_and_weekday(&self) -> u64 {
        let (hour, weekday) = hour_and_weekday(self.now);
        (hour << 8) | (weekday << 1) | u64::from(self.is_ask)
    }

    /// Every text part of the cache key, in a fixed order (a `None` and an
    /// empty string differ: a marker precedes each optional part).
    fn parts<'s>(&'s self, mut visit: impl FnMut(&'s str)) {
        let mut opt = |v: Option<&'s str>| match v {
            Some(v) => {
                visit("1");
                visit(v);
            }
            None => visit("0"),
        };
        let p = self.principal;
        opt(Some(&p.subject));
        opt(p.tenant.as_deref());
        opt(p.issuer.as_deref());
        opt(Some("|roles"));
        for role in &p.roles {
            opt(Some(role));
        }
        opt(Some("|claims"));
        for (name, value) in &p.claims {
            if let Some(value) = value.as_str() {
                opt(Some(name));
                opt(Some(value));
            }
        }
        opt(Some("|target"));
        for part in [self.actor, self.kind, self.action, self.msg_type] {
            opt(Some(part));
        }
        opt(self.actor_tenant);
        opt(self.source_node);
        opt(self.claimed_tenant);
    }
}

struct Rules {
    rbac: Rbac,
    #[cfg(feature = "policy")]
    policies: Option<Arc<Policies>>,
}

struct Cached {
    parts: Vec<String>,
    numbers: u64,
    decision: AccessDecision,
    at: Instant,
}

struct DecisionCache {
    capacity: usize,
    ttl: Duration,
    entries: BTreeMap<u64, Cached>,
    order: VecDeque<u64>,
    hits: u64,
    misses: u64,
}

/// A fast, unkeyed hash (multiply and rotate over 8-byte words): the full
/// key is compared on every hit, so a collision, even a crafted one, costs
/// a decision, never a wrong one; SipHash's resistance buys nothing here
/// and cost most of a cached decision.
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl DecisionCache {
    fn key(access: &Access<'_>) -> u64 {
        let mut hasher = FastHasher::default();
        access.parts(|part| part.hash(&mut hasher));
        access.hour_and_weekday().hash(&mut hasher);
        hasher.finish()
    }

    fn get(&mut self, key: u64, access: &Access<'_>, now: Instant) -> Option<AccessDecision> {
        let found = self.entries.get(&key).and_then(|cached| {
            let fresh = now.saturating_duration_since(cached.at) < self.ttl;
            // A 64-bit hash may collide: the full key must match too.
            let same = cached.numbers == access.hour_and_weekday() && {
                let (mut at, mut equal) = (0, true);
                access.parts(|part| {
                    equal &= cached.parts.get(at).is_some_and(|p| p == part);
                    at += 1;
                });
                equal && at == cached.parts.len()
            };
            (fresh && same).then(|| cached.decision.clone())
        });
        match found {
            Some(_) => self.hits += 1,
            None => self.misses += 1,
        }
        found
    }

    fn put(&mut self, key: u64, access: &Access<'_>, decision: AccessDecision, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        let cached = Cached {
            parts: {
                let mut parts = Vec::new();
                access.parts(|part| parts.push(part.to_string()));
                parts
            },
            numbers: access.hour_and_weekday(),
            decision,
            at: now,
        };
        if self.entries.insert(key, cached).is_none() {
            self.order.push_back(key);
        }
        debug_assert!(
            self.entries.len() <= self.capacity,
            "the cache stays bounded"
        );
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }
}

type ActionNamer = Arc<dyn Fn(&dyn Any) -> Option<&'static str> + Send + Sync>;

struct Inner {
    rules: RwLock<Arc<Rules>>,
    cache: Mutex<DecisionCache>,
    namers: RwLock<BTreeMap<TypeId, ActionNamer>>,
}

/// A node's authorization rules, shared by every facet made from it; a
/// reload reaches them all at once. Cheap to clone.
#[derive(Clone)]
pub struct Authorizer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authorizer")
    }
}

impl Authorizer {
    /// Decides by `rbac` alone (and denies what it does not grant).
    pub fn new(rbac: Rbac) -> Self {
        Authorizer {
            inner: Arc::new(Inner {
                rules: RwLock::new(Arc::new(Rules {
                    rbac,
                    #[cfg(feature = "policy")]
                    policies: None,
                })),
                cache: Mutex::new(DecisionCache {
                    capacity: DECISION_CACHE_DEFAULT,
                    ttl: DECISION_TTL_DEFAULT,
                    entries: BTreeMap::new(),
                    order: VecDeque::new(),
                    hits: 0,
                    misses: 0,
                }),
                namers: RwLock::new(BTreeMap::new()),
            }),
        }
    }

    /// Bounds the decision cache (0 turns it off) and sets its TTL.
    pub fn with_cache(self, capacity: usize, ttl: Duration) -> Self {
        {
            let mut cache = self.inner.cache.locked();
            cache.capacity = capacity;
            cache.ttl = ttl;
            cache.clear();
        }
        self
    }

    /// Adds Cedar policies to the rules.
    #[cfg(feature = "policy")]
    pub fn with_policies(self, policies: Policies) -> Self {
        self.set_policies(Some(policies));
        self
    }

    /// Names the actions of message type `M` (RBAC permissions and the
    /// policies' `context.action` use the name; without a namer, the
    /// message type's own name is the action).
    pub fn action_names<M: Any>(&self, name: fn(&M) -> &'static str) {
        let namer: ActionNamer = Arc::new(move |msg: &dyn Any| msg.downcast_ref::<M>().map(name));
        self.inner
            .namers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(TypeId::of::<M>(), namer);
    }

    fn rules(&self) -> Arc<Rules> {
        self.inner
            .rules
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn replace(&self, change: impl FnOnce(&Rules) -> Rules) {
        let mut rules = self.inner.rules.write().unwrap_or_else(|p| p.into_inner());
        *rules = Arc::new(change(&rules));
        // Decided under the old rules: none may outlive them.
        self.inner.cache.locked().clear();
    }

    /// Replaces the RBAC rules; cached decisions are dropped.
    pub fn set_rbac(&self, rbac: Rbac) {
        self.replace(|_old| Rules {
            rbac,
            #[cfg(feature = "policy")]
            policies: _old.policies.clone(),
        });
    }

    /// Replaces the Cedar policies (`None` removes them); cached decisions
    /// are dropped.
    #[cfg(feature = "policy")]
    pub fn set_policies(&self, policies: Option<Policies>) {
        let mut policies = Some(policies);
        self.replace(|old| Rules {
            rbac: old.rbac.clone(),
            policies: policies.take().flatten().map(Arc::new),
        });
    }

    /// Cache hits and misses so far.
    pub fn cache_stats(&self) -> (u64, u64) {
        let cache = self.inner.cache.locked();
        (cache.hits, cache.misses)
    }

    /// Decides `access` (from the cache when it can), `now` on the node's
    /// monotonic clock for the cache's TTL.
    pub fn decide(&self, access: &Access<'_>, now: Instant) -> AccessDecision {
        let key = DecisionCache::key(access);
        if let Some(decision) = self.inner.cache.locked().get(key, access, now) {
            return decision;
        }
        let decision = self.decide_uncached(access);
        self.inner
            .cache
            .locked()
            .put(key, access, decision.clone(), now);
        decision
    }

    /// Decides `access` from the rules, without the cache.
    pub fn decide_uncached(&self, access: &Access<'_>) -> AccessDecision {
        let rules = self.rules();
        #[cfg(feature = "policy")]
        let policy = rules.policies.as_ref().map(|p| p.decide(access));
        #[cfg(feature = "policy")]
        if let Some(PolicyDecision::Forbid(rule)) = &policy {
            return AccessDecision::Deny(rule.clone());
        }
        if let Some(role) = rules
            .rbac
            .granting(&access.principal.roles, access.kind, access.action)
        {
            return AccessDecision::Allow(format!("rbac:{role}"));
        }
        #[cfg(feature = "policy")]
        if let Some(PolicyDecision::Permit(rule)) = policy {
            return AccessDecision::Allow(rule);
        }
        AccessDecision::Deny("default-deny".into())
    }

    fn action_of(&self, msg: &Message<'_>) -> Option<&'static str> {
        let namers = self.inner.namers.read().unwrap_or_else(|p| p.into_inner());
        if namers.is_empty() {
            return None;
        }
        [Some(msg.payload), msg.inner]
            .into_iter()
            .flatten()
            .find_map(|payload| {
                let namer = namers.get(&(*payload).type_id())?;
                namer(payload)
            })
    }

    /// A facet for one actor; `tenant`: the tenant it belongs to, for the
    /// policies' `resource.tenant`.
    pub fn facet(&self, tenant: Option<&str>) -> AuthorizationFacet {
        AuthorizationFacet {
            authorizer: self.clone(),
            priority: AUTHORIZATION_PRIORITY,
            tenant: tenant.map(str::to_string),
            tenant_from_name: false,
            actor: String::new(),
        }
    }

    /// Registers [`AUTHORIZATION`] on `registry`, building facets from
    /// this authorizer.
    pub fn register(&self, registry: &FacetRegistry) -> Result<(), FacetConfigError> {
        let authorizer = self.clone();
        registry.register(AuthorizationFacet::descriptor(), move |config| {
            Ok(Box::new(AuthorizationFacet::from_config(&authorizer, config)?) as Box<dyn Facet>)
        })
    }
}

/// Refuses what the rules do not allow (see the module docs).
pub struct AuthorizationFacet {
    authorizer: Authorizer,
    priority: i32,
    tenant: Option<String>,
    tenant_from_name: bool,
    actor: String,
}

/// The kind RBAC and the policies name: a durable actor's own type, not
/// the `Durable<..>` wrapper the runtime runs it in.
fn business_kind(kind: &str) -> &str {
    kind.strip_prefix("Durable<")
        .and_then(|inner| inner.strip_suffix('>'))
        .unwrap_or(kind)
}

/// The short name of a type: its last path segment, generics kept.
fn short_type_name(full: &str) -> &str {
    let end = full.find('<').unwrap_or(full.len());
    let start = full[..end].rfind("::").map_or(0, |i| i + 2);
    &full[start..]
}

impl AuthorizationFacet {
    /// What it is, for the registry.
    pub fn descriptor() -> FacetDescriptor {
        super::with_tenant_options(
            FacetDescriptor::new(
                AUTHORIZATION,
                FacetCategory::Security,
                "refuses what RBAC and the Cedar policies do not allow (deny by default)",
            ),
            AUTHORIZATION_PRIORITY,
        )
    }

    /// Builds one from configuration, on `authorizer`.
    pub fn from_config(
        authorizer: &Authorizer,
        config: FacetConfig,
    ) -> Result<Self, FacetConfigError> {
        let options =
            super::TenantOptions::read(&Self::descriptor(), config, AUTHORIZATION_PRIORITY)?;
        Ok(AuthorizationFacet {
            authorizer: authorizer.clone(),
            priority: options.priority,
            tenant: options.tenant,
            tenant_from_name: options.tenant_from_name,
            actor: String::new(),
        })
    }

    fn check(&self, msg: &Message<'_>) -> Result<(), Rejection> {
        let meta = &msg.meta;
        let Some(principal) = meta.principal else {
            let why = "no verified principal (the authentication facet must run first)";
            audit::refused(meta, None, "unauthenticated", "no_principal", why);
            return Err(Rejection::unauthenticated(why));
        };
        let action = self
            .authorizer
            .action_of(msg)
            .unwrap_or_else(|| short_type_name(meta.msg_type));
        let access = Access {
            principal,
            actor: &self.actor,
            kind: business_kind(meta.kind),
            actor_tenant: self.tenant.as_deref(),
            action,
            msg_type: meta.msg_type,
            is_ask: meta.is_ask,
            source_node: meta.source_node.map(|n| n.as_str()),
            claimed_tenant: meta.headers.tenant.as_deref(),
            now: meta.env.wall_clock(),
        };
        match self.authorizer.decide(&access, meta.env.now()) {
            AccessDecision::Allow(_) => Ok(()),
            AccessDecision::Deny(rule) => {
                let why = format!("{principal} may not {action} on {}", access.kind);
                let reason = if rule == "default-deny" {
                    "default_deny"
                } else {
                    "rule"
                };
                audit::refused(
                    meta,
                    Some(principal),
                    "forbidden",
                    reason,
                    &format!("{why} (rule {rule})"),
                );
                Err(Rejection::forbidden(rule, why))
            }
        }
    }
}

impl Facet for AuthorizationFacet {
    fn name(&self) -> &str {
        AUTHORIZATION
    }

    fn priority(&self) -> i32 {
        self.priority
    }

    fn hooks(&self) -> Hooks {
        Hooks::BEFORE
    }

    fn on_attach(&mut self, actor: &ActorId) {
        self.actor = actor.to_string();
        if self.tenant_from_name && self.tenant.is_none() {
            self.tenant = super::authn::tenant_of(actor);
        }
    }

    fn before<'a>(&'a mut self, msg: &Message<'_>) -> Hook<'a, Verdict> {
        Hook::ready(match self.check(msg) {
            Ok(()) => Verdict::Continue,
            Err(rejection) => Verdict::Reject(rejection),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{business_kind, short_type_name};

    #[test]
    fn a_durable_actor_is_named_by_its_own_type() {
        assert_eq!(business_kind("Durable<Vault>"), "Vault");
        assert_eq!(business_kind("Account"), "Account");
    }

    #[test]
    fn short_names_drop_module_paths() {
        assert_eq!(short_type_name("bank::account::AccountMsg"), "AccountMsg");
        assert_eq!(short_type_name("AccountMsg"), "AccountMsg");
        assert_eq!(
            short_type_name("plexspaces::durability::Request<bank::Msg>"),
            "Request<bank::Msg>"
        );
    }
}
