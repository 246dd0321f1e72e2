//! Validation of a `KafkaTopic` into a [`DesiredTopic`] and the diff against the topic the
//! cluster reports ([`ObservedTopic`]) into one [`TopicAction`]. Pure: no client. The only
//! place that decides what the operator may change on a topic: partitions only grow, the
//! replication factor never changes, config keys the resource never set are never touched.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use strata_api::KafkaTopic;
use strata_kafka::{properties, topic_name};

use crate::kafka::ObservedTopic;

/// Condition reasons of [`InvalidTopic`] and [`TopicAction::Refused`].
pub mod reason {
    /// The topic name breaks Kafka's rules.
    pub const INVALID_TOPIC_NAME: &str = "InvalidTopicName";
    /// `spec.config` has a key that is not a Kafka topic config.
    pub const UNKNOWN_CONFIG: &str = "UnknownConfig";
    /// `spec.partitions` below 1.
    pub const INVALID_PARTITIONS: &str = "InvalidPartitions";
    /// `spec.replicationFactor` outside 1..=32767.
    pub const INVALID_REPLICATION_FACTOR: &str = "InvalidReplicationFactor";
    /// Fewer partitions asked for than the topic has.
    pub const PARTITION_DECREASE_REFUSED: &str = "PartitionDecreaseRefused";
    /// A replication factor different from the topic's.
    pub const REPLICATION_FACTOR_CHANGE_REFUSED: &str = "ReplicationFactorChangeRefused";
}

/// A `KafkaTopic` the operator refuses: `reason` is the condition reason, `message` says what
/// to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct InvalidTopic {
    pub reason: &'static str,
    pub message: String,
}

/// The topic a `KafkaTopic` asks for, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredTopic {
    /// Name in Kafka: `spec.topicName`, else `metadata.name`.
    pub name: String,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i32>,
    pub config: BTreeMap<String, String>,
    /// Keys this resource set before (`status.managedConfig`); those no longer in `config`
    /// are reset to the broker default.
    pub previously_managed: BTreeSet<String>,
}

/// What to do to bring the topic in line with the resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicAction {
    /// The topic does not exist: create it.
    Create {
        partitions: Option<i32>,
        replication_factor: Option<i32>,
        config: BTreeMap<String, String>,
    },
    /// The topic exists and differs: grow it to `add_partitions_to` partitions, set the `set`
    /// values and delete (reset to default) the `delete` keys.
    Alter {
        add_partitions_to: Option<i32>,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    /// Nothing to do.
    InSync,
    /// The resource asks for a change the operator does not make; nothing is changed.
    Refused {
        reason: &'static str,
        message: String,
    },
}

fn invalid(reason: &'static str, message: String) -> InvalidTopic {
    InvalidTopic { reason, message }
}

/// Checks a topic name against Kafka's rules (`strata_kafka::topic_name`).
pub fn check_topic_name(name: &str) -> Result<(), InvalidTopic> {
    topic_name::validate(name).map_err(|_| {
        invalid(
            reason::INVALID_TOPIC_NAME,
            format!(
                "topic name {name:?} is not valid in Kafka: use 1 to {} of \
                 a-z, A-Z, 0-9, '.', '_' and '-' (not \".\" or \"..\"); set spec.topicName",
                topic_name::MAX_LEN
            ),
        )
    })
}

/// Validates `topic` into the topic it asks for.
pub fn desired(topic: &KafkaTopic) -> Result<DesiredTopic, InvalidTopic> {
    let spec = &topic.spec;
    let name = spec.topic_name.clone().unwrap_or_else(|| topic.name_any());
    check_topic_name(&name)?;
    if let Some(p) = spec.partitions.filter(|p| *p < 1) {
        return Err(invalid(
            reason::INVALID_PARTITIONS,
            format!("spec.partitions is {p}; use 1 or more"),
        ));
    }
    if let Some(rf) = spec
        .replication_factor
        .filter(|rf| !(1..=i32::from(i16::MAX)).contains(rf))
    {
        return Err(invalid(
            reason::INVALID_REPLICATION_FACTOR,
            format!("spec.replicationFactor is {rf}; use 1 to 32767"),
        ));
    }
    let unknown: Vec<&str> = spec
        .config
        .keys()
        .map(String::as_str)
        .filter(|k| properties::topic_config(k).is_none())
        .collect();
    if !unknown.is_empty() {
        return Err(invalid(
            reason::UNKNOWN_CONFIG,
            format!(
                "spec.config has {} that Kafka does not know as topic config: {}; broker-wide \
                 settings belong in the KafkaCluster's spec.config",
                if unknown.len() == 1 { "a key" } else { "keys" },
                unknown.join(", ")
            ),
        ));
    }
    Ok(DesiredTopic {
        name,
        partitions: spec.partitions,
        replication_factor: spec.replication_factor,
        config: spec.config.clone(),
        previously_managed: topic
            .status
            .as_ref()
            .map(|s| s.managed_config.iter().cloned().collect())
            .unwrap_or_default(),
    })
}

/// What to do to make `observed` (`None`: the topic does not exist) what `desired` asks for.
/// A partition decrease or a replication-factor change is refused and nothing else changes.
pub fn diff(desired: &DesiredTopic, observed: Option<&ObservedTopic>) -> TopicAction {
    let Some(observed) = observed else {
        return TopicAction::Create {
            partitions: desired.partitions,
            replication_factor: desired.replication_factor,
            config: desired.config.clone(),
        };
    };
    if let Some(wanted) = desired.partitions.filter(|p| *p < observed.partitions) {
        return TopicAction::Refused {
            reason: reason::PARTITION_DECREASE_REFUSED,
            message: format!(
                "topic {} has {} partitions and spec.partitions asks for {wanted}; Kafka cannot \
                 remove partitions: set spec.partitions to {} or more (or recreate the topic)",
                desired.name, observed.partitions, observed.partitions
            ),
        };
    }
    if let Some(wanted) = desired
        .replication_factor
        .filter(|rf| *rf != observed.replication_factor)
    {
        return TopicAction::Refused {
            reason: reason::REPLICATION_FACTOR_CHANGE_REFUSED,
            message: format!(
                "topic {} has replication factor {} and spec.replicationFactor asks for \
                 {wanted}; the operator does not reassign replicas: set it back to {} (or \
                 reassign with kafka-reassign-partitions first)",
                desired.name, observed.replication_factor, observed.replication_factor
            ),
        };
    }
    let add_partitions_to = desired.partitions.filter(|p| *p > observed.partitions);
    let set: BTreeMap<String, String> = desired
        .config
        .iter()
        .filter(|(k, v)| observed.configs.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let delete: Vec<String> = desired
        .previously_managed
        .iter()
        .filter(|k| !desired.config.contains_key(*k) && observed.configs.contains_key(*k))
        .cloned()
        .collect();
    if add_partitions_to.is_none() && set.is_empty() && delete.is_empty() {
        TopicAction::InSync
    } else {
        TopicAction::Alter {
            add_partitions_to,
            set,
            delete,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_api::{KafkaTopicSpec, KafkaTopicStatus};

    fn topic(name: &str, spec: serde_json::Value) -> KafkaTopic {
        let mut spec = spec;
        spec["clusterRef"] = serde_json::json!({"name": "c"});
        let spec: KafkaTopicSpec = serde_json::from_value(spec).unwrap();
        KafkaTopic::new(name, spec)
    }

    fn want(config: &[(&str, &str)], previously: &[&str]) -> DesiredTopic {
        DesiredTopic {
            name: "t".into(),
            partitions: Some(6),
            replication_factor: Some(3),
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            previously_managed: previously.iter().map(|k| k.to_string()).collect(),
        }
    }

    fn seen(partitions: i32, rf: i32, config: &[(&str, &str)]) -> ObservedTopic {
        ObservedTopic {
            topic_id: Some("id".into()),
            partitions,
            replication_factor: rf,
            configs: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn name_defaults_to_metadata_name_and_is_checked() {
        let t = topic("orders", serde_json::json!({}));
        assert_eq!(desired(&t).unwrap().name, "orders");
        let t = topic("orders", serde_json::json!({"topicName": "shop.Orders_v1"}));
        assert_eq!(desired(&t).unwrap().name, "shop.Orders_v1");
        for bad in [".", "..", "a b", "ü", &"x".repeat(250), ""] {
            let t = topic("orders", serde_json::json!({"topicName": bad}));
            assert_eq!(
                desired(&t).unwrap_err().reason,
                reason::INVALID_TOPIC_NAME,
                "{bad:?}"
            );
        }
        assert!(check_topic_name(&"x".repeat(249)).is_ok());
    }

    #[test]
    fn unknown_config_keys_are_refused() {
        let t = topic(
            "t",
            serde_json::json!({"config": {"retention.ms": "1", "log.retention.hours": "1"}}),
        );
        let err = desired(&t).unwrap_err();
        assert_eq!(err.reason, reason::UNKNOWN_CONFIG);
        assert!(err.message.contains("log.retention.hours"));
        assert!(!err.message.contains("retention.ms,"));
    }

    #[test]
    fn bad_counts_are_refused() {
        let t = topic("t", serde_json::json!({"partitions": 0}));
        assert_eq!(desired(&t).unwrap_err().reason, reason::INVALID_PARTITIONS);
        let t = topic("t", serde_json::json!({"replicationFactor": 40000}));
        assert_eq!(
            desired(&t).unwrap_err().reason,
            reason::INVALID_REPLICATION_FACTOR
        );
    }

    #[test]
    fn previously_managed_comes_from_status() {
        let mut t = topic("t", serde_json::json!({"config": {"retention.ms": "1"}}));
        t.status = Some(KafkaTopicStatus {
            managed_config: vec!["cleanup.policy".into()],
            ..Default::default()
        });
        let d = desired(&t).unwrap();
        assert_eq!(
            d.previously_managed,
            BTreeSet::from(["cleanup.policy".to_owned()])
        );
    }

    #[test]
    fn missing_topic_is_created() {
        let d = want(&[("retention.ms", "1")], &[]);
        assert_eq!(
            diff(&d, None),
            TopicAction::Create {
                partitions: Some(6),
                replication_factor: Some(3),
                config: d.config.clone()
            }
        );
    }

    #[test]
    fn partition_decrease_is_refused_with_both_numbers() {
        let d = want(&[("retention.ms", "1")], &[]);
        let TopicAction::Refused { reason: r, message } = diff(&d, Some(&seen(8, 3, &[]))) else {
            panic!("expected a refusal");
        };
        assert_eq!(r, reason::PARTITION_DECREASE_REFUSED);
        assert!(message.contains('8') && message.contains('6'), "{message}");
    }

    #[test]
    fn replication_factor_change_is_refused_and_nothing_else_changes() {
        let d = want(&[("retention.ms", "1")], &[]);
        let action = diff(&d, Some(&seen(4, 2, &[])));
        assert!(
            matches!(
                action,
                TopicAction::Refused {
                    reason: reason::REPLICATION_FACTOR_CHANGE_REFUSED,
                    ..
                }
            ),
            "{action:?}"
        );
    }

    #[test]
    fn growth_and_config_changes_are_altered() {
        let d = want(
            &[("retention.ms", "1"), ("cleanup.policy", "compact")],
            &["retention.ms", "segment.ms", "flush.ms"],
        );
        let observed = seen(
            4,
            3,
            &[
                ("retention.ms", "1"),
                ("cleanup.policy", "delete"),
                ("segment.ms", "5"),
                ("max.message.bytes", "99"),
            ],
        );
        assert_eq!(
            diff(&d, Some(&observed)),
            TopicAction::Alter {
                add_partitions_to: Some(6),
                set: [("cleanup.policy".to_owned(), "compact".to_owned())].into(),
                // flush.ms was managed but is no longer set; max.message.bytes was never ours.
                delete: vec!["segment.ms".to_owned()],
            }
        );
    }

    #[test]
    fn matching_topic_is_in_sync() {
        let d = want(&[("retention.ms", "1")], &["retention.ms"]);
        let observed = seen(6, 3, &[("retention.ms", "1"), ("segment.ms", "5")]);
        assert_eq!(diff(&d, Some(&observed)), TopicAction::InSync);
        // Unset partitions / replication factor accept whatever the topic has.
        let loose = DesiredTopic {
            partitions: None,
            replication_factor: None,
            ..d
        };
        assert_eq!(
            diff(&loose, Some(&seen(12, 1, &[("retention.ms", "1")]))),
            TopicAction::InSync
        );
    }
}
