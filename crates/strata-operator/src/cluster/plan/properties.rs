//! The brokers' `server.properties`: the properties the operator owns (among them the
//! `cluster.id` every broker formats its log directory with, [`kafka_cluster_id`]), the checks
//! of `spec.config` against them and against Kafka's types (`strata_kafka::properties`), the
//! defaults the layout implies, and the rendering of each broker's file and of the per-rack
//! configuration hash. Pure: no client.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use strata_api::Authentication;
use strata_kafka::properties::{self, ValueType};

use super::model::{
    invalid, reason, BrokerPlan, ClusterPlan, InvalidSpec, ListenerPlan, CONTROLLER_LISTENER,
    CONTROLLER_PORT, LOG_DIR, METRICS_PORT, REPLICATION_LISTENER,
};

/// Properties the operator sets itself; `spec.config` may not.
pub const RESERVED_PROPERTIES: &[&str] = &[
    "cluster.id",
    "node.id",
    "broker.id",
    "broker.rack",
    "process.roles",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "log.dir",
    "metadata.log.dir",
    "controller.listener.names",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    "strata.metrics.address",
];

/// The `cluster.id` of every broker of a KafkaCluster, in Kafka's text form (the 16 bytes of
/// a UUID in URL-safe base64 without padding, 22 characters).
///
/// It is the object's `metadata.uid`, which the API server sets once and never changes: every
/// broker of the cluster gets the same id and every re-render the same value, so a broker
/// formats its empty log directory once and never sees another id (a broker refuses a
/// directory formatted with another one). A uid that is not a UUID is hashed (the first 16
/// bytes of its sha256). Without a uid — objects built in tests, files given to
/// `strata-operator render`, which never went through the API server — the id is the same hash
/// of `namespace/name`: deterministic, but not the id the operator renders for the stored
/// object.
///
/// A KafkaCluster deleted and created again has a new uid, hence a new id: its brokers refuse
/// volumes kept by `storage.retainOnDelete` from the old object.
pub fn kafka_cluster_id(uid: Option<&str>, namespace: &str, name: &str) -> String {
    let id = match uid {
        Some(uid) => uuid::Uuid::parse_str(uid).unwrap_or_else(|_| hashed_uuid(uid)),
        None => hashed_uuid(&format!("{namespace}/{name}")),
    };
    strata_client::kafka_uuid_string(id)
}

/// The first 16 bytes of the sha256 of `text`, as a UUID.
fn hashed_uuid(text: &str) -> uuid::Uuid {
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::from_bytes(bytes)
}

/// Replication factors of internal topics, each bounded by the number of brokers.
const REPLICATION_PROPERTIES: &[&str] = &[
    "default.replication.factor",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
];

/// Cluster-wide properties the operator owns (beyond the per-broker ones).
pub(super) fn operator_properties(listeners: &[ListenerPlan]) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    let mut protocols: Vec<String> = listeners
        .iter()
        .map(|l| format!("{}:{}", l.kafka_name, l.security_protocol()))
        .collect();
    // A secured cluster's voters speak mutual TLS with the replication listener's certificate.
    let internal = listeners
        .first()
        .filter(|l| l.name == REPLICATION_LISTENER)
        .cloned();
    let controller = match &internal {
        Some(_) => "SSL",
        None => "PLAINTEXT",
    };
    protocols.push(format!("{CONTROLLER_LISTENER}:{controller}"));
    p.insert("listener.security.protocol.map".into(), protocols.join(","));
    p.insert(
        "controller.listener.names".into(),
        CONTROLLER_LISTENER.into(),
    );
    p.insert(
        "inter.broker.listener.name".into(),
        listeners[0].kafka_name.clone(),
    );
    p.insert("log.dirs".into(), LOG_DIR.into());
    // The readiness probe and Prometheus scrape this endpoint.
    p.insert(
        "strata.metrics.address".into(),
        format!("0.0.0.0:{METRICS_PORT}"),
    );
    if let Some(mechanism) = listeners[0].sasl_mechanism() {
        p.insert(
            "sasl.mechanism.inter.broker.protocol".into(),
            mechanism.into(),
        );
    }
    if listeners.iter().any(|l| l.tls) {
        // Kafka reads PEM material from files through the directory config provider.
        p.insert("config.providers".into(), "dir".into());
        p.insert(
            "config.providers.dir.class".into(),
            "org.apache.kafka.common.config.provider.DirectoryConfigProvider".into(),
        );
    }
    let controller = internal.map(|l| ListenerPlan {
        kafka_name: CONTROLLER_LISTENER.to_owned(),
        ..l
    });
    for (l, prefix) in listeners
        .iter()
        .map(|l| (l, l.property_prefix()))
        .chain(controller.iter().map(|c| (c, c.property_prefix())))
    {
        let file = |key: &str| format!("${{dir:{}:{key}}}", l.tls_mount());
        if l.tls {
            p.insert(format!("{prefix}ssl.keystore.type"), "PEM".into());
            p.insert(
                format!("{prefix}ssl.keystore.certificate.chain"),
                file("tls.crt"),
            );
            p.insert(format!("{prefix}ssl.keystore.key"), file("tls.key"));
        }
        if l.name == REPLICATION_LISTENER {
            // The brokers', the operator's and the administrators' certificates are matched
            // against super.users as `CN=<name>`, whatever mapping the user's listeners use.
            p.insert(
                format!("{prefix}ssl.principal.mapping.rules"),
                "DEFAULT".into(),
            );
        }
        if l.authentication == Authentication::Mtls {
            p.insert(format!("{prefix}ssl.client.auth"), "required".into());
            p.insert(format!("{prefix}ssl.truststore.type"), "PEM".into());
            p.insert(
                format!("{prefix}ssl.truststore.certificates"),
                file("ca.crt"),
            );
        }
        if let Some(mechanism) = l.sasl_mechanism() {
            p.insert(format!("{prefix}sasl.enabled.mechanisms"), mechanism.into());
        }
    }
    p
}

/// Checks `spec.config`: no property the operator sets, keys that are property names, values
/// on one line, and whole numbers and booleans where Kafka's type says so.
pub(super) fn check_config(
    config: &BTreeMap<String, String>,
    operator: &BTreeMap<String, String>,
) -> Result<(), InvalidSpec> {
    for (key, value) in config {
        if RESERVED_PROPERTIES.contains(&key.as_str()) || operator.contains_key(key) {
            return Err(invalid(
                reason::RESERVED_PROPERTY,
                format!(
                    "spec.config sets {key}, which the operator derives from the racks, \
                     listeners and the object's uid; remove it (use spec.racks / \
                     spec.listeners instead)"
                ),
            ));
        }
        let key_ok = !key.is_empty()
            && !key.starts_with(['#', '!'])
            && !key.contains(|c: char| c.is_whitespace() || c == '=' || c == ':');
        if !key_ok {
            return Err(invalid(
                reason::INVALID_PROPERTY,
                format!(
                    "spec.config key {key:?} is not a property name; use Kafka names such as \
                     log.retention.hours"
                ),
            ));
        }
        if value.contains(['\n', '\r']) {
            return Err(invalid(
                reason::INVALID_PROPERTY,
                format!("spec.config {key} spans several lines; write it on one line"),
            ));
        }
        let value = value.trim();
        // Kafka's type of the property, where the shared list knows it.
        let kind = properties::broker_property(key).map(|p| p.kind);
        if kind.is_some_and(ValueType::is_whole_number) && value.parse::<i64>().is_err() {
            return Err(invalid(
                reason::INVALID_PROPERTY,
                format!("spec.config {key} is {value:?}; it takes a whole number"),
            ));
        }
        if kind == Some(ValueType::Boolean)
            && !(value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"))
        {
            return Err(invalid(
                reason::INVALID_PROPERTY,
                format!("spec.config {key} is {value:?}; it takes true or false"),
            ));
        }
    }
    Ok(())
}

fn config_int(config: &BTreeMap<String, String>, key: &str) -> Option<i64> {
    // `check_config` ran first: known integer properties parse.
    config.get(key).and_then(|v| v.trim().parse().ok())
}

/// Defaults chosen from the layout for properties `spec.config` leaves unset, after checking
/// the replication settings against the number of brokers.
pub(super) fn layout_defaults(
    config: &BTreeMap<String, String>,
    total_brokers: i32,
) -> Result<BTreeMap<String, String>, InvalidSpec> {
    let total = i64::from(total_brokers);
    let replication = config_int(config, "default.replication.factor").unwrap_or(total.min(3));
    let min_insync =
        config_int(config, "min.insync.replicas").unwrap_or(if replication >= 3 { 2 } else { 1 });
    for key in REPLICATION_PROPERTIES
        .iter()
        .chain(["min.insync.replicas", "transaction.state.log.min.isr"].iter())
    {
        if let Some(v) = config_int(config, key) {
            if v < 1 {
                return Err(invalid(
                    reason::INVALID_PROPERTY,
                    format!("spec.config {key} is {v}; use 1 or more"),
                ));
            }
        }
    }
    for key in REPLICATION_PROPERTIES {
        if let Some(v) = config_int(config, key) {
            if v > total {
                return Err(invalid(
                    reason::REPLICATION_ABOVE_BROKERS,
                    format!(
                        "spec.config {key} is {v} but the cluster has {total} broker(s); \
                         lower it to at most {total} or add brokers"
                    ),
                ));
            }
        }
    }
    if min_insync > replication {
        return Err(invalid(
            reason::MIN_INSYNC_ABOVE_REPLICATION,
            format!(
                "min.insync.replicas {min_insync} is above default.replication.factor \
                 {replication}: producers with acks=all could never write; lower \
                 min.insync.replicas to at most {replication}"
            ),
        ));
    }
    let defaults = [
        ("default.replication.factor", replication),
        ("min.insync.replicas", min_insync),
        ("offsets.topic.replication.factor", replication),
        ("transaction.state.log.replication.factor", replication),
        ("transaction.state.log.min.isr", min_insync),
    ];
    Ok(defaults
        .into_iter()
        .filter(|(key, _)| !config.contains_key(*key))
        .map(|(key, value)| (key.to_owned(), value.to_string()))
        .collect())
}

/// A properties file: a `# header` line, then `key=value` lines in key order.
fn render_properties(header: &str, properties: &BTreeMap<String, String>) -> String {
    let mut out = format!("# {header}\n");
    for (key, value) in properties {
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        out.push('\n');
    }
    out
}

impl ClusterPlan {
    /// `controller.quorum.voters`: `id@<pod dns>:9093,…`.
    fn quorum_voters(&self) -> String {
        self.brokers()
            .iter()
            .filter(|b| b.voter)
            .map(|b| {
                format!(
                    "{}@{}:{CONTROLLER_PORT}",
                    b.id,
                    self.names.pod_dns_of(&b.pod)
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    fn listeners_value(&self, voter: bool) -> String {
        let mut items: Vec<String> = self
            .listeners
            .iter()
            .map(|l| format!("{}://0.0.0.0:{}", l.kafka_name, l.port))
            .collect();
        if voter {
            items.push(format!("{CONTROLLER_LISTENER}://0.0.0.0:{CONTROLLER_PORT}"));
        }
        items.join(",")
    }

    fn advertised_value(&self, host: &str) -> String {
        self.listeners
            .iter()
            .map(|l| format!("{}://{host}:{}", l.kafka_name, l.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The properties every broker of `rack` shares: cluster-wide ones plus the rack.
    fn rack_properties(&self, rack: &str) -> BTreeMap<String, String> {
        let mut p = self.config.clone();
        p.insert("cluster.id".into(), self.cluster_id.clone());
        p.insert("controller.quorum.voters".into(), self.quorum_voters());
        p.insert("broker.rack".into(), rack.to_owned());
        p
    }

    /// The `server.properties` of one broker, by key.
    pub fn properties(&self, broker: &BrokerPlan) -> BTreeMap<String, String> {
        let mut p = self.rack_properties(&broker.rack);
        p.insert("node.id".into(), broker.id.to_string());
        let roles = if broker.voter {
            "broker,controller"
        } else {
            "broker"
        };
        p.insert("process.roles".into(), roles.into());
        p.insert("listeners".into(), self.listeners_value(broker.voter));
        p.insert(
            "advertised.listeners".into(),
            self.advertised_value(&self.names.pod_dns_of(&broker.pod)),
        );
        p
    }

    /// The `server.properties` file of one broker, keys sorted, with a header comment.
    pub fn properties_file(&self, broker: &BrokerPlan) -> String {
        let header = format!(
            "Broker {} (rack {}) of KafkaCluster {}/{}. Written by strata-operator; edits are overwritten.",
            broker.id,
            broker.rack,
            self.names.namespace(),
            self.names.cluster()
        );
        render_properties(&header, &self.properties(broker))
    }

    /// Every broker's properties file by ConfigMap key (`<pod>.properties`).
    pub fn properties_files(&self) -> BTreeMap<String, String> {
        self.brokers()
            .iter()
            .map(|b| {
                (
                    self.names.properties_key(&b.rack, b.ordinal),
                    self.properties_file(b),
                )
            })
            .collect()
    }

    /// sha256 (hex) of what the brokers of `rack` read from their properties, with each
    /// broker's own id and address left out: any change of configuration, listeners or
    /// voters changes it, scaling the rack does not (so a scale-up restarts nobody).
    pub fn config_hash(&self, rack: &str) -> String {
        let mut p = self.rack_properties(rack);
        p.insert("listeners".into(), self.listeners_value(false));
        p.insert(
            "advertised.listeners".into(),
            self.advertised_value(&self.names.pod_dns_of("$(POD_NAME)")),
        );
        let text = render_properties(&format!("rack {rack}"), &p);
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}
