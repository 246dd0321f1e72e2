//! Rendering of the CustomResourceDefinitions: the only place that turns the Rust types into
//! the YAML kept in `crds/` and the chart. Deterministic: the same types always render the same
//! bytes, which is what the drift test compares. Descriptions are reflowed: the line breaks of
//! a doc comment become spaces (paragraphs and indented or bulleted lines are kept), so that
//! `kubectl explain` wraps them itself.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::{KafkaCluster, KafkaTopic, MirrorFlow};

/// First line of every rendered CRD file.
pub const HEADER: &str =
    "# Generated from the Rust types in crates/strata-api by `crdgen`; do not edit.\n";

/// Every CRD of the API group, in a fixed order, with reflowed descriptions.
pub fn all() -> Vec<CustomResourceDefinition> {
    [KafkaCluster::crd(), KafkaTopic::crd(), MirrorFlow::crd()]
        .into_iter()
        .map(reflow_descriptions)
        .collect()
}

fn reflow_descriptions(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    // Round trip through JSON: the typed schema nests through three different wrapper enums.
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    reflow_in(&mut value);
    serde_json::from_value(value).unwrap_or(crd)
}

fn reflow_in(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match child {
                    Value::String(text) if key == "description" => *text = reflow(text),
                    _ => reflow_in(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(reflow_in),
        _ => {}
    }
}

/// Joins the lines of each paragraph with spaces, unless a line of it is indented or a list
/// item (then the paragraph is preformatted and kept as it is).
pub fn reflow(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            let preformatted = paragraph.lines().skip(1).any(|line| {
                line.starts_with([' ', '\t', '-', '*', '|', '`']) || line.trim().is_empty()
            });
            if preformatted {
                paragraph.to_owned()
            } else {
                paragraph.lines().collect::<Vec<_>>().join(" ")
            }
        })
        .collect::<Vec<_>>()
        .join("\n\n")
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

#[cfg(test)]
mod tests {
    use super::reflow;

    #[test]
    fn reflow_joins_lines_but_keeps_paragraphs_and_lists() {
        assert_eq!(reflow("a\nb\n\nc\nd"), "a b\n\nc d");
        assert_eq!(reflow("list:\n- x\n- y"), "list:\n- x\n- y");
        assert_eq!(reflow("one line"), "one line");
    }
}
