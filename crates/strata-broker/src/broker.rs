//! The broker: wires configuration, the metadata quorum and its image, the hosted partitions,
//! the group coordinator and the fetch-session cache together. The metadata image (applied
//! from the replicated metadata log) is the only source of topics, partitions and leaders; the
//! broker's own state follows it in `cluster::reconcile`. Request handlers receive a `&Broker`;
//! nothing here touches the network.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as RecordTimestampType,
};
use parking_lot::Mutex;
use strata_controller::{ControllerError, MetadataImage, Quorum, QuorumConfig, TopicImage};
use strata_group::{GroupConfig, GroupCoordinator, LogPosition, OffsetsLog, OffsetsLogError};
use strata_kafka::now_ms;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cluster::link::ControllerLink;
use crate::cluster::throttle::{ReplicationQuota, Side};
use crate::config::BrokerConfig;
use crate::fetch_session::FetchSessionCache;
use crate::metrics::{BrokerMetrics, RemoteEnds};
use crate::partition::{AppendError, IsrProposal, IsrRequest, Partition, PartitionSet};
use crate::topic_config;
use crate::write_fence::WriteFence;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Errors that stop the broker from starting.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("metadata quorum: {0}")]
    Quorum(#[from] strata_controller::QuorumError),
    #[error("log error on {topic}: {source}")]
    Log {
        topic: String,
        #[source]
        source: strata_log::LogError,
    },
}

pub struct Broker {
    pub config: BrokerConfig,
    pub quorum: Quorum,
    image: watch::Receiver<Arc<MetadataImage>>,
    pub link: ControllerLink,
    pub partitions: Arc<PartitionSet>,
    pub groups: GroupCoordinator,
    pub fetch_sessions: FetchSessionCache,
    pub shutdown: CancellationToken,
    /// This broker's epoch from its latest registration (-1 before).
    pub epoch: AtomicI64,
    pub incarnation_id: Uuid,
    /// False until the controller unfences this broker.
    pub ready: watch::Sender<bool>,
    /// Set once, when client requests may be served (as Kafka, a broker serves its client
    /// listeners once it is first unfenced; requests that arrive earlier wait).
    pub serving: watch::Sender<bool>,
    /// Set on SIGTERM: heartbeats ask the controller to move leaderships away.
    pub shutting_down: AtomicBool,
    /// Set when the controller answers that this broker may stop (controlled shutdown done).
    pub released: AtomicBool,
    /// When the controller last answered a heartbeat (ms since the epoch; -1 never).
    pub last_heartbeat_ms: AtomicI64,
    /// The event metrics the request path records (`crate::metrics`).
    pub metrics: BrokerMetrics,
    /// End offsets of partitions hosted elsewhere, for the group lag (`cluster::end_offsets`).
    pub remote_ends: RemoteEnds,
    /// The producer-id block being handed out: (next, end).
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// Topic configs last applied to the logs, to notice changes.
    pub(crate) applied_configs: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    /// The image offset the partitions were last reconciled with (`cluster::reconcile`).
    pub reconciled: watch::Sender<u64>,
    /// Replication throttles of this broker as a leader and as a follower.
    pub leader_quota: ReplicationQuota,
    pub follower_quota: ReplicationQuota,
    /// The failover write fence and mandate, as the image last set them.
    pub write_fence: WriteFence,
    /// The fence's id and, per partition this broker led when the fence first held every
    /// client write, the log end then: what the drain waits to see replicated
    /// (`write_fence_drained`).
    drain_marks: Mutex<Option<DrainMarks>>,
    /// ISR changes for the controller (`cluster::isr` sends them).
    isr_tx: mpsc::UnboundedSender<IsrRequest>,
    pub(crate) isr_rx: Mutex<Option<mpsc::UnboundedReceiver<IsrRequest>>>,
}

/// A fence's failover id and the log ends its drain waits for (see `Broker::write_fence_drained`).
type DrainMarks = (String, Vec<(Arc<Partition>, i64)>);

impl Broker {
    /// Opens the metadata quorum (formatting the log directory on first start) and the
    /// partition set; partitions open as the image assigns them (`cluster::reconcile`).
    pub async fn open(config: BrokerConfig) -> Result<Arc<Broker>, BrokerError> {
        let settings = &config.cluster;
        let voters = if settings.roles.is_some() {
            settings.voters.clone()
        } else {
            // A single-node cluster: this node is the only voter and needs no network.
            BTreeMap::from([(config.node_id, config.client_listener().host_port())])
        };
        let legacy = legacy::read(&config.log_dir);
        let cluster_id = config
            .cluster_id
            .clone()
            .or_else(|| legacy.as_ref().map(|l| l.cluster_id.clone()));
        let quorum = Quorum::start(QuorumConfig {
            node_id: config.node_id,
            cluster_id,
            voters: voters.clone(),
            log_dir: config.log_dir.clone(),
            election_timeout_ms: settings.election_timeout_ms,
            fetch_timeout_ms: settings.quorum_fetch_timeout_ms,
            request_timeout_ms: settings.quorum_request_timeout_ms,
            broker_session_timeout_ms: settings.session_timeout_ms,
            unclean_leader_election: settings.unclean_leader_election,
            inter_broker_listener: settings.inter_broker_listener.clone(),
            auto_leader_rebalance: settings.auto_leader_rebalance,
            leader_imbalance_check_interval_ms: settings.leader_imbalance_check_interval_seconds
                * 1000,
            dialer: NodeDialer::dialer(&config),
        })
        .await?;
        let image = quorum.image();
        let link = ControllerLink::new(
            quorum.clone(),
            config.node_id,
            if settings.roles.is_some() {
                voters
            } else {
                BTreeMap::new()
            },
            Duration::from_millis(settings.quorum_request_timeout_ms.max(1000)),
            config.node_security.controller.clone(),
        );
        let metrics = BrokerMetrics::new();
        let partitions = Arc::new(
            PartitionSet::new(&config.log_dir, config.node_id)
                .with_isr_counters(metrics.isr.clone()),
        );
        let offsets_log = Arc::new(PartitionOffsetsLog {
            partitions: partitions.clone(),
            timeout: Duration::from_millis(settings.offsets_commit_timeout_ms),
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
        let (isr_tx, isr_rx) = mpsc::unbounded_channel();
        let quota_window =
            Duration::from_secs(config.cluster.replication_quota_window_size_seconds);
        let quota_windows = config.cluster.replication_quota_window_num;
        Ok(Arc::new(Broker {
            config,
            quorum,
            image,
            link,
            partitions,
            groups,
            fetch_sessions: FetchSessionCache::new(1000),
            shutdown: CancellationToken::new(),
            epoch: AtomicI64::new(-1),
            incarnation_id: Uuid::new_v4(),
            ready: watch::channel(false).0,
            serving: watch::channel(false).0,
            shutting_down: AtomicBool::new(false),
            released: AtomicBool::new(false),
            last_heartbeat_ms: AtomicI64::new(-1),
            metrics,
            remote_ends: RemoteEnds::default(),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            applied_configs: Mutex::new(BTreeMap::new()),
            reconciled: watch::channel(0).0,
            leader_quota: ReplicationQuota::new(Side::Leader, quota_windows, quota_window),
            follower_quota: ReplicationQuota::new(Side::Follower, quota_windows, quota_window),
            write_fence: WriteFence::default(),
            drain_marks: Mutex::new(None),
            isr_tx,
            isr_rx: Mutex::new(Some(isr_rx)),
        }))
    }

    /// Asks the controller for an ISR change (sent in the background).
    pub fn propose_isr(&self, partition: Arc<Partition>, proposal: IsrProposal) {
        let _ = self.isr_tx.send(IsrRequest {
            partition,
            proposal,
        });
    }

    /// Whether the log directory still holds the topic list of a broker from before the
    /// metadata quorum (`strata-metadata.json`): nothing on disk is deleted while it does.
    pub fn legacy_metadata_pending(&self) -> bool {
        legacy::path(&self.config.log_dir).exists()
    }

    /// Moves the topics of a pre-quorum single-node broker into the metadata quorum (same
    /// names, partitions and configs; their logs stay where they are), then renames the old
    /// file. Runs once the broker is registered.
    pub async fn migrate_legacy_metadata(&self) -> anyhow::Result<()> {
        let Some(old) = legacy::read(&self.config.log_dir) else {
            return Ok(());
        };
        let image = self.image();
        let topics: Vec<strata_controller::NewTopic> = old
            .topics
            .into_values()
            .filter(|t| !image.topics.contains_key(&t.name))
            .map(|t| strata_controller::NewTopic {
                name: t.name,
                num_partitions: t.partitions,
                replication_factor: 1,
                assignments: (0..t.partitions)
                    .map(|p| (p, vec![self.config.node_id]))
                    .collect(),
                configs: t.configs,
            })
            .collect();
        if !topics.is_empty() {
            let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
            let results = self
                .link
                .create_topics(topics, false, self.admin_timeout())
                .await?;
            for (name, r) in names.iter().zip(results) {
                if let Err((code, message)) = r {
                    if code != crate::codes::TOPIC_ALREADY_EXISTS {
                        anyhow::bail!("migrating topic {name} into the metadata quorum: {message} (error {code})");
                    }
                }
            }
            tracing::info!(
                topics = names.len(),
                "topics of the pre-quorum metadata file moved into the metadata quorum"
            );
        }
        let from = legacy::path(&self.config.log_dir);
        std::fs::rename(&from, from.with_extension("json.migrated"))?;
        Ok(())
    }

    /// The applied metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    pub fn cluster_id(&self) -> String {
        self.quorum.cluster_id().to_string()
    }

    /// Watches the image.
    pub fn watch_image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.clone()
    }

    /// Waits until the image satisfies `done` and this broker's partitions follow that image
    /// (admin calls return once their change is applied here, so a following Metadata, Produce
    /// or Fetch sees it); false on timeout.
    pub async fn await_image(
        &self,
        within: Duration,
        done: impl Fn(&MetadataImage) -> bool,
    ) -> bool {
        let mut rx = self.image.clone();
        let mut reconciled = self.reconciled.subscribe();
        let wait = async {
            let offset = loop {
                {
                    let image = rx.borrow_and_update();
                    if done(&image) {
                        break image.offset;
                    }
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            };
            reconciled.wait_for(|r| *r >= offset).await.is_ok()
        };
        tokio::time::timeout(within, wait).await.unwrap_or(false)
    }

    /// The partition if this broker leads it now.
    pub fn led_partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .get(topic, partition)
            .filter(|p| p.is_leader())
    }

    /// `strata.write.fence.drained` (see `strata_kafka::failover`): the fence's failover id
    /// once every record an ordinary client wrote here before the fence is replicated. The
    /// first time the fence holds every client write (no produce request admitted before it
    /// still running), each partition this broker leads has its log end taken as its mark
    /// (internal `__` topics aside: they take the failover's own commits); from then on the
    /// answer is the id once every marked partition it still leads has its HW at its mark.
    /// Only writers the fence lets through (the mirror) can move the log ends past the marks,
    /// and those writes are not the drain's to wait for. None before.
    pub fn write_fence_drained(&self) -> Option<String> {
        let fenced = match self.write_fence.check(|| i64::MIN) {
            Some(crate::write_fence::Fenced::Failover(id)) => id,
            _ => return None,
        };
        let mut marks = self.drain_marks.lock();
        if marks.as_ref().is_none_or(|(id, _)| *id != fenced) {
            // Marks are taken once the requests admitted before the fence are answered.
            let id = self.write_fence.settled().filter(|id| *id == fenced)?;
            let led = self
                .partitions
                .all()
                .into_iter()
                .filter(|p| p.is_leader() && !p.topic.starts_with("__"))
                .map(|p| {
                    let end = p.log_end_offset();
                    (p, end)
                })
                .collect();
            *marks = Some((id, led));
        }
        let (id, led) = marks.as_ref()?;
        let behind = led
            .iter()
            .find(|(p, mark)| p.is_leader() && p.high_watermark() < *mark);
        if let Some((p, mark)) = behind {
            tracing::debug!(topic = %p.topic, partition = p.index, hw = p.high_watermark(),
                mark, "fenced, not drained: records written before the fence not yet replicated");
            return None;
        }
        Some(id.clone())
    }

    /// The error a client gets for a partition this broker does not lead: unknown when the
    /// image has no such partition, else NOT_LEADER_OR_FOLLOWER (or LEADER_NOT_AVAILABLE when
    /// it has no leader).
    pub fn not_led_error(&self, topic: &str, partition: i32) -> i16 {
        match self.image().partition(topic, partition) {
            None => crate::codes::UNKNOWN_TOPIC_OR_PARTITION,
            Some(p) if p.leader < 0 => crate::codes::LEADER_NOT_AVAILABLE,
            Some(_) => crate::codes::NOT_LEADER_OR_FOLLOWER,
        }
    }

    /// min.insync.replicas of a topic.
    pub fn min_insync_replicas(&self, topic: &TopicImage) -> usize {
        topic
            .configs
            .get("min.insync.replicas")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(self.config.min_insync_replicas.max(1) as usize)
    }

    /// The topic defaults that the dynamic broker configs of `image` give this broker (the
    /// cluster default's, then its own), named as topic configs.
    pub fn dynamic_log_defaults(&self, image: &MetadataImage) -> BTreeMap<String, String> {
        topic_config::dynamic_defaults(
            &image.cluster_configs,
            image.broker_configs.get(&self.config.node_id),
        )
    }

    /// What a topic's log configuration is made of over the broker's static defaults: its
    /// overrides over the dynamic broker defaults of `image`.
    pub fn effective_overrides(
        &self,
        image: &MetadataImage,
        topic: &TopicImage,
    ) -> BTreeMap<String, String> {
        topic_config::with_dynamic_defaults(&topic.configs, &self.dynamic_log_defaults(image))
    }

    /// Default timeout of admin changes forwarded to the controller.
    pub fn admin_timeout(&self) -> Duration {
        Duration::from_millis(30_000)
    }

    /// A producer id no other broker hands out: from this broker's block, a new block from
    /// the controller when it is used up or starts below the image's producer-id floor (a
    /// producer reset: ids below it may be in use by producers of another cluster).
    pub async fn next_producer_id(&self) -> Result<i64, ControllerError> {
        let mut block = self.producer_ids.lock().await;
        if block.0 >= block.1 || block.0 < self.image().producer_id_floor {
            let (start, len) = self
                .link
                .allocate_producer_ids(
                    self.config.node_id,
                    self.epoch.load(Ordering::Acquire),
                    Duration::from_secs(10),
                )
                .await?;
            *block = (start, start + len as i64);
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
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
    /// `offsets.commit.timeout.ms`.
    timeout: Duration,
}

impl OffsetsLog for PartitionOffsetsLog {
    fn append(
        &self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<LogPosition, OffsetsLogError> {
        let Some(p) = self.partitions.get(OFFSETS_TOPIC, partition) else {
            return Err(OffsetsLogError::PartitionUnavailable(partition));
        };
        if !p.is_leader() {
            return Err(OffsetsLogError::NotLeader(partition));
        }
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
        let appended = p.append_as_leader(&mut buf, now).map_err(|e| match e {
            // Leadership moved since the check above: the same answer as that check's, not a
            // storage failure.
            AppendError::NotLeader { .. } => OffsetsLogError::NotLeader(partition),
            AppendError::Log(e) => {
                OffsetsLogError::Storage(format!("appending to {OFFSETS_TOPIC}: {e}"))
            }
        })?;
        self.partitions.appended.notify_waiters();
        Ok(LogPosition {
            end_offset: appended.info.last_offset + 1,
            leader_epoch: appended.leader_epoch,
        })
    }

    /// Appends write to the partition's segment files.
    fn appends_block(&self) -> bool {
        true
    }

    fn wait_replicated(
        &self,
        partition: i32,
        at: LogPosition,
    ) -> BoxFuture<'static, Result<(), OffsetsLogError>> {
        let part = self.partitions.get(OFFSETS_TOPIC, partition);
        let timeout = self.timeout;
        Box::pin(async move {
            let Some(p) = part else {
                return Err(OffsetsLogError::PartitionUnavailable(partition));
            };
            match crate::cluster::wait_high_watermark(&p, at.end_offset, at.leader_epoch, timeout)
                .await
            {
                crate::cluster::HwWait::Reached => Ok(()),
                crate::cluster::HwWait::NotLeader => Err(OffsetsLogError::NotLeader(partition)),
                crate::cluster::HwWait::TimedOut => Err(OffsetsLogError::Timeout(partition)),
            }
        })
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

/// The topic list a single-node broker kept before the metadata quorum existed.
mod legacy {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    #[derive(serde::Deserialize)]
    pub struct Topic {
        pub name: String,
        pub partitions: i32,
        #[serde(default)]
        pub configs: BTreeMap<String, String>,
    }

    #[derive(serde::Deserialize)]
    pub struct Metadata {
        pub cluster_id: String,
        #[serde(default)]
        pub topics: BTreeMap<String, Topic>,
    }

    pub fn path(log_dir: &Path) -> PathBuf {
        log_dir.join("strata-metadata.json")
    }

    pub fn read(log_dir: &Path) -> Option<Metadata> {
        let bytes = std::fs::read(path(log_dir)).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable strata-metadata.json left in place");
                None
            }
        }
    }
}

/// Opens this node's Raft connections as its listeners need them: to a voter's controller
/// listener with the controller listener's security, to an observer's inter-broker listener
/// with the inter-broker one (TLS, then a SASL session; plain TCP for PLAINTEXT).
struct NodeDialer {
    client_id: String,
    security: crate::config::NodeSecurity,
    timeout: Duration,
}

impl NodeDialer {
    fn dialer(config: &BrokerConfig) -> strata_controller::Dialer {
        let security = &config.node_security;
        if !security.inter_broker.protocol.tls()
            && !security.inter_broker.protocol.sasl()
            && !security.controller.protocol.tls()
            && !security.controller.protocol.sasl()
        {
            return strata_controller::Dialer::default();
        }
        strata_controller::Dialer::new(Arc::new(NodeDialer {
            client_id: format!("strata-broker-{}-raft", config.node_id),
            security: security.clone(),
            timeout: Duration::from_millis(config.cluster.quorum_request_timeout_ms.max(1000)),
        }))
    }
}

impl strata_controller::Dial for NodeDialer {
    fn dial(&self, addr: &str, voter: bool) -> strata_controller::DialFuture {
        let security = if voter {
            self.security.controller.clone()
        } else {
            self.security.inter_broker.clone()
        };
        let (addr, client_id, timeout) = (addr.to_string(), self.client_id.clone(), self.timeout);
        Box::pin(async move {
            let stream = strata_client::secured_stream(&addr, &client_id, timeout, &security)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok(Box::new(stream) as Box<dyn strata_controller::RaftStream>)
        })
    }
}
