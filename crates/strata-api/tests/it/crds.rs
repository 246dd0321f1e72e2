//! The rendered CRDs: the copies checked into the repository (`crds/` with its kustomization, and
//! the chart's `crds/` with the keep annotation) are exactly what `crdgen` writes from the Rust
//! types, every schema is structural, and names, scope, subresources and printer columns are
//! what users type.

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

/// How to fix any drift below.
const FIX: &str = "regenerate from the repository root with \
                   `cargo run -p strata-api --bin crdgen -- --write-all`";

/// Plain copy of the CRDs (`kubectl apply -f crds/`, kustomize base of `deploy/operator`).
const CRDS: &str = "crds";
/// The chart's copy, installed by Helm from the chart's `crds/` directory.
const CHART_CRDS: &str = "charts/strata-operator/crds";

/// The CRD files (`*.yaml` naming the API group) in `dir`, by file name.
fn crd_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{} is not readable: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n.contains(strata_api::GROUP))
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Runs the real `crdgen --write-all` into a scratch repository root and returns that root.
fn crdgen_output(test: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("crdgen-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("crates/strata-api")).expect("scratch root");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crdgen"))
        .arg("--write-all")
        .arg(&root)
        .output()
        .expect("crdgen runs");
    assert!(
        out.status.success(),
        "crdgen --write-all failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    root
}

/// Every file crdgen writes into `rel` is checked in unchanged, and `rel` holds no other CRD.
fn assert_checked_in(generated_root: &Path, rel: &str) {
    let generated = generated_root.join(rel);
    let checked_in = repo_root().join(rel);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&generated).expect("crdgen wrote the directory") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(
            read(&checked_in.join(&name)) == read(&generated.join(&name)),
            "{rel}/{name} is missing or differs from what crdgen writes; {FIX}"
        );
        names.push(name);
    }
    assert!(!names.is_empty(), "crdgen wrote nothing into {rel}");
    let stale: Vec<_> = crd_files(&checked_in)
        .difference(&crd_files(&generated))
        .cloned()
        .collect();
    assert!(
        stale.is_empty(),
        "{rel} holds CRDs no Rust type renders: {stale:?}; delete them and {FIX}"
    );
}

#[test]
fn checked_in_crds_match_the_rust_types() {
    let dir = repo_root().join(CRDS);
    let mut expected = BTreeSet::new();
    for definition in crd::all() {
        let name = crd::file_name(&definition);
        let rendered = crd::to_yaml(&definition).expect("CRD renders");
        assert!(
            read(&dir.join(&name)) == rendered,
            "{CRDS}/{name} is missing or differs from the Rust types; {FIX}"
        );
        expected.insert(name);
    }
    assert_eq!(
        crd_files(&dir),
        expected,
        "stale CRD files in {CRDS}; {FIX}"
    );
}

#[test]
fn checked_in_crd_directories_are_what_crdgen_writes() {
    let root = crdgen_output("dirs");
    assert_checked_in(&root, CRDS);
    assert_checked_in(&root, CHART_CRDS);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn chart_crds_differ_from_the_plain_copy_only_by_the_keep_annotation() {
    let plain_dir = repo_root().join(CRDS);
    let chart_dir = repo_root().join(CHART_CRDS);
    assert_eq!(
        crd_files(&chart_dir),
        crd_files(&plain_dir),
        "the chart ships other CRDs than crds/; {FIX}"
    );
    for name in crd_files(&plain_dir) {
        let plain: Value = serde_norway::from_str(&read(&plain_dir.join(&name))).expect("YAML");
        let mut chart: Value = serde_norway::from_str(&read(&chart_dir.join(&name))).expect("YAML");
        let annotations = chart["metadata"]["annotations"]
            .as_object_mut()
            .unwrap_or_else(|| panic!("{CHART_CRDS}/{name} has no annotations; {FIX}"));
        assert_eq!(
            annotations.remove("helm.sh/resource-policy"),
            Some(Value::String("keep".into())),
            "{CHART_CRDS}/{name} must carry helm.sh/resource-policy: keep; {FIX}"
        );
        assert!(
            annotations.is_empty(),
            "{CHART_CRDS}/{name}: other annotations"
        );
        chart["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("annotations");
        assert_eq!(
            chart, plain,
            "{CHART_CRDS}/{name} differs from {CRDS}/{name}; {FIX}"
        );
    }
}

#[test]
fn crds_kustomization_lists_every_crd() {
    let text = read(&repo_root().join(CRDS).join("Kustomization"));
    let kustomization: Value = serde_norway::from_str(&text).expect("crds/Kustomization is YAML");
    assert_eq!(kustomization["kind"], "Kustomization");
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("resources list")
        .iter()
        .map(|r| r.as_str().expect("file name").to_owned())
        .collect();
    assert_eq!(listed, crd_files(&repo_root().join(CRDS)), "{FIX}");
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

/// The `KafkaTopic` schema's `topicName` pattern and length bounds say what Kafka's topic-name
/// rule (`strata_kafka::topic_name`) says for every character, so the API server refuses at
/// `kubectl apply` exactly the names the broker would refuse at creation (except `.` and `..`,
/// which the operator's validation reports).
#[test]
fn topic_name_schema_follows_kafkas_rule() {
    let schema = schema_of(&by_kind("KafkaTopic"));
    let field = &schema["properties"]["spec"]["properties"]["topicName"];
    let pattern = field["pattern"].as_str().expect("topicName has a pattern");
    let regex = regex::Regex::new(pattern).expect("the pattern compiles");
    for c in (0u8..=127).map(char::from).chain(['é', 'ß', '\u{2028}']) {
        assert_eq!(
            regex.is_match(&c.to_string()),
            strata_kafka::topic_name::is_legal_char(c),
            "schema pattern {pattern:?} and Kafka's rule disagree on {c:?}"
        );
    }
    assert_eq!(
        field["maxLength"].as_u64(),
        Some(strata_kafka::topic_name::MAX_LEN as u64)
    );
    assert_eq!(field["minLength"].as_u64(), Some(1));
    let longest = "a".repeat(strata_kafka::topic_name::MAX_LEN);
    assert!(strata_kafka::topic_name::validate(&longest).is_ok());
    assert!(strata_kafka::topic_name::validate(&format!("{longest}a")).is_err());
}
