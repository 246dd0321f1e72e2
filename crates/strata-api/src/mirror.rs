//! The `MirrorFlow` custom resource: a one-way mirror from a source cluster to a target cluster
//! (topics, configs, ACLs, consumer-group offsets) plus the active-standby failover policy that
//! goes with it, and the status a controller reports back. Pure data. The spec's field types
//! are the plain ones of `strata-flow`, which `strata-mirror` reads from its configuration file
//! too (re-exported here). `strata-operator` runs the mirror of a flow, keeps its discovery
//! Service on the active cluster and reports phase, active side, lag and conditions here.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use strata_flow::{
    ActiveSide, ClusterEndpoint, CompressionType, Detection, Failback, FailbackPolicy,
    FailoverMode, FailoverSpec, GroupFilter, NamingMode, OffsetMode, SaslMechanism, SaslSecretRef,
    SyncSpec, TlsSecretRef, TopicFilter, Tuning,
};

/// Desired state of a mirror between two Kafka clusters.
// `printcolumn(type_ = ..)` repeats per column, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kafka.strata.dev",
    version = "v1alpha1",
    kind = "MirrorFlow",
    plural = "mirrorflows",
    namespaced,
    status = "MirrorFlowStatus",
    shortname = "mf",
    category = "strata",
    derive = "PartialEq",
    doc = "A mirror from a source Kafka cluster to a target one, with active-standby failover.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        description = "Phase of the flow",
        json_path = ".status.phase"
    ),
    printcolumn(
        name = "Active",
        type_ = "string",
        description = "Side clients are pointed at",
        json_path = ".status.activeCluster"
    ),
    printcolumn(
        name = "Lag",
        type_ = "integer",
        description = "Records not yet mirrored",
        json_path = ".status.lagRecords"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MirrorFlowSpec {
    /// Cluster records are read from while the source is active.
    pub source: ClusterEndpoint,

    /// Cluster records are written to while the source is active; the standby.
    pub target: ClusterEndpoint,

    /// Which topics are mirrored.
    #[serde(default)]
    pub topics: TopicFilter,

    /// Which consumer groups have their offsets synced.
    #[serde(default)]
    pub groups: GroupFilter,

    /// Names of mirrored topics on the target: `Prefixed` (default) writes `orders` as
    /// `<source alias>.orders`, so both clusters can take writes without loops; `Identity`
    /// keeps the name, which active-standby setups use so clients need no renaming.
    #[serde(default)]
    pub naming: NamingMode,

    /// Consumer offsets on the target: `Translate` (default) maps source offsets to target
    /// offsets through offset syncs; `Preserve` keeps records at the same offsets, so group
    /// offsets copy unchanged (needs `Identity` naming and a target written only by the mirror).
    #[serde(default)]
    pub offsets: OffsetMode,

    /// What is synced besides records.
    #[serde(default)]
    pub sync: SyncSpec,

    /// Producer and consumer tuning of the mirror, with Kafka's meanings.
    #[serde(default)]
    pub tuning: Tuning,

    /// Number of mirror worker pods; partitions are shared between them.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,

    /// CPU and memory requests and limits of each mirror container. Without them the mirror
    /// pods run BestEffort and get the least CPU when they share a node with brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Active-standby failover between source and target.
    #[serde(default)]
    pub failover: FailoverSpec,
}

/// Observed state of a mirror, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorFlowStatus {
    /// `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions: `Ready` (mirroring within its lag budget), `Progressing`,
    /// `Degraded`, and `Fenced` (whether the old active cluster could be fenced).
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Phase: `Mirroring`, `FailingOver`, `FailedOver`, `FailingBack` or `Degraded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MirrorPhase>,

    /// Side clients are currently pointed at: `source` or `target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_cluster: Option<ActiveSide>,

    /// Records on the active side not yet mirrored to the standby, summed over partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_records: Option<i64>,

    /// When consumer-group offsets were last checkpointed to the standby.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checkpoint_time: Option<Time>,

    /// Outcome of the most recent failover or failback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<FailoverRecord>,

    /// The failover engine's saved state (`strata-failover`): the step of a failover in
    /// progress and its id, written before the step runs, so a restarted or replaced operator
    /// resumes where the last one stopped. Managed by the operator; do not edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<strata_failover::FailoverState>,
}

/// Phase of a `MirrorFlow`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum MirrorPhase {
    Mirroring,
    FailingOver,
    FailedOver,
    FailingBack,
    Degraded,
}

/// What one failover or failback did and cost.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverRecord {
    /// When the failover started.
    pub time: Time,

    /// Why it happened, e.g. `DesiredActiveChanged` or `ProbeFailed`.
    pub reason: String,

    /// Records written to the old active side that were not mirrored when it was fenced: the
    /// data lost by this failover (RPO), unless recovered by failback.
    pub records_at_risk: i64,

    /// Seconds from detection until clients were pointed at the new active side (RTO).
    pub duration_seconds: f64,

    /// Side that was active before.
    pub from: ActiveSide,

    /// Side that is active after.
    pub to: ActiveSide,
}

fn default_replicas() -> i32 {
    1
}
