//! SyncGroup: followers park until the leader's assignment arrives; the assignment is stored as
//! group metadata and delivered to everyone only once replicated. A failed store answers Kafka's
//! error and starts a new rebalance.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use strata_kafka::now_ms;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::cache::Unowned;
use super::membership::{sync_error, sync_response};
use super::replication::{group_store_error, Answer};
use super::{code, Inner};
use crate::group::{Group, GroupState};
use crate::offsets_log::OffsetsLogError;

type SyncOutcome = Answer<SyncGroupResponse>;

impl Inner {
    pub(super) fn handle_sync(
        self: &Arc<Self>,
        req: SyncGroupRequest,
        api_version: i16,
    ) -> SyncOutcome {
        let fail = |error: ResponseError| Answer::Now(sync_error(code(error)));
        if self.is_shutting_down() {
            return fail(ResponseError::CoordinatorNotAvailable);
        }
        let member_id = req.member_id.to_string();
        let group_arc = match self.group(&req.group_id.0) {
            Ok(Some(group_arc)) => group_arc,
            Ok(None) => return fail(ResponseError::UnknownMemberId),
            // A loading coordinator lost the state of the rebalance: the group starts over at
            // JoinGroup (Kafka's handleSyncGroup).
            Err(Unowned::LoadInProgress) => return fail(ResponseError::RebalanceInProgress),
            Err(unowned) => return fail(unowned.error()),
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
                if !group.is_leader(&member_id) {
                    return Answer::Later(rx);
                }
                let assignments: HashMap<String, Bytes> = req
                    .assignments
                    .into_iter()
                    .map(|a| (a.member_id.to_string(), a.assignment))
                    .collect();
                self.complete_sync(&group_arc, &mut group, assignments, api_version, rx)
            }
        }
    }

    /// The leader's assignment arrived: store it, and once that is replicated hand every
    /// waiting member its part (the leader's own answer comes through `leader_reply`). Until
    /// then the group stays CompletingRebalance, as in Kafka.
    fn complete_sync(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        group: &mut Group,
        mut assignments: HashMap<String, Bytes>,
        api_version: i16,
        leader_reply: oneshot::Receiver<SyncGroupResponse>,
    ) -> SyncOutcome {
        for member in group.members.values_mut() {
            member.assignment = assignments.remove(&member.id).unwrap_or_default();
        }
        let appended = match self.store_group_metadata(group) {
            Ok(appended) => appended,
            Err(e) => {
                self.assignment_not_stored(group_arc, group, &e);
                return Answer::Later(leader_reply);
            }
        };
        let inner = self.clone();
        let group_arc = group_arc.clone();
        let generation = group.generation;
        let epoch = group.rebalance_epoch;
        Answer::replicating(appended, move |outcome| {
            inner.finish_sync(&group_arc, generation, epoch, outcome, api_version);
            Answer::Later(leader_reply)
        })
    }

    /// The assignment of `generation` was replicated (or not). Nothing to do when the group
    /// moved on meanwhile (a rebalance, an unload or a shutdown answered the waiting syncs).
    fn finish_sync(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        generation: i32,
        epoch: u64,
        outcome: Result<(), OffsetsLogError>,
        api_version: i16,
    ) {
        let mut group = group_arc.lock();
        if group.state != GroupState::CompletingRebalance
            || group.generation != generation
            || group.rebalance_epoch != epoch
        {
            return;
        }
        if let Err(e) = outcome {
            self.assignment_not_stored(group_arc, &mut group, &e);
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
            let _ = sync.send(sync_response(&group, assignment, api_version));
        }
    }

    /// Kafka's `resetAndPropagateAssignmentError` plus a new rebalance: the assignment could not
    /// be stored.
    fn assignment_not_stored(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        group: &mut Group,
        e: &OffsetsLogError,
    ) {
        tracing::warn!(group = %group.id, error = %e, "group assignment not stored; rebalancing");
        let error = code(group_store_error(e));
        for member in group.members.values_mut() {
            member.assignment = Bytes::new();
            if let Some(sync) = member.awaiting_sync.take() {
                let _ = sync.send(sync_error(error));
            }
        }
        self.prepare_rebalance(group_arc, group);
    }
}
