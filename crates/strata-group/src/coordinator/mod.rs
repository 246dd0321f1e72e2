//! The group coordinator: answers the classic group APIs from decoded `kafka_protocol` requests,
//! as Apache Kafka's classic `GroupCoordinator` does, for the groups of the `__consumer_offsets`
//! partitions this broker leads. This file holds the public handle and its dispatch; the work is
//! split by concern:
//!
//! - [`cache`]: the groups in memory and the partitions owned, behind one mutex;
//! - [`membership`]: JoinGroup, Heartbeat, LeaveGroup and the rebalance state machine;
//! - [`sync`]: SyncGroup, delivering the leader's assignment once it is replicated;
//! - [`timers`]: the join deadline, session and pending-member timers;
//! - [`offsets`]: OffsetCommit, OffsetFetch and topic-deletion tombstones;
//! - [`admin`]: ListGroups, DescribeGroups, DeleteGroups;
//! - [`loading`]: replaying an offsets partition into groups, and dropping them on unload;
//! - [`replication`]: the write path (append under the group lock, await replication outside it)
//!   and Kafka's mapping of log errors to response errors.
//!
//! Every group lives behind its own mutex; the cache has its own. Lock order is cache, then
//! group; no lock is held across an `.await`. Joins and syncs that must wait for the rest of the
//! group park a oneshot sender in the member and await it outside the lock. Records are appended
//! to the offsets log while holding the group lock (so the log's order per key matches memory);
//! the answer waits until they are replicated. The async methods are cancellation-safe: a dropped
//! join or sync leaves the member in the group, exactly as a client that went silent, and the
//! in-memory effect of a write whose request was dropped still follows its replication.

mod admin;
mod cache;
mod loading;
mod membership;
mod offsets;
mod replication;
mod sync;
mod timers;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;

use self::cache::{GroupCache, Unowned};
use self::membership::{join_error, sync_error};
use crate::group::{Group, GroupState};
use crate::offsets_log::{OffsetsLog, OffsetsLogError};
use crate::{partition_for, GroupConfig};

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

/// A group's committed offsets: (topic, partition, offset).
pub type CommittedOffsets = Vec<(String, i32, i64)>;

/// Handle to the coordinator; clones share the same groups.
#[derive(Clone)]
pub struct GroupCoordinator {
    inner: Arc<Inner>,
}

struct Inner {
    config: GroupConfig,
    log: Arc<dyn OffsetsLog>,
    cache: Mutex<GroupCache>,
    shutting_down: AtomicBool,
    incarnations: AtomicU64,
}

impl GroupCoordinator {
    /// A coordinator that owns no partition yet: call [`GroupCoordinator::load`] (single broker)
    /// or [`GroupCoordinator::load_partition`] for each partition this broker leads.
    pub fn new(config: GroupConfig, log: Arc<dyn OffsetsLog>) -> Self {
        let num_partitions = config.offsets_topic_num_partitions;
        Self {
            inner: Arc::new(Inner {
                config,
                log,
                cache: Mutex::new(GroupCache::new(num_partitions)),
                shutting_down: AtomicBool::new(false),
                incarnations: AtomicU64::new(0),
            }),
        }
    }

    /// Loads every partition of the offsets log and owns them all (a single broker leads every
    /// partition; call once on start). Last value per key wins; tombstones delete. Undecodable
    /// records are skipped with a warning. Restored members get session timers when a tokio
    /// runtime is current; otherwise their groups are restored without members (they rejoin).
    /// Stops at the first partition that cannot be read, which stays unowned.
    pub fn load(&self) -> Result<(), OffsetsLogError> {
        self.inner.load_all()
    }

    /// Replays one partition of `__consumer_offsets` into its groups and owns it (this broker
    /// became its leader). Requests for its groups answer COORDINATOR_LOAD_IN_PROGRESS until the
    /// replay is done. Reads the log on the calling thread. A partition already loaded or being
    /// loaded is left alone; one that is unloaded while loading ends up unowned. When the log
    /// cannot be read the partition stays unowned.
    pub fn load_partition(&self, partition: i32) -> Result<(), OffsetsLogError> {
        self.inner.load_partition(partition)
    }

    /// Drops the groups of one partition from memory and disowns it (this broker stopped leading
    /// it): waiting joins and syncs are answered NOT_COORDINATOR, so that their clients find the
    /// new coordinator, and later requests for these groups answer NOT_COORDINATOR.
    pub fn unload_partition(&self, partition: i32) {
        self.inner.unload_partition(partition)
    }

    /// Whether the partition is owned and loaded.
    pub fn is_loaded(&self, partition: i32) -> bool {
        self.inner.cache.lock().is_loaded(partition)
    }

    /// The partitions owned and loaded, in ascending order (a partition still loading is not
    /// listed).
    pub fn owned_partitions(&self) -> Vec<i32> {
        self.inner.cache.lock().owned_partitions()
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
        self.inner
            .handle_join(req, api_version, client)
            .resolve(|| {
                join_error(
                    &member_id,
                    code(ResponseError::RebalanceInProgress),
                    api_version,
                )
            })
            .await
    }

    /// SyncGroup; followers wait for the leader's assignment, everyone for its replication.
    pub async fn sync_group(&self, req: SyncGroupRequest, api_version: i16) -> SyncGroupResponse {
        self.inner
            .handle_sync(req, api_version)
            .resolve(|| sync_error(code(ResponseError::RebalanceInProgress)))
            .await
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

    /// OffsetCommit; answered once the records are replicated. Offsets become visible (to
    /// OffsetFetch) only then, and not at all when the write failed.
    pub async fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        api_version: i16,
    ) -> OffsetCommitResponse {
        self.inner.clone().offset_commit(req, api_version).await
    }

    /// OffsetFetch: v1-v7 single group, v8+ the `groups` array. Unknown offsets are -1.
    pub async fn offset_fetch(
        &self,
        req: OffsetFetchRequest,
        api_version: i16,
    ) -> OffsetFetchResponse {
        self.inner.handle_offset_fetch(req, api_version)
    }

    /// ListGroups with the states (v4+) and types (v5+) filters: the groups of the partitions
    /// owned; COORDINATOR_LOAD_IN_PROGRESS (with the groups loaded so far) while one is loading.
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

    /// DeleteGroups: only groups without members; writes tombstones for offsets and metadata and
    /// answers once they are replicated.
    pub async fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        _api_version: i16,
    ) -> DeleteGroupsResponse {
        let codes = self.inner.delete_groups(&req.groups_names).await;
        let results = req
            .groups_names
            .into_iter()
            .zip(codes)
            .map(|(group_id, error)| {
                DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(error)
            })
            .collect();
        DeleteGroupsResponse::default().with_results(results)
    }

    /// OffsetDelete for the partitions the broker found to exist and the principal may read:
    /// the group's error, or one per partition (see [`Inner::offset_delete`]).
    pub async fn offset_delete(
        &self,
        group_id: &str,
        topics: &[kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic],
    ) -> Result<Vec<((String, i32), i16)>, i16> {
        self.inner.offset_delete(group_id, topics).await
    }

    /// Committed offsets of a group: (topic, partition, offset, metadata), ordered by topic and
    /// partition. Empty for a group of a partition not owned.
    pub fn committed_offsets(&self, group_id: &str) -> Vec<(String, i32, i64, Option<String>)> {
        let Some(group) = self.inner.loaded_group(group_id) else {
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

    /// The committed offsets of every group this coordinator serves (its partition owned and
    /// loaded): (group, [(topic, partition, offset)]), groups and partitions in order. For
    /// metrics: one pass, no group lock held by the caller.
    pub fn loaded_offsets(&self) -> Vec<(String, CommittedOffsets)> {
        let groups = self.inner.cache.lock().loaded_groups();
        let mut out: Vec<(String, CommittedOffsets)> = groups
            .iter()
            .map(|g| {
                let g = g.lock();
                let offsets = g
                    .offsets
                    .iter()
                    .map(|((topic, partition), v)| (topic.clone(), *partition, v.offset))
                    .collect();
                (g.id.clone(), offsets)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The state of a group, `None` when unknown (or its partition is not owned).
    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.inner.loaded_group(group_id).map(|g| g.lock().state)
    }

    /// Topic deletion: drops offsets of that topic from every group and writes tombstones.
    pub fn remove_topic_offsets(&self, topic: &str) {
        self.inner.remove_topic_offsets(topic)
    }

    /// Shutdown: pending joins and syncs are answered NOT_COORDINATOR so clients look for the
    /// new coordinator; later requests get COORDINATOR_NOT_AVAILABLE; timers stop.
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let groups = self.inner.cache.lock().groups();
        for group in groups {
            let mut group = group.lock();
            group.rebalance_epoch += 1;
            membership::answer_waiters_not_coordinator(&mut group);
        }
    }
}

impl Inner {
    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    fn partition_for(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.config.offsets_topic_num_partitions)
    }

    /// The group if its partition is owned and loaded and the group exists.
    fn group(&self, group_id: &str) -> Result<Option<Arc<Mutex<Group>>>, Unowned> {
        self.cache.lock().get(group_id)
    }

    /// The group, created Empty when missing, if its partition is owned and loaded.
    fn group_or_create(&self, group_id: &str) -> Result<Arc<Mutex<Group>>, Unowned> {
        self.cache.lock().get_or_create(group_id)
    }

    /// Why a request for this group cannot be served here, if it cannot.
    fn unowned(&self, group_id: &str) -> Option<Unowned> {
        self.cache.lock().check(group_id).err()
    }

    fn loaded_group(&self, group_id: &str) -> Option<Arc<Mutex<Group>>> {
        self.group(group_id).ok().flatten()
    }

    fn next_incarnation(&self) -> u64 {
        self.incarnations.fetch_add(1, Ordering::Relaxed)
    }
}
