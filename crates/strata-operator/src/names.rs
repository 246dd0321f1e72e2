//! Names, labels and broker ids of everything the operator creates for a `KafkaCluster` (and,
//! in [`FlowNames`], for a `MirrorFlow`): the
//! only place that spells a child object's name, a pod's DNS name or a label key, and the only
//! place that turns a rack into broker ids ([`RackAssignment`]). Pure: no client, no I/O.
//!
//! For a cluster `c` in namespace `ns`: ConfigMap `c-config`, headless Service `c-brokers`,
//! bootstrap Service `c-bootstrap`, StatefulSet `c-<rack>` per rack with pods
//! `c-<rack>-<ordinal>` and PVCs `data-c-<rack>-<ordinal>`, PodDisruptionBudget `c`.
//! Each rack owns a block of [`IDS_PER_RACK`] broker ids, recorded in
//! `status.rackIdBlocks` and never handed to another rack, so a broker keeps its id (and its
//! data) when racks are added, removed or reordered.

use std::collections::{BTreeMap, BTreeSet};

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "strata-operator";
/// Cluster DNS domain used when the operator is not told otherwise.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// Name of the PVC template of every broker StatefulSet (PVCs are `data-<pod>`).
pub const DATA_VOLUME: &str = "data";
/// Broker ids per rack: a rack with block `k` has ids `k*100 ..= k*100 + 99`.
pub const IDS_PER_RACK: i32 = 100;

/// `app.kubernetes.io/name`: always `strata`.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance`: the cluster name.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/component`: always `broker` for the children of a `KafkaCluster`.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/managed-by`: always `strata-operator`.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The cluster an object belongs to.
pub const CLUSTER_LABEL: &str = "kafka.strata.dev/cluster";
/// The rack a StatefulSet or pod belongs to.
pub const RACK_LABEL: &str = "kafka.strata.dev/rack";
/// The broker id of a pod.
pub const BROKER_ID_LABEL: &str = "kafka.strata.dev/broker-id";
/// `"true"` on the pods of controller-quorum voters.
pub const CONTROLLER_VOTER_LABEL: &str = "kafka.strata.dev/controller-voter";
/// Pod template annotation: sha256 of what the rack's brokers read from their properties, so a
/// configuration change changes the pod template.
pub const CONFIG_HASH_ANNOTATION: &str = "kafka.strata.dev/config-hash";
/// Pod-template annotation with the fingerprint of a secured cluster's internal certificate.
pub const INTERNAL_CERTIFICATE_ANNOTATION: &str = "kafka.strata.dev/internal-certificate";

/// The `MirrorFlow` an object belongs to (mirror StatefulSet, its pods, discovery Service).
pub const MIRRORFLOW_LABEL: &str = "kafka.strata.dev/mirrorflow";
/// Label every EndpointSlice carries to attach it to its Service (Kubernetes' own key).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label of the manager of an EndpointSlice; the endpoint-slice controller leaves slices
/// managed by others alone.
pub const ENDPOINT_SLICE_MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Value of [`ENDPOINT_SLICE_MANAGED_BY_LABEL`] on the slices the operator writes.
pub const ENDPOINT_SLICE_MANAGER: &str = "strata-operator.kafka.strata.dev";
/// Pod label the StatefulSet controller sets to the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

const APP: &str = "strata";
const COMPONENT: &str = "broker";
const MIRROR_COMPONENT: &str = "mirror";
const DISCOVERY_COMPONENT: &str = "discovery";

/// Label selector (`key=value,...`) of every object the operator manages.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={FIELD_MANAGER}")
}

/// Label selector (`key=value,...`) of the broker objects and pods of cluster `cluster`:
/// the string form of [`ClusterNames::selector`].
pub fn cluster_selector(cluster: &str) -> String {
    to_selector(&selector_of(cluster))
}

fn selector_of(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (COMPONENT_LABEL.to_owned(), COMPONENT.to_owned()),
        (CLUSTER_LABEL.to_owned(), cluster.to_owned()),
    ])
}

fn to_selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Broker id of the broker at `ordinal` in the rack that owns id block `block`.
pub fn broker_id(block: i32, ordinal: i32) -> i32 {
    block * IDS_PER_RACK + ordinal
}

/// Names and labels of the children of one `KafkaCluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNames {
    cluster: String,
    namespace: String,
    cluster_domain: String,
}

impl ClusterNames {
    /// Names for cluster `cluster` in `namespace`, with pod DNS names under `cluster_domain`.
    pub fn new(cluster: &str, namespace: &str, cluster_domain: &str) -> Self {
        Self {
            cluster: cluster.to_owned(),
            namespace: namespace.to_owned(),
            cluster_domain: cluster_domain.to_owned(),
        }
    }

    /// Name of the `KafkaCluster`.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Namespace of the cluster and of all its children.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Cluster DNS domain the pod names are resolved under.
    pub fn cluster_domain(&self) -> &str {
        &self.cluster_domain
    }

    /// ConfigMap holding one properties file per broker: `c-config`.
    pub fn config_map(&self) -> String {
        format!("{}-config", self.cluster)
    }

    /// Headless Service that gives every broker pod a DNS name: `c-brokers`.
    pub fn headless_service(&self) -> String {
        format!("{}-brokers", self.cluster)
    }

    /// ClusterIP Service clients bootstrap from: `c-bootstrap`.
    pub fn bootstrap_service(&self) -> String {
        format!("{}-bootstrap", self.cluster)
    }

    /// PodDisruptionBudget over all brokers: `c`.
    pub fn pod_disruption_budget(&self) -> String {
        self.cluster.clone()
    }

    /// StatefulSet of a rack: `c-<rack>`.
    pub fn stateful_set(&self, rack: &str) -> String {
        format!("{}-{rack}", self.cluster)
    }

    /// Pod of the broker at `ordinal` in `rack`: `c-<rack>-<ordinal>`.
    pub fn pod(&self, rack: &str, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.stateful_set(rack))
    }

    /// PVC of the broker at `ordinal` in `rack`: `data-c-<rack>-<ordinal>`.
    pub fn data_claim(&self, rack: &str, ordinal: i32) -> String {
        format!("{DATA_VOLUME}-{}", self.pod(rack, ordinal))
    }

    /// Stable DNS name of a broker pod through the headless Service:
    /// `c-<rack>-<ordinal>.c-brokers.<ns>.svc.<cluster domain>`.
    pub fn pod_dns(&self, rack: &str, ordinal: i32) -> String {
        self.pod_dns_of(&self.pod(rack, ordinal))
    }

    /// DNS name of the pod called `pod` through the headless Service.
    pub fn pod_dns_of(&self, pod: &str) -> String {
        format!(
            "{pod}.{}.{}.svc.{}",
            self.headless_service(),
            self.namespace,
            self.cluster_domain
        )
    }

    /// `host:port` clients bootstrap from: `c-bootstrap.<ns>.svc:<port>`.
    pub fn bootstrap_address(&self, port: i32) -> String {
        format!("{}.{}.svc:{port}", self.bootstrap_service(), self.namespace)
    }

    /// ConfigMap key of a broker's properties file: `c-<rack>-<ordinal>.properties`, i.e. the
    /// pod name, which is what the container finds through `$(POD_NAME)`.
    pub fn properties_key(&self, rack: &str, ordinal: i32) -> String {
        format!("{}.properties", self.pod(rack, ordinal))
    }

    /// Secret holding `tls.crt` and `tls.key` (and `ca.crt` for mTLS) of a TLS listener:
    /// `c-<listener>-tls`.
    pub fn tls_secret(&self, listener: &str) -> String {
        format!("{}-{listener}-tls", self.cluster)
    }

    /// Labels on every child of the cluster.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (NAME_LABEL.to_owned(), APP.to_owned()),
            (INSTANCE_LABEL.to_owned(), self.cluster.clone()),
            (COMPONENT_LABEL.to_owned(), COMPONENT.to_owned()),
            (MANAGED_BY_LABEL.to_owned(), FIELD_MANAGER.to_owned()),
            (CLUSTER_LABEL.to_owned(), self.cluster.clone()),
        ])
    }

    /// Labels on the objects of one rack (StatefulSet, pod template, PVC template).
    pub fn rack_labels(&self, rack: &str) -> BTreeMap<String, String> {
        let mut labels = self.labels();
        labels.insert(RACK_LABEL.to_owned(), rack.to_owned());
        labels
    }

    /// Labels a broker pod carries beyond its rack's: its id and, for voters, the voter mark.
    /// A StatefulSet's pods share one template, so these are set on each pod by the reconciler.
    pub fn broker_pod_labels(&self, id: i32, voter: bool) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([(BROKER_ID_LABEL.to_owned(), id.to_string())]);
        if voter {
            labels.insert(CONTROLLER_VOTER_LABEL.to_owned(), "true".to_owned());
        }
        labels
    }

    /// Selector of all broker pods of the cluster (Services, PodDisruptionBudget).
    pub fn selector(&self) -> BTreeMap<String, String> {
        selector_of(&self.cluster)
    }

    /// Selector of the pods of one rack (its StatefulSet; immutable once created).
    pub fn rack_selector(&self, rack: &str) -> BTreeMap<String, String> {
        let mut labels = self.selector();
        labels.insert(RACK_LABEL.to_owned(), rack.to_owned());
        labels
    }
}

/// Names and labels of the children of one `MirrorFlow` `f`: ConfigMap `f-mirror-config`
/// holding the flow file, headless Service `f-mirror` (the metrics endpoints of the mirror
/// pods), StatefulSet `f-mirror` with pods `f-mirror-<ordinal>`, and the discovery Service the
/// spec names, with an EndpointSlice `<discovery>-external` when the active side is a list of
/// external IP addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowNames {
    flow: String,
    namespace: String,
}

impl FlowNames {
    pub fn new(flow: &str, namespace: &str) -> Self {
        Self {
            flow: flow.to_owned(),
            namespace: namespace.to_owned(),
        }
    }

    /// Name of the `MirrorFlow`.
    pub fn flow(&self) -> &str {
        &self.flow
    }

    /// Namespace of the flow and of all its children.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// StatefulSet running `strata-mirror`: `f-mirror`.
    pub fn stateful_set(&self) -> String {
        format!("{}-mirror", self.flow)
    }

    /// Headless Service of the mirror pods (their `/metrics`): `f-mirror`.
    pub fn mirror_service(&self) -> String {
        self.stateful_set()
    }

    /// ConfigMap holding the flow file `strata-mirror` reads: `f-mirror-config`.
    pub fn config_map(&self) -> String {
        format!("{}-mirror-config", self.flow)
    }

    /// The EndpointSlice of discovery Service `discovery` when it points at external IPs.
    pub fn endpoint_slice(&self, discovery: &str) -> String {
        format!("{discovery}-external")
    }

    fn base_labels(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (NAME_LABEL.to_owned(), APP.to_owned()),
            (INSTANCE_LABEL.to_owned(), self.flow.clone()),
            (COMPONENT_LABEL.to_owned(), component.to_owned()),
            (MANAGED_BY_LABEL.to_owned(), FIELD_MANAGER.to_owned()),
            (MIRRORFLOW_LABEL.to_owned(), self.flow.clone()),
        ])
    }

    /// Labels of the mirror's objects and pods.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.base_labels(MIRROR_COMPONENT)
    }

    /// Labels of the discovery Service and its EndpointSlice.
    pub fn discovery_labels(&self) -> BTreeMap<String, String> {
        self.base_labels(DISCOVERY_COMPONENT)
    }

    /// Selector of the mirror pods (immutable on the StatefulSet once created).
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (COMPONENT_LABEL.to_owned(), MIRROR_COMPONENT.to_owned()),
            (MIRRORFLOW_LABEL.to_owned(), self.flow.clone()),
        ])
    }
}

/// Why racks cannot be given broker ids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    #[error(
        "rack {rack} asks for {brokers} brokers, but a rack holds at most {IDS_PER_RACK} \
         (ids block*{IDS_PER_RACK} .. block*{IDS_PER_RACK}+99); split it into several racks"
    )]
    TooManyBrokers { rack: String, brokers: i32 },
    #[error(
        "status.rackIdBlocks gives block {block} to both rack {first} and rack {second}, so \
         their brokers would share ids; restore the status or give one of them its old block"
    )]
    BlockCollision {
        block: i32,
        first: String,
        second: String,
    },
    #[error(
        "status.rackIdBlocks gives rack {rack} block {block}, outside 0..={MAX_BLOCK}; \
         restore the status"
    )]
    BlockOutOfRange { rack: String, block: i32 },
}

/// Largest block whose ids still fit in an `i32`.
pub const MAX_BLOCK: i32 = (i32::MAX - (IDS_PER_RACK - 1)) / IDS_PER_RACK;

/// The id block of every rack the cluster has ever had. Racks already recorded keep their
/// block; new racks get the lowest unused blocks in spec order; removed racks keep their entry
/// so their ids are never reused. With nothing recorded (a new cluster) the blocks follow spec
/// order 0, 1, 2, … Reordering racks in the spec changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RackAssignment {
    blocks: BTreeMap<String, i32>,
}

impl RackAssignment {
    /// Assigns blocks to `racks` (name, broker count) in spec order, keeping `recorded`.
    pub fn assign<'a>(
        recorded: &BTreeMap<String, i32>,
        racks: impl IntoIterator<Item = (&'a str, i32)>,
    ) -> Result<Self, AssignmentError> {
        let mut owner_of: BTreeMap<i32, &str> = BTreeMap::new();
        for (rack, &block) in recorded {
            if !(0..=MAX_BLOCK).contains(&block) {
                return Err(AssignmentError::BlockOutOfRange {
                    rack: rack.clone(),
                    block,
                });
            }
            if let Some(first) = owner_of.insert(block, rack) {
                return Err(AssignmentError::BlockCollision {
                    block,
                    first: first.to_owned(),
                    second: rack.clone(),
                });
            }
        }
        let mut blocks = recorded.clone();
        let mut used: BTreeSet<i32> = owner_of.into_keys().collect();
        let mut next = 0;
        for (rack, brokers) in racks {
            if brokers > IDS_PER_RACK {
                return Err(AssignmentError::TooManyBrokers {
                    rack: rack.to_owned(),
                    brokers,
                });
            }
            if blocks.contains_key(rack) {
                continue;
            }
            while used.contains(&next) {
                next += 1;
            }
            used.insert(next);
            blocks.insert(rack.to_owned(), next);
        }
        Ok(Self { blocks })
    }

    /// Block of `rack`, if it has (or had) one.
    pub fn block(&self, rack: &str) -> Option<i32> {
        self.blocks.get(rack).copied()
    }

    /// Every rack's block, including racks no longer in the spec.
    pub fn blocks(&self) -> &BTreeMap<String, i32> {
        &self.blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ClusterNames {
        ClusterNames::new("c", "ns", DEFAULT_CLUSTER_DOMAIN)
    }

    #[test]
    fn child_names() {
        let n = names();
        assert_eq!(n.config_map(), "c-config");
        assert_eq!(n.headless_service(), "c-brokers");
        assert_eq!(n.bootstrap_service(), "c-bootstrap");
        assert_eq!(n.pod_disruption_budget(), "c");
        assert_eq!(n.stateful_set("zone-a"), "c-zone-a");
        assert_eq!(n.pod("zone-a", 2), "c-zone-a-2");
        assert_eq!(n.data_claim("zone-a", 2), "data-c-zone-a-2");
        assert_eq!(n.properties_key("zone-a", 2), "c-zone-a-2.properties");
        assert_eq!(n.tls_secret("secure"), "c-secure-tls");
        assert_eq!(
            n.pod_dns("zone-a", 2),
            "c-zone-a-2.c-brokers.ns.svc.cluster.local"
        );
        assert_eq!(n.bootstrap_address(9092), "c-bootstrap.ns.svc:9092");
    }

    #[test]
    fn labels_and_selectors() {
        let n = names();
        let rack = n.rack_labels("r");
        assert_eq!(rack[CLUSTER_LABEL], "c");
        assert_eq!(rack[RACK_LABEL], "r");
        assert_eq!(rack[MANAGED_BY_LABEL], FIELD_MANAGER);
        assert_eq!(rack[INSTANCE_LABEL], "c");
        // Selectors are subsets of the labels the pods carry.
        for (k, v) in n.rack_selector("r") {
            assert_eq!(rack.get(&k), Some(&v));
        }
        assert_eq!(
            cluster_selector("c"),
            "app.kubernetes.io/component=broker,kafka.strata.dev/cluster=c"
        );
        assert_eq!(
            managed_selector(),
            "app.kubernetes.io/managed-by=strata-operator"
        );
        assert_eq!(n.broker_pod_labels(7, false).len(), 1);
        assert_eq!(n.broker_pod_labels(7, true)[CONTROLLER_VOTER_LABEL], "true");
    }

    #[test]
    fn flow_names_and_selector() {
        let n = FlowNames::new("f", "ns");
        assert_eq!(n.stateful_set(), "f-mirror");
        assert_eq!(n.mirror_service(), "f-mirror");
        assert_eq!(n.config_map(), "f-mirror-config");
        assert_eq!(n.endpoint_slice("kafka-active"), "kafka-active-external");
        let labels = n.labels();
        for (k, v) in n.selector() {
            assert_eq!(labels.get(&k), Some(&v));
        }
        // A flow's objects are never mistaken for a cluster's brokers.
        assert!(!labels.contains_key(CLUSTER_LABEL));
        assert_eq!(n.discovery_labels()[COMPONENT_LABEL], "discovery");
    }

    #[test]
    fn recorded_blocks_are_kept_and_new_racks_fill_gaps() {
        let recorded = BTreeMap::from([("a".to_owned(), 0), ("c".to_owned(), 2)]);
        let a = RackAssignment::assign(&recorded, [("c", 1), ("b", 1), ("d", 1)]).unwrap();
        assert_eq!(a.block("c"), Some(2));
        assert_eq!(a.block("b"), Some(1));
        assert_eq!(a.block("d"), Some(3));
        assert_eq!(a.block("a"), Some(0), "removed racks keep their block");
    }

    #[test]
    fn too_many_brokers_and_collisions_are_errors() {
        let none = BTreeMap::new();
        assert!(matches!(
            RackAssignment::assign(&none, [("a", 101)]),
            Err(AssignmentError::TooManyBrokers { .. })
        ));
        assert!(RackAssignment::assign(&none, [("a", 100)]).is_ok());
        let clash = BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 1)]);
        assert!(matches!(
            RackAssignment::assign(&clash, [("a", 1)]),
            Err(AssignmentError::BlockCollision { block: 1, .. })
        ));
        let negative = BTreeMap::from([("a".to_owned(), -1)]);
        assert!(matches!(
            RackAssignment::assign(&negative, [("a", 1)]),
            Err(AssignmentError::BlockOutOfRange { .. })
        ));
        assert_eq!(
            i64::from(broker_id(MAX_BLOCK, IDS_PER_RACK - 1)),
            i64::from(MAX_BLOCK) * 100 + 99
        );
    }
}
