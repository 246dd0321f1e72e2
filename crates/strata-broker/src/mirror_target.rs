//! Mirror targets: Strata's one extension of the Kafka protocol, for `strata-mirror` in
//! `Preserve` mode. A topic whose config `strata.mirror.source` names a source cluster alias is
//! a *mirror target*:
//!
//! - Produce requests from the client id [`PRESERVE_CLIENT_ID`] append the record batches as
//!   they were fetched from the source, base offsets included (nothing is re-assigned, so target
//!   offsets equal source offsets and consumer offsets need no translation). Records,
//!   compression and timestamps are kept; the source's producer ids and transaction markers
//!   are not (see `Partition::append_preserving`). Batches the log already holds (a retry, a
//!   restarted mirror) are skipped, so re-sending is harmless; a batch that straddles the log
//!   end offset is refused with INVALID_RECORD.
//! - Every other producer gets `POLICY_VIOLATION` with a message that names the config: the
//!   topic belongs to the mirror, and writing to it would break offset equality.
//! - Deleting the config (`kafka-configs --alter --delete-config strata.mirror.source`) promotes
//!   the topic to a normal one at failover: producers append after the mirrored records.
//! - The mirror's client id on a topic that is not a mirror target is refused too, so a
//!   promoted topic never receives offset-preserving appends from a mirror still running.
//!
//! Everything else (fetch, list offsets, groups, configs) is plain Kafka. The client id is a
//! guard against mistakes, not an authorisation: the broker has no authentication yet.
//!
//! Apache Kafka rejects the unknown topic config on CreateTopics (`INVALID_CONFIG`), which is
//! how `strata-mirror` tells that a target cannot preserve offsets.

use std::collections::BTreeMap;

use strata_kafka::preserve::{MIRROR_SOURCE_CONFIG, PRESERVE_CLIENT_ID};
use strata_kafka::topic_name;

/// How a Produce request may write to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProduceMode {
    /// A normal append: the log assigns offsets.
    Assign,
    /// The mirror's append: batches keep their offsets.
    Preserve,
    /// Refused with POLICY_VIOLATION and this message.
    Refused(String),
}

/// Decides the produce mode from the topic's config overrides and the request's client id.
pub fn produce_mode(
    topic: &str,
    configs: &BTreeMap<String, String>,
    client_id: &str,
) -> ProduceMode {
    let mirror = client_id == PRESERVE_CLIENT_ID;
    match (configs.get(MIRROR_SOURCE_CONFIG), mirror) {
        (None, false) => ProduceMode::Assign,
        (Some(_), true) => ProduceMode::Preserve,
        (Some(source), false) => ProduceMode::Refused(format!(
            "Topic {topic} is a mirror target ({MIRROR_SOURCE_CONFIG}={source}): only strata-mirror \
             writes to it, keeping the offsets of cluster '{source}'. Delete the config \
             {MIRROR_SOURCE_CONFIG} to promote the topic and produce to it."
        )),
        (None, true) => ProduceMode::Refused(format!(
            "Topic {topic} is not a mirror target (no {MIRROR_SOURCE_CONFIG}): offset-preserving \
             appends are refused. If the topic was promoted, stop the mirror flow into it."
        )),
    }
}

/// Checks a value of `strata.mirror.source`: a cluster alias.
pub fn validate_source_alias(value: &str) -> Result<(), String> {
    // The alias prefixes remote topic names (`<alias>.<topic>`), so it obeys the topic-name rule.
    let ok = !value.is_empty()
        && value.len() <= topic_name::MAX_LEN
        && value.chars().all(topic_name::is_legal_char);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid value '{value}' for configuration {MIRROR_SOURCE_CONFIG}: expected the source \
             cluster alias (letters, digits, '.', '_', '-')"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked() -> BTreeMap<String, String> {
        [(MIRROR_SOURCE_CONFIG.to_string(), "east".to_string())].into()
    }

    #[test]
    fn only_the_mirror_writes_to_a_mirror_target() {
        assert_eq!(
            produce_mode("t", &marked(), PRESERVE_CLIENT_ID),
            ProduceMode::Preserve
        );
        let ProduceMode::Refused(msg) = produce_mode("t", &marked(), "rdkafka") else {
            panic!("a normal producer must be refused");
        };
        assert!(msg.contains("strata.mirror.source=east"), "{msg}");
        assert!(msg.contains("promote"), "{msg}");
    }

    #[test]
    fn the_mirror_never_preserves_offsets_into_a_normal_topic() {
        assert_eq!(
            produce_mode("t", &BTreeMap::new(), "rdkafka"),
            ProduceMode::Assign
        );
        assert!(matches!(
            produce_mode("t", &BTreeMap::new(), PRESERVE_CLIENT_ID),
            ProduceMode::Refused(_)
        ));
    }

    #[test]
    fn aliases_are_validated() {
        assert!(validate_source_alias("east-1.dc_a").is_ok());
        assert!(validate_source_alias("").is_err());
        assert!(validate_source_alias("a b").is_err());
    }
}
