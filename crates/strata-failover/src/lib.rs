//! Active-standby failover between two Kafka clusters, without Kubernetes: the [`engine`]
//! (a pure state machine that decides each step and is saved between steps) and the Kafka-side
//! actions it asks for ([`kafka`]: fences, mandates, lag, checkpoints, promotion, quarantine of a
//! divergent tail). The `MirrorFlow` reconciler of `strata-operator` and `strata dev --standby`
//! both drive the same engine; what differs between them is only how they stop and start the
//! mirror and where the discovery address points.

pub mod driver;
pub mod engine;
pub mod kafka;

pub use driver::{observe, round, Driver};
pub use engine::{
    name, other, Action, EngineConfig, FailoverRecord, FailoverState, Observation, Offsets,
    Operation, Outcome, Phase, Reason, Rejoin, Side, Step,
};
pub use kafka::FlowSides;
