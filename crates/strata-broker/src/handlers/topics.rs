//! Topic lifecycle: CreateTopics, DeleteTopics and CreatePartitions (increase only). Every new
//! topic's name and configs are validated here before anything is created (the name by Kafka's
//! rule in `strata_kafka::topic_name`, configs by `topic_config`); a refused request changes
//! nothing. The change itself is made by the active controller (placement, replication factor
//! against the live brokers), and the answer waits until this broker's image holds it, so a
//! Metadata request that follows sees it.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use strata_controller::NewTopic;
use strata_kafka::topic_name;

use crate::authz::Op;
use crate::broker::{Broker, OFFSETS_TOPIC};
use crate::handlers::api_versions::ListenerKind;
use crate::handlers::configs::created_configs;
use crate::handlers::controller::{error_code, error_message};
use crate::handlers::RequestContext;
use crate::handlers::{code, str_bytes, Refusal};
use crate::topic_config;

/// At most this many partitions are created by one CreateTopics or CreatePartitions request, as
/// Kafka's controller limits it (`MAX_PARTITIONS_PER_BATCH`): a request beyond it (a typo, or a
/// malformed count) is refused as a whole instead of holding the broker while it creates them.
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;
const TOO_MANY_PARTITIONS: &str = "Excessively large number of partitions per request.";

/// On a CONTROLLER listener a request comes from a broker that forwarded it; only the active
/// controller takes it.
fn refused_by_controller(broker: &Broker, ctx: &RequestContext) -> bool {
    ctx.listener == ListenerKind::Controller && !broker.quorum.is_active()
}

fn timeout_of(broker: &Broker, timeout_ms: i32) -> std::time::Duration {
    if timeout_ms > 0 {
        std::time::Duration::from_millis(timeout_ms as u64)
    } else {
        broker.admin_timeout()
    }
}

pub async fn create_topics(
    broker: &Broker,
    req: CreateTopicsRequest,
    version: i16,
    ctx: &RequestContext,
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
    let within = timeout_of(broker, req.timeout_ms);
    let mut results: Vec<CreatableTopicResult> = Vec::new();
    let mut valid: Vec<(usize, NewTopic)> = Vec::new();
    // CREATE on the cluster covers every topic; else each topic needs its own.
    let may_create = broker.may_cluster(ctx, Op::Create);
    for t in &req.topics {
        let result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let checked = if !may_create {
            if broker.may_topic(ctx, Op::Create, &t.name.0) {
                Ok(())
            } else {
                Err((
                    code::TOPIC_AUTHORIZATION_FAILED,
                    "Authorization failed.".to_string(),
                ))
            }
        } else {
            Ok(())
        };
        let checked = if let Err(refusal) = checked {
            Err(refusal)
        } else if requested > MAX_PARTITIONS_PER_REQUEST {
            Err((code::POLICY_VIOLATION, TOO_MANY_PARTITIONS.to_string()))
        } else if refused_by_controller(broker, ctx) {
            Err((
                code::NOT_CONTROLLER,
                "This node is not the active controller.".to_string(),
            ))
        } else {
            check_new_topic(broker, t)
        };
        match checked {
            Err((code, message)) => results.push(
                result
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(message))),
            ),
            Ok(new) => {
                valid.push((results.len(), new));
                results.push(result);
            }
        }
    }
    if valid.is_empty() {
        return CreateTopicsResponse::default().with_topics(results);
    }
    let topics: Vec<NewTopic> = valid.iter().map(|(_, t)| t.clone()).collect();
    match broker
        .link
        .create_topics(topics, req.validate_only, within)
        .await
    {
        Err(e) => {
            for (i, _) in &valid {
                let r = std::mem::take(&mut results[*i]);
                results[*i] = r
                    .with_error_code(error_code(&e))
                    .with_error_message(Some(str_bytes(error_message(&e))));
            }
        }
        Ok(outcomes) => {
            for ((i, new), outcome) in valid.iter().zip(outcomes) {
                let r = std::mem::take(&mut results[*i]);
                results[*i] = match outcome {
                    Err((code, message)) => r
                        .with_error_code(code)
                        .with_error_message(Some(str_bytes(message))),
                    Ok(created) => {
                        let rf = new
                            .assignments
                            .values()
                            .next()
                            .map_or(new.replication_factor, |a| a.len() as i16);
                        let partitions = if new.assignments.is_empty() {
                            new.num_partitions
                        } else {
                            new.assignments.len() as i32
                        };
                        if !req.validate_only {
                            let name = new.name.clone();
                            let id = created.id;
                            let seen = broker
                                .await_image(within, |img| {
                                    img.topics
                                        .get(&name)
                                        .is_some_and(|t| t.id == id || id.is_nil())
                                })
                                .await;
                            if !seen {
                                tracing::warn!(topic = %new.name, "created topic not in this broker's image in time");
                            }
                        }
                        let mut r = r
                            .with_topic_id(created.id)
                            .with_num_partitions(partitions)
                            .with_replication_factor(rf);
                        if version >= 5 {
                            r = r.with_configs(Some(created_configs(broker, &new.configs)));
                        }
                        r
                    }
                };
            }
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}

fn check_new_topic(
    broker: &Broker,
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<NewTopic, Refusal> {
    let name = t.name.0.as_str();
    topic_name::validate(name).map_err(|m| (code::INVALID_TOPIC_EXCEPTION, m))?;
    if broker.image().topics.contains_key(name) {
        return Err((
            code::TOPIC_ALREADY_EXISTS,
            format!("Topic '{name}' already exists."),
        ));
    }
    let mut assignments = BTreeMap::new();
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
        for a in &t.assignments {
            assignments.insert(
                a.partition_index,
                a.broker_ids.iter().map(|b| b.0).collect::<Vec<i32>>(),
            );
        }
        (
            t.assignments.len() as i32,
            t.assignments[0].broker_ids.len() as i16,
        )
    };
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
    Ok(NewTopic {
        name: name.to_string(),
        num_partitions: partitions,
        replication_factor: rf,
        assignments,
        configs,
    })
}

pub async fn delete_topics(
    broker: &Broker,
    req: DeleteTopicsRequest,
    version: i16,
    ctx: &RequestContext,
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
    let within = timeout_of(broker, req.timeout_ms);
    let image = broker.image();
    let mut results: Vec<DeletableTopicResult> = Vec::new();
    let mut to_delete: Vec<(usize, String)> = Vec::new();
    for (name, id) in targets {
        let meta = match &name {
            Some(n) => image.topics.get(n),
            None => image.topic_by_id(id),
        };
        let result = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(str_bytes(n))))
            .with_topic_id(id);
        let target = name.as_deref().or(meta.map(|m| m.name.as_str()));
        if target.is_some_and(|n| !broker.may_topic(ctx, Op::Delete, n)) {
            results.push(result.with_error_code(code::TOPIC_AUTHORIZATION_FAILED));
            continue;
        }
        let Some(meta) = meta else {
            let code = if name.is_some() {
                code::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                code::UNKNOWN_TOPIC_ID
            };
            results.push(result.with_error_code(code));
            continue;
        };
        let result = result
            .with_name(Some(TopicName(str_bytes(meta.name.clone()))))
            .with_topic_id(meta.id);
        if refused_by_controller(broker, ctx) {
            results.push(result.with_error_code(code::NOT_CONTROLLER));
            continue;
        }
        if !broker.config.delete_topic_enable {
            results.push(result.with_error_code(code::TOPIC_DELETION_DISABLED));
            continue;
        }
        if meta.name == OFFSETS_TOPIC {
            results.push(
                result
                    .with_error_code(code::INVALID_REQUEST)
                    .with_error_message(Some(str_bytes("Internal topics cannot be deleted"))),
            );
            continue;
        }
        to_delete.push((results.len(), meta.name.clone()));
        results.push(result);
    }
    if !to_delete.is_empty() {
        let names: Vec<String> = to_delete.iter().map(|(_, n)| n.clone()).collect();
        match broker.link.delete_topics(names.clone(), within).await {
            Err(e) => {
                for (i, _) in &to_delete {
                    let r = std::mem::take(&mut results[*i]);
                    results[*i] = r
                        .with_error_code(error_code(&e))
                        .with_error_message(Some(str_bytes(error_message(&e))));
                }
            }
            Ok(outcomes) => {
                for ((i, _), outcome) in to_delete.iter().zip(outcomes) {
                    if let Err((code, message)) = outcome {
                        let r = std::mem::take(&mut results[*i]);
                        results[*i] = r
                            .with_error_code(code)
                            .with_error_message(Some(str_bytes(message)));
                    }
                }
                broker
                    .await_image(within, |img| {
                        names.iter().all(|n| !img.topics.contains_key(n))
                    })
                    .await;
            }
        }
    }
    DeleteTopicsResponse::default().with_responses(results)
}

pub async fn create_partitions(
    broker: &Broker,
    req: CreatePartitionsRequest,
    _version: i16,
    ctx: &RequestContext,
) -> CreatePartitionsResponse {
    let image = broker.image();
    let added: i64 = req
        .topics
        .iter()
        .filter_map(|t| {
            let current = image.topics.get(t.name.0.as_str())?.partitions.len() as i32;
            Some(i64::from(t.count.saturating_sub(current).max(0)))
        })
        .sum();
    let within = timeout_of(broker, req.timeout_ms);
    let mut results = Vec::new();
    for t in req.topics {
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let name = t.name.0.to_string();
        let refuse = |code: i16, message: String| {
            result
                .clone()
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message)))
        };
        if !broker.may_topic(ctx, Op::Alter, &name) {
            results.push(refuse(
                code::TOPIC_AUTHORIZATION_FAILED,
                "Authorization failed.".into(),
            ));
            continue;
        }
        if added > MAX_PARTITIONS_PER_REQUEST {
            results.push(refuse(
                code::POLICY_VIOLATION,
                TOO_MANY_PARTITIONS.to_string(),
            ));
            continue;
        }
        if refused_by_controller(broker, ctx) {
            results.push(refuse(
                code::NOT_CONTROLLER,
                "This node is not the active controller.".into(),
            ));
            continue;
        }
        let Some(meta) = image.topics.get(&name) else {
            results.push(refuse(
                code::UNKNOWN_TOPIC_OR_PARTITION,
                format!("The topic '{name}' does not exist."),
            ));
            continue;
        };
        let current = meta.partitions.len() as i32;
        if t.count < current {
            results.push(refuse(
                code::INVALID_PARTITIONS,
                format!(
                    "Topic currently has {current} partitions, which is higher than the requested {}.",
                    t.count
                ),
            ));
            continue;
        }
        if t.count == current {
            results.push(refuse(
                code::INVALID_PARTITIONS,
                format!("Topic already has {current} partitions."),
            ));
            continue;
        }
        let assignments = t.assignments.as_ref().map(|a| {
            a.iter()
                .map(|r| r.broker_ids.iter().map(|b| b.0).collect::<Vec<i32>>())
                .collect::<Vec<_>>()
        });
        match broker
            .link
            .create_partitions(
                name.clone(),
                t.count,
                assignments,
                req.validate_only,
                within,
            )
            .await
        {
            Ok(()) => {
                if !req.validate_only {
                    let count = t.count as usize;
                    broker
                        .await_image(within, |img| {
                            img.topics
                                .get(&name)
                                .is_some_and(|m| m.partitions.len() >= count)
                        })
                        .await;
                }
                results.push(result);
            }
            Err(e) => results.push(refuse(error_code(&e), error_message(&e))),
        }
    }
    CreatePartitionsResponse::default().with_results(results)
}
