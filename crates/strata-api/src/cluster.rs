//! The `KafkaCluster` custom resource: the desired shape of one Strata cluster (racks, storage,
//! listeners, broker configuration, pod overrides) and the status the operator reports back.
//! Pure data. Broker ids are not chosen here: the operator derives them from `spec.racks` and
//! records the stable rack → ids assignment in `status.brokerIds`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::default_true;

/// Desired state of a Strata Kafka cluster.
// `printcolumn(type_ = ..)` repeats per column, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kafka.strata.dev",
    version = "v1alpha1",
    kind = "KafkaCluster",
    plural = "kafkaclusters",
    namespaced,
    status = "KafkaClusterStatus",
    shortname = "kc",
    category = "strata",
    derive = "PartialEq",
    doc = "A Kafka-compatible Strata cluster: one StatefulSet per rack, pinned to its zone.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Status of the Ready condition",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Brokers",
        type_ = "integer",
        description = "Brokers that are ready",
        json_path = ".status.readyBrokers"
    ),
    printcolumn(
        name = "Racks",
        type_ = "integer",
        description = "Racks in the cluster",
        json_path = ".status.racks"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterSpec {
    /// Failure domains of the cluster. Each rack becomes one StatefulSet whose brokers carry
    /// `broker.rack` set to the rack name, so replicas of a partition are spread across racks.
    /// A 3-zone stretch cluster has three racks, one per zone. Rack names are unique.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub racks: Vec<Rack>,

    /// Node label that holds the zone of a node; a rack's `zone` is matched against it.
    #[serde(default = "default_topology_key")]
    pub topology_key: String,

    /// Number of controller-quorum voters, spread across racks. Odd numbers tolerate the most
    /// failures for their size (3 survive one lost voter, 5 survive two).
    #[serde(default = "default_controller_voters")]
    #[schemars(range(min = 1))]
    pub controller_voters: i32,

    /// Persistent storage of each broker (one PersistentVolumeClaim per broker).
    pub storage: Storage,

    /// Listeners the brokers open. Defaults to one plaintext listener `plain` on port 9092.
    /// Listener names are unique.
    #[serde(default = "default_listeners")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub listeners: Vec<Listener>,

    /// Broker configuration with Kafka property names, e.g. `min.insync.replicas: "2"` or
    /// `log.retention.hours: "168"`. Properties the operator owns (`broker.id`, `broker.rack`,
    /// listeners, quorum voters) are rejected by validation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,

    /// CPU and memory requests and limits of each broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Broker container image. Defaults to the image the operator was released with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Overrides applied to every broker pod.
    #[serde(default)]
    pub template: PodTemplateOverrides,

    /// How brokers that a change removes are drained before their pods go.
    #[serde(default)]
    pub drain: DrainSpec,
}

/// Draining of leaving brokers: their replicas are reassigned to the remaining brokers
/// (rack-aware) with Kafka's replication throttles set for the move and removed afterwards.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainSpec {
    /// Replication throttle during a drain, in bytes per second per broker: set as
    /// `leader.replication.throttled.rate` and `follower.replication.throttled.rate` on the
    /// brokers involved. 0 moves without a throttle.
    #[serde(default = "default_drain_throttle")]
    #[schemars(range(min = 0))]
    pub throttle_bytes_per_second: i64,
}

impl Default for DrainSpec {
    fn default() -> Self {
        Self {
            throttle_bytes_per_second: default_drain_throttle(),
        }
    }
}

fn default_drain_throttle() -> i64 {
    // 50 MiB/s: a drain finishes in minutes for gigabytes without starving clients.
    50 * 1024 * 1024
}

/// One failure domain: a group of brokers placed together, usually one zone.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rack {
    /// Rack name: used as `broker.rack` and in the names of the rack's StatefulSet and pods.
    /// A DNS label: lowercase letters, digits and `-`.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Zone the rack's pods are pinned to, matched against the node label named by
    /// `spec.topologyKey`. May be combined with `nodeSelector`; with neither, pods are not pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,

    /// Node labels the rack's pods must match, for placements a zone label cannot express.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Number of brokers in this rack. 0 keeps the rack's broker ids reserved without pods.
    #[schemars(range(min = 0))]
    pub brokers: i32,
}

/// Persistent storage of each broker.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Size of each broker's volume, a Kubernetes quantity such as `100Gi`.
    pub size: Quantity,

    /// StorageClass of the volumes. Unset uses the cluster's default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,

    /// Keep the PersistentVolumeClaims when the `KafkaCluster` is deleted or scaled down, so
    /// the data survives a mistaken delete. Set to `false` to delete them with the cluster.
    #[serde(default = "default_true")]
    pub retain_on_delete: bool,
}

/// One listener of every broker.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// Listener name, unique in the cluster; becomes the Kafka listener name (upper-cased).
    #[schemars(
        length(min = 1, max = 25),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// TCP port the listener binds on every broker.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Serve TLS on this listener.
    #[serde(default)]
    pub tls: bool,

    /// Client authentication on this listener: `none`, `scram-sha-512`, `scram-sha-256`,
    /// `plain` (SASL/PLAIN) or `mtls` (client certificates; requires `tls: true`).
    #[serde(default)]
    pub authentication: Authentication,
}

/// Client authentication of a listener.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Authentication {
    #[default]
    #[serde(rename = "none")]
    None,
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "plain")]
    Plain,
    #[serde(rename = "mtls")]
    Mtls,
}

/// Overrides applied to every broker pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Tolerations added to the broker pods, e.g. for nodes dedicated to Kafka.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Annotations added to the broker pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Labels added to the broker pods; the operator's own selector labels win on conflict.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// PriorityClass of the broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// Observed state of a Strata Kafka cluster, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterStatus {
    /// `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions: `Ready` (all brokers ready and serving), `Progressing` (a rollout,
    /// scale or drain is under way) and `Degraded` (something needs attention; see the reason).
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Every broker the spec asks for, with its placement and readiness.
    #[serde(default)]
    pub brokers: Vec<BrokerStatus>,

    /// `host:port` list clients bootstrap from (the bootstrap Service of the first listener).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_address: Option<String>,

    /// Stable assignment of broker ids to racks, by rack name. Ids once given to a rack stay
    /// with it when racks are added, so brokers keep their data and identity.
    #[serde(default)]
    pub broker_ids: BTreeMap<String, Vec<i32>>,

    /// Id block of each rack (ids block*100 .. block*100+99); kept for removed racks so their
    /// ids are never reused.
    #[serde(default)]
    pub rack_id_blocks: BTreeMap<String, i32>,

    /// Number of brokers whose pod is ready.
    #[serde(default)]
    pub ready_brokers: i32,

    /// Number of racks in the spec.
    #[serde(default)]
    pub racks: i32,

    /// A drain under way: brokers leaving, replicas still moving, throttles set for the move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainStatus>,

    /// Brokers restarted by a rolling restart whose preferred leaderships are to be moved back
    /// to them (a preferred leader election) once the cluster is fully replicated again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leadership_pending: Vec<i32>,

    /// Since when (RFC 3339) the rolling restart has been waiting for the cluster to be fully
    /// replicated; past the operator's deadline the wait is reported as `Degraded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_waiting_since: Option<String>,
}

/// Progress of a drain of leaving brokers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainStatus {
    /// Brokers being drained.
    pub brokers: Vec<i32>,
    /// Partitions that still have a replica on a leaving broker.
    pub partitions_moving: i32,
    /// The first of those partitions (`topic-partition`), for people.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<String>,
    /// Topics whose `*.replication.throttled.replicas` the drain set (removed when it ends).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttled_topics: Vec<String>,
    /// Brokers whose `*.replication.throttled.rate` the drain set (removed when it ends).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttled_brokers: Vec<i32>,
}

/// Placement and readiness of one broker.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    /// Broker id (`node.id`).
    pub id: i32,
    /// Rack the broker belongs to.
    pub rack: String,
    /// Name of the broker's pod.
    pub pod: String,
    /// Whether the broker's pod is ready.
    pub ready: bool,
}

fn default_topology_key() -> String {
    "topology.kubernetes.io/zone".to_owned()
}

fn default_controller_voters() -> i32 {
    3
}

fn default_listeners() -> Vec<Listener> {
    vec![Listener {
        name: "plain".to_owned(),
        port: 9092,
        tls: false,
        authentication: Authentication::None,
    }]
}
