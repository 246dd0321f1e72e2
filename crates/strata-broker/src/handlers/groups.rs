//! Consumer groups: FindCoordinator (a group's coordinator is the leader of its
//! `__consumer_offsets` partition) and the classic group protocol, delegated to the
//! `strata-group` coordinator after the checks Kafka makes against the cluster's topics; the
//! coordinator answers NOT_COORDINATOR for groups of partitions this broker does not lead.
//! Transaction coordinators are not served. A write-fenced cluster refuses the group writes of
//! ordinary clients (see [`fenced_group_write`]). With an authorizer, groups need READ to
//! join and commit (and READ on the committed topics), DESCRIBE to be found, listed and
//! described, DELETE to be deleted.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strata_controller::NewTopic;

use crate::authz::Op;
use crate::broker::{Broker, OFFSETS_TOPIC};
use crate::handlers::metadata::live_endpoints;
use crate::handlers::RequestContext;
use crate::handlers::{code, str_bytes};
use crate::write_fence;
use strata_kafka::acl::{AclResourceType, OPERATIONS_NOT_REQUESTED};
use strata_kafka::now_ms;

const KEY_TYPE_GROUP: i8 = 0;

/// The offsets topic, created on first use (as Kafka does) with
/// `offsets.topic.num.partitions` and `offsets.topic.replication.factor`; creation is refused
/// until that many brokers are live, and FindCoordinator answers COORDINATOR_NOT_AVAILABLE
/// meanwhile, so clients retry.
pub async fn ensure_offsets_topic(broker: &Broker) -> bool {
    if broker.image().topics.contains_key(OFFSETS_TOPIC) {
        return true;
    }
    let mut configs = BTreeMap::new();
    configs.insert("cleanup.policy".to_string(), "compact".to_string());
    configs.insert("segment.bytes".to_string(), "104857600".to_string());
    let topic = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        num_partitions: broker.config.offsets_topic_num_partitions,
        replication_factor: broker
            .config
            .cluster
            .offsets_topic_replication_factor
            .max(1),
        assignments: BTreeMap::new(),
        configs,
    };
    let within = Duration::from_secs(10);
    match broker.link.create_topics(vec![topic], false, within).await {
        Ok(results) => match results.first() {
            Some(Err((code, message))) if *code != code::TOPIC_ALREADY_EXISTS => {
                tracing::info!(code, %message, "the offsets topic cannot be created yet");
                return false;
            }
            _ => {}
        },
        Err(e) => {
            tracing::info!(error = %e, "the offsets topic cannot be created yet");
            return false;
        }
    }
    broker
        .await_image(within, |img| img.topics.contains_key(OFFSETS_TOPIC))
        .await
}

/// The coordinator of `group`: the leader of its offsets partition, on the listener the
/// request came in on.
fn coordinator_of(broker: &Broker, group: &str, listener: &str) -> Option<(i32, String, u16)> {
    let image = broker.image();
    let partition = broker.groups.partition_for(group);
    let leader = image.partition(OFFSETS_TOPIC, partition)?.leader;
    if leader < 0 {
        return None;
    }
    live_endpoints(broker, &image, listener)
        .into_iter()
        .find(|(id, ..)| *id == leader)
        .map(|(id, host, port, _)| (id, host, port))
}

pub async fn find_coordinator(
    broker: &Broker,
    req: FindCoordinatorRequest,
    version: i16,
    ctx: &RequestContext,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if version >= 4 {
        req.coordinator_keys.clone()
    } else {
        vec![req.key.clone()]
    };
    let ready = req.key_type != KEY_TYPE_GROUP || ensure_offsets_topic(broker).await;
    let answer = |key: &str| -> (i16, Option<StrBytes>, BrokerId, StrBytes, i32) {
        if req.key_type == KEY_TYPE_GROUP && !broker.may_group(ctx, Op::Describe, key) {
            return (
                code::GROUP_AUTHORIZATION_FAILED,
                None,
                BrokerId(-1),
                str_bytes(""),
                -1,
            );
        }
        if req.key_type != KEY_TYPE_GROUP {
            return (
                code::COORDINATOR_NOT_AVAILABLE,
                Some(str_bytes("Transactions are not supported by this broker")),
                BrokerId(-1),
                str_bytes(""),
                -1,
            );
        }
        match ready
            .then(|| coordinator_of(broker, key, &ctx.listener_name))
            .flatten()
        {
            Some((id, host, port)) => (
                code::NONE,
                None,
                BrokerId(id),
                str_bytes(host),
                i32::from(port),
            ),
            None => (
                code::COORDINATOR_NOT_AVAILABLE,
                Some(str_bytes("The coordinator is not available.")),
                BrokerId(-1),
                str_bytes(""),
                -1,
            ),
        }
    };
    if version >= 4 {
        let coordinators = keys
            .into_iter()
            .map(|key| {
                let (error, message, node_id, host, port) = answer(key.as_str());
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(node_id)
                    .with_host(host)
                    .with_port(port)
                    .with_error_code(error)
                    .with_error_message(message)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (error, message, node_id, host, port) = answer(req.key.as_str());
    FindCoordinatorResponse::default()
        .with_error_code(error)
        .with_error_message(message)
        .with_node_id(node_id)
        .with_host(host)
        .with_port(port)
}

/// The error a group write gets on a write-fenced cluster (`crate::write_fence`), None when it
/// may proceed. COORDINATOR_NOT_AVAILABLE, because both client families treat it as "find the
/// coordinator again and retry" without giving up on the group: the Java consumer marks the
/// coordinator unknown and retries JoinGroup / SyncGroup after FindCoordinator, and an
/// OffsetCommit failure with it is a RetriableCommitFailedException (commitSync retries until
/// its timeout); librdkafka re-queries the coordinator and retries the join and the commit.
/// (REBALANCE_IN_PROGRESS would be a protocol lie outside a rebalance and makes the Java
/// consumer rejoin at once, in a tight loop.) The consumer stays in its group on the side it
/// is, and resumes once it re-bootstraps to the active cluster or the fence is lifted.
/// `offsets` marks an OffsetCommit: the failover's own clients may still commit (the final
/// checkpoint writes the group offsets onto the fenced standby).
fn fenced_group_write(broker: &Broker, ctx: &RequestContext, offsets: bool) -> Option<i16> {
    broker.write_fence.check(now_ms)?;
    if offsets && write_fence::may_commit_offsets(ctx.client_id()) {
        return None;
    }
    Some(code::COORDINATOR_NOT_AVAILABLE)
}

pub async fn join_group(
    broker: &Broker,
    req: JoinGroupRequest,
    version: i16,
    ctx: &RequestContext,
) -> JoinGroupResponse {
    let denied = (!broker.may_group(ctx, Op::Read, &req.group_id.0))
        .then_some(code::GROUP_AUTHORIZATION_FAILED);
    if let Some(error) = denied.or_else(|| fenced_group_write(broker, ctx, false)) {
        return JoinGroupResponse::default()
            .with_error_code(error)
            .with_generation_id(-1)
            .with_member_id(req.member_id)
            // Nullable from v7; earlier versions encode a missing protocol as "".
            .with_protocol_name((version < 7).then(|| str_bytes("")));
    }
    let client = strata_group::ClientInfo {
        client_id: ctx.client_id().to_string(),
        client_host: format!("/{}", ctx.peer.ip()),
    };
    broker.groups.join_group_from(req, version, client).await
}

pub async fn sync_group(
    broker: &Broker,
    req: SyncGroupRequest,
    version: i16,
    ctx: &RequestContext,
) -> SyncGroupResponse {
    if !broker.may_group(ctx, Op::Read, &req.group_id.0) {
        return SyncGroupResponse::default().with_error_code(code::GROUP_AUTHORIZATION_FAILED);
    }
    if let Some(error) = fenced_group_write(broker, ctx, false) {
        return SyncGroupResponse::default().with_error_code(error);
    }
    broker.groups.sync_group(req, version).await
}

pub async fn heartbeat(
    broker: &Broker,
    req: HeartbeatRequest,
    version: i16,
    ctx: &RequestContext,
) -> HeartbeatResponse {
    if !broker.may_group(ctx, Op::Read, &req.group_id.0) {
        return HeartbeatResponse::default().with_error_code(code::GROUP_AUTHORIZATION_FAILED);
    }
    broker.groups.heartbeat(req, version).await
}

pub async fn leave_group(
    broker: &Broker,
    req: LeaveGroupRequest,
    version: i16,
    ctx: &RequestContext,
) -> LeaveGroupResponse {
    if !broker.may_group(ctx, Op::Read, &req.group_id.0) {
        return LeaveGroupResponse::default().with_error_code(code::GROUP_AUTHORIZATION_FAILED);
    }
    broker.groups.leave_group(req, version).await
}

/// OffsetCommit, checked against the cluster's topics first as Kafka's `KafkaApis` does: a
/// partition of a topic that does not exist, or beyond the topic's partition count, is answered
/// UNKNOWN_TOPIC_OR_PARTITION and never reaches the coordinator; when no partition is left the
/// coordinator is not asked at all (so no group comes into being).
pub async fn offset_commit(
    broker: &Broker,
    mut req: OffsetCommitRequest,
    version: i16,
    ctx: &RequestContext,
) -> OffsetCommitResponse {
    let denied = (!broker.may_group(ctx, Op::Read, &req.group_id.0))
        .then_some(code::GROUP_AUTHORIZATION_FAILED);
    if let Some(error) = denied.or_else(|| fenced_group_write(broker, ctx, true)) {
        return OffsetCommitResponse::default().with_topics(
            req.topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(error)
                        })
                        .collect();
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                })
                .collect(),
        );
    }
    let mut answered: Vec<OffsetCommitResponseTopic> = Vec::new();
    for topic in &mut req.topics {
        // Committing needs READ on the topic too; refused partitions never reach the group.
        let (partitions, refusal) = if broker.may_topic(ctx, Op::Read, &topic.name.0) {
            let count = broker
                .image()
                .topics
                .get(topic.name.0.as_str())
                .map_or(0, |meta| meta.partitions.len() as i32);
            (count, code::UNKNOWN_TOPIC_OR_PARTITION)
        } else {
            (0, code::TOPIC_AUTHORIZATION_FAILED)
        };
        let (known, unknown) = std::mem::take(&mut topic.partitions)
            .into_iter()
            .partition(|p| (0..partitions).contains(&p.partition_index));
        topic.partitions = known;
        if unknown.is_empty() {
            continue;
        }
        answered.push(
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(
                    unknown
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(refusal)
                        })
                        .collect(),
                ),
        );
    }
    req.topics.retain(|t| !t.partitions.is_empty());
    if req.topics.is_empty() {
        return OffsetCommitResponse::default().with_topics(answered);
    }
    let mut resp = broker.groups.offset_commit(req, version).await;
    // Kafka's response builder: the coordinator's partitions join the topic already answered.
    for topic in std::mem::take(&mut resp.topics) {
        match answered.iter_mut().find(|t| t.name == topic.name) {
            Some(t) => t.partitions.extend(topic.partitions),
            None => answered.push(topic),
        }
    }
    resp.with_topics(answered)
}

pub async fn offset_fetch(
    broker: &Broker,
    req: OffsetFetchRequest,
    version: i16,
    ctx: &RequestContext,
) -> OffsetFetchResponse {
    if !broker.has_authorizer() {
        return broker.groups.offset_fetch(req, version).await;
    }
    if version < 8 && !broker.may_group(ctx, Op::Describe, &req.group_id.0) {
        return offset_fetch_denied(version);
    }
    // DESCRIBE on the group, then on each topic: a named topic the principal may not describe
    // is answered TOPIC_AUTHORIZATION_FAILED, an all-topics fetch leaves it out (Kafka's rule).
    let named = if version >= 8 {
        req.groups.first().is_some_and(|g| g.topics.is_some())
    } else {
        req.topics.is_some()
    };
    let mut resp = broker.groups.offset_fetch(req, version).await;
    let topic_allowed = |name: &str| broker.may_topic(ctx, Op::Describe, name);
    if version >= 8 {
        for g in &mut resp.groups {
            if !broker.may_group(ctx, Op::Describe, &g.group_id.0) {
                g.error_code = code::GROUP_AUTHORIZATION_FAILED;
                g.topics.clear();
                continue;
            }
            g.topics.retain_mut(|t| {
                let allowed = topic_allowed(&t.name.0);
                for p in t.partitions.iter_mut().filter(|_| !allowed) {
                    p.committed_offset = -1;
                    p.metadata = None;
                    p.error_code = code::TOPIC_AUTHORIZATION_FAILED;
                }
                allowed || named
            });
        }
        return resp;
    }
    resp.topics.retain_mut(|t| {
        let allowed = topic_allowed(&t.name.0);
        for p in t.partitions.iter_mut().filter(|_| !allowed) {
            p.committed_offset = -1;
            p.metadata = None;
            p.error_code = code::TOPIC_AUTHORIZATION_FAILED;
        }
        allowed || named
    });
    resp
}

/// The group answers of a v0-v7 OffsetFetch of a group the principal may not describe.
fn offset_fetch_denied(version: i16) -> OffsetFetchResponse {
    // The top-level error exists from v2 on; v0-v1 clients see an empty answer.
    let resp = OffsetFetchResponse::default();
    if version >= 2 {
        resp.with_error_code(code::GROUP_AUTHORIZATION_FAILED)
    } else {
        resp
    }
}

pub async fn list_groups(
    broker: &Broker,
    req: ListGroupsRequest,
    version: i16,
    ctx: &RequestContext,
) -> ListGroupsResponse {
    let mut resp = broker.groups.list_groups(req, version).await;
    // DESCRIBE on the cluster lists every group; else the groups the principal may describe.
    if !broker.may_cluster(ctx, Op::Describe) {
        resp.groups
            .retain(|g| broker.may_group(ctx, Op::Describe, &g.group_id.0));
    }
    resp
}

pub async fn describe_groups(
    broker: &Broker,
    mut req: DescribeGroupsRequest,
    version: i16,
    ctx: &RequestContext,
) -> DescribeGroupsResponse {
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut req.groups)
        .into_iter()
        .partition(|g| broker.may_group(ctx, Op::Describe, &g.0));
    req.groups = allowed;
    let include_operations = req.include_authorized_operations;
    let mut resp = if req.groups.is_empty() {
        DescribeGroupsResponse::default()
    } else {
        broker.groups.describe_groups(req, version).await
    };
    for g in &mut resp.groups {
        g.authorized_operations = broker.authorized_operations(
            ctx,
            include_operations,
            AclResourceType::Group,
            &g.group_id.0,
        );
    }
    resp.groups.extend(denied.into_iter().map(|g| {
        DescribedGroup::default()
            .with_group_id(g)
            .with_error_code(code::GROUP_AUTHORIZATION_FAILED)
            .with_authorized_operations(OPERATIONS_NOT_REQUESTED)
    }));
    resp
}

pub async fn delete_groups(
    broker: &Broker,
    mut req: DeleteGroupsRequest,
    version: i16,
    ctx: &RequestContext,
) -> DeleteGroupsResponse {
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut req.groups_names)
        .into_iter()
        .partition(|g| broker.may_group(ctx, Op::Delete, &g.0));
    req.groups_names = allowed;
    let mut resp = if req.groups_names.is_empty() {
        DeleteGroupsResponse::default()
    } else {
        broker.groups.delete_groups(req, version).await
    };
    resp.results.extend(denied.into_iter().map(|g| {
        DeletableGroupResult::default()
            .with_group_id(g)
            .with_error_code(code::GROUP_AUTHORIZATION_FAILED)
    }));
    resp
}

/// OffsetDelete (KIP-496), as Kafka's `handleOffsetDeleteRequest` checks it: DELETE on the group
/// (else GROUP_AUTHORIZATION_FAILED for the whole request), READ on each topic (else
/// TOPIC_AUTHORIZATION_FAILED for its partitions), partitions that exist (else
/// UNKNOWN_TOPIC_OR_PARTITION); the rest goes to the group's coordinator.
pub async fn offset_delete(
    broker: &Broker,
    req: OffsetDeleteRequest,
    _version: i16,
    ctx: &RequestContext,
) -> OffsetDeleteResponse {
    use kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic;
    use kafka_protocol::messages::offset_delete_response::{
        OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
    };
    let group = req.group_id.0.to_string();
    if !broker.may_group(ctx, Op::Delete, &group) {
        return OffsetDeleteResponse::default().with_error_code(code::GROUP_AUTHORIZATION_FAILED);
    }
    let image = broker.image();
    let mut answers: Vec<((String, i32), i16)> = Vec::new();
    let mut asked: Vec<OffsetDeleteRequestTopic> = Vec::new();
    for topic in &req.topics {
        let name = topic.name.0.to_string();
        let readable = broker.may_topic(ctx, Op::Read, &name);
        let meta = image.topics.get(&name);
        let mut kept = topic.clone();
        kept.partitions.clear();
        for p in &topic.partitions {
            let error = if !readable {
                code::TOPIC_AUTHORIZATION_FAILED
            } else if !meta.is_some_and(|m| m.partitions.contains_key(&p.partition_index)) {
                code::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                kept.partitions.push(p.clone());
                continue;
            };
            answers.push(((name.clone(), p.partition_index), error));
        }
        if !kept.partitions.is_empty() {
            asked.push(kept);
        }
    }
    drop(image);
    if !asked.is_empty() {
        match broker.groups.offset_delete(&group, &asked).await {
            Ok(outcome) => answers.extend(outcome),
            Err(error) => return OffsetDeleteResponse::default().with_error_code(error),
        }
    }
    // One entry per topic, in the order the request named them.
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    for topic in &req.topics {
        if topics.iter().any(|t| t.name == topic.name) {
            continue;
        }
        let partitions = answers
            .iter()
            .filter(|((t, _), _)| t.as_str() == topic.name.0.as_str())
            .map(|((_, p), error)| {
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(*p)
                    .with_error_code(*error)
            })
            .collect();
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
