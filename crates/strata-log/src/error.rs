//! Errors of the storage engine. Every variant maps onto one Kafka error code the broker returns
//! (`Io` -> KAFKA_STORAGE_ERROR, `CorruptBatch` -> CORRUPT_MESSAGE, and so on).

/// Failure of a log operation.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The disk failed underneath the log.
    #[error("log i/o failed: {0}")]
    Io(#[source] std::io::Error),
    /// A record batch fails length, structure or CRC checks.
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
    /// A record is not acceptable for this log (e.g. a null key on a compacted topic).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// The requested offset is outside `[log_start, log_end]`.
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// A record batch is larger than `max.message.bytes`.
    #[error("record batch exceeds max.message.bytes")]
    RecordTooLarge,
    /// An idempotent producer skipped or reordered sequence numbers.
    #[error("out of order sequence for producer {producer_id}: expected {expected}, received {received}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        received: i32,
    },
    /// An idempotent producer wrote with an epoch older than the current one (it is fenced).
    #[error("producer epoch is older than the current epoch")]
    InvalidProducerEpoch,
    /// A retried batch was detected; the log answers with the original offsets instead.
    #[error("duplicate sequence")]
    DuplicateSequence,
    /// Only magic 2 record batches are stored.
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
}

impl From<std::io::Error> for LogError {
    fn from(e: std::io::Error) -> Self {
        LogError::Io(e)
    }
}
