//! The rendered CRDs: the copies checked into the repository match the Rust types, every schema
//! is structural, and names, scope, subresources and printer columns are what users type.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;
use strata_api::{crd, schema_check};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schema_of(definition: &CustomResourceDefinition) -> Value {
    let version = &definition.spec.versions[0];
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("every version carries a schema");
    serde_json::to_value(schema).expect("a schema serializes to JSON")
}

fn by_kind(kind: &str) -> CustomResourceDefinition {
    crd::all()
        .into_iter()
        .find(|d| d.spec.names.kind == kind)
        .expect("kind is rendered")
}

/// Compares every rendered CRD with its file in `<repo>/rel`, and that directory holds no
/// other CRD files of the group.
fn assert_no_drift(rel: &str) {
    let dir = repo_root().join(rel);
    let fix = format!(
        "regenerate from the repository root with \
         `cargo run -p strata-api --bin crdgen -- --write {rel}`"
    );
    let mut expected_files = BTreeSet::new();
    for definition in crd::all() {
        let name = crd::file_name(&definition);
        let path = dir.join(&name);
        let rendered = crd::to_yaml(&definition).expect("CRD renders");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == rendered,
            "{rel}/{name} is missing or differs from the Rust types; {fix}"
        );
        expected_files.insert(name);
    }
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("directory is readable")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n.contains(strata_api::GROUP))
        .collect();
    let stale: Vec<_> = present.difference(&expected_files).collect();
    assert!(
        stale.is_empty(),
        "{rel} holds CRDs no Rust type renders: {stale:?}; delete them and {fix}"
    );
}

#[test]
fn checked_in_crds_match_the_rust_types() {
    assert_no_drift("crds");
}

#[test]
fn chart_crds_match_the_rust_types_when_the_chart_exists() {
    let chart = "charts/strata-operator/crds";
    if repo_root().join(chart).is_dir() {
        assert_no_drift(chart);
    }
}

#[test]
fn multi_document_output_holds_every_crd_once() {
    let yaml = crd::all_to_yaml().expect("CRDs render");
    let names: Vec<String> = yaml
        .split("\n---\n")
        .map(|doc| {
            let d: CustomResourceDefinition = serde_norway::from_str(doc).expect("document parses");
            d.metadata.name.unwrap_or_default()
        })
        .collect();
    assert_eq!(
        names,
        [
            "kafkaclusters.kafka.strata.dev",
            "kafkatopics.kafka.strata.dev",
            "mirrorflows.kafka.strata.dev"
        ]
    );
}

#[test]
fn every_schema_is_structural() {
    for definition in crd::all() {
        let problems = schema_check::structural_violations(&schema_of(&definition));
        assert!(
            problems.is_empty(),
            "{} is not structural:\n{}",
            definition.spec.names.kind,
            problems.join("\n")
        );
    }
}

#[test]
fn quantities_are_int_or_string() {
    let schema = schema_of(&by_kind("KafkaCluster"));
    let spec = &schema["properties"]["spec"]["properties"];
    let size = &spec["storage"]["properties"]["size"];
    assert_eq!(size["x-kubernetes-int-or-string"], Value::Bool(true));
    assert!(size.get("type").is_none());
    let limits = &spec["resources"]["properties"]["limits"]["additionalProperties"];
    assert_eq!(limits["x-kubernetes-int-or-string"], Value::Bool(true));
}

#[test]
fn every_field_is_described() {
    fn walk(node: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                let here = format!("{path}.{name}");
                if sub.get("description").is_none() {
                    missing.push(here.clone());
                }
                walk(sub, &here, missing);
            }
        }
        if let Some(items) = node.get("items") {
            walk(items, &format!("{path}[]"), missing);
        }
    }
    for definition in crd::all() {
        let mut missing = Vec::new();
        walk(&schema_of(&definition), "", &mut missing);
        // `metadata` is described by Kubernetes itself.
        missing.retain(|p| p != ".metadata");
        let kind = &definition.spec.names.kind;
        assert!(
            missing.is_empty(),
            "{kind}: fields without a doc comment: {missing:?}"
        );
    }
}

#[test]
fn names_scope_and_subresources() {
    for (kind, plural, short) in [
        ("KafkaCluster", "kafkaclusters", "kc"),
        ("KafkaTopic", "kafkatopics", "kt"),
        ("MirrorFlow", "mirrorflows", "mf"),
    ] {
        let d = by_kind(kind);
        assert_eq!(d.spec.group, "kafka.strata.dev");
        assert_eq!(d.spec.scope, "Namespaced");
        assert_eq!(d.spec.names.plural, plural);
        assert_eq!(d.spec.names.short_names, Some(vec![short.to_owned()]));
        assert_eq!(d.spec.names.categories, Some(vec!["strata".to_owned()]));
        assert_eq!(d.spec.versions.len(), 1);
        let version = &d.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage);
        let status = version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref());
        assert!(status.is_some(), "{kind} has a status subresource");
    }
}

#[test]
fn printer_columns() {
    for (kind, expected) in [
        ("KafkaCluster", vec!["Ready", "Brokers", "Racks", "Age"]),
        (
            "KafkaTopic",
            vec!["Cluster", "Partitions", "Replication", "Ready", "Age"],
        ),
        ("MirrorFlow", vec!["Phase", "Active", "Lag", "Age"]),
    ] {
        let d = by_kind(kind);
        let columns = d.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, expected, "{kind}");
        // Every column reads a path the schema has, so it never shows a typo as `<none>`.
        let schema = schema_of(&d);
        for column in &columns {
            let path = column.json_path.split('[').next().unwrap_or_default();
            if path.starts_with(".metadata") {
                continue;
            }
            let mut node = &schema;
            for segment in path.trim_start_matches('.').split('.') {
                node = &node["properties"][segment];
            }
            assert!(
                !node.is_null(),
                "{kind}: column {} reads {path}",
                column.name
            );
        }
    }
}
