//! Consumer-group checkpoints: every checkpoint interval, read the committed source offsets of
//! the selected groups, translate those of the partitions this process owns with the
//! [`crate::translation`] rule (under `offsets: Preserve` the offset stays as it is, capped at
//! the target's log end offset), write them as MM2 [`Checkpoint`] records to
//! `<source>.checkpoints.internal` on the target and, with `sync.groupOffsets`, commit them for
//! the groups that have no active members on the target (`describe_groups`). A target commit
//! only ever moves a group forward: an offset the group already passed on the target is left
//! alone (a consumer there may have made progress of its own).
//!
//! Failures are per group and logged; the next interval tries again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use strata_client::{Committed, OffsetSpec, Producer, ProducerRecord};
use strata_flow::OffsetMode;

use crate::context::FlowContext;
use crate::error::MirrorError;
use crate::records::Checkpoint;
use crate::topics::TopicPlan;

/// Runs checkpoint rounds until shutdown.
pub async fn run(ctx: Arc<FlowContext>) {
    let producer = ctx.target.producer(ctx.config.producer());
    let mut tick = tokio::time::interval(ctx.config.checkpoint_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.shutdown.cancelled() => break,
        }
        // Not raced against shutdown: a round is short and leaves nothing half-committed.
        match checkpoint_once(&ctx, &producer).await {
            Ok(n) => tracing::debug!(checkpoints = n, "checkpoint round done"),
            Err(e) => tracing::warn!(error = %e, "checkpoint round failed"),
        }
    }
    producer.close().await;
}

/// One round; returns how many checkpoints were written.
pub async fn checkpoint_once(ctx: &FlowContext, producer: &Producer) -> Result<usize, MirrorError> {
    let source_admin = ctx.source.admin();
    let target_admin = ctx.target.admin();
    let groups: Vec<String> = source_admin
        .list_groups()
        .await?
        .into_iter()
        .map(|g| g.group_id)
        .filter(|g| ctx.groups.matches(g))
        .collect();
    let plans = ctx.topics.read().clone();
    let preserved = match ctx.config.offsets {
        OffsetMode::Preserve if !groups.is_empty() => Some(target_ends(ctx, &plans).await),
        _ => None,
    };
    let mut written = 0;
    for group in groups {
        let started = Instant::now();
        let offsets = match source_admin.fetch_group_commits(&group).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(group, error = %e, "cannot read group offsets on the source");
                continue;
            }
        };
        let checkpoints: Vec<Checkpoint> = {
            let syncs = ctx.syncs.lock();
            offsets
                .iter()
                .filter_map(|((topic, p), commit)| {
                    let c = commit.offset;
                    let plan = plans.get(topic)?;
                    if *p >= plan.partitions || !ctx.assignment.owns(topic, *p) {
                        return None;
                    }
                    let d = match &preserved {
                        // Same offsets on both sides, but never past what the target holds:
                        // a consumer positioned beyond the log end would be reset.
                        Some(ends) => c.min(*ends.get(&(plan.remote.clone(), *p))?),
                        None => syncs.translate(topic, *p, c)?,
                    };
                    Some(Checkpoint {
                        group: group.clone(),
                        topic: plan.remote.clone(),
                        partition: *p,
                        upstream: c,
                        downstream: d,
                        metadata: commit.metadata.clone(),
                    })
                })
                .collect()
        };
        if checkpoints.is_empty() {
            continue;
        }
        let mut deliveries = Vec::with_capacity(checkpoints.len());
        for cp in &checkpoints {
            deliveries.push(
                producer
                    .send(ProducerRecord {
                        topic: ctx.policy.checkpoints_topic(),
                        partition: 0,
                        key: Some(cp.key()),
                        value: Some(cp.value()),
                        headers: Vec::new(),
                        timestamp: -1,
                    })
                    .await?,
            );
        }
        producer.flush().await?;
        for d in deliveries {
            d.await?;
        }
        written += checkpoints.len();
        if ctx.config.sync.group_offsets {
            if let Err(e) = sync_group(&target_admin, &group, &checkpoints).await {
                tracing::warn!(group, error = %e, "cannot sync group offsets to the target");
            }
        }
        ctx.metrics.checkpointed(&group, started.elapsed());
    }
    Ok(written)
}

/// Log end offsets of the remote partitions this process owns (Preserve mode).
async fn target_ends(
    ctx: &FlowContext,
    plans: &BTreeMap<String, TopicPlan>,
) -> BTreeMap<(String, i32), i64> {
    let mut ends = BTreeMap::new();
    for (topic, plan) in plans {
        let owned: Vec<i32> = (0..plan.partitions)
            .filter(|&p| ctx.assignment.owns(topic, p))
            .collect();
        if owned.is_empty() {
            continue;
        }
        let listed = match ctx
            .target
            .list_offsets(&plan.remote, &owned, OffsetSpec::Latest)
            .await
        {
            Ok(listed) => listed,
            Err(e) => {
                // This topic's checkpoints wait for the next round; the others go on.
                tracing::warn!(remote = %plan.remote, error = %e, "cannot list the target's log end offsets");
                continue;
            }
        };
        ends.extend(
            listed
                .into_iter()
                .map(|(p, l)| ((plan.remote.clone(), p), l.offset)),
        );
    }
    ends
}

/// Commits translated offsets for `group` on the target when nobody consumes there.
async fn sync_group(
    target_admin: &strata_client::Admin,
    group: &str,
    checkpoints: &[Checkpoint],
) -> Result<(), MirrorError> {
    let described = target_admin.describe_groups(&[group.to_string()]).await?;
    if described.iter().any(|g| !g.members.is_empty()) {
        tracing::debug!(group, "group is active on the target; offsets not synced");
        return Ok(());
    }
    let current = target_admin.fetch_group_offsets(group).await?;
    let commit: BTreeMap<(String, i32), Committed> = checkpoints
        .iter()
        .filter(|cp| {
            current
                .get(&(cp.topic.clone(), cp.partition))
                .is_none_or(|&have| have < cp.downstream)
        })
        .map(|cp| {
            let committed = Committed {
                offset: cp.downstream,
                metadata: cp.metadata.clone(),
            };
            ((cp.topic.clone(), cp.partition), committed)
        })
        .collect();
    if !commit.is_empty() {
        tracing::debug!(group, partitions = commit.len(), "syncing group offsets");
        target_admin.commit_group_commits(group, &commit).await?;
    }
    Ok(())
}
