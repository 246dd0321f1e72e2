//! The broker: wires configuration, the metadata image, the hosted partitions, the group
//! coordinator and the fetch-session cache together, and owns the topic lifecycle (create,
//! grow, reconfigure, delete) so that metadata and logs never disagree. Request handlers receive
//! a `&Broker`; nothing here touches the network.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as RecordTimestampType,
};
use strata_group::{GroupConfig, GroupCoordinator, OffsetsLog, OffsetsLogError};
use strata_kafka::now_ms;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::fetch_session::FetchSessionCache;
use crate::metadata::{MetadataError, MetadataStore, TopicMeta};
use crate::partition::PartitionSet;
use crate::topic_config;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Errors that stop the broker from starting or from changing its topics.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("log error on {topic}: {source}")]
    Log {
        topic: String,
        #[source]
        source: strata_log::LogError,
    },
    #[error("cannot delete the directories of {topic}: {source}")]
    Remove {
        topic: String,
        #[source]
        source: std::io::Error,
    },
    #[error("loading committed offsets: {0}")]
    Offsets(#[from] OffsetsLogError),
}

pub struct Broker {
    pub config: BrokerConfig,
    pub metadata: MetadataStore,
    pub partitions: Arc<PartitionSet>,
    pub groups: GroupCoordinator,
    pub fetch_sessions: FetchSessionCache,
    pub shutdown: CancellationToken,
    /// Serialises topic lifecycle changes (create/delete/grow) so metadata and logs stay in step.
    topic_changes: parking_lot::Mutex<()>,
}

impl Broker {
    /// Opens the log directory: metadata, every topic's partitions (with crash recovery done by
    /// the log), the offsets topic, and the committed offsets.
    pub fn open(config: BrokerConfig) -> Result<Arc<Broker>, BrokerError> {
        let metadata = MetadataStore::open(&config.log_dir, config.cluster_id.as_deref())?;
        let partitions = Arc::new(PartitionSet::new(&config.log_dir));
        let offsets_log = Arc::new(PartitionOffsetsLog {
            partitions: partitions.clone(),
        });
        let groups = GroupCoordinator::new(
            GroupConfig {
                min_session_timeout_ms: config.group_min_session_timeout_ms,
                max_session_timeout_ms: config.group_max_session_timeout_ms,
                initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
                max_group_size: config.group_max_size,
                offsets_topic_num_partitions: config.offsets_topic_num_partitions,
                offsets_retention_ms: config.offsets_retention_ms,
                node_id: config.node_id,
            },
            offsets_log,
        );
        let broker = Broker {
            config,
            metadata,
            partitions,
            groups,
            fetch_sessions: FetchSessionCache::new(1000),
            shutdown: CancellationToken::new(),
            topic_changes: parking_lot::Mutex::new(()),
        };
        for topic in broker.metadata.topics() {
            broker.open_topic(&topic, 0)?;
        }
        if broker.metadata.topic(OFFSETS_TOPIC).is_none() {
            let mut configs = BTreeMap::new();
            configs.insert("cleanup.policy".to_string(), "compact".to_string());
            configs.insert("segment.bytes".to_string(), "104857600".to_string());
            broker.create_topic(
                OFFSETS_TOPIC,
                broker.config.offsets_topic_num_partitions,
                1,
                configs,
            )?;
        }
        broker.groups.load()?;
        Ok(Arc::new(broker))
    }

    fn open_topic(&self, topic: &TopicMeta, from: i32) -> Result<(), BrokerError> {
        let log_config = topic_config::log_config(&topic.configs, &self.config);
        self.partitions
            .open_partitions(&topic.name, topic.id, from, topic.partitions, &log_config)
            .map_err(|source| BrokerError::Log {
                topic: topic.name.clone(),
                source,
            })
    }

    /// Creates a topic (configs already validated). Returns None when it already exists.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<Option<TopicMeta>, BrokerError> {
        let _guard = self.topic_changes.lock();
        let topic = TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            replication_factor,
            configs,
        };
        // Logs first: a crash between the two leaves empty directories that the next create
        // reuses, never metadata that points at missing logs.
        self.open_topic(&topic, 0)?;
        if !self.metadata.create_topic(topic.clone())? {
            return Ok(None);
        }
        tracing::info!(topic = name, partitions, "topic created");
        Ok(Some(topic))
    }

    /// Deletes a topic, its logs and its committed offsets. Returns false when unknown.
    pub fn delete_topic(&self, name: &str) -> Result<bool, BrokerError> {
        let _guard = self.topic_changes.lock();
        if self.metadata.delete_topic(name)?.is_none() {
            return Ok(false);
        }
        self.partitions
            .remove_topic(name)
            .map_err(|source| BrokerError::Remove {
                topic: name.to_string(),
                source,
            })?;
        self.groups.remove_topic_offsets(name);
        tracing::info!(topic = name, "topic deleted");
        Ok(true)
    }

    /// Grows a topic to `count` partitions (callers checked that it grows).
    pub fn add_partitions(&self, name: &str, count: i32) -> Result<bool, BrokerError> {
        let _guard = self.topic_changes.lock();
        let Some(mut topic) = self.metadata.topic(name) else {
            return Ok(false);
        };
        let from = topic.partitions;
        topic.partitions = count;
        self.open_topic(&topic, from)?;
        self.metadata.set_partitions(name, count)?;
        tracing::info!(topic = name, from, to = count, "partitions added");
        Ok(true)
    }

    /// Replaces a topic's config overrides (already validated) and applies them to its logs.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<bool, BrokerError> {
        let _guard = self.topic_changes.lock();
        let log_config = topic_config::log_config(&configs, &self.config);
        if !self.metadata.set_configs(name, configs)? {
            return Ok(false);
        }
        self.partitions.reconfigure(name, &log_config);
        Ok(true)
    }

    /// Runs retention, compaction and time-based flushing until shutdown.
    pub async fn run_maintenance(self: Arc<Self>) {
        let every = Duration::from_millis(self.config.retention_check_interval_ms);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let partitions = self.partitions.clone();
            let result = tokio::task::spawn_blocking(move || partitions.maintain(now_ms())).await;
            if let Err(e) = result {
                tracing::error!(error = %e, "log maintenance task failed");
            }
            self.fetch_sessions.evict_idle(Duration::from_secs(120));
        }
    }
}

/// `__consumer_offsets` on top of the broker's own partition logs.
struct PartitionOffsetsLog {
    partitions: Arc<PartitionSet>,
}

impl OffsetsLog for PartitionOffsetsLog {
    fn append(
        &self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), OffsetsLogError> {
        let Some(p) = self.partitions.get(OFFSETS_TOPIC, partition) else {
            return Err(OffsetsLogError::PartitionUnavailable(partition));
        };
        let now = now_ms();
        let recs: Vec<Record> = records
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: RecordTimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: now,
                key: Some(key),
                value,
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            recs.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| OffsetsLogError::Storage(format!("encoding offsets batch: {e}")))?;
        p.append_as_leader(&mut buf, now)
            .map_err(|e| OffsetsLogError::Storage(format!("appending to {OFFSETS_TOPIC}: {e}")))?;
        self.partitions.appended.notify_waiters();
        Ok(())
    }

    fn read_all(&self, partition: i32) -> Result<Vec<(Bytes, Option<Bytes>)>, OffsetsLogError> {
        let Some(p) = self.partitions.get(OFFSETS_TOPIC, partition) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut offset = p.log_start_offset();
        let end = p.log_end_offset();
        while offset < end {
            let slice = p
                .log
                .read(offset, 1 << 20, i64::MAX)
                .map_err(|e| OffsetsLogError::Storage(format!("reading {OFFSETS_TOPIC}: {e}")))?;
            if slice.bytes.is_empty() {
                break;
            }
            let mut buf = slice.bytes.clone();
            let sets = strata_kafka::records::decode_batches(&mut buf)
                .map_err(|e| OffsetsLogError::Storage(format!("decoding {OFFSETS_TOPIC}: {e}")))?;
            let mut next = offset;
            for set in sets {
                for r in set.records {
                    next = next.max(r.offset + 1);
                    if r.offset < offset || r.control {
                        continue;
                    }
                    if let Some(key) = r.key {
                        out.push((key, r.value));
                    }
                }
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
        Ok(out)
    }
}
