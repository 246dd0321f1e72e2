//! The plan's types: what a validated `KafkaCluster` is ([`ClusterPlan`] with its racks,
//! brokers and listeners), the refusals and warnings validation reports, the fixed paths and
//! ports of a broker pod, and the plan's read accessors. Pure data, below validation
//! (`plan`), voter choice (`voters`) and `server.properties` rendering (`properties`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ResourceRequirements;
use strata_api::{Authentication, PodTemplateOverrides, Storage};

use crate::names::{self, ClusterNames, RackAssignment};

/// Port of the controller-quorum listener on every broker.
pub const CONTROLLER_PORT: i32 = 9093;
/// Port of the broker's HTTP endpoints (`/metrics`, `/readyz`), as
/// `strata.metrics.address=0.0.0.0:9404`.
pub const METRICS_PORT: i32 = 9404;
/// Path of the broker's readiness endpoint: 200 only when the broker is registered,
/// unfenced and caught up, so a ready pod proves the broker rejoined.
pub const READINESS_PATH: &str = "/readyz";
/// Kafka name of the controller-quorum listener.
pub const CONTROLLER_LISTENER: &str = "CONTROLLER";

/// The internal listener of a secured cluster (one with a TLS or authenticating listener):
/// mutual TLS with certificates of the cluster CA, for the brokers' own traffic and the
/// operator's admin calls. It is first in [`ClusterPlan::listeners`], hence the inter-broker
/// listener; the controller listener uses its certificate too.
pub const REPLICATION_LISTENER: &str = "replication";
pub const REPLICATION_PORT: i32 = 9091;
/// Mount point of the broker's volume.
pub const DATA_MOUNT: &str = "/var/lib/strata";
/// `log.dirs` of every broker: a directory on the volume (not its root, which may hold
/// `lost+found`).
pub const LOG_DIR: &str = "/var/lib/strata/data";
/// Mount point of the ConfigMap with the brokers' properties files.
pub const CONFIG_MOUNT: &str = "/etc/strata/config";
/// Directory under which TLS listener `<name>` finds `tls.crt`, `tls.key` (and `ca.crt`).
pub const TLS_MOUNT_ROOT: &str = "/etc/strata/tls";

/// Condition reasons of [`InvalidSpec`] and [`PlanWarning`].
pub mod reason {
    /// No racks, or no brokers in any rack.
    pub const NO_BROKERS: &str = "NoBrokers";
    /// A rack's broker count is negative.
    pub const INVALID_BROKER_COUNT: &str = "InvalidBrokerCount";
    /// Two racks with the same name.
    pub const DUPLICATE_RACK_NAME: &str = "DuplicateRackName";
    /// Two listeners with the same name or port, or one clashing with the controller listener.
    pub const DUPLICATE_LISTENER: &str = "DuplicateListener";
    /// A listener that cannot be built (name, port, mTLS without TLS, none at all).
    pub const INVALID_LISTENER: &str = "InvalidListener";
    /// TLS or SASL on a listener, which this release's broker cannot serve.
    pub const UNSUPPORTED_LISTENER: &str = "UnsupportedListener";
    /// A rack with more brokers than its id block, or colliding recorded blocks.
    pub const BROKER_ID_COLLISION: &str = "BrokerIdCollision";
    /// `spec.config` sets a property the operator owns.
    pub const RESERVED_PROPERTY: &str = "ReservedProperty";
    /// `spec.config` has a malformed key or value.
    pub const INVALID_PROPERTY: &str = "InvalidProperty";
    /// `min.insync.replicas` above `default.replication.factor`.
    pub const MIN_INSYNC_ABOVE_REPLICATION: &str = "MinInsyncAboveReplication";
    /// A replication factor above the number of brokers.
    pub const REPLICATION_ABOVE_BROKERS: &str = "ReplicationAboveBrokers";
    /// `spec.controllerVoters` below 1.
    pub const INVALID_CONTROLLER_VOTERS: &str = "InvalidControllerVoters";
    /// A cluster or rack name that does not make valid child object names.
    pub const INVALID_NAME: &str = "InvalidName";
    /// A rack with a zone but an empty `spec.topologyKey`.
    pub const INVALID_PLACEMENT: &str = "InvalidPlacement";
    /// A malformed `spec.storage.size`.
    pub const INVALID_STORAGE: &str = "InvalidStorage";

    /// Warning: fewer than three racks hold voters, so losing one rack can lose the quorum.
    pub const FEWER_THAN_THREE_VOTER_RACKS: &str = "FewerThanThreeVoterRacks";
    /// Warning: some rack holds so many voters that losing it loses the quorum.
    pub const RACK_LOSS_BREAKS_QUORUM: &str = "RackLossBreaksQuorum";
    /// Warning: an even number of voters tolerates no more failures than one fewer.
    pub const EVEN_VOTER_COUNT: &str = "EvenVoterCount";
    /// Warning: fewer brokers than `spec.controllerVoters`.
    pub const VOTERS_CAPPED: &str = "VotersCapped";
}

/// What the broker image this operator deploys can serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerCapabilities {
    /// TLS listeners.
    pub tls: bool,
    /// SASL authentication (SCRAM, PLAIN).
    pub sasl: bool,
}

impl BrokerCapabilities {
    /// The broker of this release: TLS and SASL listeners (SCRAM; PLAIN is refused by
    /// validation for want of a way to render its users).
    pub const CURRENT: Self = Self {
        tls: true,
        sasl: true,
    };
    /// Every listener kind the operator can render (for tests and future brokers).
    pub const ALL: Self = Self {
        tls: true,
        sasl: true,
    };
}

/// What validation needs beyond the resource itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanContext {
    /// Broker image used when `spec.image` is unset.
    pub broker_image: String,
    /// DNS domain of the Kubernetes cluster (pod DNS names end in it).
    pub cluster_domain: String,
    /// What the broker image can serve.
    pub capabilities: BrokerCapabilities,
}

impl PlanContext {
    /// A context with the default cluster domain and this release's broker capabilities.
    pub fn new(broker_image: impl Into<String>) -> Self {
        Self {
            broker_image: broker_image.into(),
            cluster_domain: names::DEFAULT_CLUSTER_DOMAIN.to_owned(),
            capabilities: BrokerCapabilities::CURRENT,
        }
    }
}

/// A spec the operator refuses: `reason` is the CamelCase condition reason, `message` says
/// what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct InvalidSpec {
    pub reason: &'static str,
    pub message: String,
}

pub(super) fn invalid(reason: &'static str, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        reason,
        message: message.into(),
    }
}

/// Something that works but needs attention, for the `Degraded` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanWarning {
    pub reason: &'static str,
    pub message: String,
}

/// One listener of every broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerPlan {
    /// Name in the spec; also the container and Service port name.
    pub name: String,
    /// Kafka listener name: upper-cased, `-` → `_`.
    pub kafka_name: String,
    pub port: i32,
    pub tls: bool,
    pub authentication: Authentication,
}

impl ListenerPlan {
    /// Kafka security protocol of the listener.
    pub fn security_protocol(&self) -> &'static str {
        match (self.tls, self.sasl_mechanism().is_some()) {
            (false, false) => "PLAINTEXT",
            (true, false) => "SSL",
            (false, true) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        }
    }

    /// Whether the listener encrypts or authenticates.
    pub fn secured(&self) -> bool {
        self.tls || self.authentication != Authentication::None
    }

    /// SASL mechanism of the listener, if it authenticates with SASL.
    pub fn sasl_mechanism(&self) -> Option<&'static str> {
        match self.authentication {
            Authentication::ScramSha512 => Some("SCRAM-SHA-512"),
            Authentication::ScramSha256 => Some("SCRAM-SHA-256"),
            Authentication::Plain => Some("PLAIN"),
            Authentication::None | Authentication::Mtls => None,
        }
    }

    /// Where the listener's certificate and key are mounted.
    pub fn tls_mount(&self) -> String {
        format!("{TLS_MOUNT_ROOT}/{}", self.name)
    }

    /// Prefix of Kafka's per-listener properties: `listener.name.<kafka name lower-cased>.`.
    pub(super) fn property_prefix(&self) -> String {
        format!("listener.name.{}.", self.kafka_name.to_lowercase())
    }
}

/// One rack, in block order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RackPlan {
    pub name: String,
    /// Id block: the rack's brokers have ids `block*100 + ordinal`.
    pub block: i32,
    /// Brokers to run (the spec's count, or more while a scale-down is held).
    pub brokers: i32,
    pub zone: Option<String>,
    pub node_selector: Option<BTreeMap<String, String>>,
    /// `false` for a rack the spec no longer has, kept by [`ClusterPlan::hold_rack`] while its
    /// brokers still hold partitions: its brokers stay in the ConfigMap and the status, but
    /// its placement is unknown, so no StatefulSet is built for it (the reconciler leaves the
    /// existing one alone).
    pub in_spec: bool,
}

impl RackPlan {
    /// Ids of the rack's brokers, by ordinal.
    pub fn ids(&self) -> Vec<i32> {
        (0..self.brokers)
            .map(|ordinal| names::broker_id(self.block, ordinal))
            .collect()
    }
}

/// One broker of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerPlan {
    /// `node.id`.
    pub id: i32,
    pub rack: String,
    /// Ordinal in the rack's StatefulSet.
    pub ordinal: i32,
    /// Pod name.
    pub pod: String,
    /// Whether the broker is a controller-quorum voter.
    pub voter: bool,
}

/// A validated `KafkaCluster`: everything the builder and the reconciler need, already checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterPlan {
    pub(super) names: ClusterNames,
    /// `cluster.id` of every broker (`properties::kafka_cluster_id`).
    pub(super) cluster_id: String,
    pub(super) racks: Vec<RackPlan>,
    pub(super) assignment: RackAssignment,
    pub(super) requested_voters: i32,
    pub(super) voters: Vec<i32>,
    pub(super) listeners: Vec<ListenerPlan>,
    /// Cluster-wide broker properties: operator-owned ones, layout defaults, then spec.config.
    pub(super) config: BTreeMap<String, String>,
    pub(super) image: String,
    pub(super) topology_key: String,
    pub(super) storage: Storage,
    pub(super) resources: Option<ResourceRequirements>,
    pub(super) template: PodTemplateOverrides,
    /// Warnings for the `Degraded` condition, most important first.
    pub warnings: Vec<PlanWarning>,
    /// Fingerprint of the brokers' internal certificate (a secured cluster), set by the
    /// reconciler once the Secret is ready: the brokers' own connections read it at start, so
    /// a new one restarts them (one at a time) through the pod template.
    pub internal_certificate: Option<String>,
}

impl ClusterPlan {
    /// Names and labels of the cluster's children.
    pub fn names(&self) -> &ClusterNames {
        &self.names
    }

    /// `cluster.id` of every broker, in Kafka's text form.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Namespace of the cluster.
    pub fn namespace(&self) -> &str {
        self.names.namespace()
    }

    /// Racks in the spec, in block order.
    pub fn racks(&self) -> &[RackPlan] {
        &self.racks
    }

    /// Ids of the controller-quorum voters, in the order they were chosen.
    pub fn voters(&self) -> &[i32] {
        &self.voters
    }

    /// Warnings for the `Degraded` condition, most important first.
    pub fn warnings(&self) -> &[PlanWarning] {
        &self.warnings
    }

    /// Listeners of every broker, in spec order after the internal replication listener of a
    /// secured cluster (the first is the inter-broker listener).
    pub fn listeners(&self) -> &[ListenerPlan] {
        &self.listeners
    }

    /// Whether the cluster has TLS or authenticating listeners, and so the internal
    /// mutual-TLS listener, the cluster CA and its certificates.
    pub fn secured(&self) -> bool {
        self.listeners
            .first()
            .is_some_and(|l| l.name == REPLICATION_LISTENER)
    }

    /// Broker image.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// Node label holding the zone a rack is pinned to.
    pub fn topology_key(&self) -> &str {
        &self.topology_key
    }

    /// Storage of each broker.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Resources of the broker container.
    pub fn resources(&self) -> Option<&ResourceRequirements> {
        self.resources.as_ref()
    }

    /// Overrides of the broker pods.
    pub fn template(&self) -> &PodTemplateOverrides {
        &self.template
    }

    /// Every broker, rack by rack in block order, then by ordinal.
    pub fn brokers(&self) -> Vec<BrokerPlan> {
        self.racks
            .iter()
            .flat_map(|rack| {
                (0..rack.brokers).map(move |ordinal| {
                    let id = names::broker_id(rack.block, ordinal);
                    BrokerPlan {
                        id,
                        rack: rack.name.clone(),
                        ordinal,
                        pod: self.names.pod(&rack.name, ordinal),
                        voter: self.voters.contains(&id),
                    }
                })
            })
            .collect()
    }

    /// Broker ids of each rack in the spec (empty for a rack with no brokers): what
    /// `status.brokerIds` records.
    pub fn broker_ids(&self) -> BTreeMap<String, Vec<i32>> {
        self.racks
            .iter()
            .map(|r| (r.name.clone(), r.ids()))
            .collect()
    }

    /// Id block of every rack the cluster ever had: what `status.rackIdBlocks` records.
    pub fn rack_id_blocks(&self) -> BTreeMap<String, i32> {
        self.assignment.blocks().clone()
    }

    /// `host:port` clients bootstrap from (the bootstrap Service, the first listener of the
    /// spec; never the internal one).
    pub fn bootstrap_address(&self) -> String {
        let first = &self.listeners[usize::from(self.secured())];
        self.names.bootstrap_address(first.port)
    }

    /// Ids in `previous` (a `status.brokerIds`) that this plan no longer runs, ascending.
    pub fn leaving_brokers(&self, previous: &BTreeMap<String, Vec<i32>>) -> Vec<i32> {
        let current: BTreeSet<i32> = self.racks.iter().flat_map(RackPlan::ids).collect();
        let leaving: BTreeSet<i32> = previous
            .values()
            .flatten()
            .copied()
            .filter(|id| !current.contains(id))
            .collect();
        leaving.into_iter().collect()
    }
}
