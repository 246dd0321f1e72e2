//! The mirror's configuration: [`MirrorConfig`], read from YAML or JSON whose shape is the
//! `MirrorFlow` spec of `strata-api` (same field names, same defaults) plus a few mirror-only
//! knobs, or built from a MirrorMaker 2 properties file by [`crate::mm2`]. Pure: no I/O beyond
//! reading the file in [`MirrorConfig::load`]; [`MirrorConfig::validate`] is the one place that
//! decides whether a configuration can run, so the runtime never re-checks it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_client::{ClientConfig, Compression, ProducerConfig, Security};
use strata_flow::{
    ClusterEndpoint, CompressionType, FailoverSpec, GroupFilter, NamingMode, OffsetMode, SyncSpec,
    TopicFilter, Tuning,
};

use crate::policy::{GroupSelection, InvalidPattern, TopicSelection};

/// Why a configuration cannot be read or cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid mirror configuration: {message}")]
    Parse { path: String, message: String },
    #[error("invalid mirror configuration: {0}")]
    Invalid(String),
    #[error("invalid mirror configuration: {0}")]
    Pattern(#[from] InvalidPattern),
    #[error("{0} is not yet supported by strata-mirror")]
    Unsupported(String),
    #[error("MirrorMaker 2 properties: {0}")]
    Mm2(String),
}

/// One mirror flow, source → target. Field names follow `MirrorFlowSpec` (camelCase in files).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MirrorConfig {
    /// Cluster records are read from (`alias` + `bootstrapServers`).
    pub source: ClusterEndpoint,
    /// Cluster records are written to.
    pub target: ClusterEndpoint,
    #[serde(default)]
    pub topics: TopicFilter,
    #[serde(default)]
    pub groups: GroupFilter,
    #[serde(default)]
    pub naming: NamingMode,
    #[serde(default)]
    pub offsets: OffsetMode,
    #[serde(default)]
    pub sync: SyncSpec,
    #[serde(default)]
    pub tuning: Tuning,
    /// Accepted for shape compatibility with `MirrorFlowSpec`; the process count is given on
    /// the command line (`--replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Accepted for shape compatibility with `MirrorFlowSpec`; failover is the operator's job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverSpec>,
    /// Accepted for shape compatibility with `MirrorFlowSpec`; pod resources are the
    /// operator's job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<serde_json::Value>,
    /// Mirror-only knobs that `MirrorFlowSpec` does not carry.
    #[serde(default)]
    pub mirror: MirrorOptions,
}

/// Knobs of the mirror process beyond `MirrorFlowSpec`, with MirrorMaker 2's names in the docs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MirrorOptions {
    /// `refresh.topics.interval.seconds`: how often source topics, partition counts and
    /// configs are looked at again.
    #[serde(default = "default_refresh_topics")]
    pub refresh_topics_interval_seconds: u32,
    /// `replication.factor` of the topics the mirror creates; unset uses the target's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i16>,
    /// `offset.lag.max`: source records between two offset syncs of a busy partition.
    #[serde(default = "default_offset_lag_max")]
    pub offset_lag_max: i64,
    /// How often acknowledged progress is committed (Connect's `offset.flush.interval.ms`).
    #[serde(default = "default_progress_commit_ms")]
    pub progress_commit_interval_ms: u64,
    /// `tasks.max`: replication loops in this process; its partitions are split between them.
    #[serde(default = "default_tasks")]
    pub tasks: u32,
    /// `emit.heartbeats.enabled`.
    #[serde(default = "default_true")]
    pub emit_heartbeats: bool,
    /// `emit.checkpoints.enabled`.
    #[serde(default = "default_true")]
    pub emit_checkpoints: bool,
    /// Extra producer properties toward the target (`{target}.producer.*`), Kafka names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub producer: BTreeMap<String, String>,
    /// Extra consumer properties toward the source (`{source}.consumer.*`), Kafka names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consumer: BTreeMap<String, String>,
    /// How every client reaches the source (`{source}.security.protocol`, `{source}.ssl.*`,
    /// `{source}.sasl.*`), Kafka client names: TLS with a PEM trust store, SASL PLAIN or SCRAM.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_security: BTreeMap<String, String>,
    /// The same toward the target.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub target_security: BTreeMap<String, String>,
}

impl Default for MirrorOptions {
    fn default() -> Self {
        MirrorOptions {
            refresh_topics_interval_seconds: default_refresh_topics(),
            replication_factor: None,
            offset_lag_max: default_offset_lag_max(),
            progress_commit_interval_ms: default_progress_commit_ms(),
            tasks: default_tasks(),
            emit_heartbeats: true,
            emit_checkpoints: true,
            producer: BTreeMap::new(),
            consumer: BTreeMap::new(),
            source_security: BTreeMap::new(),
            target_security: BTreeMap::new(),
        }
    }
}

fn default_refresh_topics() -> u32 {
    30
}
fn default_offset_lag_max() -> i64 {
    100
}
fn default_progress_commit_ms() -> u64 {
    5_000
}
fn default_tasks() -> u32 {
    1
}
fn default_true() -> bool {
    true
}

impl MirrorConfig {
    /// A flow with every default, between two bootstrap lists.
    pub fn new(
        source_alias: &str,
        source_bootstrap: &str,
        target_alias: &str,
        target_bootstrap: &str,
    ) -> MirrorConfig {
        let side = |alias: &str, bootstrap: &str| ClusterEndpoint {
            alias: alias.to_string(),
            cluster_ref: None,
            bootstrap_servers: Some(bootstrap.to_string()),
            tls: None,
            sasl: None,
        };
        MirrorConfig {
            source: side(source_alias, source_bootstrap),
            target: side(target_alias, target_bootstrap),
            topics: TopicFilter::default(),
            groups: GroupFilter::default(),
            naming: NamingMode::default(),
            offsets: OffsetMode::default(),
            sync: SyncSpec::default(),
            tuning: Tuning::default(),
            replicas: None,
            failover: None,
            resources: None,
            mirror: MirrorOptions::default(),
        }
    }

    /// Reads a YAML (or JSON, which YAML accepts) file and validates it.
    pub fn load(path: &Path) -> Result<MirrorConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses YAML or JSON text (`origin` names it in errors) and validates it.
    pub fn parse(text: &str, origin: &str) -> Result<MirrorConfig, ConfigError> {
        let config: MirrorConfig =
            serde_norway::from_str(text).map_err(|e| ConfigError::Parse {
                path: origin.to_string(),
                message: e.to_string(),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks everything the runtime relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (side, e) in [("source", &self.source), ("target", &self.target)] {
            let alias_ok = !e.alias.is_empty()
                && e.alias.len() <= 63
                && e.alias
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !alias_ok {
                return Err(ConfigError::Invalid(format!(
                    "{side}.alias {:?} must be 1-63 characters of [a-zA-Z0-9_-]",
                    e.alias
                )));
            }
            if e.cluster_ref.is_some() {
                return Err(ConfigError::Unsupported(format!(
                    "{side}.clusterRef (the operator resolves it to bootstrapServers)"
                )));
            }
            if e.tls.is_some() || e.sasl.is_some() {
                return Err(ConfigError::Unsupported(format!(
                    "{side}.tls / {side}.sasl (Secrets are the operator's; give the mirror \
                     Kafka's client properties in mirror.{side}Security)"
                )));
            }
            if bootstrap_list(e).is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "{side}.bootstrapServers is required"
                )));
            }
        }
        for (side, props) in [
            ("sourceSecurity", &self.mirror.source_security),
            ("targetSecurity", &self.mirror.target_security),
        ] {
            resolve_security(props)
                .map_err(|e| ConfigError::Invalid(format!("mirror.{side}: {e}")))?;
        }
        if self.source.alias == self.target.alias {
            return Err(ConfigError::Invalid(format!(
                "source and target have the same alias {:?}",
                self.source.alias
            )));
        }
        TopicSelection::compile(&self.topics)?;
        GroupSelection::compile(&self.groups)?;
        let t = &self.tuning;
        let checks = [
            (
                self.sync.checkpoint_interval_seconds >= 1,
                "sync.checkpointIntervalSeconds >= 1",
            ),
            (
                self.sync.heartbeat_interval_seconds >= 1,
                "sync.heartbeatIntervalSeconds >= 1",
            ),
            (t.linger_ms >= 0, "tuning.lingerMs >= 0"),
            (t.batch_size >= 0, "tuning.batchSize >= 0"),
            (t.fetch_min_bytes >= 0, "tuning.fetchMinBytes >= 0"),
            (t.fetch_max_wait_ms >= 0, "tuning.fetchMaxWaitMs >= 0"),
            (t.fetch_max_bytes >= 1, "tuning.fetchMaxBytes >= 1"),
            (t.max_in_flight >= 1, "tuning.maxInFlight >= 1"),
            (self.mirror.tasks >= 1, "mirror.tasks >= 1"),
            (self.mirror.offset_lag_max >= 1, "mirror.offsetLagMax >= 1"),
            (
                self.mirror.refresh_topics_interval_seconds >= 1,
                "mirror.refreshTopicsIntervalSeconds >= 1",
            ),
            (
                self.mirror.replication_factor.is_none_or(|r| r >= 1),
                "mirror.replicationFactor >= 1",
            ),
        ];
        for (ok, rule) in checks {
            if !ok {
                return Err(ConfigError::Invalid(format!("{rule} is required")));
            }
        }
        Ok(())
    }

    /// Client settings toward the source.
    pub fn source_client(&self) -> ClientConfig {
        let mut c = ClientConfig::new(bootstrap_list(&self.source));
        c.client_id = format!("strata-mirror-{}-{}", self.source.alias, self.target.alias);
        c.security = security(&self.mirror.source_security);
        c
    }

    /// Client settings toward the target.
    pub fn target_client(&self) -> ClientConfig {
        let mut c = ClientConfig::new(bootstrap_list(&self.target));
        c.client_id = format!("strata-mirror-{}-{}", self.source.alias, self.target.alias);
        c.security = security(&self.mirror.target_security);
        c
    }

    /// Client settings for offset-preserving appends to a Strata target (`offsets: Preserve`):
    /// the broker accepts them from this client id only.
    pub fn preserve_client(&self) -> ClientConfig {
        let mut c = ClientConfig::new(bootstrap_list(&self.target));
        c.client_id = strata_kafka::preserve::PRESERVE_CLIENT_ID.to_string();
        c.security = security(&self.mirror.target_security);
        c
    }

    /// The producer toward the target: idempotent, `acks=all`, tuned as configured.
    pub fn producer(&self) -> ProducerConfig {
        let t = &self.tuning;
        ProducerConfig {
            linger: Duration::from_millis(t.linger_ms.max(0) as u64),
            batch_size: t.batch_size.max(0) as usize,
            compression: match t.compression {
                CompressionType::None => Compression::None,
                CompressionType::Gzip => Compression::Gzip,
                CompressionType::Snappy => Compression::Snappy,
                CompressionType::Lz4 => Compression::Lz4,
                CompressionType::Zstd => Compression::Zstd,
            },
            // More than 5 in flight would reorder retried batches even with idempotence.
            max_in_flight: t.max_in_flight.clamp(1, 5) as usize,
            ..ProducerConfig::default()
        }
    }

    /// Every interval the runtime uses.
    pub fn checkpoint_interval(&self) -> Duration {
        Duration::from_secs(self.sync.checkpoint_interval_seconds.max(1) as u64)
    }
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(self.sync.heartbeat_interval_seconds.max(1) as u64)
    }
    pub fn refresh_topics_interval(&self) -> Duration {
        Duration::from_secs(u64::from(
            self.mirror.refresh_topics_interval_seconds.max(1),
        ))
    }
    pub fn progress_commit_interval(&self) -> Duration {
        Duration::from_millis(self.mirror.progress_commit_interval_ms.max(10))
    }
}

/// The client security of one side; [`MirrorConfig::validate`] has checked the properties, so
/// a failure here (a trust store file removed since) falls back to what the properties name
/// and fails at the first connection, with the error in the log.
fn security(props: &BTreeMap<String, String>) -> Security {
    resolve_security(props).unwrap_or_else(|e| {
        tracing::error!(error = %e, "mirror client security");
        Security {
            protocol: props
                .get("security.protocol")
                .and_then(|p| strata_client::SecurityProtocol::parse(p).ok())
                .unwrap_or_default(),
            tls: None,
            sasl: None,
        }
    })
}

/// The client security of Kafka client properties whose values may name Kafka's configuration
/// providers (`config.providers=dir` with `${dir:<dir>:<file>}`, as Kafka's clients resolve
/// them): how a mirror pod reads credentials from mounted Secrets.
fn resolve_security(props: &BTreeMap<String, String>) -> Result<Security, String> {
    let resolved =
        strata_kafka::config_providers::resolve(props.clone()).map_err(|e| e.to_string())?;
    Security::from_properties(&resolved.props)
}

fn bootstrap_list(e: &ClusterEndpoint) -> Vec<String> {
    e.bootstrap_servers
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_in_the_mirror_flow_shape_parses_with_defaults() {
        let yaml = r#"
source: { alias: east, bootstrapServers: "a:9092,b:9092" }
target: { alias: west, bootstrapServers: "c:9092" }
topics: { include: ["orders.*"] }
naming: Identity
sync: { checkpointIntervalSeconds: 5 }
tuning: { lingerMs: 20, compression: zstd }
mirror: { replicationFactor: 3 }
"#;
        let c = MirrorConfig::parse(yaml, "test").unwrap();
        assert_eq!(c.naming, NamingMode::Identity);
        assert_eq!(c.topics.include, vec!["orders.*"]);
        assert!(!c.topics.exclude.is_empty(), "default excludes kept");
        assert_eq!(c.checkpoint_interval(), Duration::from_secs(5));
        assert_eq!(c.source_client().bootstrap, vec!["a:9092", "b:9092"]);
        assert_eq!(c.producer().compression, Compression::Zstd);
        assert_eq!(c.mirror.replication_factor, Some(3));
    }

    #[test]
    fn security_properties_read_mounted_secrets_through_the_directory_provider() {
        let secret = tempfile::tempdir().unwrap();
        std::fs::write(secret.path().join("username"), "mirror").unwrap();
        std::fs::write(secret.path().join("password"), "s3cret").unwrap();
        let dir = secret.path().display();
        let mut c = MirrorConfig::new("a", "x:1", "b", "y:1");
        c.mirror.source_security = [
            ("config.providers", "dir".to_string()),
            (
                "config.providers.dir.class",
                "org.apache.kafka.common.config.provider.DirectoryConfigProvider".to_string(),
            ),
            ("security.protocol", "SASL_PLAINTEXT".to_string()),
            ("sasl.mechanism", "SCRAM-SHA-512".to_string()),
            (
                "sasl.jaas.config",
                format!(
                    "org.apache.kafka.common.security.scram.ScramLoginModule required \
                     username=\"${{dir:{dir}:username}}\" password=\"${{dir:{dir}:password}}\";"
                ),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        c.validate().unwrap();
        let sasl = c.source_client().security.sasl.expect("SASL credentials");
        assert_eq!(
            (sasl.username.as_str(), sasl.password.as_str()),
            ("mirror", "s3cret")
        );
        // A file the Secret does not have is refused at validation, naming the property.
        std::fs::remove_file(secret.path().join("password")).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("mirror.sourceSecurity") && e.contains("sasl.jaas.config"),
            "{e}"
        );
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn json_is_accepted_too() {
        let json = r#"{"source":{"alias":"a","bootstrapServers":"x:1"},
                       "target":{"alias":"b","bootstrapServers":"y:1"}}"#;
        let c = MirrorConfig::parse(json, "test").unwrap();
        assert_eq!(c.naming, NamingMode::Prefixed);
    }

    #[test]
    fn preserve_uses_its_own_client_id_toward_the_target() {
        let yaml = "source: {alias: a, bootstrapServers: 'x:1'}\ntarget: {alias: b, bootstrapServers: 'y:1'}\noffsets: Preserve\n";
        let c = MirrorConfig::parse(yaml, "test").unwrap();
        assert_eq!(c.offsets, OffsetMode::Preserve);
        assert_eq!(c.preserve_client().client_id, "strata-mirror-preserve");
        assert_ne!(c.target_client().client_id, c.preserve_client().client_id);
    }

    #[test]
    fn bad_values_are_errors() {
        let base = "source: {alias: a, bootstrapServers: 'x:1'}\n";
        for (extra, needle) in [
            (
                "target: {alias: a, bootstrapServers: 'y:1'}\n",
                "same alias",
            ),
            ("target: {alias: b}\n", "bootstrapServers"),
            ("target: {alias: 'b c', bootstrapServers: 'y:1'}\n", "alias"),
            (
                "target: {alias: b, bootstrapServers: 'y:1'}\ntopics: {include: ['(']}\n",
                "regex",
            ),
            (
                "target: {alias: b, bootstrapServers: 'y:1'}\nbogus: 1\n",
                "bogus",
            ),
        ] {
            let e = MirrorConfig::parse(&format!("{base}{extra}"), "test").unwrap_err();
            assert!(e.to_string().contains(needle), "{needle}: {e}");
        }
    }
}
