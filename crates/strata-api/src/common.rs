//! Pieces shared by the three custom resources: the API group and version and the reference to
//! a `KafkaCluster` (defined in `strata-flow`, whose `MirrorFlow` endpoints use it). Pure data.

/// API group of every Strata custom resource.
pub const GROUP: &str = "kafka.strata.dev";
/// API version of every Strata custom resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` value of every Strata custom resource.
pub const API_VERSION: &str = "kafka.strata.dev/v1alpha1";

pub use strata_flow::ClusterReference;

/// Serde helper: `true`, for boolean fields that default to on.
pub(crate) fn default_true() -> bool {
    true
}
