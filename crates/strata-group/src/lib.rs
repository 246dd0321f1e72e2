//! The classic consumer-group coordinator: group membership, generations and rebalances
//! (JoinGroup/SyncGroup/Heartbeat/LeaveGroup), committed offsets (OffsetCommit/OffsetFetch) and
//! the admin views (ListGroups/DescribeGroups/DeleteGroups), as Apache Kafka's classic
//! `GroupCoordinator` behaves, for the groups of the `__consumer_offsets` partitions this broker
//! owns (leads). Pure logic plus async waits: no networking. State is persisted in the
//! `__consumer_offsets` topic through the [`OffsetsLog`] trait, in Kafka's record format, so that
//! it replicates and mirrors like any other topic; writes are answered once replicated.

mod config;
mod coordinator;
mod group;
mod offsets_log;
mod partition;
pub mod record;

pub use config::GroupConfig;
pub use coordinator::{ClientInfo, CommittedOffsets, GroupCoordinator};
pub use group::GroupState;
pub use offsets_log::{
    FailureFn, InMemoryOffsetsLog, LogPosition, OffsetsLog, OffsetsLogError, OffsetsRecord,
};
pub use partition::{java_string_hash_code, partition_for};

#[cfg(test)]
mod tests;
