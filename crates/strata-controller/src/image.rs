//! The metadata image: what every node knows about the cluster once it has applied the metadata
//! log up to [`MetadataImage::offset`]. Pure data; records change it only through the state
//! machine.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Producer ids are handed to brokers in blocks of this size (Kafka's block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// A listener of a registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// `PLAINTEXT`, `SSL`, ... (from `listener.security.protocol.map`).
    pub security_protocol: String,
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerImage {
    pub id: i32,
    /// The metadata offset of its latest registration (Kafka's broker epoch).
    pub epoch: i64,
    pub incarnation_id: Uuid,
    pub rack: Option<String>,
    pub endpoints: Vec<Endpoint>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

/// One partition's replication state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// -1 when offline.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Replicas a reassignment adds (KIP-455); also in `replicas`, not yet all in the ISR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    /// Replicas a reassignment removes once the added ones are in sync; also in `replicas`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
    /// The latest tail truncation ordered for this partition (a mirror target's
    /// `strata.mirror.truncate.offsets`); every later change of the partition carries it, so a
    /// replica that was offline applies it when it returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<LogTruncation>,
    /// The leader epoch of the latest producer reset (`strata.producer.reset`, a failover
    /// promotion): every replica forgets the idempotent-producer state of batches written
    /// under an earlier epoch. Every later change of the partition carries it, so a replica
    /// that was offline applies it when it returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_reset_epoch: Option<i32>,
}

/// A tail truncation: the records written under a leader epoch below `leader_epoch` at
/// offsets from `offset` on are gone from every replica. `leader_epoch` is the epoch the
/// truncation started, so records of that epoch or later (written after the leader
/// truncated) stay; applying it twice changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogTruncation {
    pub offset: i64,
    pub leader_epoch: i32,
}

impl PartitionImage {
    /// The preferred leader: the first replica (a reassignment's target comes first).
    pub fn preferred_leader(&self) -> Option<i32> {
        self.replicas.first().copied()
    }

    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas once the reassignment (if any) completes.
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub id: Uuid,
    pub name: String,
    pub partitions: BTreeMap<i32, PartitionImage>,
    /// Topic config overrides (Kafka names).
    pub configs: BTreeMap<String, String>,
}

/// The applied metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Index of the last applied metadata-log entry (0 before anything was applied).
    pub offset: u64,
    pub cluster_id: String,
    pub brokers: BTreeMap<i32, BrokerImage>,
    pub topics: BTreeMap<String, TopicImage>,
    /// Cluster-wide dynamic broker configs (the default broker resource).
    pub cluster_configs: BTreeMap<String, String>,
    /// Per-broker dynamic configs (the broker resource named by its id).
    #[serde(default)]
    pub broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// Producer ids below this were handed out.
    pub next_producer_id: i64,
    /// No producer id below this is handed out any more (the floor of the latest producer
    /// reset; 0 when there was none): a broker drops the rest of a block that starts below it.
    #[serde(default)]
    pub producer_id_floor: i64,
    /// SCRAM credentials by user, then mechanism name (`SCRAM-SHA-256`, `SCRAM-SHA-512`), as
    /// AlterUserScramCredentials stores them (KIP-554): never a password, only what verifies one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scram_credentials: BTreeMap<String, BTreeMap<String, ScramCredential>>,
    /// The ACLs of the cluster (CreateAcls / DeleteAcls), as the authorizer reads them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub acls: std::collections::BTreeSet<strata_kafka::acl::AclBinding>,
}

/// What a broker needs to verify a SCRAM client proof and sign its own (RFC 5802): the salt and
/// iteration count the client derives its salted password with, `StoredKey = H(ClientKey)` and
/// `ServerKey`. The salted password itself is not kept.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for ScramCredential {
    /// The keys verify passwords offline: they never show in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl MetadataImage {
    pub fn topic_by_id(&self, id: Uuid) -> Option<&TopicImage> {
        self.topics.values().find(|t| t.id == id)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionImage> {
        self.topics.get(topic)?.partitions.get(&partition)
    }

    /// A dynamic broker config of `broker`: its own value, else the cluster default.
    pub fn dynamic_broker_config(&self, broker: i32, name: &str) -> Option<&str> {
        self.broker_configs
            .get(&broker)
            .and_then(|c| c.get(name))
            .or_else(|| self.cluster_configs.get(name))
            .map(String::as_str)
    }

    /// Brokers that are registered and not fenced.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values().filter(|b| !b.fenced)
    }
}
