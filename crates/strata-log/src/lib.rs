//! Storage engine of one Kafka partition: a segmented log of magic-2 record batches kept exactly as
//! producers sent them (offsets and leader epoch patched into the header), with Kafka's directory
//! layout, sparse indexes, retention, compaction, idempotent-producer deduplication, a leader-epoch
//! cache and crash recovery. No networking. The broker talks to [`PartitionLog`]; [`FileLog`] and
//! [`MemoryLog`] implement it with the same logic over different storage.

pub mod batch;
mod compaction;
pub mod config;
mod epoch_cache;
pub mod error;
pub mod file_store;
mod index;
mod log;
pub mod memory_store;
pub mod open_files;
mod producer_state;
pub mod record;
mod segment;
pub mod storage;

pub use batch::{BatchHeader, BATCH_HEADER_LEN};
pub use config::{CleanupPolicy, LogConfig, TimestampType};
pub use error::LogError;
pub use log::{FileLog, Log, MemoryLog};

use bytes::Bytes;

/// Result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended (or of the original append, for a duplicate).
    pub base_offset: i64,
    pub last_offset: i64,
    /// The append time stamped into the batches, -1 unless LogAppendTime.
    pub log_append_time: i64,
    pub record_count: u64,
    /// An idempotent-producer retry was detected; nothing was written.
    pub duplicate: bool,
}

/// Whole record batches read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSlice {
    pub bytes: Bytes,
    /// Base offset of the first batch, or -1 if empty.
    pub first_offset: i64,
}

impl ReadSlice {
    pub fn empty() -> ReadSlice {
        ReadSlice {
            bytes: Bytes::new(),
            first_offset: -1,
        }
    }
}

/// What one [`PartitionLog::maintain`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub segments_deleted: usize,
    pub segments_compacted: usize,
    pub bytes_reclaimed: u64,
    pub rolled: bool,
    pub flushed: bool,
}

/// Storage of one partition. All methods take `&self` (interior locking) so the broker can share an
/// `Arc<dyn PartitionLog>`; reads only wait for appends while a batch is being written.
pub trait PartitionLog: Send + Sync {
    /// Leader append of client batches exactly as received (one or more magic-2 batches back to
    /// back). Validates every batch (length, magic, CRC-32C, every record's structure and the
    /// offset range against the record count as [`batch::validate_produced`] checks them,
    /// `max.message.bytes`, keys on compacted logs) and writes nothing if any is bad. Assigns offsets from the log end offset, writes
    /// `leader_epoch` into each header and applies LogAppendTime when configured. Idempotent
    /// producers follow Kafka's sequence rules; a retried batch returns the original offsets with
    /// `duplicate: true`.
    fn append_as_leader(
        &self,
        records: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError>;
    /// Appends batches that already carry their offsets (follower replication). Base offsets must
    /// not go below the log end offset (gaps are allowed). CRCs are validated; records are not
    /// looked at (the leader checked them when they were produced, as in Kafka), so a caller
    /// with batches from a client checks them with [`batch::validate_produced`] first.
    fn append_with_offsets(&self, records: &[u8]) -> Result<AppendInfo, LogError>;
    /// Whole batches starting with the one containing `offset`, up to `max_bytes` but at least one
    /// batch, and only batches whose last offset is below `max_offset`.
    fn read(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<ReadSlice, LogError>;
    fn log_start_offset(&self) -> i64;
    fn log_end_offset(&self) -> i64;
    /// First (offset, timestamp) whose record timestamp is >= `ts`.
    fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError>;
    /// (offset, timestamp) of the record with the largest timestamp.
    fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError>;
    /// OffsetForLeaderEpoch: (largest epoch <= `epoch`, its end offset), (-1, -1) if unknown.
    fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64);
    fn latest_epoch(&self) -> Option<i32>;
    /// Removes everything at and above `offset` (a batch containing `offset` is removed whole).
    fn truncate_to(&self, offset: i64) -> Result<(), LogError>;
    /// Empties the log and restarts it at `offset` (follower whose fetch offset fell out of range).
    fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), LogError>;
    /// A producer reset (failover promotion): each producer whose newest batch was written
    /// under a leader epoch below `leader_epoch` (now, or once such batches are appended
    /// later) has its next batch accepted as a first batch, unless that batch is a retry of
    /// one it already wrote here, which is answered as a duplicate. Kept in memory only: after
    /// a restart the caller applies it again (the log rebuilds its producer state from its
    /// batches on open). Returns false when that reset or a later one was already applied.
    fn reset_producers_before(&self, leader_epoch: i32) -> bool;
    /// DeleteRecords: advances the log start offset; returns the new log start offset.
    fn delete_records_before(&self, offset: i64) -> Result<i64, LogError>;
    /// Time-based roll, retention, compaction and time-based flush.
    fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport, LogError>;
    fn flush(&self) -> Result<(), LogError>;
    fn set_config(&self, config: LogConfig);
    fn config(&self) -> LogConfig;
    fn size_bytes(&self) -> u64;
    fn segment_count(&self) -> usize;
}
