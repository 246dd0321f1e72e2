//! Group membership, as Kafka's classic coordinator runs it: JoinGroup (dynamic and static
//! members, KIP-394 member ids), Heartbeat, LeaveGroup and the rebalance state machine
//! (prepare, complete the join, remove members), plus the response shapes SyncGroup shares.
//! A static member replaced without a rebalance is answered once the group metadata naming its
//! new id is replicated; if that write fails, the replacement is undone.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use strata_kafka::now_ms;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::cache::Unowned;
use super::replication::{group_store_error, Answer};
use super::{code, ms, sb, ClientInfo, Inner, NONE};
use crate::group::{Group, GroupState, Member, PendingJoin};
use crate::offsets_log::OffsetsLogError;

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

/// What a static member's join sets on the member it replaces (and a failed replacement puts
/// back).
struct StaticIdentity {
    member_id: String,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
}

type JoinOutcome = Answer<JoinGroupResponse>;

fn protocol_name_field(name: Option<&str>, api_version: i16) -> Option<StrBytes> {
    // Nullable from v7; earlier versions encode a missing protocol as "".
    if api_version >= 7 {
        name.map(sb)
    } else {
        Some(sb(name.unwrap_or("")))
    }
}

pub(super) fn join_error(member_id: &str, error: i16, api_version: i16) -> JoinGroupResponse {
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

pub(super) fn sync_error(error: i16) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(error)
}

pub(super) fn sync_response(
    group: &Group,
    assignment: Bytes,
    api_version: i16,
) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default().with_assignment(assignment);
    if api_version >= 5 {
        response.protocol_type = group.protocol_type.as_deref().map(sb);
        response.protocol_name = group.protocol.as_deref().map(sb);
    }
    response
}

impl Inner {
    // ---------------------------------------------------------------- JoinGroup

    pub(super) fn handle_join(
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
        if let Some(unowned) = self.unowned(&group_id) {
            return fail(unowned.error());
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
            match self.group_or_create(&group_id) {
                Ok(g) => g,
                Err(unowned) => return fail(unowned.error()),
            }
        } else {
            match self.group(&group_id) {
                Ok(Some(g)) => g,
                Ok(None) => return fail(ResponseError::UnknownMemberId),
                Err(unowned) => return fail(unowned.error()),
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
                return self
                    .replace_static_member(group_arc, group, &instance, &old_id, new_id, params);
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
    /// place, assignment and leadership; the old id is fenced. In a Stable group with unchanged
    /// protocols there is no rebalance, and the new id is answered once the group metadata that
    /// records it is replicated; if that write fails the replacement is undone (as Kafka does, so
    /// that the client, which keeps its old id, is not fenced) and the join answers the error.
    fn replace_static_member(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        group: &mut Group,
        instance: &str,
        old_id: &str,
        new_id: String,
        params: JoinParams,
    ) -> JoinOutcome {
        let v = params.api_version;
        let Some(member) = group.members.get_mut(old_id) else {
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
        let identity = StaticIdentity {
            member_id: new_id.clone(),
            client_id: params.client.client_id,
            client_host: params.client.client_host,
            session_timeout_ms: params.session_timeout_ms,
            rebalance_timeout_ms: params.rebalance_timeout_ms,
            protocols: params.protocols,
        };
        let Some(previous) = self.rename_member(group_arc, group, instance, old_id, identity)
        else {
            return Answer::Now(join_error(&new_id, code(ResponseError::UnknownMemberId), v));
        };
        match group.state {
            GroupState::Stable if same_protocols => {
                // No rebalance: the member gets the current generation and, through SyncGroup,
                // the assignment of the instance it replaces.
                let leader = group.is_leader(&new_id);
                let response = join_response(group, &new_id, v, leader, leader);
                let appended = match self.store_group_metadata(group) {
                    Ok(appended) => appended,
                    Err(e) => {
                        let error = self
                            .revert_replacement(group_arc, group, instance, &new_id, previous, &e);
                        return Answer::Now(join_error("", error, v));
                    }
                };
                let inner = self.clone();
                let group_arc = group_arc.clone();
                let instance = instance.to_owned();
                Answer::replicating(appended, move |outcome| match outcome {
                    Ok(()) => Answer::Now(response),
                    Err(e) => {
                        let mut group = group_arc.lock();
                        let error = inner.revert_replacement(
                            &group_arc, &mut group, &instance, &new_id, previous, &e,
                        );
                        Answer::Now(join_error("", error, v))
                    }
                })
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

    /// Gives the member `from_id`, registered for `instance`, the identity `to` in place: its
    /// position, assignment and leadership stay, it gets a new incarnation with its own session
    /// timer. Returns the identity it had.
    fn rename_member(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        group: &mut Group,
        instance: &str,
        from_id: &str,
        to: StaticIdentity,
    ) -> Option<StaticIdentity> {
        let index = group.members.get_index_of(from_id)?;
        let (_, mut member) = group.members.shift_remove_index(index)?;
        let new_id = to.member_id.clone();
        let previous = StaticIdentity {
            member_id: std::mem::replace(&mut member.id, to.member_id),
            client_id: std::mem::replace(&mut member.client_id, to.client_id),
            client_host: std::mem::replace(&mut member.client_host, to.client_host),
            session_timeout_ms: std::mem::replace(
                &mut member.session_timeout_ms,
                to.session_timeout_ms,
            ),
            rebalance_timeout_ms: std::mem::replace(
                &mut member.rebalance_timeout_ms,
                to.rebalance_timeout_ms,
            ),
            protocols: std::mem::replace(&mut member.protocols, to.protocols),
        };
        member.last_heartbeat = Instant::now();
        member.incarnation = self.next_incarnation();
        let incarnation = member.incarnation;
        group.members.insert(new_id.clone(), member);
        group.members.move_index(group.members.len() - 1, index);
        group
            .static_members
            .insert(instance.to_owned(), new_id.clone());
        if group.is_leader(from_id) {
            group.leader = Some(new_id.clone());
        }
        self.spawn_session_expiry(group_arc, new_id, incarnation);
        Some(previous)
    }

    /// The group metadata naming a static member's new id was not stored: the member gets its
    /// old identity back, unless it changed since. Returns the join's error code.
    fn revert_replacement(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        group: &mut Group,
        instance: &str,
        new_id: &str,
        previous: StaticIdentity,
        e: &OffsetsLogError,
    ) -> i16 {
        tracing::warn!(group = %group.id, instance, error = %e, "static member replacement not stored; reverting");
        if group.state != GroupState::Dead
            && group.static_members.get(instance).map(String::as_str) == Some(new_id)
        {
            self.rename_member(group_arc, group, instance, new_id, previous);
        }
        code(group_store_error(e))
    }

    pub(super) fn maybe_prepare_rebalance(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        group: &mut Group,
    ) {
        match group.state {
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(group_arc, group)
            }
            GroupState::PreparingRebalance => self.try_complete_join(group),
            GroupState::Dead => {}
        }
    }

    pub(super) fn prepare_rebalance(
        self: &Arc<Self>,
        group_arc: &Arc<Mutex<Group>>,
        group: &mut Group,
    ) {
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

    pub(super) fn try_complete_join(&self, group: &mut Group) {
        if group.state == GroupState::PreparingRebalance
            && !group.in_initial_delay
            && group.all_members_joined()
        {
            self.complete_join(group);
        }
    }

    /// Kafka's `onCompleteJoin`: members that did not rejoin are removed, the generation moves
    /// on, and every waiting join is answered (the leader with the member list).
    pub(super) fn complete_join(&self, group: &mut Group) {
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
            // No one waits for this write (Kafka only logs its failure either).
            match self.store_group_metadata(group) {
                Ok(appended) => appended.detach(&group.id, "group metadata"),
                Err(e) => {
                    tracing::warn!(group = %group.id, error = %e, "group metadata not written")
                }
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
    pub(super) fn remove_member_and_update_group(
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

    // ---------------------------------------------------------------- Heartbeat, LeaveGroup

    pub(super) fn handle_heartbeat(&self, req: HeartbeatRequest, api_version: i16) -> i16 {
        if self.is_shutting_down() {
            return code(ResponseError::CoordinatorNotAvailable);
        }
        let group_arc = match self.group(&req.group_id.0) {
            Ok(Some(group_arc)) => group_arc,
            Ok(None) => return code(ResponseError::UnknownMemberId),
            // Kafka answers heartbeats blindly while the group is loading.
            Err(Unowned::LoadInProgress) => return NONE,
            Err(unowned) => return code(unowned.error()),
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

    pub(super) fn handle_leave(
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
        let group_arc = match self.group(group_id) {
            Ok(Some(group_arc)) => group_arc,
            Ok(None) => return (NONE, vec![unknown; leaving.len()]),
            Err(unowned) => return (code(unowned.error()), Vec::new()),
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
}

/// Answers every waiting join and sync NOT_COORDINATOR, so that their clients look for the
/// group's new coordinator (shutdown, unload).
pub(super) fn answer_waiters_not_coordinator(group: &mut Group) {
    let error = code(ResponseError::NotCoordinator);
    for member in group.members.values_mut() {
        if let Some(join) = member.awaiting_join.take() {
            let _ = join
                .reply
                .send(join_error(&member.id, error, join.api_version));
        }
        if let Some(sync) = member.awaiting_sync.take() {
            let _ = sync.send(sync_error(error));
        }
    }
}
