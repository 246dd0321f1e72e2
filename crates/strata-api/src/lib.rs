//! Custom resource types of the Strata operator, group `kafka.strata.dev`, version `v1alpha1`:
//! [`KafkaCluster`], [`KafkaTopic`] and [`MirrorFlow`]. Pure data: no client, no I/O. The types
//! are the single source of the CRD schemas in `crds/` (rendered by [`crd`] and the `crdgen`
//! binary); doc comments on fields become the schema descriptions shown by `kubectl explain`.
//! Serde defaults mirror the schema defaults, so an object read from the API server and a
//! manifest deserialized locally carry the same values. Cross-field rules that a schema cannot
//! express (a rack name used twice, listeners sharing a port) are checked by the operator's
//! validation step, not here. The flow's plain field types live in `strata-flow` and are
//! re-exported here; the `MirrorFlow` status carries the failover engine's saved state
//! (`strata-failover` without its Kafka executor).

pub mod cluster;
pub mod common;
pub mod crd;
pub mod mirror;
pub mod schema_check;
pub mod topic;

pub use cluster::{
    Authentication, BrokerStatus, DrainSpec, DrainStatus, KafkaCluster, KafkaClusterSpec,
    KafkaClusterStatus, Listener, PodTemplateOverrides, Rack, Storage,
};
pub use common::{ClusterReference, API_VERSION, GROUP, VERSION};
pub use mirror::{
    ActiveSide, ClusterEndpoint, CompressionType, Detection, Failback, FailbackPolicy,
    FailoverMode, FailoverRecord, FailoverSpec, GroupFilter, MirrorFlow, MirrorFlowSpec,
    MirrorFlowStatus, MirrorPhase, NamingMode, OffsetMode, SaslMechanism, SaslSecretRef, SyncSpec,
    TlsSecretRef, TopicFilter, Tuning,
};
pub use topic::{DeletionPolicy, KafkaTopic, KafkaTopicSpec, KafkaTopicStatus};
