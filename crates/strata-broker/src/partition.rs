//! Partition state and the set of partitions this broker hosts. A partition owns its log and
//! carries, from the start, what replication needs: a leader epoch, a high watermark and the log
//! end offset (from the log). With one replica the high watermark follows the log end offset on
//! every append; followers will move it by their fetch positions instead.
//!
//! The only place that names partition directories (`<topic>-<partition>` under the log dir).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use strata_log::{batch, AppendInfo, BatchHeader, FileLog, LogConfig, LogError, PartitionLog};
use tokio::sync::Notify;
use uuid::Uuid;

/// One hosted partition.
pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    pub log: Arc<dyn PartitionLog>,
    dir: PathBuf,
    leader_epoch: AtomicI32,
    high_watermark: AtomicI64,
}

impl Partition {
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// Appends client batches as leader. With a single replica every acknowledged append is
    /// also committed, so the high watermark moves to the new log end offset.
    pub fn append_as_leader(
        &self,
        records: &mut [u8],
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let info = self
            .log
            .append_as_leader(records, self.leader_epoch(), now_ms)?;
        self.advance_high_watermark(self.log.log_end_offset());
        Ok(info)
    }

    /// Appends batches that carry their own offsets (replication, offset-preserving mirror).
    pub fn append_with_offsets(&self, records: &[u8]) -> Result<AppendInfo, LogError> {
        let info = self.log.append_with_offsets(records)?;
        self.advance_high_watermark(self.log.log_end_offset());
        Ok(info)
    }

    /// Appends a mirror's batches at their own offsets (see [`crate::mirror_target`]): whole
    /// batches already below the log end offset are skipped as re-sends; the rest must start
    /// at or after it. Records, compression and timestamps are kept; each batch gets this
    /// partition's leader epoch and loses the source's producer identity (producer ids of
    /// another cluster would collide with this one's after promotion); transaction markers
    /// are not copied (this log keeps no transaction state for the source's producers), which
    /// leaves their offsets as gaps. Returns the first batch's base offset; `duplicate` when
    /// nothing was new.
    pub fn append_preserving(&self, records: &[u8]) -> Result<AppendInfo, LogError> {
        let end = self.log.log_end_offset();
        let epoch = self.leader_epoch();
        let mut first: Option<BatchHeader> = None;
        let mut kept: Vec<u8> = Vec::with_capacity(records.len());
        let mut skipped = 0u64;
        for (pos, h) in batch::validate_batches(records)? {
            first.get_or_insert(h);
            if h.last_offset() < end {
                skipped += h.records_count as u64;
                continue;
            }
            if h.base_offset < end {
                return Err(LogError::InvalidRecord(format!(
                    "batch {}..={} straddles the log end offset {end}",
                    h.base_offset,
                    h.last_offset()
                )));
            }
            if h.is_control() {
                continue;
            }
            let at = kept.len();
            kept.extend_from_slice(&records[pos..pos + h.total_size()]);
            let copy = &mut kept[at..];
            batch::set_partition_leader_epoch(copy, epoch);
            batch::clear_producer(copy);
        }
        let first = first.ok_or_else(|| LogError::CorruptBatch("no record batch".into()))?;
        if kept.is_empty() {
            tracing::debug!(topic = %self.topic, partition = self.index, skipped,
                "nothing new in the mirror's append (re-sent batches or markers only)");
            return Ok(AppendInfo {
                base_offset: first.base_offset,
                last_offset: first.last_offset(),
                log_append_time: -1,
                record_count: 0,
                duplicate: true,
            });
        }
        let mut info = self.append_with_offsets(&kept)?;
        info.base_offset = first.base_offset;
        Ok(info)
    }

    fn advance_high_watermark(&self, to: i64) {
        self.high_watermark.fetch_max(to, Ordering::AcqRel);
    }

    /// After truncation or DeleteRecords the high watermark stays within the log.
    pub fn clamp_high_watermark(&self) {
        let leo = self.log.log_end_offset();
        let start = self.log.log_start_offset();
        let hw = self.high_watermark().clamp(start, leo);
        self.high_watermark.store(hw, Ordering::Release);
    }
}

/// Identifies a partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// The partitions this broker hosts, plus the signal fetchers wait on for new data.
pub struct PartitionSet {
    log_dir: PathBuf,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// Woken on every append; long-polling fetches wait on it.
    pub appended: Notify,
}

impl PartitionSet {
    pub fn new(log_dir: &Path) -> PartitionSet {
        PartitionSet {
            log_dir: log_dir.to_path_buf(),
            partitions: RwLock::new(HashMap::new()),
            appended: Notify::new(),
        }
    }

    fn dir_of(&self, topic: &str, partition: i32) -> PathBuf {
        self.log_dir.join(format!("{topic}-{partition}"))
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .get(&TopicPartition {
                topic: topic.to_string(),
                partition,
            })
            .cloned()
    }

    /// Opens (creating when missing) the logs of partitions `from..to` of a topic.
    pub fn open_partitions(
        &self,
        topic: &str,
        topic_id: Uuid,
        from: i32,
        to: i32,
        config: &LogConfig,
    ) -> Result<(), LogError> {
        for index in from..to {
            let key = TopicPartition {
                topic: topic.to_string(),
                partition: index,
            };
            if self.partitions.read().contains_key(&key) {
                continue;
            }
            let dir = self.dir_of(topic, index);
            let log = FileLog::open(&dir, config.clone())?;
            let epoch = log.latest_epoch().unwrap_or(0).max(0);
            let leo = log.log_end_offset();
            let partition = Arc::new(Partition {
                topic: topic.to_string(),
                topic_id,
                index,
                log: Arc::new(log),
                dir,
                leader_epoch: AtomicI32::new(epoch),
                high_watermark: AtomicI64::new(leo),
            });
            self.partitions.write().insert(key, partition);
        }
        Ok(())
    }

    /// Drops every partition of a topic and deletes its directories.
    pub fn remove_topic(&self, topic: &str) -> std::io::Result<()> {
        let removed: Vec<Arc<Partition>> = {
            let mut map = self.partitions.write();
            let keys: Vec<_> = map.keys().filter(|k| k.topic == topic).cloned().collect();
            keys.into_iter().filter_map(|k| map.remove(&k)).collect()
        };
        for p in removed {
            // Readers may still hold the partition; unlinking open files is safe on Unix.
            match std::fs::remove_dir_all(&p.dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Applies a new log configuration to every partition of a topic.
    pub fn reconfigure(&self, topic: &str, config: &LogConfig) {
        for p in self.of_topic(topic) {
            p.log.set_config(config.clone());
        }
    }

    pub fn of_topic(&self, topic: &str) -> Vec<Arc<Partition>> {
        let mut v: Vec<_> = self
            .partitions
            .read()
            .values()
            .filter(|p| p.topic == topic)
            .cloned()
            .collect();
        v.sort_by_key(|p| p.index);
        v
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Periodic log maintenance (retention, compaction, time-based roll and flush).
    pub fn maintain(&self, now_ms: i64) {
        for p in self.all() {
            match p.log.maintain(now_ms) {
                Ok(report) => {
                    if report.segments_deleted > 0 || report.segments_compacted > 0 {
                        tracing::info!(
                            topic = %p.topic,
                            partition = p.index,
                            deleted = report.segments_deleted,
                            compacted = report.segments_compacted,
                            bytes = report.bytes_reclaimed,
                            "log maintenance"
                        );
                    }
                    p.clamp_high_watermark();
                }
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "log maintenance failed")
                }
            }
        }
    }

    /// Flushes every log (graceful shutdown).
    pub fn flush_all(&self) {
        for p in self.all() {
            if let Err(e) = p.log.flush() {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "flush failed");
            }
        }
    }
}
