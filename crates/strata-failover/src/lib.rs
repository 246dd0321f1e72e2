//! Active-standby failover between two Kafka clusters, without Kubernetes: the [`engine`]
//! (a pure state machine that decides each step and is saved between steps) and the Kafka-side
//! actions it asks for ([`kafka`]: fences, mandates, lag, checkpoints, promotion, quarantine of a
//! divergent tail). The `MirrorFlow` reconciler of `strata-operator` and `strata dev --standby`
//! both drive the same engine; what differs between them is only how they stop and start the
//! mirror and where the discovery address points.
//!
//! The `kafka` feature (on by default) carries the executor and the driver; without it the crate
//! is the engine alone, which is what the custom-resource types need for the status schema.

#[cfg(feature = "kafka")]
pub mod driver;
pub mod engine;
#[cfg(feature = "kafka")]
pub mod kafka;

#[cfg(feature = "kafka")]
pub use driver::{observe, round, Driver};
pub use engine::{
    name, other, Action, EngineConfig, FailoverRecord, FailoverState, Observation, Offsets,
    Operation, Outcome, Phase, Reason, Rejoin, Side, Step,
};
#[cfg(feature = "kafka")]
pub use kafka::FlowSides;
