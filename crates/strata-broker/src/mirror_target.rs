//! Mirror targets: Strata's one extension of the Kafka protocol, for `strata-mirror` in
//! `Preserve` mode. A topic whose config `strata.mirror.source` names a source cluster alias is
//! a *mirror target*:
//!
//! - Produce requests from the client id [`PRESERVE_CLIENT_ID`] append the record batches as
//!   they were fetched from the source, base offsets included (nothing is re-assigned, so target
//!   offsets equal source offsets and consumer offsets need no translation). Records,
//!   compression and timestamps are kept, and so are idempotent producers' ids and sequences
//!   (they become this partition's producer state); transactional identities and transaction
//!   markers are not (see `Partition::append_preserving`). Batches the log already holds (a retry, a
//!   restarted mirror) are skipped, so re-sending is harmless; a batch that straddles the log
//!   end offset is refused with INVALID_RECORD.
//! - Every other producer gets `POLICY_VIOLATION` with a message that names the config: the
//!   topic belongs to the mirror, and writing to it would break offset equality.
//! - Deleting the config (`kafka-configs --alter --delete-config strata.mirror.source`) promotes
//!   the topic to a normal one at failover: producers append after the mirrored records.
//! - The mirror's client id on a topic that is not a mirror target is refused too, so a
//!   promoted topic never receives offset-preserving appends from a mirror still running.
//!
//! Four more extensions serve the failover between an active cluster and its standby (names in
//! `strata_kafka::failover`):
//!
//! - `strata.write.fence` (cluster-wide dynamic broker config, `kafka-configs --entity-type
//!   brokers --entity-default`): non-empty fences the cluster; ordinary producers get
//!   NOT_LEADER_OR_FOLLOWER naming the failover id, Metadata v13+ REBOOTSTRAP_REQUIRED, group
//!   writes COORDINATOR_NOT_AVAILABLE. The mirror still writes (see `crate::write_fence`).
//! - `strata.write.mandate.expiry.ms` (cluster-wide dynamic broker config, Unix ms, 0 or unset:
//!   none): past it the cluster behaves as fenced.
//! - `strata.mirror.truncate.offsets` = `partition:offset[,partition:offset...]`, set with
//!   IncrementalAlterConfigs on a mirror target, is an action and never stored: each named
//!   partition's log is truncated to the offset (which must lie between its log start and log
//!   end) on every replica, through the active controller, which gives the partition a new
//!   leader epoch ([`parse_truncation`], [`check_truncation`]).
//! - `strata.producer.reset` = a producer-id floor, set on the cluster-default broker resource
//!   at promotion (with the fence's removal, in one request), is an action and never stored:
//!   every replica of every partition releases, as of a new leader epoch, the idempotent
//!   producers that wrote before it from their sequences, and producer ids restart at the floor
//!   (see `crate::write_fence`). The mirrored batches carried the source's producers over, so a
//!   producer that moves here with a batch whose answer it lost gets that batch's offsets back,
//!   and any other batch of a released producer is taken as a first batch.
//!
//! Everything else (fetch, list offsets, groups, configs) is plain Kafka. The client id is a
//! guard against mistakes, not an authorisation: under an authorizer the append also needs
//! CLUSTER_ACTION on the cluster (see `crate::authz`).
//!
//! Apache Kafka rejects the unknown topic config on CreateTopics (`INVALID_CONFIG`), which is
//! how `strata-mirror` tells that a target cannot preserve offsets.

use std::collections::BTreeMap;

use strata_kafka::failover::TRUNCATE_OFFSETS_CONFIG;
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

/// Parses a value of `strata.mirror.truncate.offsets`: `partition:offset[,partition:offset...]`,
/// each partition once, none negative. Sorted by partition.
pub fn parse_truncation(value: &str) -> Result<Vec<(i32, i64)>, String> {
    let invalid = |why: &str| {
        format!(
            "Invalid value '{value}' for {TRUNCATE_OFFSETS_CONFIG}: {why} (expected \
             partition:offset[,partition:offset...])"
        )
    };
    let mut out: BTreeMap<i32, i64> = BTreeMap::new();
    for item in value.split(',').map(str::trim) {
        let Some((p, o)) = item.split_once(':') else {
            return Err(invalid(&format!("'{item}' is not partition:offset")));
        };
        let (Ok(p), Ok(o)) = (p.trim().parse::<i32>(), o.trim().parse::<i64>()) else {
            return Err(invalid(&format!("'{item}' is not partition:offset")));
        };
        if p < 0 || o < 0 {
            return Err(invalid(&format!("'{item}' is negative")));
        }
        if out.insert(p, o).is_some() {
            return Err(invalid(&format!("partition {p} is named twice")));
        }
    }
    Ok(out.into_iter().collect())
}

/// Checks a truncation of `topic` against its config overrides and, per partition, the leader's
/// log start and log end offsets (`None`: no such partition).
pub fn check_truncation(
    topic: &str,
    configs: &BTreeMap<String, String>,
    offsets: &[(i32, i64)],
    bounds: impl Fn(i32) -> Option<(i64, i64)>,
) -> Result<(), String> {
    if !configs.contains_key(MIRROR_SOURCE_CONFIG) {
        return Err(format!(
            "Topic {topic} is not a mirror target (no {MIRROR_SOURCE_CONFIG}): \
             {TRUNCATE_OFFSETS_CONFIG} truncates mirror targets only"
        ));
    }
    for &(partition, offset) in offsets {
        let Some((start, end)) = bounds(partition) else {
            return Err(format!("Partition {topic}-{partition} does not exist"));
        };
        if offset < start || offset > end {
            return Err(format!(
                "Cannot truncate {topic}-{partition} to offset {offset}: it must lie between the \
                 log start offset {start} and the log end offset {end}"
            ));
        }
    }
    Ok(())
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
    fn truncation_values_parse_and_reject_what_is_not_partition_offset() {
        assert_eq!(parse_truncation("0:5"), Ok(vec![(0, 5)]));
        assert_eq!(parse_truncation("2:10, 0:5"), Ok(vec![(0, 5), (2, 10)]));
        for bad in ["", "0", "0:x", "a:1", "0:-1", "-1:3", "0:1,0:2", "0:1;1:2"] {
            let err = parse_truncation(bad).expect_err(bad);
            assert!(err.contains(TRUNCATE_OFFSETS_CONFIG), "{err}");
        }
    }

    #[test]
    fn truncation_needs_a_mirror_target_and_offsets_within_the_log() {
        let bounds = |p: i32| (p == 0).then_some((3, 10));
        assert_eq!(check_truncation("t", &marked(), &[(0, 3)], bounds), Ok(()));
        assert_eq!(check_truncation("t", &marked(), &[(0, 10)], bounds), Ok(()));
        let not_target = check_truncation("t", &BTreeMap::new(), &[(0, 5)], bounds).unwrap_err();
        assert!(not_target.contains("not a mirror target"), "{not_target}");
        for (offsets, needle) in [
            (vec![(0, 2)], "log start offset 3"),
            (vec![(0, 11)], "log end offset 10"),
            (vec![(0, 5), (1, 0)], "t-1 does not exist"),
        ] {
            let err = check_truncation("t", &marked(), &offsets, bounds).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn aliases_are_validated() {
        assert!(validate_source_alias("east-1.dc_a").is_ok());
        assert!(validate_source_alias("").is_err());
        assert!(validate_source_alias("a b").is_err());
    }
}
