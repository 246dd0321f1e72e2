//! The public face of the quorum: start-up (format / check the log directory, join or bootstrap
//! the Raft group), the controller operations the broker calls, and the Raft frames it routes.

use std::collections::BTreeMap;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use uuid::Uuid;

use crate::controller;
use crate::image::{MetadataImage, PartitionImage};
use crate::leadership::{ElectionResult, ElectionType};
use crate::metadata_quorum::MetadataQuorum;
use crate::node::{now, Node};
use crate::operations;
use crate::operations::ScramChange;
use crate::reassignment::OngoingReassignment;
use strata_kafka::acl::{AclBinding, AclFilter};

pub use crate::types::{
    ControllerError, HeartbeatReply, NewTopic, QuorumConfig, QuorumError, QuorumState,
    RegisterBroker, ReplicaState, TopicResult, RAFT_API_KEY,
};

/// A running quorum member (voter or observer). Cheap to clone.
#[derive(Clone)]
pub struct Quorum {
    /// The Raft node: frames, DescribeQuorum, broker sessions, joining.
    node: Arc<Node>,
    /// The same node as the controller's operations see it (`crate::operations`).
    metadata: Arc<dyn MetadataQuorum>,
}

impl Quorum {
    /// Formats or checks the log directory, opens the metadata log and joins the quorum.
    pub async fn start(config: QuorumConfig) -> Result<Quorum, QuorumError> {
        let node = Node::start(config).await?;
        Ok(Quorum {
            metadata: node.clone(),
            node,
        })
    }

    /// The cluster id (from the configuration or `meta.properties`).
    pub fn cluster_id(&self) -> &str {
        &self.node.cluster_id
    }

    /// The applied image; changes on every applied entry.
    pub fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.metadata.committed()
    }

    /// Waits until this node applied the metadata log up to `offset`; false on timeout.
    pub async fn wait_applied(&self, offset: u64, timeout: Duration) -> bool {
        let mut rx = self.image();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|i| i.offset >= offset)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// The active controller this node knows of.
    pub fn leader(&self) -> Option<i32> {
        self.metadata.view().leader
    }

    pub fn is_active(&self) -> bool {
        self.metadata.view().is_leader()
    }

    /// Unclean leader elections the controller made so far (replicated, so every node agrees).
    pub fn unclean_elections(&self) -> u64 {
        self.node.sm.unclean_elections()
    }

    /// DescribeQuorum (replica progress is known on the leader only).
    pub fn describe(&self) -> QuorumState {
        let node = &self.node;
        let m = node.raft.metrics().borrow().clone();
        let is_leader = node.is_leader();
        let last_index = m.last_log_index;
        let membership = m.membership_config.membership().clone();
        let mut voter_ids: Vec<u64> = membership.voter_ids().collect();
        if voter_ids.is_empty() {
            voter_ids = node.config.voters.keys().map(|v| *v as u64).collect();
        }
        let learner_ids: Vec<u64> = membership.learner_ids().collect();
        let now = now();
        let replica = |id: u64| -> ReplicaState {
            if id == node.id {
                return ReplicaState {
                    replica_id: id as i32,
                    log_end_offset: last_index.map_or(0, |i| i as i64 + 1),
                    last_fetch_timestamp: now,
                    last_caught_up_timestamp: now,
                };
            }
            let matched = m
                .replication
                .as_ref()
                .filter(|_| is_leader)
                .and_then(|r| r.get(&id).cloned());
            let log_end_offset = match &matched {
                Some(Some(l)) => l.index as i64 + 1,
                Some(None) => 0,
                None => -1,
            };
            let last_fetch = if is_leader {
                node.last_fetch_ms(id)
            } else {
                -1
            };
            if is_leader
                && last_fetch >= 0
                && log_end_offset >= 0
                && log_end_offset >= last_index.map_or(0, |i| i as i64 + 1)
            {
                node.note_caught_up(id, last_fetch);
            }
            ReplicaState {
                replica_id: id as i32,
                log_end_offset,
                last_fetch_timestamp: last_fetch,
                last_caught_up_timestamp: if is_leader { node.caught_up_ms(id) } else { -1 },
            }
        };
        QuorumState {
            leader_id: node.leader().unwrap_or(-1),
            leader_epoch: i32::try_from(m.current_term).unwrap_or(i32::MAX),
            // The offset after the last committed entry this node applied (Kafka's HW).
            high_watermark: m
                .last_applied
                .map_or(0, |l| l.index as i64 + 1)
                .max(node.image_rx.borrow().offset as i64 + 1),
            voters: voter_ids.into_iter().map(replica).collect(),
            observers: learner_ids.into_iter().map(replica).collect(),
        }
    }

    /// Serves one Raft frame body from another node; returns the answer body.
    pub async fn handle_rpc(&self, body: Bytes) -> Bytes {
        self.node.handle_rpc(body).await
    }

    /// Registers a broker (new epoch); it starts fenced.
    pub async fn register_broker(&self, reg: RegisterBroker) -> Result<i64, ControllerError> {
        let (_op, image) = operations::begin(&*self.metadata).await?;
        let alive = self.node.session_alive(reg.broker_id);
        let records = controller::register(
            &image,
            &reg,
            alive,
            self.node.config.unclean_leader_election,
        )?;
        let outcome = self.metadata.propose(records).await?;
        self.node.touch_session(reg.broker_id);
        let image = self.metadata.committed().borrow().clone();
        self.node.ensure_learner(reg.broker_id, &image);
        Ok(outcome.index as i64)
    }

    /// A BrokerHeartbeat: keeps the session, unfences a caught-up broker, handles
    /// `want_fence` / `want_shut_down` (leaderships moved away before `should_shut_down`, and
    /// the broker fenced when it is told so).
    pub async fn heartbeat(
        &self,
        broker_id: i32,
        broker_epoch: i64,
        metadata_offset: u64,
        want_fence: bool,
        want_shut_down: bool,
    ) -> Result<HeartbeatReply, ControllerError> {
        let (_op, image) = operations::begin(&*self.metadata).await?;
        let records = controller::heartbeat(
            &image,
            broker_id,
            broker_epoch,
            metadata_offset,
            want_fence,
            want_shut_down,
            self.node.config.unclean_leader_election,
        )?;
        self.node.touch_session(broker_id);
        let image = if records.is_empty() {
            image
        } else {
            self.metadata.propose(records).await?;
            self.metadata.committed().borrow().clone()
        };
        let reply = controller::heartbeat_reply(&image, broker_id, metadata_offset, want_shut_down);
        // Released for shutdown: fenced at once, so that it stops counting as live and its
        // next incarnation registers as soon as it starts, instead of being refused as a
        // duplicate until this session expires.
        if reply.should_shut_down && image.brokers.get(&broker_id).is_some_and(|b| !b.fenced) {
            let records =
                controller::fence(&image, broker_id, self.node.config.unclean_leader_election);
            self.metadata.propose(records).await?;
        }
        Ok(reply)
    }

    /// AlterPartition from a partition leader: the new ISR, checked against epochs.
    #[allow(clippy::too_many_arguments)]
    pub async fn alter_partition(
        &self,
        broker_id: i32,
        broker_epoch: i64,
        topic_id: Uuid,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    ) -> Result<PartitionImage, ControllerError> {
        operations::alter_partition(
            &*self.metadata,
            broker_id,
            broker_epoch,
            topic_id,
            partition,
            leader_epoch,
            partition_epoch,
            new_isr,
        )
        .await
    }

    /// CreateTopics; returns each topic's outcome and the metadata offset that holds them.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Result<(Vec<TopicResult>, u64), ControllerError> {
        operations::create_topics(&*self.metadata, topics, validate_only).await
    }

    /// DeleteTopics by name; each topic's id or error, and the offset that holds the deletions.
    pub async fn delete_topics(
        &self,
        names: Vec<String>,
    ) -> Result<(Vec<Result<Uuid, (i16, String)>>, u64), ControllerError> {
        operations::delete_topics(&*self.metadata, names).await
    }

    /// CreatePartitions: grows `topic` to `count` partitions.
    pub async fn create_partitions(
        &self,
        topic: String,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<u64, ControllerError> {
        operations::create_partitions(&*self.metadata, topic, count, assignments, validate_only)
            .await
    }

    /// Replaces a topic's config overrides (already validated by the broker).
    pub async fn set_topic_configs(
        &self,
        topic: String,
        configs: BTreeMap<String, String>,
    ) -> Result<u64, ControllerError> {
        operations::set_topic_configs(&*self.metadata, topic, configs).await
    }

    /// Replaces the cluster-wide dynamic broker configs.
    pub async fn set_cluster_configs(
        &self,
        configs: BTreeMap<String, String>,
    ) -> Result<u64, ControllerError> {
        operations::set_cluster_configs(&*self.metadata, configs).await
    }

    /// Replaces the cluster-wide dynamic broker configs and, with `producer_reset`, resets
    /// every partition's producer state with that producer-id floor (see
    /// [`controller::reset_producers`]), all in one metadata-log entry: a broker applies the
    /// reset in the same image that lifts a write fence. Returns the metadata offset.
    pub async fn set_cluster_configs_resetting_producers(
        &self,
        configs: BTreeMap<String, String>,
        producer_reset: Option<i64>,
    ) -> Result<u64, ControllerError> {
        operations::set_cluster_configs_resetting_producers(
            &*self.metadata,
            configs,
            producer_reset,
        )
        .await
    }

    /// AlterUserScramCredentials (credentials already derived and checked by the broker):
    /// each change's outcome and the metadata offset that holds them.
    pub async fn alter_scram_credentials(
        &self,
        changes: Vec<ScramChange>,
    ) -> Result<(Vec<Result<(), (i16, String)>>, u64), ControllerError> {
        operations::alter_scram_credentials(&*self.metadata, changes).await
    }

    /// CreateAcls (bindings checked by the broker): the metadata offset that holds them.
    pub async fn create_acls(&self, bindings: Vec<AclBinding>) -> Result<u64, ControllerError> {
        operations::create_acls(&*self.metadata, bindings).await
    }

    /// DeleteAcls: what each filter deleted.
    pub async fn delete_acls(
        &self,
        filters: Vec<AclFilter>,
    ) -> Result<Vec<Vec<AclBinding>>, ControllerError> {
        operations::delete_acls(&*self.metadata, filters).await
    }

    /// Replaces the dynamic configs of one broker (already validated by the broker).
    pub async fn set_broker_configs(
        &self,
        broker_id: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<u64, ControllerError> {
        operations::set_broker_configs(&*self.metadata, broker_id, configs).await
    }

    /// Tail truncation of a mirror target's partitions (offsets already checked by the
    /// broker against the leaders' logs); see [`controller::truncate_partitions`]. Returns the
    /// metadata offset that holds it.
    pub async fn truncate_partitions(
        &self,
        topic: String,
        offsets: Vec<(i32, i64)>,
    ) -> Result<u64, ControllerError> {
        operations::truncate_partitions(&*self.metadata, topic, offsets).await
    }

    /// ElectLeaders: each partition's outcome (see [`leadership::elect`]) and the metadata
    /// offset that holds the elections.
    pub async fn elect_leaders(
        &self,
        kind: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<(Vec<(String, i32, ElectionResult)>, u64), ControllerError> {
        operations::elect_leaders(&*self.metadata, kind, partitions).await
    }

    /// AlterPartitionReassignments: per partition, `Some(target)` starts or replaces a
    /// reassignment and `None` cancels it; each partition's outcome and the offset that holds
    /// the changes.
    #[allow(clippy::type_complexity)]
    pub async fn alter_reassignments(
        &self,
        changes: Vec<(String, i32, Option<Vec<i32>>)>,
        allow_rf_change: bool,
    ) -> Result<(Vec<Result<(), ControllerError>>, u64), ControllerError> {
        operations::alter_reassignments(&*self.metadata, changes, allow_rf_change).await
    }

    /// ListPartitionReassignments from this node's image.
    pub fn list_reassignments(
        &self,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<OngoingReassignment> {
        operations::list_reassignments(&*self.metadata, partitions)
    }

    /// AllocateProducerIds: a block no other broker ever gets; (first id, length).
    pub async fn allocate_producer_ids(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<(i64, i32), ControllerError> {
        operations::allocate_producer_ids(&*self.metadata, broker_id, broker_epoch).await
    }

    /// Leaves the quorum gracefully. openraft 0.9 cannot hand leadership on, so the other
    /// voters elect a new leader after their election timeout.
    pub async fn shutdown(&self) {
        self.node.shutdown().await;
    }
}
