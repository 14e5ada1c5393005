//! The audit trail of refusals: every message a security facet refuses is
//! logged (who, what it tried to reach, which rule) at `warn` on the
//! `plexspaces::audit` target, and counted in
//! `plexspaces_security_refusals_total{kind,reason}`.

use crate::actor::facet::{MessageMeta, Principal};
use crate::observability::metrics::RefusalLabel;

/// Records one refusal. `kind` is `unauthenticated`, `forbidden` or
/// `tenant`; `reason` a fixed name of the failed check; `why` the text
/// the caller gets.
pub(crate) fn refused(
    meta: &MessageMeta<'_>,
    principal: Option<&Principal>,
    kind: &'static str,
    reason: &'static str,
    why: &str,
) {
    meta.env
        .metrics()
        .services()
        .security_refusals
        .get_or_create(&RefusalLabel { kind, reason })
        .inc();
    let principal = principal.map_or_else(|| "-".to_string(), ToString::to_string);
    tracing::warn!(
        target: "plexspaces::audit",
        kind,
        rule = reason,
        principal = %principal,
        actor = %meta.actor,
        msg_type = meta.msg_type,
        source_node = meta.source_node.map(|n| n.as_str()).unwrap_or("-"),
        "refused: {why}"
    );
}
