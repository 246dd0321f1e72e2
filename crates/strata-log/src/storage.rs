//! Where segment bytes and log metadata live. The log logic in [`crate::log`] is written once
//! against these traits; [`crate::file_store`] keeps Kafka's directory layout on disk and
//! [`crate::memory_store`] keeps everything in memory for tests and ephemeral topics.

use crate::error::LogError;
use bytes::Bytes;
use std::io;

/// Bytes of one segment plus its index files.
pub trait SegmentData: Send + Sync {
    /// Current size of the segment's record data.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Appends record bytes at the end.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Reads exactly `len` bytes at `position` (positional read, no shared cursor).
    fn read_at(&self, position: u64, len: usize) -> io::Result<Bytes>;
    /// Cuts the record data to `len` bytes.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// Makes record data and indexes durable.
    fn sync(&self) -> io::Result<()>;
    /// Appends encoded entries to the offset and time index files. A store may hold them back
    /// until [`sync`](Self::sync) or [`seal`](Self::seal): indexes are rebuilt from the batches
    /// on start, so entries lost in a crash are never needed.
    fn append_index_entries(
        &mut self,
        offset_entries: &[u8],
        time_entries: &[u8],
    ) -> io::Result<()>;
    /// The segment stopped being the active one: index entries held back are written out.
    fn seal(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Replaces both index files.
    fn write_indexes(&mut self, offset_index: &[u8], time_index: &[u8]) -> io::Result<()>;
    /// Atomically replaces the record data (compaction); the caller rewrites the indexes after.
    fn replace_contents(&mut self, contents: &[u8]) -> io::Result<()>;
}

/// Creates, replaces and removes segments and stores small metadata files of one partition.
pub trait SegmentStore: Send + Sync {
    type Data: SegmentData;
    /// A new empty segment starting at `base_offset`.
    fn create_segment(&self, base_offset: i64) -> Result<Self::Data, LogError>;
    /// Deletes a segment and its indexes.
    fn remove_segment(&self, base_offset: i64, data: Self::Data) -> Result<(), LogError>;
    /// Durably replaces a small metadata file (`log-start-offset`, `recovery-point`, ...).
    fn write_metadata(&self, name: &str, contents: &str) -> Result<(), LogError>;
}

/// Metadata file holding the log start offset.
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset";
/// Metadata file holding the offset below which all data was flushed.
pub const RECOVERY_POINT_FILE: &str = "recovery-point";
/// Metadata file holding the leader-epoch cache.
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// Metadata file holding the offset up to which the log has been compacted.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// A segment found when opening a log, with the raw contents of its index files.
pub struct LoadedSegment<D> {
    pub base_offset: i64,
    pub data: D,
    pub offset_index: Vec<u8>,
    pub time_index: Vec<u8>,
}

/// Metadata files found when opening a log (`None` = missing or unparsable).
#[derive(Debug, Default, Clone)]
pub struct LoadedMetadata {
    pub log_start_offset: Option<i64>,
    pub recovery_point: Option<i64>,
    pub leader_epoch_checkpoint: Option<String>,
    pub cleaner_checkpoint: Option<i64>,
}
