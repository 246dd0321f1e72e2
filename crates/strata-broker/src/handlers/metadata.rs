//! Metadata: brokers, controller, topics with their partitions, leaders and in-sync replicas.
//! Creates requested topics that do not exist when `auto.create.topics.enable` and the client
//! allow it, with `num.partitions` and `default.replication.factor`. A write-fenced cluster
//! (`crate::write_fence`) answers v13+ from ordinary clients with REBOOTSTRAP_REQUIRED.

use std::collections::BTreeMap;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use strata_controller::{MetadataImage, NewTopic, TopicImage};
use uuid::Uuid;

use crate::authz::Op;
use crate::broker::{Broker, OFFSETS_TOPIC};
use crate::handlers::RequestContext;
use crate::handlers::{code, str_bytes};
use crate::write_fence;
use strata_kafka::acl::{AclResourceType, CLUSTER_RESOURCE, OPERATIONS_NOT_REQUESTED};
use strata_kafka::now_ms;

pub async fn handle(
    broker: &Broker,
    req: MetadataRequest,
    version: i16,
    ctx: &RequestContext,
) -> MetadataResponse {
    let image = broker.image();
    let brokers: Vec<MetadataResponseBroker> = live_endpoints(broker, &image, &ctx.listener_name)
        .into_iter()
        .map(|(id, host, port, rack)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(str_bytes(host))
                .with_port(i32::from(port))
                .with_rack(rack.map(str_bytes))
        })
        .collect();

    // A fenced cluster sends ordinary clients back to their bootstrap servers (KIP-1102); the
    // top-level error exists from v13 on, older clients learn of the fence from Produce.
    if version >= 13 && !write_fence::sees_metadata(ctx.client_id()) {
        if let Some(fenced) = broker.write_fence.check(now_ms) {
            // Metadata has no error message: the reason goes to the log.
            tracing::debug!(client_id = ctx.client_id(), reason = %fenced.message(), "metadata answered REBOOTSTRAP_REQUIRED");
            return MetadataResponse::default()
                .with_brokers(brokers)
                .with_cluster_id(Some(str_bytes(broker.cluster_id())))
                .with_controller_id(BrokerId(controller_id(broker, &image)))
                .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED)
                .with_error_code(code::REBOOTSTRAP_REQUIRED);
        }
    }

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

    // With an authorizer, all-topic requests list the topics the principal may describe;
    // named ones it may not are TOPIC_AUTHORIZATION_FAILED, whether they exist or not.
    let describable = |name: &str| broker.may_topic(ctx, Op::Describe, name);
    let denied = |name: Option<String>, id: Uuid| {
        MetadataResponseTopic::default()
            .with_error_code(code::TOPIC_AUTHORIZATION_FAILED)
            .with_name(name.map(|n| TopicName(str_bytes(n))))
            .with_topic_id(id)
    };
    let mut topics: Vec<MetadataResponseTopic> = match requested {
        None => image
            .topics
            .values()
            .filter(|t| describable(&t.name))
            .map(|t| describe_topic(&image, t))
            .collect(),
        Some(list) => {
            let mut out = Vec::new();
            for (name, id) in list {
                out.push(match name {
                    Some(name) if !describable(&name) => denied(Some(name), Uuid::nil()),
                    Some(name) => {
                        match lookup_or_create(broker, ctx, &name, allow_auto_create).await {
                            Ok((img, t)) => describe_topic(&img, &t),
                            Err(err) => MetadataResponseTopic::default()
                                .with_error_code(err)
                                .with_name(Some(TopicName(str_bytes(name)))),
                        }
                    }
                    None => match image.topic_by_id(id) {
                        Some(t) if !describable(&t.name) => denied(None, id),
                        Some(t) => describe_topic(&image, t),
                        None => MetadataResponseTopic::default()
                            .with_error_code(code::UNKNOWN_TOPIC_ID)
                            .with_topic_id(id),
                    },
                });
            }
            out
        }
    };

    for t in topics.iter_mut().filter(|t| t.error_code == code::NONE) {
        if let Some(name) = &t.name {
            t.topic_authorized_operations = broker.authorized_operations(
                ctx,
                req.include_topic_authorized_operations,
                AclResourceType::Topic,
                &name.0,
            );
        }
    }
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(broker.cluster_id())))
        .with_controller_id(BrokerId(controller_id(broker, &image)))
        .with_topics(topics)
        .with_cluster_authorized_operations(broker.authorized_operations(
            ctx,
            req.include_cluster_authorized_operations,
            AclResourceType::Cluster,
            CLUSTER_RESOURCE,
        ))
}

/// The id clients send controller-bound admin requests to: the active controller when it is
/// a live broker, else this broker (every broker forwards them).
pub fn controller_id(broker: &Broker, image: &MetadataImage) -> i32 {
    match broker.quorum.leader() {
        Some(id) if image.brokers.get(&id).is_some_and(|b| !b.fenced) => id,
        _ => broker.config.node_id,
    }
}

/// (id, host, port, rack) of every unfenced broker on the listener named `listener` (the one
/// the request came in on), as Kafka answers Metadata and DescribeCluster.
pub fn live_endpoints(
    broker: &Broker,
    image: &MetadataImage,
    listener: &str,
) -> Vec<(i32, String, u16, Option<String>)> {
    let mut out: Vec<(i32, String, u16, Option<String>)> = image
        .live_brokers()
        .filter_map(|b| {
            let e = b.endpoints.iter().find(|e| e.name == listener)?;
            Some((b.id, e.host.clone(), e.port, b.rack.clone()))
        })
        .collect();
    // Before its own registration is applied, a broker still names itself.
    if !out.iter().any(|(id, ..)| *id == broker.config.node_id) && *broker.ready.borrow() {
        let adv = broker
            .config
            .advertised_listeners
            .iter()
            .find(|l| l.name == listener)
            .unwrap_or_else(|| broker.config.advertised());
        out.push((
            broker.config.node_id,
            adv.host.clone(),
            adv.port,
            broker.config.rack.clone(),
        ));
    }
    out
}

async fn lookup_or_create(
    broker: &Broker,
    ctx: &RequestContext,
    name: &str,
    allow_auto_create: bool,
) -> Result<(std::sync::Arc<MetadataImage>, TopicImage), i16> {
    let image = broker.image();
    if let Some(t) = image.topics.get(name) {
        let t = t.clone();
        return Ok((image, t));
    }
    if strata_kafka::topic_name::validate(name).is_err() {
        return Err(code::INVALID_TOPIC_EXCEPTION);
    }
    if !(allow_auto_create && broker.config.auto_create_topics) {
        return Err(code::UNKNOWN_TOPIC_OR_PARTITION);
    }
    if !(broker.may_cluster(ctx, Op::Create) || broker.may_topic(ctx, Op::Create, name)) {
        return Err(code::TOPIC_AUTHORIZATION_FAILED);
    }
    let live = image.live_brokers().count().max(1);
    let rf = broker
        .config
        .default_replication_factor
        .max(1)
        .min(live as i16);
    let topic = NewTopic {
        name: name.to_string(),
        num_partitions: broker.config.num_partitions,
        replication_factor: rf,
        assignments: BTreeMap::new(),
        configs: BTreeMap::new(),
    };
    let within = broker.admin_timeout();
    match broker.link.create_topics(vec![topic], false, within).await {
        Ok(results) => {
            if let Some(Err((code, message))) = results.first() {
                if *code != code::TOPIC_ALREADY_EXISTS {
                    tracing::warn!(topic = name, code, %message, "auto topic creation refused");
                    return Err(*code);
                }
            }
        }
        Err(e) => {
            tracing::warn!(topic = name, error = %e, "auto topic creation failed");
            return Err(code::LEADER_NOT_AVAILABLE);
        }
    }
    broker
        .await_image(within, |img| img.topics.contains_key(name))
        .await;
    let image = broker.image();
    match image.topics.get(name) {
        Some(t) => {
            let t = t.clone();
            Ok((image, t))
        }
        None => Err(code::LEADER_NOT_AVAILABLE),
    }
}

fn describe_topic(image: &MetadataImage, topic: &TopicImage) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|(index, p)| {
            let offline: Vec<BrokerId> = p
                .replicas
                .iter()
                .filter(|id| image.brokers.get(id).is_none_or(|b| b.fenced))
                .map(|id| BrokerId(*id))
                .collect();
            MetadataResponsePartition::default()
                .with_error_code(if p.leader < 0 {
                    code::LEADER_NOT_AVAILABLE
                } else {
                    code::NONE
                })
                .with_partition_index(*index)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|id| BrokerId(*id)).collect())
                .with_isr_nodes(p.isr.iter().map(|id| BrokerId(*id)).collect())
                .with_offline_replicas(offline)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.name == OFFSETS_TOPIC)
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}
