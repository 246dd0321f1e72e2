//! Rendering of the CustomResourceDefinitions: the only place that turns the Rust types into
//! the YAML kept in `crds/` and the chart. Deterministic: the same types always render the same
//! bytes, which is what the drift test compares.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{KafkaCluster, KafkaTopic, MirrorFlow};

/// First line of every rendered CRD file.
pub const HEADER: &str =
    "# Generated from the Rust types in crates/strata-api by `crdgen`; do not edit.\n";

/// Every CRD of the API group, in a fixed order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![KafkaCluster::crd(), KafkaTopic::crd(), MirrorFlow::crd()]
}

/// File name of a CRD in `crds/`: `<plural>.<group>.yaml`, i.e. the CRD's name.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    let name = crd.metadata.name.as_deref().unwrap_or("unnamed");
    format!("{name}.yaml")
}

/// One CRD as a YAML document, starting with [`HEADER`].
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_norway::Error> {
    Ok(format!("{HEADER}{}", serde_norway::to_string(crd)?))
}

/// Every CRD as one multi-document YAML stream.
pub fn all_to_yaml() -> Result<String, serde_norway::Error> {
    let docs = all().iter().map(to_yaml).collect::<Result<Vec<_>, _>>()?;
    Ok(docs.join("---\n"))
}
