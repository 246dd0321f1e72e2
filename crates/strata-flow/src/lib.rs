//! The plain description of a mirror flow, shared by the `MirrorFlow` custom resource
//! (`strata-api`) and the configuration file of `strata-mirror`: cluster endpoints, topic and
//! group filters, naming and offset modes, sync options, tuning and the failover policy. One
//! definition, so the resource and the file cannot drift. Pure data with serde and JSON-schema
//! derives (the CRD schema is generated from these doc comments); no Kubernetes client types,
//! so a program that only mirrors does not depend on Kubernetes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Reference to a `KafkaCluster` in the namespace of the referring object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReference {
    /// Name of the `KafkaCluster` (same namespace as the referring object).
    #[schemars(length(min = 1))]
    pub name: String,
}

impl ClusterReference {
    /// A reference to the cluster called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

/// One side of a mirror. Exactly one of `clusterRef` and `bootstrapServers` must be set
/// (checked by the operator); `tls` and `sasl` apply to `bootstrapServers`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterEndpoint {
    /// Short name of this side, used in status, metrics, and as the topic prefix with
    /// `Prefixed` naming (like a MirrorMaker 2 cluster alias).
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-zA-Z0-9_-]+$"))]
    pub alias: String,

    /// A `KafkaCluster` in this namespace. Set this or `bootstrapServers`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<ClusterReference>,

    /// Comma-separated `host:port` list of an external Kafka cluster. Set this or
    /// `clusterRef`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,

    /// TLS towards `bootstrapServers`, from a Secret. Unset means plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSecretRef>,

    /// SASL credentials towards `bootstrapServers`, from a Secret. Unset means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<SaslSecretRef>,
}

/// TLS settings read from a Secret in the flow's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSecretRef {
    /// Name of the Secret.
    pub secret_name: String,

    /// Key of the CA certificate (PEM) that signs the brokers' certificates.
    #[serde(default = "default_ca_key")]
    pub ca_key: String,

    /// Key of the client certificate (PEM), for mutual TLS. Unset sends no client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_key: Option<String>,

    /// Key of the client private key (PEM), for mutual TLS; set together with `certKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_key: Option<String>,
}

/// SASL credentials read from a Secret in the flow's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaslSecretRef {
    /// SASL mechanism: `scram-sha-512`, `scram-sha-256` or `plain`.
    pub mechanism: SaslMechanism,

    /// Name of the Secret.
    pub secret_name: String,

    /// Key of the user name.
    #[serde(default = "default_username_key")]
    pub username_key: String,

    /// Key of the password.
    #[serde(default = "default_password_key")]
    pub password_key: String,
}

/// SASL mechanism of a mirror connection.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum SaslMechanism {
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "plain")]
    Plain,
}

/// Topic selection by regular expression over the whole topic name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicFilter {
    /// A topic is mirrored when it matches one of these and none of `exclude`.
    #[serde(default = "default_include_all")]
    pub include: Vec<String>,

    /// Topics never mirrored, even when included. The default skips internal topics.
    #[serde(default = "default_topic_exclude")]
    pub exclude: Vec<String>,
}

impl Default for TopicFilter {
    fn default() -> Self {
        Self {
            include: default_include_all(),
            exclude: default_topic_exclude(),
        }
    }
}

/// Consumer-group selection by regular expression over the whole group id.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupFilter {
    /// A group's offsets are synced when it matches one of these and none of `exclude`.
    #[serde(default = "default_include_all")]
    pub include: Vec<String>,

    /// Groups never synced, even when included. The default skips console and Connect groups.
    #[serde(default = "default_group_exclude")]
    pub exclude: Vec<String>,
}

impl Default for GroupFilter {
    fn default() -> Self {
        Self {
            include: default_include_all(),
            exclude: default_group_exclude(),
        }
    }
}

/// Names of mirrored topics on the target.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum NamingMode {
    #[default]
    Prefixed,
    Identity,
}

/// How consumer offsets carry over to the target.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum OffsetMode {
    #[default]
    Translate,
    Preserve,
}

/// What the mirror syncs besides records.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncSpec {
    /// Copy topic configurations (retention, cleanup policy, ...) to the target topics.
    #[serde(default = "default_true")]
    pub topic_configs: bool,

    /// Copy topic ACLs to the target, with write access downgraded to read so that only the
    /// mirror writes to mirrored topics.
    #[serde(default = "default_true")]
    pub acls: bool,

    /// Commit translated consumer-group offsets on the target, so consumers resume there after
    /// a failover without reprocessing more than one checkpoint interval.
    #[serde(default = "default_true")]
    pub group_offsets: bool,

    /// Seconds between consumer-group checkpoints.
    #[serde(default = "default_checkpoint_interval")]
    #[schemars(range(min = 1))]
    pub checkpoint_interval_seconds: i32,

    /// Seconds between heartbeats written to the target, which measure end-to-end lag.
    #[serde(default = "default_heartbeat_interval")]
    #[schemars(range(min = 1))]
    pub heartbeat_interval_seconds: i32,
}

impl Default for SyncSpec {
    fn default() -> Self {
        Self {
            topic_configs: true,
            acls: true,
            group_offsets: true,
            checkpoint_interval_seconds: default_checkpoint_interval(),
            heartbeat_interval_seconds: default_heartbeat_interval(),
        }
    }
}

/// Producer and consumer tuning of the mirror. Each field is the Kafka property named in its
/// description, with Kafka's default.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tuning {
    /// `linger.ms`: how long the producer waits to fill a batch.
    #[serde(default = "default_linger_ms")]
    #[schemars(range(min = 0))]
    pub linger_ms: i32,

    /// `batch.size`: maximum bytes of one producer batch per partition.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 0))]
    pub batch_size: i32,

    /// `fetch.min.bytes`: bytes a fetch waits for before the broker answers.
    #[serde(default = "default_fetch_min_bytes")]
    #[schemars(range(min = 0))]
    pub fetch_min_bytes: i32,

    /// `fetch.max.wait.ms`: longest a fetch waits for `fetchMinBytes`.
    #[serde(default = "default_fetch_max_wait_ms")]
    #[schemars(range(min = 0))]
    pub fetch_max_wait_ms: i32,

    /// `fetch.max.bytes`: maximum bytes of one fetch response.
    #[serde(default = "default_fetch_max_bytes")]
    #[schemars(range(min = 1))]
    pub fetch_max_bytes: i32,

    /// `max.in.flight.requests.per.connection`: unacknowledged produce requests per
    /// connection. Values above 5 lose ordering with idempotence.
    #[serde(default = "default_max_in_flight")]
    #[schemars(range(min = 1))]
    pub max_in_flight: i32,

    /// `compression.type` of the producer: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    #[serde(default)]
    pub compression: CompressionType,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            linger_ms: default_linger_ms(),
            batch_size: default_batch_size(),
            fetch_min_bytes: default_fetch_min_bytes(),
            fetch_max_wait_ms: default_fetch_max_wait_ms(),
            fetch_max_bytes: default_fetch_max_bytes(),
            max_in_flight: default_max_in_flight(),
            compression: CompressionType::None,
        }
    }
}

/// Producer compression codec (`compression.type`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompressionType {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// Active-standby failover policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverSpec {
    /// `Manual` (default): the operator fails over only when `active` changes. `Automatic`:
    /// it also fails over when the active cluster fails its probe `failureThreshold` times.
    #[serde(default)]
    pub mode: FailoverMode,

    /// Desired active side, `source` (default) or `target`. Changing it (e.g. by GitOps) starts
    /// a failover or a failback.
    #[serde(default)]
    pub active: ActiveSide,

    /// How the active cluster's health is probed.
    #[serde(default)]
    pub detection: Detection,

    /// Name of a Service in this namespace the operator keeps pointed at the active cluster,
    /// so clients bootstrap through one stable address. Unset manages no Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_service: Option<String>,

    /// How the old active cluster rejoins after a failover.
    #[serde(default)]
    pub failback: Failback,

    /// When the old active cluster is not a Strata cluster and still reachable, fence it with a
    /// deny-write ACL. Without it, a warning condition is reported instead.
    #[serde(default)]
    pub fence_foreign_cluster_with_acl: bool,
}

/// Whether failover waits for a person.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum FailoverMode {
    #[default]
    Manual,
    Automatic,
}

/// One side of a `MirrorFlow`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActiveSide {
    #[default]
    Source,
    Target,
}

/// Health probing of the active cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Detection {
    /// Seconds between probes.
    #[serde(default = "default_probe_interval")]
    #[schemars(range(min = 1))]
    pub probe_interval_seconds: i32,

    /// Consecutive failed probes that make the cluster count as down.
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1))]
    pub failure_threshold: i32,

    /// Seconds one probe may take before it counts as failed.
    #[serde(default = "default_probe_timeout")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: i32,
}

impl Default for Detection {
    fn default() -> Self {
        Self {
            probe_interval_seconds: default_probe_interval(),
            failure_threshold: default_failure_threshold(),
            timeout_seconds: default_probe_timeout(),
        }
    }
}

/// How the old active cluster rejoins after a failover.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failback {
    /// `Manual` (default): mirror back only when `active` is set back. `Automatic`: once the
    /// old active cluster is healthy again, mirror back to it and return to it.
    #[serde(default)]
    pub policy: FailbackPolicy,

    /// Truncate the old active cluster's unreplicated tail (records written after the last
    /// mirrored offset) before it rejoins, so the clusters cannot diverge. The tail is always
    /// reported in status; without this, failback waits until a person resolves it.
    #[serde(default)]
    pub truncate_unreplicated_tail: bool,
}

/// Whether failback waits for a person.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum FailbackPolicy {
    #[default]
    Manual,
    Automatic,
}

fn default_true() -> bool {
    true
}
fn default_ca_key() -> String {
    "ca.crt".to_owned()
}
fn default_username_key() -> String {
    "username".to_owned()
}
fn default_password_key() -> String {
    "password".to_owned()
}
fn default_include_all() -> Vec<String> {
    vec![".*".to_owned()]
}
fn default_topic_exclude() -> Vec<String> {
    // Kafka's own internal topics and MirrorMaker 2's bookkeeping topics.
    vec![
        "__.*".to_owned(),
        r".*[\-.]internal".to_owned(),
        r".*\.replica".to_owned(),
    ]
}
fn default_group_exclude() -> Vec<String> {
    vec![
        "console-consumer-.*".to_owned(),
        "connect-.*".to_owned(),
        "__.*".to_owned(),
    ]
}
fn default_checkpoint_interval() -> i32 {
    60
}
fn default_heartbeat_interval() -> i32 {
    1
}
fn default_linger_ms() -> i32 {
    5
}
fn default_batch_size() -> i32 {
    16384
}
fn default_fetch_min_bytes() -> i32 {
    1
}
fn default_fetch_max_wait_ms() -> i32 {
    500
}
fn default_fetch_max_bytes() -> i32 {
    52_428_800
}
fn default_max_in_flight() -> i32 {
    5
}
fn default_probe_interval() -> i32 {
    5
}
fn default_probe_timeout() -> i32 {
    3
}
fn default_failure_threshold() -> i32 {
    3
}
