//! Topic discovery and sync: lists the source's topics, keeps the ones the [`ReplicationPolicy`]
//! and the topic filter select, creates their remote topics on the target (same partition count,
//! configs minus [`EXCLUDED_CONFIGS`]), follows partition increases and config changes, and
//! publishes the result as [`MirroredTopics`], the only list the replication loops read. Also
//! creates the mirror's own topics on the target (checkpoints, offset syncs, heartbeats).
//!
//! Configs follow MirrorMaker 2's `DefaultConfigPropertyFilter` with `use.defaults.from=target`:
//! only values set on the source topic (`DYNAMIC_TOPIC_CONFIG`) are copied, except the
//! broker-local ones listed in [`EXCLUDED_CONFIGS`]; an override removed on the source is
//! removed on the target. Partitions are never removed (Kafka cannot), and a target topic with
//! fewer partitions than its source is mirrored only on the partitions both have until the
//! increase is through.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use strata_client::{Admin, Client, ConfigOp, ConfigSource, NewTopic, ResponseError};
use strata_kafka::preserve::MIRROR_SOURCE_CONFIG;

use crate::error::MirrorError;
use crate::policy::{ReplicationPolicy, TopicSelection, HEARTBEATS_TOPIC};

/// Topic configs never copied (MM2's `config.properties.exclude` default): replication
/// throttles, timestamp policy, unclean election and the ISR minimum depend on the target
/// cluster's own brokers and operators.
pub const EXCLUDED_CONFIGS: &[&str] = &[
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "message.timestamp.difference.max.ms",
    "message.timestamp.type",
    "unclean.leader.election.enable",
    "min.insync.replicas",
    // The target's own marker of an offset-preserving flow, never a source's.
    MIRROR_SOURCE_CONFIG,
];

/// A source topic being mirrored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPlan {
    /// Name on the target.
    pub remote: String,
    /// Partitions mirrored: those both sides have.
    pub partitions: i32,
}

/// Source topic → plan, shared between topic sync and the replication loops.
pub type MirroredTopics = Arc<RwLock<BTreeMap<String, TopicPlan>>>;

/// Whether a topic config is copied to the target.
pub fn config_is_copied(name: &str) -> bool {
    !EXCLUDED_CONFIGS.contains(&name)
}

/// The discovery and sync loop's state.
pub struct TopicSync {
    source: Client,
    target: Client,
    policy: ReplicationPolicy,
    selection: TopicSelection,
    sync_configs: bool,
    replication_factor: Option<i16>,
    /// `offsets: Preserve`: the source alias every remote topic is marked with.
    preserve_from: Option<String>,
    topics: MirroredTopics,
}

impl TopicSync {
    pub fn new(
        source: Client,
        target: Client,
        policy: ReplicationPolicy,
        selection: TopicSelection,
        sync_configs: bool,
        replication_factor: Option<i16>,
    ) -> TopicSync {
        TopicSync {
            source,
            target,
            policy,
            selection,
            sync_configs,
            replication_factor,
            preserve_from: None,
            topics: Arc::default(),
        }
    }

    /// Marks remote topics as offset-preserving mirror targets of `source_alias` (created
    /// with the marker; an existing topic is marked only while it is empty).
    pub fn preserving_offsets(mut self, source_alias: Option<String>) -> TopicSync {
        self.preserve_from = source_alias;
        self
    }

    pub fn topics(&self) -> MirroredTopics {
        self.topics.clone()
    }

    /// Creates the checkpoints, offset-syncs and heartbeats topics on the target if missing.
    pub async fn ensure_internal_topics(&self) -> Result<(), MirrorError> {
        let admin = self.target.admin();
        let compact: BTreeMap<String, String> =
            [("cleanup.policy".to_string(), "compact".to_string())].into();
        for (name, configs) in [
            (self.policy.checkpoints_topic(), compact.clone()),
            (self.policy.offset_syncs_topic(), compact),
            (HEARTBEATS_TOPIC.to_string(), BTreeMap::new()),
        ] {
            create_if_missing(&admin, &name, 1, self.replication_factor, configs).await?;
        }
        Ok(())
    }

    /// One pass: discover, create, grow, sync configs; then publish the plans. A topic whose
    /// sync fails is logged and left as it was; the pass goes on with the others.
    pub async fn refresh(&self) -> Result<(), MirrorError> {
        let source_meta = self.source.metadata(None).await?;
        let target_meta = self.target.metadata(None).await?;
        let source_admin = self.source.admin();
        let target_admin = self.target.admin();
        let mut plans = BTreeMap::new();
        for (name, t) in &source_meta.topics {
            if t.internal
                || !self
                    .policy
                    .should_mirror(name, self.selection.matches(name))
            {
                continue;
            }
            let remote = self.policy.remote_topic(name);
            let partitions = t.partitions.len() as i32;
            let existing = target_meta
                .topics
                .get(&remote)
                .map(|r| r.partitions.len() as i32);
            match self
                .sync_topic(
                    &source_admin,
                    &target_admin,
                    name,
                    &remote,
                    partitions,
                    existing,
                )
                .await
            {
                Ok(None) => {}
                Ok(Some(mirrored)) => {
                    plans.insert(
                        name.clone(),
                        TopicPlan {
                            remote,
                            partitions: mirrored,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(topic = %name, remote = %remote, error = %e, "topic sync failed");
                    if let Some(previous) = self.topics.read().get(name) {
                        plans.insert(name.clone(), previous.clone());
                    }
                }
            }
        }
        *self.topics.write() = plans;
        Ok(())
    }

    /// Syncs one topic; returns how many partitions are mirrored, or `None` when the topic
    /// cannot be mirrored at all (a Preserve flow and a remote topic that is not its target).
    async fn sync_topic(
        &self,
        source_admin: &Admin,
        target_admin: &Admin,
        topic: &str,
        remote: &str,
        partitions: i32,
        existing: Option<i32>,
    ) -> Result<Option<i32>, MirrorError> {
        let desired = if self.sync_configs {
            source_overrides(source_admin, topic).await?
        } else {
            BTreeMap::new()
        };
        let Some(have) = existing else {
            tracing::info!(topic, remote, partitions, "creating remote topic");
            let mut configs = desired;
            if let Some(alias) = &self.preserve_from {
                configs.insert(MIRROR_SOURCE_CONFIG.to_string(), alias.clone());
            }
            create_if_missing(
                target_admin,
                remote,
                partitions,
                self.replication_factor,
                configs,
            )
            .await
            .map_err(|e| match (&self.preserve_from, e) {
                (Some(_), MirrorError::Client(e)) if e.is(ResponseError::InvalidConfig) => {
                    MirrorError::Client(strata_client::Error::Unsupported {
                        api: "CreateTopics",
                        reason: format!(
                            "the target refused the topic config {MIRROR_SOURCE_CONFIG} ({e}); \
                             offsets: Preserve needs a Strata target, use Translate for others"
                        ),
                    })
                }
                (_, e) => e,
            })?;
            return Ok(Some(partitions));
        };
        if let Some(alias) = &self.preserve_from {
            match self
                .check_preserve_marker(target_admin, remote, have, alias)
                .await
            {
                Ok(()) => {}
                Err(MirrorError::Client(strata_client::Error::Unsupported {
                    api: PRESERVE_REFUSAL,
                    reason,
                })) => {
                    tracing::warn!(topic, remote, reason, "not mirrored");
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        let mut mirrored = have.min(partitions);
        if have < partitions {
            tracing::info!(remote, from = have, to = partitions, "adding partitions");
            match target_admin.create_partitions(remote, partitions).await {
                Ok(()) => mirrored = partitions,
                Err(e) if e.is(ResponseError::InvalidPartitions) => {
                    // Another mirror process got there first.
                    mirrored = partitions;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if self.sync_configs {
            let current = source_overrides(target_admin, remote).await?;
            let mut ops: Vec<ConfigOp> = desired
                .iter()
                .filter(|(k, v)| current.get(*k) != Some(*v))
                .map(|(k, v)| ConfigOp::Set(k.clone(), v.clone()))
                .collect();
            ops.extend(
                current
                    .keys()
                    .filter(|k| !desired.contains_key(*k))
                    .map(|k| ConfigOp::Delete(k.clone())),
            );
            if !ops.is_empty() {
                tracing::info!(remote, ?ops, "syncing topic configs");
                target_admin
                    .incremental_alter_topic_configs(remote, &ops)
                    .await?;
            }
        }
        Ok(Some(mirrored))
    }
}

impl TopicSync {
    /// An existing remote topic must carry this flow's marker; an empty one is marked, one
    /// with records (or another flow's marker) is refused: its offsets cannot match the source.
    async fn check_preserve_marker(
        &self,
        target_admin: &Admin,
        remote: &str,
        partitions: i32,
        alias: &str,
    ) -> Result<(), MirrorError> {
        let marker = target_admin
            .describe_topic_configs(remote)
            .await?
            .into_iter()
            .find(|e| e.name == MIRROR_SOURCE_CONFIG && e.source == ConfigSource::DynamicTopic)
            .and_then(|e| e.value);
        match marker.as_deref() {
            Some(a) if a == alias => return Ok(()),
            Some(other) => {
                return Err(refused(format!(
                    "remote topic {remote} is the mirror target of '{other}', not '{alias}'"
                )))
            }
            None => {}
        }
        let all: Vec<i32> = (0..partitions).collect();
        let ends = self
            .target
            .list_offsets(remote, &all, strata_client::OffsetSpec::Latest)
            .await?;
        if let Some((p, end)) = ends.iter().find(|(_, l)| l.offset > 0) {
            return Err(refused(format!(
                "remote topic {remote} already holds records (partition {p} ends at {}) and is \
                 not a mirror target; offsets: Preserve cannot keep source offsets in it \
                 (delete it, or use offsets: Translate)",
                end.offset
            )));
        }
        tracing::info!(
            remote,
            alias,
            "marking the empty remote topic as a mirror target"
        );
        target_admin
            .incremental_alter_topic_configs(
                remote,
                &[ConfigOp::Set(
                    MIRROR_SOURCE_CONFIG.to_string(),
                    alias.to_string(),
                )],
            )
            .await?;
        Ok(())
    }
}

/// What a Preserve flow's refusal of a remote topic is reported as.
const PRESERVE_REFUSAL: &str = "Preserve";

fn refused(reason: String) -> MirrorError {
    MirrorError::Client(strata_client::Error::Unsupported {
        api: PRESERVE_REFUSAL,
        reason,
    })
}

/// The copied overrides set on a topic.
async fn source_overrides(
    admin: &Admin,
    topic: &str,
) -> Result<BTreeMap<String, String>, MirrorError> {
    Ok(admin
        .describe_topic_configs(topic)
        .await?
        .into_iter()
        .filter(|e| e.source == ConfigSource::DynamicTopic && !e.sensitive)
        .filter(|e| config_is_copied(&e.name))
        .filter_map(|e| e.value.map(|v| (e.name, v)))
        .collect())
}

async fn create_if_missing(
    admin: &Admin,
    name: &str,
    partitions: i32,
    replication_factor: Option<i16>,
    configs: BTreeMap<String, String>,
) -> Result<(), MirrorError> {
    let topic = NewTopic {
        name: name.to_string(),
        partitions: Some(partitions),
        replication_factor,
        configs,
    };
    match admin.create_topic(&topic).await {
        Ok(_) => Ok(()),
        Err(e) if e.is(ResponseError::TopicAlreadyExists) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_local_configs_are_not_copied() {
        assert!(!config_is_copied("min.insync.replicas"));
        assert!(!config_is_copied("message.timestamp.type"));
        assert!(config_is_copied("retention.ms"));
        assert!(config_is_copied("cleanup.policy"));
    }
}
