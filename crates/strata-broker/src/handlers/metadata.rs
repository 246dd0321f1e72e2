//! Metadata: brokers, controller, topics with their partitions, leaders and in-sync replicas.
//! Creates requested topics that do not exist when `auto.create.topics.enable` and the client
//! allow it, with `num.partitions` and `default.replication.factor`.

use std::collections::BTreeMap;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use crate::broker::{Broker, OFFSETS_TOPIC};
use crate::handlers::RequestContext;
use crate::handlers::{code, str_bytes};
use crate::metadata::TopicMeta;

/// "Not requested" marker for authorized-operations fields.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub async fn handle(
    broker: &Broker,
    req: MetadataRequest,
    version: i16,
    _ctx: &RequestContext,
) -> MetadataResponse {
    let node = broker.config.node_id;
    let adv = broker.config.advertised();
    let brokers = vec![MetadataResponseBroker::default()
        .with_node_id(BrokerId(node))
        .with_host(str_bytes(adv.host.clone()))
        .with_port(i32::from(adv.port))
        .with_rack(broker.config.rack.clone().map(str_bytes))];

    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested: Option<Vec<(Option<String>, Uuid)>> = match req.topics {
        None => None,
        Some(ref t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
                .collect(),
        ),
    };
    let allow_auto_create = version < 4 || req.allow_auto_topic_creation;

    let topics = match requested {
        None => broker
            .metadata
            .topics()
            .iter()
            .map(|t| describe_topic(broker, t, version, req.include_topic_authorized_operations))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|(name, id)| match name {
                Some(name) => lookup_or_create(broker, &name, allow_auto_create)
                    .map(|t| {
                        describe_topic(broker, &t, version, req.include_topic_authorized_operations)
                    })
                    .unwrap_or_else(|err| {
                        MetadataResponseTopic::default()
                            .with_error_code(err)
                            .with_name(Some(TopicName(str_bytes(name))))
                    }),
                None => match broker.metadata.topic_by_id(id) {
                    Some(t) => {
                        describe_topic(broker, &t, version, req.include_topic_authorized_operations)
                    }
                    None => MetadataResponseTopic::default()
                        .with_error_code(code::UNKNOWN_TOPIC_ID)
                        .with_topic_id(id),
                },
            })
            .collect(),
    };

    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(broker.metadata.cluster_id())))
        .with_controller_id(BrokerId(node))
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

fn lookup_or_create(
    broker: &Broker,
    name: &str,
    allow_auto_create: bool,
) -> Result<TopicMeta, i16> {
    if let Some(t) = broker.metadata.topic(name) {
        return Ok(t);
    }
    if strata_kafka::topic_name::validate(name).is_err() {
        return Err(code::INVALID_TOPIC_EXCEPTION);
    }
    if !(allow_auto_create && broker.config.auto_create_topics) {
        return Err(code::UNKNOWN_TOPIC_OR_PARTITION);
    }
    match broker.create_topic(
        name,
        broker.config.num_partitions,
        broker.config.default_replication_factor.max(1),
        BTreeMap::new(),
    ) {
        Ok(Some(t)) => Ok(t),
        // Created concurrently by another request.
        Ok(None) => broker
            .metadata
            .topic(name)
            .ok_or(code::UNKNOWN_TOPIC_OR_PARTITION),
        Err(e) => {
            tracing::error!(topic = name, error = %e, "auto topic creation failed");
            Err(code::KAFKA_STORAGE_ERROR)
        }
    }
}

fn describe_topic(
    broker: &Broker,
    topic: &TopicMeta,
    _version: i16,
    _include_ops: bool,
) -> MetadataResponseTopic {
    let node = BrokerId(broker.config.node_id);
    let partitions = broker
        .partitions
        .of_topic(&topic.name)
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(node)
                .with_leader_epoch(p.leader_epoch())
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.name == OFFSETS_TOPIC)
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}
