//! Configuration APIs: DescribeConfigs (topics and the broker), AlterConfigs and
//! IncrementalAlterConfigs (topics, and the dynamic broker configs of one broker or the cluster
//! default: the replication throttles, unclean leader election, Kafka's dynamic log configs
//! that default topic configs and, cluster-wide only, the failover's write fence and mandate;
//! other broker configs are static). Two Strata configs
//! are actions, never stored nor described: on a mirror target, IncrementalAlterConfigs of
//! `strata.mirror.truncate.offsets` (a tail truncation through the controller, alone in its
//! request), and on the cluster default broker resource `strata.producer.reset` (a producer
//! reset, see `crate::write_fence`), which may come with other cluster-default changes and is
//! ordered in the same metadata-log entry as they are. Every value is validated before
//! anything changes; a refused request changes nothing. Changes go to the active controller
//! and are kept in the metadata log.

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
use strata_kafka::failover::{
    MANDATE_EXPIRY_CONFIG, PRODUCER_RESET_CONFIG, TRUNCATE_OFFSETS_CONFIG, WRITE_FENCE_CONFIG,
    WRITE_FENCE_DRAINED_CONFIG,
};
use strata_kafka::properties::{self, ValueType};

use crate::authz::Op;
use crate::broker::Broker;
use crate::cluster::link::ConfigTarget;
use crate::cluster::log_bounds::log_bounds;
use crate::cluster::throttle::{FOLLOWER_THROTTLED_RATE, LEADER_THROTTLED_RATE};
use crate::handlers::api_versions::ListenerKind;
use crate::handlers::controller::{error_code, error_message};
use crate::handlers::RequestContext;
use crate::handlers::{code, str_bytes, Refusal};
use crate::mirror_target;
use crate::topic_config::{self, TOPIC_CONFIGS};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;

/// Broker configs that can be changed at run time (per broker or as the cluster default);
/// their types are `strata_kafka::properties`'. Each takes effect where the broker reads it:
/// the throttles where replication happens, unclean leader election in the controller, the
/// failover's fence and mandate in `crate::write_fence`, and Kafka's dynamic log configs (the
/// broker synonyms of topic configs: `DynamicLogConfig`) as the defaults of every topic without
/// an override, applied to its partitions when they change (`cluster::reconcile`).
/// `replica.alter.log.dirs.io.max.bytes.per.second` is kept and shown but has nothing to bound
/// (a broker has one log directory, replicas never move between directories); it is accepted
/// because Kafka's tools set and clear it with the other throttles. Kafka's other dynamic
/// configs (listeners, thread pools, the cleaner's threads and buffers, quotas) act on nothing
/// in Strata and are refused as static.
pub const DYNAMIC_BROKER_CONFIGS: &[&str] = &[
    FOLLOWER_THROTTLED_RATE,
    LEADER_THROTTLED_RATE,
    "replica.alter.log.dirs.io.max.bytes.per.second",
    "unclean.leader.election.enable",
    "log.cleanup.policy",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.index.interval.bytes",
    "log.message.timestamp.type",
    "log.retention.bytes",
    "log.retention.ms",
    "log.roll.ms",
    "log.segment.bytes",
    "message.max.bytes",
    WRITE_FENCE_CONFIG,
    MANDATE_EXPIRY_CONFIG,
    PRODUCER_RESET_CONFIG,
];

/// Dynamic broker configs (beside [`DYNAMIC_BROKER_CONFIGS`]) that exist only per broker, as
/// Kafka's listener reconfiguration has them (`DynamicListenerConfig`): the Kerberos (GSSAPI)
/// and login-refresh (OAUTHBEARER) settings of a broker's SASL logins. Strata serves neither
/// mechanism, so they are stored and described as Kafka stores them, and change nothing.
const PER_BROKER_ONLY: &[&str] = &[
    "sasl.kerberos.kinit.cmd",
    "sasl.kerberos.min.time.before.relogin",
    "sasl.kerberos.principal.to.local.rules",
    "sasl.kerberos.service.name",
    "sasl.kerberos.ticket.renew.jitter",
    "sasl.kerberos.ticket.renew.window.factor",
    "sasl.login.refresh.buffer.seconds",
    "sasl.login.refresh.min.period.seconds",
    "sasl.login.refresh.window.factor",
    "sasl.login.refresh.window.jitter",
];

/// The type of a dynamic broker config; None for a config that is not dynamic.
fn dynamic_kind(name: &str) -> Option<ValueType> {
    if !DYNAMIC_BROKER_CONFIGS.contains(&name) && !PER_BROKER_ONLY.contains(&name) {
        return None;
    }
    // Every dynamic name is a broker property (a unit test checks it).
    properties::broker_property(name).map(|p| p.kind)
}

/// Dynamic broker configs that exist only cluster-wide (on the default broker resource): the
/// failover's write fence and mandate (`crate::write_fence`) fence the whole cluster or
/// nothing, and a producer reset resets every partition.
const CLUSTER_WIDE_ONLY: &[&str] = &[
    WRITE_FENCE_CONFIG,
    MANDATE_EXPIRY_CONFIG,
    PRODUCER_RESET_CONFIG,
];

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

/// A topic config's effective value and its source: the topic's override, this broker's
/// dynamic default, the cluster's dynamic default, the static broker property, the default.
fn effective(broker: &Broker, overrides: &BTreeMap<String, String>, name: &str) -> (String, i8) {
    if let Some(v) = overrides.get(name) {
        return (v.clone(), SOURCE_DYNAMIC_TOPIC);
    }
    if let Some((v, source)) = dynamic_default(broker, &broker.image(), name) {
        return (v, source);
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

/// The dynamic broker config that gives the topic config `name` its default here, with its
/// source (this broker's own over the cluster default).
fn dynamic_default(
    broker: &Broker,
    image: &strata_controller::MetadataImage,
    name: &str,
) -> Option<(String, i8)> {
    let synonym = topic_config::lookup(name)?.broker_synonym?;
    if let Some(v) = image
        .broker_configs
        .get(&broker.config.node_id)
        .and_then(|own| own.get(synonym))
    {
        return Some((v.clone(), SOURCE_DYNAMIC_BROKER));
    }
    image
        .cluster_configs
        .get(synonym)
        .map(|v| (v.clone(), SOURCE_DYNAMIC_DEFAULT_BROKER))
}

pub async fn describe_configs(
    broker: &Broker,
    req: DescribeConfigsRequest,
    version: i16,
    ctx: &RequestContext,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let access = config_access(
                broker,
                ctx,
                r.resource_type,
                r.resource_name.as_str(),
                Op::DescribeConfigs,
            );
            if let Err((code, message)) = access {
                return result
                    .with_error_code(code)
                    .with_error_message((!message.is_empty()).then(|| str_bytes(message)));
            }
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
                    let image = broker.image();
                    if name.is_empty() {
                        // The cluster default resource: its dynamic configs only.
                        let configs = image
                            .cluster_configs
                            .iter()
                            .filter(|(k, _)| wanted(k))
                            .map(|(k, v)| {
                                broker_entry(k, v, SOURCE_DYNAMIC_DEFAULT_BROKER, is_dynamic(k))
                            })
                            .collect();
                        return result.with_configs(configs);
                    }
                    if name != broker.config.node_id.to_string() {
                        return result
                            .with_error_code(code::INVALID_REQUEST)
                            .with_error_message(Some(str_bytes(format!(
                                "Unexpected broker id, expected {} or empty string, but received {name}",
                                broker.config.node_id
                            ))));
                    }
                    let own = image.broker_configs.get(&broker.config.node_id);
                    let mut entries: BTreeMap<&str, (&str, i8)> = BTreeMap::new();
                    for (k, v) in &broker.config.raw {
                        entries.insert(k, (v, SOURCE_STATIC_BROKER));
                    }
                    for (k, v) in &image.cluster_configs {
                        entries.insert(k, (v, SOURCE_DYNAMIC_DEFAULT_BROKER));
                    }
                    for (k, v) in own.into_iter().flatten() {
                        entries.insert(k, (v, SOURCE_DYNAMIC_BROKER));
                    }
                    // Every layer that sets a config, highest precedence first (Kafka's
                    // synonyms; defaults are not listed).
                    let empty = BTreeMap::new();
                    let layers = [
                        (own.unwrap_or(&empty), SOURCE_DYNAMIC_BROKER),
                        (&image.cluster_configs, SOURCE_DYNAMIC_DEFAULT_BROKER),
                        (&broker.config.raw, SOURCE_STATIC_BROKER),
                    ];
                    // Read-only state, not a setting: answered only when asked for by name.
                    let drained = r.configuration_keys.as_ref().is_some_and(|keys| {
                        keys.iter().any(|k| k.as_str() == WRITE_FENCE_DRAINED_CONFIG)
                    });
                    let drained = drained.then(|| {
                        let value = broker.write_fence_drained().unwrap_or_default();
                        broker_entry(WRITE_FENCE_DRAINED_CONFIG, &value, SOURCE_DEFAULT, false)
                    });
                    let configs = entries
                        .into_iter()
                        .filter(|(k, _)| wanted(k))
                        .map(|(k, (v, source))| {
                            let entry = broker_entry(k, v, source, is_dynamic(k));
                            if !req.include_synonyms {
                                return entry;
                            }
                            let hidden = entry.is_sensitive;
                            let synonyms = layers
                                .iter()
                                .filter_map(|(layer, source)| {
                                    let value = layer.get(k)?;
                                    Some(
                                        DescribeConfigsSynonym::default()
                                            .with_name(str_bytes(k))
                                            .with_value((!hidden).then(|| str_bytes(value.clone())))
                                            .with_source(*source),
                                    )
                                })
                                .collect();
                            entry.with_synonyms(synonyms)
                        })
                        .chain(drained)
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

fn is_dynamic(name: &str) -> bool {
    dynamic_kind(name).is_some()
}

fn broker_entry(
    name: &str,
    value: &str,
    source: i8,
    dynamic: bool,
) -> DescribeConfigsResourceResult {
    let kind = properties::broker_property(name).map_or(ValueType::String, |p| p.kind);
    // Keys and passwords are never shown (Kafka answers them as sensitive, without a value).
    let sensitive = kind == ValueType::Password;
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value((!sensitive).then(|| str_bytes(value)))
        .with_is_sensitive(sensitive)
        .with_read_only(!dynamic)
        .with_config_source(source)
        .with_config_type(kind as i8)
}

/// Checks a dynamic broker config change: only the names of [`DYNAMIC_BROKER_CONFIGS`] and
/// [`PER_BROKER_ONLY`], with values of their type; a topic config's default by the rules of
/// that topic config. A value refused is INVALID_REQUEST, as Kafka's controller answers it (its
/// `ConfigException` becomes an `InvalidRequestException` for broker resources; topics get
/// INVALID_CONFIG).
fn validate_broker_config(name: &str, value: &str) -> Result<(), Refusal> {
    let Some(kind) = dynamic_kind(name) else {
        return Err(not_dynamic(name));
    };
    if let Some(topic) = topic_config::defaulted_by(name) {
        return topic_config::validate_as(topic.name, name, value.trim())
            .map_err(|m| (code::INVALID_REQUEST, m));
    }
    let ok = match kind {
        ValueType::Long => value.trim().parse::<i64>().is_ok_and(|v| v >= 0),
        ValueType::Short => value.trim().parse::<i16>().is_ok_and(|v| v >= 0),
        ValueType::Double => value.trim().parse::<f64>().is_ok_and(f64::is_finite),
        ValueType::Boolean => {
            matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false")
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err((
            code::INVALID_REQUEST,
            format!("Invalid value {value} for configuration {name}"),
        ))
    }
}

/// Validates and applies a new set of dynamic configs of one broker (`name` its id) or of the
/// cluster default (`name` empty). A `strata.producer.reset` in the new set is taken out of it
/// (an action, never stored) and ordered with the rest in one metadata-log entry; the answer
/// waits until this broker applied it to its partitions.
async fn apply_broker_configs(
    broker: &Broker,
    ctx: &RequestContext,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), Refusal>,
) -> Result<(), Refusal> {
    let target = if name.is_empty() {
        ConfigTarget::ClusterDefault
    } else {
        match name.parse::<i32>() {
            Ok(id) if id >= 0 => ConfigTarget::Broker(id),
            _ => {
                return Err((
                    code::INVALID_REQUEST,
                    format!("Invalid broker name {name}: a broker id or the empty default"),
                ))
            }
        }
    };
    refuse_unless_active_controller(ctx, broker)?;
    let image = broker.image();
    let mut configs = match &target {
        ConfigTarget::Broker(id) => image.broker_configs.get(id).cloned().unwrap_or_default(),
        _ => image.cluster_configs.clone(),
    };
    change(&mut configs)?;
    for (k, v) in &configs {
        validate_broker_config(k, v)?;
        if matches!(target, ConfigTarget::Broker(_)) && CLUSTER_WIDE_ONLY.contains(&k.as_str()) {
            return Err((
                code::INVALID_REQUEST,
                format!("{k} is cluster-wide: set it on the cluster default broker resource (--entity-default), not on broker {name}"),
            ));
        }
        if matches!(target, ConfigTarget::ClusterDefault) && PER_BROKER_ONLY.contains(&k.as_str()) {
            // Kafka's words (`DynamicBrokerConfig.validateConfigs`).
            return Err((
                code::INVALID_REQUEST,
                format!("Cannot update these configs at default cluster level, broker id must be specified: Set({k})"),
            ));
        }
    }
    let producer_reset = match configs.remove(PRODUCER_RESET_CONFIG) {
        Some(v) => Some(v.trim().parse::<i64>().map_err(|_| {
            (
                code::INVALID_CONFIG,
                format!("Invalid value {v} for configuration {PRODUCER_RESET_CONFIG}"),
            )
        })?),
        None => None,
    };
    if validate_only {
        return Ok(());
    }
    let within = broker.admin_timeout();
    match broker
        .link
        .set_configs(target.clone(), configs.clone(), producer_reset, within)
        .await
    {
        Ok(()) => {
            let reset_done = |img: &strata_controller::MetadataImage| {
                let Some(floor) = producer_reset else {
                    return true;
                };
                // Every partition has a reset epoch above the leader epoch it had before.
                img.producer_id_floor >= floor
                    && image.topics.values().all(|t| {
                        t.partitions.iter().all(|(i, before)| {
                            img.partition(&t.name, *i).is_none_or(|p| {
                                p.producer_reset_epoch
                                    .is_some_and(|e| e > before.leader_epoch)
                            })
                        })
                    })
            };
            broker
                .await_image(within, |img| {
                    reset_done(img)
                        && match &target {
                            ConfigTarget::Broker(id) => {
                                img.broker_configs.get(id).cloned().unwrap_or_default() == configs
                            }
                            _ => img.cluster_configs == configs,
                        }
                })
                .await;
            if let Some(floor) = producer_reset {
                tracing::info!(floor, "producer reset ordered");
            }
            Ok(())
        }
        Err(e) => Err((error_code(&e), error_message(&e))),
    }
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
    if resource_type != RESOURCE_TOPIC {
        return Err((
            code::INVALID_REQUEST,
            format!("Unsupported resource type {resource_type}"),
        ));
    }
    let name = resource_name.as_str();
    refuse_unless_active_controller(ctx, broker)?;
    let image = broker.image();
    let meta = image.topics.get(name).ok_or_else(|| unknown_topic(name))?;
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
        .set_configs(
            ConfigTarget::Topic(name.to_string()),
            configs.clone(),
            None,
            within,
        )
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

/// Whether the request's principal may `op` (DESCRIBE_CONFIGS, ALTER_CONFIGS) the configs of a
/// resource: a topic's on the topic, a broker's or a broker logger's on the cluster.
fn config_access(
    broker: &Broker,
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    op: Op,
) -> Result<(), Refusal> {
    const RESOURCE_BROKER_LOGGER: i8 = 8;
    match resource_type {
        RESOURCE_TOPIC if !broker.may_topic(ctx, op, name) => {
            Err((code::TOPIC_AUTHORIZATION_FAILED, String::new()))
        }
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER if !broker.may_cluster(ctx, op) => Err((
            code::CLUSTER_AUTHORIZATION_FAILED,
            crate::handlers::acls::CLUSTER_DENIED.into(),
        )),
        _ => Ok(()),
    }
}

/// Applies a change to the resource's configs: topics through `topic_config`, brokers through
/// [`DYNAMIC_BROKER_CONFIGS`]; other resource types are refused.
async fn apply_configs(
    broker: &Broker,
    ctx: &RequestContext,
    resource_type: i8,
    resource_name: &StrBytes,
    validate_only: bool,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), Refusal>,
) -> Result<(), Refusal> {
    config_access(
        broker,
        ctx,
        resource_type,
        resource_name.as_str(),
        Op::AlterConfigs,
    )?;
    if resource_type == RESOURCE_BROKER {
        return apply_broker_configs(broker, ctx, resource_name.as_str(), validate_only, change)
            .await;
    }
    apply_topic_configs(
        broker,
        ctx,
        resource_type,
        resource_name,
        validate_only,
        change,
    )
    .await
}

pub async fn alter_configs(
    broker: &Broker,
    req: AlterConfigsRequest,
    _version: i16,
    ctx: &RequestContext,
) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for r in req.resources {
        // Legacy AlterConfigs replaces every override of the resource.
        let outcome = apply_configs(
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
    AlterConfigsResponse::default().with_responses(responses)
}

/// The refusal of a change to a config that is read from server.properties at start.
fn not_dynamic(name: &str) -> Refusal {
    (
        code::INVALID_REQUEST,
        format!(
            "Cannot update these configs dynamically: Set({name}); they are read from server.properties at start"
        ),
    )
}

/// The type of a config of the resource (None: not a config of it) and its value when unset.
fn config_kind(broker: &Broker, resource_type: i8, key: &str) -> Option<(ValueType, String)> {
    if resource_type == RESOURCE_BROKER {
        return dynamic_kind(key).map(|t| (t, String::new()));
    }
    topic_config::lookup(key).map(|d| (d.kind, topic_config::default_value(key, &broker.config)))
}

/// `strata.mirror.truncate.offsets` on a topic: an action, not a config (see
/// [`crate::mirror_target`]). Checked here — the only change of the resource, a SET, on a
/// mirror target, each offset within the leader's log — then ordered through the active
/// controller; returns once this broker applied the controller's change (each replica
/// truncates as it applies it). On the controller listener the request was forwarded by a
/// broker that checked the offsets against the leaders' logs.
async fn truncate_tail(
    broker: &Broker,
    ctx: &RequestContext,
    r: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), Refusal> {
    let topic = r.resource_name.as_str();
    config_access(broker, ctx, RESOURCE_TOPIC, topic, Op::AlterConfigs)?;
    let [c] = r.configs.as_slice() else {
        return Err((
            code::INVALID_REQUEST,
            format!("{TRUNCATE_OFFSETS_CONFIG} is an action: it cannot be combined with other config changes"),
        ));
    };
    if c.config_operation != OP_SET {
        return Err((
            code::INVALID_CONFIG,
            format!(
                "{TRUNCATE_OFFSETS_CONFIG} is an action and never stored: only SET applies to it"
            ),
        ));
    }
    let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
    let offsets = mirror_target::parse_truncation(&value).map_err(|m| (code::INVALID_CONFIG, m))?;
    let forwarded = broker.forwarded_by_a_node(ctx);
    refuse_unless_active_controller(ctx, broker)?;
    let image = broker.image();
    let meta = image
        .topics
        .get(topic)
        .ok_or_else(|| unknown_topic(topic))?;
    let bounds = if forwarded {
        // Checked by the forwarding broker; the controller checks the partitions exist.
        offsets.iter().map(|(p, _)| (*p, (0, i64::MAX))).collect()
    } else {
        let partitions: Vec<i32> = offsets.iter().map(|(p, _)| *p).collect();
        log_bounds(broker, topic, &partitions).await?
    };
    mirror_target::check_truncation(topic, &meta.configs, &offsets, |p| bounds.get(&p).copied())
        .map_err(|m| (code::INVALID_CONFIG, m))?;
    if validate_only {
        return Ok(());
    }
    let epochs: BTreeMap<i32, i32> = offsets
        .iter()
        .filter_map(|(p, _)| Some((*p, meta.partitions.get(p)?.leader_epoch)))
        .collect();
    let within = broker.admin_timeout();
    broker
        .link
        .truncate_partitions(topic, &offsets, within)
        .await
        .map_err(|e| (error_code(&e), error_message(&e)))?;
    tracing::info!(topic, value = %value, "tail truncation ordered");
    broker
        .await_image(within, |img| {
            offsets.iter().all(|(p, o)| {
                img.partition(topic, *p).is_none_or(|s| {
                    s.leader_epoch > epochs.get(p).copied().unwrap_or(-1)
                        && s.truncation.is_some_and(|t| t.offset == *o)
                })
            })
        })
        .await;
    Ok(())
}

pub async fn incremental_alter_configs(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
    ctx: &RequestContext,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for r in req.resources {
        let resource_type = r.resource_type;
        if resource_type == RESOURCE_TOPIC
            && r.configs
                .iter()
                .any(|c| c.name.as_str() == TRUNCATE_OFFSETS_CONFIG)
        {
            let outcome = truncate_tail(broker, ctx, &r, req.validate_only).await;
            let (code, message) = outcome.err().unwrap_or((code::NONE, String::new()));
            responses.push(
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
                    .with_error_code(code)
                    .with_error_message((code != 0).then(|| str_bytes(message))),
            );
            continue;
        }
        let outcome = apply_configs(
            broker,
            ctx,
            r.resource_type,
            &r.resource_name,
            req.validate_only,
            |configs| {
                for c in &r.configs {
                    let key = c.name.to_string();
                    let value = c.value.as_ref().map(|v| v.to_string());
                    let Some((kind, default)) = config_kind(broker, resource_type, &key) else {
                        return Err(if resource_type == RESOURCE_BROKER {
                            not_dynamic(&key)
                        } else {
                            (
                                code::INVALID_CONFIG,
                                format!("Unknown topic config name: {key}"),
                            )
                        });
                    };
                    if key == PRODUCER_RESET_CONFIG && c.config_operation != OP_SET {
                        return Err((
                            code::INVALID_CONFIG,
                            format!("{PRODUCER_RESET_CONFIG} is an action and never stored: only SET applies to it"),
                        ));
                    }
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
                            if kind != ValueType::List {
                                return Err((
                                    code::INVALID_CONFIG,
                                    format!(
                                        "Config value append is not allowed for config key: {key}"
                                    ),
                                ));
                            }
                            let current = configs.get(&key).cloned().unwrap_or(default);
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
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// A request forwarded to this node's controller listener needs it to be the active controller.
fn refuse_unless_active_controller(ctx: &RequestContext, broker: &Broker) -> Result<(), Refusal> {
    if ctx.listener == ListenerKind::Controller && !broker.quorum.is_active() {
        return Err((
            code::NOT_CONTROLLER,
            "This node is not the active controller.".into(),
        ));
    }
    Ok(())
}

fn unknown_topic(name: &str) -> Refusal {
    (
        code::UNKNOWN_TOPIC_OR_PARTITION,
        format!("Topic {name} does not exist"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_described_as_sensitive_without_a_value() {
        let key = broker_entry(
            "listener.name.ssl.ssl.keystore.key",
            "-----BEGIN PRIVATE KEY-----",
            SOURCE_STATIC_BROKER,
            false,
        );
        assert!(key.is_sensitive && key.value.is_none());
        let location = broker_entry(
            "ssl.keystore.location",
            "/k.pem",
            SOURCE_STATIC_BROKER,
            false,
        );
        assert!(!location.is_sensitive && location.value.is_some());
    }

    #[test]
    fn every_dynamic_broker_config_is_a_typed_broker_property() {
        for name in DYNAMIC_BROKER_CONFIGS.iter().chain(PER_BROKER_ONLY) {
            assert!(
                dynamic_kind(name).is_some(),
                "{name} has no type in properties"
            );
        }
        assert_eq!(dynamic_kind("log.retention.ms"), Some(ValueType::Long));
        assert_eq!(dynamic_kind("message.max.bytes"), Some(ValueType::Int));
        assert_eq!(dynamic_kind("log.retention.hours"), None);
    }

    #[test]
    fn every_dynamic_log_config_defaults_a_topic_config_the_log_applies() {
        let base = crate::config::BrokerConfig::from_properties(BTreeMap::new()).unwrap();
        for name in DYNAMIC_BROKER_CONFIGS
            .iter()
            .filter(|n| n.starts_with("log.") || **n == "message.max.bytes")
        {
            let topic = topic_config::defaulted_by(name)
                .unwrap_or_else(|| panic!("{name} is no topic config's synonym"));
            // A value other than the default must change the partition's log configuration.
            let default = topic_config::default_value(topic.name, &base);
            let other = match topic.kind {
                ValueType::Double => "0.25".to_string(),
                ValueType::List => if default == "delete" {
                    "compact"
                } else {
                    "delete"
                }
                .to_string(),
                ValueType::String => "LogAppendTime".to_string(),
                _ => "12345".to_string(),
            };
            assert!(
                validate_broker_config(name, &other).is_ok(),
                "{name}={other}"
            );
            let dynamic = topic_config::dynamic_defaults(
                &BTreeMap::from([(name.to_string(), other.clone())]),
                None,
            );
            assert_ne!(
                topic_config::log_config(&dynamic, &base),
                topic_config::log_config(&BTreeMap::new(), &base),
                "{name}={other} changes nothing"
            );
        }
    }

    #[test]
    fn static_and_malformed_broker_configs_are_refused() {
        assert_eq!(
            validate_broker_config("log.retention.hours", "1")
                .unwrap_err()
                .0,
            code::INVALID_REQUEST
        );
        assert_eq!(
            validate_broker_config("num.io.threads", "4").unwrap_err().0,
            code::INVALID_REQUEST
        );
        let (c, m) = validate_broker_config("log.segment.bytes", "10").unwrap_err();
        assert_eq!(c, code::INVALID_REQUEST);
        assert!(m.contains("log.segment.bytes"), "{m}");
        assert!(validate_broker_config("log.cleanup.policy", "compact,delete").is_ok());
        assert_eq!(
            validate_broker_config("leader.replication.throttled.rate", "fast").unwrap_err(),
            (
                code::INVALID_REQUEST,
                "Invalid value fast for configuration leader.replication.throttled.rate".into()
            )
        );
        assert!(validate_broker_config("leader.replication.throttled.rate", "-3").is_err());
    }
}
