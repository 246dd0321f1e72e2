//! Example manifests (the fixtures here, and every document of every `deploy/examples/*.yaml`
//! users apply) parse into the types and validate against the rendered schemas, and defaults
//! agree between serde and the schema: an object defaulted by the API server deserializes to the
//! same value as the manifest deserialized locally.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kube::CustomResourceExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use strata_api::*;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture is readable");
    serde_norway::from_str(&text).expect("fixture is YAML")
}

fn schema<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    let schema = crd.spec.versions[0]
        .schema
        .clone()
        .and_then(|s| s.open_api_v3_schema)
        .expect("schema");
    serde_json::to_value(schema).expect("schema serializes")
}

/// Validates `manifest` against the schema of `K`, deserializes it, and checks that the API
/// server's defaulting would produce the same typed value.
fn load<K: CustomResourceExt + DeserializeOwned + PartialEq + std::fmt::Debug>(
    manifest: Value,
) -> K {
    load_named("manifest", manifest)
}

/// [`load`], with `what` naming the manifest in failure messages.
fn load_named<K: CustomResourceExt + DeserializeOwned + PartialEq + std::fmt::Debug>(
    what: &str,
    manifest: Value,
) -> K {
    let schema = schema::<K>();
    let problems = schema_check::validate(&schema, &manifest);
    assert!(problems.is_empty(), "{what} is invalid: {problems:?}");
    let local: K = serde_json::from_value(manifest.clone())
        .unwrap_or_else(|e| panic!("{what} does not deserialize: {e}"));
    let mut defaulted = manifest;
    schema_check::apply_defaults(&schema, &mut defaulted);
    let problems = schema_check::validate(&schema, &defaulted);
    assert!(
        problems.is_empty(),
        "defaulted {what} is invalid: {problems:?}"
    );
    let server: K = serde_json::from_value(defaulted)
        .unwrap_or_else(|e| panic!("defaulted {what} does not deserialize: {e}"));
    assert_eq!(
        local, server,
        "{what}: serde defaults and schema defaults disagree"
    );
    local
}

#[test]
fn stretch_cluster_example() {
    let cluster: KafkaCluster = load(fixture("stretch-cluster.yaml"));
    let spec = &cluster.spec;
    let zones: Vec<_> = spec
        .racks
        .iter()
        .filter_map(|r| r.zone.as_deref())
        .collect();
    assert_eq!(zones, ["eu-west-1a", "eu-west-1b", "eu-west-1c"]);
    assert_eq!(spec.racks.iter().map(|r| r.brokers).sum::<i32>(), 6);
    assert_eq!(spec.topology_key, "topology.kubernetes.io/zone");
    assert_eq!(spec.storage.size.0, "100Gi");
    assert!(spec.storage.retain_on_delete);
    assert_eq!(spec.listeners[0].authentication, Authentication::None);
    assert!(!spec.listeners[0].tls);
    assert_eq!(
        spec.listeners[1].authentication,
        Authentication::ScramSha512
    );
    assert_eq!(spec.config["min.insync.replicas"], "2");
    let requests = spec.resources.as_ref().and_then(|r| r.requests.as_ref());
    assert_eq!(requests.map(|r| r["cpu"].0.as_str()), Some("500m"));
    assert_eq!(spec.template.tolerations.len(), 1);
    assert!(cluster.status.is_none());
}

#[test]
fn topic_example() {
    let topic: KafkaTopic = load(fixture("topic.yaml"));
    assert_eq!(topic.spec.cluster_ref, ClusterReference::new("stretch"));
    assert_eq!(topic.spec.topic_name.as_deref(), Some("shop.orders_v1"));
    assert_eq!(topic.spec.partitions, Some(12));
    assert_eq!(topic.spec.replication_factor, Some(3));
    assert_eq!(topic.spec.deletion_policy, DeletionPolicy::Retain);
}

#[test]
fn mirror_flow_example() {
    let flow: MirrorFlow = load(fixture("mirrorflow.yaml"));
    let spec = &flow.spec;
    assert_eq!(
        spec.source.cluster_ref,
        Some(ClusterReference::new("stretch"))
    );
    assert!(spec.source.bootstrap_servers.is_none());
    let tls = spec.target.tls.as_ref().expect("target has TLS");
    assert_eq!(tls.ca_key, "ca.crt");
    let sasl = spec.target.sasl.as_ref().expect("target has SASL");
    assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
    assert_eq!(
        (sasl.username_key.as_str(), sasl.password_key.as_str()),
        ("username", "password")
    );
    assert_eq!(spec.topics.include, [r"shop\..*"]);
    assert!(spec.topics.exclude.contains(&"__.*".to_owned()));
    assert_eq!(spec.groups, GroupFilter::default());
    assert_eq!(spec.naming, NamingMode::Identity);
    assert_eq!(spec.offsets, OffsetMode::Translate);
    assert_eq!(spec.sync, SyncSpec::default());
    assert_eq!(spec.tuning.linger_ms, 20);
    assert_eq!(spec.tuning.compression, CompressionType::Zstd);
    assert_eq!(spec.tuning.fetch_max_wait_ms, 500);
    let failover = &spec.failover;
    assert_eq!(failover.mode, FailoverMode::Automatic);
    assert_eq!(failover.active, ActiveSide::Source);
    assert_eq!(failover.detection.failure_threshold, 5);
    assert_eq!(failover.detection.probe_interval_seconds, 5);
    assert_eq!(failover.failback.policy, FailbackPolicy::Manual);
    assert!(failover.failback.truncate_unreplicated_tail);
    assert_eq!(failover.discovery_service.as_deref(), Some("kafka-active"));
}

#[test]
fn minimal_cluster_gets_every_default() {
    let cluster: KafkaCluster = load(serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": "KafkaCluster",
        "metadata": {"name": "dev"},
        "spec": {"racks": [{"name": "r0", "brokers": 1}], "storage": {"size": "1Gi"}}
    }));
    let spec = cluster.spec;
    assert_eq!(spec.topology_key, "topology.kubernetes.io/zone");
    assert_eq!(spec.controller_voters, 3);
    assert!(spec.storage.retain_on_delete);
    assert_eq!(spec.storage.storage_class_name, None);
    assert_eq!(
        spec.listeners,
        [Listener {
            name: "plain".to_owned(),
            port: 9092,
            tls: false,
            authentication: Authentication::None
        }]
    );
    assert!(spec.config.is_empty());
    assert_eq!(spec.template, PodTemplateOverrides::default());
    assert_eq!(
        (
            spec.racks[0].zone.clone(),
            spec.racks[0].node_selector.clone()
        ),
        (None, None)
    );
}

#[test]
fn minimal_topic_gets_every_default() {
    let topic: KafkaTopic = load(serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": "KafkaTopic",
        "metadata": {"name": "events"},
        "spec": {"clusterRef": {"name": "dev"}}
    }));
    assert_eq!(topic.spec.deletion_policy, DeletionPolicy::Retain);
    assert_eq!(topic.spec.topic_name, None);
    assert_eq!(
        (topic.spec.partitions, topic.spec.replication_factor),
        (None, None)
    );
}

#[test]
fn minimal_mirror_flow_gets_every_default() {
    let flow: MirrorFlow = load(serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": "MirrorFlow",
        "metadata": {"name": "a-to-b"},
        "spec": {
            "source": {"alias": "a", "clusterRef": {"name": "a"}},
            "target": {"alias": "b", "bootstrapServers": "b:9092"}
        }
    }));
    let spec = flow.spec;
    assert_eq!(spec.topics.include, [".*"]);
    assert_eq!(
        spec.groups.exclude,
        ["console-consumer-.*", "connect-.*", "__.*"]
    );
    assert_eq!(spec.naming, NamingMode::Prefixed);
    assert_eq!(spec.offsets, OffsetMode::Translate);
    assert_eq!(
        spec.sync,
        SyncSpec {
            topic_configs: true,
            acls: true,
            group_offsets: true,
            checkpoint_interval_seconds: 60,
            heartbeat_interval_seconds: 1
        }
    );
    assert_eq!(spec.tuning, Tuning::default());
    assert_eq!(
        (
            spec.tuning.batch_size,
            spec.tuning.fetch_max_bytes,
            spec.tuning.max_in_flight
        ),
        (16384, 52_428_800, 5)
    );
    assert_eq!(spec.replicas, 1);
    assert_eq!(spec.failover, FailoverSpec::default());
    assert_eq!(spec.failover.mode, FailoverMode::Manual);
    assert_eq!(spec.failover.active, ActiveSide::Source);
    assert_eq!(
        spec.failover.detection,
        Detection {
            probe_interval_seconds: 5,
            failure_threshold: 3,
            timeout_seconds: 3
        }
    );
    assert!(!spec.failover.fence_foreign_cluster_with_acl);
    assert!(!spec.failover.failback.truncate_unreplicated_tail);
}

#[test]
fn schema_rejects_what_users_get_wrong() {
    let schema = schema::<KafkaCluster>();
    let manifest = serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": "KafkaCluster",
        "metadata": {"name": "bad"},
        "spec": {
            "racks": [{"name": "r0", "brokers": -1, "zones": "typo"}],
            "storage": {"size": "1Gi"},
            "listeners": [{"name": "x", "port": 9092, "authentication": "kerberos"}]
        }
    });
    let problems = schema_check::validate(&schema, &manifest);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("authentication")));
    assert!(problems.iter().any(|p| p.contains("brokers")));
    assert!(problems.iter().any(|p| p.contains("zones: unknown field")));
}

#[test]
fn status_round_trips() {
    let status: MirrorFlowStatus = serde_json::from_value(serde_json::json!({
        "observedGeneration": 4,
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "Mirroring", "message": "",
            "lastTransitionTime": "2025-01-02T03:04:05Z"
        }],
        "phase": "FailedOver",
        "activeCluster": "target",
        "lagRecords": 0,
        "lastFailover": {
            "time": "2025-01-02T03:04:05Z", "reason": "ProbeFailed", "recordsAtRisk": 17,
            "durationSeconds": 4.5, "from": "source", "to": "target"
        }
    }))
    .expect("status deserializes");
    assert_eq!(status.phase, Some(MirrorPhase::FailedOver));
    assert_eq!(status.active_cluster, Some(ActiveSide::Target));
    let record = status.last_failover.clone().expect("failover recorded");
    assert_eq!(
        (record.records_at_risk, record.from, record.to),
        (17, ActiveSide::Source, ActiveSide::Target)
    );
    let again: MirrorFlowStatus =
        serde_json::from_value(serde_json::to_value(&status).expect("serializes")).expect("again");
    assert_eq!(again, status);
    let problems = schema_check::validate(
        &schema::<MirrorFlow>()["properties"]["status"],
        &serde_json::to_value(&status).expect("serializes"),
    );
    assert!(problems.is_empty(), "{problems:?}");
}

// ---------------------------------------------------------------------------------------------
// deploy/examples: every custom resource users are told to apply.

fn deploy_examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/examples")
}

/// Every custom resource of the API group in one `deploy/examples` file, checked and typed.
#[derive(Default)]
struct ExampleFile {
    clusters: Vec<KafkaCluster>,
    topics: Vec<KafkaTopic>,
    flows: Vec<MirrorFlow>,
}

fn load_example_file(path: &Path) -> ExampleFile {
    use serde::Deserialize;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let text = std::fs::read_to_string(path).expect("example is readable");
    let mut file = ExampleFile::default();
    for (i, document) in serde_norway::Deserializer::from_str(&text).enumerate() {
        let doc = Value::deserialize(document)
            .unwrap_or_else(|e| panic!("{name}: document {i} is not YAML: {e}"));
        if doc.is_null() {
            continue;
        }
        let api_version = doc["apiVersion"].as_str().unwrap_or_default();
        if !api_version.starts_with(&format!("{GROUP}/")) {
            continue; // core objects are validated by tests/deploy with Kubernetes' schemas
        }
        assert_eq!(api_version, API_VERSION, "{name}: document {i}");
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        let what = format!("deploy/examples/{name}: {kind} {}", doc["metadata"]["name"]);
        match kind.as_str() {
            "KafkaCluster" => file.clusters.push(load_named(&what, doc)),
            "KafkaTopic" => file.topics.push(load_named(&what, doc)),
            "MirrorFlow" => file.flows.push(load_named(&what, doc)),
            other => panic!("{what}: unknown kind {other}"),
        }
    }
    file
}

fn deploy_examples() -> BTreeMap<String, ExampleFile> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(deploy_examples_dir()).expect("deploy/examples exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            out.insert(name, load_example_file(&path));
        }
    }
    out
}

#[test]
fn every_deploy_example_matches_the_schemas() {
    let examples = deploy_examples();
    let names: Vec<&str> = examples.keys().map(String::as_str).collect();
    for expected in [
        "active-standby.yaml",
        "single-zone.yaml",
        "stretch-3-zone.yaml",
    ] {
        assert!(
            names.contains(&expected),
            "deploy/examples/{expected} missing: {names:?}"
        );
    }
    for (name, file) in &examples {
        let count = file.clusters.len() + file.topics.len() + file.flows.len();
        assert!(count > 0, "{name} holds no Strata resource");
    }
}

#[test]
fn deploy_examples_reference_only_their_own_clusters_and_can_share_a_namespace() {
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for (name, file) in deploy_examples() {
        let clusters: BTreeSet<String> = file
            .clusters
            .iter()
            .map(|c| c.metadata.name.clone().expect("named"))
            .collect();
        for topic in &file.topics {
            assert!(
                clusters.contains(&topic.spec.cluster_ref.name),
                "{name}: topic {:?} names a cluster the file does not create",
                topic.metadata.name
            );
        }
        for flow in &file.flows {
            for side in [&flow.spec.source, &flow.spec.target] {
                let cluster = side.cluster_ref.as_ref().map(|r| r.name.clone());
                assert!(
                    cluster.is_some_and(|c| clusters.contains(&c))
                        != side.bootstrap_servers.is_some(),
                    "{name}: each side of a flow names exactly one cluster of the file"
                );
            }
        }
        let kinds = file
            .clusters
            .iter()
            .map(|c| ("KafkaCluster", &c.metadata))
            .chain(file.topics.iter().map(|t| ("KafkaTopic", &t.metadata)))
            .chain(file.flows.iter().map(|f| ("MirrorFlow", &f.metadata)));
        for (kind, metadata) in kinds {
            assert!(
                metadata.namespace.is_none(),
                "{name}: {kind} sets a namespace"
            );
            let key = (kind.to_owned(), metadata.name.clone().expect("named"));
            assert!(
                seen.insert(key.clone()),
                "{name}: {key:?} also defined by another example"
            );
        }
    }
}

#[test]
fn stretch_example_spans_the_three_zones_with_rf3_and_min_isr2() {
    let examples = deploy_examples();
    let file = &examples["stretch-3-zone.yaml"];
    assert_eq!(file.clusters.len(), 1);
    let spec = &file.clusters[0].spec;
    let racks: Vec<(&str, Option<&str>)> = spec
        .racks
        .iter()
        .map(|r| (r.name.as_str(), r.zone.as_deref()))
        .collect();
    assert_eq!(
        racks,
        [
            ("zone-a", Some("zone-a")),
            ("zone-b", Some("zone-b")),
            ("zone-c", Some("zone-c"))
        ]
    );
    assert!(spec.racks.iter().all(|r| r.brokers >= 1));
    assert_eq!(spec.topology_key, "topology.kubernetes.io/zone");
    assert_eq!(spec.controller_voters, 3);
    assert_eq!(spec.config["default.replication.factor"], "3");
    assert_eq!(spec.config["min.insync.replicas"], "2");
    assert!(!file.topics.is_empty());
    for topic in &file.topics {
        assert_eq!(topic.spec.replication_factor, Some(3));
        assert_eq!(topic.spec.config["min.insync.replicas"], "2");
    }
}

#[test]
fn single_zone_example_is_one_rack_of_three() {
    let examples = deploy_examples();
    let file = &examples["single-zone.yaml"];
    assert_eq!(file.clusters.len(), 1);
    let racks = &file.clusters[0].spec.racks;
    assert_eq!(racks.len(), 1);
    assert_eq!(racks[0].brokers, 3);
    assert_eq!(file.topics.len(), 1);
}

#[test]
fn active_standby_example_mirrors_primary_to_standby_with_failover() {
    let examples = deploy_examples();
    let file = &examples["active-standby.yaml"];
    let clusters: Vec<_> = file
        .clusters
        .iter()
        .map(|c| c.metadata.name.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(clusters, ["primary", "standby"]);
    assert_eq!(file.flows.len(), 1);
    let spec = &file.flows[0].spec;
    assert_eq!(
        spec.source.cluster_ref,
        Some(ClusterReference::new("primary"))
    );
    assert_eq!(
        spec.target.cluster_ref,
        Some(ClusterReference::new("standby"))
    );
    // Preserve keeps offsets equal on both sides; it needs Identity naming.
    assert_eq!(
        (spec.naming, spec.offsets),
        (NamingMode::Identity, OffsetMode::Preserve)
    );
    assert_eq!(spec.failover.active, ActiveSide::Source);
    assert!(spec.failover.discovery_service.is_some());
}

#[test]
fn deploy_example_volumes_bind_from_the_default_storage_class() {
    for (name, file) in deploy_examples() {
        for cluster in &file.clusters {
            let storage = &cluster.spec.storage;
            assert_eq!(
                storage.storage_class_name, None,
                "{name}: use the default class"
            );
            assert_eq!(storage.size.0, "10Gi", "{name}: small volumes");
        }
    }
}
