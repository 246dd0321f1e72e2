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
//! Layers, always downward: `quorum` (public API) → `operations` (the controller's operations,
//! written against the `metadata_quorum::MetadataQuorum` trait) and `node` (Raft, joining, leader
//! duties; implements the trait) → `controller`, `leadership` and `reassignment` (pure decisions,
//! using `placement`) → `records` (what the log carries) → `state_machine` / `log_store`
//! (storage) and `network` (Raft frames). `metadata_quorum::LocalQuorum` implements the trait
//! in memory, so the operations run without Raft in tests.

#![allow(clippy::result_large_err)]

mod controller;
mod image;
mod leadership;
mod log_store;
mod meta_properties;
mod metadata_quorum;
mod network;
mod node;
mod operations;
mod partition_rules;
mod placement;
mod quorum;
mod reassignment;
mod records;
mod state_machine;
mod types;

pub use image::{
    BrokerImage, Endpoint, LogTruncation, MetadataImage, PartitionImage, ScramCredential,
    TopicImage, PRODUCER_ID_BLOCK_SIZE,
};
pub use leadership::{ElectionResult, ElectionType};
pub use network::{Dial, DialFuture, Dialer, RaftStream};
pub use operations::ScramChange;
pub use quorum::{
    ControllerError, HeartbeatReply, NewTopic, Quorum, QuorumConfig, QuorumError, QuorumState,
    RegisterBroker, ReplicaState, TopicResult, RAFT_API_KEY,
};
pub use reassignment::OngoingReassignment;

/// Raft frame bodies for `strata-fuzz`: what a voter decodes from every Raft frame its
/// controller listener takes, and one body of each kind to mutate.
#[doc(hidden)]
pub mod raft_frames {
    /// Decodes a Raft frame body as `Quorum::handle_rpc` does.
    pub fn decode(body: &[u8]) -> Result<(), String> {
        crate::network::decode_request(body)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// One JSON body of each Raft request kind.
    pub fn samples() -> Vec<Vec<u8>> {
        crate::network::sample_requests()
    }
}

/// The Raft storage, exposed for openraft's conformance suite (`tests/it/raft_store.rs`).
#[doc(hidden)]
pub mod raft_storage {
    pub use crate::log_store::LogStore;
    pub use crate::records::TypeConfig;
    pub use crate::state_machine::StateMachine;
}
