//! Committed offsets: OffsetCommit (validated against the group's generation, written to the
//! offsets log, visible once replicated), OffsetFetch, and the tombstones of a deleted topic.
//! As in Kafka's `GroupMetadataManager`, a commit enters the in-memory cache only after its
//! records are replicated, never when the write failed; a commit replicated after a later write
//! of the same partition does not overwrite it.

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use strata_kafka::now_ms;
use tokio::time::Instant;

use super::replication::commit_error;
use super::{code, sb, Inner, NONE};
use crate::group::{Group, GroupState};
use crate::record::{self, OffsetValue};

/// Kafka's `offset.metadata.max.bytes` default.
const MAX_METADATA_BYTES: usize = 4096;

/// Offsets of one group per topic: (partition, committed value if any).
type TopicOffsets = Vec<(String, Vec<(i32, Option<OffsetValue>)>)>;

/// Offsets accepted for a commit: (topic, partition) and value.
type Accepted = Vec<((String, i32), OffsetValue)>;

impl Inner {
    /// Kafka's `validateOffsetCommit` plus the state check of `doCommitOffsets`.
    fn validate_commit(
        group: &Group,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
    ) -> i16 {
        if group.state == GroupState::Dead {
            return code(ResponseError::CoordinatorNotAvailable);
        }
        if generation >= 0 || !member_id.is_empty() || instance.is_some() {
            if group.is_fenced(member_id, instance) {
                return code(ResponseError::FencedInstanceId);
            }
            if !group.members.contains_key(member_id) {
                return code(ResponseError::UnknownMemberId);
            }
            if generation != group.generation {
                return code(ResponseError::IllegalGeneration);
            }
            if group.state == GroupState::CompletingRebalance {
                // The member has its new generation from the join response: it must sync first.
                return code(ResponseError::RebalanceInProgress);
            }
            return NONE;
        }
        // Generation -1 and no member id: an admin or a consumer without group management,
        // allowed only while the group has no members; a group with members answers that the
        // committer is not one of them (Kafka 4's `ClassicGroup.validateOffsetCommit`).
        if group.state != GroupState::Empty {
            return code(ResponseError::UnknownMemberId);
        }
        NONE
    }

    /// OffsetCommit: validate under the group's lock and append; then, outside the lock, wait
    /// for replication and only then apply the offsets to the group. When the log's appends
    /// block (files), that synchronous half runs on the blocking pool, not on an async worker
    /// (it still appends under the group's lock: the log's order per key matches memory).
    pub(super) async fn offset_commit(
        self: Arc<Self>,
        req: OffsetCommitRequest,
        api_version: i16,
    ) -> OffsetCommitResponse {
        let answered: Vec<(TopicName, Vec<i32>)> = req
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect();
        let group_id = req.group_id.0.to_string();
        let begun = if self.log.appends_block() {
            let inner = self.clone();
            tokio::task::spawn_blocking(move || inner.begin_commit(&req, api_version))
                .await
                // Only a panic of the commit's checks: answered as a coordinator that failed.
                .unwrap_or(Commit::Refused(code(
                    ResponseError::CoordinatorNotAvailable,
                )))
        } else {
            self.begin_commit(&req, api_version)
        };
        let (too_large, outcome) = match begun {
            Commit::Refused(error) => (Vec::new(), error),
            Commit::Done { error, too_large } => (too_large, error),
            Commit::Appended {
                group,
                accepted,
                appended,
                too_large,
            } => {
                let position = appended.end_offset;
                let outcome = appended
                    .then(move |outcome| match outcome {
                        Ok(()) => {
                            apply_commit(&mut group.lock(), accepted, position);
                            NONE
                        }
                        Err(e) => {
                            tracing::debug!(group = %group_id, error = %e, "offset commit not replicated");
                            code(commit_error(&e))
                        }
                    })
                    .await;
                (
                    too_large,
                    outcome.unwrap_or(code(ResponseError::CoordinatorNotAvailable)),
                )
            }
        };
        let too_large_code = code(ResponseError::OffsetMetadataTooLarge);
        let topics = answered
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|index| {
                        let oversized = too_large.iter().any(|(topic, partition)| {
                            topic == name.0.as_str() && *partition == index
                        });
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(index)
                            .with_error_code(if oversized { too_large_code } else { outcome })
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    }

    /// The synchronous half of a commit: checks, then the append under the group's lock.
    fn begin_commit(&self, req: &OffsetCommitRequest, api_version: i16) -> Commit {
        let group_id = req.group_id.0.to_string();
        let generation = if api_version >= 1 {
            req.generation_id_or_member_epoch
        } else {
            -1
        };
        let member_id = req.member_id.to_string();
        let instance = if api_version >= 7 {
            req.group_instance_id.as_ref().map(|i| i.to_string())
        } else {
            None
        };
        if self.is_shutting_down() {
            return Commit::Refused(code(ResponseError::CoordinatorNotAvailable));
        }
        if group_id.is_empty() {
            return Commit::Refused(code(ResponseError::InvalidGroupId));
        }
        let group_arc = match self.group(&group_id) {
            Ok(Some(g)) => g,
            Ok(None) if generation < 0 => match self.group_or_create(&group_id) {
                Ok(g) => g,
                Err(unowned) => return Commit::Refused(code(unowned.error())),
            },
            // Either a stale member of a group that expired, or a wrong generation.
            Ok(None) => return Commit::Refused(code(ResponseError::IllegalGeneration)),
            Err(unowned) => return Commit::Refused(code(unowned.error())),
        };
        let mut group = group_arc.lock();
        let error = Self::validate_commit(&group, generation, &member_id, instance.as_deref());
        if error != NONE {
            return Commit::Refused(error);
        }
        if let Some(member) = group.members.get_mut(&member_id) {
            member.last_heartbeat = Instant::now();
        }
        let timestamp = now_ms();
        let mut accepted: Accepted = Vec::new();
        let mut too_large: Vec<(String, i32)> = Vec::new();
        for topic in &req.topics {
            for p in &topic.partitions {
                let key = (topic.name.0.to_string(), p.partition_index);
                let metadata = p.committed_metadata.as_deref().unwrap_or("");
                if metadata.len() > MAX_METADATA_BYTES {
                    too_large.push(key);
                    continue;
                }
                let value = OffsetValue {
                    offset: p.committed_offset,
                    leader_epoch: if api_version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: metadata.to_owned(),
                    commit_timestamp: timestamp,
                };
                accepted.push((key, value));
            }
        }
        if accepted.is_empty() {
            return Commit::Done {
                error: NONE,
                too_large,
            };
        }
        let records = accepted
            .iter()
            .map(|((topic, partition), value)| {
                (
                    record::encode_offset_key(&group_id, topic, *partition),
                    Some(record::encode_offset_value(value)),
                )
            })
            .collect::<Vec<_>>();
        match self.append(&group_id, records) {
            Ok(appended) => {
                drop(group);
                Commit::Appended {
                    group: group_arc,
                    accepted,
                    appended,
                    too_large,
                }
            }
            Err(e) => {
                tracing::debug!(group = %group_id, error = %e, "offset commit not written");
                Commit::Done {
                    error: code(commit_error(&e)),
                    too_large,
                }
            }
        }
    }

    /// Offsets of one group: the requested partitions (unknown ones as -1) or all when `None`.
    fn fetch_offsets(
        &self,
        group_id: &str,
        requested: Option<Vec<(String, Vec<i32>)>>,
    ) -> TopicOffsets {
        let group = self.loaded_group(group_id);
        let group = group.as_ref().map(|g| g.lock());
        let offsets = group.as_ref().map(|g| &g.offsets);
        match requested {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let values = partitions
                        .into_iter()
                        .map(|p| {
                            let value = offsets.and_then(|o| o.get(&(topic.clone(), p)).cloned());
                            (p, value)
                        })
                        .collect();
                    (topic, values)
                })
                .collect(),
            None => {
                let mut out: TopicOffsets = Vec::new();
                for ((topic, partition), value) in offsets.into_iter().flatten() {
                    match out.last_mut() {
                        Some((t, values)) if t == topic => {
                            values.push((*partition, Some(value.clone())))
                        }
                        _ => out.push((topic.clone(), vec![(*partition, Some(value.clone()))])),
                    }
                }
                out
            }
        }
    }

    pub(super) fn handle_offset_fetch(
        &self,
        req: OffsetFetchRequest,
        api_version: i16,
    ) -> OffsetFetchResponse {
        let epoch = |v: &Option<OffsetValue>| {
            if api_version >= 5 {
                v.as_ref().map_or(-1, |v| v.leader_epoch)
            } else {
                -1
            }
        };
        if api_version >= 8 {
            let groups = req
                .groups
                .iter()
                .map(|g| {
                    let mut group =
                        OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                    let error = self.fetch_error(&g.group_id.0);
                    if error != NONE {
                        return group.with_error_code(error);
                    }
                    let requested = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                            .collect()
                    });
                    group.topics = self
                        .fetch_offsets(&g.group_id.0, requested)
                        .into_iter()
                        .map(|(topic, values)| {
                            let partitions = values
                                .into_iter()
                                .map(|(p, v)| {
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(v.as_ref().map_or(-1, |v| v.offset))
                                        .with_committed_leader_epoch(epoch(&v))
                                        .with_metadata(Some(sb(v
                                            .as_ref()
                                            .map_or("", |v| v.metadata.as_str()))))
                                })
                                .collect();
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(sb(&topic)))
                                .with_partitions(partitions)
                        })
                        .collect();
                    group
                })
                .collect();
            return OffsetFetchResponse::default().with_groups(groups);
        }
        let requested = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        let error = self.fetch_error(&req.group_id.0);
        let unavailable = error != NONE;
        let partition_error = if unavailable && api_version < 2 {
            error
        } else {
            NONE
        };
        let topics = if unavailable && api_version >= 2 {
            Vec::new()
        } else {
            self.fetch_offsets(&req.group_id.0, requested)
                .into_iter()
                .map(|(topic, values)| {
                    let partitions = values
                        .into_iter()
                        .map(|(p, v)| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(v.as_ref().map_or(-1, |v| v.offset))
                                .with_committed_leader_epoch(epoch(&v))
                                .with_metadata(Some(sb(v
                                    .as_ref()
                                    .map_or("", |v| v.metadata.as_str()))))
                                .with_error_code(partition_error)
                        })
                        .collect();
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(sb(&topic)))
                        .with_partitions(partitions)
                })
                .collect()
        };
        let mut response = OffsetFetchResponse::default().with_topics(topics);
        if api_version >= 2 && unavailable {
            response.error_code = error;
        }
        response
    }

    /// The group-level error of an OffsetFetch, NONE when the group can be read here.
    fn fetch_error(&self, group_id: &str) -> i16 {
        if self.is_shutting_down() {
            return code(ResponseError::CoordinatorNotAvailable);
        }
        match self.unowned(group_id) {
            Some(unowned) => code(unowned.error()),
            None => NONE,
        }
    }

    /// Topic deletion: drops offsets of that topic from every group in memory and writes
    /// tombstones (replicated in the background: no client waits for them).
    pub(super) fn remove_topic_offsets(&self, topic: &str) {
        let groups = self.cache.lock().groups();
        for group in groups {
            let mut group = group.lock();
            let keys: Vec<_> = group
                .offsets
                .keys()
                .filter(|(t, _)| t == topic)
                .cloned()
                .collect();
            if keys.is_empty() {
                continue;
            }
            let tombstones = keys
                .iter()
                .map(|(t, p)| (record::encode_offset_key(&group.id, t, *p), None))
                .collect();
            match self.append(&group.id, tombstones) {
                Ok(appended) => {
                    for key in &keys {
                        // A commit of the topic still being replicated must not bring it back.
                        group
                            .offset_positions
                            .insert(key.clone(), appended.end_offset);
                    }
                    appended.detach(&group.id, "offset tombstones");
                }
                Err(e) => {
                    tracing::warn!(group = %group.id, topic, error = %e, "offset tombstones not written")
                }
            }
            for key in keys {
                group.offsets.remove(&key);
            }
        }
    }
}

/// The synchronous half of a commit.
enum Commit {
    /// Refused before looking at the offsets: one error for every partition.
    Refused(i16),
    /// Answered without waiting: nothing to write (no partition with acceptable metadata), or
    /// the append failed. `error` for every partition but those with too large metadata.
    Done {
        error: i16,
        too_large: Vec<(String, i32)>,
    },
    /// Records appended, waiting for replication.
    Appended {
        group: Arc<Mutex<Group>>,
        accepted: Accepted,
        appended: super::replication::Appended,
        too_large: Vec<(String, i32)>,
    },
}

/// Puts replicated offsets into the group, unless the group is gone (deleted or unloaded since)
/// or a later write of the same partition is already there.
fn apply_commit(group: &mut Group, accepted: Accepted, position: i64) {
    if group.state == GroupState::Dead {
        return;
    }
    for (key, value) in accepted {
        if group
            .offset_positions
            .get(&key)
            .is_some_and(|later| *later > position)
        {
            continue;
        }
        group.offset_positions.insert(key.clone(), position);
        group.offsets.insert(key, value);
    }
}
