//! The Kubernetes objects of a [`ClusterPlan`]: ConfigMap, headless and bootstrap Services, one
//! StatefulSet per rack and a PodDisruptionBudget. Pure: no client, and infallible: everything
//! that could make an object invalid was checked by [`crate::cluster::plan`]. Names and labels
//! come from [`crate::names`]. Owner references are not set here: the reconciler adds the
//! controller reference of the `KafkaCluster` it holds (the builder never sees its uid).
//!
//! The StatefulSets use `OnDelete`: the operator restarts brokers itself, one at a time, when
//! their pod template (whose `config-hash` annotation follows the rack's properties) changes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort,
    EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecretVolumeSource, SecurityContext, Service,
    ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount, VolumeResourceRequirements,
    WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::cluster::plan::{
    ClusterPlan, RackPlan, CONFIG_MOUNT, CONTROLLER_PORT, DATA_MOUNT, METRICS_PORT, READINESS_PATH,
};
use crate::names::{CONFIG_HASH_ANNOTATION, DATA_VOLUME, INTERNAL_CERTIFICATE_ANNOTATION};

/// Path of the broker binary in the Strata image.
pub const BROKER_COMMAND: &str = "/usr/local/bin/strata-broker";
/// Container name of the broker.
pub const BROKER_CONTAINER: &str = "broker";
/// Port name of the controller-quorum listener.
pub const CONTROLLER_PORT_NAME: &str = "controller";
/// Name of the container port of the broker's metrics and readiness endpoint.
pub const METRICS_PORT_NAME: &str = "metrics";
/// User and group the broker runs as (`nonroot` of distroless images).
pub const BROKER_UID: i64 = 65532;
/// Seconds a broker gets to finish in-flight requests and flush on SIGTERM.
pub const TERMINATION_GRACE_SECONDS: i64 = 60;

/// Every object of one cluster. The reconciler destructures it without `..`, so a new child
/// cannot be forgotten; it applies the ConfigMap first (the pods mount it) and the
/// StatefulSets last.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterChildren {
    pub config_map: ConfigMap,
    pub headless_service: Service,
    pub bootstrap_service: Service,
    pub stateful_sets: Vec<StatefulSet>,
    pub pod_disruption_budget: PodDisruptionBudget,
}

/// The objects of `plan`, without owner references.
pub fn build(plan: &ClusterPlan) -> ClusterChildren {
    ClusterChildren {
        config_map: config_map(plan),
        headless_service: headless_service(plan),
        bootstrap_service: bootstrap_service(plan),
        stateful_sets: plan
            .racks()
            .iter()
            .filter(|rack| rack.in_spec)
            .map(|rack| stateful_set(plan, rack))
            .collect(),
        pod_disruption_budget: pod_disruption_budget(plan),
    }
}

fn meta(plan: &ClusterPlan, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(plan.namespace().to_owned()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

fn config_map(plan: &ClusterPlan) -> ConfigMap {
    let names = plan.names();
    ConfigMap {
        metadata: meta(plan, names.config_map(), names.labels()),
        data: Some(plan.properties_files()),
        ..ConfigMap::default()
    }
}

fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

fn client_ports(plan: &ClusterPlan) -> Vec<ServicePort> {
    plan.listeners()
        .iter()
        .map(|l| service_port(&l.name, l.port))
        .collect()
}

fn headless_service(plan: &ClusterPlan) -> Service {
    let names = plan.names();
    let mut ports = client_ports(plan);
    ports.push(service_port(CONTROLLER_PORT_NAME, CONTROLLER_PORT));
    // Per-broker endpoints of `/metrics`: what the chart's broker ServiceMonitor scrapes.
    ports.push(service_port(METRICS_PORT_NAME, METRICS_PORT));
    Service {
        metadata: meta(plan, names.headless_service(), names.labels()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            // Brokers must resolve each other (and the voters) before they are ready.
            publish_not_ready_addresses: Some(true),
            selector: Some(names.selector()),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn bootstrap_service(plan: &ClusterPlan) -> Service {
    let names = plan.names();
    Service {
        metadata: meta(plan, names.bootstrap_service(), names.labels()),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(names.selector()),
            ports: Some(client_ports(plan)),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn pod_disruption_budget(plan: &ClusterPlan) -> PodDisruptionBudget {
    let names = plan.names();
    PodDisruptionBudget {
        metadata: meta(plan, names.pod_disruption_budget(), names.labels()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(names.selector()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

fn stateful_set(plan: &ClusterPlan, rack: &RackPlan) -> StatefulSet {
    let names = plan.names();
    let storage = plan.storage();
    let retention = if storage.retain_on_delete {
        "Retain"
    } else {
        "Delete"
    };
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.to_owned()),
            labels: Some(names.rack_labels(&rack.name)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    storage.size.clone(),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    StatefulSet {
        metadata: meta(
            plan,
            names.stateful_set(&rack.name),
            names.rack_labels(&rack.name),
        ),
        spec: Some(StatefulSetSpec {
            replicas: Some(rack.brokers),
            service_name: Some(names.headless_service()),
            pod_management_policy: Some("Parallel".to_owned()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_owned()),
                ..StatefulSetUpdateStrategy::default()
            }),
            selector: LabelSelector {
                match_labels: Some(names.rack_selector(&rack.name)),
                ..LabelSelector::default()
            },
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(retention.to_owned()),
                    when_scaled: Some(retention.to_owned()),
                },
            ),
            template: pod_template(plan, rack),
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

fn pod_template(plan: &ClusterPlan, rack: &RackPlan) -> PodTemplateSpec {
    let names = plan.names();
    let overrides = plan.template();
    // The operator's labels and annotation win over the user's overrides.
    let mut labels = overrides.labels.clone();
    labels.extend(names.rack_labels(&rack.name));
    let mut annotations = overrides.annotations.clone();
    annotations.insert(
        CONFIG_HASH_ANNOTATION.to_owned(),
        plan.config_hash(&rack.name),
    );
    if let Some(fingerprint) = &plan.internal_certificate {
        annotations.insert(
            INTERNAL_CERTIFICATE_ANNOTATION.to_owned(),
            fingerprint.clone(),
        );
    }
    // Prometheus' conventional pod annotations (for scrape configs that honour them; the
    // chart's optional ServiceMonitor selects the broker pods by label instead).
    for (key, value) in [
        ("prometheus.io/scrape", "true".to_owned()),
        ("prometheus.io/port", METRICS_PORT.to_string()),
        ("prometheus.io/path", "/metrics".to_owned()),
    ] {
        annotations.insert(key.to_owned(), value);
    }

    let mut volumes = vec![
        Volume {
            name: "config".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: names.config_map(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let mut mounts = vec![
        VolumeMount {
            name: "config".to_owned(),
            mount_path: CONFIG_MOUNT.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: DATA_VOLUME.to_owned(),
            mount_path: DATA_MOUNT.to_owned(),
            ..VolumeMount::default()
        },
        // The root filesystem is read-only; some libraries still want a scratch directory.
        VolumeMount {
            name: "tmp".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        },
    ];
    for l in plan.listeners().iter().filter(|l| l.tls) {
        let volume = format!("tls-{}", l.name);
        volumes.push(Volume {
            name: volume.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names.tls_secret(&l.name)),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: volume,
            mount_path: l.tls_mount(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }

    let mut ports: Vec<ContainerPort> = plan
        .listeners()
        .iter()
        .map(|l| container_port(&l.name, l.port))
        .collect();
    // One template per rack serves voters and non-voters alike; only voters listen on it.
    ports.push(container_port(CONTROLLER_PORT_NAME, CONTROLLER_PORT));
    ports.push(container_port(METRICS_PORT_NAME, METRICS_PORT));

    // Ready means rejoined: the broker answers 200 on /readyz only once it is registered,
    // unfenced and caught up, which the rolling restart relies on (an open port is not enough).
    let readiness = Probe {
        http_get: Some(HTTPGetAction {
            path: Some(READINESS_PATH.to_owned()),
            port: IntOrString::String(METRICS_PORT_NAME.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(5),
        failure_threshold: Some(3),
        ..Probe::default()
    };
    // An open port is all the liveness probe asks; a secured cluster's listeners are TLS, whose
    // brokers would log every probe as a failed handshake, so it knocks on the metrics port.
    let probe_port = if plan.secured() {
        METRICS_PORT
    } else {
        plan.listeners()[0].port
    };
    let tcp_probe = |period, failures| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(probe_port),
            ..TCPSocketAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    let container = Container {
        name: BROKER_CONTAINER.to_owned(),
        image: Some(plan.image().to_owned()),
        command: Some(vec![BROKER_COMMAND.to_owned()]),
        args: Some(vec![
            "--config".to_owned(),
            format!("{CONFIG_MOUNT}/$(POD_NAME).properties"),
        ]),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
        ]),
        ports: Some(ports),
        // Log recovery after an unclean stop can take minutes: the startup probe allows ten
        // before liveness starts counting.
        startup_probe: Some(tcp_probe(10, 60)),
        readiness_probe: Some(readiness),
        liveness_probe: Some(tcp_probe(10, 6)),
        resources: plan.resources().cloned(),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    };

    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            affinity: Some(affinity(plan, rack)),
            node_selector: rack.node_selector.clone(),
            tolerations: Some(overrides.tolerations.clone()).filter(|t| !t.is_empty()),
            priority_class_name: overrides.priority_class_name.clone(),
            termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
            // Brokers never call the Kubernetes API and need no Service environment variables.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(BROKER_UID),
                run_as_group: Some(BROKER_UID),
                fs_group: Some(BROKER_UID),
                // Large volumes: chown only when the root of the volume is not ours yet.
                fs_group_change_policy: Some("OnRootMismatch".to_owned()),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: port,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// Pins the rack to its zone (when it has one) and spreads the cluster's brokers over nodes.
fn affinity(plan: &ClusterPlan, rack: &RackPlan) -> Affinity {
    let node_affinity = rack.zone.as_ref().map(|zone| NodeAffinity {
        required_during_scheduling_ignored_during_execution: Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: Some(vec![NodeSelectorRequirement {
                    key: plan.topology_key().to_owned(),
                    operator: "In".to_owned(),
                    values: Some(vec![zone.clone()]),
                }]),
                ..NodeSelectorTerm::default()
            }],
        }),
        ..NodeAffinity::default()
    });
    Affinity {
        node_affinity,
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(plan.names().selector()),
                            ..LabelSelector::default()
                        }),
                        topology_key: "kubernetes.io/hostname".to_owned(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::plan::{plan, PlanContext};
    use crate::names;
    use strata_api::{KafkaCluster, KafkaClusterStatus};

    fn cluster(racks: serde_json::Value) -> KafkaCluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kafka.strata.dev/v1alpha1",
            "kind": "KafkaCluster",
            "metadata": {"name": "c", "namespace": "ns"},
            "spec": {"racks": racks, "storage": {"size": "1Gi", "retainOnDelete": false}},
        }))
        .unwrap()
    }

    fn children(c: &KafkaCluster) -> ClusterChildren {
        build(&plan(c, &PlanContext::new("img:1")).unwrap())
    }

    #[test]
    fn one_stateful_set_per_rack_with_its_broker_count() {
        let kids = children(&cluster(serde_json::json!([
            {"name": "a", "zone": "z1", "brokers": 2},
            {"name": "b", "brokers": 0},
        ])));
        let sts: Vec<(String, Option<i32>)> = kids
            .stateful_sets
            .iter()
            .map(|s| {
                (
                    s.metadata.name.clone().unwrap(),
                    s.spec.as_ref().unwrap().replicas,
                )
            })
            .collect();
        assert_eq!(
            sts,
            [("c-a".to_owned(), Some(2)), ("c-b".to_owned(), Some(0))]
        );
        let spec = kids.stateful_sets[0].spec.as_ref().unwrap();
        let policy = spec
            .persistent_volume_claim_retention_policy
            .as_ref()
            .unwrap();
        assert_eq!(policy.when_deleted.as_deref(), Some("Delete"));
        let pod = spec.template.spec.as_ref().unwrap();
        let zone = pod.affinity.as_ref().unwrap().node_affinity.as_ref();
        assert!(zone.is_some(), "rack a is pinned to its zone");
        let b = kids.stateful_sets[1].spec.as_ref().unwrap();
        let b_pod = b.template.spec.as_ref().unwrap();
        assert!(b_pod.affinity.as_ref().unwrap().node_affinity.is_none());
        assert_eq!(
            kids.config_map
                .data
                .as_ref()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["c-a-0.properties", "c-a-1.properties"]
        );
    }

    #[test]
    fn selectors_match_the_pod_labels() {
        let kids = children(&cluster(serde_json::json!([{"name": "a", "brokers": 1}])));
        let spec = kids.stateful_sets[0].spec.as_ref().unwrap();
        let pod_labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap();
        let selectors = [
            spec.selector.match_labels.clone().unwrap(),
            kids.headless_service
                .spec
                .as_ref()
                .unwrap()
                .selector
                .clone()
                .unwrap(),
            kids.bootstrap_service
                .spec
                .as_ref()
                .unwrap()
                .selector
                .clone()
                .unwrap(),
            kids.pod_disruption_budget
                .spec
                .as_ref()
                .unwrap()
                .selector
                .as_ref()
                .unwrap()
                .match_labels
                .clone()
                .unwrap(),
        ];
        for selector in selectors {
            for (k, v) in selector {
                assert_eq!(pod_labels.get(&k), Some(&v), "{k}");
            }
        }
    }

    #[test]
    fn user_labels_cannot_override_operator_labels() {
        let mut c = cluster(serde_json::json!([{"name": "a", "brokers": 1}]));
        c.spec
            .template
            .labels
            .insert(names::CLUSTER_LABEL.to_owned(), "other".to_owned());
        c.spec
            .template
            .labels
            .insert("team".to_owned(), "x".to_owned());
        let kids = children(&c);
        let labels = kids.stateful_sets[0]
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .clone()
            .unwrap();
        assert_eq!(labels[names::CLUSTER_LABEL], "c");
        assert_eq!(labels["team"], "x");
    }

    #[test]
    fn held_rack_builds_with_the_held_count() {
        let mut c = cluster(serde_json::json!([{"name": "a", "brokers": 1}]));
        c.status = Some(KafkaClusterStatus {
            rack_id_blocks: [("a".to_owned(), 0)].into(),
            ..Default::default()
        });
        let mut p = plan(&c, &PlanContext::new("img")).unwrap();
        p.hold_rack("a", 3);
        let kids = build(&p);
        assert_eq!(
            kids.stateful_sets[0].spec.as_ref().unwrap().replicas,
            Some(3)
        );
        assert_eq!(kids.config_map.data.unwrap().len(), 3);
    }

    #[test]
    fn held_removed_rack_keeps_its_properties_but_gets_no_stateful_set() {
        let mut c = cluster(serde_json::json!([{"name": "a", "brokers": 1}]));
        c.status = Some(KafkaClusterStatus {
            rack_id_blocks: [("a".to_owned(), 0), ("gone".to_owned(), 1)].into(),
            ..Default::default()
        });
        let mut p = plan(&c, &PlanContext::new("img")).unwrap();
        p.hold_rack("gone", 2);
        let kids = build(&p);
        assert_eq!(kids.stateful_sets.len(), 1);
        let data = kids.config_map.data.unwrap();
        assert!(
            data.contains_key("c-gone-1.properties"),
            "{:?}",
            data.keys()
        );
    }
}
