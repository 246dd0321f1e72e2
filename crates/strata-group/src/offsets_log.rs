//! The storage contract of the coordinator: the `__consumer_offsets` topic, implemented by the
//! broker on its partition logs. [`InMemoryOffsetsLog`] is a complete in-memory implementation
//! for tests and single-process tools; it never fails unless told to.

use std::collections::HashMap;

use bytes::Bytes;
use parking_lot::Mutex;

/// One record of `__consumer_offsets`: key and value (`None` = tombstone).
pub type OffsetsRecord = (Bytes, Option<Bytes>);

/// Why the offsets log could not append or read.
#[derive(Debug, thiserror::Error)]
pub enum OffsetsLogError {
    /// The partition is not hosted (or not led) here.
    #[error("partition {0} of __consumer_offsets is not available")]
    PartitionUnavailable(i32),
    /// The underlying storage failed.
    #[error("offsets log storage failed: {0}")]
    Storage(String),
}

/// The `__consumer_offsets` topic.
pub trait OffsetsLog: Send + Sync + 'static {
    /// Durably append key/value records (value None = tombstone) to one partition of __consumer_offsets.
    fn append(&self, partition: i32, records: Vec<OffsetsRecord>) -> Result<(), OffsetsLogError>;
    /// Every record of that partition from its start, in offset order (used to load state on start).
    fn read_all(&self, partition: i32) -> Result<Vec<OffsetsRecord>, OffsetsLogError>;
}

/// An in-memory `__consumer_offsets`: a vector of records per partition.
#[derive(Debug, Default)]
pub struct InMemoryOffsetsLog {
    partitions: Mutex<HashMap<i32, Vec<OffsetsRecord>>>,
    failing: Mutex<bool>,
}

impl InMemoryOffsetsLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every following `append` fail (or succeed again), to exercise error paths.
    pub fn set_failing(&self, failing: bool) {
        *self.failing.lock() = failing;
    }

    /// Number of records appended to `partition` so far.
    pub fn len(&self, partition: i32) -> usize {
        self.partitions.lock().get(&partition).map_or(0, Vec::len)
    }
}

impl OffsetsLog for InMemoryOffsetsLog {
    fn append(&self, partition: i32, records: Vec<OffsetsRecord>) -> Result<(), OffsetsLogError> {
        if *self.failing.lock() {
            return Err(OffsetsLogError::Storage("append refused".into()));
        }
        self.partitions
            .lock()
            .entry(partition)
            .or_default()
            .extend(records);
        Ok(())
    }

    fn read_all(&self, partition: i32) -> Result<Vec<OffsetsRecord>, OffsetsLogError> {
        Ok(self
            .partitions
            .lock()
            .get(&partition)
            .cloned()
            .unwrap_or_default())
    }
}
