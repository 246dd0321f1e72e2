//! The quorum's public vocabulary: its configuration, errors, the controller requests and
//! answers, and what DescribeQuorum reports. A leaf below the quorum, the controller and the
//! Raft network, which all use it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use uuid::Uuid;

use crate::image::{Endpoint, TopicImage};

/// Request-header API key of Raft frames between nodes (outside Kafka's range). A frame is a
/// Kafka request header v1 (this key, version 0, correlation id, null client id) followed by
/// the JSON body; the answer is a response header v0 (correlation id) followed by JSON.
pub const RAFT_API_KEY: i16 = 0x7A00;

/// How this node takes part in the quorum.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub node_id: i32,
    /// `cluster.id` from the configuration; `None` takes the one in `meta.properties`, or a new
    /// random one when the directory is new (single-node use).
    pub cluster_id: Option<String>,
    /// `controller.quorum.voters`: id → `host:port` of its CONTROLLER listener. A node not named
    /// here follows as an observer (Raft learner).
    pub voters: BTreeMap<i32, String>,
    /// The broker's log directory: `meta.properties` at its root, the metadata log in
    /// `__cluster_metadata-0` below it.
    pub log_dir: PathBuf,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms`.
    pub fetch_timeout_ms: u64,
    /// `controller.quorum.request.timeout.ms`: one Raft RPC.
    pub request_timeout_ms: u64,
    /// `broker.session.timeout.ms`: a broker without a heartbeat for this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// `unclean.leader.election.enable` of the controller (topic and cluster configs override).
    pub unclean_leader_election: bool,
    /// `inter.broker.listener.name`: the endpoint of a registered broker that Raft traffic to it
    /// (as an observer) uses.
    pub inter_broker_listener: String,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, in milliseconds.
    pub leader_imbalance_check_interval_ms: u64,
    /// How Raft connections to the other nodes are opened (plain TCP by default).
    pub dialer: crate::network::Dialer,
}

/// Why the quorum could not start.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("{0}")]
    Config(String),
    #[error("{path}: {message}")]
    Storage { path: PathBuf, message: String },
    #[error("raft: {0}")]
    Raft(String),
}

/// Why a controller operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    /// This node is not the active controller; `leader` is the one it knows of.
    #[error("not the active controller (leader: {leader:?})")]
    NotController { leader: Option<i32> },
    /// A Kafka error code (`kafka_protocol::ResponseError` numbering) with a message.
    #[error("{message} (error {code})")]
    Kafka { code: i16, message: String },
    /// No quorum answered in time.
    #[error("{0}")]
    Timeout(String),
}

/// A BrokerRegistration as the controller needs it.
#[derive(Debug, Clone)]
pub struct RegisterBroker {
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    pub rack: Option<String>,
    pub endpoints: Vec<Endpoint>,
}

/// The controller's answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub should_shut_down: bool,
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub num_partitions: i32,
    pub replication_factor: i16,
    /// Explicit replica lists per partition; empty → rack-aware placement.
    pub assignments: BTreeMap<i32, Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

/// One topic's outcome: the topic as created (or as it would be, when validating), or a Kafka
/// error code with a message.
pub type TopicResult = Result<TopicImage, (i16, String)>;

/// One replica of the quorum as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    pub replica_id: i32,
    pub log_end_offset: i64,
    /// -1 when unknown.
    pub last_fetch_timestamp: i64,
    pub last_caught_up_timestamp: i64,
}

/// The quorum as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumState {
    /// -1 when there is none.
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<ReplicaState>,
    pub observers: Vec<ReplicaState>,
}
