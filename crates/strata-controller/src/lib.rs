//! The cluster's metadata quorum and controller, KRaft-like: a Raft group (`openraft`) of the
//! voters named by `controller.quorum.voters` replicates the metadata log
//! (`__cluster_metadata-0`, kept with `strata-log`); every node applies it to the same
//! [`MetadataImage`]. The active controller (the Raft leader) turns broker and admin requests
//! into metadata records: broker registration and liveness (fencing), partition leadership and
//! ISR (elections on request and the automatic rebalance), tail truncations of mirror targets
//! (a new leader epoch carrying the truncation), reassignments, topic lifecycle with
//! rack-aware placement, topic and broker configs and producer-id blocks.
//!
//! No Kafka wire types and no sockets of the broker here: the broker translates Kafka messages
//! into the calls of [`Quorum`] and routes Raft frames to [`Quorum::handle_rpc`]; this crate
//! dials other nodes itself for its own Raft traffic.
//!
//! Layers, always downward: `quorum` (public API) → `node` (Raft, joining, leader duties) and
//! `controller`, `leadership` and `reassignment` (pure decisions, using `placement`) → `records` (what the log carries) →
//! `state_machine` / `log_store` (storage) and `network` (Raft frames).

#![allow(clippy::result_large_err)]

mod controller;
mod image;
mod leadership;
mod log_store;
mod meta_properties;
mod network;
mod node;
mod placement;
mod quorum;
mod reassignment;
mod records;
mod state_machine;
mod types;

pub use image::{
    BrokerImage, Endpoint, LogTruncation, MetadataImage, PartitionImage, TopicImage,
    PRODUCER_ID_BLOCK_SIZE,
};
pub use leadership::{ElectionResult, ElectionType};
pub use quorum::{
    ControllerError, HeartbeatReply, NewTopic, Quorum, QuorumConfig, QuorumError, QuorumState,
    RegisterBroker, ReplicaState, TopicResult, RAFT_API_KEY,
};
pub use reassignment::OngoingReassignment;

/// The Raft storage, exposed for openraft's conformance suite (`tests/raft_store.rs`).
#[doc(hidden)]
pub mod raft_storage {
    pub use crate::log_store::LogStore;
    pub use crate::records::TypeConfig;
    pub use crate::state_machine::StateMachine;
}
