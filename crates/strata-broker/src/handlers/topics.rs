//! Topic lifecycle: CreateTopics, DeleteTopics and CreatePartitions (increase only). Every new
//! topic's name and configs are validated before anything is created (the name by Kafka's rule in
//! `strata_kafka::topic_name`, configs by `topic_config`); a refused request changes nothing.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use strata_kafka::topic_name;

use crate::broker::{Broker, OFFSETS_TOPIC};
use crate::handlers::configs::created_configs;
use crate::handlers::RequestContext;
use crate::handlers::{code, str_bytes, Refusal};
use crate::topic_config;

/// At most this many partitions are created by one CreateTopics or CreatePartitions request, as
/// Kafka's controller limits it (`MAX_PARTITIONS_PER_BATCH`): a request beyond it (a typo, or a
/// malformed count) is refused as a whole instead of holding the broker while it creates them.
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;
const TOO_MANY_PARTITIONS: &str = "Excessively large number of partitions per request.";

pub async fn create_topics(
    broker: &Broker,
    req: CreateTopicsRequest,
    version: i16,
    _ctx: &RequestContext,
) -> CreateTopicsResponse {
    let requested: i64 = req
        .topics
        .iter()
        .map(|t| match (t.assignments.len(), t.num_partitions) {
            (0, -1) => i64::from(broker.config.num_partitions),
            (0, n) => i64::from(n.max(0)),
            (n, _) => n as i64,
        })
        .sum();
    let mut results = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let checked = if requested > MAX_PARTITIONS_PER_REQUEST {
            Err((code::POLICY_VIOLATION, TOO_MANY_PARTITIONS.to_string()))
        } else {
            check_new_topic(broker, &t)
        };
        match checked {
            Err((code, message)) => {
                result = result
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(message)));
            }
            Ok((partitions, rf, configs)) => {
                let outcome = if req.validate_only {
                    Ok(None)
                } else {
                    broker.create_topic(&name, partitions, rf, configs.clone())
                };
                match outcome {
                    Ok(created) => {
                        if !req.validate_only && created.is_none() {
                            result = result
                                .with_error_code(code::TOPIC_ALREADY_EXISTS)
                                .with_error_message(Some(str_bytes(format!(
                                    "Topic '{name}' already exists."
                                ))));
                        } else {
                            if let Some(t) = &created {
                                result = result.with_topic_id(t.id);
                            }
                            result = result
                                .with_num_partitions(partitions)
                                .with_replication_factor(rf);
                            if version >= 5 {
                                result =
                                    result.with_configs(Some(created_configs(broker, &configs)));
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(topic = %name, error = %e, "create topic failed");
                        result = result
                            .with_error_code(code::KAFKA_STORAGE_ERROR)
                            .with_error_message(Some(str_bytes(e.to_string())));
                    }
                }
            }
        }
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

fn check_new_topic(
    broker: &Broker,
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<(i32, i16, BTreeMap<String, String>), Refusal> {
    let name = t.name.0.as_str();
    topic_name::validate(name).map_err(|m| (code::INVALID_TOPIC_EXCEPTION, m))?;
    if broker.metadata.topic(name).is_some() {
        return Err((
            code::TOPIC_ALREADY_EXISTS,
            format!("Topic '{name}' already exists."),
        ));
    }
    let (partitions, rf) = if t.assignments.is_empty() {
        let partitions = match t.num_partitions {
            -1 => broker.config.num_partitions,
            n if n >= 1 => n,
            _ => {
                return Err((
                    code::INVALID_PARTITIONS,
                    "Number of partitions was set to an invalid non-positive value.".into(),
                ))
            }
        };
        let rf = match t.replication_factor {
            -1 => broker.config.default_replication_factor,
            n if n >= 1 => n,
            _ => {
                return Err((
                    code::INVALID_REPLICATION_FACTOR,
                    "Replication factor must be larger than 0, or -1 to use the default value."
                        .into(),
                ))
            }
        };
        (partitions, rf)
    } else {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err((
                code::INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            ));
        }
        for (i, a) in t.assignments.iter().enumerate() {
            if a.partition_index != i as i32
                || a.broker_ids.is_empty()
                || a.broker_ids.iter().any(|b| b.0 != broker.config.node_id)
            {
                return Err((
                    code::INVALID_REPLICA_ASSIGNMENT,
                    format!(
                        "Invalid replica assignment for partition {}",
                        a.partition_index
                    ),
                ));
            }
        }
        (
            t.assignments.len() as i32,
            t.assignments[0].broker_ids.len() as i16,
        )
    };
    if rf > 1 {
        return Err((
            code::INVALID_REPLICATION_FACTOR,
            format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only 1 broker(s) are registered."),
        ));
    }
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let key = c.name.to_string();
        let Some(value) = c.value.as_ref().map(|v| v.to_string()) else {
            return Err((
                code::INVALID_CONFIG,
                format!("Null value not supported for topic configs: {key}"),
            ));
        };
        topic_config::validate(&key, &value).map_err(|m| (code::INVALID_CONFIG, m))?;
        configs.insert(key, value);
    }
    Ok((partitions, rf, configs))
}

pub async fn delete_topics(
    broker: &Broker,
    req: DeleteTopicsRequest,
    version: i16,
    _ctx: &RequestContext,
) -> DeleteTopicsResponse {
    // v0-v5 name topics in `topic_names`; v6 in `topics` by name or id.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let meta = match &name {
                Some(n) => broker.metadata.topic(n),
                None => broker.metadata.topic_by_id(id),
            };
            let result = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(str_bytes(n))))
                .with_topic_id(id);
            let Some(meta) = meta else {
                let code = if name.is_some() {
                    code::UNKNOWN_TOPIC_OR_PARTITION
                } else {
                    code::UNKNOWN_TOPIC_ID
                };
                return result.with_error_code(code);
            };
            let result = result
                .with_name(Some(TopicName(str_bytes(meta.name.clone()))))
                .with_topic_id(meta.id);
            if !broker.config.delete_topic_enable {
                return result.with_error_code(code::TOPIC_DELETION_DISABLED);
            }
            if meta.name == OFFSETS_TOPIC {
                return result
                    .with_error_code(code::INVALID_REQUEST)
                    .with_error_message(Some(str_bytes("Internal topics cannot be deleted")));
            }
            match broker.delete_topic(&meta.name) {
                Ok(true) => result,
                Ok(false) => result.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION),
                Err(e) => {
                    tracing::error!(topic = %meta.name, error = %e, "delete topic failed");
                    result
                        .with_error_code(code::KAFKA_STORAGE_ERROR)
                        .with_error_message(Some(str_bytes(e.to_string())))
                }
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Broker,
    req: CreatePartitionsRequest,
    _version: i16,
    _ctx: &RequestContext,
) -> CreatePartitionsResponse {
    let added: i64 = req
        .topics
        .iter()
        .filter_map(|t| {
            let current = broker.metadata.topic(&t.name.0)?.partitions;
            Some(i64::from(t.count.saturating_sub(current).max(0)))
        })
        .sum();
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let name = t.name.0.to_string();
            let refuse = |code: i16, message: String| {
                result
                    .clone()
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(message)))
            };
            if added > MAX_PARTITIONS_PER_REQUEST {
                return refuse(code::POLICY_VIOLATION, TOO_MANY_PARTITIONS.to_string());
            }
            let Some(meta) = broker.metadata.topic(&name) else {
                return refuse(
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("The topic '{name}' does not exist."),
                );
            };
            if t.count < meta.partitions {
                return refuse(
                    code::INVALID_PARTITIONS,
                    format!(
                        "Topic currently has {} partitions, which is higher than the requested {}.",
                        meta.partitions, t.count
                    ),
                );
            }
            if t.count == meta.partitions {
                return refuse(
                    code::INVALID_PARTITIONS,
                    format!("Topic already has {} partitions.", meta.partitions),
                );
            }
            if let Some(assignments) = &t.assignments {
                let added = (t.count - meta.partitions) as usize;
                if assignments.len() != added
                    || assignments.iter().any(|a| {
                        a.broker_ids.len() != 1 || a.broker_ids[0].0 != broker.config.node_id
                    })
                {
                    return refuse(
                        code::INVALID_REPLICA_ASSIGNMENT,
                        format!("Increasing the number of partitions by {added} but the assignment does not name one live broker per new partition."),
                    );
                }
            }
            if req.validate_only {
                return result;
            }
            match broker.add_partitions(&name, t.count) {
                Ok(true) => result,
                Ok(false) => refuse(code::UNKNOWN_TOPIC_OR_PARTITION, format!("The topic '{name}' does not exist.")),
                Err(e) => refuse(code::KAFKA_STORAGE_ERROR, e.to_string()),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
