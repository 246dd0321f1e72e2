//! Validation of a `MirrorFlow` into a [`FlowPlan`]: the typed, checked value the builder and
//! the reconciler work from. Pure: no client. The reconciler reads the `KafkaCluster`s the flow
//! references ([`Referenced`]) and which side is active now; everything else comes from the
//! resource. Every rule the builder or `strata-mirror` would otherwise trip over is checked
//! here and reported as an [`InvalidFlow`] whose `reason` becomes the `Ready=False` reason.
//!
//! What counts as a Strata cluster: a side given as `clusterRef` is a `KafkaCluster` this
//! operator runs, so it is Strata. A side given as `bootstrapServers` is treated as foreign
//! (Apache Kafka or any other implementation): nothing in the spec proves otherwise, and the
//! offset-preserving append and the write fence exist on Strata brokers only, so guessing
//! "Strata" from an answer would fail later at the worst moment (during a failover). Hence
//! `offsets: Preserve` needs both sides to be `clusterRef`s: the target takes the
//! offset-preserving appends, and the source takes them after a failover reverses the flow.

use std::collections::BTreeMap;
use std::net::IpAddr;

use kube::ResourceExt;
use strata_api::{
    ActiveSide, ClusterEndpoint, FailoverMode, KafkaCluster, MirrorFlow, MirrorFlowSpec,
    NamingMode, OffsetMode,
};
use strata_mirror::MirrorConfig;

use crate::cluster::plan::PlanContext;
use crate::kafka::in_cluster_bootstrap;
use crate::names::{ClusterNames, FlowNames};

/// Condition reasons of invalid flows.
pub mod reason {
    /// A side sets both or neither of `clusterRef` and `bootstrapServers`.
    pub const INVALID_ENDPOINT: &str = "InvalidEndpoint";
    /// A `clusterRef` names a `KafkaCluster` that does not exist (yet).
    pub const CLUSTER_NOT_FOUND: &str = "ClusterNotFound";
    /// Source and target are the same cluster or share an alias.
    pub const SAME_CLUSTER: &str = "SameCluster";
    /// `bootstrapServers` is not a list of `host:port`.
    pub const INVALID_BOOTSTRAP: &str = "InvalidBootstrapServers";
    /// TLS or SASL towards an external cluster: the mirror of this release speaks plaintext.
    pub const UNSUPPORTED_SECURITY: &str = "UnsupportedEndpointSecurity";
    /// `offsets: Preserve` with `naming: Prefixed`.
    pub const PRESERVE_NEEDS_IDENTITY: &str = "PreserveNeedsIdentityNaming";
    /// `offsets: Preserve` with a side that is not a Strata `KafkaCluster`.
    pub const PRESERVE_NEEDS_STRATA: &str = "PreserveNeedsStrataClusters";
    /// The flow's name cannot name its children.
    pub const INVALID_NAME: &str = "InvalidName";
    /// The discovery Service name is not a Service name or is taken by another object.
    pub const INVALID_DISCOVERY: &str = "InvalidDiscoveryService";
    /// Topic or group filters, tuning or sync values `strata-mirror` refuses.
    pub const INVALID_MIRROR_CONFIG: &str = "InvalidMirrorConfig";
}

/// A flow the operator refuses: `reason` is the CamelCase condition reason, `message` says
/// what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct InvalidFlow {
    pub reason: &'static str,
    pub message: String,
}

fn invalid(reason: &'static str, message: impl Into<String>) -> InvalidFlow {
    InvalidFlow {
        reason,
        message: message.into(),
    }
}

impl InvalidFlow {
    /// Whether another object can fix this (a referenced cluster appearing), so the
    /// reconciler looks again instead of waiting for a change of the flow.
    pub fn waits_for_another_object(&self) -> bool {
        self.reason == reason::CLUSTER_NOT_FOUND
    }
}

/// The `KafkaCluster`s the flow's `clusterRef`s name, as read from the API server (`None`:
/// not referenced, or not found).
#[derive(Clone, Debug, Default)]
pub struct Referenced {
    pub source: Option<KafkaCluster>,
    pub target: Option<KafkaCluster>,
}

/// Port of the discovery Service when the active side is a `KafkaCluster`.
pub const DISCOVERY_PORT: i32 = 9092;

/// Where one side of the flow is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A `KafkaCluster` of this operator: a Strata cluster.
    Cluster(ClusterSide),
    /// `bootstrapServers` of a cluster outside this operator's care, treated as foreign.
    External(ExternalSide),
}

/// A `KafkaCluster` side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSide {
    /// Name of the `KafkaCluster`.
    pub name: String,
    /// In-cluster `host:port` of its bootstrap Service (what the mirror pods use).
    pub bootstrap: String,
    /// Labels of its broker pods (what the discovery Service selects).
    pub broker_selector: BTreeMap<String, String>,
    /// Port its brokers serve clients on (its first listener).
    pub client_port: i32,
    /// Zones of its racks, sorted, without duplicates (empty: no rack pinned to a zone).
    pub zones: Vec<String>,
    /// Node label that holds the zone.
    pub topology_key: String,
}

/// An external side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalSide {
    /// `host:port,...` as the spec gives it, trimmed.
    pub bootstrap: String,
    /// What a discovery Service pointing at it is made of.
    pub address: ExternalAddress,
}

/// How a discovery Service reaches an external side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExternalAddress {
    /// Every bootstrap entry is an IP address: a selector-less Service with an EndpointSlice.
    Ips { ips: Vec<String>, port: i32 },
    /// A DNS name (the first one given): a Service of type ExternalName. Clients connect to it
    /// on the same port as the name's own.
    Name { host: String, port: i32 },
}

/// One side of the flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SidePlan {
    /// `source` or `target` in the spec.
    pub side: ActiveSide,
    pub alias: String,
    pub endpoint: Endpoint,
}

impl SidePlan {
    /// `host:port,...` the mirror pods bootstrap from.
    pub fn bootstrap(&self) -> &str {
        match &self.endpoint {
            Endpoint::Cluster(c) => &c.bootstrap,
            Endpoint::External(e) => &e.bootstrap,
        }
    }

    /// Whether this side is a Strata cluster (see the module documentation).
    pub fn is_strata(&self) -> bool {
        matches!(self.endpoint, Endpoint::Cluster(_))
    }

    /// The `KafkaCluster` of this side, if it is one.
    pub fn cluster(&self) -> Option<&ClusterSide> {
        match &self.endpoint {
            Endpoint::Cluster(c) => Some(c),
            Endpoint::External(_) => None,
        }
    }

    /// How status and messages name this side: `alias (KafkaCluster c)` or
    /// `alias (bootstrapServers)`.
    pub fn describe(&self) -> String {
        match &self.endpoint {
            Endpoint::Cluster(c) => format!("{} (KafkaCluster {})", self.alias, c.name),
            Endpoint::External(e) => format!("{} ({})", self.alias, e.bootstrap),
        }
    }
}

/// A validated `MirrorFlow`, with the side that is active now.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowPlan {
    names: FlowNames,
    source: SidePlan,
    target: SidePlan,
    active: ActiveSide,
    mirror_from: Option<ActiveSide>,
    spec: MirrorFlowSpec,
    image: String,
}

/// The flow of `flow` with `referenced` as its clusters, `active` the side clients are on
/// now (the discovery Service points at it; the mirror reads from it and writes to the other
/// until [`FlowPlan::set_mirror`] says otherwise).
pub fn plan(
    flow: &MirrorFlow,
    referenced: &Referenced,
    active: ActiveSide,
    ctx: &PlanContext,
) -> Result<FlowPlan, InvalidFlow> {
    let name = flow.name_any();
    let namespace = flow.namespace().unwrap_or_else(|| "default".to_owned());
    let names = FlowNames::new(&name, &namespace);
    check_flow_name(&names)?;
    let spec = &flow.spec;
    let source = side(
        ActiveSide::Source,
        &spec.source,
        referenced.source.as_ref(),
        &namespace,
        ctx,
    )?;
    let target = side(
        ActiveSide::Target,
        &spec.target,
        referenced.target.as_ref(),
        &namespace,
        ctx,
    )?;
    if source.alias == target.alias {
        return Err(invalid(
            reason::SAME_CLUSTER,
            format!(
                "source and target both have alias {:?}; aliases name the sides in topic \
                 names, metrics and status, so give each its own",
                source.alias
            ),
        ));
    }
    let same = match (&source.endpoint, &target.endpoint) {
        (Endpoint::Cluster(a), Endpoint::Cluster(b)) => a.name == b.name,
        (Endpoint::External(a), Endpoint::External(b)) => a.bootstrap == b.bootstrap,
        _ => false,
    };
    if same {
        return Err(invalid(
            reason::SAME_CLUSTER,
            format!(
                "source and target are the same cluster ({}); a flow mirrors between two \
                 clusters",
                source.describe()
            ),
        ));
    }
    if spec.offsets == OffsetMode::Preserve {
        if spec.naming != NamingMode::Identity {
            return Err(invalid(
                reason::PRESERVE_NEEDS_IDENTITY,
                "offsets: Preserve keeps every record at its source offset under the same \
                 topic name; set naming: Identity (or use offsets: Translate)",
            ));
        }
        // The target takes the offset-preserving appends; the source takes them once a
        // failover reverses the flow. Both must be Strata brokers.
        for s in [&source, &target] {
            if !s.is_strata() {
                return Err(invalid(
                    reason::PRESERVE_NEEDS_STRATA,
                    format!(
                        "offsets: Preserve needs Strata clusters on both sides (the \
                         offset-preserving append is a Strata broker extension, and a failover \
                         reverses the flow), but {} {} is given as bootstrapServers, which the \
                         operator treats as a foreign cluster; reference a KafkaCluster with \
                         clusterRef, or use offsets: Translate",
                        side_name(s.side),
                        s.alias
                    ),
                ));
            }
        }
    }
    if let Some(discovery) = &spec.failover.discovery_service {
        check_discovery(&names, discovery, &source, &target)?;
    }
    let plan = FlowPlan {
        names,
        source,
        target,
        active,
        mirror_from: Some(active),
        spec: spec.clone(),
        image: ctx.broker_image.clone(),
    };
    // The one place that decides whether a flow file can run is strata-mirror's own
    // validation; both directions must pass, the flow reverses after a failover.
    for direction in [ActiveSide::Source, ActiveSide::Target] {
        plan.mirror_config_for(direction)
            .validate()
            .map_err(|e| invalid(reason::INVALID_MIRROR_CONFIG, e.to_string()))?;
    }
    Ok(plan)
}

fn side_name(side: ActiveSide) -> &'static str {
    match side {
        ActiveSide::Source => "source",
        ActiveSide::Target => "target",
    }
}

fn side(
    which: ActiveSide,
    endpoint: &ClusterEndpoint,
    cluster: Option<&KafkaCluster>,
    namespace: &str,
    ctx: &PlanContext,
) -> Result<SidePlan, InvalidFlow> {
    let label = side_name(which);
    let endpoint_plan = match (&endpoint.cluster_ref, &endpoint.bootstrap_servers) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(invalid(
                reason::INVALID_ENDPOINT,
                format!("spec.{label} must set exactly one of clusterRef and bootstrapServers"),
            ))
        }
        (Some(reference), None) => {
            if endpoint.tls.is_some() || endpoint.sasl.is_some() {
                return Err(invalid(
                    reason::INVALID_ENDPOINT,
                    format!(
                        "spec.{label}.tls and spec.{label}.sasl apply to bootstrapServers; a \
                         clusterRef is reached through its listeners, remove them"
                    ),
                ));
            }
            let Some(cluster) = cluster else {
                return Err(invalid(
                    reason::CLUSTER_NOT_FOUND,
                    format!(
                        "KafkaCluster {} (spec.{label}.clusterRef) not found in namespace \
                         {namespace}",
                        reference.name
                    ),
                ));
            };
            if crate::kafka::is_secured(cluster) {
                return Err(invalid(
                    reason::UNSUPPORTED_SECURITY,
                    format!(
                        "spec.{label}.clusterRef names KafkaCluster {}, whose listeners use TLS \
                         or authentication; the operator does not yet give its mirror pods \
                         and failover calls credentials for a secured cluster, so mirror \
                         between clusters with plaintext listeners",
                        reference.name
                    ),
                ));
            }
            let names = ClusterNames::new(&reference.name, namespace, &ctx.cluster_domain);
            let mut zones: Vec<String> = cluster
                .spec
                .racks
                .iter()
                .filter(|r| r.brokers > 0)
                .filter_map(|r| r.zone.clone())
                .collect();
            zones.sort();
            zones.dedup();
            Endpoint::Cluster(ClusterSide {
                name: reference.name.clone(),
                bootstrap: in_cluster_bootstrap(cluster, &ctx.cluster_domain),
                broker_selector: names.selector(),
                client_port: cluster.spec.listeners.first().map_or(9092, |l| l.port),
                zones,
                topology_key: cluster.spec.topology_key.clone(),
            })
        }
        (None, Some(servers)) => {
            if endpoint.tls.is_some() || endpoint.sasl.is_some() {
                return Err(invalid(
                    reason::UNSUPPORTED_SECURITY,
                    format!(
                        "spec.{label} asks for TLS or SASL, but strata-mirror of this release \
                         connects in plaintext only; remove spec.{label}.tls/sasl or use a \
                         plaintext listener"
                    ),
                ));
            }
            Endpoint::External(external(label, servers)?)
        }
    };
    Ok(SidePlan {
        side: which,
        alias: endpoint.alias.clone(),
        endpoint: endpoint_plan,
    })
}

/// Parses `host:port,...` into what a discovery Service needs.
fn external(label: &str, servers: &str) -> Result<ExternalSide, InvalidFlow> {
    let entries: Vec<&str> = servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let bad = |entry: &str| {
        invalid(
            reason::INVALID_BOOTSTRAP,
            format!(
                "spec.{label}.bootstrapServers entry {entry:?} is not host:port; write e.g. \
                 kafka-0.example.com:9092,10.0.0.7:9092"
            ),
        )
    };
    if entries.is_empty() {
        return Err(bad(servers));
    }
    let mut ips = Vec::new();
    let mut ip_ports = Vec::new();
    let mut first_name = None;
    for entry in &entries {
        let (host, port) = entry.rsplit_once(':').ok_or_else(|| bad(entry))?;
        let port: u16 = port.parse().map_err(|_| bad(entry))?;
        if port == 0 || host.is_empty() {
            return Err(bad(entry));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => {
                ips.push(ip.to_string());
                ip_ports.push(i32::from(port));
            }
            Err(_) => {
                let name_ok = bare.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
                if !name_ok {
                    return Err(bad(entry));
                }
                first_name.get_or_insert((bare.to_ascii_lowercase(), i32::from(port)));
            }
        }
    }
    let address = match first_name {
        Some((host, port)) => ExternalAddress::Name { host, port },
        None => ExternalAddress::Ips {
            ips,
            port: ip_ports[0],
        },
    };
    Ok(ExternalSide {
        bootstrap: entries.join(","),
        address,
    })
}

fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !text.is_empty()
        && text.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes.last() != Some(&b'-')
}

/// Longest StatefulSet name: its pods get a `controller-revision-hash` label of
/// `<name>-<hash of up to 10 characters>`, and label values are at most 63 characters.
const MAX_STATEFUL_SET_NAME: usize = 52;

fn check_flow_name(names: &FlowNames) -> Result<(), InvalidFlow> {
    let longest = names.config_map();
    if !is_dns_label(names.flow())
        || longest.len() > 63
        || names.stateful_set().len() > MAX_STATEFUL_SET_NAME
    {
        return Err(invalid(
            reason::INVALID_NAME,
            format!(
                "flow name {:?} cannot name its children ({longest}, {}); use at most 45 \
                 lowercase letters, digits and '-', starting with a letter",
                names.flow(),
                names.stateful_set()
            ),
        ));
    }
    Ok(())
}

fn check_discovery(
    names: &FlowNames,
    discovery: &str,
    source: &SidePlan,
    target: &SidePlan,
) -> Result<(), InvalidFlow> {
    if !is_dns_label(discovery) || names.endpoint_slice(discovery).len() > 63 {
        return Err(invalid(
            reason::INVALID_DISCOVERY,
            format!(
                "spec.failover.discoveryService {discovery:?} is not a Service name; use at most \
                 54 lowercase letters, digits and '-', starting with a letter"
            ),
        ));
    }
    // Names another owner writes: two writers of one Service would undo each other.
    let mut taken = vec![names.mirror_service()];
    for s in [source, target] {
        if let Some(c) = s.cluster() {
            let n = ClusterNames::new(&c.name, names.namespace(), "");
            taken.extend([n.bootstrap_service(), n.headless_service()]);
        }
    }
    if taken.iter().any(|t| t == discovery) {
        return Err(invalid(
            reason::INVALID_DISCOVERY,
            format!(
                "spec.failover.discoveryService {discovery:?} is the name of a Service the \
                 operator already manages for another purpose; choose another name"
            ),
        ));
    }
    for s in [source, target] {
        if let Endpoint::External(ExternalSide {
            address: ExternalAddress::Ips { port, .. },
            bootstrap,
        }) = &s.endpoint
        {
            let ports: std::collections::BTreeSet<&str> = bootstrap
                .split(',')
                .filter_map(|e| e.rsplit_once(':').map(|(_, p)| p))
                .collect();
            if ports.len() > 1 {
                return Err(invalid(
                    reason::INVALID_DISCOVERY,
                    format!(
                        "the discovery Service can point at {} only when all its bootstrap \
                         addresses share one port (found {}); list brokers on port {port} only",
                        s.alias,
                        ports.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl FlowPlan {
    pub fn names(&self) -> &FlowNames {
        &self.names
    }

    pub fn namespace(&self) -> &str {
        self.names.namespace()
    }

    pub fn spec(&self) -> &MirrorFlowSpec {
        &self.spec
    }

    /// Image of the mirror pods: the operator's image, the one brokers run too.
    pub fn image(&self) -> &str {
        &self.image
    }

    pub fn source(&self) -> &SidePlan {
        &self.source
    }

    pub fn target(&self) -> &SidePlan {
        &self.target
    }

    pub fn side(&self, side: ActiveSide) -> &SidePlan {
        match side {
            ActiveSide::Source => &self.source,
            ActiveSide::Target => &self.target,
        }
    }

    /// The side clients are on now: the discovery Service points at it.
    pub fn active(&self) -> ActiveSide {
        self.active
    }

    /// The side the mirror reads from (while stopped: the active one, which it will read
    /// from when it starts again unless told otherwise).
    pub fn reading(&self) -> &SidePlan {
        self.side(self.direction())
    }

    /// The side the mirror writes to.
    pub fn writing(&self) -> &SidePlan {
        self.side(other(self.direction()))
    }

    fn direction(&self) -> ActiveSide {
        self.mirror_from.unwrap_or(self.active)
    }

    /// Points clients (the discovery Service) at `side`.
    pub fn set_active(&mut self, side: ActiveSide) {
        self.active = side;
    }

    /// Whether the mirror pods run; the failover engine stops them while it fences, drains and
    /// promotes, and starts them once the standby has rejoined.
    pub fn mirror_running(&self) -> bool {
        self.mirror_from.is_some()
    }

    /// Runs the mirror from `from` to the other side, or stops it (`None`).
    pub fn set_mirror(&mut self, from: Option<ActiveSide>) {
        self.mirror_from = from;
    }

    /// Mirror processes that share the flow (`spec.replicas`).
    pub fn replicas(&self) -> i32 {
        self.spec.replicas.max(0)
    }

    /// Automatic failover when the active side fails its probes.
    pub fn automatic(&self) -> bool {
        self.spec.failover.mode == FailoverMode::Automatic
    }

    /// The discovery Service's name and the side it points at (the active one).
    pub fn discovery(&self) -> Option<(&str, &SidePlan)> {
        self.spec
            .failover
            .discovery_service
            .as_deref()
            .map(|name| (name, self.side(self.active)))
    }

    /// The flow file `strata-mirror` runs: from [`FlowPlan::reading`] to the other side.
    pub fn mirror_config(&self) -> MirrorConfig {
        self.mirror_config_for(self.direction())
    }

    /// The flow file reading from `from`.
    pub fn mirror_config_for(&self, from: ActiveSide) -> MirrorConfig {
        let reading = self.side(from);
        let writing = self.side(other(from));
        let mut config = MirrorConfig::new(
            &reading.alias,
            reading.bootstrap(),
            &writing.alias,
            writing.bootstrap(),
        );
        let spec = &self.spec;
        config.topics = spec.topics.clone();
        config.groups = spec.groups.clone();
        config.naming = spec.naming;
        config.offsets = spec.offsets;
        config.sync = spec.sync.clone();
        config.tuning = spec.tuning.clone();
        config
    }
}

/// The other side.
pub fn other(side: ActiveSide) -> ActiveSide {
    match side {
        ActiveSide::Source => ActiveSide::Target,
        ActiveSide::Target => ActiveSide::Source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(name: &str, zone: &str) -> KafkaCluster {
        serde_json::from_value(json!({
            "apiVersion": "kafka.strata.dev/v1alpha1", "kind": "KafkaCluster",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"racks": [{"name": "r", "zone": zone, "brokers": 1}],
                     "storage": {"size": "1Gi"}},
        }))
        .unwrap()
    }

    fn flow(spec: serde_json::Value) -> MirrorFlow {
        serde_json::from_value(json!({
            "apiVersion": "kafka.strata.dev/v1alpha1", "kind": "MirrorFlow",
            "metadata": {"name": "f", "namespace": "ns"}, "spec": spec,
        }))
        .unwrap()
    }

    fn preserve() -> serde_json::Value {
        json!({"source": {"alias": "east", "clusterRef": {"name": "east"}},
               "target": {"alias": "west", "clusterRef": {"name": "west"}},
               "naming": "Identity", "offsets": "Preserve",
               "failover": {"discoveryService": "kafka-active"}})
    }

    fn both() -> Referenced {
        Referenced {
            source: Some(cluster("east", "zone-a")),
            target: Some(cluster("west", "zone-b")),
        }
    }

    fn check(spec: serde_json::Value, referenced: &Referenced) -> Result<FlowPlan, InvalidFlow> {
        plan(
            &flow(spec),
            referenced,
            ActiveSide::Source,
            &PlanContext::new("img:1"),
        )
    }

    fn reason_of(spec: serde_json::Value, referenced: &Referenced) -> &'static str {
        check(spec, referenced).unwrap_err().reason
    }

    #[test]
    fn preserve_between_two_clusters_resolves_both_sides() {
        let p = check(preserve(), &both()).unwrap();
        let west = p.target().cluster().unwrap();
        assert_eq!(west.bootstrap, "west-bootstrap.ns.svc:9092");
        assert_eq!(west.zones, ["zone-b"]);
        assert_eq!(p.reading().alias, "east");
        let config = p.mirror_config();
        assert_eq!(
            config.source.bootstrap_servers.as_deref(),
            Some("east-bootstrap.ns.svc:9092")
        );
        assert_eq!(config.target.alias, "west");
    }

    #[test]
    fn the_direction_follows_the_active_side() {
        let mut p = check(preserve(), &both()).unwrap();
        p.set_active(ActiveSide::Target);
        assert_eq!(p.discovery().unwrap().1.alias, "west");
        assert_eq!(
            p.mirror_config().source.alias,
            "east",
            "until the mirror is reversed"
        );
        p.set_mirror(None);
        assert!(!p.mirror_running());
        assert_eq!(
            p.reading().alias,
            "west",
            "a stopped mirror restarts from the active side"
        );
        p.set_mirror(Some(ActiveSide::Target));
        let config = p.mirror_config();
        assert_eq!(config.source.alias, "west");
        assert_eq!(
            config.target.bootstrap_servers.as_deref(),
            Some("east-bootstrap.ns.svc:9092")
        );
        assert_eq!(p.discovery().unwrap().1.alias, "west");
    }

    #[test]
    fn a_missing_cluster_waits_for_it() {
        let only_source = Referenced {
            source: Some(cluster("east", "zone-a")),
            target: None,
        };
        let err = check(preserve(), &only_source).unwrap_err();
        assert_eq!(err.reason, reason::CLUSTER_NOT_FOUND);
        assert!(err.waits_for_another_object());
        assert!(err.message.contains("KafkaCluster west"), "{}", err.message);
    }

    #[test]
    fn preserve_needs_identity_naming() {
        let mut spec = preserve();
        spec["naming"] = json!("Prefixed");
        assert_eq!(reason_of(spec, &both()), reason::PRESERVE_NEEDS_IDENTITY);
    }

    #[test]
    fn preserve_needs_strata_on_both_sides() {
        let mut spec = preserve();
        spec["target"] = json!({"alias": "west", "bootstrapServers": "10.0.0.1:9092"});
        assert_eq!(reason_of(spec, &both()), reason::PRESERVE_NEEDS_STRATA);
        // The source becomes a target after a failover.
        let mut spec = preserve();
        spec["source"] = json!({"alias": "east", "bootstrapServers": "kafka.example:9092"});
        let err = check(spec, &both()).unwrap_err();
        assert_eq!(err.reason, reason::PRESERVE_NEEDS_STRATA);
        assert!(err.message.contains("source east"), "{}", err.message);
    }

    #[test]
    fn translate_to_an_external_cluster_is_fine() {
        let spec = json!({"source": {"alias": "east", "clusterRef": {"name": "east"}},
                          "target": {"alias": "dr", "bootstrapServers": "kafka-0.dr.example:9093, 10.1.2.3:9093"},
                          "failover": {"discoveryService": "kafka-active"}});
        let p = check(spec, &both()).unwrap();
        match &p.target().endpoint {
            Endpoint::External(e) => {
                assert_eq!(e.bootstrap, "kafka-0.dr.example:9093,10.1.2.3:9093");
                assert_eq!(
                    e.address,
                    ExternalAddress::Name {
                        host: "kafka-0.dr.example".into(),
                        port: 9093
                    }
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn endpoints_need_exactly_one_address() {
        let mut spec = preserve();
        spec["source"]["bootstrapServers"] = json!("a:1");
        assert_eq!(reason_of(spec, &both()), reason::INVALID_ENDPOINT);
        let mut spec = preserve();
        spec["target"] = json!({"alias": "west"});
        assert_eq!(reason_of(spec, &both()), reason::INVALID_ENDPOINT);
    }

    #[test]
    fn bad_bootstrap_entries_are_refused() {
        for servers in ["no-port", "host:0", "host:port", "bad_host:9092", ","] {
            let spec = json!({"source": {"alias": "a", "clusterRef": {"name": "east"}},
                              "target": {"alias": "b", "bootstrapServers": servers}});
            assert_eq!(
                reason_of(spec, &both()),
                reason::INVALID_BOOTSTRAP,
                "{servers}"
            );
        }
    }

    #[test]
    fn external_tls_is_not_supported_yet() {
        let spec = json!({"source": {"alias": "a", "clusterRef": {"name": "east"}},
                          "target": {"alias": "b", "bootstrapServers": "10.0.0.1:9093",
                                     "tls": {"secretName": "s"}}});
        assert_eq!(reason_of(spec, &both()), reason::UNSUPPORTED_SECURITY);
    }

    #[test]
    fn a_secured_cluster_side_is_not_supported_yet() {
        let mut secured = both();
        if let Some(west) = secured.target.as_mut() {
            west.spec.listeners =
                vec![
                    serde_json::from_value(json!({"name": "tls", "port": 9094, "tls": true}))
                        .unwrap(),
                ];
        }
        assert_eq!(
            reason_of(preserve(), &secured),
            reason::UNSUPPORTED_SECURITY
        );
    }

    #[test]
    fn same_cluster_or_alias_is_refused() {
        let mut spec = preserve();
        spec["target"]["clusterRef"]["name"] = json!("east");
        assert_eq!(reason_of(spec, &both()), reason::SAME_CLUSTER);
        let mut spec = preserve();
        spec["target"]["alias"] = json!("east");
        assert_eq!(reason_of(spec, &both()), reason::SAME_CLUSTER);
    }

    #[test]
    fn discovery_names_are_checked() {
        for name in ["Kafka", "east-bootstrap", "f-mirror", "west-brokers"] {
            let mut spec = preserve();
            spec["failover"]["discoveryService"] = json!(name);
            assert_eq!(
                reason_of(spec, &both()),
                reason::INVALID_DISCOVERY,
                "{name}"
            );
        }
        let spec = json!({"source": {"alias": "a", "clusterRef": {"name": "east"}},
                          "target": {"alias": "b", "bootstrapServers": "10.0.0.1:9092,10.0.0.2:9093"},
                          "failover": {"discoveryService": "kafka-active"}});
        assert_eq!(reason_of(spec, &both()), reason::INVALID_DISCOVERY);
    }

    #[test]
    fn mirror_config_rules_come_from_the_mirror() {
        let mut spec = preserve();
        spec["topics"] = json!({"include": ["orders("]});
        let err = check(spec, &both()).unwrap_err();
        assert_eq!(err.reason, reason::INVALID_MIRROR_CONFIG);
    }

    #[test]
    fn long_flow_names_are_refused() {
        let mut f = flow(preserve());
        f.metadata.name = Some("f".repeat(46));
        let err = plan(&f, &both(), ActiveSide::Source, &PlanContext::new("img")).unwrap_err();
        assert_eq!(err.reason, reason::INVALID_NAME);
        f.metadata.name = Some("f".repeat(45));
        assert!(plan(&f, &both(), ActiveSide::Source, &PlanContext::new("img")).is_ok());
    }
}
