//! Topic ACL sync, as MirrorMaker 2's `sync.topic.acls.enabled` does it: every topic refresh
//! interval, the source's literal topic ACLs of mirrored topics are created on their remote
//! topics. `ALLOW WRITE` is not copied (only the mirror writes remote topics) and `ALLOW ALL`
//! becomes `ALLOW READ`; `DENY` entries are copied as they are. ACLs are only ever added, never
//! removed (as MM2). A cluster without an ACL API or without an authorizer (Strata or Kafka
//! without `authorizer.class.name`) turns the sync off with one log line. Only ordinal 0 of a
//! flow syncs ACLs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use strata_client::{
    AclBinding, AclOperation, AclPatternType, AclPermission, AclResourceType, Error, ResponseError,
};

use crate::context::FlowContext;
use crate::error::MirrorError;
use crate::topics::TopicPlan;

/// The ACL a source binding becomes on the target, or `None` when it is not copied.
pub fn target_binding(
    binding: &AclBinding,
    plans: &BTreeMap<String, TopicPlan>,
) -> Option<AclBinding> {
    if binding.resource_type != AclResourceType::Topic
        || binding.pattern_type != AclPatternType::Literal
    {
        return None;
    }
    let plan = plans.get(&binding.resource_name)?;
    let operation = match (binding.permission, binding.operation) {
        (AclPermission::Allow, AclOperation::Write) => return None,
        (AclPermission::Allow, AclOperation::All) => AclOperation::Read,
        (_, op) => op,
    };
    Some(AclBinding {
        resource_name: plan.remote.clone(),
        operation,
        ..binding.clone()
    })
}

/// Runs ACL sync rounds until shutdown, or until a side turns out to have no ACLs at all.
pub async fn run(ctx: Arc<FlowContext>) {
    let mut tick = tokio::time::interval(ctx.config.refresh_topics_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.shutdown.cancelled() => break,
        }
        match sync_once(&ctx).await {
            Ok(0) => {}
            Ok(created) => tracing::info!(created, "topic ACLs synced to the target"),
            Err(MirrorError::Client(e)) if without_acls(&e) => {
                tracing::info!(error = %e, "a cluster of this flow has no ACLs; topic ACL sync is off");
                break;
            }
            Err(e) => tracing::warn!(error = %e, "topic ACL sync failed"),
        }
    }
}

/// One round; returns how many ACLs were created on the target.
pub async fn sync_once(ctx: &FlowContext) -> Result<usize, MirrorError> {
    let plans = ctx.topics.read().clone();
    let wanted: BTreeSet<AclBinding> = ctx
        .source
        .admin()
        .describe_acls()
        .await?
        .iter()
        .filter_map(|b| target_binding(b, &plans))
        .collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let target = ctx.target.admin();
    let present: BTreeSet<AclBinding> = target.describe_acls().await?.into_iter().collect();
    let missing: Vec<AclBinding> = wanted.difference(&present).cloned().collect();
    target.create_acls(&missing).await?;
    Ok(missing.len())
}

/// The cluster has no ACL API, or no authorizer behind it.
fn without_acls(e: &Error) -> bool {
    matches!(e, Error::Unsupported { .. })
        || e.is(ResponseError::SecurityDisabled)
        || e.is(ResponseError::UnsupportedVersion)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(
        name: &str,
        pattern: AclPatternType,
        op: AclOperation,
        perm: AclPermission,
    ) -> AclBinding {
        AclBinding {
            resource_type: AclResourceType::Topic,
            resource_name: name.to_string(),
            pattern_type: pattern,
            principal: "User:alice".to_string(),
            host: "*".to_string(),
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn bindings_map_as_mirrormaker_2_maps_them() {
        let plans: BTreeMap<String, TopicPlan> = [(
            "orders".to_string(),
            TopicPlan {
                remote: "east.orders".to_string(),
                partitions: 3,
            },
        )]
        .into();
        let lit = AclPatternType::Literal;
        let all = binding("orders", lit, AclOperation::All, AclPermission::Allow);
        let read = target_binding(&all, &plans).expect("ALLOW ALL is copied");
        assert_eq!(read.operation, AclOperation::Read);
        assert_eq!(read.resource_name, "east.orders");
        let write = binding("orders", lit, AclOperation::Write, AclPermission::Allow);
        assert_eq!(target_binding(&write, &plans), None);
        let deny = binding("orders", lit, AclOperation::Write, AclPermission::Deny);
        assert_eq!(
            target_binding(&deny, &plans).map(|b| (b.operation, b.permission)),
            Some((AclOperation::Write, AclPermission::Deny))
        );
        let prefixed = binding(
            "orders",
            AclPatternType::Prefixed,
            AclOperation::Read,
            AclPermission::Allow,
        );
        assert_eq!(target_binding(&prefixed, &plans), None);
        let other = binding("payments", lit, AclOperation::Read, AclPermission::Allow);
        assert_eq!(target_binding(&other, &plans), None);
    }
}
