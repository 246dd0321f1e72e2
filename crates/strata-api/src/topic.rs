//! The `KafkaTopic` custom resource: one topic on a `KafkaCluster`, created and altered by the
//! operator through the Kafka admin API, and the status it reports back. Pure data.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::ClusterReference;

/// Desired state of a Kafka topic.
// `printcolumn(type_ = ..)` repeats per column, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kafka.strata.dev",
    version = "v1alpha1",
    kind = "KafkaTopic",
    plural = "kafkatopics",
    namespaced,
    status = "KafkaTopicStatus",
    shortname = "kt",
    category = "strata",
    derive = "PartialEq",
    doc = "A topic on a KafkaCluster, managed through the Kafka admin API.",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        description = "KafkaCluster the topic lives on",
        json_path = ".spec.clusterRef.name"
    ),
    printcolumn(
        name = "Partitions",
        type_ = "integer",
        description = "Partitions the topic has",
        json_path = ".status.partitions"
    ),
    printcolumn(
        name = "Replication",
        type_ = "integer",
        description = "Replication factor the topic has",
        json_path = ".status.replicationFactor"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Status of the Ready condition",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaTopicSpec {
    /// The `KafkaCluster` that holds the topic.
    pub cluster_ref: ClusterReference,

    /// Name of the topic in Kafka. Defaults to `metadata.name`; set it for names Kubernetes
    /// does not allow, such as names with `_` or upper-case letters. Cannot change afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    pub topic_name: Option<String>,

    /// Number of partitions. Unset uses the broker's `num.partitions`. May grow; a decrease is
    /// refused with a condition and nothing is changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub partitions: Option<i32>,

    /// Number of replicas of each partition. Unset uses the broker's
    /// `default.replication.factor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32767))]
    pub replication_factor: Option<i32>,

    /// Topic configuration with Kafka property names, e.g. `retention.ms: "604800000"` or
    /// `cleanup.policy: compact`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,

    /// What deleting this object does to the topic in Kafka: `Retain` (default) keeps the topic
    /// and its data, `Delete` deletes the topic.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What deleting a `KafkaTopic` does to the topic in Kafka.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Retain,
    Delete,
}

/// Observed state of a Kafka topic, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaTopicStatus {
    /// `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions: `Ready` when the topic exists with the spec's settings; `False` with
    /// a reason when a change was refused (e.g. `PartitionDecreaseRefused`).
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Topic id Kafka assigned (base64 UUID as Kafka prints it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,

    /// Partitions the topic has in Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,

    /// Replication factor the topic has in Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i32>,

    /// Topic config keys this resource set, so a key removed from spec.config is reset to the
    /// broker default.
    // Serialized even when empty: a merge patch of the status must be able to clear the list.
    #[serde(default)]
    pub managed_config: Vec<String>,
}
