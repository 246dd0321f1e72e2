//! Topic-level configuration: the Kafka topic config names this broker knows, their types,
//! validation, the broker property each one defaults from, and the mapping onto a
//! [`strata_log::LogConfig`]. Pure: no I/O. The one place that decides whether a topic config
//! value is acceptable, so CreateTopics, AlterConfigs and IncrementalAlterConfigs agree.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use strata_kafka::preserve::MIRROR_SOURCE_CONFIG;
use strata_kafka::properties::{self, ValueType};
use strata_log::{LogConfig, TimestampType};

use crate::config::{parse_cleanup_policy, parse_timestamp_type, BrokerConfig};

/// One topic config key the broker serves: Kafka's name, type and broker synonym (from
/// `strata_kafka::properties`) with the broker's own description.
#[derive(Debug)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub kind: ValueType,
    /// The broker property that supplies the default (a Kafka "synonym").
    pub broker_synonym: Option<&'static str>,
    pub doc: &'static str,
}

/// The topic configs served, in Kafka's alphabetical order, with their descriptions. Every
/// name but Strata's own `strata.mirror.source` is one of Kafka's topic configs.
const SERVED: &[(&str, &str)] = &[
    ("cleanup.policy", "delete, compact or both: how old log segments are discarded."),
    ("compression.type", "Final compression of stored batches; batches are kept as the producer sent them (producer)."),
    ("delete.retention.ms", "How long tombstones are kept on compacted topics."),
    ("file.delete.delay.ms", "Delay before a deleted segment file is removed."),
    ("flush.messages", "Force an fsync after this many messages."),
    ("flush.ms", "Force an fsync after this much time."),
    ("follower.replication.throttled.replicas", "Replicas (partition:broker, or *) whose replication is throttled on the follower side while they are out of the ISR."),
    ("index.interval.bytes", "Bytes between offset index entries."),
    ("leader.replication.throttled.replicas", "Replicas (partition:broker, or *) whose replication is throttled on the leader side while they are out of the ISR."),
    ("max.compaction.lag.ms", "Maximum time a record stays uncompacted."),
    ("max.message.bytes", "Largest record batch size allowed."),
    ("message.timestamp.after.max.ms", "Allowed future skew of a record timestamp."),
    ("message.timestamp.before.max.ms", "Allowed past skew of a record timestamp."),
    ("message.timestamp.type", "CreateTime or LogAppendTime."),
    ("min.cleanable.dirty.ratio", "Dirty ratio that triggers compaction."),
    ("min.compaction.lag.ms", "Minimum time a record stays uncompacted."),
    ("min.insync.replicas", "In-sync replicas required for acks=all."),
    ("preallocate", "Preallocate segment files."),
    ("retention.bytes", "Maximum partition size before old segments are deleted (-1: no limit)."),
    ("retention.ms", "Maximum age of a segment before it is deleted (-1: no limit)."),
    ("segment.bytes", "Segment file size."),
    ("segment.index.bytes", "Offset index size."),
    ("segment.jitter.ms", "Random jitter subtracted from segment.ms."),
    ("segment.ms", "Time after which the active segment rolls."),
    (MIRROR_SOURCE_CONFIG, "Strata: marks the topic as the target of an offset-preserving mirror flow from this source cluster alias; only strata-mirror writes to it. Delete it to promote the topic (see mirror_target)."),
    ("unclean.leader.election.enable", "Allow out-of-sync replicas to become leader."),
];

/// Every topic config key accepted, in Kafka's alphabetical order.
pub static TOPIC_CONFIGS: LazyLock<Vec<TopicConfigDef>> = LazyLock::new(|| {
    SERVED
        .iter()
        .map(|&(name, doc)| match properties::topic_config(name) {
            Some(kafka) => TopicConfigDef {
                name: kafka.name,
                kind: kafka.kind,
                broker_synonym: kafka.broker_synonym,
                doc,
            },
            // Strata's extension, not a Kafka topic config (a test checks there is no other).
            None => TopicConfigDef {
                name,
                kind: ValueType::String,
                broker_synonym: None,
                doc,
            },
        })
        .collect()
});

/// Looks a topic config key up.
pub fn lookup(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one topic config value; the error text is what clients see.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    validate_as(name, name, value)
}

/// Checks a value of the topic config `name` given under the name `shown` (a dynamic broker
/// config that sets its default); the error text names `shown`.
pub fn validate_as(name: &str, shown: &str, value: &str) -> Result<(), String> {
    let Some(d) = lookup(name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    let num_err = || format!("Invalid value {value} for configuration {shown}");
    match d.kind {
        ValueType::Boolean => {
            if value != "true" && value != "false" {
                return Err(format!(
                    "Invalid value {value} for configuration {shown}: Expected value to be either true or false"
                ));
            }
        }
        ValueType::Int | ValueType::Short => {
            let v: i32 = value.parse().map_err(|_| num_err())?;
            let min = match name {
                "segment.bytes" => 14,
                "max.message.bytes" | "index.interval.bytes" => 0,
                "min.insync.replicas" => 1,
                "segment.index.bytes" => 4,
                _ => i32::MIN,
            };
            if v < min {
                return Err(format!(
                    "Invalid value {value} for configuration {shown}: Value must be at least {min}"
                ));
            }
        }
        ValueType::Long => {
            let v: i64 = value.parse().map_err(|_| num_err())?;
            let min = match name {
                "retention.ms" | "retention.bytes" => -1,
                "segment.ms" | "flush.messages" | "flush.ms" => 1,
                _ => 0,
            };
            if v < min {
                return Err(format!(
                    "Invalid value {value} for configuration {shown}: Value must be at least {min}"
                ));
            }
        }
        ValueType::Double => {
            let v: f64 = value.parse().map_err(|_| num_err())?;
            if !(0.0..=1.0).contains(&v) {
                return Err(format!(
                    "Invalid value {value} for configuration {shown}: Value must be between 0 and 1"
                ));
            }
        }
        ValueType::List if name.ends_with(".replication.throttled.replicas") => {
            // Kafka's ThrottledReplicaListValidator: `*`, or `partition:broker` entries.
            let entry_ok = |e: &str| {
                let mut parts = e.split(':');
                let ok = |p: Option<&str>| p.is_some_and(|p| p.trim().parse::<u32>().is_ok());
                ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
            };
            let trimmed = value.trim();
            if !(trimmed.is_empty()
                || trimmed == "*"
                || trimmed.split(',').all(|e| entry_ok(e.trim())))
            {
                return Err(format!(
                    "Invalid value {value} for configuration {shown}: must be the list of replicas as partition:broker entries (e.g. 0:1,1:2) or the wildcard *"
                ));
            }
        }
        ValueType::List => {
            parse_cleanup_policy(name, value).map_err(|e| e.to_string())?;
        }
        // No topic config names a class or holds a secret.
        ValueType::Class | ValueType::Password => {}
        ValueType::String => match name {
            "message.timestamp.type" => {
                parse_timestamp_type(name, value).map_err(|e| e.to_string())?;
            }
            "compression.type" => {
                const OK: &[&str] = &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];
                if !OK.contains(&value) {
                    return Err(format!(
                        "Invalid value {value} for configuration compression.type: String must be one of: {}",
                        OK.join(", ")
                    ));
                }
            }
            MIRROR_SOURCE_CONFIG => {
                crate::mirror_target::validate_source_alias(value)?;
            }
            _ => {}
        },
    }
    Ok(())
}

/// The value a topic has for `name` when it sets no override (from the broker's defaults).
pub fn default_value(name: &str, broker: &BrokerConfig) -> String {
    let d = &broker.log_defaults;
    match name {
        "cleanup.policy" => match (d.cleanup_policy.compact, d.cleanup_policy.delete) {
            (true, true) => "compact,delete".into(),
            (true, false) => "compact".into(),
            _ => "delete".into(),
        },
        "compression.type" => "producer".into(),
        "delete.retention.ms" => d.delete_retention_ms.to_string(),
        "file.delete.delay.ms" => "60000".into(),
        "flush.messages" => d.flush_messages.min(i64::MAX as u64).to_string(),
        "flush.ms" => d.flush_ms.to_string(),
        "index.interval.bytes" => d.index_interval_bytes.to_string(),
        "max.compaction.lag.ms" => i64::MAX.to_string(),
        "max.message.bytes" => d.max_message_bytes.to_string(),
        "message.timestamp.after.max.ms" | "message.timestamp.before.max.ms" => {
            i64::MAX.to_string()
        }
        "message.timestamp.type" => match d.message_timestamp_type {
            TimestampType::CreateTime => "CreateTime".into(),
            TimestampType::LogAppendTime => "LogAppendTime".into(),
        },
        "min.cleanable.dirty.ratio" => d.min_cleanable_dirty_ratio.to_string(),
        "min.compaction.lag.ms" => d.min_compaction_lag_ms.to_string(),
        "min.insync.replicas" => broker.min_insync_replicas.to_string(),
        "preallocate" | "unclean.leader.election.enable" => "false".into(),
        "retention.bytes" => d.retention_bytes.to_string(),
        "retention.ms" => d.retention_ms.to_string(),
        "segment.bytes" => d.segment_bytes.to_string(),
        "segment.index.bytes" => "10485760".into(),
        "segment.jitter.ms" => "0".into(),
        "segment.ms" => d.segment_ms.to_string(),
        // Not a mirror target unless set.
        _ => String::new(),
    }
}

/// The topic config whose default the broker config `broker_name` supplies (Kafka's synonym).
pub fn defaulted_by(broker_name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS
        .iter()
        .find(|d| d.broker_synonym == Some(broker_name))
}

/// The topic-level defaults that dynamic broker configs give, named as topic configs: the
/// cluster default's, then this broker's own over them (Kafka's order). Broker configs that
/// are no topic config's synonym are left out.
pub fn dynamic_defaults(
    cluster: &BTreeMap<String, String>,
    own: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in cluster.iter().chain(own.into_iter().flatten()) {
        if let Some(d) = defaulted_by(k) {
            out.insert(d.name.to_string(), v.clone());
        }
    }
    out
}

/// A topic's overrides over the dynamic defaults: what [`log_config`] applies over the
/// broker's static defaults.
pub fn with_dynamic_defaults(
    overrides: &BTreeMap<String, String>,
    dynamic: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = dynamic.clone();
    out.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// The log configuration of a topic: broker defaults with the topic's overrides applied.
/// Overrides were validated when they were set, so a value that no longer parses keeps the default.
pub fn log_config(overrides: &BTreeMap<String, String>, broker: &BrokerConfig) -> LogConfig {
    let mut c = broker.log_defaults.clone();
    for (k, v) in overrides {
        match k.as_str() {
            "cleanup.policy" => {
                if let Ok(p) = parse_cleanup_policy(k, v) {
                    c.cleanup_policy = p;
                }
            }
            "delete.retention.ms" => set(&mut c.delete_retention_ms, v),
            "flush.messages" => set(&mut c.flush_messages, v),
            "flush.ms" => set(&mut c.flush_ms, v),
            "index.interval.bytes" => set(&mut c.index_interval_bytes, v),
            "max.message.bytes" => set(&mut c.max_message_bytes, v),
            "message.timestamp.type" => {
                if let Ok(t) = parse_timestamp_type(k, v) {
                    c.message_timestamp_type = t;
                }
            }
            "min.cleanable.dirty.ratio" => set(&mut c.min_cleanable_dirty_ratio, v),
            "min.compaction.lag.ms" => set(&mut c.min_compaction_lag_ms, v),
            "retention.bytes" => set(&mut c.retention_bytes, v),
            "retention.ms" => set(&mut c.retention_ms, v),
            "segment.bytes" => set(&mut c.segment_bytes, v),
            "segment.ms" => set(&mut c.segment_ms, v),
            _ => {}
        }
    }
    c
}

fn set<T: std::str::FromStr>(slot: &mut T, value: &str) {
    if let Ok(v) = value.parse() {
        *slot = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_replica_lists_take_kafkas_forms() {
        for ok in ["0:1,1:2", "*", "", " 3:4 , 5:6 "] {
            assert!(
                validate("leader.replication.throttled.replicas", ok).is_ok(),
                "{ok}"
            );
        }
        for bad in ["1", "a:b", "1:2:3", "0:1,", "delete"] {
            assert!(
                validate("follower.replication.throttled.replicas", bad).is_err(),
                "{bad}"
            );
        }
    }

    fn broker() -> BrokerConfig {
        BrokerConfig::from_properties(BTreeMap::new()).unwrap()
    }

    #[test]
    fn validation_matches_kafka_messages() {
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("retention.ms", "-2").is_err());
        assert!(validate("retention.ms", "abc").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "never").is_err());
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("no.such.config", "1")
            .unwrap_err()
            .contains("Unknown topic config"));
        assert!(validate("compression.type", "zstd").is_ok());
        assert!(validate("compression.type", "brotli").is_err());
    }

    #[test]
    fn overrides_map_onto_the_log_config() {
        let b = broker();
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "1000".to_string());
        o.insert("cleanup.policy".to_string(), "compact".to_string());
        o.insert("segment.bytes".to_string(), "2048".to_string());
        let c = log_config(&o, &b);
        assert_eq!(c.retention_ms, 1000);
        assert!(c.cleanup_policy.compact && !c.cleanup_policy.delete);
        assert_eq!(c.segment_bytes, 2048);
        assert_eq!(default_value("retention.ms", &b), "604800000");
    }

    #[test]
    fn dynamic_broker_defaults_apply_under_the_topic_overrides() {
        let b = broker();
        let cluster = BTreeMap::from([
            ("log.retention.ms".to_string(), "5000".to_string()),
            ("message.max.bytes".to_string(), "2000".to_string()),
            (
                "leader.replication.throttled.rate".to_string(),
                "10".to_string(),
            ),
        ]);
        let own = BTreeMap::from([("message.max.bytes".to_string(), "1000".to_string())]);
        let dynamic = dynamic_defaults(&cluster, Some(&own));
        assert_eq!(
            dynamic,
            BTreeMap::from([
                ("max.message.bytes".to_string(), "1000".to_string()),
                ("retention.ms".to_string(), "5000".to_string()),
            ])
        );
        let topic = BTreeMap::from([("retention.ms".to_string(), "7000".to_string())]);
        let c = log_config(&with_dynamic_defaults(&topic, &dynamic), &b);
        assert_eq!((c.retention_ms, c.max_message_bytes), (7000, 1000));
        assert!(validate_as("retention.ms", "log.retention.ms", "-5")
            .unwrap_err()
            .contains("configuration log.retention.ms"));
    }

    #[test]
    fn every_served_key_but_the_mirror_marker_is_a_kafka_topic_config() {
        for d in TOPIC_CONFIGS.iter() {
            assert_eq!(
                properties::topic_config(d.name).is_none(),
                d.name == MIRROR_SOURCE_CONFIG,
                "{}",
                d.name
            );
        }
    }

    #[test]
    fn every_key_has_a_default() {
        let b = broker();
        for d in TOPIC_CONFIGS
            .iter()
            .filter(|d| d.name != MIRROR_SOURCE_CONFIG)
        {
            let v = default_value(d.name, &b);
            // Kafka's default of the throttled-replica lists is the empty list.
            let may_be_empty = d.name.ends_with(".replication.throttled.replicas");
            assert!(may_be_empty || !v.is_empty(), "{}", d.name);
            assert!(validate(d.name, &v).is_ok(), "{} = {v}", d.name);
        }
    }
}
