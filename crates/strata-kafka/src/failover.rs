//! The names of Strata's failover extensions, which the broker (which enforces them), the
//! failover engine and the operator (which set them) must spell alike. All three are plain
//! Kafka configs, set and read with IncrementalAlterConfigs / DescribeConfigs, so Kafka's own
//! `kafka-configs` tool can inspect and clear them.
//!
//! - [`WRITE_FENCE_CONFIG`], a cluster-wide dynamic broker config (the cluster-default broker
//!   resource, `kafka-configs --entity-type brokers --entity-default`): non-empty means the
//!   cluster is fenced; its value (the failover id) appears in the errors clients get.
//! - [`MANDATE_EXPIRY_CONFIG`], a cluster-wide dynamic broker config: the wall-clock time
//!   (Unix milliseconds) until which the cluster may take writes; after it the cluster fences
//!   itself. Unset or 0: no mandate is required.
//! - [`TRUNCATE_OFFSETS_CONFIG`], a topic "config" that is an action: on a mirror target
//!   (`strata.mirror.source` set) it truncates the named partitions to the given offsets on
//!   every replica; it is never stored.
//! - [`PRODUCER_RESET_CONFIG`], a cluster-wide broker "config" that is an action (the cluster
//!   default broker resource): every replica forgets its idempotent-producer state and no
//!   producer id below the value is handed out afterwards; it is never stored.
//! - [`WRITE_FENCE_DRAINED_CONFIG`], a read-only config of one broker (its own broker
//!   resource, answered only when asked for by name): the failover id of the fence once the
//!   fence holds every client write on that broker (no produce request admitted before it is
//!   still running) and every partition it led then has its high watermark at the log end it
//!   had then; empty before. The failover's drain waits for it on every broker.

/// Cluster-wide write fence; the value is the id of the failover that fenced the cluster.
pub const WRITE_FENCE_CONFIG: &str = "strata.write.fence";

/// Cluster-wide write mandate: Unix milliseconds after which the cluster fences itself.
pub const MANDATE_EXPIRY_CONFIG: &str = "strata.write.mandate.expiry.ms";

/// Tail truncation of a mirror target's partitions: `partition:offset[,partition:offset...]`.
pub const TRUNCATE_OFFSETS_CONFIG: &str = "strata.mirror.truncate.offsets";

/// Cluster-wide producer reset at promotion: the value is a producer-id floor (decimal, ≥ 0);
/// every partition releases the idempotent producers that wrote before from their sequences
/// (their retries are still answered as duplicates) and new producer ids start at the floor or
/// above. An action, never stored.
pub const PRODUCER_RESET_CONFIG: &str = "strata.producer.reset";

/// Per broker, read-only: the fence's failover id once nothing written before the fence is
/// still in flight or unreplicated on that broker; empty otherwise.
pub const WRITE_FENCE_DRAINED_CONFIG: &str = "strata.write.fence.drained";

/// Header carried by each record copied to a quarantine topic: the record's offset in the
/// partition it was truncated from (decimal text).
pub const DIVERGENT_OFFSET_HEADER: &str = "strata.divergent.offset";

/// The quarantine topic that keeps a topic's divergent tail from failover `failover_id`.
pub fn divergent_topic(topic: &str, failover_id: &str) -> String {
    format!("{topic}.divergent.{failover_id}")
}
