//! `strata-mirror`: MirrorMaker-2-style replication from a source Kafka cluster to a target one,
//! over the public Kafka protocol only ("remote consume, local produce"). [`MirrorConfig`] is
//! the flow (YAML/JSON in the `MirrorFlow` shape, or MM2 properties via
//! [`MirrorConfig::from_mm2_properties`]); [`Mirror::start`] runs it and returns a
//! [`MirrorHandle`] whose `shutdown` is the graceful stop. Offsets are either translated (MM2
//! offset syncs and checkpoints, any Kafka target) or preserved ([`preserve`], Strata targets).

pub mod acls;
pub mod assignment;
pub mod checkpoint;
pub mod config;
pub mod context;
pub mod error;
pub mod flow;
pub mod heartbeat;
pub mod metrics;
pub mod mm2;
pub mod policy;
pub mod preserve;
pub mod records;
pub mod replication;
pub mod topics;
pub mod translation;

pub use assignment::{AssignmentError, PartitionAssignment};
pub use config::{ConfigError, MirrorConfig, MirrorOptions};
pub use context::FlowContext;
pub use error::MirrorError;
pub use flow::{Mirror, MirrorHandle, RunOptions};
pub use metrics::MirrorMetrics;
pub use policy::{GroupSelection, ReplicationPolicy, TopicSelection, PROVENANCE_HEADER};
pub use records::{Checkpoint, Heartbeat, OffsetSync};
pub use translation::OffsetSyncStore;
