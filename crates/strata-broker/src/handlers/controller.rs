//! The controller's APIs, served on CONTROLLER listeners: BrokerRegistration, BrokerHeartbeat,
//! AlterPartition and AllocateProducerIds from brokers (under an authorizer the sender needs
//! ClusterAction on the cluster, as in Kafka), answered by the quorum when this node is the
//! active controller and with NOT_CONTROLLER otherwise; and DescribeQuorum, served on
//! every listener (a node that is not the leader asks the leader, which knows the replicas'
//! progress).

use std::time::Duration;

use kafka_protocol::messages::alter_partition_response::{
    PartitionData as AlterPartitionData, TopicData as AlterTopicData,
};
use kafka_protocol::messages::describe_quorum_response::{
    Listener as QuorumListener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::*;
use strata_controller::{ControllerError, Endpoint, RegisterBroker};

use crate::authz::Op;
use crate::broker::Broker;
use crate::cluster::link::security_protocol_name;
use crate::handlers::{code, str_bytes, RequestContext};

/// The error code of a failed controller call.
pub fn error_code(e: &ControllerError) -> i16 {
    match e {
        ControllerError::NotController { .. } => code::NOT_CONTROLLER,
        ControllerError::Kafka { code, .. } => *code,
        ControllerError::Timeout(_) => code::REQUEST_TIMED_OUT,
    }
}

/// A message for a failed controller call.
pub fn error_message(e: &ControllerError) -> String {
    match e {
        ControllerError::Kafka { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn not_active(broker: &Broker) -> bool {
    !broker.quorum.is_active()
}

/// May the sender use the node-only APIs (ClusterAction on the cluster)?
fn from_a_node(broker: &Broker, ctx: &RequestContext) -> bool {
    broker.may_cluster(ctx, Op::ClusterAction)
}

pub async fn broker_registration(
    broker: &Broker,
    req: BrokerRegistrationRequest,
    _version: i16,
    ctx: &RequestContext,
) -> BrokerRegistrationResponse {
    let resp = BrokerRegistrationResponse::default().with_broker_epoch(-1);
    if !from_a_node(broker, ctx) {
        return resp.with_error_code(code::CLUSTER_AUTHORIZATION_FAILED);
    }
    if not_active(broker) {
        return resp.with_error_code(code::NOT_CONTROLLER);
    }
    if req.cluster_id.as_str() != broker.cluster_id() {
        return resp.with_error_code(INCONSISTENT_CLUSTER_ID);
    }
    let reg = RegisterBroker {
        broker_id: req.broker_id.0,
        incarnation_id: req.incarnation_id,
        rack: req.rack.map(|r| r.to_string()),
        endpoints: req
            .listeners
            .iter()
            .map(|l| Endpoint {
                name: l.name.to_string(),
                host: l.host.to_string(),
                port: l.port,
                security_protocol: security_protocol_name(l.security_protocol).to_string(),
            })
            .collect(),
    };
    match broker.quorum.register_broker(reg).await {
        Ok(epoch) => resp.with_error_code(code::NONE).with_broker_epoch(epoch),
        Err(e) => resp.with_error_code(error_code(&e)),
    }
}

const INCONSISTENT_CLUSTER_ID: i16 = 104;

pub async fn broker_heartbeat(
    broker: &Broker,
    req: BrokerHeartbeatRequest,
    _version: i16,
    ctx: &RequestContext,
) -> BrokerHeartbeatResponse {
    let resp = BrokerHeartbeatResponse::default().with_is_fenced(true);
    if !from_a_node(broker, ctx) {
        return resp.with_error_code(code::CLUSTER_AUTHORIZATION_FAILED);
    }
    if not_active(broker) {
        return resp.with_error_code(code::NOT_CONTROLLER);
    }
    match broker
        .quorum
        .heartbeat(
            req.broker_id.0,
            req.broker_epoch,
            req.current_metadata_offset.max(0) as u64,
            req.want_fence,
            req.want_shut_down,
        )
        .await
    {
        Ok(r) => resp
            .with_error_code(code::NONE)
            .with_is_caught_up(r.is_caught_up)
            .with_is_fenced(r.is_fenced)
            .with_should_shut_down(r.should_shut_down),
        Err(e) => resp.with_error_code(error_code(&e)),
    }
}

pub async fn alter_partition(
    broker: &Broker,
    req: AlterPartitionRequest,
    version: i16,
    ctx: &RequestContext,
) -> AlterPartitionResponse {
    if !from_a_node(broker, ctx) {
        return AlterPartitionResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED);
    }
    if not_active(broker) {
        return AlterPartitionResponse::default().with_error_code(code::NOT_CONTROLLER);
    }
    let mut topics = Vec::new();
    for t in req.topics {
        let mut parts = Vec::new();
        for p in t.partitions {
            let isr: Vec<i32> = if version >= 3 {
                p.new_isr_with_epochs
                    .iter()
                    .map(|b| b.broker_id.0)
                    .collect()
            } else {
                p.new_isr.iter().map(|b| b.0).collect()
            };
            let out = AlterPartitionData::default().with_partition_index(p.partition_index);
            let result = broker
                .quorum
                .alter_partition(
                    req.broker_id.0,
                    req.broker_epoch,
                    t.topic_id,
                    p.partition_index,
                    p.leader_epoch,
                    p.partition_epoch,
                    isr,
                )
                .await;
            parts.push(match result {
                Ok(state) => out
                    .with_error_code(code::NONE)
                    .with_leader_id(state.leader.into())
                    .with_leader_epoch(state.leader_epoch)
                    .with_isr(state.isr.into_iter().map(Into::into).collect())
                    .with_partition_epoch(state.partition_epoch),
                Err(e) => out.with_error_code(error_code(&e)),
            });
        }
        topics.push(
            AlterTopicData::default()
                .with_topic_id(t.topic_id)
                .with_partitions(parts),
        );
    }
    AlterPartitionResponse::default()
        .with_error_code(code::NONE)
        .with_topics(topics)
}

pub async fn allocate_producer_ids(
    broker: &Broker,
    req: AllocateProducerIdsRequest,
    _version: i16,
    ctx: &RequestContext,
) -> AllocateProducerIdsResponse {
    let resp = AllocateProducerIdsResponse::default().with_producer_id_start((-1).into());
    if !from_a_node(broker, ctx) {
        return resp.with_error_code(code::CLUSTER_AUTHORIZATION_FAILED);
    }
    if not_active(broker) {
        return resp.with_error_code(code::NOT_CONTROLLER);
    }
    match broker
        .quorum
        .allocate_producer_ids(req.broker_id.0, req.broker_epoch)
        .await
    {
        Ok((start, len)) => resp
            .with_error_code(code::NONE)
            .with_producer_id_start(start.into())
            .with_producer_id_len(len),
        Err(e) => resp.with_error_code(error_code(&e)),
    }
}

fn local_describe(broker: &Broker) -> DescribeQuorumResponse {
    let q = broker.quorum.describe();
    let replica = |r: &strata_controller::ReplicaState| {
        ReplicaState::default()
            .with_replica_id(r.replica_id.into())
            .with_log_end_offset(r.log_end_offset)
            .with_last_fetch_timestamp(r.last_fetch_timestamp)
            .with_last_caught_up_timestamp(r.last_caught_up_timestamp)
    };
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_error_code(code::NONE)
        .with_leader_id(q.leader_id.into())
        .with_leader_epoch(q.leader_epoch)
        .with_high_watermark(q.high_watermark)
        .with_current_voters(q.voters.iter().map(replica).collect())
        .with_observers(q.observers.iter().map(replica).collect());
    let listener = broker
        .config
        .cluster
        .controller_listener_names
        .first()
        .cloned()
        .unwrap_or_else(|| "CONTROLLER".to_string());
    let nodes = broker
        .config
        .cluster
        .voters
        .iter()
        .filter_map(|(id, addr)| {
            let (host, port) = addr.rsplit_once(':')?;
            Some(Node::default().with_node_id((*id).into()).with_listeners(
                vec![QuorumListener::default()
                        .with_name(str_bytes(listener.clone()))
                        .with_host(str_bytes(host.trim_matches(['[', ']'])))
                        .with_port(port.parse().ok()?)],
            ))
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_error_code(code::NONE)
        .with_topics(vec![TopicData::default()
            .with_topic_name(str_bytes("__cluster_metadata").into())
            .with_partitions(vec![partition])])
        .with_nodes(nodes)
}

pub async fn describe_quorum(
    broker: &Broker,
    req: DescribeQuorumRequest,
    version: i16,
    ctx: &RequestContext,
) -> DescribeQuorumResponse {
    if !broker.may_cluster(ctx, Op::Describe) {
        return DescribeQuorumResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(str_bytes(crate::handlers::acls::CLUSTER_DENIED)));
    }
    let asks_metadata = req.topics.iter().any(|t| {
        t.topic_name.0.as_str() == "__cluster_metadata"
            && t.partitions.iter().any(|p| p.partition_index == 0)
    });
    if !asks_metadata {
        return DescribeQuorumResponse::default().with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
    }
    let result = broker
        .link
        .call(
            Duration::from_secs(5),
            || async { Ok(local_describe(broker)) },
            |_| req.clone(),
            |r: DescribeQuorumResponse| Ok(r),
        )
        .await;
    let _ = version;
    match result {
        Ok(r) => r,
        Err(_) => local_describe(broker),
    }
}
