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
    NamingMode, OffsetMode, SaslMechanism, SaslSecretRef, TlsSecretRef,
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
    /// A Secret a side's credentials come from does not exist (yet), or lacks a key.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// A side's credentials, as read from its Secrets, cannot make a connection (not PEM,
    /// a key without its certificate).
    pub const INVALID_SECRET: &str = "InvalidEndpointSecret";
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
    /// A refusal with condition reason `reason` (one of [`reason`]) and what to change.
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        invalid(reason, message)
    }

    /// Whether another object can fix this (a referenced cluster appearing, a Secret
    /// created or mended), so the reconciler looks again instead of waiting for a change of
    /// the flow.
    pub fn waits_for_another_object(&self) -> bool {
        [
            reason::CLUSTER_NOT_FOUND,
            reason::SECRET_NOT_FOUND,
            reason::INVALID_SECRET,
        ]
        .contains(&self.reason)
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
    pub security: SideSecurity,
}

/// How the connections to one side are secured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SideSecurity {
    /// Plaintext.
    Plaintext,
    /// A secured `KafkaCluster` (TLS or authenticating listeners), reached on its internal
    /// listener with mutual TLS and certificates of its CA: the mirror pods with
    /// `<cluster>-mirror-client` (a super user of that cluster, as the offset-preserving
    /// append, topic creation, config and ACL sync need), the operator's failover calls with
    /// `<cluster>-operator-client`. Both Secrets also hold the CA (`ca.crt`).
    ClusterTls { cluster: String },
    /// An external cluster with TLS and/or SASL, from the user's Secrets.
    External {
        tls: Option<TlsSecretRef>,
        sasl: Option<SaslSecretRef>,
    },
}

/// Where the mirror pods mount the Secrets of the sides.
pub const SECRETS_MOUNT: &str = "/etc/strata/secrets";

/// The keys of a `kubernetes.io/tls` Secret the operator issues.
const CA_KEY: &str = "ca.crt";
const CERT_KEY: &str = "tls.crt";
const KEY_KEY: &str = "tls.key";

/// Kafka's directory configuration provider, which the mirror pods read mounted Secrets with.
const DIRECTORY_PROVIDER: &str = "org.apache.kafka.common.config.provider.DirectoryConfigProvider";

/// What a side's credentials are made of: one of its Secrets and a key in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretUse {
    /// The TLS Secret (trust, and the client certificate for mutual TLS).
    Tls,
    /// The SASL Secret (user name and password).
    Sasl,
}

/// A Secret the mirror pods mount for one side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMount {
    /// Volume name: `<source|target>-<tls|sasl>`.
    pub volume: String,
    pub secret: String,
    /// Directory it is mounted at, under [`SECRETS_MOUNT`].
    pub path: String,
    pub used_as: SecretUse,
}

impl SidePlan {
    /// `host:port,...` the mirror pods bootstrap from.
    pub fn bootstrap(&self) -> &str {
        match &self.endpoint {
            Endpoint::Cluster(c) => &c.bootstrap,
            Endpoint::External(e) => &e.bootstrap,
        }
    }

    /// The Secrets the mirror pods mount for this side.
    pub fn secret_mounts(&self) -> Vec<SecretMount> {
        let mount = |used_as: SecretUse, secret: &str| {
            let kind = match used_as {
                SecretUse::Tls => "tls",
                SecretUse::Sasl => "sasl",
            };
            let volume = format!("{}-{kind}", side_name(self.side));
            SecretMount {
                path: format!("{SECRETS_MOUNT}/{volume}"),
                volume,
                secret: secret.to_owned(),
                used_as,
            }
        };
        match &self.security {
            SideSecurity::Plaintext => Vec::new(),
            SideSecurity::ClusterTls { cluster } => vec![mount(
                SecretUse::Tls,
                &crate::cluster::secrets::mirror_secret(cluster),
            )],
            SideSecurity::External { tls, sasl } => tls
                .iter()
                .map(|t| mount(SecretUse::Tls, &t.secret_name))
                .chain(sasl.iter().map(|s| mount(SecretUse::Sasl, &s.secret_name)))
                .collect(),
        }
    }

    /// The Secret keys this side's credentials read, by use: the CA, then the client
    /// certificate and key (if any), or the user name and password.
    pub fn secret_keys(&self, used_as: SecretUse) -> Vec<String> {
        match (&self.security, used_as) {
            (SideSecurity::ClusterTls { .. }, SecretUse::Tls) => {
                vec![CA_KEY.into(), CERT_KEY.into(), KEY_KEY.into()]
            }
            (SideSecurity::External { tls: Some(t), .. }, SecretUse::Tls) => {
                let mut keys = vec![t.ca_key.clone()];
                if let (Some(c), Some(k)) = (&t.cert_key, &t.key_key) {
                    keys.extend([c.clone(), k.clone()]);
                }
                keys
            }
            (SideSecurity::External { sasl: Some(s), .. }, SecretUse::Sasl) => {
                vec![s.username_key.clone(), s.password_key.clone()]
            }
            _ => Vec::new(),
        }
    }

    /// Kafka client properties toward this side (none for plaintext), each secret value given
    /// by `value(use, key)`: for the mirror pods a `${dir:…}` variable of the mount (see
    /// [`SidePlan::pod_properties`]), for the operator the value it read from the Secret.
    pub fn client_properties(
        &self,
        value: impl Fn(SecretUse, &str) -> String,
    ) -> BTreeMap<String, String> {
        let mut props = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            props.insert(k.to_owned(), v);
        };
        let (tls, sasl) = match &self.security {
            SideSecurity::Plaintext => return props,
            SideSecurity::ClusterTls { .. } => (true, None),
            SideSecurity::External { tls, sasl } => (tls.is_some(), sasl.as_ref()),
        };
        let protocol = match (tls, sasl.is_some()) {
            (true, true) => "SASL_SSL",
            (true, false) => "SSL",
            (false, true) => "SASL_PLAINTEXT",
            (false, false) => return props,
        };
        set("security.protocol", protocol.to_owned());
        if tls {
            let keys = self.secret_keys(SecretUse::Tls);
            set("ssl.truststore.type", "PEM".to_owned());
            set(
                "ssl.truststore.certificates",
                value(SecretUse::Tls, &keys[0]),
            );
            if keys.len() == 3 {
                set("ssl.keystore.type", "PEM".to_owned());
                set(
                    "ssl.keystore.certificate.chain",
                    value(SecretUse::Tls, &keys[1]),
                );
                set("ssl.keystore.key", value(SecretUse::Tls, &keys[2]));
            }
        }
        if let Some(s) = sasl {
            let (mechanism, module) = match s.mechanism {
                SaslMechanism::ScramSha512 => ("SCRAM-SHA-512", "scram.ScramLoginModule"),
                SaslMechanism::ScramSha256 => ("SCRAM-SHA-256", "scram.ScramLoginModule"),
                SaslMechanism::Plain => ("PLAIN", "plain.PlainLoginModule"),
            };
            let quoted = |key: &str| {
                value(SecretUse::Sasl, key)
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
            };
            set("sasl.mechanism", mechanism.to_owned());
            set(
                "sasl.jaas.config",
                format!(
                    "org.apache.kafka.common.security.{module} required username=\"{}\" \
                     password=\"{}\";",
                    quoted(&s.username_key),
                    quoted(&s.password_key)
                ),
            );
        }
        props
    }

    /// The client properties of the mirror pods toward this side: the Secrets' files through
    /// Kafka's directory configuration provider (read by `strata-mirror` at start).
    pub fn pod_properties(&self) -> BTreeMap<String, String> {
        let mounts = self.secret_mounts();
        let mut props = self.client_properties(|used_as, key| {
            let path = mounts
                .iter()
                .find(|m| m.used_as == used_as)
                .map_or(SECRETS_MOUNT, |m| m.path.as_str());
            format!("${{dir:{path}:{key}}}")
        });
        if !mounts.is_empty() {
            props.insert("config.providers".into(), "dir".into());
            props.insert(
                "config.providers.dir.class".into(),
                DIRECTORY_PROVIDER.into(),
            );
            props.insert(
                "config.providers.dir.param.allowed.paths".into(),
                SECRETS_MOUNT.into(),
            );
        }
        props
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
    credentials_digest: Option<String>,
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
        credentials_digest: None,
    };
    // The one place that decides whether a flow file can run is strata-mirror's own
    // validation; both directions must pass, the flow reverses after a failover. The client
    // security properties name files that exist in the mirror pods only (mounted Secrets):
    // the operator renders them itself and checks what it reads from those Secrets when it
    // connects (see `flow::credentials`).
    for direction in [ActiveSide::Source, ActiveSide::Target] {
        let mut config = plan.mirror_config_for(direction);
        config.mirror.source_security.clear();
        config.mirror.target_security.clear();
        config
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
            let secured = crate::kafka::is_secured(cluster);
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
            let endpoint = Endpoint::Cluster(ClusterSide {
                name: reference.name.clone(),
                // A secured cluster is reached on its internal mutual-TLS listener, which
                // every certificate of its CA authenticates on whatever the client listeners
                // ask for (SCRAM, another CA's certificates).
                bootstrap: if secured {
                    names.bootstrap_address(crate::cluster::plan::REPLICATION_PORT)
                } else {
                    in_cluster_bootstrap(cluster, &ctx.cluster_domain)
                },
                broker_selector: names.selector(),
                client_port: cluster.spec.listeners.first().map_or(9092, |l| l.port),
                zones,
                topology_key: cluster.spec.topology_key.clone(),
            });
            let security = if secured {
                SideSecurity::ClusterTls {
                    cluster: reference.name.clone(),
                }
            } else {
                SideSecurity::Plaintext
            };
            (endpoint, security)
        }
        (None, Some(servers)) => {
            if let Some(tls) = &endpoint.tls {
                if tls.cert_key.is_some() != tls.key_key.is_some() {
                    return Err(invalid(
                        reason::INVALID_ENDPOINT,
                        format!(
                            "spec.{label}.tls sets one of certKey and keyKey: a client \
                             certificate needs both (or neither, for TLS without one)"
                        ),
                    ));
                }
            }
            let security = if endpoint.tls.is_none() && endpoint.sasl.is_none() {
                SideSecurity::Plaintext
            } else {
                SideSecurity::External {
                    tls: endpoint.tls.clone(),
                    sasl: endpoint.sasl.clone(),
                }
            };
            (Endpoint::External(external(label, servers)?), security)
        }
    };
    let (endpoint_plan, security) = endpoint_plan;
    Ok(SidePlan {
        side: which,
        alias: endpoint.alias.clone(),
        endpoint: endpoint_plan,
        security,
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

    /// Digest of the Secret data the mirror pods mount (see `flow::credentials`), which their
    /// template carries so that new credentials restart them.
    pub fn credentials_digest(&self) -> Option<&str> {
        self.credentials_digest.as_deref()
    }

    pub fn set_credentials_digest(&mut self, digest: Option<String>) {
        self.credentials_digest = digest;
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
        config.mirror.source_security = reading.pod_properties();
        config.mirror.target_security = writing.pod_properties();
        config
    }

    /// Every Secret the mirror pods mount, both sides (they run in either direction).
    pub fn secret_mounts(&self) -> Vec<SecretMount> {
        let mut mounts = self.source.secret_mounts();
        mounts.extend(self.target.secret_mounts());
        mounts
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
    fn an_external_side_with_tls_and_scram_reads_its_secrets_through_the_directory_provider() {
        let spec = json!({"source": {"alias": "a", "clusterRef": {"name": "east"}},
                          "target": {"alias": "b", "bootstrapServers": "10.0.0.1:9093",
                                     "tls": {"secretName": "b-ca", "certKey": "c", "keyKey": "k"},
                                     "sasl": {"mechanism": "scram-sha-512", "secretName": "b-user"}}});
        let plan = check(spec, &both()).unwrap();
        let mounts = plan.secret_mounts();
        let names: Vec<(&str, &str, &str)> = mounts
            .iter()
            .map(|m| (m.volume.as_str(), m.secret.as_str(), m.path.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("target-tls", "b-ca", "/etc/strata/secrets/target-tls"),
                ("target-sasl", "b-user", "/etc/strata/secrets/target-sasl")
            ]
        );
        let config = plan.mirror_config();
        assert!(
            config.mirror.source_security.is_empty(),
            "a plaintext source"
        );
        let t = &config.mirror.target_security;
        assert_eq!(t["security.protocol"], "SASL_SSL");
        assert_eq!(t["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(
            t["ssl.truststore.certificates"],
            "${dir:/etc/strata/secrets/target-tls:ca.crt}"
        );
        assert_eq!(
            t["ssl.keystore.key"],
            "${dir:/etc/strata/secrets/target-tls:k}"
        );
        assert_eq!(
            t["ssl.keystore.certificate.chain"],
            "${dir:/etc/strata/secrets/target-tls:c}"
        );
        assert!(t["sasl.jaas.config"].contains(
            "username=\"${dir:/etc/strata/secrets/target-sasl:username}\" \
             password=\"${dir:/etc/strata/secrets/target-sasl:password}\""
        ));
        assert_eq!(t["config.providers.dir.param.allowed.paths"], SECRETS_MOUNT);
        // After a failover the mirror reads from the target: its properties go with it.
        let reverse = plan.mirror_config_for(ActiveSide::Target);
        assert_eq!(&reverse.mirror.source_security, t);
        // A client certificate needs its key.
        let spec = json!({"source": {"alias": "a", "clusterRef": {"name": "east"}},
                          "target": {"alias": "b", "bootstrapServers": "10.0.0.1:9093",
                                     "tls": {"secretName": "s", "certKey": "c"}}});
        assert_eq!(reason_of(spec, &both()), reason::INVALID_ENDPOINT);
    }

    #[test]
    fn a_secured_cluster_side_is_mirrored_on_its_internal_listener_with_the_mirror_certificate() {
        let mut secured = both();
        if let Some(west) = secured.target.as_mut() {
            west.spec.listeners =
                vec![
                    serde_json::from_value(json!({"name": "tls", "port": 9094, "tls": true}))
                        .unwrap(),
                ];
        }
        let plan = check(preserve(), &secured).unwrap();
        assert_eq!(plan.target().bootstrap(), "west-bootstrap.ns.svc:9091");
        assert_eq!(
            plan.target().security,
            SideSecurity::ClusterTls {
                cluster: "west".into()
            }
        );
        let mounts = plan.secret_mounts();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].secret, "west-mirror-client");
        let t = plan.mirror_config().mirror.target_security;
        assert_eq!(t["security.protocol"], "SSL");
        assert_eq!(
            t["ssl.keystore.key"],
            "${dir:/etc/strata/secrets/target-tls:tls.key}"
        );
        // The plaintext side is as before.
        assert!(plan.mirror_config().mirror.source_security.is_empty());
        assert_eq!(plan.source().bootstrap(), "east-bootstrap.ns.svc:9092");
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
