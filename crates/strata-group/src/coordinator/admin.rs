//! The admin views of groups: ListGroups, DescribeGroups, DeleteGroups and OffsetDelete, over
//! the groups of the partitions owned. A deletion drops the group (or the offsets) in memory,
//! writes the tombstones, and answers once those are replicated.

use std::collections::BTreeSet;

use bytes::Buf;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic;
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, DescribeGroupsRequest, DescribeGroupsResponse, GroupId,
    ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::ResponseError;
use strata_kafka::now_ms;

use super::replication::{commit_error, Appended};
use super::{code, sb, Inner, NONE};
use crate::group::GroupState;
use crate::offsets_log::OffsetsRecord;
use crate::record;

/// The group type of every group this coordinator runs (ListGroups v5 `group_type`).
const PROTOCOL_TYPE_CLASSIC: &str = "classic";

impl Inner {
    pub(super) fn handle_list(
        &self,
        req: ListGroupsRequest,
        api_version: i16,
    ) -> ListGroupsResponse {
        if self.is_shutting_down() {
            return ListGroupsResponse::default()
                .with_error_code(code(ResponseError::CoordinatorNotAvailable));
        }
        let states: Vec<String> = if api_version >= 4 {
            req.states_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            Vec::new()
        };
        let types: Vec<String> = if api_version >= 5 {
            req.types_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            Vec::new()
        };
        if !types.is_empty() && !types.iter().any(|t| t == PROTOCOL_TYPE_CLASSIC) {
            return ListGroupsResponse::default();
        }
        // Kafka lists what is loaded and flags that more may be coming.
        let (groups, loading) = {
            let cache = self.cache.lock();
            (cache.groups(), cache.any_loading())
        };
        let mut listed: Vec<ListedGroup> = groups
            .iter()
            .filter_map(|g| {
                let g = g.lock();
                let state = g.state.as_str();
                if g.state == GroupState::Dead
                    || (!states.is_empty() && !states.contains(&state.to_lowercase()))
                {
                    return None;
                }
                let mut listed = ListedGroup::default()
                    .with_group_id(GroupId(sb(&g.id)))
                    .with_protocol_type(sb(g.protocol_type.as_deref().unwrap_or("")));
                if api_version >= 4 {
                    listed.group_state = sb(state);
                }
                if api_version >= 5 {
                    listed.group_type = sb(PROTOCOL_TYPE_CLASSIC);
                }
                Some(listed)
            })
            .collect();
        listed.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
        let error = if loading {
            code(ResponseError::CoordinatorLoadInProgress)
        } else {
            NONE
        };
        ListGroupsResponse::default()
            .with_error_code(error)
            .with_groups(listed)
    }

    pub(super) fn handle_describe(
        &self,
        req: DescribeGroupsRequest,
        api_version: i16,
    ) -> DescribeGroupsResponse {
        let groups = req
            .groups
            .iter()
            .map(|group_id| {
                let described = DescribedGroup::default().with_group_id(group_id.clone());
                if self.is_shutting_down() {
                    return described.with_error_code(code(ResponseError::CoordinatorNotAvailable));
                }
                let group = match self.group(group_id) {
                    Ok(Some(group)) => group,
                    Ok(None) => return described.with_group_state(sb(GroupState::Dead.as_str())),
                    Err(unowned) => return described.with_error_code(code(unowned.error())),
                };
                let g = group.lock();
                // Kafka shows protocol, metadata and assignments only for a Stable group.
                let stable = g.state == GroupState::Stable;
                let protocol = if stable {
                    g.protocol.clone().unwrap_or_default()
                } else {
                    String::new()
                };
                let members = g
                    .members
                    .values()
                    .map(|m| {
                        let mut member = DescribedGroupMember::default()
                            .with_member_id(sb(&m.id))
                            .with_client_id(sb(&m.client_id))
                            .with_client_host(sb(&m.client_host));
                        if api_version >= 4 {
                            member.group_instance_id = m.instance_id.as_deref().map(sb);
                        }
                        if stable {
                            member.member_metadata = m.metadata_for(&protocol);
                            member.member_assignment = m.assignment.clone();
                        }
                        member
                    })
                    .collect();
                described
                    .with_group_state(sb(g.state.as_str()))
                    .with_protocol_type(sb(g.protocol_type.as_deref().unwrap_or("")))
                    .with_protocol_data(sb(&protocol))
                    .with_members(members)
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    /// DeleteGroups: each group's tombstones are appended first, then all are awaited
    /// together. Returns one error code per group, in request order.
    pub(super) async fn delete_groups(&self, group_ids: &[GroupId]) -> Vec<i16> {
        let pending: Vec<_> = group_ids
            .iter()
            .map(|group_id| self.delete_group(group_id))
            .collect();
        let waits = pending.into_iter().zip(group_ids).map(|(deleted, group_id)| async move {
            match deleted {
                Deletion::Done(error) => error,
                // The group is already gone from memory, matching the local log; a failure
                // tells the client the deletion may not survive a change of leader.
                Deletion::Replicating(appended) => match appended.then(|outcome| outcome).await {
                    Some(Ok(())) => NONE,
                    Some(Err(e)) => {
                        tracing::warn!(group = %group_id.0, error = %e, "group tombstones not replicated");
                        code(commit_error(&e))
                    }
                    None => code(ResponseError::CoordinatorNotAvailable),
                },
            }
        });
        futures::future::join_all(waits).await
    }

    /// The synchronous half of deleting one group: checks, tombstones appended, group dropped.
    fn delete_group(&self, group_id: &str) -> Deletion {
        if self.is_shutting_down() {
            return Deletion::Done(code(ResponseError::CoordinatorNotAvailable));
        }
        if group_id.is_empty() {
            return Deletion::Done(code(ResponseError::InvalidGroupId));
        }
        // Cache lock first, then the group's: the cache entry is removed under both.
        let mut cache = self.cache.lock();
        let group_arc = match cache.get(group_id) {
            Ok(Some(group_arc)) => group_arc,
            Ok(None) => return Deletion::Done(code(ResponseError::GroupIdNotFound)),
            Err(unowned) => return Deletion::Done(code(unowned.error())),
        };
        let mut group = group_arc.lock();
        match group.state {
            GroupState::Dead => return Deletion::Done(code(ResponseError::GroupIdNotFound)),
            GroupState::Empty => {}
            _ => return Deletion::Done(code(ResponseError::NonEmptyGroup)),
        }
        let mut tombstones: Vec<OffsetsRecord> = group
            .offsets
            .keys()
            .map(|(t, p)| (record::encode_offset_key(group_id, t, *p), None))
            .collect();
        tombstones.push((record::encode_group_key(group_id), None));
        let appended = match self.append(group_id, tombstones) {
            Ok(appended) => appended,
            Err(e) => {
                tracing::warn!(group = group_id, error = %e, "group tombstones not written");
                return Deletion::Done(code(commit_error(&e)));
            }
        };
        group.offsets.clear();
        group.transition(GroupState::Dead, now_ms());
        group.rebalance_epoch += 1;
        drop(group);
        cache.remove(group_id);
        Deletion::Replicating(appended)
    }
}

/// What OffsetDelete answers for one group: the group's error, else one per partition asked.
type OffsetDeletion = Result<Vec<((String, i32), i16)>, i16>;

impl Inner {
    /// OffsetDelete (KIP-496): drops the committed offsets of the partitions asked, unless the
    /// group's members are subscribed to the topic (GROUP_SUBSCRIBED_TO_TOPIC for each of its
    /// partitions); answers once the tombstones are replicated. A group with members of another
    /// protocol than Kafka's consumer protocol is NON_EMPTY_GROUP, as in Kafka 4's
    /// `ClassicGroup.validateDeleteOffsets`; a partition without a committed offset is simply
    /// answered without error.
    pub(super) async fn offset_delete(
        &self,
        group_id: &str,
        topics: &[OffsetDeleteRequestTopic],
    ) -> OffsetDeletion {
        let (outcome, appended) = self.delete_offsets(group_id, topics)?;
        if let Some(appended) = appended {
            match appended.then(|outcome| outcome).await {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    tracing::warn!(group = group_id, error = %e, "offset tombstones not replicated");
                    return Err(code(commit_error(&e)));
                }
                None => return Err(code(ResponseError::CoordinatorNotAvailable)),
            }
        }
        Ok(outcome)
    }

    /// The synchronous half of OffsetDelete: checks, tombstones appended, offsets dropped.
    #[allow(clippy::type_complexity)]
    fn delete_offsets(
        &self,
        group_id: &str,
        topics: &[OffsetDeleteRequestTopic],
    ) -> Result<(Vec<((String, i32), i16)>, Option<Appended>), i16> {
        if self.is_shutting_down() {
            return Err(code(ResponseError::CoordinatorNotAvailable));
        }
        let group_arc = match self.group(group_id) {
            Ok(Some(group)) => group,
            Ok(None) => return Err(code(ResponseError::GroupIdNotFound)),
            Err(unowned) => return Err(code(unowned.error())),
        };
        let mut group = group_arc.lock();
        let consumer = group.protocol_type.as_deref() == Some("consumer");
        match group.state {
            GroupState::Dead => return Err(code(ResponseError::GroupIdNotFound)),
            GroupState::Empty => {}
            _ if !consumer => return Err(code(ResponseError::NonEmptyGroup)),
            _ => {}
        }
        let subscribed = if group.state == GroupState::Empty {
            BTreeSet::new()
        } else {
            subscribed_topics(&group)
        };
        let mut outcome = Vec::new();
        let mut deleted = Vec::new();
        for topic in topics {
            let name = topic.name.0.to_string();
            for p in &topic.partitions {
                let key = (name.clone(), p.partition_index);
                if subscribed.contains(&name) {
                    outcome.push((key, code(ResponseError::GroupSubscribedToTopic)));
                    continue;
                }
                if group.offsets.contains_key(&key) && !deleted.contains(&key) {
                    deleted.push(key.clone());
                }
                outcome.push((key, NONE));
            }
        }
        if deleted.is_empty() {
            return Ok((outcome, None));
        }
        let tombstones = deleted
            .iter()
            .map(|(t, p)| (record::encode_offset_key(group_id, t, *p), None))
            .collect();
        let appended = match self.append(group_id, tombstones) {
            Ok(appended) => appended,
            Err(e) => {
                tracing::warn!(group = group_id, error = %e, "offset tombstones not written");
                return Err(code(commit_error(&e)));
            }
        };
        for key in deleted {
            // A commit of the partition still being replicated must not bring it back.
            group
                .offset_positions
                .insert(key.clone(), appended.end_offset);
            group.offsets.remove(&key);
        }
        Ok((outcome, Some(appended)))
    }
}

/// The topics the members of a consumer-protocol group subscribe to, from their subscriptions
/// for the group's protocol (Kafka's `ClassicGroup.computeSubscribedTopics`); empty when one of
/// them cannot be read, as Kafka then treats the group as subscribed to nothing.
fn subscribed_topics(group: &crate::group::Group) -> BTreeSet<String> {
    let Some(protocol) = group.protocol.as_deref() else {
        return BTreeSet::new();
    };
    let mut topics = BTreeSet::new();
    for member in group.members.values() {
        let mut metadata = member.metadata_for(protocol);
        if metadata.remaining() < 2 {
            return BTreeSet::new();
        }
        let version = metadata.get_i16();
        // Newer versions than the crate knows are read as the newest it knows (fields are only
        // ever added at the end).
        let Ok(subscription) =
            ConsumerProtocolSubscription::decode(&mut metadata, version.clamp(0, 3))
        else {
            return BTreeSet::new();
        };
        topics.extend(subscription.topics.into_iter().map(|t| t.to_string()));
    }
    topics
}

/// The synchronous half of deleting a group.
enum Deletion {
    /// Answered without writing.
    Done(i16),
    /// Tombstones appended and the group dropped; waiting for replication.
    Replicating(Appended),
}
