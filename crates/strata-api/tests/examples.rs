//! Example manifests (a 3-zone stretch cluster, a topic, an active-standby MirrorFlow) parse
//! into the types and validate against the rendered schemas, and defaults agree between serde
//! and the schema: an object defaulted by the API server deserializes to the same value as the
//! manifest deserialized locally.

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
    let schema = schema::<K>();
    let problems = schema_check::validate(&schema, &manifest);
    assert!(problems.is_empty(), "manifest is invalid: {problems:?}");
    let local: K = serde_json::from_value(manifest.clone()).expect("manifest deserializes");
    let mut defaulted = manifest;
    schema_check::apply_defaults(&schema, &mut defaulted);
    let problems = schema_check::validate(&schema, &defaulted);
    assert!(
        problems.is_empty(),
        "defaulted manifest is invalid: {problems:?}"
    );
    let server: K = serde_json::from_value(defaulted).expect("defaulted manifest deserializes");
    assert_eq!(local, server, "serde defaults and schema defaults disagree");
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
