//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions (increase only),
//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics, DescribeConfigs for the
//! broker. Every value is validated by `topic_config` before anything changes; a refused request
//! changes nothing.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::{Broker, OFFSETS_TOPIC};
use crate::handlers::RequestContext;
use crate::handlers::{code, str_bytes, validate_topic_name};
use crate::topic_config::{self, TOPIC_CONFIGS};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

type Refusal = (i16, String);

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
    validate_topic_name(name).map_err(|m| (code::INVALID_TOPIC_EXCEPTION, m))?;
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

fn created_configs(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    TOPIC_CONFIGS
        .iter()
        .map(|d| {
            let (value, source) = effective(broker, overrides, d.name);
            CreatableTopicConfigs::default()
                .with_name(str_bytes(d.name))
                .with_value(Some(str_bytes(value)))
                .with_config_source(source)
        })
        .collect()
}

/// A topic config's effective value and its source.
fn effective(broker: &Broker, overrides: &BTreeMap<String, String>, name: &str) -> (String, i8) {
    if let Some(v) = overrides.get(name) {
        return (v.clone(), SOURCE_DYNAMIC_TOPIC);
    }
    let static_set = topic_config::lookup(name)
        .and_then(|d| d.broker_synonym)
        .is_some_and(|s| broker.config.raw.contains_key(s));
    let source = if static_set {
        SOURCE_STATIC_BROKER
    } else {
        SOURCE_DEFAULT
    };
    (topic_config::default_value(name, &broker.config), source)
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

pub async fn describe_configs(
    broker: &Broker,
    req: DescribeConfigsRequest,
    version: i16,
    _ctx: &RequestContext,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let wanted = |name: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            match r.resource_type {
                RESOURCE_TOPIC => {
                    let Some(meta) = broker.metadata.topic(r.resource_name.as_str()) else {
                        return result
                            .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(str_bytes(format!(
                                "Topic {} does not exist",
                                r.resource_name.as_str()
                            ))));
                    };
                    let configs = TOPIC_CONFIGS
                        .iter()
                        .filter(|d| wanted(d.name))
                        .map(|d| {
                            let (value, source) = effective(broker, &meta.configs, d.name);
                            let mut entry = DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(d.name))
                                .with_value(Some(str_bytes(value.clone())))
                                .with_config_source(source)
                                .with_config_type(d.kind as i8);
                            if version >= 3 && req.include_documentation {
                                entry = entry.with_documentation(Some(str_bytes(d.doc)));
                            }
                            if req.include_synonyms {
                                entry = entry.with_synonyms(synonyms(broker, &meta.configs, d));
                            }
                            entry
                        })
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_BROKER => {
                    let name = r.resource_name.as_str();
                    if !name.is_empty() && name != broker.config.node_id.to_string() {
                        return result
                            .with_error_code(code::INVALID_REQUEST)
                            .with_error_message(Some(str_bytes(format!(
                                "Unexpected broker id, expected {} or empty string, but received {name}",
                                broker.config.node_id
                            ))));
                    }
                    let configs = broker
                        .config
                        .raw
                        .iter()
                        .filter(|(k, _)| wanted(k))
                        .map(|(k, v)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(k.clone()))
                                .with_value(Some(str_bytes(v.clone())))
                                .with_read_only(true)
                                .with_config_source(SOURCE_STATIC_BROKER)
                                .with_config_type(2)
                        })
                        .collect();
                    result.with_configs(configs)
                }
                other => result
                    .with_error_code(code::INVALID_REQUEST)
                    .with_error_message(Some(str_bytes(format!(
                        "Unsupported resource type {other}"
                    )))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn synonyms(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
    d: &topic_config::TopicConfigDef,
) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::new();
    if let Some(v) = overrides.get(d.name) {
        out.push(
            DescribeConfigsSynonym::default()
                .with_name(str_bytes(d.name))
                .with_value(Some(str_bytes(v.clone())))
                .with_source(SOURCE_DYNAMIC_TOPIC),
        );
    }
    if let Some(syn) = d.broker_synonym {
        if let Some(v) = broker.config.raw.get(syn) {
            out.push(
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(syn))
                    .with_value(Some(str_bytes(v.clone())))
                    .with_source(SOURCE_STATIC_BROKER),
            );
        }
        out.push(
            DescribeConfigsSynonym::default()
                .with_name(str_bytes(syn))
                .with_value(Some(str_bytes(topic_config::default_value(
                    d.name,
                    &broker.config,
                ))))
                .with_source(SOURCE_DEFAULT),
        );
    }
    out
}

/// Validates and applies a new set of topic overrides; shared by both alter APIs.
fn apply_topic_configs(
    broker: &Broker,
    resource_type: i8,
    resource_name: &StrBytes,
    validate_only: bool,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), Refusal>,
) -> Result<(), Refusal> {
    if resource_type == RESOURCE_BROKER {
        return Err((
            code::INVALID_REQUEST,
            "Broker configs are static: set them in server.properties and restart the broker"
                .into(),
        ));
    }
    if resource_type != RESOURCE_TOPIC {
        return Err((
            code::INVALID_REQUEST,
            format!("Unsupported resource type {resource_type}"),
        ));
    }
    let name = resource_name.as_str();
    let Some(meta) = broker.metadata.topic(name) else {
        return Err((
            code::UNKNOWN_TOPIC_OR_PARTITION,
            format!("Topic {name} does not exist"),
        ));
    };
    let mut configs = meta.configs.clone();
    change(&mut configs)?;
    for (k, v) in &configs {
        topic_config::validate(k, v).map_err(|m| (code::INVALID_CONFIG, m))?;
    }
    if validate_only {
        return Ok(());
    }
    match broker.set_topic_configs(name, configs) {
        Ok(true) => Ok(()),
        Ok(false) => Err((
            code::UNKNOWN_TOPIC_OR_PARTITION,
            format!("Topic {name} does not exist"),
        )),
        Err(e) => Err((code::KAFKA_STORAGE_ERROR, e.to_string())),
    }
}

pub async fn alter_configs(
    broker: &Broker,
    req: AlterConfigsRequest,
    _version: i16,
    _ctx: &RequestContext,
) -> AlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            // Legacy AlterConfigs replaces every override of the resource.
            let outcome = apply_topic_configs(
                broker,
                r.resource_type,
                &r.resource_name,
                req.validate_only,
                |configs| {
                    configs.clear();
                    for c in &r.configs {
                        let Some(v) = &c.value else {
                            return Err((
                                code::INVALID_CONFIG,
                                format!("Null value not supported for {}", c.name.as_str()),
                            ));
                        };
                        configs.insert(c.name.to_string(), v.to_string());
                    }
                    Ok(())
                },
            );
            let (code, message) = outcome.err().unwrap_or((code::NONE, String::new()));
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message((code != 0).then(|| str_bytes(message)))
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter_configs(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
    _ctx: &RequestContext,
) -> IncrementalAlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let outcome = apply_topic_configs(
                broker,
                r.resource_type,
                &r.resource_name,
                req.validate_only,
                |configs| {
                    for c in &r.configs {
                        let key = c.name.to_string();
                        let value = c.value.as_ref().map(|v| v.to_string());
                        let Some(def) = topic_config::lookup(&key) else {
                            return Err((
                                code::INVALID_CONFIG,
                                format!("Unknown topic config name: {key}"),
                            ));
                        };
                        match c.config_operation {
                            OP_SET => {
                                let Some(v) = value else {
                                    return Err((
                                        code::INVALID_CONFIG,
                                        format!("Null value not supported for {key}"),
                                    ));
                                };
                                configs.insert(key, v);
                            }
                            OP_DELETE => {
                                configs.remove(&key);
                            }
                            OP_APPEND | OP_SUBTRACT => {
                                if def.kind != topic_config::ConfigType::List {
                                    return Err((
                                        code::INVALID_CONFIG,
                                        format!("Config value append is not allowed for config key: {key}"),
                                    ));
                                }
                                let current = configs.get(&key).cloned().unwrap_or_else(|| {
                                    topic_config::default_value(&key, &broker.config)
                                });
                                let mut items: Vec<String> = current
                                    .split(',')
                                    .map(|s| s.trim().to_string())
                                    .filter(|s| !s.is_empty())
                                    .collect();
                                for v in value.unwrap_or_default().split(',').map(str::trim) {
                                    if c.config_operation == OP_APPEND {
                                        if !items.iter().any(|i| i == v) {
                                            items.push(v.to_string());
                                        }
                                    } else {
                                        items.retain(|i| i != v);
                                    }
                                }
                                configs.insert(key, items.join(","));
                            }
                            other => {
                                return Err((
                                    code::INVALID_REQUEST,
                                    format!("Unknown config operation {other}"),
                                ))
                            }
                        }
                    }
                    Ok(())
                },
            );
            let (code, message) = outcome.err().unwrap_or((code::NONE, String::new()));
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message((code != 0).then(|| str_bytes(message)))
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
