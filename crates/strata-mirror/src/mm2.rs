//! MirrorMaker 2 properties → [`MirrorConfig`] for one flow `source->target`. Text in,
//! configuration out. A key of the supported subset is read with MM2's precedence: the flow
//! prefix (`A->B.topics`) wins over the top-level key (`topics`). Supported:
//!
//! `clusters`, `<alias>.bootstrap.servers`, `<a>-><b>.enabled` (the chosen flow must be
//! enabled), `topics`, `topics.exclude` (and the old `topics.blacklist`), `groups`,
//! `groups.exclude` (`groups.blacklist`), `replication.policy.class` (`DefaultReplicationPolicy`
//! → `Prefixed`, `IdentityReplicationPolicy` → `Identity`, simple or fully qualified name),
//! `replication.policy.separator` (only `.`), `sync.topic.configs.enabled`,
//! `sync.topic.acls.enabled`, `sync.group.offsets.enabled`, `emit.checkpoints.enabled`,
//! `emit.checkpoints.interval.seconds`, `emit.heartbeats.enabled`,
//! `emit.heartbeats.interval.seconds`, `refresh.topics.interval.seconds`, `offset.lag.max`,
//! `tasks.max`, `replication.factor`; `<target>.producer.{linger.ms, batch.size,
//! compression.type, max.in.flight.requests.per.connection}` and `<source>.consumer.{fetch.min.bytes,
//! fetch.max.wait.ms, fetch.max.bytes}` map to the tuning; other producer/consumer properties
//! are kept in [`crate::MirrorOptions`] as given; `<alias>.security.protocol`, `<alias>.ssl.*` and
//! `<alias>.sasl.*` secure every client of that side (TLS with a PEM trust store, SASL PLAIN or
//! SCRAM). Variables of Kafka's configuration providers (`config.providers`, e.g.
//! `${file:/etc/mm2/secrets.properties:password}`) are resolved first, as MM2 does (see
//! `strata_kafka::config_providers`). Any other key is logged and ignored; a
//! malformed value of a supported key is an error naming the key.
//!
//! Lists are comma-separated; MM2's regex lists are joined the same way, so a regex containing
//! a comma cannot be expressed (as in MM2).

use std::collections::BTreeMap;

use strata_flow::{CompressionType, NamingMode};

use crate::config::{ConfigError, MirrorConfig};

pub use strata_kafka::properties_file::parse as parse_properties;

/// Keys MM2 knows that have no effect here (logged at debug level, not warned about).
const KNOWN_IGNORED: &[&str] = &[
    "checkpoints.topic.replication.factor",
    "heartbeats.topic.replication.factor",
    "offset-syncs.topic.replication.factor",
    "offset.storage.replication.factor",
    "status.storage.replication.factor",
    "config.storage.replication.factor",
    "offset-syncs.topic.location",
    "sync.group.offsets.interval.seconds",
    "sync.topic.acls.interval.seconds",
    "sync.topic.configs.interval.seconds",
    "refresh.groups.interval.seconds",
    "dedicated.mode.enable.internal.rest",
    "key.converter",
    "value.converter",
    "header.converter",
];

struct Lookup<'a> {
    props: &'a BTreeMap<String, String>,
    flow: String,
}

impl Lookup<'_> {
    /// The flow-prefixed value if set, else the top-level one.
    fn get(&self, key: &str) -> Option<&str> {
        self.props
            .get(&format!("{}.{key}", self.flow))
            .or_else(|| self.props.get(key))
            .map(String::as_str)
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.get(key)
            .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ConfigError::Mm2(format!(
                    "{key}={v:?} is not true or false"
                ))),
            })
            .transpose()
    }

    fn int<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        self.get(key).map(|v| number(key, v)).transpose()
    }
}

fn number<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ConfigError> {
    v.trim()
        .parse()
        .map_err(|_| ConfigError::Mm2(format!("{key}={v:?} is not a valid number")))
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl MirrorConfig {
    /// The flow `source_alias->target_alias` of an MM2 properties file.
    pub fn from_mm2_properties(
        text: &str,
        source_alias: &str,
        target_alias: &str,
    ) -> Result<MirrorConfig, ConfigError> {
        let props = strata_kafka::config_providers::resolve(parse_properties(text))
            .map_err(|e| ConfigError::Mm2(e.to_string()))?
            .props;
        let clusters = props
            .get("clusters")
            .map(|c| list(c))
            .ok_or_else(|| ConfigError::Mm2("`clusters` is not set".into()))?;
        for alias in [source_alias, target_alias] {
            if !clusters.iter().any(|c| c == alias) {
                return Err(ConfigError::Mm2(format!(
                    "cluster {alias:?} is not in clusters = {}",
                    clusters.join(", ")
                )));
            }
        }
        let bootstrap = |alias: &str| {
            props
                .get(&format!("{alias}.bootstrap.servers"))
                .cloned()
                .ok_or_else(|| ConfigError::Mm2(format!("{alias}.bootstrap.servers is not set")))
        };
        let mut config = MirrorConfig::new(
            source_alias,
            &bootstrap(source_alias)?,
            target_alias,
            &bootstrap(target_alias)?,
        );
        let flow = format!("{source_alias}->{target_alias}");
        let l = Lookup {
            props: &props,
            flow: flow.clone(),
        };
        match props.get(&format!("{flow}.enabled")).map(|v| v.trim()) {
            Some("true") => {}
            Some("false") | None => {
                return Err(ConfigError::Mm2(format!(
                    "flow {flow} is not enabled ({flow}.enabled = true is required)"
                )))
            }
            Some(v) => {
                return Err(ConfigError::Mm2(format!(
                    "{flow}.enabled={v:?} is not true or false"
                )))
            }
        }
        if let Some(v) = l.get("topics") {
            config.topics.include = list(v);
        }
        if let Some(v) = l
            .get("topics.exclude")
            .or_else(|| l.get("topics.blacklist"))
        {
            config.topics.exclude = list(v);
        }
        if let Some(v) = l.get("groups") {
            config.groups.include = list(v);
        }
        if let Some(v) = l
            .get("groups.exclude")
            .or_else(|| l.get("groups.blacklist"))
        {
            config.groups.exclude = list(v);
        }
        if let Some(class) = l.get("replication.policy.class") {
            let simple = class.trim().rsplit('.').next().unwrap_or_default();
            config.naming = match simple {
                "DefaultReplicationPolicy" => NamingMode::Prefixed,
                "IdentityReplicationPolicy" => NamingMode::Identity,
                _ => {
                    return Err(ConfigError::Mm2(format!(
                        "replication.policy.class={class:?}: only DefaultReplicationPolicy and IdentityReplicationPolicy are supported"
                    )))
                }
            };
        }
        if let Some(sep) = l.get("replication.policy.separator") {
            if sep != "." {
                return Err(ConfigError::Mm2(format!(
                    "replication.policy.separator={sep:?}: only \".\" is supported"
                )));
            }
        }
        if let Some(b) = l.bool("sync.topic.configs.enabled")? {
            config.sync.topic_configs = b;
        }
        if let Some(b) = l.bool("sync.topic.acls.enabled")? {
            config.sync.acls = b;
        }
        if let Some(b) = l.bool("sync.group.offsets.enabled")? {
            config.sync.group_offsets = b;
        }
        if let Some(b) = l.bool("emit.checkpoints.enabled")? {
            config.mirror.emit_checkpoints = b;
        }
        if let Some(b) = l.bool("emit.heartbeats.enabled")? {
            config.mirror.emit_heartbeats = b;
        }
        if let Some(s) = l.int::<i32>("emit.checkpoints.interval.seconds")? {
            config.sync.checkpoint_interval_seconds = s;
        }
        if let Some(s) = l.int::<i32>("emit.heartbeats.interval.seconds")? {
            config.sync.heartbeat_interval_seconds = s;
        }
        if let Some(s) = l.int::<u32>("refresh.topics.interval.seconds")? {
            config.mirror.refresh_topics_interval_seconds = s;
        }
        if let Some(n) = l.int::<i64>("offset.lag.max")? {
            config.mirror.offset_lag_max = n;
        }
        if let Some(n) = l.int::<u32>("tasks.max")? {
            config.mirror.tasks = n;
        }
        if let Some(n) = l.int::<i16>("replication.factor")? {
            // MM2 uses -1 for "the broker's default".
            config.mirror.replication_factor = (n > 0).then_some(n);
        }
        apply_client_properties(&mut config, &props, &flow, source_alias, target_alias)?;
        warn_unknown(&props, &clusters, &flow);
        config.validate()?;
        Ok(config)
    }
}

/// `{target}.producer.*` and `{source}.consumer.*` (also under the flow prefix).
fn apply_client_properties(
    config: &mut MirrorConfig,
    props: &BTreeMap<String, String>,
    flow: &str,
    source: &str,
    target: &str,
) -> Result<(), ConfigError> {
    // `{alias}.security.protocol`, `{alias}.ssl.*`, `{alias}.sasl.*`: every client of that side.
    for (alias, side) in [(source, false), (target, true)] {
        let prefix = format!("{alias}.");
        for (key, value) in props.iter().filter(|(k, _)| k.starts_with(&prefix)) {
            let name = &key[prefix.len()..];
            if name == "security.protocol" || name.starts_with("ssl.") || name.starts_with("sasl.")
            {
                let security = if side {
                    &mut config.mirror.target_security
                } else {
                    &mut config.mirror.source_security
                };
                security.insert(name.to_string(), value.clone());
            }
        }
    }
    let prefixes = [
        (format!("{target}.producer."), true),
        (format!("{flow}.producer."), true),
        (format!("{source}.consumer."), false),
        (format!("{flow}.consumer."), false),
    ];
    for (prefix, producer) in &prefixes {
        for (key, value) in props.iter().filter(|(k, _)| k.starts_with(prefix.as_str())) {
            let name = &key[prefix.len()..];
            let full = key.as_str();
            let t = &mut config.tuning;
            match (producer, name) {
                (true, "linger.ms") => t.linger_ms = number(full, value)?,
                (true, "batch.size") => t.batch_size = number(full, value)?,
                (true, "max.in.flight.requests.per.connection") => {
                    t.max_in_flight = number(full, value)?
                }
                (true, "compression.type") => {
                    t.compression = match value.trim() {
                        "none" => CompressionType::None,
                        "gzip" => CompressionType::Gzip,
                        "snappy" => CompressionType::Snappy,
                        "lz4" => CompressionType::Lz4,
                        "zstd" => CompressionType::Zstd,
                        v => {
                            return Err(ConfigError::Mm2(format!(
                                "{full}={v:?} is not none, gzip, snappy, lz4 or zstd"
                            )))
                        }
                    }
                }
                (false, "fetch.min.bytes") => t.fetch_min_bytes = number(full, value)?,
                (false, "fetch.max.wait.ms") => t.fetch_max_wait_ms = number(full, value)?,
                (false, "fetch.max.bytes") => t.fetch_max_bytes = number(full, value)?,
                (true, _) => {
                    config
                        .mirror
                        .producer
                        .insert(name.to_string(), value.clone());
                }
                (false, _) => {
                    config
                        .mirror
                        .consumer
                        .insert(name.to_string(), value.clone());
                }
            }
        }
    }
    Ok(())
}

fn warn_unknown(props: &BTreeMap<String, String>, clusters: &[String], flow: &str) {
    const SUPPORTED: &[&str] = &[
        "clusters",
        "topics",
        "topics.exclude",
        "topics.blacklist",
        "groups",
        "groups.exclude",
        "groups.blacklist",
        "replication.policy.class",
        "replication.policy.separator",
        "sync.topic.configs.enabled",
        "sync.topic.acls.enabled",
        "sync.group.offsets.enabled",
        "emit.checkpoints.enabled",
        "emit.heartbeats.enabled",
        "emit.checkpoints.interval.seconds",
        "emit.heartbeats.interval.seconds",
        "refresh.topics.interval.seconds",
        "offset.lag.max",
        "tasks.max",
        "replication.factor",
        "enabled",
    ];
    for key in props.keys() {
        // Strip a flow prefix (`a->b.`) or a cluster prefix (`a.`).
        let bare = key
            .split_once("->")
            .and_then(|(_, rest)| rest.split_once('.'))
            .map(|(_, k)| k)
            .or_else(|| {
                clusters
                    .iter()
                    .find_map(|c| key.strip_prefix(&format!("{c}.")))
            })
            .unwrap_or(key);
        let client = bare.starts_with("producer.")
            || bare.starts_with("consumer.")
            || bare.starts_with("admin.")
            || bare.starts_with("ssl.")
            || bare.starts_with("sasl.")
            || bare == "security.protocol"
            || bare == "bootstrap.servers";
        if SUPPORTED.contains(&bare) || client {
            continue;
        }
        if KNOWN_IGNORED.contains(&bare) {
            tracing::debug!(
                key,
                flow,
                "MirrorMaker 2 setting has no effect in strata-mirror"
            );
        } else {
            tracing::warn!(key, flow, "unknown MirrorMaker 2 setting ignored");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MM2: &str = r#"
# two clusters
clusters = primary, backup
primary.bootstrap.servers = p1:9092,p2:9092
backup.bootstrap.servers: b1:9092
primary->backup.enabled = true
backup->primary.enabled = false
topics = orders.*, pay\
    ments
topics.exclude = .*-tmp
groups = billing.*
replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy
sync.topic.configs.enabled = false
sync.group.offsets.enabled = true
emit.checkpoints.interval.seconds = 5
tasks.max = 4
replication.factor = 3
backup.producer.linger.ms = 50
backup.producer.compression.type = lz4
backup.producer.acks = all
primary.consumer.fetch.max.wait.ms = 100
primary->backup.offset.lag.max = 10
some.future.setting = 1
"#;

    #[test]
    fn the_supported_subset_maps_onto_the_flow() {
        let c = MirrorConfig::from_mm2_properties(MM2, "primary", "backup").unwrap();
        assert_eq!(
            c.source.bootstrap_servers.as_deref(),
            Some("p1:9092,p2:9092")
        );
        assert_eq!(c.target.bootstrap_servers.as_deref(), Some("b1:9092"));
        assert_eq!(c.topics.include, vec!["orders.*", "payments"]);
        assert_eq!(c.topics.exclude, vec![".*-tmp"]);
        assert_eq!(c.groups.include, vec!["billing.*"]);
        assert_eq!(c.naming, NamingMode::Identity);
        assert!(!c.sync.topic_configs);
        assert!(c.sync.group_offsets);
        assert_eq!(c.sync.checkpoint_interval_seconds, 5);
        assert_eq!(c.mirror.tasks, 4);
        assert_eq!(c.mirror.replication_factor, Some(3));
        assert_eq!(c.tuning.linger_ms, 50);
        assert_eq!(c.tuning.compression, CompressionType::Lz4);
        assert_eq!(c.tuning.fetch_max_wait_ms, 100);
        assert_eq!(c.mirror.offset_lag_max, 10);
        assert_eq!(
            c.mirror.producer.get("acks").map(String::as_str),
            Some("all")
        );
    }

    #[test]
    fn defaults_follow_mm2() {
        let text =
            "clusters=a,b\na.bootstrap.servers=x:1\nb.bootstrap.servers=y:1\na->b.enabled=true\n";
        let c = MirrorConfig::from_mm2_properties(text, "a", "b").unwrap();
        assert_eq!(c.naming, NamingMode::Prefixed);
        assert_eq!(c.topics.include, vec![".*"]);
        let c = MirrorConfig::from_mm2_properties(
            &format!("{text}replication.policy.class=DefaultReplicationPolicy\n"),
            "a",
            "b",
        )
        .unwrap();
        assert_eq!(c.naming, NamingMode::Prefixed);
    }

    #[test]
    fn disabled_or_malformed_is_an_error() {
        let base = "clusters=a,b\na.bootstrap.servers=x:1\nb.bootstrap.servers=y:1\n";
        for (extra, needle) in [
            ("", "not enabled"),
            ("a->b.enabled=false\n", "not enabled"),
            ("a->b.enabled=yes\n", "a->b.enabled"),
            ("a->b.enabled=true\ntasks.max=many\n", "tasks.max"),
            (
                "a->b.enabled=true\nsync.group.offsets.enabled=1\n",
                "sync.group.offsets.enabled",
            ),
            (
                "a->b.enabled=true\nreplication.policy.class=com.x.Mine\n",
                "replication.policy.class",
            ),
            (
                "a->b.enabled=true\nreplication.policy.separator=_\n",
                "separator",
            ),
            (
                "a->b.enabled=true\nb.producer.compression.type=brotli\n",
                "compression.type",
            ),
            ("a->b.enabled=true\ntopics=(\n", "regex"),
        ] {
            let e =
                MirrorConfig::from_mm2_properties(&format!("{base}{extra}"), "a", "b").unwrap_err();
            assert!(e.to_string().contains(needle), "{needle}: {e}");
        }
        let e = MirrorConfig::from_mm2_properties(base, "a", "c").unwrap_err();
        assert!(e.to_string().contains("\"c\""), "{e}");
    }
}
