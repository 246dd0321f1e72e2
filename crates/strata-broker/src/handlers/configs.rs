//! Configuration APIs: DescribeConfigs (topics and the broker), AlterConfigs and
//! IncrementalAlterConfigs (topics; broker configs are static). Every value is validated by
//! `topic_config` before anything changes; a refused request changes nothing.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::CreatableTopicConfigs;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use strata_kafka::properties::ValueType;

use crate::broker::Broker;
use crate::handlers::api_versions::ListenerKind;
use crate::handlers::controller::{error_code, error_message};
use crate::handlers::RequestContext;
use crate::handlers::{code, str_bytes, Refusal};
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

/// Every topic config of a topic just created with `overrides`, as CreateTopics v5+ returns
/// them.
pub(crate) fn created_configs(
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
                    let image = broker.image();
                    let Some(meta) = image.topics.get(r.resource_name.as_str()) else {
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
async fn apply_topic_configs(
    broker: &Broker,
    ctx: &RequestContext,
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
    if ctx.listener == ListenerKind::Controller && !broker.quorum.is_active() {
        return Err((
            code::NOT_CONTROLLER,
            "This node is not the active controller.".into(),
        ));
    }
    let image = broker.image();
    let Some(meta) = image.topics.get(name) else {
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
    let within = broker.admin_timeout();
    match broker
        .link
        .set_configs(Some(name.to_string()), configs.clone(), within)
        .await
    {
        Ok(()) => {
            broker
                .await_image(within, |img| {
                    img.topics.get(name).is_none_or(|t| t.configs == configs)
                })
                .await;
            Ok(())
        }
        Err(e) => Err((error_code(&e), error_message(&e))),
    }
}

pub async fn alter_configs(
    broker: &Broker,
    req: AlterConfigsRequest,
    _version: i16,
    ctx: &RequestContext,
) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for r in req.resources {
        {
            // Legacy AlterConfigs replaces every override of the resource.
            let outcome = apply_topic_configs(
                broker,
                ctx,
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
            )
            .await;
            let (code, message) = outcome.err().unwrap_or((code::NONE, String::new()));
            responses.push(
                alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
                    .with_error_code(code)
                    .with_error_message((code != 0).then(|| str_bytes(message))),
            );
        }
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter_configs(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
    ctx: &RequestContext,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for r in req.resources {
        {
            let outcome = apply_topic_configs(
                broker,
                ctx,
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
                                if def.kind != ValueType::List {
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
            )
            .await;
            let (code, message) = outcome.err().unwrap_or((code::NONE, String::new()));
            responses.push(
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
                    .with_error_code(code)
                    .with_error_message((code != 0).then(|| str_bytes(message))),
            );
        }
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
