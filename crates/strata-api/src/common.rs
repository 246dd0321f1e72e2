//! Pieces shared by the three custom resources: the API group and version, the reference to a
//! `KafkaCluster`, and the schema attributes of a standard `conditions` list. Pure data.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every Strata custom resource.
pub const GROUP: &str = "kafka.strata.dev";
/// API version of every Strata custom resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` value of every Strata custom resource.
pub const API_VERSION: &str = "kafka.strata.dev/v1alpha1";

/// Reference to a `KafkaCluster` in the namespace of the referring object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReference {
    /// Name of the `KafkaCluster` (same namespace as the referring object).
    #[schemars(length(min = 1))]
    pub name: String,
}

impl ClusterReference {
    /// A reference to the cluster called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

/// Serde helper: `true`, for boolean fields that default to on.
pub(crate) fn default_true() -> bool {
    true
}
