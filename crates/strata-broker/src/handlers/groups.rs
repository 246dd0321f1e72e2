//! Consumer groups: FindCoordinator (this broker coordinates every group) and the classic group
//! protocol, delegated to the `strata-group` coordinator after the checks Kafka makes against the
//! cluster's topics. Transaction coordinators are not served.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;

use crate::broker::Broker;
use crate::handlers::RequestContext;
use crate::handlers::{code, str_bytes};

const KEY_TYPE_GROUP: i8 = 0;

pub async fn find_coordinator(
    broker: &Broker,
    req: FindCoordinatorRequest,
    version: i16,
    _ctx: &RequestContext,
) -> FindCoordinatorResponse {
    let adv = broker.config.advertised();
    let node = BrokerId(broker.config.node_id);
    let (error, message) = if req.key_type == KEY_TYPE_GROUP {
        (code::NONE, None)
    } else {
        (
            code::COORDINATOR_NOT_AVAILABLE,
            Some(str_bytes("Transactions are not supported by this broker")),
        )
    };
    let (node_id, host, port) = if error == code::NONE {
        (node, str_bytes(adv.host.clone()), i32::from(adv.port))
    } else {
        (BrokerId(-1), str_bytes(""), -1)
    };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(node_id)
                    .with_host(host.clone())
                    .with_port(port)
                    .with_error_code(error)
                    .with_error_message(message.clone())
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    FindCoordinatorResponse::default()
        .with_error_code(error)
        .with_error_message(message)
        .with_node_id(node_id)
        .with_host(host)
        .with_port(port)
}

pub async fn join_group(
    broker: &Broker,
    req: JoinGroupRequest,
    version: i16,
    ctx: &RequestContext,
) -> JoinGroupResponse {
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
    _ctx: &RequestContext,
) -> SyncGroupResponse {
    broker.groups.sync_group(req, version).await
}

pub async fn heartbeat(
    broker: &Broker,
    req: HeartbeatRequest,
    version: i16,
    _ctx: &RequestContext,
) -> HeartbeatResponse {
    broker.groups.heartbeat(req, version).await
}

pub async fn leave_group(
    broker: &Broker,
    req: LeaveGroupRequest,
    version: i16,
    _ctx: &RequestContext,
) -> LeaveGroupResponse {
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
    _ctx: &RequestContext,
) -> OffsetCommitResponse {
    let mut answered: Vec<OffsetCommitResponseTopic> = Vec::new();
    for topic in &mut req.topics {
        let partitions = broker
            .metadata
            .topic(&topic.name.0)
            .map_or(0, |meta| meta.partitions);
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
                                .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
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
    _ctx: &RequestContext,
) -> OffsetFetchResponse {
    broker.groups.offset_fetch(req, version).await
}

pub async fn list_groups(
    broker: &Broker,
    req: ListGroupsRequest,
    version: i16,
    _ctx: &RequestContext,
) -> ListGroupsResponse {
    broker.groups.list_groups(req, version).await
}

pub async fn describe_groups(
    broker: &Broker,
    req: DescribeGroupsRequest,
    version: i16,
    _ctx: &RequestContext,
) -> DescribeGroupsResponse {
    broker.groups.describe_groups(req, version).await
}

pub async fn delete_groups(
    broker: &Broker,
    req: DeleteGroupsRequest,
    version: i16,
    _ctx: &RequestContext,
) -> DeleteGroupsResponse {
    broker.groups.delete_groups(req, version).await
}
