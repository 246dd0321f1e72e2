//! Kafka's configuration names with the value types Kafka's `ConfigDef`s declare: broker
//! properties (`server.properties`) and topic-level configs (Kafka 4.1 `TopicConfig`, with the
//! broker property each one defaults from). The one list the broker (which properties it
//! recognises; topic config types and synonyms in DescribeConfigs) and the operator (which
//! values it type-checks; which topic configs a `KafkaTopic` may set) share. Pure data.

/// Kafka's `ConfigDef.Type`, numbered as DescribeConfigs v3+ reports it (`ConfigType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    /// A Java class name.
    Class = 8,
    /// A secret (keys, passwords): never shown, DescribeConfigs reports it as sensitive.
    Password = 9,
}

impl ValueType {
    /// Int, Short or Long: the value is a whole number.
    pub fn is_whole_number(self) -> bool {
        matches!(self, ValueType::Int | ValueType::Short | ValueType::Long)
    }
}

/// A broker property.
#[derive(Debug)]
pub struct BrokerProperty {
    pub name: &'static str,
    pub kind: ValueType,
}

const fn broker(name: &'static str, kind: ValueType) -> BrokerProperty {
    BrokerProperty { name, kind }
}

/// The broker properties Strata reads, accepts or renders, in alphabetical order. All are
/// Kafka's except `cluster.id` (Kafka keeps it in `meta.properties`; a Strata broker also takes
/// it from `server.properties`), `controlled.shutdown.timeout.ms` (Strata's grace period for
/// requests in flight at shutdown), `strata.metrics.address` (where the broker serves
/// `/metrics`, `/healthz` and `/readyz`) and the failover's dynamic cluster configs
/// (`strata.producer.reset`, `strata.write.fence`, `strata.write.mandate.expiry.ms`, see
/// [`crate::failover`]), and `strata.ssl.reload.interval.ms` (how often an SSL listener checks
/// its key, certificate and truststore files for a change; see `strata_broker::tls`).
/// A property may also be given for one listener as `listener.name.<listener>.<property>`.
pub const BROKER_PROPERTIES: &[BrokerProperty] = {
    use ValueType::*;
    &[
        broker("advertised.listeners", String),
        broker("allow.everyone.if.no.acl.found", Boolean),
        broker("authorizer.class.name", String),
        broker("auto.create.topics.enable", Boolean),
        broker("auto.leader.rebalance.enable", Boolean),
        broker("broker.heartbeat.interval.ms", Int),
        broker("broker.id", Int),
        broker("broker.rack", String),
        broker("broker.session.timeout.ms", Int),
        broker("cluster.id", String),
        broker("config.providers", List),
        broker("connection.failed.authentication.delay.ms", Int),
        broker("connections.max.reauth.ms", Long),
        broker("controlled.shutdown.timeout.ms", Long),
        broker("controller.listener.names", String),
        broker("controller.quorum.bootstrap.servers", List),
        broker("controller.quorum.election.timeout.ms", Int),
        broker("controller.quorum.fetch.timeout.ms", Int),
        broker("controller.quorum.request.timeout.ms", Int),
        broker("controller.quorum.voters", List),
        broker("default.replication.factor", Int),
        broker("delete.topic.enable", Boolean),
        broker("follower.replication.throttled.rate", Long),
        broker("group.coordinator.rebalance.protocols", List),
        broker("group.initial.rebalance.delay.ms", Int),
        broker("group.max.session.timeout.ms", Int),
        broker("group.max.size", Int),
        broker("group.min.session.timeout.ms", Int),
        broker("inter.broker.listener.name", String),
        broker("leader.imbalance.check.interval.seconds", Long),
        broker("leader.imbalance.per.broker.percentage", Int),
        broker("leader.replication.throttled.rate", Long),
        broker("listener.security.protocol.map", String),
        broker("listeners", String),
        broker("log.cleaner.backoff.ms", Long),
        broker("log.cleaner.delete.retention.ms", Long),
        broker("log.cleaner.enable", Boolean),
        broker("log.cleaner.min.cleanable.ratio", Double),
        broker("log.cleaner.min.compaction.lag.ms", Long),
        broker("log.cleaner.threads", Int),
        broker("log.cleanup.policy", List),
        broker("log.dir", String),
        broker("log.dirs", String),
        broker("log.flush.interval.messages", Long),
        broker("log.flush.interval.ms", Long),
        broker("log.index.interval.bytes", Int),
        broker("log.message.timestamp.type", String),
        broker("log.retention.bytes", Long),
        broker("log.retention.check.interval.ms", Long),
        broker("log.retention.hours", Int),
        broker("log.retention.minutes", Int),
        broker("log.retention.ms", Long),
        broker("log.roll.hours", Int),
        broker("log.roll.ms", Long),
        broker("log.segment.bytes", Int),
        broker("message.max.bytes", Int),
        broker("metadata.log.dir", String),
        broker("min.insync.replicas", Int),
        broker("node.id", Int),
        broker("num.io.threads", Int),
        broker("num.network.threads", Int),
        broker("num.partitions", Int),
        broker("num.recovery.threads.per.data.dir", Int),
        broker("num.replica.fetchers", Int),
        broker("offsets.commit.timeout.ms", Int),
        broker("offsets.retention.minutes", Int),
        broker("offsets.topic.num.partitions", Int),
        broker("offsets.topic.replication.factor", Short),
        broker("process.roles", List),
        broker("replica.alter.log.dirs.io.max.bytes.per.second", Long),
        broker("replica.fetch.backoff.ms", Int),
        broker("replica.fetch.max.bytes", Int),
        broker("replica.fetch.min.bytes", Int),
        broker("replica.fetch.response.max.bytes", Int),
        broker("replica.fetch.wait.max.ms", Int),
        broker("replica.high.watermark.checkpoint.interval.ms", Long),
        broker("replica.lag.time.max.ms", Long),
        broker("replica.selector.class", Class),
        broker("replica.socket.timeout.ms", Int),
        broker("replication.quota.window.num", Int),
        broker("replication.quota.window.size.seconds", Int),
        broker("sasl.enabled.mechanisms", List),
        broker("sasl.jaas.config", Password),
        broker("sasl.kerberos.kinit.cmd", String),
        broker("sasl.kerberos.min.time.before.relogin", Long),
        broker("sasl.kerberos.principal.to.local.rules", List),
        broker("sasl.kerberos.service.name", String),
        broker("sasl.kerberos.ticket.renew.jitter", Double),
        broker("sasl.kerberos.ticket.renew.window.factor", Double),
        broker("sasl.login.refresh.buffer.seconds", Short),
        broker("sasl.login.refresh.min.period.seconds", Short),
        broker("sasl.login.refresh.window.factor", Double),
        broker("sasl.login.refresh.window.jitter", Double),
        broker("sasl.mechanism.controller.protocol", String),
        broker("sasl.mechanism.inter.broker.protocol", String),
        broker("share.coordinator.state.topic.min.isr", Short),
        broker("share.coordinator.state.topic.replication.factor", Short),
        broker("socket.receive.buffer.bytes", Int),
        broker("socket.request.max.bytes", Int),
        broker("socket.send.buffer.bytes", Int),
        broker("ssl.cipher.suites", List),
        broker("ssl.client.auth", String),
        broker("ssl.enabled.protocols", List),
        broker("ssl.endpoint.identification.algorithm", String),
        broker("ssl.key.password", Password),
        broker("ssl.keystore.certificate.chain", Password),
        broker("ssl.keystore.key", Password),
        broker("ssl.keystore.location", String),
        broker("ssl.keystore.password", Password),
        broker("ssl.keystore.type", String),
        broker("ssl.principal.mapping.rules", String),
        broker("ssl.protocol", String),
        broker("ssl.truststore.certificates", Password),
        broker("ssl.truststore.location", String),
        broker("ssl.truststore.password", Password),
        broker("ssl.truststore.type", String),
        broker("strata.metrics.address", String),
        broker("strata.producer.reset", Long),
        broker("strata.ssl.reload.interval.ms", Long),
        broker("strata.write.fence", String),
        broker("strata.write.mandate.expiry.ms", Long),
        broker("super.users", String),
        broker("transaction.state.log.min.isr", Int),
        broker("transaction.state.log.replication.factor", Short),
        broker("unclean.leader.election.enable", Boolean),
    ]
};

/// Looks a broker property up by name; `listener.name.<listener>.<property>` is `<property>`
/// given for one listener.
pub fn broker_property(name: &str) -> Option<&'static BrokerProperty> {
    let name = listener_property(name).map_or(name, |(_, property)| property);
    // `listener.name.<l>.<mechanism>.sasl.jaas.config`: the JAAS config of one SASL mechanism.
    let name = if name.ends_with(".sasl.jaas.config") {
        "sasl.jaas.config"
    } else {
        name
    };
    // `config.providers.<name>.class` and `.param.<param>`: a configuration provider.
    let name = if name.starts_with("config.providers.") {
        "config.providers"
    } else {
        name
    };
    BROKER_PROPERTIES.iter().find(|p| p.name == name)
}

/// Splits `listener.name.<listener>.<property>` into the listener's name (lower case, as Kafka
/// writes it) and the property.
pub fn listener_property(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix("listener.name.")?.split_once('.')
}

/// A topic-level config.
#[derive(Debug)]
pub struct TopicConfig {
    pub name: &'static str,
    pub kind: ValueType,
    /// The broker property that supplies the default (a Kafka "synonym").
    pub broker_synonym: Option<&'static str>,
}

const fn topic(
    name: &'static str,
    kind: ValueType,
    broker_synonym: Option<&'static str>,
) -> TopicConfig {
    TopicConfig {
        name,
        kind,
        broker_synonym,
    }
}

/// Every topic-level config of Kafka 4.1, in alphabetical order.
pub const TOPIC_CONFIGS: &[TopicConfig] = {
    use ValueType::*;
    &[
        topic("cleanup.policy", List, Some("log.cleanup.policy")),
        topic(
            "compression.gzip.level",
            Int,
            Some("compression.gzip.level"),
        ),
        topic("compression.lz4.level", Int, Some("compression.lz4.level")),
        topic("compression.type", String, Some("compression.type")),
        topic(
            "compression.zstd.level",
            Int,
            Some("compression.zstd.level"),
        ),
        topic(
            "delete.retention.ms",
            Long,
            Some("log.cleaner.delete.retention.ms"),
        ),
        topic(
            "file.delete.delay.ms",
            Long,
            Some("log.segment.delete.delay.ms"),
        ),
        topic("flush.messages", Long, Some("log.flush.interval.messages")),
        topic("flush.ms", Long, Some("log.flush.interval.ms")),
        topic("follower.replication.throttled.replicas", List, None),
        topic(
            "index.interval.bytes",
            Int,
            Some("log.index.interval.bytes"),
        ),
        topic("leader.replication.throttled.replicas", List, None),
        topic(
            "local.retention.bytes",
            Long,
            Some("log.local.retention.bytes"),
        ),
        topic("local.retention.ms", Long, Some("log.local.retention.ms")),
        topic(
            "max.compaction.lag.ms",
            Long,
            Some("log.cleaner.max.compaction.lag.ms"),
        ),
        topic("max.message.bytes", Int, Some("message.max.bytes")),
        topic(
            "message.timestamp.after.max.ms",
            Long,
            Some("log.message.timestamp.after.max.ms"),
        ),
        topic(
            "message.timestamp.before.max.ms",
            Long,
            Some("log.message.timestamp.before.max.ms"),
        ),
        topic(
            "message.timestamp.type",
            String,
            Some("log.message.timestamp.type"),
        ),
        topic(
            "min.cleanable.dirty.ratio",
            Double,
            Some("log.cleaner.min.cleanable.ratio"),
        ),
        topic(
            "min.compaction.lag.ms",
            Long,
            Some("log.cleaner.min.compaction.lag.ms"),
        ),
        topic("min.insync.replicas", Int, Some("min.insync.replicas")),
        topic("preallocate", Boolean, Some("log.preallocate")),
        topic("remote.log.copy.disable", Boolean, None),
        topic("remote.log.delete.on.disable", Boolean, None),
        topic("remote.storage.enable", Boolean, None),
        topic("retention.bytes", Long, Some("log.retention.bytes")),
        topic("retention.ms", Long, Some("log.retention.ms")),
        topic("segment.bytes", Int, Some("log.segment.bytes")),
        topic("segment.index.bytes", Int, Some("log.index.size.max.bytes")),
        topic("segment.jitter.ms", Long, Some("log.roll.jitter.ms")),
        topic("segment.ms", Long, Some("log.roll.ms")),
        topic(
            "unclean.leader.election.enable",
            Boolean,
            Some("unclean.leader.election.enable"),
        ),
    ]
};

/// Looks a topic config up by name.
pub fn topic_config(name: &str) -> Option<&'static TopicConfig> {
    TOPIC_CONFIGS.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_without_duplicates() {
        let broker: Vec<&str> = BROKER_PROPERTIES.iter().map(|p| p.name).collect();
        let topic: Vec<&str> = TOPIC_CONFIGS.iter().map(|c| c.name).collect();
        for names in [broker, topic] {
            assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(
            broker_property("num.partitions").map(|p| p.kind),
            Some(ValueType::Int)
        );
        assert!(broker_property("no.such.property").is_none());
        let retention = topic_config("retention.ms").expect("retention.ms");
        assert_eq!(retention.kind, ValueType::Long);
        assert_eq!(retention.broker_synonym, Some("log.retention.ms"));
        assert!(ValueType::Short.is_whole_number() && !ValueType::Double.is_whole_number());
    }

    #[test]
    fn the_failover_configs_are_broker_properties() {
        use crate::failover::*;
        for name in [
            WRITE_FENCE_CONFIG,
            MANDATE_EXPIRY_CONFIG,
            PRODUCER_RESET_CONFIG,
        ] {
            assert!(broker_property(name).is_some(), "{name}");
        }
    }
}
