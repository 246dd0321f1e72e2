//! The Kubernetes objects of a [`FlowPlan`]: the ConfigMap with the flow file `strata-mirror`
//! reads, the headless Service of the mirror pods' metrics, the StatefulSet `<flow>-mirror`,
//! and the discovery Service pointing at the active side. Pure: no client, and infallible:
//! everything that could make an object invalid was checked by [`crate::flow::plan`]. Names and
//! labels come from [`crate::names`]; owner references are added by the reconciler.
//!
//! The discovery Service of a `KafkaCluster` side selects that cluster's broker pods (ready
//! ones only) on port 9092; of an external side it is a selector-less Service with an
//! EndpointSlice of its IP addresses, or an `ExternalName` Service for a DNS name.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar,
    EnvVarSource, HTTPGetAction, NodeAffinity, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec, Volume,
    VolumeMount,
};
use k8s_openapi::api::discovery::v1::{Endpoint as SliceEndpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

use crate::cluster::build::{BROKER_UID, METRICS_PORT_NAME};
use crate::cluster::plan::{METRICS_PORT, READINESS_PATH};
use crate::flow::plan::{Endpoint, ExternalAddress, FlowPlan, DISCOVERY_PORT};
use crate::names::{
    CONFIG_HASH_ANNOTATION, ENDPOINT_SLICE_MANAGED_BY_LABEL, ENDPOINT_SLICE_MANAGER,
    POD_INDEX_LABEL, SERVICE_NAME_LABEL,
};

/// Path of the mirror binary in the Strata image.
pub const MIRROR_COMMAND: &str = "/usr/local/bin/strata-mirror";
/// Container name of the mirror.
pub const MIRROR_CONTAINER: &str = "mirror";
/// Where the flow ConfigMap is mounted.
pub const FLOW_MOUNT: &str = "/etc/strata/mirror";
/// Key of the flow file in the ConfigMap.
pub const FLOW_KEY: &str = "flow.yaml";
/// Port name of the discovery Service.
pub const DISCOVERY_PORT_NAME: &str = "kafka";
/// Seconds a mirror gets to acknowledge in-flight records and commit progress on SIGTERM.
pub const MIRROR_GRACE_SECONDS: i64 = 30;
/// Pod annotation with the digest of the Secret data the mirror reads at start: new
/// credentials restart the mirror pods.
pub const CREDENTIALS_ANNOTATION: &str = "kafka.strata.dev/credentials";

/// Every object of one flow. The reconciler destructures it without `..`, so a new child
/// cannot be forgotten; it applies the ConfigMap first (the pods mount it), the StatefulSet
/// after it, and the discovery objects last (the EndpointSlice after its Service).
#[derive(Clone, Debug, PartialEq)]
pub struct FlowChildren {
    pub config_map: ConfigMap,
    pub mirror_service: Service,
    pub stateful_set: StatefulSet,
    pub discovery: Option<Discovery>,
}

/// The discovery Service and, for external IP addresses, its EndpointSlice.
#[derive(Clone, Debug, PartialEq)]
pub struct Discovery {
    pub service: Service,
    pub endpoint_slice: Option<EndpointSlice>,
}

/// The objects of `plan`, without owner references.
pub fn build(plan: &FlowPlan) -> FlowChildren {
    let config_map = config_map(plan);
    let hash = config_hash(&config_map);
    FlowChildren {
        config_map,
        mirror_service: mirror_service(plan),
        stateful_set: stateful_set(plan, hash),
        discovery: discovery(plan),
    }
}

/// The flow file as `strata-mirror --config` reads it.
pub fn flow_file(plan: &FlowPlan) -> String {
    // A MirrorConfig always serialises (plain strings, numbers and enums).
    serde_norway::to_string(&plan.mirror_config()).unwrap_or_default()
}

fn meta(plan: &FlowPlan, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(plan.namespace().to_owned()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

fn config_map(plan: &FlowPlan) -> ConfigMap {
    let names = plan.names();
    ConfigMap {
        metadata: meta(plan, names.config_map(), names.labels()),
        data: Some(BTreeMap::from([(FLOW_KEY.to_owned(), flow_file(plan))])),
        ..ConfigMap::default()
    }
}

fn config_hash(config_map: &ConfigMap) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in config_map.data.iter().flatten() {
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn mirror_service(plan: &FlowPlan) -> Service {
    let names = plan.names();
    Service {
        metadata: meta(plan, names.mirror_service(), names.labels()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(names.selector()),
            ports: Some(vec![ServicePort {
                name: Some(METRICS_PORT_NAME.to_owned()),
                port: METRICS_PORT,
                target_port: Some(IntOrString::Int(METRICS_PORT)),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn stateful_set(plan: &FlowPlan, config_hash: String) -> StatefulSet {
    let names = plan.names();
    let replicas = if plan.mirror_running() {
        plan.replicas()
    } else {
        0
    };
    let mut annotations = BTreeMap::from([
        (CONFIG_HASH_ANNOTATION.to_owned(), config_hash),
        // Prometheus' conventional pod annotations, as on the broker pods.
        ("prometheus.io/scrape".to_owned(), "true".to_owned()),
        ("prometheus.io/port".to_owned(), METRICS_PORT.to_string()),
        ("prometheus.io/path".to_owned(), "/metrics".to_owned()),
    ]);
    if let Some(digest) = plan.credentials_digest() {
        annotations.insert(CREDENTIALS_ANNOTATION.to_owned(), digest.to_owned());
    }
    // The sides' Secrets (secured clusters), read-only; the flow file names their files.
    let mounts = plan.secret_mounts();
    let mut volume_mounts = vec![VolumeMount {
        name: "flow".to_owned(),
        mount_path: FLOW_MOUNT.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }];
    let mut volumes = vec![Volume {
        name: "flow".to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: names.config_map(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    for m in &mounts {
        volume_mounts.push(VolumeMount {
            name: m.volume.clone(),
            mount_path: m.path.clone(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        volumes.push(Volume {
            name: m.volume.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(m.secret.clone()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    let container = Container {
        name: MIRROR_CONTAINER.to_owned(),
        image: Some(plan.image().to_owned()),
        command: Some(vec![MIRROR_COMMAND.to_owned()]),
        args: Some(vec![
            "--config".to_owned(),
            format!("{FLOW_MOUNT}/{FLOW_KEY}"),
            // The split is over spec.replicas, also while the StatefulSet is scaled to 0.
            "--replicas".to_owned(),
            plan.replicas().max(1).to_string(),
            "--metrics-addr".to_owned(),
            format!("0.0.0.0:{METRICS_PORT}"),
        ]),
        env: Some(vec![EnvVar {
            // The pod's ordinal is its share of the partitions (`--ordinal`).
            name: "STRATA_MIRROR_ORDINAL".to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: format!("metadata.labels['{POD_INDEX_LABEL}']"),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }]),
        ports: Some(vec![ContainerPort {
            name: Some(METRICS_PORT_NAME.to_owned()),
            container_port: METRICS_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some(READINESS_PATH.to_owned()),
                port: IntOrString::String(METRICS_PORT_NAME.to_owned()),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(5),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        resources: plan.spec().resources.clone(),
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
        volume_mounts: Some(volume_mounts),
        ..Container::default()
    };
    StatefulSet {
        metadata: meta(plan, names.stateful_set(), names.labels()),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(names.mirror_service()),
            // Mirror processes share nothing but the flow: start and stop them together.
            pod_management_policy: Some("Parallel".to_owned()),
            selector: LabelSelector {
                match_labels: Some(names.selector()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names.labels()),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    affinity: affinity(plan),
                    termination_grace_period_seconds: Some(MIRROR_GRACE_SECONDS),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(BROKER_UID),
                        run_as_group: Some(BROKER_UID),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_owned(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// Runs the mirror in the zones of the cluster it writes to (produce is the latency-bound
/// half of mirroring), when that side is a `KafkaCluster` with zoned racks.
fn affinity(plan: &FlowPlan) -> Option<Affinity> {
    let cluster = plan.writing().cluster()?;
    if cluster.zones.is_empty() || cluster.topology_key.is_empty() {
        return None;
    }
    Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: cluster.topology_key.clone(),
                        operator: "In".to_owned(),
                        values: Some(cluster.zones.clone()),
                    }]),
                    ..NodeSelectorTerm::default()
                }],
            }),
            ..NodeAffinity::default()
        }),
        ..Affinity::default()
    })
}

fn discovery(plan: &FlowPlan) -> Option<Discovery> {
    let (name, side) = plan.discovery()?;
    let names = plan.names();
    let labels = names.discovery_labels();
    let port = |port: i32, target: i32| ServicePort {
        name: Some(DISCOVERY_PORT_NAME.to_owned()),
        port,
        target_port: Some(IntOrString::Int(target)),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    };
    let (spec, endpoint_slice) = match &side.endpoint {
        Endpoint::Cluster(c) => (
            ServiceSpec {
                type_: Some("ClusterIP".to_owned()),
                selector: Some(c.broker_selector.clone()),
                ports: Some(vec![port(DISCOVERY_PORT, c.client_port)]),
                ..ServiceSpec::default()
            },
            None,
        ),
        Endpoint::External(e) => match &e.address {
            ExternalAddress::Ips { ips, port: p } => {
                let mut slice_labels = labels.clone();
                slice_labels.insert(SERVICE_NAME_LABEL.to_owned(), name.to_owned());
                slice_labels.insert(
                    ENDPOINT_SLICE_MANAGED_BY_LABEL.to_owned(),
                    ENDPOINT_SLICE_MANAGER.to_owned(),
                );
                let family = if ips.iter().all(|ip| ip.contains(':')) {
                    "IPv6"
                } else {
                    "IPv4"
                };
                let slice = EndpointSlice {
                    metadata: meta(plan, names.endpoint_slice(name), slice_labels),
                    address_type: family.to_owned(),
                    endpoints: ips
                        .iter()
                        .filter(|ip| ip.contains(':') == (family == "IPv6"))
                        .map(|ip| SliceEndpoint {
                            addresses: vec![ip.clone()],
                            ..SliceEndpoint::default()
                        })
                        .collect(),
                    ports: Some(vec![EndpointPort {
                        name: Some(DISCOVERY_PORT_NAME.to_owned()),
                        port: Some(*p),
                        protocol: Some("TCP".to_owned()),
                        ..EndpointPort::default()
                    }]),
                };
                (
                    ServiceSpec {
                        type_: Some("ClusterIP".to_owned()),
                        ports: Some(vec![port(*p, *p)]),
                        ..ServiceSpec::default()
                    },
                    Some(slice),
                )
            }
            ExternalAddress::Name { host, port: p } => (
                ServiceSpec {
                    type_: Some("ExternalName".to_owned()),
                    external_name: Some(host.clone()),
                    ports: Some(vec![port(*p, *p)]),
                    ..ServiceSpec::default()
                },
                None,
            ),
        },
    };
    Some(Discovery {
        service: Service {
            metadata: meta(plan, name.to_owned(), labels),
            spec: Some(spec),
            ..Service::default()
        },
        endpoint_slice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::plan::PlanContext;
    use crate::flow::plan::{plan, Referenced};
    use serde_json::json;
    use strata_api::{ActiveSide, KafkaCluster, MirrorFlow};

    fn cluster(name: &str, zones: &[&str]) -> KafkaCluster {
        let racks: Vec<_> = zones
            .iter()
            .enumerate()
            .map(|(i, z)| json!({"name": format!("r{i}"), "zone": z, "brokers": 1}))
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "kafka.strata.dev/v1alpha1", "kind": "KafkaCluster",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"racks": racks, "storage": {"size": "1Gi"}},
        }))
        .unwrap()
    }

    fn children(spec: serde_json::Value, active: ActiveSide) -> FlowChildren {
        let flow: MirrorFlow = serde_json::from_value(json!({
            "apiVersion": "kafka.strata.dev/v1alpha1", "kind": "MirrorFlow",
            "metadata": {"name": "f", "namespace": "ns"}, "spec": spec,
        }))
        .unwrap();
        let referenced = Referenced {
            source: Some(cluster("east", &["zone-a"])),
            target: Some(cluster("west", &["zone-b", "zone-c", "zone-b"])),
        };
        build(&plan(&flow, &referenced, active, &PlanContext::new("img:1")).unwrap())
    }

    fn spec(target: serde_json::Value) -> serde_json::Value {
        json!({"source": {"alias": "east", "clusterRef": {"name": "east"}}, "target": target,
               "replicas": 2, "failover": {"discoveryService": "kafka-active"}})
    }

    fn pod(sts: &StatefulSet) -> &PodSpec {
        sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    fn zones(sts: &StatefulSet) -> Option<Vec<String>> {
        let affinity = pod(sts).affinity.as_ref()?;
        let terms = &affinity
            .node_affinity
            .as_ref()?
            .required_during_scheduling_ignored_during_execution
            .as_ref()?
            .node_selector_terms;
        terms[0].match_expressions.as_ref()?[0].values.clone()
    }

    #[test]
    fn the_mirror_runs_in_the_zones_it_writes_to() {
        let target = json!({"alias": "west", "clusterRef": {"name": "west"}});
        let kids = children(spec(target.clone()), ActiveSide::Source);
        assert_eq!(
            zones(&kids.stateful_set),
            Some(vec!["zone-b".to_owned(), "zone-c".to_owned()])
        );
        let reversed = children(spec(target), ActiveSide::Target);
        assert_eq!(
            zones(&reversed.stateful_set),
            Some(vec!["zone-a".to_owned()])
        );
        // The direction changed, so did the file, so did the pod template.
        let hash = |k: &FlowChildren| {
            k.stateful_set
                .spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[CONFIG_HASH_ANNOTATION]
                .clone()
        };
        assert_ne!(hash(&kids), hash(&reversed));
    }

    #[test]
    fn the_mirror_container_has_the_flows_resources() {
        let target = json!({"alias": "west", "clusterRef": {"name": "west"}});
        let container = |kids: &FlowChildren| pod(&kids.stateful_set).containers[0].clone();
        let none = children(spec(target.clone()), ActiveSide::Source);
        assert_eq!(container(&none).resources, None);
        let mut with = spec(target);
        with["resources"] = json!({"requests": {"cpu": "500m", "memory": "256Mi"},
                                   "limits": {"memory": "512Mi"}});
        let kids = children(with, ActiveSide::Source);
        let resources = container(&kids).resources.expect("resources set");
        assert_eq!(resources.requests.unwrap()["cpu"].0, "500m");
        assert_eq!(resources.limits.unwrap()["memory"].0, "512Mi");
    }

    #[test]
    fn the_mirror_mounts_the_secrets_of_secured_sides_and_restarts_on_new_credentials() {
        let flow: MirrorFlow = serde_json::from_value(json!({
            "apiVersion": "kafka.strata.dev/v1alpha1", "kind": "MirrorFlow",
            "metadata": {"name": "f", "namespace": "ns"},
            "spec": spec(json!({"alias": "dr", "bootstrapServers": "10.0.0.1:9093",
                                "sasl": {"mechanism": "plain", "secretName": "dr-user"}})),
        }))
        .unwrap();
        let mut east = cluster("east", &["zone-a"]);
        east.spec.listeners = vec![serde_json::from_value(
            json!({"name": "scram", "port": 9092, "tls": true, "authentication": "scram-sha-512"}),
        )
        .unwrap()];
        let referenced = Referenced {
            source: Some(east),
            target: None,
        };
        let mut plan = plan(
            &flow,
            &referenced,
            ActiveSide::Source,
            &PlanContext::new("img:1"),
        )
        .unwrap();
        let template = |p: &FlowPlan| {
            let sts = build(p).stateful_set;
            sts.spec.unwrap().template
        };
        let t = template(&plan);
        let spec = t.spec.unwrap();
        let secrets: Vec<(String, String)> = spec
            .volumes
            .unwrap()
            .iter()
            .filter_map(|v| Some((v.name.clone(), v.secret.as_ref()?.secret_name.clone()?)))
            .collect();
        assert_eq!(
            secrets,
            [
                ("source-tls".to_owned(), "east-mirror-client".to_owned()),
                ("target-sasl".to_owned(), "dr-user".to_owned())
            ]
        );
        let mounts: Vec<String> = spec.containers[0]
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.mount_path.clone())
            .collect();
        assert!(mounts.contains(&"/etc/strata/secrets/source-tls".to_owned()));
        assert!(mounts.contains(&"/etc/strata/secrets/target-sasl".to_owned()));
        assert!(!t
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()
            .contains_key(CREDENTIALS_ANNOTATION));
        plan.set_credentials_digest(Some("abc".into()));
        let annotations = template(&plan).metadata.unwrap().annotations.unwrap();
        assert_eq!(annotations[CREDENTIALS_ANNOTATION], "abc");
    }

    #[test]
    fn discovery_selects_the_active_clusters_brokers() {
        let target = json!({"alias": "west", "clusterRef": {"name": "west"}});
        for (active, cluster) in [(ActiveSide::Source, "east"), (ActiveSide::Target, "west")] {
            let d = children(spec(target.clone()), active).discovery.unwrap();
            let s = d.service.spec.unwrap();
            assert_eq!(s.selector.unwrap()[crate::names::CLUSTER_LABEL], cluster);
            assert_eq!(s.ports.unwrap()[0].port, DISCOVERY_PORT);
            assert!(d.endpoint_slice.is_none());
        }
    }

    #[test]
    fn discovery_of_external_ips_is_an_endpoint_slice() {
        let target = json!({"alias": "dr", "bootstrapServers": "10.0.0.1:9093,10.0.0.2:9093"});
        let d = children(spec(target), ActiveSide::Target)
            .discovery
            .unwrap();
        let s = d.service.spec.as_ref().unwrap();
        assert!(s.selector.is_none(), "selector-less");
        let slice = d.endpoint_slice.unwrap();
        assert_eq!(
            slice.metadata.labels.as_ref().unwrap()[SERVICE_NAME_LABEL],
            "kafka-active"
        );
        let ips: Vec<_> = slice
            .endpoints
            .iter()
            .map(|e| e.addresses[0].clone())
            .collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(slice.ports.unwrap()[0].port, Some(9093));
        // No zones to pin to when the mirror writes to the external side.
        let kids = children(
            spec(json!({"alias": "dr", "bootstrapServers": "10.0.0.1:9093"})),
            ActiveSide::Source,
        );
        assert_eq!(zones(&kids.stateful_set), None);
    }

    #[test]
    fn discovery_of_an_external_name_is_an_external_name_service() {
        let target = json!({"alias": "dr", "bootstrapServers": "kafka.dr.example:9092"});
        let d = children(spec(target), ActiveSide::Target)
            .discovery
            .unwrap();
        let s = d.service.spec.unwrap();
        assert_eq!(s.type_.as_deref(), Some("ExternalName"));
        assert_eq!(s.external_name.as_deref(), Some("kafka.dr.example"));
    }

    #[test]
    fn selectors_match_the_pod_labels_and_replicas_split_by_ordinal() {
        let kids = children(
            spec(json!({"alias": "west", "clusterRef": {"name": "west"}})),
            ActiveSide::Source,
        );
        let sts = kids.stateful_set.spec.as_ref().unwrap();
        let labels = sts
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .clone()
            .unwrap();
        for selector in [
            sts.selector.match_labels.clone().unwrap(),
            kids.mirror_service
                .spec
                .as_ref()
                .unwrap()
                .selector
                .clone()
                .unwrap(),
        ] {
            for (k, v) in selector {
                assert_eq!(labels.get(&k), Some(&v));
            }
        }
        assert_eq!(sts.replicas, Some(2));
        let args = pod(&kids.stateful_set).containers[0].args.clone().unwrap();
        assert!(
            args.windows(2).any(|w| w == ["--replicas", "2"]),
            "{args:?}"
        );
        let flow = &kids.config_map.data.as_ref().unwrap()[FLOW_KEY];
        let parsed =
            strata_mirror::MirrorConfig::parse(flow, "flow.yaml").expect("mirror reads it");
        assert_eq!(parsed.source.alias, "east");
    }
}
