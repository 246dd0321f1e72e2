//! The storage contract of the coordinator: the `__consumer_offsets` topic, implemented by the
//! broker on its partition logs. A write is two steps: `append` puts records in the local log of
//! the partition's leader and says where they end; `wait_replicated` resolves once they are as
//! durable as the topic requires (acks=all: the high watermark passed them). [`InMemoryOffsetsLog`]
//! is a complete in-memory implementation for tests and single-process tools; it never fails or
//! waits unless told to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;

use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::watch;

/// One record of `__consumer_offsets`: key and value (`None` = tombstone).
pub type OffsetsRecord = (Bytes, Option<Bytes>);

/// Why the offsets log could not append, replicate or read. The partition is in every variant
/// that concerns one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffsetsLogError {
    /// The partition is not hosted here (or not available at all).
    #[error("partition {0} of __consumer_offsets is not available")]
    PartitionUnavailable(i32),
    /// This broker is not (or no longer) the partition's leader.
    #[error("this broker does not lead partition {0} of __consumer_offsets")]
    NotLeader(i32),
    /// Fewer in-sync replicas than `min.insync.replicas`.
    #[error("partition {0} of __consumer_offsets has too few in-sync replicas")]
    NotEnoughReplicas(i32),
    /// The followers did not acknowledge the records in time.
    #[error("partition {0} of __consumer_offsets was not replicated in time")]
    Timeout(i32),
    /// The underlying storage failed.
    #[error("offsets log storage failed: {0}")]
    Storage(String),
}

/// Where an append to `__consumer_offsets` ended: the offset after its last record and the
/// leader epoch it was appended at. An append is replicated once the high watermark reaches
/// `end_offset` while the partition is still led at `leader_epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPosition {
    pub end_offset: i64,
    pub leader_epoch: i32,
}

/// The `__consumer_offsets` topic.
pub trait OffsetsLog: Send + Sync + 'static {
    /// Appends key/value records (value None = tombstone) to the local log of one partition of
    /// `__consumer_offsets`, as its leader. Returns where the append ended: the position to
    /// pass to [`OffsetsLog::wait_replicated`].
    fn append(
        &self,
        partition: i32,
        records: Vec<OffsetsRecord>,
    ) -> Result<LogPosition, OffsetsLogError>;

    /// Every record of that partition from its start, in offset order (used to load a partition
    /// when this broker becomes its leader).
    fn read_all(&self, partition: i32) -> Result<Vec<OffsetsRecord>, OffsetsLogError>;

    /// Whether `append` writes to storage that may block the calling thread (files): the
    /// coordinator then runs the writing half of an offset commit on the blocking pool, never on
    /// an async worker. A log in memory does not block.
    fn appends_block(&self) -> bool {
        false
    }

    /// Resolves when every record of `partition` below `at.end_offset` is replicated as the
    /// topic requires, or fails (`NotLeader` once the partition is no longer led at
    /// `at.leader_epoch`, `NotEnoughReplicas`, `Timeout`, ...). The coordinator awaits it
    /// without holding a lock and may drop it unresolved. The default suits a log that is
    /// durable once `append` returns: ready at once.
    fn wait_replicated(
        &self,
        partition: i32,
        at: LogPosition,
    ) -> BoxFuture<'static, Result<(), OffsetsLogError>> {
        let _ = (partition, at);
        Box::pin(futures::future::ready(Ok(())))
    }
}

/// Builds the error a failing [`InMemoryOffsetsLog`] returns, from the partition: a variant
/// constructor such as `OffsetsLogError::NotEnoughReplicas` fits.
pub type FailureFn = fn(i32) -> OffsetsLogError;

/// An in-memory `__consumer_offsets`: a vector of records per partition. Replication is instant
/// unless held back ([`InMemoryOffsetsLog::hold_replication`]) or made to fail.
#[derive(Debug)]
pub struct InMemoryOffsetsLog {
    partitions: Mutex<HashMap<i32, Vec<OffsetsRecord>>>,
    append_failure: Mutex<Option<FailureFn>>,
    read_failure: Mutex<Option<FailureFn>>,
    /// Shared with pending `wait_replicated` futures, which decide when they resolve.
    replication_failure: Arc<Mutex<Option<FailureFn>>>,
    /// `true` while replication is held back.
    held: watch::Sender<bool>,
    /// Answers [`OffsetsLog::appends_block`] (as a file-backed log would).
    blocking: AtomicBool,
    /// The thread of every append, in order.
    append_threads: Mutex<Vec<ThreadId>>,
}

impl Default for InMemoryOffsetsLog {
    fn default() -> Self {
        Self {
            partitions: Mutex::default(),
            append_failure: Mutex::default(),
            read_failure: Mutex::default(),
            replication_failure: Arc::default(),
            held: watch::Sender::new(false),
            blocking: AtomicBool::new(false),
            append_threads: Mutex::default(),
        }
    }
}

impl InMemoryOffsetsLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every following `append` fail with `NotEnoughReplicas` (or succeed again), as the
    /// leader of a partition whose ISR shrank refuses writes.
    pub fn set_failing(&self, failing: bool) {
        self.fail_appends(failing.then_some(OffsetsLogError::NotEnoughReplicas));
    }

    /// Makes every following `append` fail with this error (`None`: succeed again).
    pub fn fail_appends(&self, failure: Option<FailureFn>) {
        *self.append_failure.lock() = failure;
    }

    /// Makes every following `read_all` fail with this error (`None`: succeed again).
    pub fn fail_reads(&self, failure: Option<FailureFn>) {
        *self.read_failure.lock() = failure;
    }

    /// Makes `wait_replicated` fail with this error (`None`: succeed again); it applies to every
    /// wait that resolves from now on, including held ones.
    pub fn fail_replication(&self, failure: Option<FailureFn>) {
        *self.replication_failure.lock() = failure;
    }

    /// Holds back every `wait_replicated` until called again with `false`.
    pub fn hold_replication(&self, hold: bool) {
        self.held.send_replace(hold);
    }

    /// Makes the log say that its appends block (as a file-backed one does), or not.
    pub fn set_blocking(&self, blocking: bool) {
        self.blocking.store(blocking, Ordering::Relaxed);
    }

    /// The threads the appends so far ran on, in order.
    pub fn append_threads(&self) -> Vec<ThreadId> {
        self.append_threads.lock().clone()
    }

    /// Number of records appended to `partition` so far.
    pub fn len(&self, partition: i32) -> usize {
        self.partitions.lock().get(&partition).map_or(0, Vec::len)
    }
}

impl OffsetsLog for InMemoryOffsetsLog {
    fn append(
        &self,
        partition: i32,
        records: Vec<OffsetsRecord>,
    ) -> Result<LogPosition, OffsetsLogError> {
        self.append_threads.lock().push(std::thread::current().id());
        if let Some(failure) = *self.append_failure.lock() {
            return Err(failure(partition));
        }
        let mut partitions = self.partitions.lock();
        let log = partitions.entry(partition).or_default();
        log.extend(records);
        Ok(LogPosition {
            end_offset: i64::try_from(log.len()).unwrap_or(i64::MAX),
            leader_epoch: 0,
        })
    }

    fn appends_block(&self) -> bool {
        self.blocking.load(Ordering::Relaxed)
    }

    fn read_all(&self, partition: i32) -> Result<Vec<OffsetsRecord>, OffsetsLogError> {
        if let Some(failure) = *self.read_failure.lock() {
            return Err(failure(partition));
        }
        Ok(self
            .partitions
            .lock()
            .get(&partition)
            .cloned()
            .unwrap_or_default())
    }

    fn wait_replicated(
        &self,
        partition: i32,
        _at: LogPosition,
    ) -> BoxFuture<'static, Result<(), OffsetsLogError>> {
        let mut held = self.held.subscribe();
        let failure = self.replication_failure.clone();
        Box::pin(async move {
            // A closed channel means the log is gone: nothing can hold the wait any more.
            let _ = held.wait_for(|held| !*held).await;
            let failure = *failure.lock();
            match failure {
                Some(failure) => Err(failure(partition)),
                None => Ok(()),
            }
        })
    }
}
