//! Broker configuration: a Kafka-style `server.properties` file plus command-line overrides,
//! parsed into a typed, validated [`BrokerConfig`]. Property names are Kafka's own, so existing
//! knowledge and tooling carry over. Pure: no I/O beyond reading the file it is given.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use strata_kafka::acl::AuthorizerSettings;
use strata_kafka::properties;
use strata_log::{CleanupPolicy, LogConfig, TimestampType};

use crate::replica_selector::ReplicaSelector;
use crate::sasl::SaslSettings;
use crate::tls::TlsSettings;

/// Why a configuration was refused; the message names the property and the accepted values.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: expected `key=value`, found {text:?}")]
    Syntax {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("invalid value {value:?} for {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("missing required property {0}")]
    Missing(&'static str),
    #[error(transparent)]
    Provider(#[from] strata_kafka::config_providers::ProviderError),
}

/// A listener as written in `listeners` / `advertised.listeners`: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Listener {
    fn parse_list(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let mut out = Vec::new();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, rest) = item
                .split_once("://")
                .ok_or_else(|| invalid("expected NAME://host:port"))?;
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| invalid("expected NAME://host:port"))?;
            let port: u16 = port.parse().map_err(|_| invalid("port is not a number"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            out.push(Listener {
                name: name.to_string(),
                host: if host.is_empty() {
                    "0.0.0.0".to_string()
                } else {
                    host.to_string()
                },
                port,
            });
        }
        if out.is_empty() {
            return Err(invalid("no listener given"));
        }
        Ok(out)
    }

    /// `host:port` as other nodes dial it.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The socket address to bind.
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        let text = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        text.parse().map_err(|_| ConfigError::Invalid {
            key: "listeners".into(),
            value: text.clone(),
            reason: "host must be an IP address".into(),
        })
    }
}

/// The broker's typed configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id` (or the older `broker.id`).
    pub node_id: i32,
    /// `listeners`.
    pub listeners: Vec<Listener>,
    /// `advertised.listeners` (defaults to `listeners`).
    pub advertised_listeners: Vec<Listener>,
    /// `log.dirs` (or `log.dir`); the first directory holds everything.
    pub log_dir: PathBuf,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// `replica.selector.class`: where consumers that name their rack read (KIP-392).
    pub replica_selector: ReplicaSelector,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// `message.max.bytes`: the largest record batch accepted (topic default of `max.message.bytes`).
    pub message_max_bytes: usize,
    /// `socket.request.max.bytes`: the largest request frame read from a connection.
    pub socket_request_max_bytes: usize,
    /// `log.retention.check.interval.ms`: how often retention, compaction and flush.ms run.
    pub retention_check_interval_ms: u64,
    /// Defaults of every topic's log configuration (`log.*` properties).
    pub log_defaults: LogConfig,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.retention.minutes` in ms.
    pub offsets_retention_ms: i64,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: i32,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size`.
    pub group_max_size: i32,
    /// `cluster.id` (else read from or written to `meta.properties`).
    pub cluster_id: Option<String>,
    /// `controlled.shutdown.timeout.ms`-like grace for in-flight requests on SIGTERM.
    pub shutdown_grace_ms: u64,
    /// `strata.metrics.address` (`ip:port`): where `/metrics`, `/healthz` and `/readyz` are
    /// served; `None` serves nothing.
    pub metrics_address: Option<SocketAddr>,
    /// Every property as given, for DescribeConfigs of the broker resource.
    pub raw: BTreeMap<String, String>,
    /// Membership of a KRaft-style cluster and replication settings.
    pub cluster: ClusterSettings,
    /// The TLS settings of each SSL and SASL_SSL listener, by listener name.
    pub tls: BTreeMap<String, TlsSettings>,
    /// The SASL settings of each SASL_PLAINTEXT and SASL_SSL listener, by listener name.
    pub sasl: BTreeMap<String, SaslSettings>,
    /// How this node's own connections to the other nodes are secured.
    pub node_security: NodeSecurity,
    /// `authorizer.class.name` (Kafka's StandardAuthorizer) with `super.users` and
    /// `allow.everyone.if.no.acl.found`; `None`: no authorizer, everything is allowed and the
    /// ACL APIs answer SECURITY_DISABLED.
    pub authorizer: Option<AuthorizerSettings>,
}

/// The `authorizer.class.name` values served: Kafka's KRaft authorizer and its ZooKeeper-era
/// predecessor, whose semantics are the same for the ACLs the APIs can create.
pub const AUTHORIZER_CLASSES: [&str; 2] = [
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

/// `process.roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

/// How this node takes part in a cluster, under Kafka's names. Without `process.roles` the
/// broker is a cluster of its own: one voter (itself), replication factor 1 everywhere.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// `process.roles`; `None` = a single-node cluster.
    pub roles: Option<Roles>,
    /// `controller.quorum.voters`: id → `host:port`.
    pub voters: BTreeMap<i32, String>,
    /// `controller.listener.names`.
    pub controller_listener_names: Vec<String>,
    /// `inter.broker.listener.name` (default: the first non-controller listener).
    pub inter_broker_listener: String,
    /// `listener.security.protocol.map`: listener name → protocol.
    pub security_protocols: BTreeMap<String, String>,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms`.
    pub quorum_fetch_timeout_ms: u64,
    /// `controller.quorum.request.timeout.ms`.
    pub quorum_request_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`.
    pub session_timeout_ms: u64,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: i64,
    /// `replica.fetch.wait.max.ms` and `replica.fetch.min.bytes`: a replica fetch waits at the
    /// leader up to this long for at least this many bytes.
    pub replica_fetch_wait_max_ms: i32,
    pub replica_fetch_min_bytes: i32,
    /// `replica.fetch.max.bytes` (per partition) and `replica.fetch.response.max.bytes`.
    pub replica_fetch_max_bytes: i32,
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`: pause after a failed replica fetch.
    pub replica_fetch_backoff_ms: u64,
    /// `replication.quota.window.num` and `replication.quota.window.size.seconds`: the
    /// replication throttles measure the rate over this many windows of this size.
    pub replication_quota_window_num: usize,
    pub replication_quota_window_size_seconds: u64,
    /// `replica.socket.timeout.ms`.
    pub replica_socket_timeout_ms: u64,
    /// `num.replica.fetchers`: fetcher tasks per source broker.
    pub num_replica_fetchers: usize,
    /// `replica.high.watermark.checkpoint.interval.ms`.
    pub hw_checkpoint_interval_ms: u64,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check_interval_seconds: u64,
    /// `offsets.topic.replication.factor`.
    pub offsets_topic_replication_factor: i16,
    /// `offsets.commit.timeout.ms`: how long a commit waits for its replicas.
    pub offsets_commit_timeout_ms: u64,
}

impl ClusterSettings {
    /// Whether this node votes in the metadata quorum.
    pub fn is_voter(&self) -> bool {
        self.roles.is_none_or(|r| r.controller)
    }
}

impl BrokerConfig {
    /// Reads a properties file and applies `overrides` (`key=value`, later wins).
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<BrokerConfig, ConfigError> {
        let mut props = BTreeMap::new();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            parse_properties(path, &text, &mut props)?;
        }
        for (i, item) in overrides.iter().enumerate() {
            parse_properties(Path::new("--override"), item, &mut props).map_err(|_| {
                ConfigError::Syntax {
                    path: "--override".into(),
                    line: i + 1,
                    text: item.clone(),
                }
            })?;
        }
        let resolved = strata_kafka::config_providers::resolve(props)?;
        Self::from_resolved(resolved.props, &resolved.whole_files)
    }

    /// Builds the configuration from already parsed properties.
    pub fn from_properties(props: BTreeMap<String, String>) -> Result<BrokerConfig, ConfigError> {
        Self::from_resolved(props, &BTreeMap::new())
    }

    /// Builds the configuration from properties whose provider variables are resolved;
    /// `whole_files` names the properties that are one file's content (TLS material is then
    /// read from that file, and again when it changes).
    fn from_resolved(
        props: BTreeMap<String, String>,
        whole_files: &BTreeMap<String, PathBuf>,
    ) -> Result<BrokerConfig, ConfigError> {
        let p = Props(&props);
        let node_id = match p.int::<i32>("node.id")? {
            Some(v) => v,
            None => p.int::<i32>("broker.id")?.unwrap_or(1),
        };
        if node_id < 0 {
            return Err(p.invalid("node.id", "must be >= 0"));
        }
        let listeners = Listener::parse_list(
            "listeners",
            p.get("listeners").unwrap_or("PLAINTEXT://127.0.0.1:9092"),
        )?;
        let advertised_listeners = match p.get("advertised.listeners") {
            Some(v) => Listener::parse_list("advertised.listeners", v)?,
            None => listeners.clone(),
        };
        let log_dir = p
            .get("log.dirs")
            .or_else(|| p.get("log.dir"))
            .map(|v| v.split(',').next().unwrap_or(v).trim().to_string())
            .unwrap_or_else(|| "/tmp/strata-logs".to_string());

        let mut log = LogConfig::default();
        let message_max_bytes = p.int::<usize>("message.max.bytes")?.unwrap_or(1_048_588);
        log.max_message_bytes = message_max_bytes;
        if let Some(v) = p.int::<u64>("log.segment.bytes")? {
            if v < 14 {
                return Err(p.invalid("log.segment.bytes", "must be at least 14"));
            }
            log.segment_bytes = v;
        }
        if let Some(v) = p.int::<i64>("log.roll.ms")? {
            log.segment_ms = v;
        } else if let Some(v) = p.int::<i64>("log.roll.hours")? {
            log.segment_ms = v * 3_600_000;
        }
        if let Some(v) = p.int::<i64>("log.retention.ms")? {
            log.retention_ms = v;
        } else if let Some(v) = p.int::<i64>("log.retention.minutes")? {
            log.retention_ms = v * 60_000;
        } else if let Some(v) = p.int::<i64>("log.retention.hours")? {
            log.retention_ms = v * 3_600_000;
        }
        if let Some(v) = p.int::<i64>("log.retention.bytes")? {
            log.retention_bytes = v;
        }
        if let Some(v) = p.get("log.cleanup.policy") {
            log.cleanup_policy = parse_cleanup_policy("log.cleanup.policy", v)?;
        }
        if let Some(v) = p.int::<i64>("log.cleaner.delete.retention.ms")? {
            log.delete_retention_ms = v;
        }
        if let Some(v) = p.float("log.cleaner.min.cleanable.ratio")? {
            log.min_cleanable_dirty_ratio = v;
        }
        if let Some(v) = p.int::<i64>("log.cleaner.min.compaction.lag.ms")? {
            log.min_compaction_lag_ms = v;
        }
        if let Some(v) = p.int::<u64>("log.flush.interval.messages")? {
            log.flush_messages = v;
        }
        if let Some(v) = p.int::<i64>("log.flush.interval.ms")? {
            log.flush_ms = v;
        }
        if let Some(v) = p.int::<u64>("log.index.interval.bytes")? {
            log.index_interval_bytes = v;
        }
        if let Some(v) = p.get("log.message.timestamp.type") {
            log.message_timestamp_type = parse_timestamp_type("log.message.timestamp.type", v)?;
        }

        let replica_selector = ReplicaSelector::from_class(p.get("replica.selector.class"))
            .map_err(|e| p.invalid("replica.selector.class", &e.to_string()))?;
        let cluster = cluster_settings(&p, node_id, &listeners)?;
        let (tls, sasl) = listener_security(&props, whole_files, &listeners, &cluster)?;
        let node_security = node_security(&props, &cluster)?;
        let authorizer = match p.get("authorizer.class.name").map(str::trim) {
            None | Some("") => None,
            Some(class) if AUTHORIZER_CLASSES.contains(&class) => Some(AuthorizerSettings::new(
                p.get("super.users").unwrap_or(""),
                p.bool("allow.everyone.if.no.acl.found")?.unwrap_or(false),
            )),
            Some(_) => {
                return Err(p.invalid(
                    "authorizer.class.name",
                    &format!(
                        "not an authorizer this broker has; it implements {}",
                        AUTHORIZER_CLASSES[0]
                    ),
                ))
            }
        };
        let cfg = BrokerConfig {
            node_id,
            listeners,
            advertised_listeners,
            log_dir: PathBuf::from(log_dir),
            rack: p.get("broker.rack").map(str::to_string),
            replica_selector,
            num_partitions: p.int("num.partitions")?.unwrap_or(1),
            default_replication_factor: p.int("default.replication.factor")?.unwrap_or(1),
            min_insync_replicas: p.int("min.insync.replicas")?.unwrap_or(1),
            auto_create_topics: p.bool("auto.create.topics.enable")?.unwrap_or(true),
            delete_topic_enable: p.bool("delete.topic.enable")?.unwrap_or(true),
            message_max_bytes,
            socket_request_max_bytes: p.int("socket.request.max.bytes")?.unwrap_or(104_857_600),
            retention_check_interval_ms: p
                .int("log.retention.check.interval.ms")?
                .unwrap_or(300_000),
            log_defaults: log,
            offsets_topic_num_partitions: p.int("offsets.topic.num.partitions")?.unwrap_or(50),
            offsets_retention_ms: p
                .int::<i64>("offsets.retention.minutes")?
                .map(|m| m * 60_000)
                .unwrap_or(7 * 24 * 3_600_000),
            group_initial_rebalance_delay_ms: p
                .int("group.initial.rebalance.delay.ms")?
                .unwrap_or(3000),
            group_min_session_timeout_ms: p.int("group.min.session.timeout.ms")?.unwrap_or(6000),
            group_max_session_timeout_ms: p
                .int("group.max.session.timeout.ms")?
                .unwrap_or(1_800_000),
            group_max_size: p.int("group.max.size")?.unwrap_or(i32::MAX),
            cluster_id: p.get("cluster.id").map(str::to_string),
            shutdown_grace_ms: p.int("controlled.shutdown.timeout.ms")?.unwrap_or(10_000),
            metrics_address: metrics_address(&p)?,
            raw: props.clone(),
            cluster,
            tls,
            sasl,
            node_security,
            authorizer,
        };
        cfg.validate()?;
        // Kafka properties this broker does not act on (KRaft and JVM settings that deployments
        // carry over from Kafka) are accepted silently; only names outside the shared list of
        // Kafka's properties are worth a warning.
        for key in props.keys() {
            if properties::broker_property(key).is_none() {
                tracing::warn!(property = %key, "unknown broker property ignored");
            }
        }
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, reason: &str| ConfigError::Invalid {
            key: key.into(),
            value,
            reason: reason.into(),
        };
        if self.num_partitions < 1 {
            return Err(bad(
                "num.partitions",
                self.num_partitions.to_string(),
                "must be >= 1",
            ));
        }
        if self.offsets_topic_num_partitions < 1 {
            return Err(bad(
                "offsets.topic.num.partitions",
                self.offsets_topic_num_partitions.to_string(),
                "must be >= 1",
            ));
        }
        if self.message_max_bytes < 64 {
            return Err(bad(
                "message.max.bytes",
                self.message_max_bytes.to_string(),
                "must be >= 64",
            ));
        }
        if self.socket_request_max_bytes < self.message_max_bytes {
            return Err(bad(
                "socket.request.max.bytes",
                self.socket_request_max_bytes.to_string(),
                "must be >= message.max.bytes",
            ));
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(bad(
                "group.min.session.timeout.ms",
                self.group_min_session_timeout_ms.to_string(),
                "must be <= group.max.session.timeout.ms",
            ));
        }
        if !(0.0..=1.0).contains(&self.log_defaults.min_cleanable_dirty_ratio) {
            return Err(bad(
                "log.cleaner.min.cleanable.ratio",
                self.log_defaults.min_cleanable_dirty_ratio.to_string(),
                "must be between 0 and 1",
            ));
        }
        if self.retention_check_interval_ms == 0 {
            return Err(bad(
                "log.retention.check.interval.ms",
                "0".into(),
                "must be >= 1",
            ));
        }
        Ok(())
    }

    /// Whether `name` is a controller listener.
    pub fn is_controller_listener(&self, name: &str) -> bool {
        self.cluster
            .controller_listener_names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }

    /// The listener clients connect to (the first one that is not a controller listener).
    pub fn client_listener(&self) -> &Listener {
        self.listeners
            .iter()
            .find(|l| !self.is_controller_listener(&l.name))
            .unwrap_or(&self.listeners[0])
    }

    /// The listeners that serve clients and other brokers, with their advertised addresses.
    pub fn broker_endpoints(&self) -> Vec<Listener> {
        self.advertised_listeners
            .iter()
            .filter(|l| !self.is_controller_listener(&l.name))
            .cloned()
            .collect()
    }

    /// The address this broker tells clients to use.
    pub fn advertised(&self) -> &Listener {
        let client = self.client_listener();
        self.advertised_listeners
            .iter()
            .find(|l| l.name == client.name)
            .unwrap_or(&self.advertised_listeners[0])
    }

    /// The security protocol of listener `name` (its own name when unmapped, as Kafka does for
    /// PLAINTEXT, SSL, ...).
    pub fn security_protocol(&self, name: &str) -> String {
        self.cluster
            .security_protocols
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }
}

/// A property of one listener: `listener.name.<listener>.<key>` (Kafka writes the listener in
/// lower case), else the broker-wide `<key>`; with the name it was given under, trimmed.
pub fn listener_value(
    props: &BTreeMap<String, String>,
    listener: &str,
    key: &str,
) -> Option<(String, String)> {
    let own = format!("listener.name.{}.{key}", listener.to_lowercase());
    if let Some(v) = props.get(&own) {
        return Some((own, v.trim().to_string()));
    }
    props
        .get(key)
        .map(|v| (key.to_string(), v.trim().to_string()))
}

/// The TLS and SASL settings of the listeners, by listener name, from
/// `listener.security.protocol.map`; listeners that cannot work are refused.
#[allow(clippy::type_complexity)]
fn listener_security(
    props: &BTreeMap<String, String>,
    whole_files: &BTreeMap<String, PathBuf>,
    listeners: &[Listener],
    cluster: &ClusterSettings,
) -> Result<
    (
        BTreeMap<String, TlsSettings>,
        BTreeMap<String, SaslSettings>,
    ),
    ConfigError,
> {
    let mut tls = BTreeMap::new();
    let mut sasl = BTreeMap::new();
    for l in listeners {
        let protocol = cluster
            .security_protocols
            .get(&l.name)
            .cloned()
            .unwrap_or_else(|| l.name.clone())
            .to_ascii_uppercase();
        let refuse = |reason: &str| ConfigError::Invalid {
            key: "listener.security.protocol.map".into(),
            value: format!("{}:{protocol}", l.name),
            reason: reason.into(),
        };
        let (encrypted, authenticated) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            _ => return Err(refuse(
                "unknown security protocol: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
            )),
        };
        if encrypted {
            tls.insert(
                l.name.clone(),
                TlsSettings::from_properties(props, whole_files, &l.name)?,
            );
        }
        if authenticated {
            sasl.insert(
                l.name.clone(),
                SaslSettings::from_properties(props, &l.name)?,
            );
        }
    }
    Ok((tls, sasl))
}

/// How this node connects to the others of its cluster, as a client of their listeners: the
/// inter-broker listener (replica fetches, the metadata log sent to observers) and the
/// controller listener (the controller link, Raft between voters).
#[derive(Debug, Clone, Default)]
pub struct NodeSecurity {
    pub inter_broker: strata_client::Security,
    pub controller: strata_client::Security,
}

/// Kafka's settings for a node's own connections: the listener's security protocol, its trust
/// store (`listener.name.<l>.ssl.truststore.*`, else `ssl.truststore.*`) and host-name check
/// (`ssl.endpoint.identification.algorithm`), its key store as this node's client certificate
/// (presented where the listener asks for one: `ssl.client.auth`), the mechanism of
/// `sasl.mechanism.inter.broker.protocol` / `sasl.mechanism.controller.protocol` (Kafka's
/// default GSSAPI is not served) with the user and password of the listener's JAAS entry for
/// that mechanism (`listener.name.<l>.<mechanism>.sasl.jaas.config`, as Kafka takes them).
fn node_security(
    props: &BTreeMap<String, String>,
    cluster: &ClusterSettings,
) -> Result<NodeSecurity, ConfigError> {
    if cluster.roles.is_none() {
        return Ok(NodeSecurity::default());
    }
    let inter_broker = node_client_security(
        props,
        cluster,
        &cluster.inter_broker_listener,
        "sasl.mechanism.inter.broker.protocol",
    )?;
    let controller = match cluster.controller_listener_names.first() {
        Some(listener) => node_client_security(
            props,
            cluster,
            listener,
            "sasl.mechanism.controller.protocol",
        )?,
        None => strata_client::Security::default(),
    };
    Ok(NodeSecurity {
        inter_broker,
        controller,
    })
}

fn node_client_security(
    props: &BTreeMap<String, String>,
    cluster: &ClusterSettings,
    listener: &str,
    mechanism_key: &str,
) -> Result<strata_client::Security, ConfigError> {
    let protocol = cluster
        .security_protocols
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(listener))
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| listener.to_string())
        .to_ascii_uppercase();
    let parsed = strata_client::SecurityProtocol::parse(&protocol).map_err(|reason| {
        ConfigError::Invalid {
            key: "listener.security.protocol.map".into(),
            value: format!("{listener}:{protocol}"),
            reason,
        }
    })?;
    let mut client = BTreeMap::from([("security.protocol".to_string(), protocol.clone())]);
    if parsed.tls() {
        for key in [
            "ssl.truststore.type",
            "ssl.truststore.location",
            "ssl.truststore.certificates",
            "ssl.endpoint.identification.algorithm",
            // The listener's key store is also this node's client certificate, for a
            // listener that asks for one (`ssl.client.auth` required or requested), as in Kafka.
            "ssl.keystore.type",
            "ssl.keystore.location",
            "ssl.keystore.key",
            "ssl.keystore.certificate.chain",
            "ssl.key.password",
        ] {
            if let Some((_, v)) = listener_value(props, listener, key) {
                client.insert(key.to_string(), v);
            }
        }
    }
    if parsed.sasl() {
        let mechanism = props
            .get(mechanism_key)
            .map(|m| m.trim().to_string())
            .unwrap_or_else(|| "GSSAPI".to_string());
        let own = format!("{}.sasl.jaas.config", mechanism.to_lowercase());
        if let Some((_, jaas)) = listener_value(props, listener, &own)
            .or_else(|| listener_value(props, listener, "sasl.jaas.config"))
        {
            client.insert("sasl.jaas.config".into(), jaas);
        }
        client.insert("sasl.mechanism".into(), mechanism);
    }
    strata_client::Security::from_properties(&client).map_err(|reason| ConfigError::Invalid {
        key: format!("listener {listener}"),
        value: protocol,
        reason: format!("this node's own connections to the listener: {reason}"),
    })
}

/// Reads the KRaft membership and replication properties and checks that they fit together
/// the way Kafka requires.
fn cluster_settings(
    p: &Props<'_>,
    node_id: i32,
    listeners: &[Listener],
) -> Result<ClusterSettings, ConfigError> {
    let roles = match p.get("process.roles") {
        None => None,
        Some(v) => {
            let mut roles = Roles {
                broker: false,
                controller: false,
            };
            for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match part {
                    "broker" => roles.broker = true,
                    "controller" => roles.controller = true,
                    _ => {
                        return Err(p.invalid(
                            "process.roles",
                            "expected broker, controller or broker,controller",
                        ))
                    }
                }
            }
            if !roles.broker {
                return Err(p.invalid(
                    "process.roles",
                    "a controller-only node is not supported: use broker,controller",
                ));
            }
            Some(roles)
        }
    };
    let mut voters = BTreeMap::new();
    if let Some(v) = p.get("controller.quorum.voters") {
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let parsed = item
                .split_once('@')
                .and_then(|(id, addr)| Some((id.trim().parse::<i32>().ok()?, addr.trim())));
            let Some((id, addr)) = parsed.filter(|(_, a)| a.rsplit_once(':').is_some()) else {
                return Err(p.invalid("controller.quorum.voters", "expected id@host:port,..."));
            };
            voters.insert(id, addr.to_string());
        }
    }
    let controller_listener_names: Vec<String> = p
        .get("controller.listener.names")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut security_protocols = BTreeMap::new();
    if let Some(v) = p.get("listener.security.protocol.map") {
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((name, proto)) = item.split_once(':') else {
                return Err(p.invalid(
                    "listener.security.protocol.map",
                    "expected NAME:PROTOCOL,...",
                ));
            };
            security_protocols.insert(name.trim().to_string(), proto.trim().to_string());
        }
    }
    let is_controller = |name: &str| {
        controller_listener_names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    };
    let inter_broker_listener = match p.get("inter.broker.listener.name") {
        Some(v) => v.to_string(),
        None => listeners
            .iter()
            .find(|l| !is_controller(&l.name))
            .map(|l| l.name.clone())
            .unwrap_or_else(|| "PLAINTEXT".to_string()),
    };
    if let Some(r) = roles {
        if voters.is_empty() {
            return Err(ConfigError::Missing("controller.quorum.voters"));
        }
        if controller_listener_names.is_empty() {
            return Err(ConfigError::Missing("controller.listener.names"));
        }
        if p.get("cluster.id").is_none() {
            return Err(ConfigError::Missing("cluster.id"));
        }
        if r.controller != voters.contains_key(&node_id) {
            return Err(p.invalid(
                "process.roles",
                if r.controller {
                    "a node with the controller role must be one of controller.quorum.voters"
                } else {
                    "a node named in controller.quorum.voters must have the controller role"
                },
            ));
        }
        let has_controller_listener = listeners.iter().any(|l| is_controller(&l.name));
        if r.controller && !has_controller_listener {
            return Err(p.invalid(
                "listeners",
                "a controller needs a listener named in controller.listener.names",
            ));
        }
        if !listeners.iter().any(|l| l.name == inter_broker_listener) {
            return Err(p.invalid(
                "inter.broker.listener.name",
                "must name one of the listeners",
            ));
        }
    }
    let standalone = roles.is_none();
    Ok(ClusterSettings {
        roles,
        voters,
        controller_listener_names,
        inter_broker_listener,
        security_protocols,
        election_timeout_ms: p
            .int("controller.quorum.election.timeout.ms")?
            .unwrap_or(1000),
        quorum_fetch_timeout_ms: p.int("controller.quorum.fetch.timeout.ms")?.unwrap_or(2000),
        quorum_request_timeout_ms: p
            .int("controller.quorum.request.timeout.ms")?
            .unwrap_or(2000),
        heartbeat_interval_ms: p.int("broker.heartbeat.interval.ms")?.unwrap_or(2000),
        session_timeout_ms: p.int("broker.session.timeout.ms")?.unwrap_or(9000),
        replica_lag_time_max_ms: p.int("replica.lag.time.max.ms")?.unwrap_or(30_000),
        replica_fetch_wait_max_ms: p.int("replica.fetch.wait.max.ms")?.unwrap_or(500),
        replica_fetch_min_bytes: p.int("replica.fetch.min.bytes")?.unwrap_or(1).max(1),
        replica_fetch_max_bytes: p.int("replica.fetch.max.bytes")?.unwrap_or(1_048_576),
        replica_fetch_response_max_bytes: p
            .int("replica.fetch.response.max.bytes")?
            .unwrap_or(10_485_760),
        replica_fetch_backoff_ms: p.int("replica.fetch.backoff.ms")?.unwrap_or(1000),
        replication_quota_window_num: p
            .int::<usize>("replication.quota.window.num")?
            .unwrap_or(11)
            .max(1),
        replication_quota_window_size_seconds: p
            .int("replication.quota.window.size.seconds")?
            .unwrap_or(1)
            .max(1),
        replica_socket_timeout_ms: p.int("replica.socket.timeout.ms")?.unwrap_or(30_000),
        num_replica_fetchers: p.int::<usize>("num.replica.fetchers")?.unwrap_or(1).max(1),
        hw_checkpoint_interval_ms: p
            .int("replica.high.watermark.checkpoint.interval.ms")?
            .unwrap_or(5000),
        unclean_leader_election: p.bool("unclean.leader.election.enable")?.unwrap_or(false),
        auto_leader_rebalance: p.bool("auto.leader.rebalance.enable")?.unwrap_or(true),
        leader_imbalance_check_interval_seconds: p
            .int("leader.imbalance.check.interval.seconds")?
            .unwrap_or(300)
            .max(1),
        offsets_topic_replication_factor: p
            .int("offsets.topic.replication.factor")?
            .unwrap_or(if standalone { 1 } else { 3 }),
        offsets_commit_timeout_ms: p.int("offsets.commit.timeout.ms")?.unwrap_or(5000),
    })
}

/// `strata.metrics.address`: an `ip:port` (`0.0.0.0:9404`, `[::]:9404`); unset or empty serves
/// no endpoint. A host name is refused: resolving it would make parsing depend on DNS.
fn metrics_address(p: &Props<'_>) -> Result<Option<SocketAddr>, ConfigError> {
    const KEY: &str = "strata.metrics.address";
    match p.get(KEY).map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<SocketAddr>().map(Some).map_err(|_| {
            p.invalid(
                KEY,
                "expected ip:port, such as 0.0.0.0:9404 (port 0 picks a free port)",
            )
        }),
    }
}

fn parse_properties(
    path: &Path,
    text: &str,
    out: &mut BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']);
        let Some(at) = split else {
            return Err(ConfigError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
                text: raw.to_string(),
            });
        };
        let key = line[..at].trim();
        let value = line[at + 1..].trim();
        if key.is_empty() {
            return Err(ConfigError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
                text: raw.to_string(),
            });
        }
        out.insert(key.to_string(), value.to_string());
    }
    Ok(())
}

/// Parses `cleanup.policy` (`delete`, `compact`, or both comma-separated).
pub fn parse_cleanup_policy(key: &str, value: &str) -> Result<CleanupPolicy, ConfigError> {
    let mut policy = CleanupPolicy {
        delete: false,
        compact: false,
    };
    for part in value.split(',').map(str::trim) {
        match part {
            "delete" => policy.delete = true,
            "compact" => policy.compact = true,
            _ => {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    value: value.into(),
                    reason: "expected delete, compact or compact,delete".into(),
                })
            }
        }
    }
    Ok(policy)
}

/// Parses `message.timestamp.type`.
pub fn parse_timestamp_type(key: &str, value: &str) -> Result<TimestampType, ConfigError> {
    match value {
        "CreateTime" => Ok(TimestampType::CreateTime),
        "LogAppendTime" => Ok(TimestampType::LogAppendTime),
        _ => Err(ConfigError::Invalid {
            key: key.into(),
            value: value.into(),
            reason: "expected CreateTime or LogAppendTime".into(),
        }),
    }
}

struct Props<'a>(&'a BTreeMap<String, String>);

#[cfg(test)]
thread_local! {
    /// Every property name `from_properties` reads, for the test that keeps the shared list
    /// of Kafka properties complete.
    static READ: std::cell::RefCell<std::collections::BTreeSet<String>> = Default::default();
}

impl Props<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        #[cfg(test)]
        READ.with(|read| read.borrow_mut().insert(key.to_string()));
        self.0.get(key).map(String::as_str)
    }
    fn invalid(&self, key: &str, reason: &str) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            value: self.get(key).unwrap_or_default().into(),
            reason: reason.into(),
        }
    }
    fn int<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| self.invalid(key, "expected a whole number in range")),
        }
    }
    fn float(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| self.invalid(key, "expected a number")),
        }
    }
    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(self.invalid(key, "expected true or false")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_read_is_a_known_kafka_property() {
        BrokerConfig::from_properties(BTreeMap::new()).expect("defaults");
        let read = READ.with(|read| read.borrow().clone());
        assert!(read.len() > 30, "{read:?}");
        for key in read {
            assert!(
                properties::broker_property(&key).is_some(),
                "{key} is read but missing from strata_kafka::properties"
            );
        }
    }

    fn load(text: &str) -> Result<BrokerConfig, ConfigError> {
        let mut props = BTreeMap::new();
        parse_properties(Path::new("t"), text, &mut props)?;
        BrokerConfig::from_properties(props)
    }

    #[test]
    fn listener_security_protocols() {
        let ssl = load(
            "listeners=PLAINTEXT://127.0.0.1:19092,CLIENTS://127.0.0.1:19093\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CLIENTS:SSL\n\
             listener.name.clients.ssl.keystore.location=/k.pem\n",
        )
        .unwrap();
        assert_eq!(ssl.tls.keys().collect::<Vec<_>>(), vec!["CLIENTS"]);
        // unmapped listeners are their own protocol, as in Kafka
        assert!(
            load("listeners=SSL://127.0.0.1:19093\nssl.keystore.location=/k.pem\n")
                .unwrap()
                .tls
                .contains_key("SSL")
        );
        let refused = |text: &str| load(text).expect_err("refused").to_string();
        // SASL listeners need mechanisms (Kafka's default, GSSAPI, is not served).
        assert!(refused("listeners=SASL_PLAINTEXT://127.0.0.1:19092\n").contains("GSSAPI"));
        let sasl = load(
            "listeners=SASL_PLAINTEXT://127.0.0.1:19092\nsasl.enabled.mechanisms=SCRAM-SHA-512\n",
        )
        .unwrap();
        assert!(sasl.sasl.contains_key("SASL_PLAINTEXT") && sasl.tls.is_empty());
        let both = load(
            "listeners=SASL_SSL://127.0.0.1:19092\nsasl.enabled.mechanisms=SCRAM-SHA-512\n\
             ssl.keystore.location=/k.pem\n",
        )
        .unwrap();
        assert!(both.sasl.contains_key("SASL_SSL") && both.tls.contains_key("SASL_SSL"));
        assert!(refused("listeners=TLS://127.0.0.1:19092\n").contains("unknown security protocol"));
        assert!(refused("listeners=SSL://127.0.0.1:19092\n").contains("ssl.keystore.location"));
        // A node's own connections to the inter-broker and controller listeners use their
        // security: what they cannot do is refused at start, not tried in plaintext.
        let node = "process.roles=broker,controller\nnode.id=1\ncluster.id=c\n\
                    controller.quorum.voters=1@127.0.0.1:19094\ncontroller.listener.names=CONTROLLER\n\
                    listener.security.protocol.map=INTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT,\
                    EXTERNAL:SSL\ninter.broker.listener.name=INTERNAL\n\
                    listeners=INTERNAL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19094,\
                    EXTERNAL://127.0.0.1:19093\nssl.keystore.location=/k.pem\n\
                    sasl.enabled.mechanisms=PLAIN\n";
        let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    username=\"broker\" password=\"broker-secret\" user_broker=\"broker-secret\";";
        let users = format!(
            "listener.name.internal.plain.sasl.jaas.config={jaas}\n\
             listener.name.controller.plain.sasl.jaas.config={jaas}\n"
        );
        let gssapi = refused(&format!("{node}{users}"));
        assert!(gssapi.contains("GSSAPI"), "{gssapi}");
        let mechanisms =
            "sasl.mechanism.inter.broker.protocol=PLAIN\nsasl.mechanism.controller.protocol=PLAIN\n";
        let cfg = load(&format!("{node}{users}{mechanisms}")).unwrap();
        for side in [
            &cfg.node_security.inter_broker,
            &cfg.node_security.controller,
        ] {
            assert_eq!(
                side.protocol,
                strata_client::SecurityProtocol::SaslPlaintext
            );
            let creds = side.sasl.as_ref().expect("credentials");
            assert_eq!(
                (creds.username.as_str(), creds.password.as_str()),
                ("broker", "broker-secret")
            );
            assert!(side.tls.is_none());
        }
        // The listener's users alone do not say who this node is.
        let anonymous = users.replacen("username=\"broker\" password=\"broker-secret\" ", "", 2);
        let no_user = refused(&format!("{node}{anonymous}{mechanisms}"));
        assert!(
            no_user.contains("username=") && no_user.contains("INTERNAL"),
            "{no_user}"
        );
        let tls = node.replace("INTERNAL:SASL_PLAINTEXT", "INTERNAL:SSL");
        let tls = format!("{tls}{users}{mechanisms}");
        let no_ca = refused(&tls);
        assert!(
            no_ca.contains("ssl.truststore") && no_ca.contains("INTERNAL"),
            "{no_ca}"
        );
        // The listener's key store is this node's client certificate too, read at start.
        let keystore = refused(&format!(
            "{tls}listener.name.internal.ssl.truststore.certificates=(read after the key store)\n"
        ));
        assert!(
            keystore.contains("/k.pem") && keystore.contains("INTERNAL"),
            "{keystore}"
        );
    }

    #[test]
    fn reads_kafka_property_names() {
        let cfg = load(
            "# comment\nnode.id=3\nlisteners=PLAINTEXT://127.0.0.1:19092\n\
             advertised.listeners=PLAINTEXT://broker-3.example:9092\nlog.dirs=/data/a,/data/b\n\
             log.retention.hours=2\nlog.segment.bytes=1048576\nnum.partitions=6\n\
             broker.rack=zone-a\nlog.cleanup.policy=compact,delete\n",
        )
        .unwrap();
        assert_eq!(cfg.node_id, 3);
        assert_eq!(cfg.client_listener().port, 19092);
        assert_eq!(cfg.advertised().host, "broker-3.example");
        assert_eq!(cfg.log_dir, PathBuf::from("/data/a"));
        assert_eq!(cfg.log_defaults.retention_ms, 7_200_000);
        assert_eq!(cfg.log_defaults.segment_bytes, 1_048_576);
        assert_eq!(cfg.num_partitions, 6);
        assert_eq!(cfg.rack.as_deref(), Some("zone-a"));
        assert!(cfg.log_defaults.cleanup_policy.compact && cfg.log_defaults.cleanup_policy.delete);
    }

    #[test]
    fn replica_fetch_and_quota_window_settings() {
        let cfg = load("node.id=1\nlisteners=PLAINTEXT://127.0.0.1:19092\n").unwrap();
        assert_eq!(cfg.cluster.replica_fetch_min_bytes, 1);
        assert_eq!(cfg.cluster.replication_quota_window_num, 11);
        assert_eq!(cfg.cluster.replication_quota_window_size_seconds, 1);
        let cfg = load(
            "node.id=1\nlisteners=PLAINTEXT://127.0.0.1:19092\nreplica.fetch.min.bytes=65536\n\
             replication.quota.window.num=5\nreplication.quota.window.size.seconds=2\n",
        )
        .unwrap();
        assert_eq!(cfg.cluster.replica_fetch_min_bytes, 65536);
        assert_eq!(cfg.cluster.replication_quota_window_num, 5);
        assert_eq!(cfg.cluster.replication_quota_window_size_seconds, 2);
    }

    #[test]
    fn retention_ms_wins_over_hours() {
        let cfg = load("log.retention.hours=5\nlog.retention.ms=1000\n").unwrap();
        assert_eq!(cfg.log_defaults.retention_ms, 1000);
    }

    #[test]
    fn the_authorizer_is_kafkas_class_or_refused() {
        assert!(load("").unwrap().authorizer.is_none());
        let on = load(
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n\
             super.users=User:admin;User:ops\nallow.everyone.if.no.acl.found=true\n",
        )
        .unwrap()
        .authorizer
        .unwrap();
        assert_eq!(on.super_users, vec!["User:admin", "User:ops"]);
        assert!(on.allow_if_no_acl);
        let err = load("authorizer.class.name=com.example.MyAuthorizer\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("authorizer.class.name"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_property() {
        let err = load("num.partitions=zero\n").unwrap_err().to_string();
        assert!(err.contains("num.partitions"), "{err}");
        let err = load("listeners=nonsense\n").unwrap_err().to_string();
        assert!(err.contains("listeners"), "{err}");
        let err = load("log.cleanup.policy=sometimes\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cleanup.policy"), "{err}");
        let err = load("socket.request.max.bytes=100\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("socket.request.max.bytes"), "{err}");
    }

    #[test]
    fn metrics_address_is_an_ip_and_port_or_unset() {
        assert_eq!(load("").unwrap().metrics_address, None);
        assert_eq!(
            load("strata.metrics.address=\n").unwrap().metrics_address,
            None
        );
        assert_eq!(
            load("strata.metrics.address=0.0.0.0:9404\n")
                .unwrap()
                .metrics_address,
            Some("0.0.0.0:9404".parse().unwrap())
        );
        assert_eq!(
            load("strata.metrics.address=[::1]:0\n")
                .unwrap()
                .metrics_address,
            Some("[::1]:0".parse().unwrap())
        );
        for bad in ["9404", "broker-0:9404", "0.0.0.0", "0.0.0.0:99999"] {
            let err = load(&format!("strata.metrics.address={bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("strata.metrics.address") && err.contains(bad),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn replica_selector_class_takes_kafkas_rack_aware_selector_only() {
        assert_eq!(
            load("").unwrap().replica_selector,
            ReplicaSelector::LeaderOnly
        );
        let cfg = load(
            "replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector\n",
        )
        .unwrap();
        assert_eq!(cfg.replica_selector, ReplicaSelector::RackAware);
        let err = load("replica.selector.class=com.example.ClosestSelector\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("replica.selector.class")
                && err.contains("com.example.ClosestSelector")
                && err.contains("RackAwareReplicaSelector"),
            "{err}"
        );
    }

    #[test]
    fn overrides_apply_after_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.properties");
        std::fs::write(&path, "node.id=1\nnum.partitions=2\n").unwrap();
        let cfg = BrokerConfig::load(Some(&path), &["num.partitions=8".into()]).unwrap();
        assert_eq!(cfg.num_partitions, 8);
        assert!(BrokerConfig::load(Some(&path), &["garbage".into()]).is_err());
    }
}
