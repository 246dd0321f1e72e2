//! Taking partitions of `__consumer_offsets` on and off: loading replays a partition's records
//! into its groups (last value per key wins, tombstones delete, as Kafka's
//! `GroupMetadataManager.loadGroupsAndOffsets`), unloading drops its groups from memory and sends
//! their waiting clients to the new coordinator. The replay itself ([`replay`]) is pure.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use strata_kafka::now_ms;
use tokio::time::Instant;

use super::membership::answer_waiters_not_coordinator;
use super::timers::session_expiry;
use super::Inner;
use crate::group::{Group, GroupState, Member};
use crate::offsets_log::{OffsetsLogError, OffsetsRecord};
use crate::record::{self, GroupMetadataValue, OffsetValue, RecordKey};

/// What a partition's records say about one group.
#[derive(Debug, Default)]
struct Replayed {
    offsets: BTreeMap<(String, i32), OffsetValue>,
    /// The last group metadata record (`None`: none, or a tombstone).
    metadata: Option<GroupMetadataValue>,
}

/// Replays the records of one partition, in offset order, into the state of each group. A
/// group whose offsets and metadata were all tombstoned is not returned. Undecodable records
/// are skipped with a warning.
fn replay(partition: i32, records: Vec<OffsetsRecord>) -> HashMap<String, Replayed> {
    let mut groups: HashMap<String, Replayed> = HashMap::new();
    for (key, value) in records {
        let key = match record::decode_key(&key) {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!(partition, error = %e, "skipping undecodable offsets key");
                continue;
            }
        };
        match (key, value) {
            (
                RecordKey::Offset {
                    group,
                    topic,
                    partition: p,
                },
                Some(value),
            ) => match record::decode_offset_value(&value) {
                Ok(v) => {
                    groups
                        .entry(group)
                        .or_default()
                        .offsets
                        .insert((topic, p), v);
                }
                Err(e) => tracing::warn!(partition, error = %e, "skipping undecodable offset"),
            },
            (
                RecordKey::Offset {
                    group,
                    topic,
                    partition: p,
                },
                None,
            ) => {
                if let Some(g) = groups.get_mut(&group) {
                    g.offsets.remove(&(topic, p));
                }
            }
            (RecordKey::GroupMetadata { group }, value) => {
                let value = value.as_ref().map(|v| record::decode_group_value(v));
                match value {
                    Some(Err(e)) => tracing::warn!(
                        partition,
                        error = %e,
                        "skipping undecodable group metadata"
                    ),
                    Some(Ok(v)) => groups.entry(group).or_default().metadata = Some(v),
                    None => {
                        if let Some(g) = groups.get_mut(&group) {
                            g.metadata = None;
                        }
                    }
                }
            }
        }
    }
    groups.retain(|_, g| !g.offsets.is_empty() || g.metadata.is_some());
    groups
}

impl Inner {
    pub(super) fn load_all(self: &Arc<Self>) -> Result<(), OffsetsLogError> {
        for partition in 0..self.config.offsets_topic_num_partitions.max(1) {
            self.load_partition(partition)?;
        }
        Ok(())
    }

    pub(super) fn load_partition(self: &Arc<Self>, partition: i32) -> Result<(), OffsetsLogError> {
        if !(0..self.config.offsets_topic_num_partitions.max(1)).contains(&partition) {
            return Err(OffsetsLogError::PartitionUnavailable(partition));
        }
        let Some(load) = self.cache.lock().begin_load(partition) else {
            return Ok(());
        };
        // Read without holding the cache lock: the other partitions are served meanwhile, and
        // this one's requests answer COORDINATOR_LOAD_IN_PROGRESS.
        let records = match self.log.read_all(partition) {
            Ok(records) => records,
            Err(e) => {
                self.cache.lock().abort_load(partition, load);
                return Err(e);
            }
        };
        // Members are restored only if their session timers can run.
        let runtime = tokio::runtime::Handle::try_current().ok();
        let mut groups = Vec::new();
        let mut timers = Vec::new();
        for (id, replayed) in replay(partition, records) {
            if self.partition_for(&id) != partition {
                tracing::warn!(partition, group = %id, "skipping group that belongs to another partition");
                continue;
            }
            let (group, members) = self.restore_group(id.clone(), replayed, runtime.is_some());
            let group = Arc::new(Mutex::new(group));
            for (member_id, incarnation) in members {
                timers.push((Arc::downgrade(&group), member_id, incarnation));
            }
            groups.push((id, group));
        }
        let count = groups.len();
        if !self.cache.lock().finish_load(partition, load, groups) {
            tracing::info!(
                partition,
                "offsets partition unloaded while loading; load discarded"
            );
            return Ok(());
        }
        if let Some(runtime) = runtime {
            for (group, member_id, incarnation) in timers {
                runtime.spawn(session_expiry(
                    Arc::downgrade(self),
                    group,
                    member_id,
                    incarnation,
                ));
            }
        }
        tracing::info!(partition, groups = count, "offsets partition loaded");
        Ok(())
    }

    /// A group as its records left it, with the (member id, incarnation) of each restored
    /// member. With members, the group is Stable at its stored generation; without (or when
    /// `with_members` is false) it is Empty and its members rejoin.
    fn restore_group(
        &self,
        id: String,
        replayed: Replayed,
        with_members: bool,
    ) -> (Group, Vec<(String, u64)>) {
        let mut group = Group::new(id, now_ms());
        group.offsets = replayed.offsets;
        let mut timers = Vec::new();
        let Some(m) = replayed.metadata else {
            return (group, timers);
        };
        group.generation = m.generation;
        if !with_members || m.members.is_empty() {
            return (group, timers);
        }
        group.protocol_type = (!m.protocol_type.is_empty()).then_some(m.protocol_type);
        group.protocol = m.protocol;
        group.leader = m.leader;
        let protocol = group.protocol.clone().unwrap_or_default();
        for mm in m.members {
            let incarnation = self.next_incarnation();
            if let Some(instance) = &mm.group_instance_id {
                group
                    .static_members
                    .insert(instance.clone(), mm.member_id.clone());
            }
            timers.push((mm.member_id.clone(), incarnation));
            let member = Member {
                id: mm.member_id,
                instance_id: mm.group_instance_id,
                client_id: mm.client_id,
                client_host: mm.client_host,
                session_timeout_ms: mm.session_timeout_ms,
                rebalance_timeout_ms: mm.rebalance_timeout_ms,
                protocol_type: group.protocol_type.clone().unwrap_or_default(),
                protocols: vec![(protocol.clone(), mm.subscription)],
                assignment: mm.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                last_heartbeat: Instant::now(),
                incarnation,
            };
            group.members.insert(member.id.clone(), member);
        }
        group.state = GroupState::Stable;
        (group, timers)
    }

    pub(super) fn unload_partition(&self, partition: i32) {
        let groups = self.cache.lock().unload(partition);
        for group in &groups {
            // Kafka's `onGroupUnloaded`: the group is Dead here, and whoever waits on it is told
            // to look for its new coordinator. Timers and in-flight writes see Dead and stop.
            let mut group = group.lock();
            group.transition(GroupState::Dead, now_ms());
            group.rebalance_epoch += 1;
            answer_waiters_not_coordinator(&mut group);
        }
        tracing::info!(
            partition,
            groups = groups.len(),
            "offsets partition unloaded"
        );
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn offset(group: &str, topic: &str, partition: i32, value: Option<i64>) -> OffsetsRecord {
        let key = record::encode_offset_key(group, topic, partition);
        let value = value.map(|offset| {
            record::encode_offset_value(&OffsetValue {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 0,
            })
        });
        (key, value)
    }

    #[test]
    fn replay_keeps_the_last_value_and_drops_tombstoned_groups() {
        let records = vec![
            offset("g", "t", 0, Some(1)),
            offset("g", "t", 0, Some(5)),
            offset("g", "t", 1, Some(2)),
            offset("g", "t", 1, None),
            offset("gone", "t", 0, Some(3)),
            offset("gone", "t", 0, None),
            (Bytes::from_static(b"\x00"), None),
        ];
        let groups = replay(0, records);
        assert_eq!(
            groups.len(),
            1,
            "tombstoned group and undecodable key dropped"
        );
        let g = &groups["g"];
        assert_eq!(g.offsets.len(), 1);
        assert_eq!(g.offsets[&("t".to_string(), 0)].offset, 5);
        assert!(g.metadata.is_none());
    }
}
