//! The group coordinator: answers the classic group APIs from decoded `kafka_protocol` requests,
//! as Apache Kafka's classic `GroupCoordinator` does, and owns the rebalance, session and
//! pending-member timers (tokio tasks that re-check the group under its lock when they fire).
//!
//! Every group lives behind its own mutex; the map of groups has its own. Lock order is map, then
//! group; no lock is held across an `.await`. Joins and syncs that must wait for the rest of the
//! group park a oneshot sender in the member and await it outside the lock. Offsets and group
//! metadata are appended to the offsets log (while holding the group lock, so the log's order per
//! key matches memory) before a commit is answered. The async methods are cancellation-safe: a
//! dropped join or sync leaves the member in the group, exactly as a client that went silent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use strata_kafka::now_ms;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::group::{Group, GroupState, Member, PendingJoin};
use crate::offsets_log::{OffsetsLog, OffsetsLogError, OffsetsRecord};
use crate::record::{self, OffsetValue, RecordKey};
use crate::{partition_for, GroupConfig};

/// Kafka's `offset.metadata.max.bytes` default.
const MAX_METADATA_BYTES: usize = 4096;
/// The group type of every group this coordinator runs (ListGroups v5 `group_type`).
const PROTOCOL_TYPE_CLASSIC: &str = "classic";

const NONE: i16 = 0;

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn ms(value: i32) -> Duration {
    Duration::from_millis(u64::try_from(value).unwrap_or(0))
}

/// Who sent a JoinGroup: not part of the request body, so the broker passes it from the
/// connection (request header client id, peer address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The request header's client id.
    pub client_id: String,
    /// The peer's host, as Kafka shows it ("/127.0.0.1").
    pub client_host: String,
}

/// Handle to the coordinator; clones share the same groups.
#[derive(Clone)]
pub struct GroupCoordinator {
    inner: Arc<Inner>,
}

struct Inner {
    config: GroupConfig,
    log: Arc<dyn OffsetsLog>,
    groups: Mutex<HashMap<String, Arc<Mutex<Group>>>>,
    shutting_down: AtomicBool,
    incarnations: AtomicU64,
}

/// A join as the coordinator sees it, validated and with the version-dependent fields settled.
struct JoinParams {
    member_id: String,
    instance_id: Option<String>,
    client: ClientInfo,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    api_version: i16,
}

/// A response available now, or one that arrives when the rest of the group is ready.
enum Answer<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

type JoinOutcome = Answer<JoinGroupResponse>;
type SyncOutcome = Answer<SyncGroupResponse>;
/// Offsets of one group per topic: (partition, committed value if any).
type TopicOffsets = Vec<(String, Vec<(i32, Option<OffsetValue>)>)>;

fn protocol_name_field(name: Option<&str>, api_version: i16) -> Option<StrBytes> {
    // Nullable from v7; earlier versions encode a missing protocol as "".
    if api_version >= 7 {
        name.map(sb)
    } else {
        Some(sb(name.unwrap_or("")))
    }
}

fn join_error(member_id: &str, error: i16, api_version: i16) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(error)
        .with_generation_id(-1)
        .with_member_id(sb(member_id))
        .with_protocol_name(protocol_name_field(None, api_version))
}

fn join_response(
    group: &Group,
    member_id: &str,
    api_version: i16,
    with_members: bool,
    skip_assignment: bool,
) -> JoinGroupResponse {
    let protocol = group.protocol.as_deref().unwrap_or("");
    let members = if with_members {
        group
            .members
            .values()
            .map(|m| {
                JoinGroupResponseMember::default()
                    .with_member_id(sb(&m.id))
                    .with_group_instance_id(if api_version >= 5 {
                        m.instance_id.as_deref().map(sb)
                    } else {
                        None
                    })
                    .with_metadata(m.metadata_for(protocol))
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinGroupResponse::default()
        .with_generation_id(group.generation)
        .with_protocol_type(if api_version >= 7 {
            group.protocol_type.as_deref().map(sb)
        } else {
            None
        })
        .with_protocol_name(protocol_name_field(group.protocol.as_deref(), api_version))
        .with_leader(sb(group.leader.as_deref().unwrap_or("")))
        .with_skip_assignment(skip_assignment && api_version >= 9)
        .with_member_id(sb(member_id))
        .with_members(members)
}

fn sync_error(error: i16) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(error)
}

fn sync_response(group: &Group, assignment: Bytes, api_version: i16) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default().with_assignment(assignment);
    if api_version >= 5 {
        response.protocol_type = group.protocol_type.as_deref().map(sb);
        response.protocol_name = group.protocol.as_deref().map(sb);
    }
    response
}

impl GroupCoordinator {
    /// A coordinator with no groups; call [`GroupCoordinator::load`] to restore the offsets log.
    pub fn new(config: GroupConfig, log: Arc<dyn OffsetsLog>) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                log,
                groups: Mutex::new(HashMap::new()),
                shutting_down: AtomicBool::new(false),
                incarnations: AtomicU64::new(0),
            }),
        }
    }

    /// Loads committed offsets and group metadata from every partition of the offsets log (call
    /// once on start). Last value per key wins; tombstones delete. Undecodable records are skipped
    /// with a warning. Restored members get session timers when a tokio runtime is current;
    /// otherwise their groups are restored without members (they rejoin).
    pub fn load(&self) -> Result<(), OffsetsLogError> {
        self.inner.load()
    }

    /// Partition of `__consumer_offsets` for the group, as Kafka computes it.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.inner.config.offsets_topic_num_partitions)
    }

    /// JoinGroup without connection details (client id "" and host "").
    pub async fn join_group(&self, req: JoinGroupRequest, api_version: i16) -> JoinGroupResponse {
        self.join_group_from(req, api_version, ClientInfo::default())
            .await
    }

    /// JoinGroup; the response arrives when the rebalance completes.
    pub async fn join_group_from(
        &self,
        req: JoinGroupRequest,
        api_version: i16,
        client: ClientInfo,
    ) -> JoinGroupResponse {
        let member_id = req.member_id.to_string();
        match self.inner.handle_join(req, api_version, client) {
            Answer::Now(response) => response,
            Answer::Later(rx) => rx.await.unwrap_or_else(|_| {
                join_error(
                    &member_id,
                    code(ResponseError::RebalanceInProgress),
                    api_version,
                )
            }),
        }
    }

    /// SyncGroup; followers wait for the leader's assignment.
    pub async fn sync_group(&self, req: SyncGroupRequest, api_version: i16) -> SyncGroupResponse {
        match self.inner.handle_sync(req, api_version) {
            Answer::Now(response) => response,
            Answer::Later(rx) => rx
                .await
                .unwrap_or_else(|_| sync_error(code(ResponseError::RebalanceInProgress))),
        }
    }

    /// Heartbeat.
    pub async fn heartbeat(&self, req: HeartbeatRequest, api_version: i16) -> HeartbeatResponse {
        HeartbeatResponse::default().with_error_code(self.inner.handle_heartbeat(req, api_version))
    }

    /// LeaveGroup, single member (v0-v2) or a batch (v3+).
    pub async fn leave_group(
        &self,
        req: LeaveGroupRequest,
        api_version: i16,
    ) -> LeaveGroupResponse {
        self.inner.handle_leave(req, api_version)
    }

    /// OffsetCommit; answered after the offsets log accepted the records.
    pub async fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        api_version: i16,
    ) -> OffsetCommitResponse {
        self.inner.handle_offset_commit(req, api_version)
    }

    /// OffsetFetch: v1-v7 single group, v8+ the `groups` array. Unknown offsets are -1.
    pub async fn offset_fetch(
        &self,
        req: OffsetFetchRequest,
        api_version: i16,
    ) -> OffsetFetchResponse {
        self.inner.handle_offset_fetch(req, api_version)
    }

    /// ListGroups with the states (v4+) and types (v5+) filters.
    pub async fn list_groups(
        &self,
        req: ListGroupsRequest,
        api_version: i16,
    ) -> ListGroupsResponse {
        self.inner.handle_list(req, api_version)
    }

    /// DescribeGroups; unknown groups are described as "Dead" with no error, as Kafka does.
    pub async fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        api_version: i16,
    ) -> DescribeGroupsResponse {
        self.inner.handle_describe(req, api_version)
    }

    /// DeleteGroups: only groups without members; writes tombstones for offsets and metadata.
    pub async fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        _api_version: i16,
    ) -> DeleteGroupsResponse {
        let results = req
            .groups_names
            .iter()
            .map(|g| {
                DeletableGroupResult::default()
                    .with_group_id(g.clone())
                    .with_error_code(self.inner.delete_group(g))
            })
            .collect();
        DeleteGroupsResponse::default().with_results(results)
    }

    /// Committed offsets of a group: (topic, partition, offset, metadata), ordered by topic and
    /// partition.
    pub fn committed_offsets(&self, group_id: &str) -> Vec<(String, i32, i64, Option<String>)> {
        let Some(group) = self.inner.group(group_id) else {
            return Vec::new();
        };
        let group = group.lock();
        group
            .offsets
            .iter()
            .map(|((topic, partition), v)| {
                (
                    topic.clone(),
                    *partition,
                    v.offset,
                    Some(v.metadata.clone()),
                )
            })
            .collect()
    }

    /// The state of a group, `None` when unknown.
    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.inner.group(group_id).map(|g| g.lock().state)
    }

    /// Topic deletion: drops offsets of that topic from every group and writes tombstones.
    pub fn remove_topic_offsets(&self, topic: &str) {
        let groups: Vec<_> = self.inner.groups.lock().values().cloned().collect();
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
            if let Err(e) = self.inner.append(&group.id, tombstones) {
                tracing::warn!(group = %group.id, topic, error = %e, "offset tombstones not written");
            }
            for key in keys {
                group.offsets.remove(&key);
            }
        }
    }

    /// Shutdown: pending joins and syncs are answered NOT_COORDINATOR so clients look for the
    /// new coordinator; later requests get COORDINATOR_NOT_AVAILABLE; timers stop.
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let groups: Vec<_> = self.inner.groups.lock().values().cloned().collect();
        for group in groups {
            let mut group = group.lock();
            group.rebalance_epoch += 1;
            for member in group.members.values_mut() {
                if let Some(join) = member.awaiting_join.take() {
                    let response = join_error(
                        &member.id,
                        code(ResponseError::NotCoordinator),
                        join.api_version,
                    );
                    let _ = join.reply.send(response);
                }
                if let Some(sync) = member.awaiting_sync.take() {
                    let _ = sync.send(sync_error(code(ResponseError::NotCoordinator)));
                }
            }
        }
    }
}

impl Inner {
    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    fn group(&self, group_id: &str) -> Option<Arc<Mutex<Group>>> {
        self.groups.lock().get(group_id).cloned()
    }

    fn group_or_create(&self, group_id: &str) -> Arc<Mutex<Group>> {
        self.groups
            .lock()
            .entry(group_id.to_owned())
            .or_insert_with(|| Arc::new(Mutex::new(Group::new(group_id.to_owned(), now_ms()))))
            .clone()
    }

    fn append(&self, group_id: &str, records: Vec<OffsetsRecord>) -> Result<(), OffsetsLogError> {
        let partition = partition_for(group_id, self.config.offsets_topic_num_partitions);
        self.log.append(partition, records)
    }

    fn store_group_metadata(&self, group: &Group) -> Result<(), OffsetsLogError> {
        let value = record::encode_group_value(&group.metadata_value());
        self.append(
            &group.id,
            vec![(record::encode_group_key(&group.id), Some(value))],
        )
    }

    fn next_incarnation(&self) -> u64 {
        self.incarnations.fetch_add(1, Ordering::Relaxed)
    }

    // ---------------------------------------------------------------- JoinGroup

    fn handle_join(
        self: &Arc<Self>,
        req: JoinGroupRequest,
        api_version: i16,
        client: ClientInfo,
    ) -> JoinOutcome {
        let member_id = req.member_id.to_string();
        let fail =
            |error: ResponseError| Answer::Now(join_error(&member_id, code(error), api_version));
        if self.is_shutting_down() {
            return fail(ResponseError::CoordinatorNotAvailable);
        }
        let group_id = req.group_id.0.to_string();
        if group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return fail(ResponseError::InvalidSessionTimeout);
        }
        let params = JoinParams {
            member_id: member_id.clone(),
            instance_id: if api_version >= 5 {
                req.group_instance_id.as_ref().map(|i| i.to_string())
            } else {
                None
            },
            client,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: if api_version >= 1 {
                req.rebalance_timeout_ms
            } else {
                req.session_timeout_ms
            },
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            api_version,
        };
        let group_arc = if member_id.is_empty() {
            self.group_or_create(&group_id)
        } else {
            match self.group(&group_id) {
                Some(g) => g,
                None => return fail(ResponseError::UnknownMemberId),
            }
        };
        let mut group = group_arc.lock();
        if group.state == GroupState::Dead {
            return fail(ResponseError::CoordinatorNotAvailable);
        }
        let known = group.members.contains_key(&member_id)
            || group.pending_members.contains(&member_id)
            || params
                .instance_id
                .as_ref()
                .is_some_and(|i| group.static_members.contains_key(i));
        let size = group.members.len() + group.pending_members.len();
        if !known && i32::try_from(size).unwrap_or(i32::MAX) >= self.config.max_group_size {
            return fail(ResponseError::GroupMaxSizeReached);
        }
        if !group.supports_protocols(&params.protocol_type, &params.protocols) {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        if member_id.is_empty() {
            self.join_new_member(&group_arc, &mut group, params)
        } else {
            self.join_current_member(&group_arc, &mut group, params)
        }
    }

    fn join_new_member(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        group: &mut Group,
        mut params: JoinParams,
    ) -> JoinOutcome {
        let new_id = format!("{}-{}", params.client.client_id, uuid::Uuid::new_v4());
        if let Some(instance) = params.instance_id.clone() {
            if let Some(old_id) = group.static_members.get(&instance).cloned() {
                return self.replace_static_member(group_arc, group, &old_id, new_id, params);
            }
            params.member_id = new_id;
            return Answer::Later(self.add_member_and_rebalance(group_arc, group, params));
        }
        if params.api_version >= 4 {
            // KIP-394: the member must come back with the id, so that a lost response cannot
            // leave an unknown member behind.
            group.pending_members.insert(new_id.clone());
            self.spawn_pending_expiry(group_arc, new_id.clone(), params.session_timeout_ms);
            return Answer::Now(join_error(
                &new_id,
                code(ResponseError::MemberIdRequired),
                params.api_version,
            ));
        }
        params.member_id = new_id;
        Answer::Later(self.add_member_and_rebalance(group_arc, group, params))
    }

    fn join_current_member(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        group: &mut Group,
        params: JoinParams,
    ) -> JoinOutcome {
        let member_id = params.member_id.clone();
        let v = params.api_version;
        if group.pending_members.contains(&member_id) {
            return Answer::Later(self.add_member_and_rebalance(group_arc, group, params));
        }
        if group.is_fenced(&member_id, params.instance_id.as_deref()) {
            return Answer::Now(join_error(
                &member_id,
                code(ResponseError::FencedInstanceId),
                v,
            ));
        }
        let Some(member) = group.members.get(&member_id) else {
            return Answer::Now(join_error(
                &member_id,
                code(ResponseError::UnknownMemberId),
                v,
            ));
        };
        let same = member.same_protocols(&params.protocols);
        match group.state {
            GroupState::PreparingRebalance => {
                Answer::Later(self.update_member_and_rebalance(group_arc, group, params))
            }
            GroupState::CompletingRebalance if same => {
                // The join response was lost: answer it again.
                let leader = group.is_leader(&member_id);
                Answer::Now(join_response(group, &member_id, v, leader, false))
            }
            GroupState::Stable if same && !group.is_leader(&member_id) => {
                if let Some(m) = group.members.get_mut(&member_id) {
                    m.last_heartbeat = Instant::now();
                }
                Answer::Now(join_response(group, &member_id, v, false, false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                Answer::Later(self.update_member_and_rebalance(group_arc, group, params))
            }
            GroupState::Empty | GroupState::Dead => Answer::Now(join_error(
                &member_id,
                code(ResponseError::UnknownMemberId),
                v,
            )),
        }
    }

    fn add_member_and_rebalance(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        group: &mut Group,
        params: JoinParams,
    ) -> oneshot::Receiver<JoinGroupResponse> {
        let (tx, rx) = oneshot::channel();
        let incarnation = self.next_incarnation();
        let member = Member {
            id: params.member_id.clone(),
            instance_id: params.instance_id,
            client_id: params.client.client_id,
            client_host: params.client.client_host,
            session_timeout_ms: params.session_timeout_ms,
            rebalance_timeout_ms: params.rebalance_timeout_ms,
            protocol_type: params.protocol_type,
            protocols: params.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(PendingJoin {
                reply: tx,
                api_version: params.api_version,
            }),
            awaiting_sync: None,
            last_heartbeat: Instant::now(),
            incarnation,
        };
        group.add_member(member);
        if group.state == GroupState::PreparingRebalance && group.in_initial_delay {
            group.new_member_added = true;
        }
        self.spawn_session_expiry(group_arc, params.member_id, incarnation);
        self.maybe_prepare_rebalance(group_arc, group);
        rx
    }

    fn update_member_and_rebalance(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        group: &mut Group,
        params: JoinParams,
    ) -> oneshot::Receiver<JoinGroupResponse> {
        let (tx, rx) = oneshot::channel();
        if let Some(member) = group.members.get_mut(&params.member_id) {
            member.protocols = params.protocols;
            member.session_timeout_ms = params.session_timeout_ms;
            member.rebalance_timeout_ms = params.rebalance_timeout_ms;
            member.last_heartbeat = Instant::now();
            // A second join while the first still waits replaces it; the first gets
            // REBALANCE_IN_PROGRESS when its sender is dropped.
            member.awaiting_join = Some(PendingJoin {
                reply: tx,
                api_version: params.api_version,
            });
        }
        self.maybe_prepare_rebalance(group_arc, group);
        rx
    }

    /// A static member came back with a new member id: the new id takes over the old member's
    /// place, assignment and leadership; the old id is fenced.
    fn replace_static_member(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        group: &mut Group,
        old_id: &str,
        new_id: String,
        params: JoinParams,
    ) -> JoinOutcome {
        let v = params.api_version;
        let was_leader = group.is_leader(old_id);
        let Some(index) = group.members.get_index_of(old_id) else {
            return Answer::Now(join_error(&new_id, code(ResponseError::UnknownMemberId), v));
        };
        let Some((_, mut member)) = group.members.shift_remove_index(index) else {
            return Answer::Now(join_error(&new_id, code(ResponseError::UnknownMemberId), v));
        };
        let fenced = code(ResponseError::FencedInstanceId);
        if let Some(join) = member.awaiting_join.take() {
            let _ = join
                .reply
                .send(join_error(old_id, fenced, join.api_version));
        }
        if let Some(sync) = member.awaiting_sync.take() {
            let _ = sync.send(sync_error(fenced));
        }
        let same_protocols = member.same_protocols(&params.protocols);
        member.id = new_id.clone();
        member.client_id = params.client.client_id;
        member.client_host = params.client.client_host;
        member.session_timeout_ms = params.session_timeout_ms;
        member.rebalance_timeout_ms = params.rebalance_timeout_ms;
        member.protocols = params.protocols;
        member.last_heartbeat = Instant::now();
        member.incarnation = self.next_incarnation();
        let incarnation = member.incarnation;
        group.members.insert(new_id.clone(), member);
        group.members.move_index(group.members.len() - 1, index);
        if let Some(instance) = &params.instance_id {
            group
                .static_members
                .insert(instance.clone(), new_id.clone());
        }
        if was_leader {
            group.leader = Some(new_id.clone());
        }
        self.spawn_session_expiry(group_arc, new_id.clone(), incarnation);
        match group.state {
            GroupState::Stable if same_protocols => {
                // No rebalance: the member gets the current generation and, through SyncGroup,
                // the assignment of the instance it replaces.
                let leader = group.is_leader(&new_id);
                if let Err(e) = self.store_group_metadata(group) {
                    tracing::warn!(group = %group.id, error = %e, "group metadata not written");
                }
                Answer::Now(join_response(group, &new_id, v, leader, leader))
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = group.members.get_mut(&new_id) {
                    m.awaiting_join = Some(PendingJoin {
                        reply: tx,
                        api_version: v,
                    });
                }
                self.maybe_prepare_rebalance(group_arc, group);
                Answer::Later(rx)
            }
        }
    }

    fn maybe_prepare_rebalance(self: &Arc<Self>, group_arc: &Arc<Mutex<Group>>, group: &mut Group) {
        match group.state {
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(group_arc, group)
            }
            GroupState::PreparingRebalance => self.try_complete_join(group),
            GroupState::Dead => {}
        }
    }

    fn prepare_rebalance(self: &Arc<Self>, group_arc: &Arc<Mutex<Group>>, group: &mut Group) {
        if group.state == GroupState::CompletingRebalance {
            // The assignment being computed is for a generation that will not complete.
            let error = code(ResponseError::RebalanceInProgress);
            for member in group.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(sync) = member.awaiting_sync.take() {
                    let _ = sync.send(sync_error(error));
                }
            }
        }
        let initial = group.state == GroupState::Empty;
        group.transition(GroupState::PreparingRebalance, now_ms());
        group.rebalance_epoch += 1;
        let epoch = group.rebalance_epoch;
        let rebalance_timeout = group.rebalance_timeout_ms().max(0);
        if initial {
            let delay = self
                .config
                .initial_rebalance_delay_ms
                .clamp(0, rebalance_timeout);
            group.in_initial_delay = true;
            group.new_member_added = false;
            self.spawn_join_timer(
                group_arc,
                epoch,
                ms(delay),
                Some(ms(rebalance_timeout - delay)),
            );
        } else {
            group.in_initial_delay = false;
            self.spawn_join_timer(group_arc, epoch, ms(rebalance_timeout), None);
            self.try_complete_join(group);
        }
    }

    fn try_complete_join(&self, group: &mut Group) {
        if group.state == GroupState::PreparingRebalance
            && !group.in_initial_delay
            && group.all_members_joined()
        {
            self.complete_join(group);
        }
    }

    /// Kafka's `onCompleteJoin`: members that did not rejoin are removed, the generation moves
    /// on, and every waiting join is answered (the leader with the member list).
    fn complete_join(&self, group: &mut Group) {
        let missing: Vec<String> = group
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in missing {
            tracing::info!(group = %group.id, member = %id, "removing member that did not rejoin");
            group.remove_member(&id);
        }
        group.in_initial_delay = false;
        group.new_member_added = false;
        group.rebalance_epoch += 1;
        group.generation += 1;
        let now = now_ms();
        if group.members.is_empty() {
            group.protocol = None;
            group.transition(GroupState::Empty, now);
            if let Err(e) = self.store_group_metadata(group) {
                tracing::warn!(group = %group.id, error = %e, "group metadata not written");
            }
            return;
        }
        group.protocol = group.select_protocol();
        if !group
            .leader
            .as_ref()
            .is_some_and(|l| group.members.contains_key(l))
        {
            group.leader = group.members.keys().next().cloned();
        }
        group.transition(GroupState::CompletingRebalance, now);
        let ids: Vec<String> = group.members.keys().cloned().collect();
        for id in ids {
            let leader = group.is_leader(&id);
            let Some(join) = group
                .members
                .get_mut(&id)
                .and_then(|m| m.awaiting_join.take())
            else {
                continue;
            };
            let response = join_response(group, &id, join.api_version, leader, false);
            let _ = join.reply.send(response);
            if let Some(m) = group.members.get_mut(&id) {
                m.last_heartbeat = Instant::now();
            }
        }
    }

    /// Removes a member (session expiry, leave) and moves the group on as Kafka does.
    fn remove_member_and_update_group(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        group: &mut Group,
        member_id: &str,
    ) {
        let Some(mut member) = group.remove_member(member_id) else {
            return;
        };
        let unknown = code(ResponseError::UnknownMemberId);
        if let Some(join) = member.awaiting_join.take() {
            let _ = join
                .reply
                .send(join_error(member_id, unknown, join.api_version));
        }
        if let Some(sync) = member.awaiting_sync.take() {
            let _ = sync.send(sync_error(unknown));
        }
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(group_arc, group)
            }
            GroupState::PreparingRebalance => self.try_complete_join(group),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    // ---------------------------------------------------------------- timers

    /// The join deadline: the initial delay (extended while members keep arriving, up to the
    /// rebalance timeout) or the rebalance timeout; on expiry the join completes with whoever
    /// joined. Stale when the group's rebalance epoch moved on.
    fn spawn_join_timer(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        epoch: u64,
        delay: Duration,
        initial_remaining: Option<Duration>,
    ) {
        let inner = Arc::downgrade(self);
        let group_arc = Arc::downgrade(group_arc);
        let configured_delay = ms(self.config.initial_rebalance_delay_ms);
        tokio::spawn(async move {
            let mut delay = delay;
            let mut remaining = initial_remaining;
            loop {
                tokio::time::sleep(delay).await;
                let (Some(inner), Some(group_arc)) = (inner.upgrade(), group_arc.upgrade()) else {
                    return;
                };
                if inner.is_shutting_down() {
                    return;
                }
                let mut group = group_arc.lock();
                if group.rebalance_epoch != epoch || group.state != GroupState::PreparingRebalance {
                    return;
                }
                if let Some(left) = remaining {
                    if group.new_member_added && !left.is_zero() {
                        group.new_member_added = false;
                        delay = configured_delay.min(left);
                        remaining = Some(left - delay);
                        continue;
                    }
                    group.in_initial_delay = false;
                }
                inner.complete_join(&mut group);
                return;
            }
        });
    }

    /// Session expiry of one member incarnation: removes it once it neither heartbeats nor waits
    /// on a join or sync for `session.timeout.ms`.
    fn spawn_session_expiry(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        member_id: String,
        incarnation: u64,
    ) {
        let inner = Arc::downgrade(self);
        let group_weak = Arc::downgrade(group_arc);
        tokio::spawn(session_expiry(inner, group_weak, member_id, incarnation));
    }

    /// A MEMBER_ID_REQUIRED id that is not used within the session timeout is forgotten.
    fn spawn_pending_expiry(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        member_id: String,
        session_timeout_ms: i32,
    ) {
        let inner = Arc::downgrade(self);
        let group_weak = Arc::downgrade(group_arc);
        tokio::spawn(async move {
            tokio::time::sleep(ms(session_timeout_ms)).await;
            let (Some(inner), Some(group_arc)) = (inner.upgrade(), group_weak.upgrade()) else {
                return;
            };
            let mut group = group_arc.lock();
            if group.pending_members.remove(&member_id) && !inner.is_shutting_down() {
                inner.try_complete_join(&mut group);
            }
        });
    }

    // ---------------------------------------------------------------- SyncGroup

    fn handle_sync(self: &Arc<Self>, req: SyncGroupRequest, api_version: i16) -> SyncOutcome {
        let fail = |error: ResponseError| Answer::Now(sync_error(code(error)));
        if self.is_shutting_down() {
            return fail(ResponseError::CoordinatorNotAvailable);
        }
        let member_id = req.member_id.to_string();
        let Some(group_arc) = self.group(&req.group_id.0) else {
            return fail(ResponseError::UnknownMemberId);
        };
        let mut group = group_arc.lock();
        let instance_id = if api_version >= 3 {
            req.group_instance_id.as_deref()
        } else {
            None
        };
        if group.state == GroupState::Dead {
            return fail(ResponseError::CoordinatorNotAvailable);
        }
        if group.is_fenced(&member_id, instance_id) {
            return fail(ResponseError::FencedInstanceId);
        }
        if !group.members.contains_key(&member_id) {
            return fail(ResponseError::UnknownMemberId);
        }
        if req.generation_id != group.generation {
            return fail(ResponseError::IllegalGeneration);
        }
        if api_version >= 5 {
            let type_mismatch = req
                .protocol_type
                .as_ref()
                .is_some_and(|t| group.protocol_type.as_deref() != Some(t.as_str()));
            let name_mismatch = req
                .protocol_name
                .as_ref()
                .is_some_and(|n| group.protocol.as_deref() != Some(n.as_str()));
            if type_mismatch || name_mismatch {
                return fail(ResponseError::InconsistentGroupProtocol);
            }
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => fail(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                let assignment = match group.members.get_mut(&member_id) {
                    Some(m) => {
                        m.last_heartbeat = Instant::now();
                        m.assignment.clone()
                    }
                    None => Bytes::new(),
                };
                Answer::Now(sync_response(&group, assignment, api_version))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = group.members.get_mut(&member_id) {
                    m.awaiting_sync = Some(tx);
                }
                if group.is_leader(&member_id) {
                    let assignments: HashMap<String, Bytes> = req
                        .assignments
                        .into_iter()
                        .map(|a| (a.member_id.to_string(), a.assignment))
                        .collect();
                    self.complete_sync(&group_arc, &mut group, assignments, api_version);
                }
                Answer::Later(rx)
            }
        }
    }

    /// The leader's assignment arrived: store it, then hand every waiting member its part.
    fn complete_sync(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        group: &mut Group,
        mut assignments: HashMap<String, Bytes>,
        api_version: i16,
    ) {
        for member in group.members.values_mut() {
            member.assignment = assignments.remove(&member.id).unwrap_or_default();
        }
        if let Err(e) = self.store_group_metadata(group) {
            tracing::warn!(group = %group.id, error = %e, "group metadata not written; rebalancing");
            let error = code(ResponseError::CoordinatorNotAvailable);
            for member in group.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(sync) = member.awaiting_sync.take() {
                    let _ = sync.send(sync_error(error));
                }
            }
            self.prepare_rebalance(group_arc, group);
            return;
        }
        group.transition(GroupState::Stable, now_ms());
        let ids: Vec<String> = group.members.keys().cloned().collect();
        for id in ids {
            let Some(member) = group.members.get_mut(&id) else {
                continue;
            };
            member.last_heartbeat = Instant::now();
            let Some(sync) = member.awaiting_sync.take() else {
                continue;
            };
            let assignment = member.assignment.clone();
            let _ = sync.send(sync_response(group, assignment, api_version));
        }
    }

    // ---------------------------------------------------------------- Heartbeat, LeaveGroup

    fn handle_heartbeat(&self, req: HeartbeatRequest, api_version: i16) -> i16 {
        if self.is_shutting_down() {
            return code(ResponseError::CoordinatorNotAvailable);
        }
        let Some(group_arc) = self.group(&req.group_id.0) else {
            return code(ResponseError::UnknownMemberId);
        };
        let mut group = group_arc.lock();
        let member_id = req.member_id.as_str();
        let instance_id = if api_version >= 3 {
            req.group_instance_id.as_deref()
        } else {
            None
        };
        if group.state == GroupState::Dead {
            return code(ResponseError::CoordinatorNotAvailable);
        }
        if group.is_fenced(member_id, instance_id) {
            return code(ResponseError::FencedInstanceId);
        }
        if !group.members.contains_key(member_id) {
            return code(ResponseError::UnknownMemberId);
        }
        if req.generation_id != group.generation {
            return code(ResponseError::IllegalGeneration);
        }
        let state = group.state;
        if let Some(member) = group.members.get_mut(member_id) {
            member.last_heartbeat = Instant::now();
        }
        match state {
            GroupState::Empty | GroupState::Dead => code(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => code(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => NONE,
        }
    }

    fn handle_leave(
        self: &Arc<Self>,
        req: LeaveGroupRequest,
        api_version: i16,
    ) -> LeaveGroupResponse {
        let leaving: Vec<(String, Option<String>)> = if api_version >= 3 {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|i| i.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(req.member_id.to_string(), None)]
        };
        let (top_error, errors) = self.leave_members(&req.group_id.0, &leaving);
        if api_version < 3 {
            let error = errors.first().copied().unwrap_or(top_error);
            return LeaveGroupResponse::default().with_error_code(if top_error != NONE {
                top_error
            } else {
                error
            });
        }
        let members = leaving
            .into_iter()
            .zip(errors)
            .map(|((member_id, instance_id), error)| {
                MemberResponse::default()
                    .with_member_id(sb(&member_id))
                    .with_group_instance_id(instance_id.as_deref().map(sb))
                    .with_error_code(error)
            })
            .collect();
        LeaveGroupResponse::default()
            .with_error_code(top_error)
            .with_members(members)
    }

    /// Returns the top-level error and one error per leaving member.
    fn leave_members(
        self: &Arc<Self>,
        group_id: &str,
        leaving: &[(String, Option<String>)],
    ) -> (i16, Vec<i16>) {
        let unknown = code(ResponseError::UnknownMemberId);
        if self.is_shutting_down() {
            return (code(ResponseError::CoordinatorNotAvailable), Vec::new());
        }
        let Some(group_arc) = self.group(group_id) else {
            return (NONE, vec![unknown; leaving.len()]);
        };
        let mut group = group_arc.lock();
        if group.state == GroupState::Dead {
            return (code(ResponseError::CoordinatorNotAvailable), Vec::new());
        }
        let mut errors = Vec::with_capacity(leaving.len());
        for (member_id, instance_id) in leaving {
            let target = match instance_id {
                Some(instance) => match group.static_members.get(instance) {
                    Some(registered) if member_id.is_empty() || registered == member_id => {
                        Some(registered.clone())
                    }
                    Some(_) => {
                        errors.push(code(ResponseError::FencedInstanceId));
                        continue;
                    }
                    None => None,
                },
                None => Some(member_id.clone()),
            };
            match target {
                Some(id) if group.pending_members.remove(&id) => {
                    self.try_complete_join(&mut group);
                    errors.push(NONE);
                }
                Some(id) if group.members.contains_key(&id) => {
                    self.remove_member_and_update_group(&group_arc, &mut group, &id);
                    errors.push(NONE);
                }
                _ => errors.push(unknown),
            }
        }
        (NONE, errors)
    }

    // ---------------------------------------------------------------- offsets

    /// Kafka's `validateOffsetCommit` plus the state check of `doCommitOffsets`.
    fn commit_error(
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
        // allowed only while the group has no members.
        if group.state != GroupState::Empty {
            return code(ResponseError::IllegalGeneration);
        }
        NONE
    }

    fn handle_offset_commit(
        &self,
        req: OffsetCommitRequest,
        api_version: i16,
    ) -> OffsetCommitResponse {
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
        let error = if self.is_shutting_down() {
            code(ResponseError::CoordinatorNotAvailable)
        } else if group_id.is_empty() {
            code(ResponseError::InvalidGroupId)
        } else {
            NONE
        };
        let respond = |errors: &dyn Fn(&str, i32) -> i16| -> OffsetCommitResponse {
            let topics = req
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(errors(&t.name.0, p.partition_index))
                        })
                        .collect();
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            OffsetCommitResponse::default().with_topics(topics)
        };
        if error != NONE {
            return respond(&|_, _| error);
        }
        let group_arc = match self.group(&group_id) {
            Some(g) => g,
            None if generation < 0 => self.group_or_create(&group_id),
            // Either a stale member of a group that expired, or a wrong generation.
            None => return respond(&|_, _| code(ResponseError::IllegalGeneration)),
        };
        let mut group = group_arc.lock();
        let error = Self::commit_error(&group, generation, &member_id, instance.as_deref());
        if error != NONE {
            return respond(&|_, _| error);
        }
        if let Some(member) = group.members.get_mut(&member_id) {
            member.last_heartbeat = Instant::now();
        }
        let timestamp = now_ms();
        let mut accepted: Vec<((String, i32), OffsetValue)> = Vec::new();
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
        let records = accepted
            .iter()
            .map(|((topic, partition), value)| {
                (
                    record::encode_offset_key(&group_id, topic, *partition),
                    Some(record::encode_offset_value(value)),
                )
            })
            .collect::<Vec<_>>();
        let stored = records.is_empty() || self.append(&group_id, records).is_ok();
        if stored {
            for (key, value) in accepted {
                group.offsets.insert(key, value);
            }
        }
        drop(group);
        let too_large_code = code(ResponseError::OffsetMetadataTooLarge);
        let failed = code(ResponseError::CoordinatorNotAvailable);
        respond(&|topic, partition| {
            if too_large.iter().any(|(t, p)| t == topic && *p == partition) {
                too_large_code
            } else if stored {
                NONE
            } else {
                failed
            }
        })
    }

    /// Offsets of one group: the requested partitions (unknown ones as -1) or all when `None`.
    fn fetch_offsets(
        &self,
        group_id: &str,
        requested: Option<Vec<(String, Vec<i32>)>>,
    ) -> TopicOffsets {
        let group = self.group(group_id);
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

    fn handle_offset_fetch(
        &self,
        req: OffsetFetchRequest,
        api_version: i16,
    ) -> OffsetFetchResponse {
        let unavailable = self.is_shutting_down();
        let error = code(ResponseError::CoordinatorNotAvailable);
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
                    if unavailable {
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

    // ---------------------------------------------------------------- admin

    fn handle_list(&self, req: ListGroupsRequest, api_version: i16) -> ListGroupsResponse {
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
        let groups: Vec<_> = self.groups.lock().values().cloned().collect();
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
        ListGroupsResponse::default().with_groups(listed)
    }

    fn handle_describe(
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
                let Some(group) = self.group(group_id) else {
                    return described.with_group_state(sb(GroupState::Dead.as_str()));
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

    fn delete_group(&self, group_id: &str) -> i16 {
        if self.is_shutting_down() {
            return code(ResponseError::CoordinatorNotAvailable);
        }
        if group_id.is_empty() {
            return code(ResponseError::InvalidGroupId);
        }
        // Map lock first, then the group's: the map entry is removed under both.
        let mut groups = self.groups.lock();
        let Some(group_arc) = groups.get(group_id).cloned() else {
            return code(ResponseError::GroupIdNotFound);
        };
        let mut group = group_arc.lock();
        match group.state {
            GroupState::Dead => return code(ResponseError::GroupIdNotFound),
            GroupState::Empty => {}
            _ => return code(ResponseError::NonEmptyGroup),
        }
        let mut tombstones: Vec<OffsetsRecord> = group
            .offsets
            .keys()
            .map(|(t, p)| (record::encode_offset_key(group_id, t, *p), None))
            .collect();
        tombstones.push((record::encode_group_key(group_id), None));
        if let Err(e) = self.append(group_id, tombstones) {
            tracing::warn!(group = group_id, error = %e, "group tombstones not written");
            return code(ResponseError::CoordinatorNotAvailable);
        }
        group.offsets.clear();
        group.transition(GroupState::Dead, now_ms());
        group.rebalance_epoch += 1;
        drop(group);
        groups.remove(group_id);
        NONE
    }

    // ---------------------------------------------------------------- load

    fn load(self: &Arc<Self>) -> Result<(), OffsetsLogError> {
        let mut offsets: HashMap<String, HashMap<(String, i32), OffsetValue>> = HashMap::new();
        let mut metadata: HashMap<String, Option<record::GroupMetadataValue>> = HashMap::new();
        for partition in 0..self.config.offsets_topic_num_partitions.max(1) {
            for (key, value) in self.log.read_all(partition)? {
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
                            offsets.entry(group).or_default().insert((topic, p), v);
                        }
                        Err(e) => {
                            tracing::warn!(partition, error = %e, "skipping undecodable offset")
                        }
                    },
                    (
                        RecordKey::Offset {
                            group,
                            topic,
                            partition: p,
                        },
                        None,
                    ) => {
                        if let Some(o) = offsets.get_mut(&group) {
                            o.remove(&(topic, p));
                        }
                    }
                    (RecordKey::GroupMetadata { group }, Some(value)) => {
                        match record::decode_group_value(&value) {
                            Ok(v) => {
                                metadata.insert(group, Some(v));
                            }
                            Err(e) => tracing::warn!(
                                partition,
                                error = %e,
                                "skipping undecodable group metadata"
                            ),
                        }
                    }
                    (RecordKey::GroupMetadata { group }, None) => {
                        metadata.insert(group, None);
                    }
                }
            }
        }
        let runtime = tokio::runtime::Handle::try_current().ok();
        let now = now_ms();
        // Groups with the (member id, incarnation) of each restored member, for their timers.
        type RestoredGroup = (Arc<Mutex<Group>>, Vec<(String, u64)>);
        let mut restored: Vec<RestoredGroup> = Vec::new();
        {
            let mut groups = self.groups.lock();
            // A group whose offsets and metadata were all tombstoned is gone.
            let ids: std::collections::HashSet<String> = offsets
                .iter()
                .filter(|(_, o)| !o.is_empty())
                .map(|(k, _)| k.clone())
                .chain(
                    metadata
                        .iter()
                        .filter(|(_, v)| v.is_some())
                        .map(|(k, _)| k.clone()),
                )
                .collect();
            for id in ids {
                let mut group = Group::new(id.clone(), now);
                group.offsets = offsets
                    .remove(&id)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                let mut timers = Vec::new();
                if let Some(Some(m)) = metadata.remove(&id) {
                    group.generation = m.generation;
                    group.protocol_type = (!m.protocol_type.is_empty()).then_some(m.protocol_type);
                    group.protocol = m.protocol;
                    if runtime.is_some() && !m.members.is_empty() {
                        group.leader = m.leader;
                        for mm in m.members {
                            let incarnation = self.next_incarnation();
                            let protocol = group.protocol.clone().unwrap_or_default();
                            if let Some(instance) = &mm.group_instance_id {
                                group
                                    .static_members
                                    .insert(instance.clone(), mm.member_id.clone());
                            }
                            timers.push((mm.member_id.clone(), incarnation));
                            group.members.insert(
                                mm.member_id.clone(),
                                Member {
                                    id: mm.member_id,
                                    instance_id: mm.group_instance_id,
                                    client_id: mm.client_id,
                                    client_host: mm.client_host,
                                    session_timeout_ms: mm.session_timeout_ms,
                                    rebalance_timeout_ms: mm.rebalance_timeout_ms,
                                    protocol_type: group.protocol_type.clone().unwrap_or_default(),
                                    protocols: vec![(protocol, mm.subscription)],
                                    assignment: mm.assignment,
                                    awaiting_join: None,
                                    awaiting_sync: None,
                                    last_heartbeat: Instant::now(),
                                    incarnation,
                                },
                            );
                        }
                        group.state = GroupState::Stable;
                    } else {
                        group.protocol_type = None;
                        group.protocol = None;
                    }
                }
                let arc = Arc::new(Mutex::new(group));
                groups.insert(id, arc.clone());
                restored.push((arc, timers));
            }
        }
        if let Some(runtime) = runtime {
            for (group_arc, timers) in restored {
                for (member_id, incarnation) in timers {
                    let inner = Arc::downgrade(self);
                    let group_weak = Arc::downgrade(&group_arc);
                    runtime.spawn(session_expiry(inner, group_weak, member_id, incarnation));
                }
            }
        }
        Ok(())
    }
}

/// The body of a member's session timer (see [`Inner::spawn_session_expiry`]).
async fn session_expiry(
    inner: Weak<Inner>,
    group_weak: Weak<Mutex<Group>>,
    member_id: String,
    incarnation: u64,
) {
    loop {
        let deadline = {
            let Some(group_arc) = group_weak.upgrade() else {
                return;
            };
            let group = group_arc.lock();
            match group.members.get(&member_id) {
                Some(m) if m.incarnation == incarnation => m
                    .session_deadline()
                    .unwrap_or_else(|| Instant::now() + ms(m.session_timeout_ms)),
                _ => return,
            }
        };
        tokio::time::sleep_until(deadline).await;
        let (Some(inner), Some(group_arc)) = (inner.upgrade(), group_weak.upgrade()) else {
            return;
        };
        if inner.is_shutting_down() {
            return;
        }
        let mut group = group_arc.lock();
        let expired = match group.members.get(&member_id) {
            Some(m) if m.incarnation == incarnation => {
                m.session_deadline().is_some_and(|d| d <= Instant::now())
            }
            _ => return,
        };
        if expired {
            tracing::info!(group = %group.id, member = %member_id, "session timeout; removing member");
            inner.remove_member_and_update_group(&group_arc, &mut group, &member_id);
            return;
        }
    }
}
